/* Checks the advantage kernels (PRIME.md section 5): RLOO outcome and process (prime and paper
 * variants) on hand-computed groups of K = 2 and 4 with ragged masks, GRPO against a plain
 * float64 reimplementation, combined rewards, discounted returns, masked moments and
 * whitening, and GAE against the section 5 recurrence written as a plain float64 loop on
 * random masks with gaps. */
#include "kernels/advantage.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

/* Random ragged mask: each row a contiguous run at a random place (some rows empty), or,
 * with gaps, each position of a random span valid with probability 0.7. */
static void random_mask(float *m, int N, int T, int gaps) {
    for (int i = 0; i < N; i++) {
        int lo = (int)(rng_u01() * T / 3), hi = lo + (int)(rng_u01() * (T - lo + 1));
        if (rng_u01() < 0.1) hi = lo; /* an empty row now and then */
        for (int t = 0; t < T; t++) m[i * T + t] = t >= lo && t < hi && (!gaps || rng_u01() < 0.7);
    }
}

/* ---- RLOO ---- */

static void test_rloo_outcome(void) {
    const float o2[4] = {1.0f, 0.0f, 0.5f, 0.25f};
    const double e2[4] = {1.0, -1.0, 0.25, -0.25};
    float out[8];
    rloo_outcome_cpu(out, o2, 4, 2);
    check(max_abs_diff(out, e2, 4) <= 1e-7, "rloo outcome K = 2 (hand case)");
    /* Group sums 2 and 2.5: o_i - (sum - o_i)/3. */
    const float o4[8] = {1, 0, 0, 1, 1, 1, 0, 0.5f};
    const double e4[8] = {2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3, 0.5, 0.5, -2.5 / 3, 0.5 - 2.0 / 3};
    rloo_outcome_cpu(out, o4, 8, 4);
    check(max_abs_diff(out, e4, 8) <= 1e-7, "rloo outcome K = 4 (hand case)");
}

static void test_rloo_process(void) {
    /* One group of K = 4, T = 5; 99 marks masked junk that must be neither read nor kept.
     * mu = 2 (row 0), 1 (row 1), 0 (row 2, no valid token), 1 (row 3); sum mu = 4. */
    enum { K = 4, T = 5 };
    const float r[K * T] = {99,      1,  2,  3, 99, /**/ 0, 0, 0, 0, 5, /**/ 99, 99, 99, 99, 99,
                            /**/ 99, 99, -1, 3, 99};
    const float m[K * T] = {0,      1, 1, 1, 0, /**/ 1, 1, 1, 1, 1, /**/ 0, 0, 0, 0, 0,
                            /**/ 0, 0, 1, 1, 0};
    /* prime: r 4/3 - 4/3 on valid tokens. */
    const double ep[K * T] = {
        0,      0, 4.0 / 3, 8.0 / 3, 0, /**/ -4.0 / 3, -4.0 / 3, -4.0 / 3, -4.0 / 3, 16.0 / 3,
        /**/ 0, 0, 0,       0,       0, /**/ 0,        0,        -8.0 / 3, 8.0 / 3,  0};
    /* paper: r - (4 - mu_i)/3, i.e. r - 2/3, r - 1, (none), r - 1. */
    const double ea[K * T] = {0,      1.0 / 3, 4.0 / 3, 7.0 / 3, 0, /**/ -1, -1, -1, -1, 4,
                              /**/ 0, 0,       0,       0,       0, /**/ 0,  0,  -2, 2,  0};
    float out[K * T];
    memset(out, 0x7f, sizeof out);
    rloo_process_cpu(out, r, m, K, T, K, 0);
    check(max_abs_diff(out, ep, K * T) <= 1e-6, "rloo process prime, K = 4 ragged (hand case)");
    memset(out, 0x7f, sizeof out);
    rloo_process_cpu(out, r, m, K, T, K, 1);
    check(max_abs_diff(out, ea, K * T) <= 1e-6, "rloo process paper, K = 4 ragged (hand case)");

    /* Two groups of K = 2, T = 4. Group 0: mu = 1.5, 4 -> prime 2r - 5.5, paper r - 4 and
     * r - 1.5. Group 1: row 3 empty, mu = 2, 0 -> prime 2r - 2, paper r - 0. */
    const float r2[16] = {1, 2, 99, 99, /**/ 99, 4, 4, 4, /**/ 3, 1, 2, 99, /**/ 99, 99, 99, 99};
    const float m2[16] = {1, 1, 0, 0, /**/ 0, 1, 1, 1, /**/ 1, 1, 1, 0, /**/ 0, 0, 0, 0};
    const double ep2[16] = {-3.5,   -1.5, 0, 0, /**/ 0, 2.5, 2.5, 2.5, /**/ 4, 0, 2, 0,
                            /**/ 0, 0,    0, 0};
    const double ea2[16] = {-3, -2, 0, 0, /**/ 0, 2.5, 2.5, 2.5, /**/ 3, 1, 2, 0, /**/ 0, 0, 0, 0};
    float o2[16];
    rloo_process_cpu(o2, r2, m2, 4, 4, 2, 0);
    check(max_abs_diff(o2, ep2, 16) <= 1e-6, "rloo process prime, K = 2 (hand case)");
    rloo_process_cpu(o2, r2, m2, 4, 4, 2, 1);
    check(max_abs_diff(o2, ea2, 16) <= 1e-6, "rloo process paper, K = 2 (hand case)");
}

/* ---- GRPO ---- */

static void test_grpo(void) {
    enum { N = 12, T = 23, K = 4 };
    const float eps = 1e-6f;
    float o[N], out[N], r[N * T], m[N * T], pout[N * T];
    double want[N * T];
    for (int i = 0; i < N; i++) o[i] = rng_u01() < 0.5 ? 1.0f : (float)rng_u01();
    o[4] = o[5] = o[6] = o[7] = 1.0f; /* a constant group: std 0, all zero */
    grpo_outcome_cpu(out, o, N, K, eps);
    for (int g = 0; g < N / K; g++) {
        double mean = 0, ss = 0;
        for (int j = 0; j < K; j++) mean += o[g * K + j] / (double)K;
        for (int j = 0; j < K; j++) ss += pow(o[g * K + j] - mean, 2);
        double sd = sqrt(ss / (K - 1));
        for (int j = 0; j < K; j++) want[g * K + j] = (o[g * K + j] - mean) / (sd + eps);
    }
    check(max_abs_diff(out, want, N) <= 1e-5, "grpo outcome equals a double reimplementation");
    /* K = 1: no spread, so every output is 0 / eps = 0. */
    grpo_outcome_cpu(out, o, N, 1, eps);
    double zero[N] = {0};
    check(max_abs_diff(out, zero, N) == 0, "grpo outcome with K = 1 is 0");

    random_mask(m, N, T, 0);
    for (int k = 0; k < T; k++) m[k] = 0; /* row 0 empty */
    for (int k = 0; k < N * T; k++) r[k] = m[k] > 0 ? rng_sym(0.3) : 1e6f;
    grpo_process_cpu(pout, r, m, N, T, K, eps);
    for (int g = 0; g < N / K; g++) {
        double s = 0, n = 0, ss = 0;
        for (int k = g * K * T; k < (g + 1) * K * T; k++)
            if (m[k] > 0) s += r[k], n += 1;
        double mean = n > 0 ? s / n : 0;
        for (int k = g * K * T; k < (g + 1) * K * T; k++)
            if (m[k] > 0) ss += pow(r[k] - mean, 2);
        double sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
        for (int k = g * K * T; k < (g + 1) * K * T; k++)
            want[k] = m[k] > 0 ? (r[k] - mean) / (sd + eps) : 0;
    }
    check(max_abs_diff(pout, want, N * T) <= 1e-5,
          "grpo process equals a double reimplementation (ragged, empty row)");
}

/* ---- combined rewards and returns ---- */

static void test_combine_returns(void) {
    enum { N = 2, T = 5 };
    const float m[N * T] = {0, 1, 1, 1, 0, /**/ 1, 1, 0, 0, 0};
    const float proc[N * T] = {9, 1, 2, 3, 9, /**/ -1, 0.5f, 9, 9, 9};
    const float out[N] = {0.5f, -2.0f};
    float c[N * T], G[N * T];
    /* c = 2 proc + 3 out_i at the last valid token. */
    const double ec[N * T] = {0, 2, 4, 6 + 1.5, 0, /**/ -2, 1 - 6, 0, 0, 0};
    combine_rewards_cpu(c, proc, out, m, N, T, 2.0f, 3.0f);
    check(max_abs_diff(c, ec, N * T) <= 1e-6, "combine rewards (hand case)");
    const double eo[N * T] = {0, 0, 0, 1.5, 0, /**/ 0, -6, 0, 0, 0};
    combine_rewards_cpu(c, NULL, out, m, N, T, 1.0f, 3.0f);
    check(max_abs_diff(c, eo, N * T) <= 1e-6, "combine rewards with proc = NULL (outcome only)");

    /* c row 0 = (., 1, 2, 3, .): gamma 1 -> 6, 5, 3; gamma 0.9 -> 3, 2 + 2.7 = 4.7,
     * 1 + 0.9 4.7 = 5.23. Row 1 = (-1, 0.5): gamma 1 -> -0.5, 0.5; 0.9 -> -0.55, 0.5. */
    const float c2[N * T] = {7, 1, 2, 3, 7, /**/ -1, 0.5f, 7, 7, 7};
    const double g1[N * T] = {0, 6, 5, 3, 0, /**/ -0.5, 0.5, 0, 0, 0};
    const double g9[N * T] = {0, 5.23, 4.7, 3, 0, /**/ -0.55, 0.5, 0, 0, 0};
    discounted_returns_cpu(G, c2, m, N, T, 1.0f);
    check(max_abs_diff(G, g1, N * T) <= 1e-6, "returns, gamma = 1 (hand case)");
    discounted_returns_cpu(G, c2, m, N, T, 0.9f);
    check(max_abs_diff(G, g9, N * T) <= 1e-6, "returns, gamma = 0.9 (hand case)");

    /* A gap still counts in the exponent s - t: mask (1, 0, 1), c = (1, ., 2), gamma 0.5
     * gives G_0 = 1 + 0.25 2 = 1.5. */
    const float gm[3] = {1, 0, 1}, gc[3] = {1, 9, 2};
    const double ge[3] = {1.5, 0, 2};
    discounted_returns_cpu(G, gc, gm, 1, 3, 0.5f);
    check(max_abs_diff(G, ge, 3) <= 1e-7, "returns over a gap discount by position (hand case)");

    /* Random ragged rows, with gaps, against the definition
     * sum_{s >= t, valid} gamma^(s - t) c_s. */
    enum { N3 = 9, T3 = 31 };
    float m3[N3 * T3], c3[N3 * T3], G3[N3 * T3];
    double w3[N3 * T3];
    random_mask(m3, N3, T3, 1);
    for (int k = 0; k < N3 * T3; k++) c3[k] = rng_sym(1.0);
    const float gam[2] = {1.0f, 0.95f};
    for (int q = 0; q < 2; q++) {
        for (int i = 0; i < N3; i++)
            for (int t = 0; t < T3; t++) {
                double s = 0;
                for (int u = t; u < T3; u++)
                    if (m3[i * T3 + u] > 0) s += pow(gam[q], u - t) * c3[i * T3 + u];
                w3[i * T3 + t] = m3[i * T3 + t] > 0 ? s : 0;
            }
        discounted_returns_cpu(G3, c3, m3, N3, T3, gam[q]);
        check(max_abs_diff(G3, w3, N3 * T3) <= 1e-5,
              q ? "returns, gamma = 0.95, random ragged" : "returns, gamma = 1, random ragged");
    }
}

/* ---- moments and whitening ---- */

static void test_whiten(void) {
    enum { N = 37, T = 41 };
    float *x = malloc(sizeof(float) * N * T), *m = malloc(sizeof(float) * N * T);
    float *w = malloc(sizeof(float) * N * T);
    random_mask(m, N, T, 1);
    for (int k = 0; k < N * T; k++) x[k] = 3.0f + rng_sym(2.0) * (m[k] > 0 ? 1.0f : 1000.0f);
    double s = 0, q = 0, n = 0, rs = 0, rq = 0, rn = 0;
    /* Moments accumulate: two halves equal one call over the batch. */
    masked_moments_cpu(&s, &q, &n, x, m, 20, T);
    masked_moments_cpu(&s, &q, &n, x + 20 * T, m + 20 * T, N - 20, T);
    for (int k = 0; k < N * T; k++)
        if (m[k] > 0) rs += x[k], rq += (double)x[k] * x[k], rn += 1;
    check(n == rn && fabs(s - rs) <= 1e-9 * fabs(rs) && fabs(q - rq) <= 1e-9 * rq,
          "masked moments accumulate over two calls to the batch's sum, sumsq, count");
    double s1 = 0, q1 = 0, n1 = 0;
    omp_set_num_threads(1);
    masked_moments_cpu(&s1, &q1, &n1, x, m, N, T);
    omp_set_num_threads(omp_get_num_procs());
    double s2 = 0, q2 = 0, n2 = 0;
    masked_moments_cpu(&s2, &q2, &n2, x, m, N, T);
    check(s1 == s2 && q1 == q2 && n1 == n2, "masked moments are bitwise independent of threads");

    whiten_cpu(w, x, m, N, T, s, q, n);
    double mean = rs / rn, var = 0;
    for (int k = 0; k < N * T; k++)
        if (m[k] > 0) var += (x[k] - mean) * (x[k] - mean);
    var /= rn - 1;
    double e = 0, wm = 0, wv = 0;
    int masked_zero = 1;
    for (int k = 0; k < N * T; k++) {
        if (m[k] > 0) {
            e = fmax(e, fabs(w[k] - (x[k] - mean) / sqrt(var + 1e-8)));
            wm += w[k];
        } else if (w[k] != 0) {
            masked_zero = 0;
        }
    }
    wm /= rn;
    for (int k = 0; k < N * T; k++)
        if (m[k] > 0) wv += (w[k] - wm) * (w[k] - wm);
    wv /= rn - 1;
    check(e <= 1e-5, "whiten equals (x - mean)/sqrt(var + 1e-8) in double");
    check(fabs(wm) <= 1e-6 && fabs(wv - 1.0) <= 1e-5,
          "whitened values have mean 0 and unbiased variance 1 over valid tokens");
    check(masked_zero, "whitened values are 0 on masked positions");
    whiten_cpu(x, x, m, N, T, s, q, n); /* in place */
    check(memcmp(x, w, sizeof(float) * N * T) == 0, "whiten in place gives the same values");
    free(x), free(m), free(w);
}

/* ---- GAE ---- */

/* PRIME.md section 5, transcribed: from t = T down to 1 (here T-1 down to 0). */
static void ref_gae(double *A, double *R, const float *c, const float *V, const float *m, int N,
                    int T, double gamma, double lam) {
    for (int i = 0; i < N; i++) {
        double v_next = 0, gae_next = 0;
        for (int t = T - 1; t >= 0; t--) {
            int k = i * T + t;
            double delta = c[k] + gamma * v_next - V[k];
            double gae = delta + gamma * lam * gae_next;
            v_next = m[k] ? V[k] : v_next;
            gae_next = m[k] ? gae : gae_next;
            A[k] = m[k] ? gae : 0;
            R[k] = m[k] ? gae + V[k] : 0;
        }
    }
}

static void test_gae(void) {
    /* Hand case with a gap: mask (1, 0, 1, 0), gamma = lambda = 0.5. t = 2: delta = 2 - 0.25
     * = 1.75 = A; t = 0 skips t = 1: delta = 1 + 0.5 0.25 - 0.5 = 0.625, A = 0.625 + 0.25 1.75
     * = 1.0625; R = A + V. */
    const float hm[4] = {1, 0, 1, 0}, hc[4] = {1, 9, 2, 9}, hv[4] = {0.5f, 9, 0.25f, 9};
    const double eA[4] = {1.0625, 0, 1.75, 0}, eR[4] = {1.5625, 0, 2.0, 0};
    float hA[4], hR[4];
    gae_cpu(hA, hR, hc, hv, hm, 1, 4, 0.5f, 0.5f);
    check(max_abs_diff(hA, eA, 4) <= 1e-7 && max_abs_diff(hR, eR, 4) <= 1e-7,
          "gae hand case with a gap in the mask");

    enum { N = 16, T = 57 };
    float *c = malloc(sizeof(float) * N * T), *V = malloc(sizeof(float) * N * T);
    float *m = malloc(sizeof(float) * N * T), *A = malloc(sizeof(float) * N * T);
    float *R = malloc(sizeof(float) * N * T);
    double *rA = malloc(sizeof(double) * N * T), *rR = malloc(sizeof(double) * N * T);
    const float gl[4][2] = {{1.0f, 1.0f}, {0.99f, 0.95f}, {0.9f, 0.0f}, {0.5f, 1.0f}};
    for (int gaps = 0; gaps < 2; gaps++) {
        random_mask(m, N, T, gaps);
        for (int k = 0; k < N * T; k++) {
            c[k] = rng_sym(1.0);
            V[k] = rng_sym(2.0);
        }
        for (int q = 0; q < 4; q++) {
            gae_cpu(A, R, c, V, m, N, T, gl[q][0], gl[q][1]);
            ref_gae(rA, rR, c, V, m, N, T, gl[q][0], gl[q][1]);
            char what[128];
            snprintf(what, sizeof what, "gae vs plain loop, %s mask, gamma %.2f lambda %.2f",
                     gaps ? "gapped" : "contiguous", gl[q][0], gl[q][1]);
            /* Sums of up to 57 terms of size ~3: float storage of the result dominates. */
            check(max_abs_diff(A, rA, N * T) <= 1e-5 && max_abs_diff(R, rR, N * T) <= 1e-5, "%s",
                  what);
        }
    }
    /* gamma = lambda = 1 on contiguous rows: A_t = sum_{s >= t} c_s - V_t, an identity
     * independent of the recurrence. */
    random_mask(m, N, T, 0);
    gae_cpu(A, R, c, V, m, N, T, 1.0f, 1.0f);
    double e = 0;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < T; t++) {
            int k = i * T + t;
            double s = 0;
            for (int u = t; u < T; u++) s += m[i * T + u] * c[i * T + u];
            double want = m[k] > 0 ? s - V[k] : 0;
            e = fmax(e, fabs(A[k] - want));
        }
    check(e <= 1e-5, "gae with gamma = lambda = 1 is returns minus values");
    free(c), free(V), free(m), free(A), free(R), free(rA), free(rR);
}

static void test_last_valid(void) {
    const float m[12] = {0, 1, 1, 0, /**/ 0, 0, 0, 0, /**/ 1, 1, 1, 1};
    check(adv_last_valid(m, 0, 4) == 2 && adv_last_valid(m, 1, 4) == -1 &&
              adv_last_valid(m, 2, 4) == 3,
          "adv_last_valid on middle, empty and full rows");
}

int main(void) {
    rng_seed(777);
    test_last_valid();
    test_rloo_outcome();
    test_rloo_process();
    test_grpo();
    test_combine_returns();
    test_whiten();
    test_gae();
    return test_summary();
}
