/* Holds the CUDA RL kernels (reward.h, advantage.h, ppo.h) against their CPU twins on random
 * ragged batches: rows with a random prompt offset and response length, some rows fully
 * masked, a few with holes in the mask, and NaN on every masked input position (the kernels
 * must never read it into a result). Shapes N = 1, 4, 12, 257 by T = 1, 17, 300, 1025, and
 * rows of 4096 to 8200 tokens; every reward granularity and transform, both RLOO variants,
 * GRPO with K = 4 or 1, PPO with and without dual clip, both aggregations, k1 / k3, entropy on
 * and off, and the value loss. The process baselines also run over a table of group sizes
 * (K T) that takes each of their paths: the one-pass kernels at 1, 2, 4 and 8 chunks per
 * thread and the strided kernels past them.
 * Every reduction is also run twice and must give bit-identical results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"
#include "kernels/advantage.h"
#include "kernels/kernels_cuda.h"
#include "kernels/ppo.h"
#include "kernels/reward.h"

/* fp32 arrays: 1e-5. The per-row sums, scans and group statistics are taken in double on
 * both sides, only in another order, so the float results differ by at most an ulp or so. */
#define ARR_TOL 1e-5
/* Returned scalars are double sums over the batch in another order: ~1e-15 relative. */
#define SCALAR_TOL 1e-6

static const int Ns[] = {1, 4, 12, 257}, Ts[] = {1, 17, 300, 1025};
enum { STEP_DELIM = 7 };

/* Each row: a random prompt offset and response length; ~15% rows empty (row 1 always when
 * N > 1), ~10% with holes. */
static float *make_mask(int N, int T) {
    float *m = (float *)malloc(sizeof(float) * (size_t)N * T);
    for (int i = 0; i < N; i++) {
        int lo = (int)(rng_u01() * (T / 2 + 1)), hi = lo + (int)(rng_u01() * (T - lo + 1));
        if (rng_u01() < 0.15 || i == 1) hi = lo;
        int holes = rng_u01() < 0.1;
        for (int t = 0; t < T; t++)
            m[(size_t)i * T + t] = t >= lo && t < hi && (!holes || rng_u01() < 0.7);
    }
    return m;
}

/* n uniform floats in [lo, hi), NaN where mask (if given) is 0. */
static float *rand_masked(long n, double lo, double hi, const float *mask) {
    float *x = (float *)malloc(sizeof(float) * (n ? n : 1));
    for (long k = 0; k < n; k++) x[k] = (float)(lo + (hi - lo) * rng_u01());
    if (mask)
        for (long k = 0; k < n; k++)
            if (!(mask[k] > 0)) x[k] = NAN;
    return x;
}

/* Compares n device floats with the host reference; frees the host copy. */
static int check_arr(const char *what, const char *tag, const float *dev, const float *want,
                     long n) {
    float *got = HOST_F(dev, n);
    double e = rel_err(got, want, n);
    free(got);
    return check(e < ARR_TOL, "%s %s: rel_err %.3g", what, tag, e);
}

static int scalar_close(double got, double want) {
    return fabs(got - want) <= SCALAR_TOL * fmax(fabs(want), 1e-6);
}

static int check_scalar(const char *what, const char *tag, double got, double want) {
    return check(scalar_close(got, want), "%s %s: got %.17g want %.17g", what, tag, got, want);
}

static int check_same_bits(const char *what, const char *tag, const void *a, const void *b,
                           size_t bytes) {
    return check(memcmp(a, b, bytes) == 0, "%s %s: two runs bit-identical", what, tag);
}

/* The same for two device arrays of n floats. */
static int check_same_dev(const char *what, const char *tag, const float *d1, const float *d2,
                          long n) {
    float *a = HOST_F(d1, n), *b = HOST_F(d2, n);
    int ok = check_same_bits(what, tag, a, b, sizeof(float) * (size_t)n);
    free(a), free(b);
    return ok;
}

/* ---- reward.h ---- */

static void test_rewards(int N, int T) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *lp = rand_masked(n, -5, 0, m), *lr = rand_masked(n, -5, 0, m);
    int *tg = (int *)malloc(sizeof(int) * n);
    for (long k = 0; k < n; k++) tg[k] = rng_u01() < 0.1 ? STEP_DELIM : (int)(rng_u01() * 50);
    float *dm = DEV_F(m, n), *dlp = DEV_F(lp, n), *dlr = DEV_F(lr, n), *want = malloc(4 * n);
    int *dtg = DEV_I(tg, n);
    const char *gname[] = {"token", "step", "whole"}, *xname[] = {"none", "clip", "delta"};
    char tag[96];
    for (int g = 0; g < 3; g++)
        for (int x = 0; x < 3; x++) {
            snprintf(tag, sizeof tag, "%s/%s N=%d T=%d", gname[g], xname[x], N, T);
            const int *t_h = g == REWARD_STEP ? tg : NULL, *t_d = g == REWARD_STEP ? dtg : NULL;
            prime_token_rewards_cpu(want, lp, lr, m, t_h, N, T, 0.7f, g, STEP_DELIM, x, 0.1f);
            float *dr = DEV_POISON_F(n);
            prime_token_rewards_cuda(dr, dlp, dlr, dm, t_d, N, T, 0.7f, g, STEP_DELIM, x, 0.1f);
            check_arr("prime_token_rewards", tag, dr, want, n);
            dev_free(dr);
        }
    /* the suffix maximum of whole-response rewards, NaN where masked */
    prime_token_rewards_cpu(want, lp, lr, m, tg, N, T, 0.7f, REWARD_STEP, STEP_DELIM, 0, 0.0f);
    for (long k = 0; k < n; k++)
        if (!(m[k] > 0)) want[k] = NAN;
    float *dr = DEV_F(want, n);
    float w = reward_suffix_absmax_cpu(want, m, N, T);
    float g1 = reward_suffix_absmax_cuda(dr, dm, N, T),
          g2 = reward_suffix_absmax_cuda(dr, dm, N, T);
    snprintf(tag, sizeof tag, "N=%d T=%d", N, T);
    check_scalar("reward_suffix_absmax", tag, g1, w);
    check_same_bits("reward_suffix_absmax", tag, &g1, &g2, sizeof g1);
    dev_free(dr);
    dev_free(dm), dev_free(dlp), dev_free(dlr), dev_free(dtg);
    free(m), free(lp), free(lr), free(tg), free(want);
}

static void test_prm_loss(int N, int T) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *lp = rand_masked(n, -5, 0, m), *lr = rand_masked(n, -5, 0, m);
    float *o = rand_masked(N, 0, 1, NULL), *wd = malloc(4 * n), *ws = malloc(4 * N);
    for (int i = 0; i < N; i++) o[i] = o[i] < 0.5f ? 0.0f : 1.0f;
    double denom = N + 0.5;
    double want = prm_loss_cpu(wd, ws, lp, lr, m, o, N, T, 0.05f, denom);
    float *dm = DEV_F(m, n), *dlp = DEV_F(lp, n), *dlr = DEV_F(lr, n), *dout = DEV_F(o, N);
    float *dd = DEV_POISON_F(n), *dsc = DEV_POISON_F(N);
    double g1 = prm_loss_cuda(dd, dsc, dlp, dlr, dm, dout, N, T, 0.05f, denom);
    double g2 = prm_loss_cuda(dd, dsc, dlp, dlr, dm, dout, N, T, 0.05f, denom);
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d T=%d", N, T);
    check_scalar("prm_loss", tag, g1, want);
    check_same_bits("prm_loss", tag, &g1, &g2, sizeof g1);
    check_arr("prm_loss dlogp", tag, dd, wd, n);
    check_arr("prm_loss score", tag, dsc, ws, N);
    dev_free(dm), dev_free(dlp), dev_free(dlr), dev_free(dout), dev_free(dd), dev_free(dsc);
    free(m), free(lp), free(lr), free(o), free(wd), free(ws);
}

/* ---- advantage.h: group baselines ---- */

static void test_rloo(int N, int T, int K) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *r = rand_masked(n, -1, 1, m), *o = rand_masked(N, 0, 1, NULL);
    float *want = malloc(4 * n), *dm = DEV_F(m, n), *dr = DEV_F(r, n), *dox = DEV_F(o, N);
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d T=%d K=%d", N, T, K);
    float *d = DEV_POISON_F(N);
    rloo_outcome_cpu(want, o, N, K);
    rloo_outcome_cuda(d, dox, N, K);
    check_arr("rloo_outcome", tag, d, want, N);
    dev_free(d);
    for (int paper = 0; paper < 2; paper++) {
        const char *what = paper ? "rloo_process paper" : "rloo_process prime";
        float *d2 = DEV_POISON_F(n);
        d = DEV_POISON_F(n);
        rloo_process_cpu(want, r, m, N, T, K, paper);
        rloo_process_cuda(d, dr, dm, N, T, K, paper);
        rloo_process_cuda(d2, dr, dm, N, T, K, paper);
        check_arr(what, tag, d, want, n);
        check_same_dev(what, tag, d, d2, n);
        dev_free(d), dev_free(d2);
    }
    dev_free(dm), dev_free(dr), dev_free(dox);
    free(m), free(r), free(o), free(want);
}

static void test_grpo(int N, int T, int K) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *r = rand_masked(n, -1, 1, m), *o = rand_masked(N, 0, 1, NULL);
    float *want = malloc(4 * n), *dm = DEV_F(m, n), *dr = DEV_F(r, n), *dox = DEV_F(o, N);
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d T=%d K=%d", N, T, K);
    float *d = DEV_POISON_F(N);
    grpo_outcome_cpu(want, o, N, K, 1e-6f);
    grpo_outcome_cuda(d, dox, N, K, 1e-6f);
    check_arr("grpo_outcome", tag, d, want, N);
    dev_free(d);
    float *d2 = DEV_POISON_F(n);
    d = DEV_POISON_F(n);
    grpo_process_cpu(want, r, m, N, T, K, 1e-6f);
    grpo_process_cuda(d, dr, dm, N, T, K, 1e-6f);
    grpo_process_cuda(d2, dr, dm, N, T, K, 1e-6f);
    check_arr("grpo_process", tag, d, want, n);
    check_same_dev("grpo_process", tag, d, d2, n);
    dev_free(d), dev_free(d2);
    dev_free(dm), dev_free(dr), dev_free(dox);
    free(m), free(r), free(o), free(want);
}

static void test_group_ops(int N, int T) {
    if (N % 4 == 0) {
        test_rloo(N, T, 4);
        test_grpo(N, T, 4);
    } else {
        test_grpo(N, T, 1);
    }
    if (N == 257) test_rloo(N + 3, T, 4); /* RLOO needs K >= 2: 65 groups of 4 instead */
}

/* Group sizes n = K T that take each path of rloo_process_cuda and grpo_process_cuda: one
 * block per group holding it in registers, 1, 2, 4 or 8 chunks of 2048 elements per thread
 * (n at a chunk boundary, just past one, or leaving chunks empty), 16-byte loads when n is a
 * multiple of 4 and single ones otherwise, rows shorter than a thread's 8 elements, K = 2 and
 * 16, K above the block size; and the strided kernels for n > 8 chunks. */
static void test_group_shapes(void) {
    static const int shapes[][3] = {
        /* groups, T, K */
        {3, 512, 4},   /* n = 2048: 1 chunk, full */
        {3, 17, 2},    /* 34: single loads */
        {3, 1, 16},    /* every element a row */
        {3, 3, 16},    /* rows shorter than 8 elements */
        {2, 5, 2},     /* the same, single loads */
        {3, 7, 16},    /* 112 */
        {3, 1023, 2},  /* 2046: single loads */
        {3, 2048, 2},  /* 4096: 2 chunks, full */
        {3, 1100, 2},  /* 2200: 2 chunks, the second nearly empty */
        {3, 512, 16},  /* 8192: 4 chunks, full */
        {2, 4095, 2},  /* 8190: 4 chunks, single loads */
        {2, 1024, 16}, /* 16384: 8 chunks, full */
        {2, 8192, 2},  /* 16384: rows of 4 chunks */
        {2, 3000, 4},  /* 12000: 8 chunks, the last two empty */
        {2, 1000, 16}, /* 16000 */
        {2, 16, 1000}, /* K above the block size */
        {2, 8193, 2},  /* 16386: strided, single loads */
        {2, 1100, 16}, /* 17600: strided */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int G = shapes[i][0], T = shapes[i][1], K = shapes[i][2];
        test_rloo(G * K, T, K);
        test_grpo(G * K, T, K);
    }
}

/* ---- advantage.h: per-row ops ---- */

static void test_combine(int N, int T, const float *m, const float *dm, const char *tag) {
    long n = (long)N * T;
    float *p = rand_masked(n, -1, 1, m), *o = rand_masked(N, -1, 1, NULL), *want = malloc(4 * n);
    float *dp = DEV_F(p, n), *dox = DEV_F(o, N);
    const char *name[] = {"combine_rewards proc+out", "combine_rewards out only",
                          "combine_rewards proc only"};
    for (int v = 0; v < 3; v++) {
        const float *ph = v == 1 ? NULL : p, *pd = v == 1 ? NULL : dp;
        const float *oh = v == 2 ? NULL : o, *od = v == 2 ? NULL : dox;
        float *d = DEV_POISON_F(n);
        combine_rewards_cpu(want, ph, oh, m, N, T, 0.7f, 1.3f);
        combine_rewards_cuda(d, pd, od, dm, N, T, 0.7f, 1.3f);
        check_arr(name[v], tag, d, want, n);
        dev_free(d);
    }
    dev_free(dp), dev_free(dox);
    free(p), free(o), free(want);
}

static void test_moments_whiten(int N, int T, const float *m, const float *dm, const char *tag) {
    long n = (long)N * T;
    float *x = rand_masked(n, -2, 3, m), *want = malloc(4 * n), *dx = DEV_F(x, n);
    /* accumulating outputs: the same random start on both sides */
    double s0 = rng_sym(5), q0 = 10 + rng_sym(5), c0 = 3;
    double ws = s0, wq = q0, wc = c0, g1[3] = {s0, q0, c0}, g2[3] = {s0, q0, c0};
    masked_moments_cpu(&ws, &wq, &wc, x, m, N, T);
    masked_moments_cuda(&g1[0], &g1[1], &g1[2], dx, dm, N, T);
    masked_moments_cuda(&g2[0], &g2[1], &g2[2], dx, dm, N, T);
    check(scalar_close(g1[0], ws) && scalar_close(g1[1], wq) && g1[2] == wc,
          "masked_moments %s: sum %.17g/%.17g sumsq %.17g/%.17g count %g/%g", tag, g1[0], ws, g1[1],
          wq, g1[2], wc);
    check_same_bits("masked_moments", tag, g1, g2, sizeof g1);
    float *d = DEV_POISON_F(n);
    whiten_cpu(want, x, m, N, T, ws, wq, wc);
    whiten_cuda(d, dx, dm, N, T, ws, wq, wc);
    check_arr("whiten", tag, d, want, n);
    whiten_cuda(dx, dx, dm, N, T, ws, wq, wc); /* in place */
    check_arr("whiten in place", tag, dx, want, n);
    dev_free(d), dev_free(dx);
    free(x), free(want);
}

static void test_returns_gae(int N, int T, const float *m, const float *dm, const char *tag) {
    long n = (long)N * T;
    float *c = rand_masked(n, -1, 1, m), *V = rand_masked(n, -2, 2, m);
    float *wa = malloc(4 * n), *wr = malloc(4 * n), *dc = DEV_F(c, n), *dV = DEV_F(V, n);
    const float gammas[] = {1.0f, 0.95f};
    char t2[96];
    for (int k = 0; k < 2; k++) {
        snprintf(t2, sizeof t2, "%s gamma=%g", tag, gammas[k]);
        float *d = DEV_POISON_F(n);
        discounted_returns_cpu(wa, c, m, N, T, gammas[k]);
        discounted_returns_cuda(d, dc, dm, N, T, gammas[k]);
        check_arr("discounted_returns", t2, d, wa, n);
        dev_free(d);
        float *dA = DEV_POISON_F(n), *dR = DEV_POISON_F(n);
        gae_cpu(wa, wr, c, V, m, N, T, gammas[k], 0.95f);
        gae_cuda(dA, dR, dc, dV, dm, N, T, gammas[k], 0.95f);
        check_arr("gae A", t2, dA, wa, n);
        check_arr("gae R", t2, dR, wr, n);
        dev_free(dA), dev_free(dR);
    }
    dev_free(dc), dev_free(dV);
    free(c), free(V), free(wa), free(wr);
}

static void test_row_ops(int N, int T) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *dm = DEV_F(m, n);
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d T=%d", N, T);
    test_combine(N, T, m, dm, tag);
    test_moments_whiten(N, T, m, dm, tag);
    test_returns_gae(N, T, m, dm, tag);
    dev_free(dm);
    free(m);
}

/* ---- ppo.h ---- */

typedef struct {
    float *m, *lp, *lo, *lr, *ent, *adv;       /* host */
    float *dm, *dlp, *dlo, *dlr, *dent, *dadv; /* device */
} PpoBatch;

static void ppo_batch(PpoBatch *b, int N, int T) {
    long n = (long)N * T;
    b->m = make_mask(N, T);
    b->lp = rand_masked(n, -3, 0, b->m);
    b->lo = rand_masked(n, -0.4, 0.4, b->m); /* logp_old = logp + noise: the clip acts */
    for (long k = 0; k < n; k++) b->lo[k] += b->lp[k];
    b->lr = rand_masked(n, -3, 0, b->m);
    b->ent = rand_masked(n, 0, 4, b->m);
    b->adv = rand_masked(n, -2, 2, b->m);
    b->dm = DEV_F(b->m, n), b->dlp = DEV_F(b->lp, n), b->dlo = DEV_F(b->lo, n);
    b->dlr = DEV_F(b->lr, n), b->dent = DEV_F(b->ent, n), b->dadv = DEV_F(b->adv, n);
}

static void ppo_batch_free(PpoBatch *b) {
    dev_free(b->dm), dev_free(b->dlp), dev_free(b->dlo), dev_free(b->dlr), dev_free(b->dent);
    dev_free(b->dadv);
    free(b->m), free(b->lp), free(b->lo), free(b->lr), free(b->ent), free(b->adv);
}

static void check_stats(const char *tag, const PpoStats *g, const PpoStats *w) {
    int ok = scalar_close(g->pg_loss, w->pg_loss) && scalar_close(g->kl_ref, w->kl_ref) &&
             scalar_close(g->entropy, w->entropy) && scalar_close(g->clip_frac, w->clip_frac) &&
             scalar_close(g->approx_kl_old, w->approx_kl_old) && g->valid == w->valid;
    check(ok,
          "ppo_loss stats %s: pg %.10g/%.10g kl %.10g/%.10g ent %.10g/%.10g clip %.10g/%.10g "
          "akl %.10g/%.10g valid %g/%g",
          tag, g->pg_loss, w->pg_loss, g->kl_ref, w->kl_ref, g->entropy, w->entropy, g->clip_frac,
          w->clip_frac, g->approx_kl_old, w->approx_kl_old, g->valid, w->valid);
}

/* ref_on 0: no reference log-probs at all (NULL; the KL coefficient must be 0) */
static void ppo_case(const PpoBatch *b, int N, int T, PpoParams p, int ent_on, int ref_on,
                     const char *tag) {
    long n = (long)N * T;
    double tden = 0.37 * n + 1, sden = N + 0.25;
    float *wd = malloc(4 * n), *we = malloc(4 * n);
    PpoStats ws, g1, g2;
    const float *eh = ent_on ? b->ent : NULL, *ed = ent_on ? b->dent : NULL;
    const float *rh = ref_on ? b->lr : NULL, *rd = ref_on ? b->dlr : NULL;
    double want = ppo_loss_cpu(wd, ent_on ? we : NULL, &ws, b->lp, b->lo, rh, eh, b->adv, b->m, N,
                               T, p, tden, sden);
    float *dd = DEV_POISON_F(n), *de = ent_on ? DEV_POISON_F(n) : NULL;
    double l1 =
        ppo_loss_cuda(dd, de, &g1, b->dlp, b->dlo, rd, ed, b->dadv, b->dm, N, T, p, tden, sden);
    double l2 =
        ppo_loss_cuda(dd, de, &g2, b->dlp, b->dlo, rd, ed, b->dadv, b->dm, N, T, p, tden, sden);
    check_scalar("ppo_loss", tag, l1, want);
    check_stats(tag, &g1, &ws);
    check(l1 == l2 && memcmp(&g1, &g2, sizeof g1) == 0, "ppo_loss %s: two runs bit-identical", tag);
    check_arr("ppo_loss dlogp", tag, dd, wd, n);
    if (ent_on) check_arr("ppo_loss dent", tag, de, we, n);
    dev_free(dd), dev_free(de);
    free(wd), free(we);
}

static void test_ppo(int N, int T) {
    PpoBatch b;
    ppo_batch(&b, N, T);
    char tag[128];
    for (int dual = 0; dual < 2; dual++)
        for (int agg = 0; agg < 2; agg++)
            for (int kl = 0; kl < 2; kl++)
                for (int ent = 0; ent < 2; ent++) {
                    PpoParams p = {0.2f,  0.28f, dual ? 3.0f : 0.0f, agg,
                                   0.05f, kl,    ent ? 0.01f : 0.0f};
                    snprintf(tag, sizeof tag, "dual=%d agg=%d kl=k%d ent=%d N=%d T=%d", dual, agg,
                             kl ? 3 : 1, ent, N, T);
                    ppo_case(&b, N, T, p, ent, 1, tag);
                }
    for (int ent = 0; ent < 2; ent++) { /* no reference log-probs (kl_coef 0) */
        PpoParams p = {0.2f, 0.28f, 0.0f, PPO_AGG_TOKEN_MEAN, 0.0f, KL_K3, ent ? 0.01f : 0.0f};
        snprintf(tag, sizeof tag, "no reference, ent=%d N=%d T=%d", ent, N, T);
        ppo_case(&b, N, T, p, ent, 0, tag);
    }
    ppo_batch_free(&b);
}

static void test_value_loss(int N, int T) {
    long n = (long)N * T;
    float *m = make_mask(N, T), *V = rand_masked(n, -2, 2, m), *Vo = rand_masked(n, -0.5, 0.5, m);
    float *R = rand_masked(n, -2, 2, m), *want = malloc(4 * n);
    for (long k = 0; k < n; k++) Vo[k] += V[k];
    double den = 0.5 * n + 1, wc = -1, c1 = -2, c2 = -3;
    double wl = value_loss_cpu(want, &wc, V, Vo, R, m, N, T, 0.2f, den);
    float *dm = DEV_F(m, n), *dV = DEV_F(V, n), *dVo = DEV_F(Vo, n), *dR = DEV_F(R, n);
    float *d = DEV_POISON_F(n);
    double l1 = value_loss_cuda(d, &c1, dV, dVo, dR, dm, N, T, 0.2f, den);
    double l2 = value_loss_cuda(d, &c2, dV, dVo, dR, dm, N, T, 0.2f, den);
    char tag[64];
    snprintf(tag, sizeof tag, "N=%d T=%d", N, T);
    check_scalar("value_loss", tag, l1, wl);
    check_scalar("value_loss clip_frac", tag, c1, wc);
    check(l1 == l2 && c1 == c2, "value_loss %s: two runs bit-identical", tag);
    check_arr("value_loss dV", tag, d, want, n);
    dev_free(dm), dev_free(dV), dev_free(dVo), dev_free(dR), dev_free(d);
    free(m), free(V), free(Vo), free(R), free(want);
}

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(20240611);
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
        for (size_t b = 0; b < sizeof Ts / sizeof Ts[0]; b++) {
            int N = Ns[a], T = Ts[b];
            test_rewards(N, T);
            test_prm_loss(N, T);
            test_group_ops(N, T);
            test_row_ops(N, T);
            test_ppo(N, T);
            test_value_loss(N, T);
        }
    /* rows longer than one 2048-element block step, the 16-byte path (T % 4 == 0), and the
     * step-reward kernel's multi-step shared-memory layout up to its 8192 limit and past it */
    const int longT[][2] = {{8, 4100}, {4, 4096}, {5, 8192}, {3, 8200}};
    for (size_t i = 0; i < sizeof longT / sizeof longT[0]; i++) {
        int N = longT[i][0], T = longT[i][1];
        test_rewards(N, T);
        test_group_ops(N, T);
        test_row_ops(N, T);
        test_ppo(N, T);
        test_value_loss(N, T);
    }
    test_group_shapes();
    return test_summary();
}
