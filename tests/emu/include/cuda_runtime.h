/* The CUDA runtime as the CPU emulation of the CUDA backend sees it. The project's .cu files,
 * rewritten by tests/emu/translate.py (kernel launches and shared memory), compile
 * against this header with g++ and run on the host: device memory is host memory, a launch
 * runs its blocks one after another, each block's threads as fibers on one OS thread that
 * switch at __syncthreads and at every warp collective (shuffles, ballots, ldmatrix, mma), so
 * barriers, shuffles and shared memory behave as the programming model says, and a barrier
 * that not every thread reaches is reported as a deadlock instead of hanging. It checks the
 * kernels' arithmetic and indexing, never their speed. */
#pragma once
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <limits.h>

#define __CUDA_EMU__ 1
#ifdef __cplusplus
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __constant__
/* every thread of a block shares the function's statics, and blocks run one at a time */
#define __shared__ static
#endif

#ifdef __cplusplus
#define EMU_DEFAULT(v) = v
#else
#define EMU_DEFAULT(v)
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorNotReady = 600,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorIllegalState = 401,
} cudaError_t;
typedef enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
} cudaStreamCaptureMode;
typedef enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
} cudaStreamCaptureStatus;
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
} cudaMemcpyKind;
typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_8I = 3,
    CUDA_R_32I = 10,
    CUDA_R_16BF = 14,
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;
typedef enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
} cudaDeviceAttr;
typedef enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
} cudaFuncAttribute;
typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph *cudaGraphExec_t;
/* the per-thread default stream, which is the default stream of the whole emulation */
#define cudaStreamPerThread    ((cudaStream_t)0x2)
#define cudaStreamNonBlocking  0x01
#define cudaEventDisableTiming 0x02
#define cudaEventDefault       0x00

typedef struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    size_t sharedMemPerMultiprocessor;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsPerMultiProcessor;
    int multiProcessorCount;
    int major;
    int minor;
    int l2CacheSize;
    int memoryBusWidth;
} cudaDeviceProp;

#ifdef __cplusplus
extern "C" {
#endif
/* ---- runtime API (tests/emu/emu_runtime.cpp) ---- */
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s EMU_DEFAULT(0));
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                         size_t height, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *p, int byte, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int byte, size_t bytes, cudaStream_t s EMU_DEFAULT(0));
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags EMU_DEFAULT(0));
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s EMU_DEFAULT(0));
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
/* Stream capture: between begin and end every launch, asynchronous copy and product is
 * recorded instead of run, and a graph launch runs the recording in order. A synchronous
 * call inside a capture (cudaMemcpy, cudaMemset, cudaFree, a synchronize) fails it, as on
 * a GPU, where it would wait on the stream being captured. */
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags EMU_DEFAULT(0));
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t emu_launch_error(void);
void emu_clear_launch_error(void);
size_t emu_max_dyn_smem(void);
/* Whether environment variable name is set to something other than "" or "0" */
int emu_env_on(const char *name);
cudaError_t emu_func_set_max_dyn_smem(const void *fn, int bytes);
cudaError_t emu_occupancy(int *blocks, int threads, size_t smem);
#ifdef __cplusplus
}
#include <functional>
#include <tuple>
#include <type_traits>

/* ---- types ---- */
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(4) ushort2 {
    unsigned short x, y;
};
static inline float2 make_float2(float x, float y) {
    return float2{x, y};
}
static inline float4 make_float4(float x, float y, float z, float w) {
    return float4{x, y, z, w};
}
static inline int2 make_int2(int x, int y) {
    return int2{x, y};
}
static inline int4 make_int4(int x, int y, int z, int w) {
    return int4{x, y, z, w};
}
static inline uint2 make_uint2(unsigned x, unsigned y) {
    return uint2{x, y};
}
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    return uint4{x, y, z, w};
}

template <class T> static inline cudaError_t cudaMalloc(T **p, size_t bytes) {
    return cudaMalloc((void **)p, bytes);
}
template <class F> static inline cudaError_t cudaFuncSetAttribute(F fn, cudaFuncAttribute, int v) {
    return emu_func_set_max_dyn_smem((const void *)fn, v);
}
template <class F>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *blocks, F, int threads,
                                                                        size_t smem) {
    return emu_occupancy(blocks, threads, smem);
}

/* ---- kernel launches: k<<<g, b, s, st>>>(a, b) becomes
 * emu_launch("k", emu_config(g, b, s, st), [=](auto &&...emu_a) mutable { k(emu_a...); }, a, b)
 * ---- */
struct emu_cfg {
    dim3 grid, block;
    size_t smem;
};
static inline emu_cfg emu_config(dim3 g, dim3 b, size_t smem = 0, cudaStream_t = 0) {
    return emu_cfg{g, b, smem};
}
void emu_launch_raw(const char *name, emu_cfg cfg, void (*body)(void *), void *ctx);
/* inside a stream capture: the work to run at each launch of the graph, in order */
bool emu_capturing(void);
void emu_record(std::function<void()> work);
/* The kernel call k runs with copies of the arguments taken at the launch, so a launch
 * recorded in a stream capture runs with the values they had then, as a graph's kernel
 * node keeps its parameters. */
template <class K, class... A>
static inline void emu_launch(const char *name, emu_cfg cfg, K k, A &&...args) {
    auto body = [k, t = std::tuple<typename std::decay<A>::type...>(
                        std::forward<A>(args)...)]() mutable { std::apply(k, t); };
    typedef decltype(body) B;
    if (emu_capturing()) {
        emu_record([name, cfg, body]() mutable {
            emu_launch_raw(
                name, cfg, [](void *p) { (*(B *)p)(); }, (void *)&body);
        });
        return;
    }
    emu_launch_raw(
        name, cfg, [](void *p) { (*(B *)p)(); }, (void *)&body);
}

/* the running thread's coordinates, set by the scheduler at every switch */
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;
void *emu_dyn_smem(void);
/* Fills a static __shared__ array with NaN bytes the first time each block reaches it;
 * *filled_in, the array's own, remembers the block that last did */
void emu_shared_fresh(void *p, size_t bytes, unsigned long long *filled_in);
/* A kernel's __launch_bounds__(max): stops the kernel where its block has more threads */
void emu_launch_bound(long max_threads);

/* ---- synchronization and warp collectives ---- */
void __syncthreads(void);
int __syncthreads_or(int pred);
int __syncthreads_and(int pred);
int __syncthreads_count(int pred);
void __syncwarp(unsigned mask = 0xffffffffu);
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}
/* Every lane of mask posts 8 bytes and gets back the 8 bytes lane src(lane) posted; a
 * source outside mask, or one that has exited, gives all ones (a NaN) */
uint64_t emu_exchange(unsigned mask, uint64_t v, int src);
unsigned emu_lane(void);
/* A warp operation such as ldmatrix or mma: every lane of mask posts its inputs (mine) and
 * where its outputs go (out); fn runs once for the warp when the last lane arrives, with the
 * lanes' pointers indexed by lane (NULL for lanes outside the operation) */
typedef void (*emu_warp_fn)(const void *const send[32], void *const recv[32], unsigned lanes);
void emu_warp_collective(unsigned mask, emu_warp_fn fn, const void *mine, void *out);

template <class T> static inline T emu_shfl_from(unsigned mask, T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof(T));
    u = emu_exchange(mask, u, src);
    T r;
    memcpy(&r, &u, sizeof(T));
    return r;
}
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const int lane = (int)emu_lane(), base = lane & ~(width - 1);
    return emu_shfl_from(mask, v, base + (src & (width - 1)));
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lm, int width = 32) {
    const int lane = (int)emu_lane(), src = lane ^ lm;
    const bool in = (src & ~(width - 1)) == (lane & ~(width - 1));
    return emu_shfl_from(mask, v, in ? src : lane);
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = (int)emu_lane(), src = lane - (int)delta;
    const bool in = src >= (lane & ~(width - 1));
    return emu_shfl_from(mask, v, in ? src : lane);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const int lane = (int)emu_lane(), src = lane + (int)delta;
    const bool in = src < (lane & ~(width - 1)) + width;
    return emu_shfl_from(mask, v, in ? src : lane);
}
unsigned __ballot_sync(unsigned mask, int pred);
static inline int __any_sync(unsigned mask, int pred) {
    return __ballot_sync(mask, pred) != 0;
}
static inline int __all_sync(unsigned mask, int pred) {
    return (__ballot_sync(mask, pred) & mask) == (__ballot_sync(mask, 1) & mask);
}
static inline unsigned __activemask(void) {
    return __ballot_sync(0xffffffffu, 1);
}

/* ---- atomics: one OS thread runs every fiber, so a read-modify-write is atomic ---- */
template <class T> static inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
static inline float2 atomicAdd(float2 *p, float2 v) {
    float2 old = *p;
    p->x += v.x, p->y += v.y;
    return old;
}
static inline float4 atomicAdd(float4 *p, float4 v) {
    float4 old = *p;
    p->x += v.x, p->y += v.y, p->z += v.z, p->w += v.w;
    return old;
}
template <class T> static inline T atomicSub(T *p, T v) {
    T old = *p;
    *p = old - v;
    return old;
}
template <class T> static inline T atomicMax(T *p, T v) {
    T old = *p;
    if (v > old) *p = v;
    return old;
}
template <class T> static inline T atomicMin(T *p, T v) {
    T old = *p;
    if (v < old) *p = v;
    return old;
}
template <class T> static inline T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <class T> static inline T atomicCAS(T *p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}

/* ---- integer and float intrinsics ---- */
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
static inline int __popcll(unsigned long long x) {
    return __builtin_popcountll(x);
}
static inline int __ffs(int x) {
    return __builtin_ffs(x);
}
static inline int __ffsll(long long x) {
    return __builtin_ffsll(x);
}
static inline int __clz(int x) {
    return x ? __builtin_clz((unsigned)x) : 32;
}
static inline int __clzll(long long x) {
    return x ? __builtin_clzll((unsigned long long)x) : 64;
}
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
static inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
/* bit reinterpretations */
#define EMU_BITCAST(NAME, FROM, TO)                                                                \
    static inline TO NAME(FROM x) {                                                                \
        TO y;                                                                                      \
        memcpy(&y, &x, sizeof y);                                                                  \
        return y;                                                                                  \
    }
EMU_BITCAST(__uint_as_float, unsigned, float)
EMU_BITCAST(__float_as_uint, float, unsigned)
EMU_BITCAST(__int_as_float, int, float)
EMU_BITCAST(__float_as_int, float, int)
EMU_BITCAST(__longlong_as_double, long long, double)
EMU_BITCAST(__double_as_longlong, double, long long)
#undef EMU_BITCAST
/* rounded operations: each one rounding, as on the GPU, where nvcc never fuses them into an
 * fma; the volatile keeps g++ from fusing them too where it contracts (DENSERL_EMU_CONTRACT) */
#define EMU_RN(NAME, T, OP)                                                                        \
    static inline T NAME(T a, T b) {                                                               \
        volatile T r = a OP b;                                                                     \
        return r;                                                                                  \
    }
EMU_RN(__fadd_rn, float, +)
EMU_RN(__fsub_rn, float, -)
EMU_RN(__fmul_rn, float, *)
EMU_RN(__fdiv_rn, float, /)
EMU_RN(__dadd_rn, double, +)
EMU_RN(__dsub_rn, double, -)
EMU_RN(__dmul_rn, double, *)
#undef EMU_RN
static inline float __fsqrt_rn(float a) {
    return sqrtf(a);
}
static inline float __frcp_rn(float a) {
    return 1.0f / a;
}
static inline float __fdividef(float a, float b) {
    return a / b;
}
static inline float __saturatef(float x) {
    return x < 0.f ? 0.f : (x > 1.f ? 1.f : x);
}
static inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}
static inline double rsqrt(double x) {
    return 1.0 / sqrt(x);
}
template <class T> static inline T __ldg(const T *p) {
    return *p;
}
template <class T> static inline T __ldcs(const T *p) {
    return *p;
}
template <class T> static inline void __stcs(T *p, T v) {
    *p = v;
}
static inline size_t __cvta_generic_to_shared(const void *p) {
    return (size_t)p;
}

/* CUDA's min and max, one pair per pair of argument types, the result in the type the usual
 * conversions give; std's want one type */
#define EMU_MINMAX(A, B, R)                                                                        \
    static inline R min(A a, B b) {                                                                \
        return (R)a < (R)b ? (R)a : (R)b;                                                          \
    }                                                                                              \
    static inline R max(A a, B b) {                                                                \
        return (R)a > (R)b ? (R)a : (R)b;                                                          \
    }
EMU_MINMAX(int, int, int)
EMU_MINMAX(unsigned, unsigned, unsigned)
EMU_MINMAX(long, long, long)
EMU_MINMAX(long long, long long, long long)
EMU_MINMAX(unsigned long, unsigned long, unsigned long)
EMU_MINMAX(int, long, long)
EMU_MINMAX(long, int, long)
EMU_MINMAX(int, unsigned, unsigned)
EMU_MINMAX(unsigned, int, unsigned)
#undef EMU_MINMAX
static inline float min(float a, float b) {
    return fminf(a, b);
}
static inline float max(float a, float b) {
    return fmaxf(a, b);
}
static inline double min(double a, double b) {
    return fmin(a, b);
}
static inline double max(double a, double b) {
    return fmax(a, b);
}

#include "emu_ptx.h"
#endif /* __cplusplus */
