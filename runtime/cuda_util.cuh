/* Shared by every CUDA source: error checks that name the call and the line, the
 * process-wide cuBLAS handle, and launch-size helpers. All denserl kernels run on the
 * default stream, so host code sees them in order. The build makes that the per-thread
 * default stream (nvcc --default-stream per-thread, CUDA_API_PER_THREAD_DEFAULT_STREAM for
 * C), which, unlike the legacy one, a CUDA graph can capture (runtime/backend_cuda.cu);
 * libraries are handed DR_STREAM, since a 0 they are given means the legacy stream. */
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define DR_STREAM cudaStreamPerThread

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t err_ = (call);                                                                 \
        if (err_ != cudaSuccess) {                                                                 \
            fprintf(stderr, "fatal: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                   \
                    cudaGetErrorString(err_));                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS) {                                                        \
            fprintf(stderr, "fatal: %s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call,     \
                    (int)st_);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* After every launch: a bad configuration fails here, not at some later call. With
 * DENSERL_CUDA_SYNC set in the environment each launch is also waited for, so a fault is
 * reported at the kernel that caused it. */
#define LAUNCH_CHECK()                                                                             \
    do {                                                                                           \
        CUDA_CHECK(cudaGetLastError());                                                            \
        if (dr_cuda_sync_launches()) CUDA_CHECK(cudaDeviceSynchronize());                          \
    } while (0)

extern "C" {
cublasHandle_t dr_cublas(void);
/* Moves dr_cublas() to stream s (DR_STREAM is its own), with denserl's workspace. */
void dr_cublas_stream(cudaStream_t s);
int dr_cuda_sync_launches(void);
/* Device scratch of at least bytes, owned by the runtime and reused across calls (one
 * buffer per slot; a kernel file uses its own slot number from the list below). */
void *dr_cuda_scratch(int slot, size_t bytes);
/* Multiprocessors of the current device, asked once. */
int dr_cuda_sm_count(void);
/* The most dynamic shared memory one block may opt into on the current device, in bytes. */
int dr_cuda_smem_optin(void);
}
enum {
    SCRATCH_REDUCE = 0,
    SCRATCH_LOGPROB = 1,
    SCRATCH_SAMPLE = 2,
    SCRATCH_RL = 3,
    SCRATCH_LT = 4,
    SCRATCH_ATTN = 6,
    SCRATCH_N = 8
};

static inline unsigned dr_blocks(long n, int threads) {
    long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535L * 32) b = 65535L * 32;
    return (unsigned)b;
}
