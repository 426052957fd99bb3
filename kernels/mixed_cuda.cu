/* Mixed precision on the GPU, as automatic mixed precision does it: fp32 master weights and
 * fp32 activations between ops, bf16 copies of both going into the tensor-core products
 * (cuBLAS GemmEx, fp32 accumulation and fp32 results) and into the bf16 flash attention.
 * The casts round to nearest even. Every gradient lands in fp32 with the accumulate rules
 * of the fp32 ops (linear.h, attention.h); the scratch buffers for the bf16 copies belong to
 * the caller. Where a tensor only feeds products (the MLP's hidden activation and its
 * gradients), the caller can hand over its bf16 copy instead (x or dy NULL) or have a
 * product write one (linear_dx_bf16_mixed_cuda), and skip the fp32 tensor. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "../kernels/attention_bf16.h"
#include "../kernels/bf16_cuda.cuh"
#include "../kernels/attention_cudnn.h"
#include "../kernels/kernels_cuda.h"
#include "../kernels/logprob_bf16.h"
#include "../runtime/cuda_util.cuh"

enum { MX_THREADS = 256 };

/* The element kernels take 8 elements per thread (16-byte loads and stores of the bf16
 * side) when both pointers are 16-byte aligned, the rest (or everything, unaligned) one at a
 * time; every element gets the same operation either way. */
static bool mx_vec_ok(const void *a, const void *b) {
    return (((uintptr_t)a | (uintptr_t)b) & 15) == 0;
}

/* Two floats rounded to nearest even, packed as bf16 (F16 false) or fp16 (F16 true). */
template <bool F16> static __device__ __forceinline__ uint32_t mx_pack2(float lo, float hi) {
    if constexpr (F16)
        return (uint32_t)__half_as_ushort(__float2half_rn(lo)) |
               (uint32_t)__half_as_ushort(__float2half_rn(hi)) << 16;
    else
        return bf16_pack2(lo, hi);
}

/* y (16-bit bit patterns) = x rounded to bf16 or fp16 */
template <bool F16>
__global__ void mx_cast_kernel(uint16_t *__restrict__ y, const float *__restrict__ x, long n,
                               long n8) {
    const long t = blockIdx.x * (long)blockDim.x + threadIdx.x,
               stride = (long)gridDim.x * blockDim.x;
    for (long i = t; i < n8; i += stride) {
        const float4 a = reinterpret_cast<const float4 *>(x)[2 * i];
        const float4 b = reinterpret_cast<const float4 *>(x)[2 * i + 1];
        reinterpret_cast<uint4 *>(y)[i] =
            make_uint4(mx_pack2<F16>(a.x, a.y), mx_pack2<F16>(a.z, a.w), mx_pack2<F16>(b.x, b.y),
                       mx_pack2<F16>(b.z, b.w));
    }
    for (long i = 8 * n8 + t; i < n; i += stride) y[i] = (uint16_t)mx_pack2<F16>(x[i], 0.0f);
}

/* y = x (ADD: y += x), bf16 x widened to fp32 */
template <bool ADD>
__global__ void mx_widen_kernel(float *__restrict__ y, const __nv_bfloat16 *__restrict__ x, long n,
                                long n8) {
    const long t = blockIdx.x * (long)blockDim.x + threadIdx.x,
               stride = (long)gridDim.x * blockDim.x;
    for (long i = t; i < n8; i += stride) {
        const uint4 u = reinterpret_cast<const uint4 *>(x)[i];
        float4 a = make_float4(bf16_lo(u.x), bf16_hi(u.x), bf16_lo(u.y), bf16_hi(u.y));
        float4 b = make_float4(bf16_lo(u.z), bf16_hi(u.z), bf16_lo(u.w), bf16_hi(u.w));
        float4 *yi = reinterpret_cast<float4 *>(y) + 2 * i;
        if (ADD) {
            const float4 ya = yi[0], yb = yi[1];
            a = make_float4(ya.x + a.x, ya.y + a.y, ya.z + a.z, ya.w + a.w);
            b = make_float4(yb.x + b.x, yb.y + b.y, yb.z + b.z, yb.w + b.w);
        }
        yi[0] = a;
        yi[1] = b;
    }
    for (long i = 8 * n8 + t; i < n; i += stride)
        y[i] = ADD ? y[i] + __bfloat162float(x[i]) : __bfloat162float(x[i]);
}

/* y (rows, out): each row set to b, so that a beta = 1 product adds onto the bias. A block
 * per row at a time, its threads over the columns (float4 when out and y allow). */
__global__ void mx_bias_kernel(float *__restrict__ y, const float *__restrict__ b, long rows,
                               int out, int vec) {
    for (long r = blockIdx.x; r < rows; r += gridDim.x) {
        float *yr = y + r * out;
        if (vec) {
            for (int c = threadIdx.x; c < out / 4; c += blockDim.x)
                reinterpret_cast<float4 *>(yr)[c] = reinterpret_cast<const float4 *>(b)[c];
        } else {
            for (int c = threadIdx.x; c < out; c += blockDim.x) yr[c] = b[c];
        }
    }
}

/* Grid for n elements, n8 of them in groups of 8 (n8 = 0: one per thread). */
static unsigned mx_blocks(long n, long n8) {
    return dr_blocks(n8 > 0 ? n8 : n, MX_THREADS);
}

extern "C" void cast_bf16_cuda(uint16_t *y, const float *x, long n) {
    if (n <= 0) return;
    const long n8 = mx_vec_ok(x, y) ? n / 8 : 0;
    mx_cast_kernel<false><<<mx_blocks(n, n8), MX_THREADS>>>(y, x, n, n8);
    LAUNCH_CHECK();
}

extern "C" void cast_f16_cuda(uint16_t *y, const float *x, long n) {
    if (n <= 0) return;
    const long n8 = mx_vec_ok(x, y) ? n / 8 : 0;
    mx_cast_kernel<true><<<mx_blocks(n, n8), MX_THREADS>>>(y, x, n, n8);
    LAUNCH_CHECK();
}

extern "C" void add_from_bf16_cuda(float *y, const uint16_t *x, long n) {
    if (n <= 0) return;
    const long n8 = mx_vec_ok(x, y) ? n / 8 : 0;
    mx_widen_kernel<true><<<mx_blocks(n, n8), MX_THREADS>>>(y, (const __nv_bfloat16 *)x, n, n8);
    LAUNCH_CHECK();
}

extern "C" void widen_bf16_cuda(float *y, const uint16_t *x, long n) {
    if (n <= 0) return;
    const long n8 = mx_vec_ok(x, y) ? n / 8 : 0;
    mx_widen_kernel<false><<<mx_blocks(n, n8), MX_THREADS>>>(y, (const __nv_bfloat16 *)x, n, n8);
    LAUNCH_CHECK();
}

/* C (m, n) column-major = op(A) op(B) + beta C, bf16 inputs, fp32 accumulation; C of type
 * ct (fp32, or bf16 rounded from the fp32 result). */
static void mx_gemm_to(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                       const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, void *C,
                       cudaDataType_t ct, int ldc) {
    const float one = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(dr_cublas(), ta, tb, m, n, k, &one, A, CUDA_R_16BF, lda, B,
                              CUDA_R_16BF, ldb, &beta, C, ct, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

static void mx_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C,
                    int ldc) {
    mx_gemm_to(ta, tb, m, n, k, A, lda, B, ldb, beta, C, CUDA_R_32F, ldc);
}

extern "C" void linear_forward_mixed_cuda(float *y, const float *x, const uint16_t *w,
                                          const float *b, int n, int in, int out, uint16_t *xs) {
    if (n <= 0 || out <= 0 || in <= 0) return;
    if (x) cast_bf16_cuda(xs, x, (long)n * in); /* x NULL: xs holds bf16(x) already */
    if (linear_lt_forward_cuda(y, xs, w, b, NULL, n, in, out)) return; /* bias in the epilogue */
    if (b) {
        const int vec = out % 4 == 0 && mx_vec_ok(y, b);
        const long blocks = n < 65535L * 4 ? n : 65535L * 4;
        mx_bias_kernel<<<(unsigned)blocks, MX_THREADS>>>(y, b, n, out, vec);
        LAUNCH_CHECK();
    }
    /* y^T (out, n) = W (out, in) x^T; W row-major (out, in) is column-major (in, out) */
    mx_gemm(CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, w, in, xs, in, b ? 1.0f : 0.0f, y, out);
}

extern "C" void linear_forward_res_mixed_cuda(float *y, const float *x, const uint16_t *w,
                                              const float *b, const float *r, int n, int in,
                                              int out, uint16_t *xs) {
    if (n <= 0 || out <= 0 || in <= 0) return;
    if (x) cast_bf16_cuda(xs, x, (long)n * in);
    if (linear_lt_forward_cuda(y, xs, w, b, r, n, in, out)) return; /* r as the C operand */
    linear_forward_mixed_cuda(y, NULL, w, b, n, in, out, xs);
    add_cuda(y, r, (long)n * out);
}

extern "C" void linear_forward_bf16_mixed_cuda(uint16_t *yb, const uint16_t *xs, const uint16_t *w,
                                               int n, int in, int out) {
    if (n <= 0 || out <= 0 || in <= 0) return;
    /* y^T (out, n) = W (out, in) x^T, rounded to bf16 */
    mx_gemm_to(CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, w, in, xs, in, 0.0f, yb, CUDA_R_16BF, out);
}

extern "C" void linear_backward_mixed_cuda(float *dx, float *dw, float *db, const float *dy,
                                           const float *x, const uint16_t *w, int n, int in,
                                           int out, uint16_t *dys, uint16_t *xs) {
    if (n <= 0 || out <= 0 || in <= 0) return;
    if (db && !dy) {
        fprintf(stderr, "fatal: linear_backward_mixed_cuda: the bias gradient needs dy in fp32\n");
        abort();
    }
    if (dy) cast_bf16_cuda(dys, dy, (long)n * out); /* dy NULL: dys holds bf16(dy) already */
    /* dx^T (in, n) += W^T dy^T */
    if (dx) mx_gemm(CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, w, in, dys, out, 1.0f, dx, in);
    /* dw^T (in, out) += x^T (in, n) dy (n, out); x NULL: xs holds bf16(x) already */
    if (dw) {
        if (x) cast_bf16_cuda(xs, x, (long)n * in);
        mx_gemm(CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, xs, in, dys, out, 1.0f, dw, in);
    }
    if (db) linear_backward_cuda(NULL, NULL, db, dy, x, NULL, n, in, out);
}

extern "C" void linear_dx_bf16_mixed_cuda(uint16_t *dxb, const float *dy, const uint16_t *w, int n,
                                          int in, int out, uint16_t *dys) {
    if (n <= 0 || out <= 0 || in <= 0) return;
    cast_bf16_cuda(dys, dy, (long)n * out);
    /* dx^T (in, n) = W^T dy^T, rounded to bf16 */
    mx_gemm_to(CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, w, in, dys, out, 0.0f, dxb, CUDA_R_16BF, in);
}

extern "C" void attention_forward_mixed_cuda(uint16_t *ob, float *lse, const float *q,
                                             const float *k, const float *v, int B, int T, int H,
                                             int Hkv, int D, uint16_t *s, int cudnn) {
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D;
    uint16_t *qb = s, *kb = qb + nq, *vb = kb + nk;
    cast_bf16_cuda(qb, q, nq);
    cast_bf16_cuda(kb, k, nk);
    cast_bf16_cuda(vb, v, nk);
    if (cudnn)
        attention_forward_cudnn(ob, lse, qb, kb, vb, B, T, H, Hkv, D);
    else
        attention_forward_bf16_cuda(ob, lse, qb, kb, vb, B, T, H, Hkv, D);
}

extern "C" void attention_backward_mixed_cuda(float *dq, float *dk, float *dv, const uint16_t *gb,
                                              const float *q, const float *k, const float *v,
                                              const uint16_t *ob, const float *lse, int B, int T,
                                              int H, int Hkv, int D, uint16_t *s, void *ws,
                                              int cudnn) {
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D;
    uint16_t *qb = s, *kb = qb + nq, *vb = kb + nk;
    uint16_t *dqb = vb + nk, *dkb = dqb + nq, *dvb = dkb + nk;
    cast_bf16_cuda(qb, q, nq);
    cast_bf16_cuda(kb, k, nk);
    cast_bf16_cuda(vb, v, nk);
    if (cudnn)
        attention_backward_cudnn(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H, Hkv, D);
    else
        attention_backward_bf16_cuda(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H, Hkv, D, ws);
    add_from_bf16_cuda(dq, dqb, nq);
    add_from_bf16_cuda(dk, dkb, nk);
    add_from_bf16_cuda(dv, dvb, nk);
}

extern "C" void logprob_forward_mixed_cuda(float *logp, float *entropy, float *lse, const float *h,
                                           const uint16_t *w, const uint16_t *w16,
                                           const int *targets, int n, int d, int V, int chunk,
                                           float *scratch, uint16_t *hs) {
    if (w16) {
        cast_f16_cuda(hs, h, (long)n * d);
        logprob_forward_f16_cuda(logp, entropy, lse, hs, w16, targets, n, d, V, chunk, scratch);
        return;
    }
    cast_bf16_cuda(hs, h, (long)n * d);
    logprob_forward_bf16_cuda(logp, entropy, lse, hs, w, targets, n, d, V, chunk, scratch);
}

extern "C" void logprob_backward_mixed_cuda(float *dh, float *dw, const float *dlogp,
                                            const float *dentropy, const float *h,
                                            const uint16_t *w, const uint16_t *w16,
                                            const int *targets, const float *lse, int n, int d,
                                            int V, int chunk, float *scratch, uint16_t *hs) {
    cast_bf16_cuda(hs, h, (long)n * d);
    if (w16) {
        uint16_t *h16 = hs + (size_t)n * d;
        cast_f16_cuda(h16, h, (long)n * d);
        logprob_backward_f16_cuda(dh, dw, dlogp, dentropy, h16, w16, hs, w, targets, lse, n, d, V,
                                  chunk, scratch);
        return;
    }
    logprob_backward_bf16_cuda(dh, dw, dlogp, dentropy, hs, w, targets, lse, n, d, V, chunk,
                               scratch);
}
