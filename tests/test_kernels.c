/* Checks the CPU layer kernels (embedding, rmsnorm, linear, rope, swiglu, attention): every
 * forward against a plain float64 implementation written here, every backward against float64
 * central differences of L = sum(dy * y) taken on that float64 forward, the accumulate (+=)
 * convention of every gradient, causality of attention, and bit-identical results for 1, 2
 * and 3 OpenMP threads.
 *
 * Errors are printed as max |got - ref| / max |ref| over the checked tensor (the tensor's own
 * scale). Tolerances: fp32 kernels agree with float64 to ~1e-7..1e-6 at these sizes, so 1e-5
 * on forwards keeps 10x-100x margin; central differences with h = 1e-5 on O(1) inputs are
 * accurate to ~1e-9, so gradient errors are the kernel's own fp32 rounding and 1e-4 keeps
 * the same margin. A wrong formula (a missing term, a wrong head mapping, a causal leak)
 * shows up at 1e-2 or more. */
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

#define TOL_FWD  1e-5
#define TOL_GRAD 1e-4
/* (c + g) - c vs g: a kernel that adds term by term into the pre-filled buffer rounds every
 * partial sum differently from one that starts at 0, ~sqrt(terms) ulps of max(|g|, c); a
 * missing or doubled accumulation is off by c itself. */
#define TOL_ACC 1e-5
#define FD_H    1e-5
#define PREFILL 0.75f

/* One line per check: "PASS"/"FAIL", the name, and the error against its tolerance. */
static void report(const char *what, double err, double tol) {
    check(err <= tol, "%-62s err %.2e (tol %.0e)", what, err, tol); /* NaN fails */
}

/* ---- random numbers and buffers ---- */

static float rng_uni(double lo, double hi) {
    return (float)(lo + (hi - lo) * rng_u01());
}
static int rng_int(int n) {
    return (int)(rng_u01() * n) % n;
}

static void *xalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}
static float *fvec(long n) {
    return xalloc((size_t)n * sizeof(float));
}
static double *dvec(long n) {
    return xalloc((size_t)n * sizeof(double));
}
static float *frand(long n, double lo, double hi) {
    float *x = fvec(n);
    for (long i = 0; i < n; i++) x[i] = rng_uni(lo, hi);
    return x;
}
static float *ffill(long n, float c) {
    float *x = fvec(n);
    for (long i = 0; i < n; i++) x[i] = c;
    return x;
}
static float *fcopy(const float *a, long n) {
    float *x = fvec(n);
    memcpy(x, a, (size_t)n * sizeof(float));
    return x;
}
static double *to_d(const float *a, long n) {
    double *x = dvec(n);
    for (long i = 0; i < n; i++) x[i] = a[i];
    return x;
}

/* max |got - ref| / max |ref| */
static double rel_err(const float *got, const double *ref, long n) {
    double e = 0, s = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= e)) e = d; /* keeps NaN */
        if (fabs(ref[i]) > s) s = fabs(ref[i]);
    }
    return e / (s > 0 ? s : 1.0);
}

/* The accumulate convention: g1 came from a buffer pre-filled with PREFILL, g0 from zeros,
 * so g1 - PREFILL must equal g0 up to the rounding of the one extra addition. */
static void check_accum(const char *what, const float *g0, const float *g1, long n) {
    double e = 0, s = PREFILL;
    for (long i = 0; i < n; i++) {
        double d = fabs(((double)g1[i] - PREFILL) - g0[i]);
        if (!(d <= e)) e = d;
        if (fabs(g0[i]) > s) s = fabs(g0[i]);
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%.200s accumulates (+=)", what);
    report(buf, e / s, TOL_ACC);
}

/* ---- finite differences ---- */

typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to x[i] (x lives inside ctx) at ncoords random
 * coordinates, or at all of them when ncoords >= n, against the kernel's gradient. */
static void check_fd(const char *what, loss_fn f, void *ctx, double *x, long n, const float *grad,
                     long ncoords) {
    long m = ncoords < n ? ncoords : n;
    double e = 0, s = 0;
    for (long c = 0; c < m; c++) {
        long i = ncoords < n ? (long)(rng_u01() * n) % n : c;
        double x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = f(ctx);
        x[i] = x0 - FD_H;
        double lm = f(ctx);
        x[i] = x0;
        double fd = (lp - lm) / (2 * FD_H);
        double d = fabs(grad[i] - fd);
        if (!(d <= e)) e = d;
        if (fabs(fd) > s) s = fabs(fd);
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%.180s vs finite differences (%ld coords)", what, m);
    report(buf, e / (s > 0 ? s : 1.0), TOL_GRAD);
}

static double dot_d(const double *a, const double *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Thread count for the next parallel regions; 0 restores the count the program started with. */
static int g_default_threads;
static void set_threads(int nt) {
    omp_set_num_threads(nt > 0 ? nt : g_default_threads);
}

/* ======================= embedding ======================= */

static void ref_embedding(double *y, const int *ids, const double *table, int n, int d) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] = table[(size_t)ids[i] * d + j];
}

typedef struct {
    int n, d;
    const int *ids;
    double *table, *dy, *y;
} EmbCtx;

static double emb_loss(void *p) {
    EmbCtx *c = p;
    ref_embedding(c->y, c->ids, c->table, c->n, c->d);
    return dot_d(c->dy, c->y, (long)c->n * c->d);
}

static void test_embedding(int n, int d, int V, long ncoords) {
    char name[128];
    int *ids = xalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) ids[i] = rng_int(V);
    ids[n - 1] = ids[0]; /* at least one repeated id */
    float *table = frand((long)V * d, -1, 1), *dy = frand((long)n * d, -1, 1);
    float *y = ffill((long)n * d, NAN);
    embedding_forward_cpu(y, ids, table, n, d);
    double *tabled = to_d(table, (long)V * d), *yd = dvec((long)n * d);
    ref_embedding(yd, ids, tabled, n, d);
    snprintf(name, sizeof name, "embedding fwd n=%d d=%d V=%d (exact copy)", n, d, V);
    report(name, rel_err(y, yd, (long)n * d), 0.0);

    float *g0 = ffill((long)V * d, 0), *g1 = ffill((long)V * d, PREFILL);
    embedding_backward_cpu(g0, dy, ids, n, d);
    embedding_backward_cpu(g1, dy, ids, n, d);
    snprintf(name, sizeof name, "embedding bwd n=%d d=%d dtable", n, d);
    check_accum(name, g0, g1, (long)V * d);
    EmbCtx c = {n, d, ids, tabled, to_d(dy, (long)n * d), yd};
    check_fd(name, emb_loss, &c, tabled, (long)V * d, g0, ncoords);

    /* Thread-count independence of the scatter, which must sum repeated ids in token order. */
    int same = 1;
    for (int nt = 1; nt <= 3; nt++) {
        float *g = ffill((long)V * d, PREFILL);
        set_threads(nt);
        embedding_backward_cpu(g, dy, ids, n, d);
        set_threads(0);
        same &= memcmp(g, g1, (size_t)V * d * sizeof(float)) == 0;
        free(g);
    }
    snprintf(name, sizeof name, "embedding bwd n=%d d=%d bit-identical for 1, 2, 3 threads", n, d);
    check(same, "%s", name);
    free(ids), free(table), free(dy), free(y), free(tabled), free(yd), free(g0), free(g1);
    free(c.dy);
}

/* ======================= rmsnorm ======================= */

static void ref_rmsnorm(double *y, double *rstd, const double *x, const double *w, int n, int d,
                        double eps) {
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int j = 0; j < d; j++) ss += x[(size_t)i * d + j] * x[(size_t)i * d + j];
        double r = 1.0 / sqrt(ss / d + eps);
        if (rstd) rstd[i] = r;
        for (int j = 0; j < d; j++) y[(size_t)i * d + j] = x[(size_t)i * d + j] * r * w[j];
    }
}

typedef struct {
    int n, d;
    double eps;
    double *x, *w, *dy, *y;
} RmsCtx;

static double rms_loss(void *p) {
    RmsCtx *c = p;
    ref_rmsnorm(c->y, NULL, c->x, c->w, c->n, c->d, c->eps);
    return dot_d(c->dy, c->y, (long)c->n * c->d);
}

static void test_rmsnorm(int n, int d, long ncoords) {
    char name[128];
    const float eps = 1e-5f;
    const long nd = (long)n * d;
    float *x = fvec(nd);
    for (int i = 0; i < n; i++) { /* rows at different scales, one tiny enough for eps to matter */
        double sc = i == 0 ? 1e-3 : 0.1 + 3.0 * rng_u01();
        for (int j = 0; j < d; j++) x[(size_t)i * d + j] = rng_uni(-sc, sc);
    }
    float *w = frand(d, 0.5, 1.5), *dy = frand(nd, -1, 1);
    float *y = fvec(nd), *rstd = fvec(n);
    rmsnorm_forward_cpu(y, rstd, x, w, n, d, eps);
    double *xd = to_d(x, nd), *wd = to_d(w, d), *yd = dvec(nd), *rd = dvec(n);
    ref_rmsnorm(yd, rd, xd, wd, n, d, eps);
    snprintf(name, sizeof name, "rmsnorm fwd n=%d d=%d y", n, d);
    report(name, rel_err(y, yd, nd), TOL_FWD);
    snprintf(name, sizeof name, "rmsnorm fwd n=%d d=%d rstd", n, d);
    report(name, rel_err(rstd, rd, n), TOL_FWD);

    float *dx0 = ffill(nd, 0), *dw0 = ffill(d, 0), *dx1 = ffill(nd, PREFILL),
          *dw1 = ffill(d, PREFILL);
    rmsnorm_backward_cpu(dx0, dw0, dy, x, w, rstd, n, d);
    rmsnorm_backward_cpu(dx1, dw1, dy, x, w, rstd, n, d);
    RmsCtx c = {n, d, eps, xd, wd, to_d(dy, nd), yd};
    snprintf(name, sizeof name, "rmsnorm bwd n=%d d=%d dx", n, d);
    check_accum(name, dx0, dx1, nd);
    check_fd(name, rms_loss, &c, xd, nd, dx0, ncoords);
    snprintf(name, sizeof name, "rmsnorm bwd n=%d d=%d dw", n, d);
    check_accum(name, dw0, dw1, d);
    check_fd(name, rms_loss, &c, wd, d, dw0, ncoords);

    int same = 1;
    for (int nt = 1; nt <= 3; nt++) {
        float *dx = ffill(nd, PREFILL), *dw = ffill(d, PREFILL), *yy = fvec(nd), *rr = fvec(n);
        set_threads(nt);
        rmsnorm_forward_cpu(yy, rr, x, w, n, d, eps);
        rmsnorm_backward_cpu(dx, dw, dy, x, w, rstd, n, d);
        set_threads(0);
        same &= !memcmp(yy, y, nd * sizeof(float)) && !memcmp(rr, rstd, n * sizeof(float)) &&
                !memcmp(dx, dx1, nd * sizeof(float)) && !memcmp(dw, dw1, d * sizeof(float));
        free(dx), free(dw), free(yy), free(rr);
    }
    snprintf(name, sizeof name, "rmsnorm n=%d d=%d bit-identical for 1, 2, 3 threads", n, d);
    check(same, "%s", name);
    free(x), free(w), free(dy), free(y), free(rstd), free(xd), free(wd), free(yd), free(rd);
    free(dx0), free(dw0), free(dx1), free(dw1), free(c.dy);
}

/* ======================= linear ======================= */

static void ref_linear(double *y, const double *x, const double *w, const double *b, int n, int in,
                       int out) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++) s += x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = s;
        }
}

typedef struct {
    int n, in, out;
    double *x, *w, *b, *dy, *y;
} LinCtx;

static double lin_loss(void *p) {
    LinCtx *c = p;
    ref_linear(c->y, c->x, c->w, c->b, c->n, c->in, c->out);
    return dot_d(c->dy, c->y, (long)c->n * c->out);
}

static void test_linear(int n, int in, int out, long ncoords) {
    char name[128];
    const long nx = (long)n * in, nw = (long)out * in, ny = (long)n * out;
    float *x = frand(nx, -1, 1), *w = frand(nw, -0.5, 0.5), *b = frand(out, -1, 1);
    float *dy = frand(ny, -1, 1);
    double *xd = to_d(x, nx), *wd = to_d(w, nw), *bd = to_d(b, out), *yd = dvec(ny);

    /* y starts as NaN: the forward overwrites, with or without a bias (beta = 0 must not
     * read y). */
    for (int with_b = 1; with_b >= 0; with_b--) {
        float *y = ffill(ny, NAN);
        linear_forward_cpu(y, x, w, with_b ? b : NULL, n, in, out);
        ref_linear(yd, xd, wd, with_b ? bd : NULL, n, in, out);
        snprintf(name, sizeof name, "linear fwd n=%d in=%d out=%d %s", n, in, out,
                 with_b ? "with bias" : "b=NULL");
        report(name, rel_err(y, yd, ny), TOL_FWD);
        free(y);
    }

    float *dx0 = ffill(nx, 0), *dw0 = ffill(nw, 0), *db0 = ffill(out, 0);
    float *dx1 = ffill(nx, PREFILL), *dw1 = ffill(nw, PREFILL), *db1 = ffill(out, PREFILL);
    linear_backward_cpu(dx0, dw0, db0, dy, x, w, n, in, out);
    linear_backward_cpu(dx1, dw1, db1, dy, x, w, n, in, out);
    LinCtx c = {n, in, out, xd, wd, bd, to_d(dy, ny), yd};
    snprintf(name, sizeof name, "linear bwd n=%d in=%d out=%d dx", n, in, out);
    check_accum(name, dx0, dx1, nx);
    check_fd(name, lin_loss, &c, xd, nx, dx0, ncoords);
    snprintf(name, sizeof name, "linear bwd n=%d in=%d out=%d dw", n, in, out);
    check_accum(name, dw0, dw1, nw);
    check_fd(name, lin_loss, &c, wd, nw, dw0, ncoords);
    snprintf(name, sizeof name, "linear bwd n=%d in=%d out=%d db", n, in, out);
    check_accum(name, db0, db1, out);
    check_fd(name, lin_loss, &c, bd, out, db0, ncoords);

    /* Each gradient on its own, the other two NULL: same values as all three together. */
    float *dx = ffill(nx, 0), *dw = ffill(nw, 0), *db = ffill(out, 0);
    linear_backward_cpu(dx, NULL, NULL, dy, x, w, n, in, out);
    linear_backward_cpu(NULL, dw, NULL, dy, x, w, n, in, out);
    linear_backward_cpu(NULL, NULL, db, dy, x, w, n, in, out);
    snprintf(name, sizeof name, "linear bwd n=%d in=%d out=%d NULL grads skipped", n, in, out);
    check(!memcmp(dx, dx0, nx * sizeof(float)) && !memcmp(dw, dw0, nw * sizeof(float)) &&
              !memcmp(db, db0, out * sizeof(float)),
          "%s", name);
    free(x), free(w), free(b), free(dy), free(xd), free(wd), free(bd), free(yd), free(c.dy);
    free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1), free(dx), free(dw), free(db);
}

/* ======================= rope ======================= */

/* Rotation written from the definition, the angle taken in double from inv_freq. */
static void ref_rope(double *x, const int *pos, const float *inv_freq, int n, int h, int D) {
    const int half = D / 2;
    for (int i = 0; i < n; i++)
        for (int hh = 0; hh < h; hh++) {
            double *r = x + ((size_t)i * h + hh) * D;
            for (int j = 0; j < half; j++) {
                double a = (double)pos[i] * inv_freq[j], c = cos(a), s = sin(a);
                double x1 = r[j], x2 = r[j + half];
                r[j] = x1 * c - x2 * s;
                r[j + half] = x2 * c + x1 * s;
            }
        }
}

typedef struct {
    int n, h, D;
    const int *pos;
    const float *inv_freq;
    double *x, *dy, *y;
} RopeCtx;

static double rope_loss(void *p) {
    RopeCtx *c = p;
    long m = (long)c->n * c->h * c->D;
    memcpy(c->y, c->x, m * sizeof(double));
    ref_rope(c->y, c->pos, c->inv_freq, c->n, c->h, c->D);
    return dot_d(c->dy, c->y, m);
}

static float *rope_inv_freq(int D, double theta) {
    float *f = fvec(D / 2);
    for (int j = 0; j < D / 2; j++) f[j] = (float)(1.0 / pow(theta, 2.0 * j / D));
    return f;
}

static void test_rope_tables(int max_pos, int D) {
    char name[128];
    const int half = D / 2;
    float *inv = rope_inv_freq(D, 10000.0);
    float *ct = fvec((long)max_pos * half), *st = fvec((long)max_pos * half);
    rope_tables_cpu(ct, st, inv, max_pos, half);
    double e = 0;
    for (int p = 0; p < max_pos; p++)
        for (int j = 0; j < half; j++) {
            double a = (double)p * inv[j];
            e = fmax(e, fabs(ct[(size_t)p * half + j] - cos(a)));
            e = fmax(e, fabs(st[(size_t)p * half + j] - sin(a)));
        }
    /* Rounded once from double: within half an ulp of 1, where a float angle would be off by
     * ~max_pos * 6e-8 at the last position. */
    snprintf(name, sizeof name, "rope tables max_pos=%d D=%d (abs)", max_pos, D);
    report(name, e, 1e-7);
    free(inv), free(ct), free(st);
}

static void test_rope(int n, int h, int D, int max_pos, long ncoords) {
    char name[128];
    const int half = D / 2;
    const long m = (long)n * h * D;
    float *inv = rope_inv_freq(D, 10000.0);
    float *ct = fvec((long)max_pos * half), *st = fvec((long)max_pos * half);
    rope_tables_cpu(ct, st, inv, max_pos, half);
    int *pos = xalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) pos[i] = rng_int(max_pos); /* unsorted, with repeats */
    pos[0] = 0;
    pos[n - 1] = max_pos - 1;
    float *x = frand(m, -1, 1), *dy = frand(m, -1, 1);

    float *y = fcopy(x, m);
    rope_forward_cpu(y, pos, ct, st, n, h, D);
    double *xd = to_d(x, m), *yd = to_d(x, m);
    ref_rope(yd, pos, inv, n, h, D);
    snprintf(name, sizeof name, "rope fwd n=%d h=%d D=%d", n, h, D);
    report(name, rel_err(y, yd, m), TOL_FWD);

    /* The backward is in place (dx = R^T dy), not an accumulation. */
    float *g = fcopy(dy, m);
    rope_backward_cpu(g, pos, ct, st, n, h, D);
    RopeCtx c = {n, h, D, pos, inv, xd, to_d(dy, m), yd};
    snprintf(name, sizeof name, "rope bwd n=%d h=%d D=%d dx", n, h, D);
    check_fd(name, rope_loss, &c, xd, m, g, ncoords);

    float *rt = fcopy(y, m);
    rope_backward_cpu(rt, pos, ct, st, n, h, D);
    double *xx = to_d(x, m);
    snprintf(name, sizeof name, "rope bwd(fwd(x)) = x n=%d h=%d D=%d", n, h, D);
    report(name, rel_err(rt, xx, m), TOL_FWD);
    free(inv), free(ct), free(st), free(pos), free(x), free(dy), free(y), free(xd), free(yd);
    free(g), free(c.dy), free(rt), free(xx);
}

/* ======================= swiglu ======================= */

static double ref_silu(double g) {
    return g / (1.0 + exp(-g));
}

typedef struct {
    long n;
    double *g, *u, *dh;
} SwiCtx;

static double swi_loss(void *p) {
    SwiCtx *c = p;
    double s = 0;
    for (long i = 0; i < c->n; i++) s += c->dh[i] * ref_silu(c->g[i]) * c->u[i];
    return s;
}

static void test_swiglu(long n, long ncoords) {
    char name[128];
    float *g = frand(n, -30, 30), *u = frand(n, -2, 2), *dh = frand(n, -1, 1);
    for (long i = 0; i < n / 3; i++) g[i] = rng_uni(-3, 3); /* dense where silu bends */
    g[n - 1] = 0.0f;
    g[n - 2] = -0.0f;
    float *h = fvec(n);
    swiglu_forward_cpu(h, g, u, n);
    /* Elementwise relative error: the exp inside is a polynomial, so check it everywhere. */
    double e = 0;
    for (long i = 0; i < n; i++) {
        double r = ref_silu(g[i]) * u[i];
        double d = fabs(h[i] - r) / (fabs(r) > 1e-30 ? fabs(r) : 1.0);
        if (!(d <= e)) e = d;
    }
    snprintf(name, sizeof name, "swiglu fwd n=%ld (elementwise relative)", n);
    report(name, e, TOL_FWD);

    float *dg0 = ffill(n, 0), *du0 = ffill(n, 0), *dg1 = ffill(n, PREFILL),
          *du1 = ffill(n, PREFILL);
    swiglu_backward_cpu(dg0, du0, dh, g, u, n);
    swiglu_backward_cpu(dg1, du1, dh, g, u, n);
    SwiCtx c = {n, to_d(g, n), to_d(u, n), to_d(dh, n)};
    snprintf(name, sizeof name, "swiglu bwd n=%ld dg", n);
    check_accum(name, dg0, dg1, n);
    check_fd(name, swi_loss, &c, c.g, n, dg0, ncoords);
    snprintf(name, sizeof name, "swiglu bwd n=%ld du", n);
    check_accum(name, du0, du1, n);
    check_fd(name, swi_loss, &c, c.u, n, du0, ncoords);
    free(g), free(u), free(dh), free(h), free(dg0), free(du0), free(dg1), free(du1);
    free(c.g), free(c.u), free(c.dh);
}

/* Saturated gates: exp(-g) would overflow in float for g < -88; results must stay finite and
 * match the float64 formula in absolute terms (silu -> 0 below, -> g above). */
static void test_swiglu_extremes(void) {
    const float gs[] = {-1e30f, -1e4f, -1000.0f, -200.0f, -100.0f, -89.0f, -88.0f,  -87.5f,
                        -50.0f, 50.0f, 87.5f,    88.0f,   89.0f,   100.0f, 1000.0f, 1e4f};
    const long n = (long)(sizeof gs / sizeof gs[0]);
    float *u = ffill(n, 1.5f), *dh = ffill(n, 0.5f), *h = fvec(n), *dg = ffill(n, 0),
          *du = ffill(n, 0);
    swiglu_forward_cpu(h, gs, u, n);
    swiglu_backward_cpu(dg, du, dh, gs, u, n);
    double e = 0;
    int finite = 1;
    for (long i = 0; i < n; i++) {
        double g = gs[i], sig = g >= 0 ? 1.0 / (1.0 + exp(-g)) : exp(g) / (1.0 + exp(g));
        double rh = g * sig * 1.5, rdu = 0.5 * g * sig;
        double rdg = 0.5 * 1.5 * sig * (1.0 + g * (1.0 - sig));
        finite &= isfinite(h[i]) && isfinite(dg[i]) && isfinite(du[i]);
        e = fmax(e, fabs(h[i] - rh) / (1.0 + fabs(rh)));
        e = fmax(e, fabs(du[i] - rdu) / (1.0 + fabs(rdu)));
        e = fmax(e, fabs(dg[i] - rdg) / (1.0 + fabs(rdg)));
    }
    check(finite, "swiglu |g| up to 1e30: fwd and bwd finite");
    report("swiglu |g| up to 1e30: |err| / (1 + |ref|)", e, TOL_FWD);
    free(u), free(dh), free(h), free(dg), free(du);
}

/* ======================= attention ======================= */

/* Softmax attention written out per (b, h, t) in float64. */
static void ref_attention(double *out, double *lse, const double *q, const double *k,
                          const double *v, int B, int T, int H, int Hkv, int D) {
    const double scale = 1.0 / sqrt((double)D);
    double *sc = dvec(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kh = h / (H / Hkv);
            for (int t = 0; t < T; t++) {
                const double *qt = q + (((size_t)b * T + t) * H + h) * D;
                double m = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    sc[s] = scale * dot_d(qt, k + (((size_t)b * T + s) * Hkv + kh) * D, D);
                    m = fmax(m, sc[s]);
                }
                double z = 0;
                for (int s = 0; s <= t; s++) z += exp(sc[s] - m);
                double *ot = out + (((size_t)b * T + t) * H + h) * D;
                for (int i = 0; i < D; i++) ot[i] = 0;
                for (int s = 0; s <= t; s++) {
                    double p = exp(sc[s] - m) / z;
                    const double *vs = v + (((size_t)b * T + s) * Hkv + kh) * D;
                    for (int i = 0; i < D; i++) ot[i] += p * vs[i];
                }
                if (lse) lse[((size_t)b * H + h) * T + t] = m + log(z);
            }
        }
    free(sc);
}

typedef struct {
    int B, T, H, Hkv, D;
    double *q, *k, *v, *dout, *out;
} AttCtx;

static double att_loss(void *p) {
    AttCtx *c = p;
    ref_attention(c->out, NULL, c->q, c->k, c->v, c->B, c->T, c->H, c->Hkv, c->D);
    return dot_d(c->dout, c->out, (long)c->B * c->T * c->H * c->D);
}

static void test_attention(int B, int T, int H, int Hkv, int D, long ncoords) {
    char name[160], tag[96];
    snprintf(tag, sizeof tag, "B=%d T=%d H=%d Hkv=%d D=%d", B, T, H, Hkv, D);
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D, nl = (long)B * H * T;
    /* Scores of a few units so the softmax is neither flat nor one-hot. */
    float *q = frand(nq, -1.5, 1.5), *k = frand(nk, -1.5, 1.5), *v = frand(nk, -1, 1);
    float *dout = frand(nq, -1, 1);
    float *out = ffill(nq, NAN), *lse = ffill(nl, NAN);
    attention_forward_cpu(out, lse, q, k, v, B, T, H, Hkv, D);
    double *qd = to_d(q, nq), *kd = to_d(k, nk), *vd = to_d(v, nk), *od = dvec(nq), *ld = dvec(nl);
    ref_attention(od, ld, qd, kd, vd, B, T, H, Hkv, D);
    snprintf(name, sizeof name, "attention fwd %s out", tag);
    report(name, rel_err(out, od, nq), TOL_FWD);
    snprintf(name, sizeof name, "attention fwd %s lse", tag);
    report(name, rel_err(lse, ld, nl), TOL_FWD);

    float *g0[3] = {ffill(nq, 0), ffill(nk, 0), ffill(nk, 0)};
    float *g1[3] = {ffill(nq, PREFILL), ffill(nk, PREFILL), ffill(nk, PREFILL)};
    attention_backward_cpu(g0[0], g0[1], g0[2], dout, q, k, v, out, lse, B, T, H, Hkv, D);
    attention_backward_cpu(g1[0], g1[1], g1[2], dout, q, k, v, out, lse, B, T, H, Hkv, D);
    AttCtx c = {B, T, H, Hkv, D, qd, kd, vd, to_d(dout, nq), od};
    const char *gn[3] = {"dq", "dk", "dv"};
    double *xs[3] = {qd, kd, vd};
    const long ns[3] = {nq, nk, nk};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "attention bwd %s %s", tag, gn[i]);
        check_accum(name, g0[i], g1[i], ns[i]);
        check_fd(name, att_loss, &c, xs[i], ns[i], g0[i], ncoords);
    }

    /* Causality: tokens after t0 get new q, k, v. Output, lse and dq up to t0 must not move
     * by a single bit; some later output must. */
    const int t0 = T / 2;
    float *q2 = fcopy(q, nq), *k2 = fcopy(k, nk), *v2 = fcopy(v, nk);
    for (int b = 0; b < B; b++)
        for (int t = t0 + 1; t < T; t++) {
            for (long i = 0; i < (long)H * D; i++) q2[((size_t)b * T + t) * H * D + i] += 0.5f;
            for (long i = 0; i < (long)Hkv * D; i++) {
                k2[((size_t)b * T + t) * Hkv * D + i] = rng_uni(-3, 3);
                v2[((size_t)b * T + t) * Hkv * D + i] = rng_uni(-3, 3);
            }
        }
    float *out2 = fvec(nq), *lse2 = fvec(nl), *dq2 = ffill(nq, 0), *dk2 = ffill(nk, 0),
          *dv2 = ffill(nk, 0);
    attention_forward_cpu(out2, lse2, q2, k2, v2, B, T, H, Hkv, D);
    attention_backward_cpu(dq2, dk2, dv2, dout, q2, k2, v2, out2, lse2, B, T, H, Hkv, D);
    int same = 1, later_moved = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t o = ((size_t)b * T + t) * H * D;
            int eq = !memcmp(out + o, out2 + o, (size_t)H * D * sizeof(float)) &&
                     !memcmp(g0[0] + o, dq2 + o, (size_t)H * D * sizeof(float));
            for (int h = 0; h < H; h++)
                eq &= lse[((size_t)b * H + h) * T + t] == lse2[((size_t)b * H + h) * T + t];
            if (t <= t0)
                same &= eq;
            else
                later_moved |= !eq;
        }
    snprintf(name, sizeof name, "attention %s causal: tokens <= %d unchanged by later ones", tag,
             t0);
    check(same && (t0 + 1 >= T || later_moved), "%s", name);

    /* Same bits for any thread count, forward and backward. */
    int det = 1;
    for (int nt = 1; nt <= 3; nt++) {
        float *o3 = fvec(nq), *l3 = fvec(nl);
        float *h3[3] = {ffill(nq, PREFILL), ffill(nk, PREFILL), ffill(nk, PREFILL)};
        set_threads(nt);
        attention_forward_cpu(o3, l3, q, k, v, B, T, H, Hkv, D);
        attention_backward_cpu(h3[0], h3[1], h3[2], dout, q, k, v, out, lse, B, T, H, Hkv, D);
        set_threads(0);
        det &= !memcmp(o3, out, nq * sizeof(float)) && !memcmp(l3, lse, nl * sizeof(float));
        for (int i = 0; i < 3; i++) {
            det &= !memcmp(h3[i], g1[i], ns[i] * sizeof(float));
            free(h3[i]);
        }
        free(o3), free(l3);
    }
    snprintf(name, sizeof name, "attention %s bit-identical for 1, 2, 3 threads", tag);
    check(det, "%s", name);

    free(q), free(k), free(v), free(dout), free(out), free(lse), free(qd), free(kd), free(vd);
    free(od), free(ld), free(c.dout), free(q2), free(k2), free(v2), free(out2), free(lse2);
    free(dq2), free(dk2), free(dv2);
    for (int i = 0; i < 3; i++) free(g0[i]), free(g1[i]);
}

int main(void) {
    rng_seed(20240611u);
    g_default_threads = omp_get_max_threads();

    test_embedding(13, 37, 5, 1L << 30);
    test_embedding(300, 301, 40, 200); /* large enough for the threaded path */

    test_rmsnorm(13, 37, 1L << 30);
    test_rmsnorm(300, 257, 150);

    test_linear(13, 37, 10, 1L << 30);
    test_linear(257, 129, 190, 40);

    test_rope_tables(50, 10);
    test_rope_tables(8192, 64);
    test_rope(13, 3, 10, 50, 1L << 30);
    test_rope(7, 2, 6, 9, 1L << 30);
    test_rope(301, 4, 64, 4096, 200);

    test_swiglu(1001, 1L << 30);
    test_swiglu(100003, 200);
    test_swiglu_extremes();

    test_attention(2, 7, 6, 2, 8, 1L << 30);  /* GQA, 3 query heads per kv head */
    test_attention(2, 7, 3, 3, 10, 1L << 30); /* MHA */
    test_attention(1, 13, 4, 1, 6, 1L << 30); /* MQA */
    test_attention(2, 1, 2, 1, 4, 1L << 30);  /* a single token */
    test_attention(2, 37, 4, 2, 32, 60);
    test_attention(2, 50, 6, 2, 20, 40); /* D past one 16-wide panel; T past one key block */
    test_attention(1, 130, 4, 2, 64, 20);
    test_attention(1, 100, 2, 1, 128, 10);

    return test_summary();
}
