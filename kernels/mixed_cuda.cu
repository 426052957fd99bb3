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
#include "../kernels/rope_cuda.cuh"
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

/* y[i, :] = table[ids[i], :] widened from bf16: the embedding lookup of a bf16 model, which
 * reads the bf16 copy of the table. With VEC each thread takes 8 columns (d a multiple of 8,
 * 16-byte aligned table and y), else one. */
template <bool VEC>
__global__ void mx_embed_kernel(float *__restrict__ y, const int *__restrict__ ids,
                                const __nv_bfloat16 *__restrict__ table, long total, int d) {
    const int per = VEC ? d / 8 : d;
    const long t = blockIdx.x * (long)blockDim.x + threadIdx.x,
               stride = (long)gridDim.x * blockDim.x;
    for (long e = t; e < total; e += stride) {
        const long i = e / per, c = e - i * per;
        const long row = (long)ids[i] * d;
        if (VEC) {
            const uint4 u = reinterpret_cast<const uint4 *>(table + row)[c];
            float4 *yi = reinterpret_cast<float4 *>(y + i * (long)d) + 2 * c;
            yi[0] = make_float4(bf16_lo(u.x), bf16_hi(u.x), bf16_lo(u.y), bf16_hi(u.y));
            yi[1] = make_float4(bf16_lo(u.z), bf16_hi(u.z), bf16_lo(u.w), bf16_hi(u.w));
        } else {
            y[i * (long)d + c] = __bfloat162float(table[row + c]);
        }
    }
}

extern "C" void embedding_forward_bf16_cuda(float *y, const int *ids, const uint16_t *table, int n,
                                            int d) {
    if (n <= 0 || d <= 0) return;
    const __nv_bfloat16 *tb = (const __nv_bfloat16 *)table;
    if (d % 8 == 0 && mx_vec_ok(y, table)) {
        const long total = (long)n * (d / 8);
        mx_embed_kernel<true><<<mx_blocks(total, 0), MX_THREADS>>>(y, ids, tb, total, d);
    } else {
        const long total = (long)n * d;
        mx_embed_kernel<false><<<mx_blocks(total, 0), MX_THREADS>>>(y, ids, tb, total, d);
    }
    LAUNCH_CHECK();
}

/* ---- rotary into and out of bf16 ---- */

/* V consecutive values at p as floats: fp32, or bf16 widened */
template <int V> static __device__ __forceinline__ void mx_load(float *o, const float *p) {
    if constexpr (V == 4) {
        const float4 a = *reinterpret_cast<const float4 *>(p);
        o[0] = a.x, o[1] = a.y, o[2] = a.z, o[3] = a.w;
    } else {
        o[0] = *p;
    }
}
template <int V> static __device__ __forceinline__ void mx_load(float *o, const uint16_t *p) {
    if constexpr (V == 4) {
        const uint2 u = *reinterpret_cast<const uint2 *>(p);
        o[0] = bf16_lo(u.x), o[1] = bf16_hi(u.x), o[2] = bf16_lo(u.y), o[3] = bf16_hi(u.y);
    } else {
        o[0] = __uint_as_float((uint32_t)*p << 16);
    }
}
template <int V> static __device__ __forceinline__ void mx_store_bf16(uint16_t *p, const float *v) {
    if constexpr (V == 4)
        *reinterpret_cast<uint2 *>(p) = make_uint2(bf16_pack2(v[0], v[1]), bf16_pack2(v[2], v[3]));
    else
        *p = (uint16_t)bf16_pack2(v[0], 0.0f);
}
template <int V> static __device__ __forceinline__ void mx_store_f32(float *p, const float *v) {
    if constexpr (V == 4)
        *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else
        *p = v[0];
}

/* One thread per (row, head, group of V pairs): the pairs of x rotated by sign x angle, into
 * y as bf16 and, unless yf is NULL, into yf as fp32. x is fp32 (the forward's q and k) or
 * bf16 (the backward's gradients, which y may overwrite: each thread reads its own elements
 * before it writes them). */
template <int V, class In>
__global__ void mx_rope_kernel(uint16_t *y, float *__restrict__ yf, const In *x,
                               const int *__restrict__ pos, const float *__restrict__ cos_t,
                               const float *__restrict__ sin_t, long total, int h, int D,
                               float sign) {
    const int half = D / 2, gpr = half / V; /* groups per head */
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < total;
         e += (long)gridDim.x * blockDim.x) {
        const long ih = e / gpr;
        const int j = (int)(e - ih * gpr) * V;
        const long t = (long)pos[ih / h] * half + j, o1 = ih * D + j, o2 = o1 + half;
        float a[V], b[V], c[V], s[V];
        mx_load<V>(a, x + o1);
        mx_load<V>(b, x + o2);
        mx_load<V>(c, cos_t + t);
        mx_load<V>(s, sin_t + t);
#pragma unroll
        for (int i = 0; i < V; i++) rope_rot(a[i], b[i], c[i], sign * s[i]);
        mx_store_bf16<V>(y + o1, a);
        mx_store_bf16<V>(y + o2, b);
        if (yf) {
            mx_store_f32<V>(yf + o1, a);
            mx_store_f32<V>(yf + o2, b);
        }
    }
}

template <class In>
static void mx_rope(uint16_t *y, float *yf, const In *x, const int *pos, const float *cos_t,
                    const float *sin_t, int n, int h, int D, float sign) {
    const int half = D / 2;
    if (n <= 0 || h <= 0 || half <= 0) return;
    const bool vec =
        half % 4 == 0 && mx_vec_ok(y, x) && mx_vec_ok(cos_t, sin_t) && ((uintptr_t)yf & 15) == 0;
    const int V = vec ? 4 : 1;
    const long total = (long)n * h * (half / V);
    const unsigned blocks = dr_blocks(total, MX_THREADS);
    if (vec)
        mx_rope_kernel<4, In>
            <<<blocks, MX_THREADS>>>(y, yf, x, pos, cos_t, sin_t, total, h, D, sign);
    else
        mx_rope_kernel<1, In>
            <<<blocks, MX_THREADS>>>(y, yf, x, pos, cos_t, sin_t, total, h, D, sign);
    LAUNCH_CHECK();
}

extern "C" void rope_bf16_cuda(uint16_t *y, const float *x, const int *pos, const float *cos_t,
                               const float *sin_t, int n, int h, int D) {
    mx_rope(y, (float *)NULL, x, pos, cos_t, sin_t, n, h, D, 1.0f);
}

extern "C" void rope_backward_bf16_cuda(uint16_t *dyb, float *dy, const uint16_t *g, const int *pos,
                                        const float *cos_t, const float *sin_t, int n, int h,
                                        int D) {
    mx_rope(dyb, dy, g, pos, cos_t, sin_t, n, h, D, -1.0f);
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

extern "C" void attention_forward_bf16in_cuda(uint16_t *ob, float *lse, const uint16_t *qb,
                                              const uint16_t *kb, const uint16_t *vb, int B, int T,
                                              int H, int Hkv, int D, int cudnn) {
    if (cudnn)
        attention_forward_cudnn(ob, lse, qb, kb, vb, B, T, H, Hkv, D);
    else
        attention_forward_bf16_cuda(ob, lse, qb, kb, vb, B, T, H, Hkv, D);
}

extern "C" void attention_backward_bf16in_cuda(uint16_t *dqb, uint16_t *dkb, uint16_t *dvb,
                                               const uint16_t *gb, const uint16_t *qb,
                                               const uint16_t *kb, const uint16_t *vb,
                                               const uint16_t *ob, const float *lse, int B, int T,
                                               int H, int Hkv, int D, void *ws, int cudnn) {
    if (cudnn)
        attention_backward_cudnn(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H, Hkv, D);
    else
        attention_backward_bf16_cuda(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H, Hkv, D, ws);
}

extern "C" void attention_forward_mixed_cuda(uint16_t *ob, float *lse, const float *q,
                                             const float *k, const float *v, int B, int T, int H,
                                             int Hkv, int D, uint16_t *s, int cudnn) {
    const long nq = (long)B * T * H * D, nk = (long)B * T * Hkv * D;
    uint16_t *qb = s, *kb = qb + nq, *vb = kb + nk;
    cast_bf16_cuda(qb, q, nq);
    cast_bf16_cuda(kb, k, nk);
    cast_bf16_cuda(vb, v, nk);
    attention_forward_bf16in_cuda(ob, lse, qb, kb, vb, B, T, H, Hkv, D, cudnn);
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
    attention_backward_bf16in_cuda(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H, Hkv, D, ws,
                                   cudnn);
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
