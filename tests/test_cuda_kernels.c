/* Checks the CUDA layer and optimizer kernels (embedding, rmsnorm, rope, swiglu, linear,
 * adamw, sumsq, scale, add) against their CPU twins on fresh random inputs, over shapes that
 * include odd sizes and, for the flat kernels, buffers offset by one float (the scalar path).
 * Written outputs start poisoned (NaN), accumulated ones from the same random values on both
 * sides. Also checks that the embedding and rmsnorm backwards give the same bits twice.
 *
 * Tolerance: rel_err (norm of the difference over the norm of the CPU result) < 1e-5. The
 * element kernels do the CPU's float operations, so they differ by at most a fused multiply-add
 * or an exp ulp (~1e-7); the row sums (rmsnorm, cuBLAS products, bias gradients) add in another
 * order, ~1e-7 * sqrt(terms) at these sizes. sumsq is compared relative to the CPU's double at
 * 1e-9. Exits 77 (skip) without a GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/optim.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

#ifdef DENSERL_CUDA
#include "kernels/kernels_cuda.h"

#define TOL 1e-5

/* Device copy of h (n floats) at offset off floats into a fresh buffer (off = 1: unaligned). */
static float *dev_at(float **base, const float *h, long n, int off) {
    *base = (float *)be_alloc(BACKEND_CUDA, sizeof(float) * (n + off));
    be_to_device(BACKEND_CUDA, *base + off, h, sizeof(float) * n);
    return *base + off;
}

static void expect_close(const char *what, const float *dev, const float *want, long n) {
    float *got = HOST_F(dev, n);
    const double e = rel_err(got, want, n);
    check(e < TOL, "%s: rel_err %.3g max_err %.3g", what, e, max_err(got, want, n));
    free(got);
}

static int same_bits(const float *da, const float *db, long n) {
    float *a = HOST_F(da, n), *b = HOST_F(db, n);
    const int same = memcmp(a, b, sizeof(float) * n) == 0;
    free(a);
    free(b);
    return same;
}

static void test_embedding(int n, int d, int V, int skew) {
    char name[96];
    int *ids = (int *)malloc(sizeof(int) * n);
    /* skew: most tokens share id 7, so runs are long (the unrolled loop and its tail) */
    for (int i = 0; i < n; i++) ids[i] = skew && rng_u01() < 0.8 ? 7 : (int)(rng_u01() * V) % V;
    float *table = rand_host((long)V * d, 1.0), *dy = rand_host((long)n * d, 1.0);
    float *y = (float *)malloc(sizeof(float) * n * d);
    embedding_forward_cpu(y, ids, table, n, d);
    int *d_ids = DEV_I(ids, n);
    float *d_table = DEV_F(table, (long)V * d), *d_y = DEV_POISON_F((long)n * d);
    embedding_forward_cuda(d_y, d_ids, d_table, n, d);
    snprintf(name, sizeof name, "embedding_forward n=%d d=%d", n, d);
    expect_close(name, d_y, y, (long)n * d);

    float *d_dy = DEV_F(dy, (long)n * d), *d_t2 = DEV_F(table, (long)V * d);
    embedding_backward_cpu(table, dy, ids, n, d);
    embedding_backward_cuda(d_table, d_dy, d_ids, n, d);
    embedding_backward_cuda(d_t2, d_dy, d_ids, n, d);
    snprintf(name, sizeof name, "embedding_backward n=%d d=%d V=%d%s", n, d, V,
             skew ? " skewed" : "");
    expect_close(name, d_table, table, (long)V * d);
    check(same_bits(d_table, d_t2, (long)V * d), "%s: two runs bit-identical", name);
    dev_free(d_ids), dev_free(d_table), dev_free(d_y), dev_free(d_dy), dev_free(d_t2);
    free(ids), free(table), free(dy), free(y);
}

static void test_rmsnorm(int n, int d) {
    char name[96];
    const long nd = (long)n * d;
    float *x = rand_host(nd, 2.0), *w = rand_host(d, 1.5), *dy = rand_host(nd, 1.0);
    float *dx = rand_host(nd, 1.0), *dw = rand_host(d, 1.0);
    float *y = (float *)malloc(sizeof(float) * nd), *rstd = (float *)malloc(sizeof(float) * n);
    float *d_x = DEV_F(x, nd), *d_w = DEV_F(w, d), *d_dy = DEV_F(dy, nd);
    float *d_y = DEV_POISON_F(nd), *d_rstd = DEV_POISON_F(n);
    rmsnorm_forward_cpu(y, rstd, x, w, n, d, 1e-6f);
    rmsnorm_forward_cuda(d_y, d_rstd, d_x, d_w, n, d, 1e-6f);
    snprintf(name, sizeof name, "rmsnorm_forward n=%d d=%d", n, d);
    expect_close(name, d_y, y, nd);
    snprintf(name, sizeof name, "rmsnorm_forward rstd n=%d d=%d", n, d);
    expect_close(name, d_rstd, rstd, n);

    /* both sides use the CPU's rstd, so the backward is compared on its own */
    be_to_device(BACKEND_CUDA, d_rstd, rstd, sizeof(float) * n);
    float *d_dx = DEV_F(dx, nd), *d_dw = DEV_F(dw, d), *d_dx2 = DEV_F(dx, nd),
          *d_dw2 = DEV_F(dw, d);
    rmsnorm_backward_cpu(dx, dw, dy, x, w, rstd, n, d);
    rmsnorm_backward_cuda(d_dx, d_dw, d_dy, d_x, d_w, d_rstd, n, d);
    rmsnorm_backward_cuda(d_dx2, d_dw2, d_dy, d_x, d_w, d_rstd, n, d);
    snprintf(name, sizeof name, "rmsnorm_backward dx n=%d d=%d", n, d);
    expect_close(name, d_dx, dx, nd);
    snprintf(name, sizeof name, "rmsnorm_backward dw n=%d d=%d", n, d);
    expect_close(name, d_dw, dw, d);
    check(same_bits(d_dx, d_dx2, nd) && same_bits(d_dw, d_dw2, d),
          "rmsnorm_backward n=%d d=%d: two runs bit-identical", n, d);
    dev_free(d_x), dev_free(d_w), dev_free(d_dy), dev_free(d_y), dev_free(d_rstd);
    dev_free(d_dx), dev_free(d_dw), dev_free(d_dx2), dev_free(d_dw2);
    free(x), free(w), free(dy), free(dx), free(dw), free(y), free(rstd);
}

static void test_rope(int n, int h, int D) {
    enum { MAXPOS = 100 };
    char name[96];
    const int half = D / 2;
    const long sz = (long)n * h * D;
    float *inv = (float *)malloc(sizeof(float) * half);
    for (int j = 0; j < half; j++) inv[j] = (float)pow(10000.0, -2.0 * j / D);
    float *ct = (float *)malloc(sizeof(float) * MAXPOS * half);
    float *st = (float *)malloc(sizeof(float) * MAXPOS * half);
    rope_tables_cpu(ct, st, inv, MAXPOS, half);
    int *pos = (int *)malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) pos[i] = (int)(rng_u01() * MAXPOS) % MAXPOS;
    float *x = rand_host(sz, 1.0);
    int *d_pos = DEV_I(pos, n);
    float *d_ct = DEV_F(ct, MAXPOS * half), *d_st = DEV_F(st, MAXPOS * half);
    for (int dir = 0; dir < 2; dir++) {
        float *d_x = DEV_F(x, sz);
        if (dir == 0) {
            rope_forward_cpu(x, pos, ct, st, n, h, D);
            rope_forward_cuda(d_x, d_pos, d_ct, d_st, n, h, D);
        } else {
            rope_backward_cpu(x, pos, ct, st, n, h, D);
            rope_backward_cuda(d_x, d_pos, d_ct, d_st, n, h, D);
        }
        snprintf(name, sizeof name, "rope_%s n=%d h=%d D=%d", dir ? "backward" : "forward", n, h,
                 D);
        expect_close(name, d_x, x, sz);
        dev_free(d_x);
    }
    dev_free(d_pos), dev_free(d_ct), dev_free(d_st);
    free(inv), free(ct), free(st), free(pos), free(x);
}

static void test_swiglu(long n, int off) {
    char name[96];
    float *g = rand_host(n, 8.0), *u = rand_host(n, 2.0), *dh = rand_host(n, 1.0);
    float *dg = rand_host(n, 1.0), *du = rand_host(n, 1.0);
    float *h = (float *)calloc((size_t)n, sizeof(float));
    float *b[6];
    float *d_g = dev_at(&b[0], g, n, off), *d_u = dev_at(&b[1], u, n, off);
    float *d_dh = dev_at(&b[2], dh, n, off), *d_dg = dev_at(&b[3], dg, n, off);
    float *d_du = dev_at(&b[4], du, n, off), *d_h = dev_at(&b[5], h, n, off);
    be_memset_byte(BACKEND_CUDA, d_h, 0xff, sizeof(float) * n);
    swiglu_forward_cpu(h, g, u, n);
    swiglu_forward_cuda(d_h, d_g, d_u, n);
    snprintf(name, sizeof name, "swiglu_forward n=%ld off=%d", n, off);
    expect_close(name, d_h, h, n);
    swiglu_backward_cpu(dg, du, dh, g, u, n);
    swiglu_backward_cuda(d_dg, d_du, d_dh, d_g, d_u, n);
    snprintf(name, sizeof name, "swiglu_backward dg n=%ld off=%d", n, off);
    expect_close(name, d_dg, dg, n);
    snprintf(name, sizeof name, "swiglu_backward du n=%ld off=%d", n, off);
    expect_close(name, d_du, du, n);
    for (int k = 0; k < 6; k++) dev_free(b[k]);
    free(g), free(u), free(dh), free(dg), free(du), free(h);
}

static void test_linear(int n, int in, int out, int bias, int all_grads) {
    char name[128];
    float *x = rand_host((long)n * in, 1.0), *w = rand_host((long)out * in, 1.0);
    float *b = rand_host(out, 1.0), *dy = rand_host((long)n * out, 1.0);
    float *dx = rand_host((long)n * in, 1.0), *dw = rand_host((long)out * in, 1.0);
    float *db = rand_host(out, 1.0), *y = (float *)malloc(sizeof(float) * n * out);
    float *d_x = DEV_F(x, (long)n * in), *d_w = DEV_F(w, (long)out * in), *d_b = DEV_F(b, out);
    float *d_dy = DEV_F(dy, (long)n * out), *d_y = DEV_POISON_F((long)n * out);
    float *d_dx = DEV_F(dx, (long)n * in), *d_dw = DEV_F(dw, (long)out * in),
          *d_db = DEV_F(db, out);
    linear_forward_cpu(y, x, w, bias ? b : NULL, n, in, out);
    linear_forward_cuda(d_y, d_x, d_w, bias ? d_b : NULL, n, in, out);
    snprintf(name, sizeof name, "linear_forward n=%d in=%d out=%d bias=%d", n, in, out, bias);
    expect_close(name, d_y, y, (long)n * out);
    /* without all_grads only dw is asked for: dx and db must stay as they were */
    linear_backward_cpu(all_grads ? dx : NULL, dw, all_grads ? db : NULL, dy, x, w, n, in, out);
    linear_backward_cuda(all_grads ? d_dx : NULL, d_dw, all_grads ? d_db : NULL, d_dy, d_x, d_w, n,
                         in, out);
    snprintf(name, sizeof name, "linear_backward dx n=%d in=%d out=%d grads=%d", n, in, out,
             all_grads);
    expect_close(name, d_dx, dx, (long)n * in);
    snprintf(name, sizeof name, "linear_backward dw n=%d in=%d out=%d grads=%d", n, in, out,
             all_grads);
    expect_close(name, d_dw, dw, (long)out * in);
    snprintf(name, sizeof name, "linear_backward db n=%d in=%d out=%d grads=%d", n, in, out,
             all_grads);
    expect_close(name, d_db, db, out);
    dev_free(d_x), dev_free(d_w), dev_free(d_b), dev_free(d_dy), dev_free(d_y);
    dev_free(d_dx), dev_free(d_dw), dev_free(d_db);
    free(x), free(w), free(b), free(dy), free(dx), free(dw), free(db), free(y);
}

static void test_adamw(long n, int off) {
    char name[96];
    const AdamWParams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f};
    float *p = rand_host(n, 1.0), *g = rand_host(n, 1.0), *m = rand_host(n, 0.1);
    float *v = rand_host(n, 0.01);
    for (long i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *b[4];
    float *d_p = dev_at(&b[0], p, n, off), *d_g = dev_at(&b[1], g, n, off);
    float *d_m = dev_at(&b[2], m, n, off), *d_v = dev_at(&b[3], v, n, off);
    for (int t = 1; t <= 3; t++) {
        adamw_update_cpu(p, g, m, v, n, hp, t);
        adamw_update_cuda(d_p, d_g, d_m, d_v, n, hp, t);
    }
    /* same float operations in the same order, nothing fused: expected bit-identical */
    float *hp_ = HOST_F(d_p, n);
    const int exact = memcmp(hp_, p, sizeof(float) * n) == 0;
    free(hp_);
    snprintf(name, sizeof name, "adamw p n=%ld off=%d (bit-identical: %s)", n, off,
             exact ? "yes" : "no");
    expect_close(name, d_p, p, n);
    snprintf(name, sizeof name, "adamw m n=%ld off=%d", n, off);
    expect_close(name, d_m, m, n);
    snprintf(name, sizeof name, "adamw v n=%ld off=%d", n, off);
    expect_close(name, d_v, v, n);
    for (int k = 0; k < 4; k++) dev_free(b[k]);
    free(p), free(g), free(m), free(v);
}

static void test_sumsq(long n) {
    float *g = rand_host(n, 3.0);
    float *b0, *b1;
    float *d_a = dev_at(&b0, g, n, 0), *d_u = dev_at(&b1, g, n, 1);
    const double want = sumsq_cpu(g, n);
    const double got = sumsq_cuda(d_a, n), again = sumsq_cuda(d_a, n), un = sumsq_cuda(d_u, n);
    const double e = fabs(got - want) / (want > 0 ? want : 1.0);
    check(e < 1e-9, "sumsq n=%ld: rel %.3g (gpu %.17g cpu %.17g)", n, e, got, want);
    /* the float4 and scalar paths give every thread the same elements in the same order */
    check(memcmp(&got, &again, sizeof got) == 0 && memcmp(&got, &un, sizeof got) == 0,
          "sumsq n=%ld: bit-identical twice and at an unaligned address", n);
    dev_free(b0), dev_free(b1);
    free(g);
}

static void test_scale_add(long n, int off) {
    char name[96];
    float *x = rand_host(n, 1.0), *y = rand_host(n, 1.0);
    float *b[2];
    float *d_x = dev_at(&b[0], x, n, off), *d_y = dev_at(&b[1], y, n, off);
    scale_cpu(x, n, -0.37f);
    scale_cuda(d_x, n, -0.37f);
    snprintf(name, sizeof name, "scale n=%ld off=%d", n, off);
    expect_close(name, d_x, x, n);
    for (long i = 0; i < n; i++) y[i] += x[i];
    add_cuda(d_y, d_x, n);
    snprintf(name, sizeof name, "add n=%ld off=%d", n, off);
    expect_close(name, d_y, y, n);
    dev_free(b[0]), dev_free(b[1]);
    free(x), free(y);
}

static void run_all(void) {
    static const long flat[] = {1, 3, 1000, 4097};
    test_embedding(1, 7, 50, 0);
    test_embedding(3, 64, 50, 0);
    test_embedding(300, 896, 50, 0);
    test_embedding(1000, 7, 50, 0);
    test_embedding(4097, 64, 50, 1);
    test_embedding(33, 130, 50, 1);
    /* d from 512 to 8192 (d % 4 == 0) takes the register path with 1, 2 or 4 float4 per
     * thread; 520 and 2056 leave the block's last threads with no columns */
    static const int rn[] = {1, 5, 300}, rd[] = {7, 64, 896, 4096, 520, 2056, 5120, 8192};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 8; c++) test_rmsnorm(rn[a], rd[c]);
    /* more rows than the backward's row groups: several rows per group */
    test_rmsnorm(1000, 896);
    test_rmsnorm(1111, 4096);
    test_rmsnorm(2000, 520);
    test_rmsnorm(600, 8192);
    test_rmsnorm(5, 512);  /* the register path's smallest row: 128 threads, one float4 each */
    test_rmsnorm(3, 8196); /* beyond the register path: a warp per row */
    static const int rD[] = {8, 64, 128, 6};
    for (int c = 0; c < 4; c++) {
        test_rope(1, 3, rD[c]);
        test_rope(37, 3, rD[c]);
    }
    static const int ln[] = {1, 33}, lin[] = {7, 64, 300}, lout[] = {5, 96};
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 3; c++)
            for (int e = 0; e < 2; e++) test_linear(ln[a], lin[c], lout[e], (a + c + e) % 2, 1);
    test_linear(33, 64, 96, 1, 0);
    test_linear(1000, 64, 300, 1, 1); /* more rows than the bias gradient's slices */
    for (int k = 0; k < 4; k++)
        for (int off = 0; off < 2; off++) {
            test_swiglu(flat[k], off);
            test_adamw(flat[k], off);
            test_scale_add(flat[k], off);
        }
    /* more elements than one pass of the grid: the grid-stride loops and sumsq's block cap */
    test_swiglu(3000001, 0);
    test_adamw(3000001, 0);
    test_scale_add(3000001, 0);
    for (int k = 0; k < 4; k++) test_sumsq(flat[k]);
    test_sumsq(3000001);
}
#endif

int main(void) {
    CUDA_TEST_BEGIN();
#ifdef DENSERL_CUDA
    rng_seed(20240611);
    run_all();
#endif
    return test_summary();
}
