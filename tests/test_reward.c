/* Checks the implicit process rewards (PRIME.md section 3) on a hand-computed ragged batch at
 * every granularity and transform, the clip and delta invariants on random batches, the
 * batch_norm divisor, and the PRM loss against a float64 formula with its gradient against
 * central finite differences. */
#include "kernels/reward.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

/* ---- the hand case ----
 * beta = 0.5, q = logp_prm - logp_ref chosen dyadic so every expected value is exact in float.
 * Row 0: prompt at t = 0, 1, response t = 2..6, padding t = 7; delimiter 13 on t = 3, 5 (and
 * on masked t = 0, 7, which must not count). Row 1: all valid, delimiters on t = 2, 3
 * (a one-token step) and 7 (the last). Row 2: response t = 3..5 with no delimiter. */
enum { HN = 3, HT = 8, DELIM = 13 };
static const float h_mask[HN * HT] = {0,      0, 1, 1, 1, 1, 1, 0, /**/ 1, 1, 1, 1, 1, 1, 1, 1,
                                      /**/ 0, 0, 0, 1, 1, 1, 0, 0};
static const float h_q[HN * HT] = {0,   0,    0.5,  -1.0, 2.0,  0.25, -1.5, 0,
                                   1.0, -0.5, 0.75, 1.5,  -2.0, 0.5,  0.25, -0.25,
                                   0,   0,    0,    -0.5, 1.0,  0.5,  0,    0};
static const int h_tg[HN * HT] = {13,      4,  5,  13, 7, 13, 9,  13,
                                  /**/ 1,  2,  13, 13, 6, 7,  8,  13,
                                  /**/ 13, 13, 13, 3,  4, 5,  13, 13};

/* Expected r for [granularity][transform], clip with eta = 0.25, worked out by hand. */
static const double h_expect[3][3][HN * HT] = {
    {/* token none */
     {0.0,  0.0,  0.25,  -0.5,   1.0, 0.125, -0.75, 0.0,   0.5, -0.25, 0.375, 0.75,
      -1.0, 0.25, 0.125, -0.125, 0.0, 0.0,   0.0,   -0.25, 0.5, 0.25,  0.0,   0.0},
     /* token clip */
     {0.0,   0.0, 0.0,    -0.75,  0.0, -0.125, -1.0, 0.0,  0.0, -0.5, 0.0, 0.0,
      -1.25, 0.0, -0.125, -0.375, 0.0, 0.0,    0.0,  -0.5, 0.0, 0.0,  0.0, 0.0},
     /* token delta */
     {0.0,   0.0,   0.75, -1.5,   0.875, 0.875, -0.75, 0.0,   0.75, -0.625, -0.375, 1.75,
      -1.25, 0.125, 0.25, -0.125, 0.0,   0.0,   0.0,   -0.75, 0.25, 0.25,   0.0,    0.0}},
    {/* step none */
     {0.0, 0.0, 0.0, -0.25, 0.0, 1.125, -0.75, 0.0, 0.0, 0.0, 0.625, 0.75,
      0.0, 0.0, 0.0, -0.75, 0.0, 0.0,   0.0,   0.0, 0.0, 0.5, 0.0,   0.0},
     /* step clip */
     {0.0, 0.0, 0.0, -0.5, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0,  0.0, 0.0, 0.0, 0.0, 0.0},
     /* step delta */
     {0.0, 0.0, 0.0, -1.375, 0.0, 1.875, -0.75, 0.0, 0.0, 0.0, -0.125, 1.5,
      0.0, 0.0, 0.0, -0.75,  0.0, 0.0,   0.0,   0.0, 0.0, 0.5, 0.0,    0.0}},
    {/* whole none */
     {0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.125, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.625, 0.0, 0.0, 0.0,   0.0, 0.0, 0.5, 0.0, 0.0},
     /* whole clip */
     {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.125, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,    0.0, 0.0, 0.0, 0.0, 0.0},
     /* whole delta */
     {0.0, 0.0, 0.0, 0.0,   0.0, 0.0, 0.125, 0.0, 0.0, 0.0, 0.0, 0.0,
      0.0, 0.0, 0.0, 0.625, 0.0, 0.0, 0.0,   0.0, 0.0, 0.5, 0.0, 0.0}}};

static void test_hand(void) {
    float prm[HN * HT], ref[HN * HT], r[HN * HT];
    for (int k = 0; k < HN * HT; k++) {
        /* Masked positions hold junk (NaN on padding) that must never reach r. */
        ref[k] = h_mask[k] > 0 ? -1.0f : 7.0f;
        prm[k] = h_mask[k] > 0 ? -1.0f + h_q[k] : NAN;
    }
    static const char *gn[3] = {"token", "step", "whole"}, *xn[3] = {"none", "clip", "delta"};
    for (int g = 0; g < 3; g++)
        for (int x = 0; x < 3; x++) {
            memset(r, 0x7f, sizeof r); /* every position must be written */
            prime_token_rewards_cpu(r, prm, ref, h_mask, h_tg, HN, HT, 0.5f, g, DELIM, x, 0.25f);
            char what[96];
            snprintf(what, sizeof what, "hand case %s/%s matches the hand-computed rewards", gn[g],
                     xn[x]);
            check(max_abs_diff(r, h_expect[g][x], HN * HT) <= 1e-7, "%s", what);
        }
    /* Targets are read only for step granularity. */
    prime_token_rewards_cpu(r, prm, ref, h_mask, NULL, HN, HT, 0.5f, REWARD_WHOLE, DELIM,
                            REWARD_XFORM_NONE, 0.0f);
    check(max_abs_diff(r, h_expect[2][0], HN * HT) <= 1e-7, "whole granularity with NULL targets");
    /* A positive eta shifts before clipping: eta = 0 leaves negatives as they are. */
    prime_token_rewards_cpu(r, prm, ref, h_mask, h_tg, HN, HT, 0.5f, REWARD_TOKEN, DELIM,
                            REWARD_XFORM_CLIP, 0.0f);
    double e0[HN * HT];
    for (int k = 0; k < HN * HT; k++) e0[k] = fmin(h_expect[0][0][k], 0.0);
    check(max_abs_diff(r, e0, HN * HT) <= 1e-7, "clip with eta = 0 is min(r, 0)");
}

/* ---- invariants of the transforms on random ragged batches ---- */

static int is_slot(int g, const float *m, const int *tg, int t, int last) {
    if (g == REWARD_TOKEN) return m[t] > 0;
    if (g == REWARD_STEP) return m[t] > 0 && (t == last || tg[t] == DELIM);
    return t == last;
}

static void test_transforms_random(void) {
    enum { N = 7, T = 40 };
    float prm[N * T], ref[N * T], mask[N * T], base[N * T], rc[N * T], rd[N * T];
    int tg[N * T];
    for (int i = 0; i < N; i++) {
        /* Row 0 has no valid token; the others start and end at random places. */
        int lo = (int)(rng_u01() * 10), hi = i == 0 ? lo : lo + 1 + (int)(rng_u01() * (T - lo - 1));
        for (int t = 0; t < T; t++) {
            int k = i * T + t;
            mask[k] = t >= lo && t < hi;
            prm[k] = rng_sym(2.0) - 3.0f;
            ref[k] = rng_sym(2.0) - 3.0f;
            tg[k] = rng_u01() < 0.2 ? DELIM : (int)(rng_u01() * 100) + 20;
        }
    }
    const float eta = 0.03f, beta = 0.05f;
    for (int g = 0; g < 3; g++) {
        prime_token_rewards_cpu(base, prm, ref, mask, tg, N, T, beta, g, DELIM, REWARD_XFORM_NONE,
                                0.0f);
        prime_token_rewards_cpu(rc, prm, ref, mask, tg, N, T, beta, g, DELIM, REWARD_XFORM_CLIP,
                                eta);
        prime_token_rewards_cpu(rd, prm, ref, mask, tg, N, T, beta, g, DELIM, REWARD_XFORM_DELTA,
                                0.0f);
        int clip_ok = 1, clip_le0 = 1, tele_ok = 1, last_ok = 1, zero_ok = 1, sum_ok = 1;
        for (int i = 0; i < N; i++) {
            const float *m = mask + i * T;
            int last = -1;
            for (int t = 0; t < T; t++)
                if (m[t] > 0) last = t;
            /* The untransformed rewards: every slot holds the sum of beta q since the
             * previous slot, so their total is the row's whole reward. */
            double row_q = 0, first = NAN, dsum = 0;
            for (int t = 0; t < T; t++) {
                int k = i * T + t;
                if (m[t] > 0) row_q += beta * ((double)prm[k] - ref[k]);
                if (rc[k] > 0) clip_le0 = 0;
                if (!is_slot(g, m, tg + i * T, t, last)) {
                    if (base[k] != 0 || rc[k] != 0 || rd[k] != 0) zero_ok = 0;
                    continue;
                }
                if (fabs(rc[k] - fmin((double)base[k] - eta, 0.0)) > 1e-7) clip_ok = 0;
                if (isnan(first)) first = base[k];
                dsum += rd[k];
            }
            double bsum = 0;
            for (int t = 0; t < T; t++) bsum += base[i * T + t];
            if (fabs(bsum - row_q) > 1e-5) sum_ok = 0;
            if (last >= 0) {
                if (fabs(dsum - first) > 1e-5) tele_ok = 0;
                if (rd[i * T + last] != base[i * T + last]) last_ok = 0;
            }
        }
        static const char *gn[3] = {"token", "step", "whole"};
        char what[128];
        snprintf(what, sizeof what, "%s: slots hold beta sum q (row totals match)", gn[g]);
        check(sum_ok, "%s", what);
        snprintf(what, sizeof what, "%s: non-slot positions are 0 under every transform", gn[g]);
        check(zero_ok, "%s", what);
        snprintf(what, sizeof what, "%s: clip gives min(rho - eta, 0) on each slot", gn[g]);
        check(clip_ok, "%s", what);
        snprintf(what, sizeof what, "%s: clip keeps every reward <= 0", gn[g]);
        check(clip_le0, "%s", what);
        snprintf(what, sizeof what, "%s: delta telescopes to the first slot's reward", gn[g]);
        check(tele_ok, "%s", what);
        snprintf(what, sizeof what, "%s: delta leaves the last slot unchanged", gn[g]);
        check(last_ok, "%s", what);
    }
}

/* ---- batch_norm divisor ---- */

static void test_suffix_absmax(void) {
    /* Row 0 suffix sums over valid t = 3, 2, 1: 0.5, -2.5, -1.5; row 1 over t = 2, 1, 0: -0.5,
     * 1.5, 3.5. Masked 9s must be ignored. */
    const float r[10] = {9, 1, -3, 0.5f, 9, /**/ 2, 2, -0.5f, 9, 9};
    const float m[10] = {0, 1, 1, 1, 0, /**/ 1, 1, 1, 0, 0};
    check(reward_suffix_absmax_cpu(r, m, 1, 5) == 2.5f, "suffix absmax, one row: 2.5");
    check(reward_suffix_absmax_cpu(r, m, 2, 5) == 3.5f, "suffix absmax, two rows: 3.5");

    /* batch_norm on a random batch: after dividing by divisor + 1e-6 the largest suffix sum
     * is just under 1, and the divisor agrees with a plain double loop. */
    enum { N = 5, T = 33 };
    float x[N * T], mk[N * T];
    double want = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int t = T - 1; t >= 0; t--) {
            int k = i * T + t;
            mk[k] = t > i && t < T - 2 * i;
            x[k] = rng_sym(1.0);
            if (mk[k] > 0) s += x[k];
            if (fabs(s) > want) want = fabs(s);
        }
    }
    float d = reward_suffix_absmax_cpu(x, mk, N, T);
    check(fabs(d - want) <= 1e-6 * want, "suffix absmax equals a double loop on a random batch");
    for (int k = 0; k < N * T; k++) x[k] = (float)(x[k] / (d + 1e-6));
    float d2 = reward_suffix_absmax_cpu(x, mk, N, T);
    check(d2 <= 1.0f && d2 > 1.0f - 1e-5f, "after batch_norm the suffix absmax is ~1");
}

/* ---- PRM loss ---- */

static double ref_bce(double s, double o) { /* the textbook form, fine for moderate s */
    double p = 1.0 / (1.0 + exp(-s));
    return -(o * log(p) + (1 - o) * log(1 - p));
}

static void test_prm_loss(void) {
    enum { N = 6, T = 17 };
    float prm[N * T], ref[N * T], mask[N * T], out[N], score[N], dl[N * T], dtmp[N * T];
    const float beta = 0.5f;
    const float o[N] = {1.0f, 0.0f, 0.25f, 0.8f, 1.0f, 0.0f}; /* fractional outcomes too */
    for (int i = 0; i < N; i++) {
        out[i] = o[i];
        for (int t = 0; t < T; t++) {
            int k = i * T + t;
            mask[k] = t >= i && t < T - i; /* ragged */
            prm[k] = rng_sym(1.0) - 2.0f;
            ref[k] = rng_sym(1.0) - 2.0f;
        }
    }
    const double denom = 4.0; /* a mini-batch's share of a larger mean */
    double L = prm_loss_cpu(dl, score, prm, ref, mask, out, N, T, beta, denom);
    double Lref = 0, serr = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int t = 0; t < T; t++)
            if (mask[i * T + t] > 0) s += beta * ((double)prm[i * T + t] - ref[i * T + t]);
        serr = fmax(serr, fabs(score[i] - s));
        Lref += ref_bce(s, o[i]);
    }
    Lref /= denom;
    check(serr <= 1e-6, "PRM scores s_i = beta sum m q");
    check(fabs(L - Lref) <= 1e-12 * fmax(1.0, fabs(Lref)), "PRM loss equals the double BCE");

    /* Central differences of the kernel's own double loss; the step actually taken (after
     * rounding to float) is the denominator, so only O(h^2) truncation remains (~1e-7 of the
     * gradient here) and float storage of the gradient (~1e-7 relative). */
    double gerr = 0;
    int masked_zero = 1;
    for (int k = 0; k < N * T; k++) {
        float x0 = prm[k];
        prm[k] = x0 + 1e-3f;
        double xp = prm[k];
        double Lp = prm_loss_cpu(dtmp, score, prm, ref, mask, out, N, T, beta, denom);
        prm[k] = x0 - 1e-3f;
        double xm = prm[k];
        double Lm = prm_loss_cpu(dtmp, score, prm, ref, mask, out, N, T, beta, denom);
        prm[k] = x0;
        double fd = (Lp - Lm) / (xp - xm);
        if (mask[k] == 0 && (fd != 0 || dl[k] != 0)) masked_zero = 0;
        gerr = fmax(gerr, fabs(dl[k] - fd) / (fabs(fd) + 1e-3));
    }
    check(gerr <= 1e-4, "PRM gradient matches central finite differences");
    check(masked_zero, "PRM gradient is 0 on masked positions");

    /* Large |s| must stay finite and exact: BCE = softplus(s) - o s. */
    enum { N2 = 2, T2 = 2 };
    float p2[N2 * T2] = {0, 0, 0, 0}, r2[N2 * T2] = {-200, -200, 200, 200};
    float m2[N2 * T2] = {1, 1, 1, 1}, o2[N2] = {0.0f, 1.0f}, s2[N2], d2[N2 * T2];
    /* s_0 = 0.5 * 400 = 200 with o = 0: loss 200; s_1 = -200 with o = 1: loss 200. */
    double L2 = prm_loss_cpu(d2, s2, p2, r2, m2, o2, N2, T2, beta, 2.0);
    check(fabs(L2 - 200.0) <= 1e-9, "PRM loss is stable at |s| = 200");
    check(fabs(d2[0] - 0.25) <= 1e-7 && fabs(d2[2] + 0.25) <= 1e-7,
          "PRM gradient saturates to +-beta/denom at |s| = 200");
}

int main(void) {
    rng_seed(12345);
    test_hand();
    test_transforms_random();
    test_suffix_absmax();
    test_prm_loss();
    return test_summary();
}
