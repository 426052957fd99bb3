/* CPU fused lm_head -> log-softmax -> gather. Rows are taken a chunk at a time, skipping
 * rows whose target is < 0 (prompt tokens in RL) before the matrix product, so a chunk
 * holds `chunk` rows that need a log-prob and the scratch never holds more than chunk x V
 * logits. BLAS runs outside OpenMP regions (OpenBLAS brings its own threads); the per-row
 * softmax work between the products is what OpenMP splits. */
#include "logprob.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <cblas.h>

/* Row indices of one chunk live on the stack; a caller's larger chunk is only split more
 * finely, which changes neither the memory bound nor the result. */
enum { LOGPROB_MAX_ROWS = 1024 };

/* Fills rows (cap) with the next rows at or after *next whose target is >= 0 and moves
 * *next past the last one taken. Returns how many were taken. */
static int logprob_gather(int *rows, const int *targets, int n, int *next, int cap) {
    int c = 0, i = *next;
    for (; i < n && c < cap; i++)
        if (targets[i] >= 0) rows[c++] = i;
    *next = i;
    return c;
}

/* z (c, V) = h[rows] (c, d) @ w^T (V, d): one product per run of consecutive rows, which
 * in packed RL batches is one per response. */
static void logprob_logits(float *z, const float *h, const float *w, const int *rows, int c, int d,
                           int V) {
    for (int j = 0; j < c;) {
        int k = j + 1;
        while (k < c && rows[k] == rows[k - 1] + 1) k++;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, k - j, V, d, 1.0f,
                    h + (size_t)rows[j] * d, d, w, d, 0.0f, z + (size_t)j * V, V);
        j = k;
    }
}

void logprob_forward_cpu(float *logp, float *entropy, float *lse, const float *h, const float *w,
                         const int *targets, int n, int d, int V, int chunk, float *scratch) {
    assert(chunk > 0 && V > 0);
    for (int i = 0; i < n; i++) {
        if (targets[i] >= 0) continue;
        logp[i] = 0.0f;
        lse[i] = 0.0f;
        if (entropy) entropy[i] = 0.0f;
    }
    int rows[LOGPROB_MAX_ROWS];
    int cap = chunk < LOGPROB_MAX_ROWS ? chunk : LOGPROB_MAX_ROWS;
    for (int next = 0;;) {
        int c = logprob_gather(rows, targets, n, &next, cap);
        if (c == 0) break;
        logprob_logits(scratch, h, w, rows, c, d, V);
#pragma omp parallel for schedule(static)
        for (int j = 0; j < c; j++) {
            const float *z = scratch + (size_t)j * V;
            int r = rows[j], t = targets[r];
            assert(t < V);
            float mx = z[0];
            for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            /* Sums in double: a float sum over V ~ 1e5 terms drifts towards the 1e-5 relative
             * budget. With u = z - max, H = log s - sum(e u) / s avoids the cancellation
             * that lse - sum(p z) suffers when the logits are large. */
            double s = 0.0, su = 0.0;
            for (int v = 0; v < V; v++) {
                float u = z[v] - mx;
                float e = expf(u);
                s += e;
                su += (double)e * u;
            }
            double log_s = log(s);
            lse[r] = (float)(mx + log_s);
            logp[r] = (float)((double)(z[t] - mx) - log_s);
            if (entropy) entropy[r] = (float)(log_s - su / s);
        }
    }
}

void logprob_backward_cpu(float *dh, float *dw, const float *dlogp, const float *dentropy,
                          const float *h, const float *w, const int *targets, const float *lse,
                          int n, int d, int V, int chunk, float *scratch) {
    assert(chunk > 0 && V > 0);
    if (!dh && !dw) return;
    int rows[LOGPROB_MAX_ROWS];
    int cap = chunk < LOGPROB_MAX_ROWS ? chunk : LOGPROB_MAX_ROWS;
    for (int next = 0;;) {
        int c = logprob_gather(rows, targets, n, &next, cap);
        if (c == 0) break;
        logprob_logits(scratch, h, w, rows, c, d, V);
        /* dz = dlogp (onehot - p) - dentropy p (log p + H), written over the logits. */
#pragma omp parallel for schedule(static)
        for (int j = 0; j < c; j++) {
            float *z = scratch + (size_t)j * V;
            int r = rows[j], t = targets[r];
            assert(t < V);
            float l = lse[r], dl = dlogp[r], de = dentropy ? dentropy[r] : 0.0f;
            float H = 0.0f;
            if (de != 0.0f) {
                double acc = 0.0;
                for (int v = 0; v < V; v++) {
                    float lp = z[v] - l;
                    acc -= (double)expf(lp) * lp;
                }
                H = (float)acc;
            }
            for (int v = 0; v < V; v++) {
                float lp = z[v] - l;
                float p = expf(lp);
                z[v] = -dl * p - de * p * (lp + H);
            }
            z[t] += dl;
        }
        for (int j = 0; j < c;) {
            int k = j + 1;
            while (k < c && rows[k] == rows[k - 1] + 1) k++;
            const float *dz = scratch + (size_t)j * V;
            const float *hr = h + (size_t)rows[j] * d;
            if (dh)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k - j, d, V, 1.0f, dz, V, w,
                            d, 1.0f, dh + (size_t)rows[j] * d, d);
            if (dw)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, d, k - j, 1.0f, dz, V, hr,
                            d, 1.0f, dw, d);
            j = k;
        }
    }
}
