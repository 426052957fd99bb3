/* CPU reference for the dense layer: the three matrix products go to OpenBLAS, the bias
 * and its gradient are plain loops. BLAS is never called inside an OpenMP region (the
 * pthread OpenBLAS would start its own threads from every OpenMP thread), and the bias
 * loops stay serial too: they are memory-bound and short, and an OpenMP region right next
 * to a BLAS call leaves its workers spinning on the cores OpenBLAS's threads need. */
#include "linear.h"

#include <cblas.h>
#include <string.h>

void linear_forward_cpu(float *y, const float *x, const float *w, const float *b, int n, int in,
                        int out) {
    if (n <= 0 || out <= 0) return;
    /* With a bias, y starts as b in every row and the product is added with beta = 1. */
    if (b) {
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    } else if (in <= 0) {
        memset(y, 0, (size_t)n * out * sizeof(float));
    }
    if (in <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in,
                b ? 1.0f : 0.0f, y, out);
}

void linear_backward_cpu(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int n, int in, int out) {
    if (n <= 0 || out <= 0) return;
    if (in > 0 && dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in,
                    1.0f, dx, in);
    if (in > 0 && dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f,
                    dw, in);
    if (db) {
        /* Rows in order: deterministic. */
        for (int i = 0; i < n; i++) {
            const float *restrict dyi = dy + (size_t)i * out;
            float *restrict dbr = db;
            for (int j = 0; j < out; j++) dbr[j] += dyi[j];
        }
    }
}
