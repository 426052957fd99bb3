/* Checks the mixed-precision element kernels and the biased bf16 product against the host:
 * cast_bf16_cuda bit for bit against round-to-nearest-even (ties, signed zeros, subnormals,
 * infinities, values that round up to infinity, random values), add_from_bf16_cuda and
 * widen_bf16_cuda bit for bit against the host's float addition and widening, over sizes that
 * leave tails of every length and buffers offset by 1 to 7 elements (the unaligned path);
 * and linear_forward_mixed_cuda with and without a bias, against a double product of the
 * bf16-rounded operands (relative error < 1e-5: fp32 accumulation). Outputs start poisoned.
 * Exits 77 (skip) without a GPU. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "cudatest.h"

#ifdef DENSERL_CUDA
#include "kernels/kernels_cuda.h"
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

static void test_linear_mixed(int n, int in, int out, int bias) {
    float *x = rand_host((long)n * in, 1.0), *w = rand_host((long)out * in, 1.0);
    float *b = rand_host(out, 1.0);
    uint16_t *wb = round_bf16(w, (long)out * in);
    float *xr = malloc(sizeof(float) * (size_t)n * in);
    memcpy(xr, x, sizeof(float) * (size_t)n * in);
    free(round_bf16(xr, (long)n * in)); /* what the product sees */
    float *want = malloc(sizeof(float) * (size_t)n * out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? b[o] : 0.0;
            for (int k = 0; k < in; k++)
                s += (double)xr[(size_t)i * in + k] * w[(size_t)o * in + k];
            want[(size_t)i * out + o] = (float)s;
        }
    float *dx = DEV_F(x, (long)n * in), *db = DEV_F(b, out), *dy = DEV_POISON_F((long)n * out);
    uint16_t *dw = dev_bf16(wb, (long)out * in), *xs = dev_poison_bf16((long)n * in);
    linear_forward_mixed_cuda(dy, dx, dw, bias ? db : NULL, n, in, out, xs);
    float *got = HOST_F(dy, (long)n * out);
    const double e = rel_err(got, want, (long)n * out);
    check(e < 1e-5, "linear_forward_mixed n=%d in=%d out=%d bias=%d: rel err %.3g", n, in, out,
          bias, e);
    dev_free(dx), dev_free(db), dev_free(dy), dev_free(dw), dev_free(xs);
    free(x), free(w), free(b), free(wb), free(xr), free(want), free(got);
}

static void run_all(void) {
    const long sizes[] = {1, 7, 8, 9, 15, 16, 17, 1000, 4097, 1000003};
    for (int s = 0; s < 10; s++)
        for (int off = 0; off < 8; off += (sizes[s] > 5000 ? 7 : 1)) {
            test_cast(sizes[s], off);
            test_widen(sizes[s], off, 0);
            test_widen(sizes[s], off, 1);
        }
    const int shapes[][3] = {
        {1, 8, 8}, {3, 64, 130}, {37, 96, 129}, {300, 896, 128}, {64, 200, 1000}};
    for (int k = 0; k < 5; k++)
        for (int bias = 0; bias < 2; bias++)
            test_linear_mixed(shapes[k][0], shapes[k][1], shapes[k][2], bias);
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
