/* CUDA fused lm_head -> log-softmax -> gather (logprob.h, logprob_bf16.h). Rows go a chunk
 * at a time: one cuBLAS product writes the chunk's logits (chunk x V) into the scratch, then
 * one block per row does the softmax work. Unlike the CPU, rows with target < 0 are not
 * compacted away before the product (that would need the targets on the host): their
 * logits are computed and ignored, and their dlogits are zero, so they add nothing to dh
 * or dw. Row sums are in double, as on the CPU. The bf16 variants take bf16 h and w into
 * tensor-core products with fp32 accumulation; their backward writes bf16 dlogits over the
 * first half of each fp32 logits row (row stride 2V), so the scratch stays chunk x V floats.
 *
 * cuBLAS is column-major: a row-major (r, c) array is a column-major (c, r) one, so
 *   z (rows, V) = h (rows, d) @ w^T  is  z' (V, rows) = op_T(w' (d, V)) @ h' (d, rows)
 *   dh (rows, d) += dz @ w            is  dh' (d, rows) += w' (d, V) @ dz' (V, rows)
 *   dw (V, d) += dz^T @ h             is  dw' (d, V) += h' (d, rows) @ op_T(dz' (V, rows)). */
#include <cuda_bf16.h>
#include "../kernels/kernels_cuda.h"
#include "../kernels/logprob_bf16.h"
#include "../runtime/cuda_util.cuh"

enum { LP_THREADS = 512 }; /* a multiple of 32, at most 1024 (block_* use 32 warp slots) */

/* ---- kernels ---- */

/* The block's maximum, returned to every thread. sh: 32 floats of shared memory. */
static __device__ float lp_block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads(); /* sh may still be read by a previous call */
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The block's sum, returned to every thread. sh: 32 doubles of shared memory. */
static __device__ double lp_block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One block per row j of the chunk, row r = row0 + j of the batch. z: (rows, V) logits.
 * One pass over the row: each thread keeps an online (max m, s = sum e^(z-m),
 * su = sum e^(z-m) (z-m)); raising m to m' scales s by e^-(m'-m) and su to
 * e^-(m'-m) (su - (m'-m) s). The threads' triples are then moved to the block's max and
 * summed in double, giving H = log s - su / s as on the CPU. */
__global__ void lp_forward_kernel(float *logp, float *entropy, float *lse, const float *z,
                                  const int *targets, int row0, int V) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int r = row0 + blockIdx.x, t = targets[r];
    if (t < 0) {
        if (threadIdx.x == 0) {
            logp[r] = 0.0f;
            lse[r] = 0.0f;
            if (entropy) entropy[r] = 0.0f;
        }
        return; /* the whole block leaves: t is the same for every thread */
    }
    const float *zr = z + (size_t)blockIdx.x * V;
    float m = -INFINITY;
    double s = 0.0, su = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float x = zr[v];
        if (x > m) {
            if (s > 0.0) {
                const double dm = (double)x - m, sc = exp(-dm);
                su = sc * (su - dm * s);
                s *= sc;
            }
            m = x;
        }
        const float u = x - m, e = expf(u);
        s += e;
        su += (double)e * u;
    }
    const float mx = lp_block_max(m, shf);
    if (s > 0.0) { /* threads that saw no element (V < blockDim) add nothing */
        const double dm = (double)mx - m, sc = exp(-dm);
        su = sc * (su - dm * s);
        s *= sc;
    }
    s = lp_block_sum(s, shd);
    if (entropy) su = lp_block_sum(su, shd); /* entropy: the same for the whole block */
    if (threadIdx.x == 0) {
        double log_s = log(s);
        lse[r] = (float)(mx + log_s);
        logp[r] = (float)((double)(zr[t] - mx) - log_s);
        if (entropy) entropy[r] = (float)(log_s - su / s);
    }
}

/* -sum_v p log p over the row, p = exp(z - lse), for every thread of the block. */
static __device__ float lp_row_entropy(const float *zr, float l, int V, double *sh) {
    double acc = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float lp = zr[v] - l;
        acc -= (double)expf(lp) * lp;
    }
    return (float)lp_block_sum(acc, sh);
}

/* dz = dlogp (onehot - p) - dentropy p (log p + H) for one row, in fp32, written over the
 * logits: fp32 in place (BF16 false), or bf16 over the first half of the row (BF16 true).
 * Rows with target < 0 get zeros. One block per row of the chunk. */
template <bool BF16>
__global__ void lp_backward_kernel(float *z, const float *dlogp, const float *dentropy,
                                   const int *targets, const float *lse, int row0, int V) {
    __shared__ double shd[32];
    const int r = row0 + blockIdx.x, t = targets[r];
    float *zr = z + (size_t)blockIdx.x * V;
    __nv_bfloat16 *zb = (__nv_bfloat16 *)zr;
    if (t < 0) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            if (BF16)
                zb[v] = __float2bfloat16(0.0f);
            else
                zr[v] = 0.0f;
        }
        return;
    }
    const float l = lse[r], dl = dlogp[r], de = dentropy ? dentropy[r] : 0.0f;
    const float H = de != 0.0f ? lp_row_entropy(zr, l, V, shd) : 0.0f; /* de: block-uniform */
    /* Whole tiles of blockDim so that the bf16 path can read a tile, wait, then write: bf16
     * element v lands on the bytes of fp32 element v / 2, which this tile or an earlier one
     * has read already, never a later tile. */
    for (int base = 0; base < V; base += blockDim.x) {
        const int v = base + threadIdx.x;
        float g = 0.0f;
        if (v < V) {
            float lp = zr[v] - l;
            float p = expf(lp);
            g = -dl * p - de * p * (lp + H);
            if (v == t) g += dl;
        }
        if (BF16) {
            __syncthreads();
            if (v < V) zb[v] = __float2bfloat16(g);
        } else if (v < V) {
            zr[v] = g;
        }
    }
}

/* ---- launchers ---- */

static void lp_check_args(int chunk, int V) {
    if (chunk <= 0 || V <= 0) {
        fprintf(stderr, "fatal: %s:%d: logprob: chunk %d, V %d\n", __FILE__, __LINE__, chunk, V);
        abort();
    }
}

/* z (rows, V) = h[row0 .. row0 + rows) @ w^T, fp32 without TF32 (the handle's math mode). */
static void lp_logits_f32(float *z, const float *h, const float *w, int row0, int rows, int d,
                          int V) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, V, rows, d, &one, w, d,
                             h + (size_t)row0 * d, d, &zero, z, V));
}

/* The same from bf16 h and w, fp32 accumulation and output. */
static void lp_logits_bf16(float *z, const uint16_t *h, const uint16_t *w, int row0, int rows,
                           int d, int V) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, V, rows, d, &one, w,
                              CUDA_R_16BF, d, h + (size_t)row0 * d, CUDA_R_16BF, d, &zero, z,
                              CUDA_R_32F, V, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void logprob_forward_cuda(float *logp, float *entropy, float *lse, const float *h,
                                     const float *w, const int *targets, int n, int d, int V,
                                     int chunk, float *scratch) {
    lp_check_args(chunk, V);
    for (int row0 = 0; row0 < n; row0 += chunk) {
        const int rows = n - row0 < chunk ? n - row0 : chunk;
        lp_logits_f32(scratch, h, w, row0, rows, d, V);
        lp_forward_kernel<<<rows, LP_THREADS>>>(logp, entropy, lse, scratch, targets, row0, V);
        LAUNCH_CHECK();
    }
}

extern "C" void logprob_backward_cuda(float *dh, float *dw, const float *dlogp,
                                      const float *dentropy, const float *h, const float *w,
                                      const int *targets, const float *lse, int n, int d, int V,
                                      int chunk, float *scratch) {
    lp_check_args(chunk, V);
    if (!dh && !dw) return;
    const float one = 1.0f;
    for (int row0 = 0; row0 < n; row0 += chunk) {
        const int rows = n - row0 < chunk ? n - row0 : chunk;
        lp_logits_f32(scratch, h, w, row0, rows, d, V);
        lp_backward_kernel<false>
            <<<rows, LP_THREADS>>>(scratch, dlogp, dentropy, targets, lse, row0, V);
        LAUNCH_CHECK();
        if (dh)
            CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, d, rows, V, &one, w, d,
                                     scratch, V, &one, dh + (size_t)row0 * d, d));
        if (dw)
            CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, d, V, rows, &one,
                                     h + (size_t)row0 * d, d, scratch, V, &one, dw, d));
    }
}

extern "C" void logprob_forward_bf16_cuda(float *logp, float *entropy, float *lse,
                                          const uint16_t *h, const uint16_t *w, const int *targets,
                                          int n, int d, int V, int chunk, float *scratch) {
    lp_check_args(chunk, V);
    for (int row0 = 0; row0 < n; row0 += chunk) {
        const int rows = n - row0 < chunk ? n - row0 : chunk;
        lp_logits_bf16(scratch, h, w, row0, rows, d, V);
        lp_forward_kernel<<<rows, LP_THREADS>>>(logp, entropy, lse, scratch, targets, row0, V);
        LAUNCH_CHECK();
    }
}

/* dh += dz @ w and dw += dz^T @ h from the bf16 dz (rows, V) of row stride 2V. */
static void lp_grads_bf16(float *dh, float *dw, const uint16_t *dz, const uint16_t *h,
                          const uint16_t *w, int row0, int rows, int d, int V) {
    const float one = 1.0f;
    const int ldz = 2 * V;
    if (dh)
        CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, d, rows, V, &one, w,
                                  CUDA_R_16BF, d, dz, CUDA_R_16BF, ldz, &one, dh + (size_t)row0 * d,
                                  CUDA_R_32F, d, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (dw)
        CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, d, V, rows, &one,
                                  h + (size_t)row0 * d, CUDA_R_16BF, d, dz, CUDA_R_16BF, ldz, &one,
                                  dw, CUDA_R_32F, d, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

extern "C" void logprob_backward_bf16_cuda(float *dh, float *dw, const float *dlogp,
                                           const float *dentropy, const uint16_t *h,
                                           const uint16_t *w, const int *targets, const float *lse,
                                           int n, int d, int V, int chunk, float *scratch) {
    lp_check_args(chunk, V);
    if (!dh && !dw) return;
    for (int row0 = 0; row0 < n; row0 += chunk) {
        const int rows = n - row0 < chunk ? n - row0 : chunk;
        lp_logits_bf16(scratch, h, w, row0, rows, d, V);
        lp_backward_kernel<true>
            <<<rows, LP_THREADS>>>(scratch, dlogp, dentropy, targets, lse, row0, V);
        LAUNCH_CHECK();
        lp_grads_bf16(dh, dw, (const uint16_t *)scratch, h, w, row0, rows, d, V);
    }
}
