/* Block-level building blocks shared by the RL CUDA kernels (reward, advantage, PPO): wide
 * per-thread row access (RL_VEC consecutive elements per thread, float4 where the row allows),
 * a block-wide inclusive/exclusive scan, forward or reversed over the threads, of any
 * associative element type (segmented sums,
 * "nearest valid value", affine maps for linear recurrences), block sums and maxima in
 * double, the last valid index of a row, and the deterministic two-stage reduction of
 * per-row partials (fixed launch shapes, fixed summation order, no atomics). Every block
 * that uses these helpers runs RL_THREADS threads, and every thread of the block must call
 * them (they contain __syncthreads). */
#pragma once
#include <cuda_runtime.h>
#include "../runtime/cuda_util.cuh"

#include <stdint.h>

/* A chunk of a row is RL_CHUNK consecutive elements: thread j holds [j RL_VEC, (j+1) RL_VEC). */
enum { RL_THREADS = 256, RL_WARPS = RL_THREADS / 32, RL_VEC = 8, RL_CHUNK = RL_THREADS * RL_VEC };

/* Whether float4 access is allowed: every row (or group) start a multiple of 4 elements and
 * every pointer 16-byte aligned (NULL pointers pass). */
static inline int rl_vec_ok(size_t row_len, const void *a, const void *b, const void *c,
                            const void *d) {
    return row_len % 4 == 0 &&
           ((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) % 16 == 0;
}

__device__ __forceinline__ void rl_from_bits(float &x, unsigned u) {
    x = __uint_as_float(u);
}
__device__ __forceinline__ void rl_from_bits(int &x, unsigned u) {
    x = (int)u;
}

/* x[k] = p[t0 + k] where t0 + k < n, 0 elsewhere. vec (rl_vec_ok) means p + t0 is 16-byte
 * aligned whenever t0 is a multiple of 4, which every caller's t0 is. */
template <class V>
__device__ __forceinline__ void rl_load(V (&x)[RL_VEC], const V *p, size_t t0, size_t n, int vec) {
    if (vec && t0 + RL_VEC <= n) {
#pragma unroll
        for (int q = 0; q < RL_VEC; q += 4) {
            const uint4 u = *(const uint4 *)(p + t0 + q);
            rl_from_bits(x[q], u.x), rl_from_bits(x[q + 1], u.y);
            rl_from_bits(x[q + 2], u.z), rl_from_bits(x[q + 3], u.w);
        }
    } else {
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) x[k] = t0 + k < n ? p[t0 + k] : (V)0;
    }
}

/* p[t0 + k] = x[k] where t0 + k < n. */
__device__ __forceinline__ void rl_store(float *p, const float (&x)[RL_VEC], size_t t0, size_t n,
                                         int vec) {
    if (vec && t0 + RL_VEC <= n) {
#pragma unroll
        for (int q = 0; q < RL_VEC; q += 4)
            *(float4 *)(p + t0 + q) = make_float4(x[q], x[q + 1], x[q + 2], x[q + 3]);
    } else {
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (t0 + k < n) p[t0 + k] = x[k];
    }
}

/* ---- scan element types: identity, combine(earlier, later), warp shuffle up ---- */

/* Segmented sum for "sum since the last segment end": s is the sum after the range's last
 * end (end positions store s = 0 and f = 1), f whether the range holds an end. */
struct RlSeg {
    double s;
    int f;
};
__device__ __forceinline__ RlSeg rl_identity(RlSeg) {
    return RlSeg{0.0, 0};
}
__device__ __forceinline__ RlSeg rl_combine(RlSeg x, RlSeg y) {
    return y.f ? y : RlSeg{x.s + y.s, x.f};
}
__device__ __forceinline__ RlSeg rl_shfl_up(RlSeg x, int d) {
    return RlSeg{__shfl_up_sync(0xffffffffu, x.s, d), __shfl_up_sync(0xffffffffu, x.f, d)};
}
__device__ __forceinline__ RlSeg rl_shfl_down(RlSeg x, int d) {
    return RlSeg{__shfl_down_sync(0xffffffffu, x.s, d), __shfl_down_sync(0xffffffffu, x.f, d)};
}

/* The value of the latest element (in scan order) that has one. */
struct RlLast {
    double v;
    int has;
};
__device__ __forceinline__ RlLast rl_identity(RlLast) {
    return RlLast{0.0, 0};
}
__device__ __forceinline__ RlLast rl_combine(RlLast x, RlLast y) {
    return y.has ? y : x;
}
__device__ __forceinline__ RlLast rl_shfl_up(RlLast x, int d) {
    return RlLast{__shfl_up_sync(0xffffffffu, x.v, d), __shfl_up_sync(0xffffffffu, x.has, d)};
}
__device__ __forceinline__ RlLast rl_shfl_down(RlLast x, int d) {
    return RlLast{__shfl_down_sync(0xffffffffu, x.v, d), __shfl_down_sync(0xffffffffu, x.has, d)};
}

/* The affine map g -> a g + b; composing x then y gives g -> y.a (x.a g + x.b) + y.b. This
 * is exact algebra, so a scan of maps evaluates a linear recurrence in any grouping. */
struct RlAff {
    double a, b;
};
__device__ __forceinline__ RlAff rl_identity(RlAff) {
    return RlAff{1.0, 0.0};
}
__device__ __forceinline__ RlAff rl_combine(RlAff x, RlAff y) {
    return RlAff{y.a * x.a, y.a * x.b + y.b};
}
__device__ __forceinline__ RlAff rl_shfl_up(RlAff x, int d) {
    return RlAff{__shfl_up_sync(0xffffffffu, x.a, d), __shfl_up_sync(0xffffffffu, x.b, d)};
}
__device__ __forceinline__ RlAff rl_shfl_down(RlAff x, int d) {
    return RlAff{__shfl_down_sync(0xffffffffu, x.a, d), __shfl_down_sync(0xffffffffu, x.b, d)};
}

/* Scans one element per thread, in thread order (REV: in reversed thread order, thread
 * RL_THREADS-1 first), and folds in the carry of the scans before it: incl = carry + x_0..x_j,
 * excl = carry + x_0..x_{j-1} in scan order; carry then covers this scan too. The same on
 * every thread, so all threads agree on the carry. */
template <bool REV, class S> __device__ void rl_block_scan_dir(S x, S &incl, S &excl, S &carry) {
    __shared__ S warp_tot[RL_WARPS];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (REV) lane = 31 - lane, warp = RL_WARPS - 1 - warp; /* ranks in scan order */
    S v = x;
    for (int d = 1; d < 32; d <<= 1) {
        S y = REV ? rl_shfl_down(v, d) : rl_shfl_up(v, d);
        if (lane >= d) v = rl_combine(y, v);
    }
    S e = REV ? rl_shfl_down(v, 1) : rl_shfl_up(v, 1);
    if (lane == 0) e = rl_identity(x);
    if (lane == 31) warp_tot[warp] = v;
    __syncthreads();
    S pre = carry, tot = carry;
    for (int w = 0; w < RL_WARPS; w++) {
        if (w == warp) pre = tot;
        tot = rl_combine(tot, warp_tot[w]);
    }
    __syncthreads(); /* warp_tot is rewritten by the next call */
    incl = rl_combine(pre, v);
    excl = rl_combine(pre, e);
    carry = tot;
}

/* Scans one chunk of RL_THREADS elements (thread j holds element j), forward. */
template <class S> __device__ void rl_block_scan(S x, S &incl, S &excl, S &carry) {
    rl_block_scan_dir<false>(x, incl, excl, carry);
}

/* Sums NV doubles over the block; every thread gets the totals. The xor butterfly leaves
 * the same bits on every lane and the warp totals are added in warp order, so the result
 * depends only on the inputs. */
template <int NV> __device__ void rl_block_sum(double (&v)[NV]) {
    __shared__ double part[NV][RL_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int k = 0; k < NV; k++) {
        for (int d = 16; d > 0; d >>= 1) v[k] += __shfl_xor_sync(0xffffffffu, v[k], d);
        if (lane == 0) part[k][warp] = v[k];
    }
    __syncthreads();
    for (int k = 0; k < NV; k++) {
        double s = 0.0;
        for (int w = 0; w < RL_WARPS; w++) s += part[k][w];
        v[k] = s;
    }
    __syncthreads();
}

__device__ __forceinline__ double rl_block_max(double v) {
    __shared__ double part[RL_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int d = 16; d > 0; d >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, d));
    if (lane == 0) part[warp] = v;
    __syncthreads();
    double m = part[0];
    for (int w = 1; w < RL_WARPS; w++) m = fmax(m, part[w]);
    __syncthreads();
    return m;
}

__device__ __forceinline__ int rl_block_max_int(int v) {
    __shared__ int part[RL_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int d = 16; d > 0; d >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, d));
    if (lane == 0) part[warp] = v;
    __syncthreads();
    int m = part[0];
    for (int w = 1; w < RL_WARPS; w++) m = max(m, part[w]);
    __syncthreads();
    return m;
}

/* Index of the row's last t with m[t] > 0, or -1; the same on every thread. */
__device__ __forceinline__ int rl_last_valid(const float *m, int T) {
    __shared__ int part[RL_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int last = -1;
    for (int t = threadIdx.x; t < T; t += RL_THREADS)
        if (m[t] > 0) last = t;
    for (int d = 16; d > 0; d >>= 1) last = max(last, __shfl_xor_sync(0xffffffffu, last, d));
    if (lane == 0) part[warp] = last;
    __syncthreads();
    last = part[0];
    for (int w = 1; w < RL_WARPS; w++) last = max(last, part[w]);
    __syncthreads();
    return last;
}

/* One block: out[c] = sum (or max) over i < n of part[c n + i], for each of nc components.
 * Thread j walks i = j, j + RL_THREADS, ... in order, then the block combines in fixed
 * order, so the result is bit-identical from run to run. */
static __global__ void __launch_bounds__(RL_THREADS)
    rl_reduce_partials_kernel(double *out, const double *part, int n, int nc, int use_max) {
    for (int c = 0; c < nc; c++) {
        const double *p = part + (size_t)c * n;
        double acc[1] = {0.0}; /* sums start at 0; the maxima taken here are of |x| */
        for (int i = threadIdx.x; i < n; i += RL_THREADS)
            acc[0] = use_max ? fmax(acc[0], p[i]) : acc[0] + p[i];
        double r = use_max ? rl_block_max(acc[0]) : (rl_block_sum<1>(acc), acc[0]);
        if (threadIdx.x == 0) out[c] = r;
    }
}

/* Per-row partials: nc components of n rows, component-major, then nc totals behind them,
 * in this file family's scratch slot. */
static inline double *rl_partials(int n, int nc) {
    return (double *)dr_cuda_scratch(SCRATCH_RL, sizeof(double) * (size_t)nc * ((size_t)n + 1));
}

/* Reduces the partials filled by a per-row kernel and copies the nc totals to host. */
static inline void rl_finish(double *host, double *part, int n, int nc, int use_max) {
    double *tot = part + (size_t)nc * n;
    rl_reduce_partials_kernel<<<1, RL_THREADS>>>(tot, part, n, nc, use_max);
    LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpy(host, tot, sizeof(double) * nc, cudaMemcpyDeviceToHost));
}
