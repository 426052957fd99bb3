/* A vectorisable exp for the CPU kernels' softmax and sigmoid loops. */
#pragma once
#include <stdint.h>
#include <string.h>

/* exp(-a) for a >= 0 within 2 float ulps: Cephes expf, i.e. Cody-Waite reduction by ln 2 and
 * a degree-6 polynomial on [-ln2/2, ln2/2]. a is capped at 87 so 2^n stays a normal float;
 * exp(-87) ~ 1.6e-38 in place of a smaller value moves no sigmoid by a visible amount.
 * The cap is an integer min, and the sign select below bit masking, because a float
 * compare-and-select in these loops stops gcc from vectorising them under the default
 * -ftrapping-math. A NaN input is capped here; callers keep NaN through their products.
 * Negative a (exp of a positive number) passes the cap unchanged. */
static inline float fast_exp_neg(float a) {
    int32_t ab;
    memcpy(&ab, &a, sizeof ab);
    ab = ab < 0x42AE0000 ? ab : 0x42AE0000; /* 87.0f; for a >= 0 int order is float order */
    memcpy(&a, &ab, sizeof a);
    const float x = -a;
    /* Round-to-nearest of x / ln2 by adding and removing 1.5 * 2^23. */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
