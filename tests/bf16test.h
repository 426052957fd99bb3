/* bf16 helpers for the tests of the bf16 attention kernels (hand-written and cuDNN): host
 * rounding to bf16, device copies and poisoned buffers of bf16, and a relative error whose
 * reference norm is floored. Include after cudatest.h. */
#ifndef DENSERL_BF16TEST_H
#define DENSERL_BF16TEST_H

#include <stdint.h>

/* float -> bf16 bits, round to nearest even (inputs are finite). */
static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rounds x (n) to bf16 in place and returns the bf16 bits (malloc'd). */
static inline uint16_t *round_bf16(float *x, long n) {
    uint16_t *h = malloc(sizeof(uint16_t) * (n ? n : 1));
    for (long i = 0; i < n; i++) {
        h[i] = f2bf(x[i]);
        x[i] = bf2f(h[i]);
    }
    return h;
}

/* rel_err with the reference norm floored at an RMS of 1e-3: at T = 1 the exact dq and dk
 * are zero (dS = dP - Delta = 0) and both sides hold only rounding noise. */
static inline double grad_err(const float *got, const float *want, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    const double floor = 1e-6 * (double)n;
    return sqrt(num / (den > floor ? den : floor));
}

static inline uint16_t *dev_bf16(const uint16_t *h, long n) {
    return dev_copy_of(h, (size_t)n, sizeof(uint16_t));
}
static inline uint16_t *dev_poison_bf16(long n) {
    return dev_poisoned((size_t)n, sizeof(uint16_t)); /* 0xffff: a bf16 NaN */
}
/* Device bf16 (n) as host floats. */
static inline float *host_bf16(const uint16_t *d, long n) {
    uint16_t *h = host_copy_of(d, (size_t)n, sizeof(uint16_t));
    float *f = malloc(sizeof(float) * (n ? n : 1));
    for (long i = 0; i < n; i++) f[i] = bf2f(h[i]);
    free(h);
    return f;
}

#endif
