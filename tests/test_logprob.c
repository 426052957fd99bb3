/* Checks the CPU fused lm_head log-prob kernel: forward against log-softmax computed in
 * float64 from float64 logits, backward against float64 central differences, the
 * accumulate and NULL conventions, independence from the chunk size, and that it never
 * touches more than chunk x V floats of scratch. */
#include "kernels/logprob.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

static float *randv(long n, double a) {
    float *x = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) x[i] = rng_sym(a);
    return x;
}

/* Targets in [0, V), with a leading run, a middle run and scattered rows of -1, the way
 * prompts and padding sit in a packed RL batch. */
static int *make_targets(int n, int V) {
    int *t = malloc(n * sizeof(int));
    for (int i = 0; i < n; i++) {
        int skip = i < 3 || (i >= n / 2 && i < n / 2 + 4) || i % 7 == 5;
        t[i] = skip ? -1 : (int)(rng_u01() * V);
    }
    return t;
}

/* ---- float64 reference ---- */

static double *ref_logits(const float *h, const float *w, int n, int d, int V) {
    double *z = malloc((size_t)n * V * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += (double)h[i * d + k] * w[v * d + k];
            z[(size_t)i * V + v] = s;
        }
    return z;
}

/* Log-prob of t, lse and entropy of one row of logits, written out the long way. */
static void ref_row(const double *z, int V, int t, double *logp, double *lse, double *ent) {
    double mx = z[0];
    for (int v = 1; v < V; v++) mx = fmax(mx, z[v]);
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(z[v] - mx);
    double l = mx + log(s), H = 0;
    for (int v = 0; v < V; v++) {
        double lp = z[v] - l;
        H -= exp(lp) * lp;
    }
    *logp = z[t] - l;
    *lse = l;
    *ent = H;
}

static double ref_row_loss(const double *z, int V, int t, double a, double b) {
    double lp, l, H;
    ref_row(z, V, t, &lp, &l, &H);
    return a * lp + b * H;
}

static double max_abs(const double *x, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ---- scratch with canaries ---- */

enum { GUARD = 64 };
static const uint32_t CANARY = 0x7fc0dead; /* a quiet NaN no kernel would write */

static float *scratch_new(int chunk, int V) {
    size_t len = (size_t)chunk * V + 2 * GUARD;
    float *buf = malloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++) memcpy(&buf[i], &CANARY, 4);
    return buf;
}
static int scratch_intact(const float *buf, int chunk, int V) {
    size_t body = (size_t)chunk * V;
    for (int i = 0; i < GUARD; i++) {
        uint32_t a, b;
        memcpy(&a, &buf[i], 4);
        memcpy(&b, &buf[GUARD + body + i], 4);
        if (a != CANARY || b != CANARY) return 0;
    }
    return 1;
}

static void fill_nan(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = NAN;
}

/* ---- forward ---- */

/* Runs the forward at one chunk size and compares it with the reference, as
 * |x - ref| / (1 + |ref|). Logits carry a float rounding of about d eps |h||w| =
 * 29 x 6e-8 x O(1) each, and lse, logp and entropy inherit it (errors seen: below 5e-7),
 * so tol is 1e-5 unless the logits are large. */
static void check_forward(const char *name, const float *h, const float *w, const int *tg, int n,
                          int d, int V, int chunk, double tol) {
    double *z = ref_logits(h, w, n, d, V);
    float *logp = malloc(n * sizeof(float)), *lse = malloc(n * sizeof(float));
    float *ent = malloc(n * sizeof(float)), *logp2 = malloc(n * sizeof(float));
    float *lse2 = malloc(n * sizeof(float));
    fill_nan(logp, n), fill_nan(lse, n), fill_nan(ent, n), fill_nan(logp2, n), fill_nan(lse2, n);
    float *buf = scratch_new(chunk, V);
    logprob_forward_cpu(logp, ent, lse, h, w, tg, n, d, V, chunk, buf + GUARD);
    int canary = scratch_intact(buf, chunk, V);
    logprob_forward_cpu(logp2, NULL, lse2, h, w, tg, n, d, V, chunk, buf + GUARD);
    canary &= scratch_intact(buf, chunk, V);
    double el = 0, es = 0, ee = 0;
    int skipped_zero = 1, same = 1;
    for (int i = 0; i < n; i++) {
        same &= memcmp(&logp[i], &logp2[i], 4) == 0 && memcmp(&lse[i], &lse2[i], 4) == 0;
        if (tg[i] < 0) {
            skipped_zero &= logp[i] == 0 && lse[i] == 0 && ent[i] == 0;
            continue;
        }
        double rl, rs, re;
        ref_row(z + (size_t)i * V, V, tg[i], &rl, &rs, &re);
        el = fmax(el, fabs(logp[i] - rl) / (1 + fabs(rl)));
        es = fmax(es, fabs(lse[i] - rs) / (1 + fabs(rs)));
        ee = fmax(ee, fabs(ent[i] - re) / (1 + fabs(re)));
    }
    printf("forward %s chunk=%d: err logp %.2e lse %.2e entropy %.2e (tol %.1e)\n", name, chunk, el,
           es, ee, tol);
    char what[160];
    snprintf(what, sizeof what, "forward %s chunk=%d: logp", name, chunk);
    check(el < tol, "%s", what);
    snprintf(what, sizeof what, "forward %s chunk=%d: lse", name, chunk);
    check(es < tol, "%s", what);
    snprintf(what, sizeof what, "forward %s chunk=%d: entropy", name, chunk);
    check(ee < tol, "%s", what);
    snprintf(what, sizeof what, "forward %s chunk=%d: skipped rows written as 0", name, chunk);
    check(skipped_zero, "%s", what);
    snprintf(what, sizeof what, "forward %s chunk=%d: entropy=NULL gives the same logp", name,
             chunk);
    check(same, "%s", what);
    snprintf(what, sizeof what, "forward %s chunk=%d: scratch canaries intact", name, chunk);
    check(canary, "%s", what);
    free(z), free(logp), free(lse), free(ent), free(logp2), free(lse2), free(buf);
}

/* ---- backward ---- */

/* Central differences of L = sum a logp + sum b H in float64. Perturbing h[i,k] moves only
 * row i's logits by eps w[:,k]; perturbing w[v,k] moves column v by eps h[:,k]. */
static void ref_grads(double *gh, double *gw, const float *h, const float *w, const int *tg,
                      const float *a, const float *b, int n, int d, int V) {
    const double eps = 1e-4;
    double *z = ref_logits(h, w, n, d, V);
    double *row = malloc(V * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) {
            double g = 0;
            if (tg[i] >= 0) {
                double bi = b ? b[i] : 0, Lp, Lm;
                for (int v = 0; v < V; v++) row[v] = z[(size_t)i * V + v] + eps * w[v * d + k];
                Lp = ref_row_loss(row, V, tg[i], a[i], bi);
                for (int v = 0; v < V; v++) row[v] = z[(size_t)i * V + v] - eps * w[v * d + k];
                Lm = ref_row_loss(row, V, tg[i], a[i], bi);
                g = (Lp - Lm) / (2 * eps);
            }
            gh[i * d + k] = g;
        }
    for (int v = 0; v < V; v++)
        for (int k = 0; k < d; k++) {
            double g = 0;
            for (int i = 0; i < n; i++) {
                if (tg[i] < 0) continue;
                double *zi = z + (size_t)i * V, z0 = zi[v], bi = b ? b[i] : 0;
                zi[v] = z0 + eps * h[i * d + k];
                double Lp = ref_row_loss(zi, V, tg[i], a[i], bi);
                zi[v] = z0 - eps * h[i * d + k];
                double Lm = ref_row_loss(zi, V, tg[i], a[i], bi);
                zi[v] = z0;
                g += (Lp - Lm) / (2 * eps);
            }
            gw[v * d + k] = g;
        }
    free(z), free(row);
}

/* Max |got - (pre + ref)| over max |ref|. */
static double grad_err(const float *got, const float *pre, const double *ref, long n) {
    double e = 0;
    for (long i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - pre[i] - ref[i]));
    return e / max_abs(ref, n);
}

/* gh, gw: the reference gradients of L for these a and b (b NULL: no entropy term). */
static void check_backward(const float *h, const float *w, const int *tg, const float *a,
                           const float *b, const double *gh, const double *gw, int n, int d, int V,
                           int chunk) {
    float *logp = malloc(n * sizeof(float)), *lse = malloc(n * sizeof(float));
    float *ent = malloc(n * sizeof(float));
    float *buf = scratch_new(chunk, V);
    logprob_forward_cpu(logp, ent, lse, h, w, tg, n, d, V, chunk, buf + GUARD);
    /* Gradients pre-filled, so a kernel that overwrites instead of adding fails. */
    float *dh0 = randv((long)n * d, 1.0), *dw0 = randv((long)V * d, 1.0);
    float *dh = malloc((size_t)n * d * sizeof(float)), *dw = malloc((size_t)V * d * sizeof(float));
    memcpy(dh, dh0, (size_t)n * d * sizeof(float));
    memcpy(dw, dw0, (size_t)V * d * sizeof(float));
    logprob_backward_cpu(dh, dw, a, b, h, w, tg, lse, n, d, V, chunk, buf + GUARD);
    int canary = scratch_intact(buf, chunk, V);

    double eh = grad_err(dh, dh0, gh, (long)n * d), ew = grad_err(dw, dw0, gw, (long)V * d);
    int skipped_untouched = 1;
    for (int i = 0; i < n; i++)
        if (tg[i] < 0) skipped_untouched &= memcmp(dh + i * d, dh0 + i * d, d * sizeof(float)) == 0;

    /* Each NULL output must leave the other one bit-identical. */
    float *dh1 = malloc((size_t)n * d * sizeof(float)),
          *dw1 = malloc((size_t)V * d * sizeof(float));
    memcpy(dh1, dh0, (size_t)n * d * sizeof(float));
    memcpy(dw1, dw0, (size_t)V * d * sizeof(float));
    logprob_backward_cpu(dh1, NULL, a, b, h, w, tg, lse, n, d, V, chunk, buf + GUARD);
    logprob_backward_cpu(NULL, dw1, a, b, h, w, tg, lse, n, d, V, chunk, buf + GUARD);
    canary &= scratch_intact(buf, chunk, V);
    int nulls = memcmp(dh1, dh, (size_t)n * d * sizeof(float)) == 0 &&
                memcmp(dw1, dw, (size_t)V * d * sizeof(float)) == 0;

    /* dz carries a few float roundings of p (~1e-7 relative) and of the logits; summed
     * over V = 211 or n = 37 terms in the products that gives ~1e-6 of the largest
     * gradient, and the central differences in float64 with eps = 1e-4 are good to ~1e-8.
     * The worst seen over 30 seeds is 1.2e-6; 2e-5 leaves room for unlucky sums, while a
     * formula slip (H left out of the entropy term, a sign, the one-hot scaled by 0.999)
     * costs 1e-3 or more. */
    const double tol = 2e-5;
    printf("backward chunk=%d %s: rel err dh %.2e dw %.2e (tol %.0e)\n", chunk,
           b ? "logp+entropy" : "logp only", eh, ew, tol);
    char what[160];
    const char *tag = b ? "logp+entropy" : "logp only";
    snprintf(what, sizeof what, "backward chunk=%d %s: dh vs central differences", chunk, tag);
    check(eh < tol, "%s", what);
    snprintf(what, sizeof what, "backward chunk=%d %s: dw vs central differences", chunk, tag);
    check(ew < tol, "%s", what);
    snprintf(what, sizeof what, "backward chunk=%d %s: skipped rows get no dh", chunk, tag);
    check(skipped_untouched, "%s", what);
    snprintf(what, sizeof what, "backward chunk=%d %s: dh or dw NULL leaves the other alone", chunk,
             tag);
    check(nulls, "%s", what);
    snprintf(what, sizeof what, "backward chunk=%d %s: scratch canaries intact", chunk, tag);
    check(canary, "%s", what);
    free(logp), free(lse), free(ent), free(buf);
    free(dh0), free(dw0), free(dh), free(dw), free(dh1), free(dw1);
}

/* ---- chunk independence ---- */

static double rel_diff(const float *x, const float *y, long n) {
    double e = 0, m = 0;
    for (long i = 0; i < n; i++) {
        e = fmax(e, fabs((double)x[i] - y[i]));
        m = fmax(m, fabs((double)y[i]));
    }
    return m > 0 ? e / m : e;
}

static void check_chunk_independence(const float *h, const float *w, const int *tg, int n, int d,
                                     int V) {
    float *a = randv(n, 1.0), *b = randv(n, 1.0);
    float *out[2][5];
    const int chunks[2] = {1, 64};
    for (int c = 0; c < 2; c++) {
        float *logp = malloc(n * sizeof(float)), *lse = malloc(n * sizeof(float));
        float *ent = malloc(n * sizeof(float));
        float *dh = calloc((size_t)n * d, sizeof(float)),
              *dw = calloc((size_t)V * d, sizeof(float));
        float *buf = malloc((size_t)chunks[c] * V * sizeof(float));
        logprob_forward_cpu(logp, ent, lse, h, w, tg, n, d, V, chunks[c], buf);
        logprob_backward_cpu(dh, dw, a, b, h, w, tg, lse, n, d, V, chunks[c], buf);
        out[c][0] = logp, out[c][1] = lse, out[c][2] = ent, out[c][3] = dh, out[c][4] = dw;
        free(buf);
    }
    const long len[5] = {n, n, n, (long)n * d, (long)V * d};
    const char *names[5] = {"logp", "lse", "entropy", "dh", "dw"};
    /* Rows are independent, so only BLAS's blocking can change with the chunk, and it
     * does: OpenBLAS gives other bits for the same row in a 1-row and a many-row sgemm.
     * logp, lse and entropy are per-row and stay within 1e-6. dh sums V = 211 products
     * (dw sums 37) in a blocking-dependent order, which moves it by about
     * sqrt(211) x 6e-8 = 9e-7 of its largest entry (up to 9.7e-7 over 30 seeds), so the
     * gradients get 3e-6. A chunk-boundary bug (a row lost, doubled or shifted) is O(1). */
    for (int k = 0; k < 5; k++) {
        double e = rel_diff(out[0][k], out[1][k], len[k]), tol = k < 3 ? 1e-6 : 3e-6;
        printf("chunk 1 vs 64: %s rel diff %.2e (tol %.0e)\n", names[k], e, tol);
        char what[96];
        snprintf(what, sizeof what, "chunk 1 vs 64: %s within %.0e", names[k], tol);
        check(e < tol, "%s", what);
        free(out[0][k]), free(out[1][k]);
    }
    free(a), free(b);
}

int main(int argc, char **argv) {
    test_quiet = 1;
    /* A seed on the command line reruns the test on other random inputs. */
    rng_seed(argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed1057);
    const int n = 37, d = 29, V = 211;
    float *h = randv((long)n * d, 1.0), *w = randv((long)V * d, 1.0);
    int *tg = make_targets(n, V);
    const int chunks[3] = {1, 5, 64};

    /* Logits of std ~1.8 and max ~6: errors ~1e-6 (see check_forward). */
    for (int c = 0; c < 3; c++) check_forward("std", h, w, tg, n, d, V, chunks[c], 1e-5);

    /* Logits up to ~300, far past where exp overflows in float without the max taken
     * out. Their absolute rounding grows with them (300 x 6e-8 = 2e-5 each), and the
     * entropy, a p-weighted sum of logit differences, inherits ~1e-5 of it (up to 7.7e-6
     * over 30 seeds); 5e-5 allows that, while overflow gives inf or NaN. */
    float *wbig = malloc((size_t)V * d * sizeof(float));
    for (long i = 0; i < (long)V * d; i++) wbig[i] = 50.0f * w[i];
    check_forward("large-logits", h, wbig, tg, n, d, V, 5, 5e-5);

    /* A vocabulary the size of a real model's, where the softmax sums are long. */
    {
        const int n2 = 3, d2 = 16, V2 = 50000;
        float *h2 = randv((long)n2 * d2, 1.0), *w2 = randv((long)V2 * d2, 1.0);
        int tg2[3] = {7, -1, V2 - 1};
        check_forward("V=50000", h2, w2, tg2, n2, d2, V2, 2, 1e-5);
        free(h2), free(w2);
    }
    /* More valid rows than the kernel's per-chunk row list, with a larger chunk. */
    {
        const int n3 = 1500, d3 = 8, V3 = 33;
        float *h3 = randv((long)n3 * d3, 1.0), *w3 = randv((long)V3 * d3, 1.0);
        int *tg3 = make_targets(n3, V3);
        check_forward("n=1500", h3, w3, tg3, n3, d3, V3, 2048, 1e-5);
        free(h3), free(w3), free(tg3);
    }
    /* Every row skipped: nothing to compute, outputs still zeroed. */
    {
        int none[4] = {-1, -1, -1, -1};
        check_forward("all-skipped", h, w, none, 4, d, V, 3, 1e-5);
    }

    {
        float *a = randv(n, 1.0), *b = randv(n, 1.0);
        double *gh = malloc((size_t)n * d * sizeof(double));
        double *gw = malloc((size_t)V * d * sizeof(double));
        ref_grads(gh, gw, h, w, tg, a, b, n, d, V);
        for (int c = 0; c < 3; c++) check_backward(h, w, tg, a, b, gh, gw, n, d, V, chunks[c]);
        ref_grads(gh, gw, h, w, tg, a, NULL, n, d, V);
        check_backward(h, w, tg, a, NULL, gh, gw, n, d, V, 5);
        free(a), free(b), free(gh), free(gw);
    }
    check_chunk_independence(h, w, tg, n, d, V);

    free(h), free(w), free(wbig), free(tg);
    return test_summary();
}
