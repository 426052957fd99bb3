/* bfloat16 for the CPU emulation of the CUDA backend: the upper half of an fp32, converted
 * with round to nearest even and NaN kept, as the GPU converts. */
#pragma once
#include "cuda_runtime.h"
#include "cuda_fp16.h"

struct alignas(2) __nv_bfloat16 {
    unsigned short __x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    return __nv_bfloat16{u};
}
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) {
    return h.__x;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
    return __uint_as_float((unsigned)h.__x << 16);
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40u)};
    return __nv_bfloat16{(unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
static inline __nv_bfloat16 __float2bfloat16(float f) {
    return __float2bfloat16_rn(f);
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}
static inline __nv_bfloat162 __float22bfloat162_rn(float2 f) {
    return __floats2bfloat162_rn(f.x, f.y);
}
static inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{__bfloat162float(h.x), __bfloat162float(h.y)};
}
static inline float __low2float(__nv_bfloat162 h) {
    return __bfloat162float(h.x);
}
static inline float __high2float(__nv_bfloat162 h) {
    return __bfloat162float(h.y);
}
