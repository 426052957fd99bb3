/* bf16 bit helpers shared by the CUDA element kernels: two floats rounded to nearest even and
 * packed into 32 bits (the lower index in the low half, as memory holds them), and the two
 * halves of such a word widened back to float. */
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

static __device__ __forceinline__ uint32_t bf16_pack2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
}

static __device__ __forceinline__ float bf16_lo(uint32_t u) {
    return __uint_as_float(u << 16);
}

static __device__ __forceinline__ float bf16_hi(uint32_t u) {
    return __uint_as_float(u & 0xffff0000u);
}
