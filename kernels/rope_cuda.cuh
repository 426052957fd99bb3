/* The rotary pair rotation shared by every CUDA kernel that rotates (elementwise_cuda.cu's
 * fp32 rotary, mixed_cuda.cu's rotary into and out of bf16): (a, b) -> (a c - b s, b c + a s)
 * with each product and sum rounded on its own, no fused multiply-add, as the CPU reference
 * (rope_cpu.c) computes it. So every kernel gives the same bits, and the fused bf16 kernels
 * give exactly what the fp32 rotary followed by a cast gives. */
#pragma once

static __device__ __forceinline__ void rope_rot(float &a, float &b, float c, float s) {
    const float x1 = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    const float x2 = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    a = x1;
    b = x2;
}
