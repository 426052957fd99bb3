/* The CUDA runtime API of the CPU emulation: one device (an sm_90 with a few SMs, so grids
 * stay small), device memory from the host heap with a capacity (DENSERL_EMU_GPU_GB, 16 by
 * default) so that running out of it can be tested, fresh allocations filled with NaN bytes
 * as a real GPU would hand over garbage (DENSERL_EMU_PEAK=1 prints the most held at once at
 * exit), and streams and events that order nothing because
 * every launch has finished when it returns. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unordered_map>
#include <vector>
#include "cuda_runtime.h"

struct emu_stream {
    int unused;
};
struct emu_event {
    double t;
};
struct emu_graph {
    std::vector<std::function<void()>> work;
};

namespace {
const int EMU_SMS = 8;
cudaError_t g_error = cudaSuccess;
std::unordered_map<void *, size_t> g_allocs;
size_t g_used, g_peak;

/* DENSERL_EMU_PEAK=1: the most device memory held at once, printed at exit (what a run's
 * memory plan is checked against). */
void emu_peak_report(void) {
    printf("emu: device peak %zu bytes\n", g_peak);
}

void emu_peak_track(void) {
    static int on = -1;
    if (on < 0 && (on = emu_env_on("DENSERL_EMU_PEAK"))) atexit(emu_peak_report);
    if (g_used > g_peak) g_peak = g_used;
}

size_t emu_capacity(void) {
    static size_t cap = 0;
    if (!cap) {
        const char *e = getenv("DENSERL_EMU_GPU_GB");
        const double gb = e && *e ? atof(e) : 16.0;
        cap = (size_t)((gb > 0 ? gb : 16.0) * 1073741824.0);
    }
    return cap;
}

cudaError_t emu_fail(cudaError_t e) {
    g_error = e;
    return e;
}

emu_graph *g_capture;  /* the stream capture in progress */
bool g_capture_failed; /* a synchronous call inside it: its end fails */

/* A call that waits for the stream: inside a capture it fails, and so does the capture. */
bool emu_waits_in_capture(void) {
    if (!g_capture) return false;
    g_capture_failed = true;
    return true;
}

/* DENSERL_EMU_TRACE=1: a line on stdout for each call that costs a GPU time outside the
 * stream's work (allocation, release, a wait for the device), so that a test can tell in
 * which part of a run they happen: stdout is the program's own, in the order of its lines. */
void emu_trace(const char *what, size_t bytes) {
    static int on = -1;
    if (on < 0) on = emu_env_on("DENSERL_EMU_TRACE");
    if (on) printf("emu: %s %zu\n", what, bytes);
}

double emu_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
} // namespace

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
    return dev == 0 ? cudaSuccess : emu_fail(cudaErrorInvalidValue);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (dev != 0) return emu_fail(cudaErrorInvalidValue);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulation of an sm_90 GPU");
    p->totalGlobalMem = emu_capacity();
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = emu_max_dyn_smem();
    p->sharedMemPerMultiprocessor = 228 << 10;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->multiProcessorCount = EMU_SMS;
    p->major = 9;
    p->minor = 0;
    p->l2CacheSize = 50 << 20;
    p->memoryBusWidth = 5120;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr attr, int dev) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return g_error;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
        *v = p.maxThreadsPerBlock;
        break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
        *v = (int)p.sharedMemPerBlock;
        break;
    case cudaDevAttrMultiProcessorCount:
        *v = p.multiProcessorCount;
        break;
    case cudaDevAttrComputeCapabilityMajor:
        *v = p.major;
        break;
    case cudaDevAttrComputeCapabilityMinor:
        *v = p.minor;
        break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
        *v = (int)p.sharedMemPerBlockOptin;
        break;
    default:
        return emu_fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    emu_trace("cudaDeviceSynchronize", 0);
    return g_error;
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = g_error != cudaSuccess ? g_error : emu_launch_error();
    g_error = cudaSuccess;
    emu_clear_launch_error();
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    return g_error != cudaSuccess ? g_error : emu_launch_error();
}

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorNotReady:
        return "device not ready";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorIllegalState:
        return "the operation cannot be performed in the present state";
    default:
        return "unknown error";
    }
}

/* DENSERL_EMU_LAZY=1: allocations are untouched mappings (no NaN fill), so that a real model's
 * allocations on a large emulated GPU can be traced and planned on a small host; for runs that
 * stop before the kernels touch most of them. */
static bool emu_lazy(void) {
    static int on = -1;
    if (on < 0) on = emu_env_on("DENSERL_EMU_LAZY");
    return on;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    if (bytes > emu_capacity() - g_used) return emu_fail(cudaErrorMemoryAllocation);
    if (emu_lazy()) {
        void *m = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return emu_fail(cudaErrorMemoryAllocation);
        g_allocs[m] = bytes;
        g_used += bytes;
        emu_peak_track();
        emu_trace("cudaMalloc", bytes);
        *p = m;
        return cudaSuccess;
    }
    /* exactly the bytes asked for, so that AddressSanitizer catches a kernel reading past
     * them (a GPU would let a read within its allocation granularity pass) */
    void *m = NULL;
    if (posix_memalign(&m, 256, bytes ? bytes : 1) != 0) return emu_fail(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes);
    g_allocs[m] = bytes;
    g_used += bytes;
    emu_peak_track();
    emu_trace("cudaMalloc", bytes);
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    if (!p) return cudaSuccess;
    auto it = g_allocs.find(p);
    if (it == g_allocs.end()) return emu_fail(cudaErrorInvalidValue);
    g_used -= it->second;
    emu_trace("cudaFree", it->second);
    if (emu_lazy())
        munmap(p, it->second ? it->second : 1);
    else
        free(p);
    g_allocs.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    *free_b = emu_capacity() - g_used;
    *total_b = emu_capacity();
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    emu_trace("cudaMemcpy", bytes);
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                         size_t height, cudaMemcpyKind) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    if (width > dpitch || width > spitch) return emu_fail(cudaErrorInvalidValue);
    emu_trace("cudaMemcpy2D", width * height);
    for (size_t r = 0; r < height; r++)
        memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t) {
    if (g_capture)
        emu_record([=] { memmove(dst, src, bytes); });
    else if (bytes)
        memmove(dst, src, bytes);
    return cudaSuccess;
}
/* Zeroing under DENSERL_EMU_LAZY drops the whole pages instead of touching them (a private
 * anonymous page reads as zeros again after MADV_DONTNEED). */
static void emu_fill(void *p, int byte, size_t bytes) {
    const uintptr_t page = 4096, a = (uintptr_t)p, b = a + bytes;
    const uintptr_t lo = (a + page - 1) & ~(page - 1), hi = b & ~(page - 1);
    if (!emu_lazy() || byte != 0 || hi <= lo) {
        if (bytes) memset(p, byte, bytes);
        return;
    }
    memset(p, 0, lo - a);
    madvise((void *)lo, hi - lo, MADV_DONTNEED);
    memset((void *)hi, 0, b - hi);
}

cudaError_t cudaMemset(void *p, int byte, size_t bytes) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    emu_trace("cudaMemset", bytes);
    emu_fill(p, byte, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int byte, size_t bytes, cudaStream_t) {
    if (g_capture)
        emu_record([=] { emu_fill(p, byte, bytes); });
    else
        emu_fill(p, byte, bytes);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = new emu_stream();
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    return cudaStreamCreate(s);
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    emu_trace("cudaStreamSynchronize", 0);
    return g_error;
}
cudaError_t cudaStreamQuery(cudaStream_t) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new emu_event();
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
    return cudaEventCreate(e);
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    if (g_capture)
        emu_record([=] { e->t = emu_now_ms(); });
    else
        e->t = emu_now_ms();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
    if (emu_waits_in_capture()) return emu_fail(cudaErrorStreamCaptureUnsupported);
    emu_trace("cudaEventSynchronize", 0);
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(b->t - a->t);
    return cudaSuccess;
}

/* ---- stream capture and graphs ---- */

bool emu_capturing(void) {
    return g_capture != NULL;
}
void emu_record(std::function<void()> work) {
    g_capture->work.push_back(std::move(work));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
    if (g_capture) return emu_fail(cudaErrorIllegalState);
    g_capture = new emu_graph();
    g_capture_failed = false;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *graph) {
    *graph = NULL;
    if (!g_capture) return emu_fail(cudaErrorIllegalState);
    emu_graph *c = g_capture;
    g_capture = NULL;
    if (g_capture_failed) {
        delete c;
        return cudaErrorStreamCaptureInvalidated;
    }
    *graph = c;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus *status) {
    *status = !g_capture         ? cudaStreamCaptureStatusNone
              : g_capture_failed ? cudaStreamCaptureStatusInvalidated
                                 : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    if (!graph) return emu_fail(cudaErrorInvalidValue);
    *exec = new emu_graph(*graph);
    emu_trace("cudaGraphInstantiate", graph->work.size());
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
    if (!exec || g_capture) return emu_fail(cudaErrorInvalidValue);
    for (auto &w : exec->work) w();
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
