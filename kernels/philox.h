/* Philox4x32-10 counter-based generator (Salmon et al., 2011). Header-only and free of
 * state, so the CPU and CUDA backends draw identical numbers for the same (key, counter). */
#pragma once
#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define PHILOX_FN static inline __host__ __device__
#else
#define PHILOX_FN static inline
#endif
/* a product that the compiler may not fuse into a multiply-add, so that host and device round
 * it alike */
#if defined(__CUDA_ARCH__)
#define PHILOX_MUL(a, b) __fmul_rn(a, b)
#else
#define PHILOX_MUL(a, b) ((a) * (b))
#endif

typedef struct {
    uint32_t v[4];
} philox4;

PHILOX_FN uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Ten rounds of Philox4x32 on counter c with 64-bit key k. */
PHILOX_FN philox4 philox4x32(philox4 c, uint64_t key) {
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = philox_mulhilo(0xD2511F53u, c.v[0], &hi0);
        uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c.v[2], &hi1);
        philox4 n = {{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* Four 32-bit words for (seed, stream, index): stream separates uses (init, sampling, ...). */
PHILOX_FN philox4 philox_draw(uint64_t seed, uint64_t stream, uint64_t index) {
    philox4 c = {
        {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)}};
    return philox4x32(c, seed);
}

/* Uniform in [0, 1) with 24 random bits. */
PHILOX_FN float philox_u01(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* Standard normal by Box-Muller from two words. */
PHILOX_FN float philox_normal(uint32_t a, uint32_t b) {
    float u1 = ((float)(a >> 8) + 1.0f) * (1.0f / 16777217.0f); /* (0, 1] so log is finite */
    float u2 = philox_u01(b);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

/* ---- Gumbel-max sampling ----
 * Token v of a row whose noise key is k takes words 2 (v & 1), 2 (v & 1) + 1 of Philox on
 * counter (v / 2, k, PHILOX_GUMBEL_TAG) under the seed. The tag sits where philox_draw puts a
 * stream's upper half, zero for every stream in use, so the two never share a counter. */
#define PHILOX_GUMBEL_TAG 0x47554D42u /* "GUMB" */

PHILOX_FN philox4 philox_gumbel_draw(uint64_t seed, uint64_t key, uint32_t pair) {
    philox4 c = {{pair, (uint32_t)key, (uint32_t)(key >> 32), PHILOX_GUMBEL_TAG}};
    return philox4x32(c, seed);
}

/* log E for E = -log(1 - u) ~ Exp(1), u = (w1 + (w2 + 1/2) / 2^32) / 2^32 in (0, 1): two
 * words, so that u keeps 24 significant bits down to 2^-40, where the race is decided (the
 * winner's E is near 1 / V). u is held below 1 so that E stays finite (at most 16.6). */
PHILOX_FN float philox_log_exp(uint32_t w1, uint32_t w2) {
    const float s = 2.3283064365386963e-10f; /* 2^-32 */
    float u = PHILOX_MUL((float)w1 + PHILOX_MUL((float)w2 + 0.5f, s), s);
    u = u < 0.99999994f ? u : 0.99999994f;
    return logf(-log1pf(-u));
}
