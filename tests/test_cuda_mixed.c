/* Checks the mixed-precision element kernels and the biased bf16 product against the host:
 * cast_bf16_cuda bit for bit against round-to-nearest-even (ties, signed zeros, subnormals,
 * infinities, values that round up to infinity, random values), add_from_bf16_cuda and
 * widen_bf16_cuda bit for bit against the host's float addition and widening, over sizes that
 * leave tails of every length and buffers offset by 1 to 7 elements (the unaligned path);
 * and linear_forward_mixed_cuda with and without a bias, against a double product of the
 * bf16-rounded operands (relative error < 1e-5: fp32 accumulation). Then the bf16-output
 * pieces of the MLP's mixed path: SwiGLU forward and backward with bf16 results against the
 * CPU SwiGLU rounded to bf16 (within one bf16 step: the float math may differ in its last
 * bit and round the other way), the dx product with a bf16 result (linear_dx_bf16_mixed_cuda),
 * and linear_backward_mixed_cuda fed with the bf16 dy and x that such pieces leave (dy and x
 * NULL), against double references. And the RMSNorm forward with a bf16 output bit for bit
 * against the fp32 kernel's output rounded to bf16 (and the same 1/rms), on every code path
 * (register rows of 1, 2 and 4 float4 per thread, warp rows with and without float4, outputs
 * offset off the vector alignment). Rotary into bf16 and its backward out of bf16 bit for bit
 * against the fp32 rotary with a cast or a widening around it. Outputs start poisoned. Exits 77
 * (skip) without a GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"

#ifdef DENSERL_CUDA
#include "kernels/kernels_cuda.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "bf16test.h"

/* Round to nearest even, for every float (NaN excepted): f2bf's carry also turns the
 * largest finite values that round up into infinity, as the hardware does. */
static uint16_t rne(float f) {
    return f2bf(f);
}

/* n inputs: the first few special, then random over many magnitudes. */
static float *inputs(long n) {
    static const float special[] = {0.0f,        -0.0f,       1.0f,         -1.0f,    1e-40f,
                                    -1e-40f,     INFINITY,    -INFINITY,    3.4e38f,  -3.4e38f,
                                    1.00390625f, 1.01171875f, 2.0f - 1e-7f, 65504.0f, 1e-30f};
    const long ns = (long)(sizeof special / sizeof special[0]);
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) {
        if (i < ns) {
            x[i] = special[i];
        } else {
            const double m = rng_sym(1.0), e = (double)(int)(rng_u01() * 60) - 30;
            x[i] = (float)(m * pow(2.0, e));
        }
    }
    return x;
}

static void test_cast(long n, int off) {
    float *x = inputs(n);
    uint16_t *want = malloc(sizeof(uint16_t) * (size_t)(n + 1));
    for (long i = 0; i < n; i++) want[i] = rne(x[i]);
    float *dx = dev_poisoned((size_t)(n + off), sizeof(float));
    uint16_t *dy = dev_poisoned((size_t)(n + off), sizeof(uint16_t));
    be_to_device(BACKEND_CUDA, dx + off, x, sizeof(float) * (size_t)n);
    cast_bf16_cuda(dy + off, dx + off, n);
    uint16_t *got = host_copy_of(dy + off, (size_t)n, sizeof(uint16_t));
    long bad = 0, first = -1;
    for (long i = 0; i < n; i++)
        if (got[i] != want[i]) bad++, first = first < 0 ? i : first;
    if (first >= 0)
        printf("  element %ld: x %.9g, got 0x%04x, want 0x%04x\n", first, x[first], got[first],
               want[first]);
    check(bad == 0, "cast_bf16 n=%ld off=%d: %ld of %ld differ", n, off, bad, n);
    dev_free(dx), dev_free(dy);
    free(x), free(want), free(got);
}

/* add_from_bf16 (add = 1) or widen_bf16 (add = 0) */
static void test_widen(long n, int off, int add) {
    float *y = rand_host(n, 4.0), *xf = rand_host(n, 4.0);
    uint16_t *x = round_bf16(xf, n); /* xf now holds the bf16 values */
    float *want = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) want[i] = add ? y[i] + xf[i] : xf[i];
    float *dy = dev_poisoned((size_t)(n + off), sizeof(float));
    uint16_t *dx = dev_poisoned((size_t)(n + off), sizeof(uint16_t));
    if (add) be_to_device(BACKEND_CUDA, dy + off, y, sizeof(float) * (size_t)n);
    be_to_device(BACKEND_CUDA, dx + off, x, sizeof(uint16_t) * (size_t)n);
    if (add)
        add_from_bf16_cuda(dy + off, dx + off, n);
    else
        widen_bf16_cuda(dy + off, dx + off, n);
    float *got = HOST_F(dy + off, n);
    check(memcmp(got, want, sizeof(float) * (size_t)n) == 0, "%s n=%ld off=%d: same bits",
          add ? "add_from_bf16" : "widen_bf16", n, off);
    dev_free(dy), dev_free(dx);
    free(y), free(xf), free(x), free(want), free(got);
}

/* The bf16 embedding lookup against the host's widening of the table's rows: ids at random
 * with repeats and the last row, table and output off elements from the allocation (off > 0
 * unaligns the 8-column path). */
static void test_embed_bf16(int n, int V, int d, int off) {
    float *tf = rand_host((long)V * d, 2.0);
    uint16_t *t = round_bf16(tf, (long)V * d); /* tf now holds the bf16 values */
    int *ids = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = i == 0 ? V - 1 : (int)(rng_u01() * V) % V;
    float *want = malloc(sizeof(float) * (size_t)n * d);
    for (int i = 0; i < n; i++)
        memcpy(want + (size_t)i * d, tf + (size_t)ids[i] * d, sizeof(float) * d);
    float *dy = dev_poisoned((size_t)n * d + off, sizeof(float));
    uint16_t *dt = dev_poisoned((size_t)V * d + off, sizeof(uint16_t));
    int *di = dev_poisoned((size_t)n, sizeof(int));
    be_to_device(BACKEND_CUDA, dt + off, t, sizeof(uint16_t) * (size_t)V * d);
    be_to_device(BACKEND_CUDA, di, ids, sizeof(int) * (size_t)n);
    embedding_forward_bf16_cuda(dy + off, di, dt + off, n, d);
    float *got = HOST_F(dy + off, (long)n * d);
    check(memcmp(got, want, sizeof(float) * (size_t)n * d) == 0,
          "embedding_forward_bf16 n=%d V=%d d=%d off=%d: the rows widened, same bits", n, V, d,
          off);
    dev_free(dy), dev_free(dt), dev_free(di);
    free(tf), free(t), free(ids), free(want), free(got);
}

/* y = x W^T (+ b) (+ r: linear_forward_res_mixed_cuda) against a double reference of the bf16
 * values; off > 0 shifts every device array by off elements (unaligned bias, weights, input,
 * output and residual: the cuBLASLt path must pick algorithms that allow them, or step aside). */
static void test_linear_mixed(int n, int in, int out, int bias, int res, int off) {
    float *x = rand_host((long)n * in, 1.0), *w = rand_host((long)out * in, 1.0);
    float *b = rand_host(out, 1.0), *r = rand_host((long)n * out, 1.0);
    uint16_t *wb = round_bf16(w, (long)out * in);
    float *xr = malloc(sizeof(float) * (size_t)n * in);
    memcpy(xr, x, sizeof(float) * (size_t)n * in);
    free(round_bf16(xr, (long)n * in)); /* what the product sees */
    float *want = malloc(sizeof(float) * (size_t)n * out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = (bias ? b[o] : 0.0) + (res ? r[(size_t)i * out + o] : 0.0);
            for (int k = 0; k < in; k++)
                s += (double)xr[(size_t)i * in + k] * w[(size_t)o * in + k];
            want[(size_t)i * out + o] = (float)s;
        }
    float *dx = DEV_POISON_F((long)n * in + off), *db = DEV_POISON_F(out + off);
    float *dr = DEV_POISON_F((long)n * out + off), *dy = DEV_POISON_F((long)n * out + off);
    uint16_t *dw = dev_poison_bf16((long)out * in + off), *xs = dev_poison_bf16((long)n * in + off);
    be_to_device(BACKEND_CUDA, dx + off, x, sizeof(float) * (size_t)n * in);
    be_to_device(BACKEND_CUDA, db + off, b, sizeof(float) * (size_t)out);
    be_to_device(BACKEND_CUDA, dr + off, r, sizeof(float) * (size_t)n * out);
    be_to_device(BACKEND_CUDA, dw + off, wb, sizeof(uint16_t) * (size_t)out * in);
    float *bp = bias ? db + off : NULL;
    if (res)
        linear_forward_res_mixed_cuda(dy + off, dx + off, dw + off, bp, dr + off, n, in, out,
                                      xs + off);
    else
        linear_forward_mixed_cuda(dy + off, dx + off, dw + off, bp, n, in, out, xs + off);
    float *got = HOST_F(dy + off, (long)n * out);
    const double e = rel_err(got, want, (long)n * out);
    const char *lt = getenv("DENSERL_CUBLASLT");
    check(e < 1e-5,
          "linear_forward_%smixed n=%d in=%d out=%d bias=%d off=%d cublaslt=%s: rel err %.3g",
          res ? "res_" : "", n, in, out, bias, off, lt && !strcmp(lt, "0") ? "off" : "on", e);
    dev_free(dx), dev_free(db), dev_free(dr), dev_free(dy), dev_free(dw), dev_free(xs);
    free(x), free(w), free(b), free(r), free(wb), free(xr), free(want), free(got);
}

/* yb = bf16(xs W^T) from a bf16 input (linear_forward_bf16_mixed_cuda): the double-precision
 * product of the bf16 values, rounded to bf16, within one bf16 step (fp32 accumulation). */
static long bf16_far(const uint16_t *got, const uint16_t *want, const float *abs_tol, long n);
static void test_linear_bf16_out(int n, int in, int out) {
    float *x = rand_host((long)n * in, 1.0), *w = rand_host((long)out * in, 1.0);
    uint16_t *xb = round_bf16(x, (long)n * in), *wb = round_bf16(w, (long)out * in);
    float *want = malloc(sizeof(float) * (size_t)n * out), *tol = malloc(sizeof(float) * n * out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = 0.0, a = 0.0;
            for (int k = 0; k < in; k++) {
                const double t = (double)x[(size_t)i * in + k] * w[(size_t)o * in + k];
                s += t, a += fabs(t);
            }
            want[(size_t)i * out + o] = (float)s;
            tol[(size_t)i * out + o] = (float)(1e-5 * a); /* fp32 sums of near-cancelling terms */
        }
    uint16_t *wantb = round_bf16(want, (long)n * out);
    uint16_t *dx = dev_bf16(xb, (long)n * in), *dw = dev_bf16(wb, (long)out * in);
    uint16_t *dy = dev_poison_bf16((long)n * out);
    linear_forward_bf16_mixed_cuda(dy, dx, dw, n, in, out);
    uint16_t *got = host_copy_of(dy, (size_t)n * out, 2);
    check(bf16_far(got, wantb, tol, (long)n * out) == 0,
          "linear_forward_bf16_mixed n=%d in=%d out=%d: within one bf16 step", n, in, out);
    dev_free(dx), dev_free(dw), dev_free(dy);
    free(x), free(w), free(xb), free(wb), free(want), free(tol), free(wantb), free(got);
}

/* got and want (bf16 bits, n) within one bf16 step of each other, elementwise, or within
 * abs_tol[i] (NULL: none), the fp32 rounding of the terms a result cancelled down from */
static long bf16_far(const uint16_t *got, const uint16_t *want, const float *abs_tol, long n) {
    long bad = 0;
    for (long i = 0; i < n; i++) {
        const float a = bf2f(got[i]), b = bf2f(want[i]);
        float tol = (fabsf(a) > fabsf(b) ? fabsf(a) : fabsf(b)) * (1.0f / 128.0f);
        if (abs_tol && abs_tol[i] > tol) tol = abs_tol[i];
        if (!(fabsf(a - b) <= tol)) bad++;
    }
    return bad;
}

/* gub: g and u given in bf16 (the _bf16in kernels), else in fp32 */
static void test_swiglu_bf16(long n, int off, int gub) {
    float *g = rand_host(n, 8.0), *u = rand_host(n, 2.0), *dhf = rand_host(n, 1.0);
    uint16_t *dh = round_bf16(dhf, n);                       /* dhf: the bf16 values as floats */
    uint16_t *gb = round_bf16(g, n), *ub = round_bf16(u, n); /* g, u: bf16 values now */
    if (!gub) {                                              /* fresh fp32 values instead */
        free(g), free(u);
        g = rand_host(n, 8.0), u = rand_host(n, 2.0);
    }
    float *h = calloc((size_t)n, sizeof(float)), *dg = calloc((size_t)n, sizeof(float));
    float *du = calloc((size_t)n, sizeof(float));
    swiglu_forward_cpu(h, g, u, n);
    swiglu_backward_cpu(dg, du, dhf, g, u, n); /* from zero: the overwrite */
    uint16_t *wh = round_bf16(h, n), *wdg = round_bf16(dg, n), *wdu = round_bf16(du, n);
    float *d_g = dev_poisoned((size_t)(n + off), 4), *d_u = dev_poisoned((size_t)(n + off), 4);
    uint16_t *d_dh = dev_poisoned((size_t)(n + off), 2), *d_h = dev_poisoned((size_t)(n + off), 2);
    uint16_t *d_dg = dev_poisoned((size_t)(n + off), 2), *d_du = dev_poisoned((size_t)(n + off), 2);
    uint16_t *d_gb = dev_poisoned((size_t)(n + off), 2), *d_ub = dev_poisoned((size_t)(n + off), 2);
    be_to_device(BACKEND_CUDA, d_g + off, g, sizeof(float) * (size_t)n);
    be_to_device(BACKEND_CUDA, d_u + off, u, sizeof(float) * (size_t)n);
    be_to_device(BACKEND_CUDA, d_gb + off, gb, sizeof(uint16_t) * (size_t)n);
    be_to_device(BACKEND_CUDA, d_ub + off, ub, sizeof(uint16_t) * (size_t)n);
    be_to_device(BACKEND_CUDA, d_dh + off, dh, sizeof(uint16_t) * (size_t)n);
    if (gub) {
        swiglu_forward_bf16in_cuda(d_h + off, d_gb + off, d_ub + off, n);
        swiglu_backward_bf16in_cuda(d_dg + off, d_du + off, d_dh + off, d_gb + off, d_ub + off, n);
    } else {
        swiglu_forward_bf16_cuda(d_h + off, d_g + off, d_u + off, n);
        swiglu_backward_bf16_cuda(d_dg + off, d_du + off, d_dh + off, d_g + off, d_u + off, n);
    }
    uint16_t *gh = host_copy_of(d_h + off, (size_t)n, 2),
             *gdg = host_copy_of(d_dg + off, (size_t)n, 2);
    uint16_t *gdu = host_copy_of(d_du + off, (size_t)n, 2);
    /* dg = dh u s (1 + g (1 - s)) passes through zero near g = -1.278, where the device's
     * expf and fused multiply-adds may differ from the host's by a few fp32 ulps of the
     * terms before they cancel: allow 1e-5 of |dh u (1 + |g|)| there */
    float *dg_floor = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) dg_floor[i] = 1e-5f * fabsf(dhf[i] * u[i]) * (1.0f + fabsf(g[i]));
    const char *kind = gub ? "bf16in" : "bf16";
    check(bf16_far(gh, wh, NULL, n) == 0, "swiglu_forward_%s n=%ld off=%d: within one bf16 step",
          kind, n, off);
    check(bf16_far(gdg, wdg, dg_floor, n) == 0 && bf16_far(gdu, wdu, NULL, n) == 0,
          "swiglu_backward_%s n=%ld off=%d: dg, du within one bf16 step", kind, n, off);
    free(dg_floor);
    dev_free(d_g), dev_free(d_u), dev_free(d_dh), dev_free(d_h), dev_free(d_dg), dev_free(d_du);
    dev_free(d_gb), dev_free(d_ub);
    free(g), free(u), free(gb), free(ub), free(dhf), free(dh), free(h), free(dg), free(du);
    free(wh), free(wdg), free(wdu), free(gh), free(gdg), free(gdu);
}

/* dxb = bf16(dy W) (linear_dx_bf16_mixed_cuda), then the weight gradient from the dys it left
 * and a bf16 x given directly, and dx accumulated from a bf16 dy given directly. */
static void test_linear_bf16_grads(int n, int in, int out) {
    float *dy = rand_host((long)n * out, 1.0), *w = rand_host((long)out * in, 1.0);
    float *x = rand_host((long)n * in, 1.0), *dx0 = rand_host((long)n * in, 1.0);
    float *dw0 = rand_host((long)out * in, 1.0);
    uint16_t *wb = round_bf16(w, (long)out * in), *xb = round_bf16(x, (long)n * in);
    float *dyr = malloc(sizeof(float) * (size_t)n * out);
    memcpy(dyr, dy, sizeof(float) * (size_t)n * out);
    uint16_t *dyb = round_bf16(dyr, (long)n * out);
    float *want_dx = malloc(sizeof(float) * (size_t)n * in),
          *want_dw = malloc(sizeof(float) * (size_t)out * in);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double s = 0.0;
            for (int o = 0; o < out; o++)
                s += (double)dyr[(size_t)i * out + o] * w[(size_t)o * in + k];
            want_dx[(size_t)i * in + k] = (float)s;
        }
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            double s = dw0[(size_t)o * in + k];
            for (int i = 0; i < n; i++)
                s += (double)dyr[(size_t)i * out + o] * x[(size_t)i * in + k];
            want_dw[(size_t)o * in + k] = (float)s;
        }
    float *d_dy = DEV_F(dy, (long)n * out), *d_dw = DEV_F(dw0, (long)out * in);
    uint16_t *d_w = dev_bf16(wb, (long)out * in), *d_x = dev_bf16(xb, (long)n * in);
    uint16_t *d_dys = dev_poison_bf16((long)n * out), *d_dxb = dev_poison_bf16((long)n * in);
    linear_dx_bf16_mixed_cuda(d_dxb, d_dy, d_w, n, in, out, d_dys);
    linear_backward_mixed_cuda(NULL, d_dw, NULL, NULL, NULL, d_w, n, in, out, d_dys, d_x);
    float *got_dx = host_bf16(d_dxb, (long)n * in), *got_dw = HOST_F(d_dw, (long)out * in);
    /* dxb is rounded to bf16: 2^-9 relative per element at most */
    const double e1 = rel_err(got_dx, want_dx, (long)n * in),
                 e2 = rel_err(got_dw, want_dw, (long)out * in);
    check(e1 < 5e-3, "linear_dx_bf16_mixed n=%d in=%d out=%d: rel err %.3g", n, in, out, e1);
    check(e2 < 1e-5, "linear_backward_mixed dw from bf16 dy and x n=%d in=%d out=%d: rel err %.3g",
          n, in, out, e2);
    /* dx += dy W with dy given in bf16 (dy NULL), onto dx0 */
    float *d_dx = DEV_F(dx0, (long)n * in);
    uint16_t *d_dyb = dev_bf16(dyb, (long)n * out);
    linear_backward_mixed_cuda(d_dx, NULL, NULL, NULL, NULL, d_w, n, in, out, d_dyb, d_x);
    float *got_acc = HOST_F(d_dx, (long)n * in);
    for (long i = 0; i < (long)n * in; i++) want_dx[i] += dx0[i];
    const double e3 = rel_err(got_acc, want_dx, (long)n * in);
    check(e3 < 1e-5, "linear_backward_mixed dx from a bf16 dy n=%d in=%d out=%d: rel err %.3g", n,
          in, out, e3);
    dev_free(d_dy), dev_free(d_dw), dev_free(d_w), dev_free(d_x), dev_free(d_dys);
    dev_free(d_dxb), dev_free(d_dx), dev_free(d_dyb);
    free(dy), free(w), free(x), free(dx0), free(dw0), free(wb), free(xb), free(dyr), free(dyb);
    free(want_dx), free(want_dw), free(got_dx), free(got_dw), free(got_acc);
}

/* rmsnorm_forward_bf16_cuda against rne(rmsnorm_forward_cuda), both writing at y + off (the
 * same offset keeps both on the same path, so the row sums are the same) */
static void test_rmsnorm_bf16(int n, int d, int off) {
    long nd = (long)n * d;
    float *x = rand_host(nd, 3.0), *w = rand_host(d, 1.5);
    float *dx = DEV_F(x, nd), *dw = DEV_F(w, d);
    enum { GUARD = 8 }; /* poisoned elements past the row ends, checked untouched */
    float *y32 = DEV_POISON_F(nd + off), *r32 = DEV_POISON_F(n), *r16 = DEV_POISON_F(n);
    uint16_t *y16 = dev_poisoned((size_t)(nd + off + GUARD), sizeof(uint16_t));
    uint16_t *fresh = host_copy_of(y16 + off + nd, GUARD, sizeof(uint16_t));
    rmsnorm_forward_cuda(y32 + off, r32, dx, dw, n, d, 1e-6f);
    rmsnorm_forward_bf16_cuda(y16 + off, r16, dx, dw, n, d, 1e-6f);
    float *want = HOST_F(y32 + off, nd), *rw = HOST_F(r32, n), *rg = HOST_F(r16, n);
    uint16_t *got = host_copy_of(y16 + off, (size_t)nd, sizeof(uint16_t));
    uint16_t *tail = host_copy_of(y16 + off + nd, GUARD, sizeof(uint16_t));
    long bad = memcmp(tail, fresh, sizeof(uint16_t) * GUARD) != 0;
    for (long i = 0; i < nd; i++) bad += got[i] != rne(want[i]);
    check(bad == 0 && memcmp(rw, rg, sizeof(float) * (size_t)n) == 0,
          "rmsnorm bf16 output n=%d d=%d off=%d: %ld of %ld differ from the rounded fp32 output", n,
          d, off, bad, nd);
    dev_free(dx), dev_free(dw), dev_free(y32), dev_free(r32), dev_free(r16), dev_free(y16);
    free(x), free(w), free(want), free(rw), free(rg), free(got), free(tail), free(fresh);
}

/* Rotary into bf16 against the fp32 rotary and a cast on the GPU, bit for bit, and against
 * the CPU rotary (one bf16 rounding); the backward from a bf16 gradient against widening, the
 * fp32 backward rotary and a cast (both outputs bit for bit), written in place over the
 * gradient too, and with no fp32 output. off shifts the device arrays off the 16-byte
 * alignment (the one-pair-at-a-time path, as odd D / 2 takes). */
static void test_rope_bf16(int n, int h, int D, int off) {
    const long ne = (long)n * h * D, P = n + 3;
    float *x = rand_host(ne, 2.0), *cs = rand_host(P * D / 2, 1.0), *sn = rand_host(P * D / 2, 1.0);
    int *pos = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) pos[i] = (int)(rng_u01() * (double)P) % (int)P;
    int *dpos = dev_poisoned((size_t)n, sizeof(int));
    be_to_device(BACKEND_CUDA, dpos, pos, sizeof(int) * (size_t)n);
    float *dcs = DEV_F(cs, P * D / 2), *dsn = DEV_F(sn, P * D / 2);
    float *dx = DEV_POISON_F(ne + off);
    uint16_t *dy = dev_poisoned((size_t)(ne + off), sizeof(uint16_t));
    uint16_t *dw = dev_poisoned((size_t)(ne + off), sizeof(uint16_t));
    be_to_device(BACKEND_CUDA, dx + off, x, sizeof(float) * (size_t)ne);
    /* forward: fp32 rotary in place then a cast, against the fused kernel */
    rope_bf16_cuda(dy + off, dx + off, dpos, dcs, dsn, n, h, D);
    rope_forward_cuda(dx + off, dpos, dcs, dsn, n, h, D);
    cast_bf16_cuda(dw + off, dx + off, ne);
    uint16_t *got = host_copy_of(dy + off, (size_t)ne, sizeof(uint16_t));
    uint16_t *want = host_copy_of(dw + off, (size_t)ne, sizeof(uint16_t));
    float *gw = malloc(sizeof(float) * (size_t)ne);
    for (long i = 0; i < ne; i++) gw[i] = bf2f(got[i]);
    rope_forward_cpu(x, pos, cs, sn, n, h, D);
    const double e = rel_err(gw, x, ne);
    check(memcmp(got, want, sizeof(uint16_t) * (size_t)ne) == 0 && e < 4e-3,
          "rope_bf16 n=%d h=%d D=%d off=%d: bits of rotary + cast, rel_err %.1e vs CPU", n, h, D,
          off, e);
    /* backward: the gradient g is the forward's bf16 output (dy) */
    widen_bf16_cuda(dx + off, dy + off, ne);
    rope_backward_cuda(dx + off, dpos, dcs, dsn, n, h, D);
    cast_bf16_cuda(dw + off, dx + off, ne);
    float *wf = HOST_F(dx + off, ne);
    uint16_t *wb = host_copy_of(dw + off, (size_t)ne, sizeof(uint16_t));
    for (int mode = 0; mode < 3; mode++) { /* 0: apart, 1: no fp32 output, 2: in place */
        uint16_t *out = mode == 2 ? dy : dev_poisoned((size_t)(ne + off), sizeof(uint16_t));
        float *tf = mode == 1 ? NULL : DEV_POISON_F(ne + off);
        rope_backward_bf16_cuda(out + off, tf ? tf + off : NULL, dy + off, dpos, dcs, dsn, n, h, D);
        uint16_t *gb = host_copy_of(out + off, (size_t)ne, sizeof(uint16_t));
        float *gf = tf ? HOST_F(tf + off, ne) : NULL;
        const int fp32_ok = !gf || memcmp(gf, wf, sizeof(float) * (size_t)ne) == 0;
        check(memcmp(gb, wb, sizeof(uint16_t) * (size_t)ne) == 0 && fp32_ok,
              "rope_backward_bf16 n=%d h=%d D=%d off=%d %s: bits of widen + rotary (+ cast)", n, h,
              D, off,
              mode == 0   ? "apart"
              : mode == 1 ? "bf16 only"
                          : "in place");
        free(gb), free(gf);
        if (tf) dev_free(tf);
        if (out != dy) dev_free(out);
    }
    dev_free(dpos), dev_free(dcs), dev_free(dsn), dev_free(dx), dev_free(dy), dev_free(dw);
    free(x), free(cs), free(sn), free(pos), free(got), free(want), free(gw), free(wf), free(wb);
}

static void run_all(void) {
    const long sizes[] = {1, 7, 8, 9, 15, 16, 17, 1000, 4097, 1000003};
    for (int s = 0; s < 10; s++)
        for (int off = 0; off < 8; off += (sizes[s] > 5000 ? 7 : 1)) {
            test_cast(sizes[s], off);
            test_widen(sizes[s], off, 0);
            test_widen(sizes[s], off, 1);
        }
    const int emb[][3] = {{1, 3, 8}, {5, 7, 9}, {37, 50, 64}, {300, 1000, 896}, {17, 11, 12}};
    for (int k = 0; k < 5; k++)
        for (int off = 0; off < 3; off++) test_embed_bf16(emb[k][0], emb[k][1], emb[k][2], off);
    const int shapes[][3] = {
        {1, 8, 8}, {3, 64, 130}, {37, 96, 129}, {300, 896, 128}, {64, 200, 1000}};
    for (int lt = 1; lt >= 0; lt--) { /* through cuBLASLt's epilogues, then without */
        if (!lt) setenv("DENSERL_CUBLASLT", "0", 1);
        for (int k = 0; k < 5; k++)
            for (int bias = 0; bias < 2; bias++)
                for (int res = 0; res < 2; res++)
                    for (int off = 0; off < 2; off++)
                        test_linear_mixed(shapes[k][0], shapes[k][1], shapes[k][2], bias, res, off);
        unsetenv("DENSERL_CUBLASLT");
    }
    const long sw[] = {1, 3, 4, 5, 1000, 4099, 1000001};
    for (int k = 0; k < 7; k++)
        for (int off = 0; off < 4; off++)
            for (int gub = 0; gub < 2; gub++) test_swiglu_bf16(sw[k], off, gub);
    for (int k = 0; k < 5; k++) test_linear_bf16_grads(shapes[k][0], shapes[k][1], shapes[k][2]);
    for (int k = 0; k < 5; k++) test_linear_bf16_out(shapes[k][0], shapes[k][1], shapes[k][2]);
    /* d: warp rows (64, 30 not a multiple of 4, 10000 past the register limit), register rows K = 1
     * (896, 2000), K = 2 (3584), K = 4 (8192); off 1, 2: unaligned stores, 4: aligned again */
    /* rotary: D / 2 a multiple of 4 (the vector path) or not (6, 20), off the alignment */
    const int rope[][3] = {{1, 1, 16},  {7, 3, 64}, {33, 14, 64},
                           {5, 2, 128}, {9, 4, 6},  {4, 5, 20}};
    for (int k = 0; k < 6; k++)
        for (int off = 0; off < 2; off++) test_rope_bf16(rope[k][0], rope[k][1], rope[k][2], off);
    const int dims[] = {64, 30, 10000, 896, 2000, 3584, 8192};
    for (int k = 0; k < 7; k++)
        for (int off = 0; off <= 4; off += off == 2 ? 2 : 1) {
            test_rmsnorm_bf16(5, dims[k], off);
            if (off == 0) test_rmsnorm_bf16(300, dims[k], off);
        }
}
#endif

int main(void) {
    CUDA_TEST_BEGIN();
#ifdef DENSERL_CUDA
    rng_seed(11);
    run_all();
#endif
    return test_summary();
}
