/* Checks the CUDA fused lm_head log-prob (logprob_forward_cuda, logprob_backward_cuda and the
 * bf16 variants) against logprob_forward_cpu / logprob_backward_cpu on the same inputs: odd
 * row counts, vocabularies and widths, chunks smaller and larger than n, skipped rows
 * (target -1, scattered or whole steps of them), entropy and dentropy NULL or not, dh and dw
 * accumulated onto random values or NULL. The bf16 kernels are held against the CPU on
 * bf16-rounded h and w, the fp16-logits kernels on inputs exact in both bf16 and fp16. Every
 * case runs under each DENSERL_LOGPROB_OVERLAP mode (serial, two
 * streams over halves of the scratch, two streams over two whole buffers), and the
 * two-stream backward is run twice and must repeat itself bit for bit. */
#include "kernels/kernels_cuda.h"
#include "kernels/logprob.h"
#include "kernels/logprob_bf16.h"

#include <stdint.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"

typedef struct {
    int n, V, d, chunk;
    int with_entropy; /* entropy in the forward, dentropy in the backward */
    int grads;        /* 3: dh and dw, 1: dh only, 2: dw only */
    int skip_block;   /* 1: rows [n/4, 3n/4) skipped as well, whole steps of them */
} Case;

/* Targets in [0, V) with every third row (from the second) skipped; n == 1 keeps its row. */
static int *make_targets(int n, int V, int skip_block) {
    int *t = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) t[i] = i % 3 == 1 ? -1 : (int)(rng_u01() * V);
    if (skip_block)
        for (int i = n / 4; i < 3 * n / 4; i++) t[i] = -1;
    return t;
}

/* (got - init) against (want - init): the gradient that was added, not the initial values */
static double delta_err(const float *got, const float *want, const float *init, long n) {
    float *g = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) g[i] = got[i] - init[i], w[i] = want[i] - init[i];
    double e = rel_err(g, w, n);
    free(g);
    free(w);
    return e;
}

static uint16_t to_bf16(float x) { /* round to nearest even; inputs here are finite */
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Tolerances: logp and lse 1e-5. The entropy is log s - sum(e u) / s, a difference that
 * amplifies the last-bit differences of the logits (cuBLAS and the CPU BLAS sum the d
 * products in different orders), hence 1e-4. The gradients are sums over V terms of dlogits
 * that themselves sum to about zero per row, in different orders: 1e-4. bf16: 1e-2. */
/* Inputs k / 256 for integers |k| <= 256: exact in bf16 and fp16 alike, so the CPU
 * reference sees the very values each device path multiplies. */
static void grid_values(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = roundf(x[i] * 256.0f) / 256.0f;
}

/* fp16 bits of a float that fp16 holds exactly as a normal number (or zero) */
static uint16_t to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    const uint32_t sign = (u >> 16) & 0x8000u;
    if ((u & 0x7fffffffu) == 0) return (uint16_t)sign;
    const int e = (int)((u >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint32_t)e << 10 | (u & 0x7fffffu) >> 13);
}

enum { P_FP32, P_BF16, P_F16 }; /* fp32 logits from fp32 or bf16 operands; fp16 logits */

static void run_case(Case c, int prec) {
    const int n = c.n, V = c.V, d = c.d, chunk = c.chunk, bf16 = prec != P_FP32;
    float *h = rand_host((long)n * d, 1.0), *w = rand_host((long)V * d, 1.0);
    uint16_t *hb = calloc((size_t)n * d, 2), *wb = calloc((size_t)V * d, 2);
    uint16_t *h16 = calloc((size_t)n * d, 2), *w16 = calloc((size_t)V * d, 2);
    if (prec == P_F16) {
        grid_values(h, (long)n * d);
        grid_values(w, (long)V * d);
        for (long i = 0; i < (long)n * d; i++) h16[i] = to_f16(h[i]);
        for (long i = 0; i < (long)V * d; i++) w16[i] = to_f16(w[i]);
    }
    if (bf16) {
        for (long i = 0; i < (long)n * d; i++) hb[i] = to_bf16(h[i]), h[i] = from_bf16(hb[i]);
        for (long i = 0; i < (long)V * d; i++) wb[i] = to_bf16(w[i]), w[i] = from_bf16(wb[i]);
    }
    int *t = make_targets(n, V, c.skip_block);
    float *dlogp = rand_host(n, 1.0), *dent = c.with_entropy ? rand_host(n, 1.0) : NULL;
    float *dh0 = rand_host((long)n * d, 1.0), *dw0 = rand_host((long)V * d, 1.0);
    const double tol_f = bf16 ? 1e-2 : 1e-5, tol_h = bf16 ? 1e-2 : 1e-4;
    const double tol_g = bf16 ? 1e-2 : 1e-4;
    char name[128];
    const char *base = prec == P_F16 ? "f16 logits" : bf16 ? "bf16" : "fp32";

    /* CPU reference */
    float *logp = malloc(sizeof(float) * n), *lse = malloc(sizeof(float) * n);
    float *ent = malloc(sizeof(float) * n), *scr = malloc(sizeof(float) * chunk * V);
    logprob_forward_cpu(logp, c.with_entropy ? ent : NULL, lse, h, w, t, n, d, V, chunk, scr);
    float *dh = malloc(sizeof(float) * n * d), *dw = malloc(sizeof(float) * V * d);
    memcpy(dh, dh0, sizeof(float) * n * d);
    memcpy(dw, dw0, sizeof(float) * V * d);
    logprob_backward_cpu(c.grads & 1 ? dh : NULL, c.grads & 2 ? dw : NULL, dlogp, dent, h, w, t,
                         lse, n, d, V, chunk, scr);

    /* device, once per DENSERL_LOGPROB_OVERLAP mode */
    float *g_h = DEV_F(h, (long)n * d), *g_w = DEV_F(w, (long)V * d);
    uint16_t *g_hb = dev_copy_of(hb, (size_t)n * d, 2), *g_wb = dev_copy_of(wb, (size_t)V * d, 2);
    uint16_t *g_h16 = dev_copy_of(h16, (size_t)n * d, 2);
    uint16_t *g_w16 = dev_copy_of(w16, (size_t)V * d, 2);
    int *g_t = DEV_I(t, n);
    float *g_lse_cpu = DEV_F(lse, n), *g_dlogp = DEV_F(dlogp, n);
    float *g_dent = c.with_entropy ? DEV_F(dent, n) : NULL;
    static const char *const modes[] = {"0", "1", "2"};
    const int nmodes = prec == P_F16 ? 1 : 3; /* fp16 logits: serial steps only */
    for (int mi = 0; mi < nmodes; mi++) {
        if (setenv("DENSERL_LOGPROB_OVERLAP", modes[mi], 1) != 0) abort();
        snprintf(name, sizeof name,
                 "%s n=%d V=%d d=%d chunk=%d entropy=%d grads=%d skip=%d mode=%s", base, n, V, d,
                 chunk, c.with_entropy, c.grads, c.skip_block, modes[mi]);
        float *g_logp = DEV_POISON_F(n), *g_lse = DEV_POISON_F(n), *g_ent = DEV_POISON_F(n);
        float *g_scr = DEV_POISON_F((long)chunk * V);
        float *g_ent_arg = c.with_entropy ? g_ent : NULL;
        if (prec == P_F16)
            logprob_forward_f16_cuda(g_logp, g_ent_arg, g_lse, g_h16, g_w16, g_t, n, d, V, chunk,
                                     g_scr);
        else if (bf16)
            logprob_forward_bf16_cuda(g_logp, g_ent_arg, g_lse, g_hb, g_wb, g_t, n, d, V, chunk,
                                      g_scr);
        else
            logprob_forward_cuda(g_logp, g_ent_arg, g_lse, g_h, g_w, g_t, n, d, V, chunk, g_scr);
        float *r_logp = HOST_F(g_logp, n), *r_lse = HOST_F(g_lse, n), *r_ent = HOST_F(g_ent, n);
        double e = rel_err(r_logp, logp, n);
        check(e < tol_f, "%s: logp rel_err %.3g", name, e);
        e = rel_err(r_lse, lse, n);
        check(e < tol_f, "%s: lse rel_err %.3g", name, e);
        if (c.with_entropy) {
            e = rel_err(r_ent, ent, n);
            check(e < tol_h, "%s: entropy rel_err %.3g", name, e);
        }

        /* backward from the CPU's lse, so that it is checked on its own; twice, from the
         * same start, to see that it repeats itself */
        float *r_dh = NULL, *r_dw = NULL;
        for (int rep = 0; rep < 2; rep++) {
            float *g_dh = DEV_F(dh0, (long)n * d), *g_dw = DEV_F(dw0, (long)V * d);
            float *a_dh = c.grads & 1 ? g_dh : NULL, *a_dw = c.grads & 2 ? g_dw : NULL;
            be_memset_byte(BACKEND_CUDA, g_scr, 0xff, sizeof(float) * chunk * V);
            if (prec == P_F16)
                logprob_backward_f16_cuda(a_dh, a_dw, g_dlogp, g_dent, g_h16, g_w16, g_hb, g_wb,
                                          g_t, g_lse_cpu, n, d, V, chunk, g_scr);
            else if (bf16)
                logprob_backward_bf16_cuda(a_dh, a_dw, g_dlogp, g_dent, g_hb, g_wb, g_t, g_lse_cpu,
                                           n, d, V, chunk, g_scr);
            else
                logprob_backward_cuda(a_dh, a_dw, g_dlogp, g_dent, g_h, g_w, g_t, g_lse_cpu, n, d,
                                      V, chunk, g_scr);
            float *q_dh = HOST_F(g_dh, (long)n * d), *q_dw = HOST_F(g_dw, (long)V * d);
            dev_free(g_dh);
            dev_free(g_dw);
            if (rep == 0) {
                r_dh = q_dh, r_dw = q_dw;
            } else {
                int same = !memcmp(q_dh, r_dh, sizeof(float) * n * d) &&
                           !memcmp(q_dw, r_dw, sizeof(float) * V * d);
                check(same, "%s: backward repeats bit for bit", name);
                free(q_dh);
                free(q_dw);
            }
        }
        e = delta_err(r_dh, dh, dh0, (long)n * d);
        double ef = rel_err(r_dh, dh, (long)n * d);
        check(e < tol_g && ef < tol_f, "%s: dh added rel_err %.3g, total rel_err %.3g", name, e,
              ef);
        e = delta_err(r_dw, dw, dw0, (long)V * d);
        ef = rel_err(r_dw, dw, (long)V * d);
        check(e < tol_g && ef < tol_f, "%s: dw added rel_err %.3g, total rel_err %.3g", name, e,
              ef);
        void *dev[] = {g_logp, g_lse, g_ent, g_scr};
        for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
        void *host[] = {r_logp, r_lse, r_ent, r_dh, r_dw};
        for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
    }
    unsetenv("DENSERL_LOGPROB_OVERLAP");

    void *dev[] = {g_h, g_w, g_hb, g_wb, g_h16, g_w16, g_t, g_lse_cpu, g_dlogp, g_dent};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
    void *host[] = {h, w, hb, wb, h16, w16, t, dlogp, dent, dh0, dw0, logp, lse, ent, scr, dh, dw};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
}

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(20250717);
    /* n, V, d, chunk, entropy, grads, skip_block. Several steps at every mode: n > chunk;
     * chunk 1 (serial in mode 1), 2 (halves of one row), odd chunks (halves of chunk/2 rows
     * and a spare row), n a step or two past a multiple of the chunk, whole skipped steps. */
    const Case cases[] = {
        {1, 5, 16, 1, 1, 3, 0},      {1, 1000, 64, 4, 0, 3, 0},    {7, 5, 16, 8, 1, 3, 0},
        {7, 1000, 96, 3, 1, 1, 0},   {7, 32003, 16, 2, 0, 2, 0},   {33, 1000, 16, 64, 1, 3, 0},
        {33, 32003, 64, 8, 1, 3, 0}, {33, 32003, 96, 40, 0, 3, 0}, {33, 5, 96, 7, 1, 3, 0},
        {8, 151936, 64, 3, 1, 3, 0}, {5, 1000, 32, 1, 1, 3, 0},    {9, 777, 48, 2, 1, 3, 0},
        {50, 1001, 40, 7, 1, 3, 1},  {41, 3000, 24, 5, 0, 3, 1},   {64, 2048, 32, 16, 1, 3, 1},
        {20, 513, 16, 9, 1, 2, 0},   {18, 513, 16, 12, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(cases[i], P_FP32);
    const Case bcases[] = {
        {7, 1000, 96, 3, 1, 3, 0},   {33, 32003, 64, 8, 1, 3, 0}, {8, 151936, 64, 3, 1, 3, 0},
        {5, 1000, 32, 1, 1, 3, 0},   {50, 1001, 40, 7, 1, 3, 1},  {41, 3000, 24, 5, 0, 3, 1},
        {64, 2048, 32, 16, 1, 3, 1}, {20, 513, 16, 9, 1, 2, 0},
    };
    for (size_t i = 0; i < sizeof bcases / sizeof *bcases; i++) run_case(bcases[i], P_BF16);
    /* fp16 logits: the bf16 cases, one with a step of a single row (chunk 1: steps of 2) and
     * vocabularies that are and are not multiples of 8 (16-byte loads or single ones) */
    for (size_t i = 0; i < sizeof bcases / sizeof *bcases; i++) run_case(bcases[i], P_F16);
    const Case fcases[] = {
        {1, 5, 16, 1, 1, 3, 0}, {7, 32003, 16, 2, 0, 2, 0}, {9, 777, 48, 2, 1, 3, 0}};
    for (size_t i = 0; i < sizeof fcases / sizeof *fcases; i++) run_case(fcases[i], P_F16);
    return test_summary();
}
