/* IEEE half precision for the CPU emulation of the CUDA backend: the storage type and the
 * conversions the kernels use, rounded to nearest even with subnormals, overflow to infinity
 * and NaN kept, as the GPU converts. */
#pragma once
#include "cuda_runtime.h"

struct alignas(2) __half {
    unsigned short __x;
};
struct alignas(4) __half2 {
    __half x, y;
};

static inline __half __ushort_as_half(unsigned short u) {
    return __half{u};
}
static inline unsigned short __half_as_ushort(__half h) {
    return h.__x;
}

static inline float __half2float(__half h) {
    const unsigned s = (h.__x & 0x8000u) << 16, e = (h.__x >> 10) & 0x1f, m = h.__x & 0x3ffu;
    if (e == 0x1f) return __uint_as_float(s | 0x7f800000u | (m << 13));
    if (e) return __uint_as_float(s | ((e + 112) << 23) | (m << 13));
    const float sub = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
    return s ? -sub : sub;
}

static inline __half __float2half_rn(float f) {
    const unsigned u = __float_as_uint(f), s = (u >> 16) & 0x8000u;
    const unsigned a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return __half{(unsigned short)(s | 0x7e00u | ((a >> 13) & 0x3ffu))};
    if (a >= 0x477ff000u) return __half{(unsigned short)(s | 0x7c00u)}; /* rounds past 65504 */
    if (a < 0x38800000u) {
        /* subnormal or zero: the value in units of 2^-24, rounded to nearest even */
        const float q = __uint_as_float(a) * 16777216.0f;
        return __half{(unsigned short)(s | (unsigned)nearbyintf(q))};
    }
    const unsigned r = a + 0x0fffu + ((a >> 13) & 1u); /* round the 13 dropped bits to even */
    return __half{(unsigned short)(s | ((r - 0x38000000u) >> 13))};
}
static inline __half __float2half(float f) {
    return __float2half_rn(f);
}
static inline __half2 __floats2half2_rn(float a, float b) {
    return __half2{__float2half_rn(a), __float2half_rn(b)};
}
static inline float2 __half22float2(__half2 h) {
    return float2{__half2float(h.x), __half2float(h.y)};
}
static inline float __low2float(__half2 h) {
    return __half2float(h.x);
}
static inline float __high2float(__half2 h) {
    return __half2float(h.y);
}
