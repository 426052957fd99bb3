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

extern "C" int dr_cuda_sync_launches(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("DENSERL_CUDA_SYNC");
        v = e && *e && strcmp(e, "0") != 0;
    }
    return v;
}

extern "C" cublasHandle_t dr_cublas(void) {
    static cublasHandle_t h = NULL;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        /* fp32 products stay fp32 (no TF32) so the fp32 path matches the CPU reference */
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    }
    return h;
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

extern "C" int dr_cuda_sm_count(void) {
    static int sms = 0;
    if (!sms) {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
        sms = v > 0 ? v : 1;
    }
    return sms;
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

extern "C" void cuda_synchronize(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
}

extern "C" void cuda_device_name(char *buf, int n) {
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    snprintf(buf, (size_t)n, "%s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor,
             p.multiProcessorCount, p.totalGlobalMem / 1073741824.0);
}
