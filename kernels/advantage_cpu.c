/* CPU advantage estimators (PRIME.md section 5): RLOO and GRPO baselines within groups of K
 * rows, combined rewards, discounted returns, masked moments and whitening, and GAE. Groups
 * and rows are independent and split by OpenMP; group statistics are taken in double within
 * one group, and the batch moments are combined per row in row order, so every result is
 * the same whatever the thread count. */
#include "advantage.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

enum { ADV_ROW_GROUP = 256 };

int adv_last_valid(const float *mask, int i, int T) {
    const float *m = mask + (size_t)i * T;
    for (int t = T - 1; t >= 0; t--)
        if (m[t] > 0) return t;
    return -1;
}

void rloo_outcome_cpu(float *out, const float *o, int N, int K) {
    assert(K >= 2 && N % K == 0);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < N / K; g++) {
        double sum = 0.0;
        for (int j = 0; j < K; j++) sum += o[g * K + j];
        for (int j = 0; j < K; j++) {
            double oi = o[g * K + j];
            out[g * K + j] = (float)(oi - (sum - oi) / (K - 1));
        }
    }
}

/* Mean of r over row i's valid tokens, 0 for a row with none. */
static double adv_row_mean(const float *r, const float *mask, int i, int T) {
    const float *ri = r + (size_t)i * T, *m = mask + (size_t)i * T;
    double s = 0.0, n = 0.0;
    for (int t = 0; t < T; t++)
        if (m[t] > 0) {
            s += ri[t];
            n += 1.0;
        }
    return n > 0 ? s / n : 0.0;
}

void rloo_process_cpu(float *out, const float *r, const float *mask, int N, int T, int K,
                      int paper) {
    assert(K >= 2 && N % K == 0);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < N / K; g++) {
        double mu_sum = 0.0;
        for (int j = 0; j < K; j++) mu_sum += adv_row_mean(r, mask, g * K + j, T);
        for (int j = 0; j < K; j++) {
            int i = g * K + j;
            /* prime: r K/(K-1) - sum mu/(K-1); paper: r - (sum mu - mu_i)/(K-1). */
            double scale = paper ? 1.0 : (double)K / (K - 1);
            double base =
                paper ? (mu_sum - adv_row_mean(r, mask, i, T)) / (K - 1) : mu_sum / (K - 1);
            size_t o = (size_t)i * T;
            for (int t = 0; t < T; t++)
                out[o + t] = mask[o + t] > 0 ? (float)(r[o + t] * scale - base) : 0.0f;
        }
    }
}

void grpo_outcome_cpu(float *out, const float *o, int N, int K, float eps) {
    assert(K >= 1 && N % K == 0);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < N / K; g++) {
        const float *x = o + (size_t)g * K;
        double mean = 0.0, ss = 0.0;
        for (int j = 0; j < K; j++) mean += x[j];
        mean /= K;
        for (int j = 0; j < K; j++) ss += (x[j] - mean) * (x[j] - mean);
        double sd = K > 1 ? sqrt(ss / (K - 1)) : 0.0;
        for (int j = 0; j < K; j++) out[g * K + j] = (float)((x[j] - mean) / (sd + eps));
    }
}

void grpo_process_cpu(float *out, const float *r, const float *mask, int N, int T, int K,
                      float eps) {
    assert(K >= 1 && N % K == 0);
#pragma omp parallel for schedule(static)
    for (int g = 0; g < N / K; g++) {
        /* The group's rows are contiguous in memory, so the group is one (K T) span. */
        size_t o = (size_t)g * K * T, n = (size_t)K * T;
        const float *x = r + o, *m = mask + o;
        double mean = 0.0, ss = 0.0, cnt = 0.0;
        for (size_t k = 0; k < n; k++)
            if (m[k] > 0) {
                mean += x[k];
                cnt += 1.0;
            }
        mean = cnt > 0 ? mean / cnt : 0.0;
        for (size_t k = 0; k < n; k++)
            if (m[k] > 0) ss += (x[k] - mean) * (x[k] - mean);
        double sd = cnt > 1 ? sqrt(ss / (cnt - 1)) : 0.0;
        for (size_t k = 0; k < n; k++)
            out[o + k] = m[k] > 0 ? (float)((x[k] - mean) / (sd + eps)) : 0.0f;
    }
}

void combine_rewards_cpu(float *c, const float *proc, const float *out, const float *mask, int N,
                         int T, float w_proc, float w_out) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        size_t o = (size_t)i * T;
        int last = adv_last_valid(mask, i, T);
        for (int t = 0; t < T; t++) {
            float v = 0.0f;
            if (mask[o + t] > 0) {
                if (proc) v = w_proc * proc[o + t];
                if (out && t == last) v += w_out * out[i];
            }
            c[o + t] = v;
        }
    }
}

void discounted_returns_cpu(float *G, const float *c, const float *mask, int N, int T,
                            float gamma) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        size_t o = (size_t)i * T;
        /* Masked positions add nothing but still count in the exponent s - t. */
        double g = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            int valid = mask[o + t] > 0;
            g = gamma * g + (valid ? c[o + t] : 0.0);
            G[o + t] = valid ? (float)g : 0.0f;
        }
    }
}

void masked_moments_cpu(double *sum, double *sumsq, double *count, const float *x,
                        const float *mask, int N, int T) {
    double ps[ADV_ROW_GROUP], pq[ADV_ROW_GROUP], pn[ADV_ROW_GROUP];
    for (int i0 = 0; i0 < N; i0 += ADV_ROW_GROUP) {
        int nr = N - i0 < ADV_ROW_GROUP ? N - i0 : ADV_ROW_GROUP;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < nr; j++) {
            size_t o = (size_t)(i0 + j) * T;
            double s = 0.0, q = 0.0, n = 0.0;
            for (int t = 0; t < T; t++)
                if (mask[o + t] > 0) {
                    double v = x[o + t];
                    s += v;
                    q += v * v;
                    n += 1.0;
                }
            ps[j] = s;
            pq[j] = q;
            pn[j] = n;
        }
        for (int j = 0; j < nr; j++) {
            *sum += ps[j];
            *sumsq += pq[j];
            *count += pn[j];
        }
    }
}

void whiten_cpu(float *out, const float *x, const float *mask, int N, int T, double sum,
                double sumsq, double count) {
    double mean = count > 0 ? sum / count : 0.0;
    /* Rounding can leave a tiny negative variance for constant x; a single token has none. */
    double var = count > 1 ? (sumsq - sum * mean) / (count - 1) : 0.0;
    if (var < 0) var = 0.0;
    double inv = 1.0 / sqrt(var + 1e-8);
    size_t n = (size_t)N * T;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < n; k++) out[k] = mask[k] > 0 ? (float)((x[k] - mean) * inv) : 0.0f;
}

void gae_cpu(float *A, float *R, const float *c, const float *V, const float *mask, int N, int T,
             float gamma, float lam) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        size_t o = (size_t)i * T;
        double v_next = 0.0, gae_next = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            if (!(mask[o + t] > 0)) {
                A[o + t] = R[o + t] = 0.0f;
                continue;
            }
            double v = V[o + t];
            double gae = c[o + t] + gamma * v_next - v + (double)gamma * lam * gae_next;
            A[o + t] = (float)gae;
            R[o + t] = (float)(gae + v);
            v_next = v;
            gae_next = gae;
        }
    }
}
