/* CPU reference for RMSNorm (Llama/Qwen2): forward saves the per-row 1/rms, backward
 * accumulates dx per row and dw over rows in a fixed order. */
#include "rmsnorm.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>

#define RMSNORM_PAR_MIN 16384L

void rmsnorm_forward_cpu(float *y, float *rstd, const float *x, const float *w, int n, int d,
                         float eps) {
#pragma omp parallel for schedule(static) if ((long)n * d > RMSNORM_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *restrict xi = x + (size_t)i * d;
        float *restrict yi = y + (size_t)i * d;
        /* The mean of squares is summed in double: it is one pass over d and keeps the norm
         * within a few float ulps of the exact value whatever d is. */
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        const float r = (float)(1.0 / sqrt(ss / d + (double)eps));
        rstd[i] = r;
        /* Same rounding order as Hugging Face: normalise first, then scale by the weight. */
        for (int j = 0; j < d; j++) yi[j] = w[j] * (xi[j] * r);
    }
}

void rmsnorm_backward_cpu(float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const float *rstd, int n, int d) {
#pragma omp parallel if ((long)n * d > RMSNORM_PAR_MIN)
    {
        /* dx_j = r w_j dy_j - x_j r^3 / d * sum_k w_k dy_k x_k, one row at a time. */
#pragma omp for schedule(static) nowait
        for (int i = 0; i < n; i++) {
            const float *restrict xi = x + (size_t)i * d;
            const float *restrict dyi = dy + (size_t)i * d;
            float *restrict dxi = dx + (size_t)i * d;
            const float r = rstd[i];
            double c = 0.0;
#pragma omp simd reduction(+ : c)
            for (int j = 0; j < d; j++) c += (double)(w[j] * dyi[j]) * xi[j];
            const float k = (float)(c * r * r * r / d);
            for (int j = 0; j < d; j++) dxi[j] += r * w[j] * dyi[j] - k * xi[j];
        }
        /* dw sums over rows: each thread owns a column slice and adds rows in order, so the
         * result does not depend on the thread count. */
        const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
        const int nblk = (d + 15) / 16;
        int j0 = 16 * (int)((long)nblk * tid / nt), j1 = 16 * (int)((long)nblk * (tid + 1) / nt);
        if (j1 > d) j1 = d;
        for (int i = 0; i < n; i++) {
            const float *restrict xi = x + (size_t)i * d;
            const float *restrict dyi = dy + (size_t)i * d;
            const float r = rstd[i];
            for (int j = j0; j < j1; j++) dw[j] += dyi[j] * (xi[j] * r);
        }
    }
}
