/* Checks the PPO policy loss (PRIME.md section 6) against a float64 reference on random
 * ragged batches for every aggregation x dual clip x KL estimator x entropy combination, its
 * gradients with respect to the log-probs and the entropy against central finite
 * differences, hand cases for the clip branches and the clip fraction, and the clipped value
 * loss with its gradient. */
#include "kernels/ppo.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

enum { N = 7, T = 19 };

typedef struct {
    float logp[N * T], old[N * T], ref[N * T], ent[N * T], adv[N * T], mask[N * T];
} Batch;

/* Ratios spread over [0.2, 4.5] so every branch (ratio clip below and above, dual cap at
 * c = 3, unclipped) is taken, but never within 1% of a branch boundary, so a finite
 * difference step of 1e-3 in logp cannot cross one. */
static void make_batch(Batch *b, PpoParams p) {
    for (int i = 0; i < N; i++) {
        int lo = (int)(rng_u01() * 6), hi = i == 2 ? lo : lo + 1 + (int)(rng_u01() * (T - lo - 1));
        for (int t = 0; t < T; t++) {
            int k = i * T + t;
            b->mask[k] = t >= lo && t < hi; /* row 2 has no valid token */
            b->old[k] = -1.0f - (float)rng_u01() * 2.0f;
            double rho;
            do {
                b->logp[k] = b->old[k] + rng_sym(1.5);
                rho = exp((double)b->logp[k] - b->old[k]);
            } while (fabs(rho / (1 - p.clip_low) - 1) < 0.01 ||
                     fabs(rho / (1 + p.clip_high) - 1) < 0.01 ||
                     fabs(rho / p.dual_clip - 1) < 0.01);
            b->ref[k] = b->logp[k] + rng_sym(1.0);
            b->ent[k] = (float)rng_u01() * 3.0f;
            b->adv[k] = rng_sym(2.0);
            if (!(b->mask[k] > 0)) { /* junk where masked, to be ignored */
                b->logp[k] = 50.0f;
                b->adv[k] = 1e6f;
                b->ent[k] = -1e6f;
            }
        }
    }
}

/* ---- float64 reference, written from the formulas ---- */

typedef struct {
    double loss, pg, kl, ent, clip_frac, akl, valid;
} Ref;

static Ref ref_loss(const Batch *b, PpoParams p, double token_denom, double seq_denom, int have_ref,
                    int have_ent) {
    Ref r = {0};
    double clipped = 0;
    for (int i = 0; i < N; i++) {
        double n = 0, sl = 0, spg = 0, skl = 0, sen = 0;
        for (int t = 0; t < T; t++) n += b->mask[i * T + t];
        for (int t = 0; t < T; t++) {
            int k = i * T + t;
            if (b->mask[k] == 0) continue;
            double A = b->adv[k], d = (double)b->logp[k] - b->old[k], rho = exp(d);
            double rc = fmin(fmax(rho, 1.0 - p.clip_low), 1.0 + p.clip_high);
            double pg = -fmin(rho * A, rc * A);
            if (p.dual_clip > 1 && A < 0) pg = fmin(pg, -p.dual_clip * A);
            if (-rc * A > -rho * A) clipped += 1;
            double x = (double)b->ref[k] - b->logp[k];
            double kl = p.kl_estimator == KL_K3 ? exp(x) - x - 1 : -x;
            double l = pg + (have_ref ? p.kl_coef * kl : 0) -
                       (have_ent ? (double)p.ent_coef * b->ent[k] : 0);
            sl += l, spg += pg, skl += kl, sen += b->ent[k];
            r.akl += 0.5 * d * d;
            r.valid += 1;
        }
        double w =
            p.agg == PPO_AGG_TOKEN_MEAN ? 1 / token_denom : (n > 0 ? 1 / (n * seq_denom) : 0);
        r.loss += sl * w, r.pg += spg * w, r.kl += skl * w, r.ent += sen * w;
    }
    if (!have_ref) r.kl = 0;
    if (!have_ent) r.ent = 0;
    r.clip_frac = clipped / r.valid;
    r.akl /= r.valid;
    return r;
}

static int close_rel(double a, double b, double tol) {
    return fabs(a - b) <= tol * fmax(1.0, fabs(b));
}

static PpoParams params(int agg, int dual, int kl, int ent) {
    PpoParams p = {.clip_low = 0.2f,
                   .clip_high = 0.28f, /* asymmetric, so low and high cannot be swapped */
                   .dual_clip = dual ? 3.0f : 0.0f,
                   .agg = agg,
                   .kl_coef = 0.1f,
                   .kl_estimator = kl,
                   .ent_coef = ent ? 0.01f : 0.0f};
    return p;
}

/* Loss and stats against the reference; the gradients against central finite differences
 * of the kernel's own double loss, with the float-rounded step as denominator. The loss is
 * exp-smooth away from branch boundaries, so the truncation error is ~h^2/6 = 2e-7 of the
 * gradient's terms, and float storage of the gradient adds 6e-8 relative. */
static void test_combo(int agg, int dual, int kl, int ent) {
    PpoParams p = params(agg, dual, kl, ent);
    Batch b;
    make_batch(&b, p);
    double valid = 0;
    for (int k = 0; k < N * T; k++) valid += b.mask[k];
    /* Denominators differ from this batch's own counts, as for one mini-batch of many. */
    const double token_denom = valid + 11, seq_denom = N + 2;
    float dlogp[N * T], dent[N * T], scratch[N * T];
    PpoStats st;
    double L = ppo_loss_cpu(dlogp, dent, &st, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p,
                            token_denom, seq_denom);
    Ref r = ref_loss(&b, p, token_denom, seq_denom, 1, 1);
    char tag[96], what[160];
    snprintf(tag, sizeof tag, "[%s, dual %s, %s, ent %s]",
             agg ? "seq-mean-token-mean" : "token-mean", dual ? "on" : "off", kl ? "k3" : "k1",
             ent ? "on" : "off");
    snprintf(what, sizeof what, "%s loss equals the double reference", tag);
    check(close_rel(L, r.loss, 1e-12), "%s", what);
    snprintf(what, sizeof what, "%s stats equal the double reference", tag);
    check(close_rel(st.pg_loss, r.pg, 1e-12) && close_rel(st.kl_ref, r.kl, 1e-12) &&
              close_rel(st.entropy, r.ent, 1e-12) && st.clip_frac == r.clip_frac &&
              close_rel(st.approx_kl_old, r.akl, 1e-12) && st.valid == r.valid,
          "%s", what);
    snprintf(what, sizeof what, "%s every branch occurs in the batch", tag);
    check(r.clip_frac > 0.1 && r.clip_frac < 0.9, "%s", what);

    double gerr = 0, eerr = 0;
    int masked_zero = 1;
    const double floor = 1e-3 / token_denom; /* the gradient's scale is ~1/denominator */
    for (int k = 0; k < N * T; k++) {
        float x0 = b.logp[k];
        b.logp[k] = x0 + 1e-3f;
        double xp = b.logp[k];
        double Lp = ppo_loss_cpu(scratch, NULL, NULL, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N,
                                 T, p, token_denom, seq_denom);
        b.logp[k] = x0 - 1e-3f;
        double xm = b.logp[k];
        double Lm = ppo_loss_cpu(scratch, NULL, NULL, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N,
                                 T, p, token_denom, seq_denom);
        b.logp[k] = x0;
        double fd = (Lp - Lm) / (xp - xm);
        gerr = fmax(gerr, fabs(dlogp[k] - fd) / (fabs(fd) + floor));
        float e0 = b.ent[k];
        b.ent[k] = e0 + 0.25f; /* the loss is linear in the entropy: exact steps */
        Lp = ppo_loss_cpu(scratch, NULL, NULL, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p,
                          token_denom, seq_denom);
        b.ent[k] = e0 - 0.25f;
        Lm = ppo_loss_cpu(scratch, NULL, NULL, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p,
                          token_denom, seq_denom);
        b.ent[k] = e0;
        fd = (Lp - Lm) / 0.5;
        eerr = fmax(eerr, fabs(dent[k] - fd) / (fabs(fd) + floor));
        if (b.mask[k] == 0 && (dlogp[k] != 0 || dent[k] != 0)) masked_zero = 0;
    }
    snprintf(what, sizeof what, "%s dloss/dlogp matches central differences", tag);
    check(gerr <= 1e-4, "%s", what);
    snprintf(what, sizeof what, "%s dloss/dentropy matches central differences", tag);
    check(eerr <= 1e-6, "%s", what);
    snprintf(what, sizeof what, "%s gradients are 0 on masked positions", tag);
    check(masked_zero, "%s", what);
}

static void test_optional_inputs(void) {
    /* With kl_coef = ent_coef = 0 the loss is the pg loss alone, whether or not logp_ref and
     * entropy are given, and without them the kl/entropy stats are 0. */
    PpoParams p = params(PPO_AGG_TOKEN_MEAN, 1, KL_K3, 0);
    p.kl_coef = 0.0f;
    Batch b;
    make_batch(&b, p);
    float d1[N * T], d2[N * T];
    PpoStats s1, s2;
    double L1 =
        ppo_loss_cpu(d1, NULL, &s1, b.logp, b.old, NULL, NULL, b.adv, b.mask, N, T, p, 50.0, 1.0);
    double L2 =
        ppo_loss_cpu(d2, NULL, &s2, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p, 50.0, 1.0);
    Ref r = ref_loss(&b, p, 50.0, 1.0, 0, 0);
    check(L1 == L2 && L1 == s1.pg_loss && close_rel(L1, r.pg, 1e-12) &&
              memcmp(d1, d2, sizeof d1) == 0,
          "coefficients 0: loss is the pg loss with or without logp_ref / entropy");
    check(s1.kl_ref == 0 && s1.entropy == 0 && s2.kl_ref != 0 && s2.entropy != 0,
          "kl_ref / entropy stats are reported only when their inputs are given");
    check(ppo_loss_cpu(d1, NULL, NULL, b.logp, b.old, NULL, NULL, b.adv, b.mask, N, T, p, 50.0,
                       1.0) == L1,
          "stats = NULL is allowed and changes nothing");

    /* Row partials are combined in row order: same bits with 1 thread or all. */
    p = params(PPO_AGG_SEQ_MEAN_TOKEN_MEAN, 1, KL_K3, 1);
    omp_set_num_threads(1);
    L1 = ppo_loss_cpu(d1, NULL, &s1, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p, 50, 9);
    omp_set_num_threads(omp_get_num_procs());
    L2 = ppo_loss_cpu(d2, NULL, &s2, b.logp, b.old, b.ref, b.ent, b.adv, b.mask, N, T, p, 50, 9);
    check(L1 == L2 && memcmp(d1, d2, sizeof d1) == 0 && memcmp(&s1, &s2, sizeof s1) == 0,
          "loss, gradient and stats are bitwise independent of the thread count");
}

/* One row of five tokens, eps = 0.2 both ways, c = 3, token-mean over denominator 5:
 *  t0: A = +1, rho 1.5 -> loss -1.2 (ratio clip above), grad 0, clipped
 *  t1: A = -1, rho 0.5 -> loss  0.8 (ratio clip below), grad 0, clipped
 *  t2: A = -1, rho 4   -> loss  3 with dual clip (grad 0, not a ratio clip); 4 without
 *  t3: A = +1, rho 0.5 -> loss -0.5, grad -A rho = -0.5 (unclipped: min picks rho A)
 *  t4: A = -1, rho 1.5 -> loss  1.5, grad 1.5 (unclipped: min picks rho A) */
static void test_hand(void) {
    const float adv[5] = {1, -1, -1, 1, -1}, mask[5] = {1, 1, 1, 1, 1};
    const double rho[5] = {1.5, 0.5, 4, 0.5, 1.5};
    float logp[5], old[5] = {-1, -1, -1, -1, -1}, d[5];
    for (int t = 0; t < 5; t++) logp[t] = (float)(old[t] + log(rho[t]));
    PpoParams p = {.clip_low = 0.2f, .clip_high = 0.2f, .dual_clip = 3.0f};
    PpoStats st;
    double L = ppo_loss_cpu(d, NULL, &st, logp, old, NULL, NULL, adv, mask, 1, 5, p, 5.0, 1.0);
    /* rho is exp of a float difference, so it carries ~1e-7 relative error. */
    check(fabs(L - (-1.2 + 0.8 + 3 - 0.5 + 1.5) / 5) <= 1e-6, "hand case loss with dual clip");
    check(d[0] == 0 && d[1] == 0 && d[2] == 0,
          "active clips (ratio above, below, dual) give 0 gradient");
    check(fabs(d[3] - (-0.5 / 5)) <= 1e-6 && fabs(d[4] - 1.5 / 5) <= 1e-6,
          "unclipped tokens have gradient -A rho / denom");
    check(st.clip_frac == 2.0 / 5, "clip_frac counts the two ratio-clipped tokens (2/5)");
    p.dual_clip = 0.0f;
    L = ppo_loss_cpu(d, NULL, &st, logp, old, NULL, NULL, adv, mask, 1, 5, p, 5.0, 1.0);
    check(fabs(L - (-1.2 + 0.8 + 4 - 0.5 + 1.5) / 5) <= 1e-6 && fabs(d[2] - 4.0 / 5) <= 1e-6,
          "without dual clip the rho = 4 token keeps loss and gradient -A rho");
    check(st.clip_frac == 2.0 / 5 &&
              fabs(st.approx_kl_old -
                   0.5 * (2 * pow(log(1.5), 2) + 2 * pow(log(0.5), 2) + pow(log(4), 2)) / 5) <=
                  1e-6,
          "clip_frac and approx_kl_old without dual clip");
}

/* ---- value loss ---- */

static void test_value_hand(void) {
    /* eps 0.5. t0: V 2, V_old 1, R 0: clipped 1.5, (V-R)^2 = 4 > 2.25, unclipped, grad 2.
     * t1: V 2, V_old 1, R 3: (V-R)^2 = 1 < 2.25, clipped branch, loss 1.125, grad 0.
     * t2: V 1.2 in range, both 1.44, grad 1.2. t3 masked. Denominator 4. */
    const float V[4] = {2, 2, 1.2f, 7}, Vo[4] = {1, 1, 1, 0}, R[4] = {0, 3, 0, 0};
    const float m[4] = {1, 1, 1, 0};
    float dV[4];
    double cf;
    double L = value_loss_cpu(dV, &cf, V, Vo, R, m, 1, 4, 0.5f, 4.0);
    check(fabs(L - 0.5 * (4 + 2.25 + 1.44) / 4) <= 1e-6, "value loss hand case");
    check(fabs(dV[0] - 0.5) <= 1e-7 && dV[1] == 0 && fabs(dV[2] - 0.3) <= 1e-7 && dV[3] == 0,
          "value gradient picks the active branch (0 under the clip, 0 masked)");
    check(cf == 1.0 / 3, "value clip fraction 1/3");
}

static void test_value_random(void) {
    enum { VN = 6, VT = 29 };
    float V[VN * VT], Vo[VN * VT], R[VN * VT], m[VN * VT], dV[VN * VT], sc[VN * VT];
    const float eps = 0.5f;
    for (int i = 0; i < VN; i++)
        for (int t = 0; t < VT; t++) {
            int k = i * VT + t;
            m[k] = t >= i && t < VT - 2 * i;
            /* Keep 0.01 away from the clip edges and from the tie V + clip(V) = 2R, the two
             * places where the loss has a kink. */
            double v, vc;
            do {
                Vo[k] = rng_sym(1.0);
                V[k] = Vo[k] + rng_sym(1.0);
                R[k] = rng_sym(1.5);
                v = V[k];
                vc = fmin(fmax(v, (double)Vo[k] - eps), (double)Vo[k] + eps);
            } while (fabs(v - (Vo[k] - eps)) < 0.01 || fabs(v - (Vo[k] + eps)) < 0.01 ||
                     fabs(v + vc - 2 * R[k]) < 0.01);
        }
    const double denom = 200.0;
    double cf;
    double L = value_loss_cpu(dV, &cf, V, Vo, R, m, VN, VT, eps, denom);
    double want = 0, clipped = 0, n = 0;
    for (int k = 0; k < VN * VT; k++) {
        if (m[k] == 0) continue;
        double vc = fmin(fmax((double)V[k], (double)Vo[k] - eps), (double)Vo[k] + eps);
        double e1 = pow((double)V[k] - R[k], 2), e2 = pow(vc - R[k], 2);
        want += 0.5 * fmax(e1, e2);
        clipped += e2 > e1;
        n += 1;
    }
    want /= denom;
    check(close_rel(L, want, 1e-12), "value loss equals the double reference (random)");
    check(cf == clipped / n && cf > 0.1 && cf < 0.9, "value clip fraction (random, both branches)");
    double gerr = 0;
    for (int k = 0; k < VN * VT; k++) {
        float x0 = V[k];
        V[k] = x0 + 1e-3f;
        double xp = V[k], Lp = value_loss_cpu(sc, NULL, V, Vo, R, m, VN, VT, eps, denom);
        V[k] = x0 - 1e-3f;
        double xm = V[k], Lm = value_loss_cpu(sc, NULL, V, Vo, R, m, VN, VT, eps, denom);
        V[k] = x0;
        double fd = (Lp - Lm) / (xp - xm);
        /* The loss is piecewise quadratic: central differences are exact up to rounding. */
        gerr = fmax(gerr, fabs(dV[k] - fd) / (fabs(fd) + 1e-3 / denom));
    }
    check(gerr <= 1e-5, "value gradient matches central differences (random)");
}

int main(void) {
    rng_seed(4242);
    for (int agg = 0; agg < 2; agg++)
        for (int dual = 0; dual < 2; dual++)
            for (int kl = 0; kl < 2; kl++)
                for (int ent = 0; ent < 2; ent++) test_combo(agg, dual, kl, ent);
    test_optional_inputs();
    test_hand();
    test_value_hand();
    test_value_random();
    return test_summary();
}
