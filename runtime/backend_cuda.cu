/* CUDA device discovery, device memory, the cuBLAS handle and runtime-owned scratch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_util.cuh"

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

static int g_capturing; /* between cuda_graph_begin and cuda_graph_end */

extern "C" int dr_cuda_sync_launches(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("DENSERL_CUDA_SYNC");
        v = e && *e && strcmp(e, "0") != 0;
    }
    return v && !g_capturing; /* a wait inside a capture would end it */
}

static cublasHandle_t g_cublas;

/* cuBLAS's workspace: denserl's own (32 MiB, cuBLAS's advice for Hopper), so that cuBLAS
 * allocates nothing of its own inside a CUDA graph capture. */
enum { DR_CUBLAS_WORKSPACE = 32 << 20 };

extern "C" void dr_cublas_stream(cudaStream_t s) {
    static void *ws = NULL;
    if (!g_cublas) dr_cublas(); /* which comes back here for DR_STREAM */
    if (!ws) CUDA_CHECK(cudaMalloc(&ws, DR_CUBLAS_WORKSPACE));
    CUBLAS_CHECK(cublasSetStream(g_cublas, s));
    /* setting the stream gives the handle back its default workspace */
    CUBLAS_CHECK(cublasSetWorkspace(g_cublas, ws, DR_CUBLAS_WORKSPACE));
}

extern "C" cublasHandle_t dr_cublas(void) {
    if (!g_cublas) {
        CUBLAS_CHECK(cublasCreate(&g_cublas));
        dr_cublas_stream(DR_STREAM);
        /* fp32 products stay fp32 (no TF32) so the fp32 path matches the CPU reference */
        CUBLAS_CHECK(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
    }
    return g_cublas;
}

/* cudaMalloc, with running out of device memory reported as what it is, a run too large
 * for this GPU, in one line and exit status 2 (no abort and core dump): the other CUDA
 * errors stay fatal. */
static void *dr_cuda_malloc(size_t bytes) {
    void *p = NULL;
    const cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err == cudaErrorMemoryAllocation) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError(); /* clear it, so that the query below answers */
        cudaMemGetInfo(&free_b, &total_b);
        fflush(stdout);
        fprintf(stderr,
                "error: out of GPU memory: %.2f GB more were needed with %.2f of %.2f GB free; "
                "lower rl.micro_batch_rows or the batch, or spread the run over more GPUs "
                "(zero_stage 1)\n",
                bytes / 1e9, free_b / 1e9, total_b / 1e9);
        exit(2);
    }
    CUDA_CHECK(err);
    return p;
}

extern "C" void *dr_cuda_scratch(int slot, size_t bytes) {
    static void *buf[SCRATCH_N];
    static size_t cap[SCRATCH_N];
    if (slot < 0 || slot >= SCRATCH_N) abort();
    if (bytes > cap[slot]) {
        if (buf[slot]) CUDA_CHECK(cudaFree(buf[slot]));
        buf[slot] = dr_cuda_malloc(bytes);
        cap[slot] = bytes;
    }
    return buf[slot];
}

/* An attribute of the current device, asked once per call site's cache (fallback where the
 * device answers 0). */
static int cuda_attr(int *cache, cudaDeviceAttr attr, int fallback) {
    if (!*cache) {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, attr, dev));
        *cache = v > 0 ? v : fallback;
    }
    return *cache;
}

extern "C" int dr_cuda_sm_count(void) {
    static int sms = 0;
    return cuda_attr(&sms, cudaDevAttrMultiProcessorCount, 1);
}

extern "C" int dr_cuda_smem_optin(void) {
    static int bytes = 0;
    return cuda_attr(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 << 10);
}

extern "C" void *cuda_alloc(size_t bytes) {
    void *p = dr_cuda_malloc(bytes);
    CUDA_CHECK(cudaMemset(p, 0, bytes ? bytes : 1));
    return p;
}

extern "C" void cuda_free(void *p) {
    CUDA_CHECK(cudaFree(p));
}

extern "C" void cuda_memset0(void *p, size_t bytes) {
    CUDA_CHECK(cudaMemset(p, 0, bytes));
}

extern "C" void cuda_memset_byte(void *p, int byte, size_t bytes) {
    CUDA_CHECK(cudaMemset(p, byte, bytes));
}

extern "C" void cuda_copy(void *dst, const void *src, size_t bytes, int kind) {
    static const cudaMemcpyKind kinds[3] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                            cudaMemcpyDeviceToDevice};
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, kinds[kind]));
}

extern "C" void cuda_copy_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                             size_t height) {
    if (width && height)
        CUDA_CHECK(cudaMemcpy2D(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice));
}

extern "C" void cuda_synchronize(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
}

extern "C" void cuda_memory(double *free_b, double *total_b) {
    size_t f = 0, t = 0;
    CUDA_CHECK(cudaMemGetInfo(&f, &t));
    *free_b = (double)f;
    *total_b = (double)t;
}

extern "C" void cuda_device_name(char *buf, int n) {
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    snprintf(buf, (size_t)n, "%s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor,
             p.multiProcessorCount, p.totalGlobalMem / 1073741824.0);
}

/* ---- CUDA graphs: a sequence of launches recorded once and replayed as one launch ---- */

static int g_graphs_off; /* DENSERL_CUDA_GRAPHS=0, or a capture failed */

static void graph_fail(const char *what, cudaError_t err) {
    cudaGetLastError(); /* clear it: the work goes on without graphs */
    fprintf(stderr, "note: CUDA graphs off for this run: %s: %s\n", what, cudaGetErrorString(err));
    g_graphs_off = 1;
}

extern "C" int cuda_graphs_enabled(void) {
    static int env = -1;
    if (env < 0) {
        const char *e = getenv("DENSERL_CUDA_GRAPHS");
        env = !(e && !strcmp(e, "0"));
    }
    return env && !g_graphs_off;
}

/* Starts recording the default stream's launches instead of running them; 0 (and nothing
 * recorded) where graphs are off. Relaxed mode: the runtime's scratch may still be
 * allocated inside (it is not, after one run of the same sequence outside a capture). */
extern "C" int cuda_graph_begin(void) {
    if (!cuda_graphs_enabled()) return 0;
    const cudaError_t err = cudaStreamBeginCapture(DR_STREAM, cudaStreamCaptureModeRelaxed);
    if (err != cudaSuccess) {
        graph_fail("cudaStreamBeginCapture", err);
        return 0;
    }
    g_capturing = 1;
    return 1;
}

/* Ends the recording: the instantiated graph, or NULL if the capture failed, in which case
 * nothing of it has run and the caller runs the same work directly. */
extern "C" void *cuda_graph_end(void) {
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    g_capturing = 0;
    cudaError_t err = cudaStreamEndCapture(DR_STREAM, &graph);
    const char *what = "cudaStreamEndCapture";
    if (err == cudaSuccess) {
        err = cudaGraphInstantiate(&exec, graph, 0);
        what = "cudaGraphInstantiate";
        cudaGraphDestroy(graph);
    }
    if (err != cudaSuccess) {
        graph_fail(what, err);
        return NULL;
    }
    return exec;
}

extern "C" void cuda_graph_launch(void *exec) {
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)exec, DR_STREAM));
}

extern "C" void cuda_graph_free(void *exec) {
    if (exec) CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)exec));
}
