/* The CPU side of the benchmark floors; the CUDA side is bench_floor_cuda.cu. */
#include <cblas.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <stdio.h>
#include "bench_floor.h"
#include "check.h"
#include "log.h"

#ifdef DENSERL_CUDA
/* bench_floor_cuda.cu */
double bench_gemm_tflops_cuda(int bf16, int n, int reps);
double bench_memory_used_cuda(double *total);
#endif

/* Best of reps timed n^3 sgemm calls after one untimed call. */
static double sgemm_tflops_cpu(int n, int reps) {
    size_t nn = (size_t)n * n;
    float *a = xalloc_aligned(sizeof(float) * nn), *b = xalloc_aligned(sizeof(float) * nn);
    float *c = xalloc_aligned(sizeof(float) * nn);
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
        b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    }
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double dt = time_now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e12;
}

double bench_matrix_rate(Backend be, int bf16, char *what, int what_len) {
#ifdef DENSERL_CUDA
    if (be == BACKEND_CUDA) {
        int n = 8192;
        if (what)
            snprintf(what, what_len, "cuBLAS %s %dx%dx%d",
                     bf16 ? "bf16 GemmEx (fp32 accum)" : "sgemm", n, n, n);
        return bench_gemm_tflops_cuda(bf16, n, bf16 ? 20 : 5);
    }
#endif
    (void)bf16;
    CHECK(be == BACKEND_CPU);
    int n = 1536;
    if (what) snprintf(what, what_len, "cblas_sgemm %dx%dx%d", n, n, n);
    return sgemm_tflops_cpu(n, 3);
}

double bench_memory_used(Backend be, double *total) {
#ifdef DENSERL_CUDA
    if (be == BACKEND_CUDA) return bench_memory_used_cuda(total);
#endif
    CHECK(be == BACKEND_CPU);
    if (total) *total = 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss * 1024.0; /* Linux reports KiB */
}
