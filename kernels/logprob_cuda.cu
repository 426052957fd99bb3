/* CUDA fused lm_head -> log-softmax -> gather (logprob.h, logprob_bf16.h). Rows go a chunk
 * at a time: one cuBLAS product writes the chunk's logits (chunk x V) into the scratch, then
 * one block per row does the softmax work. Unlike the CPU kernels, these do not compact away
 * rows with target < 0 before the product (that would need the targets on the host; the
 * model gathers the rows with a target before it calls them): such rows' logits are
 * computed and ignored, and their dlogits are zero, so they add nothing to dh or dw. Row sums are
 * in double, as on the CPU. The bf16 variants take bf16 h and w into tensor-core products with fp32
 * accumulation; their backward writes bf16 dlogits over the first half of each fp32 logits row (row
 * stride 2V), so the scratch stays chunk x V floats. The fp16-logits variants (logprob_bf16.h) take
 * fp16 h and w into products that write fp16 logits, 2 x chunk rows a step in the same scratch, and
 * overwrite each fp16 logit with its bf16 dlogit in place (row stride V); serial steps only.
 *
 * By default the steps run serially on the default stream. DENSERL_LOGPROB_OVERLAP=1 or 2
 * overlaps them on two streams of their own (the products compute-bound, the row kernels
 * memory-bound): stream g holds every cuBLAS product in chunk order, stream s the row
 * kernels, and the logits go to two buffers in turn (see lp_overlap_mode). Measured on an
 * H100 (benchmarks/CUDA_NOTES.md, 2026-11-27) neither overlap beat the serial path: the
 * products take the whole chip, and halves double the reads of w and dw. Events
 * order the two buffers' reuse; both streams start after the default stream's earlier work,
 * and the default stream waits for both before the call returns, so callers still see one
 * ordered stream. The cuBLAS handle is set to g inside the call and back to the default
 * stream before it returns. The results are deterministic run to run (dw sums its steps in
 * one order on one stream) but a step count other than chunk's changes the products' shapes,
 * hence the last bits of dh and dw, and of logp through the logits' summation order.
 *
 * cuBLAS is column-major: a row-major (r, c) array is a column-major (c, r) one, so
 *   z (rows, V) = h (rows, d) @ w^T  is  z' (V, rows) = op_T(w' (d, V)) @ h' (d, rows)
 *   dh (rows, d) += dz @ w            is  dh' (d, rows) += w' (d, V) @ dz' (V, rows)
 *   dw (V, d) += dz^T @ h             is  dw' (d, V) += h' (d, rows) @ op_T(dz' (V, rows)). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "../kernels/bf16_cuda.cuh"
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

/* A row without a target (t < 0, the same for the whole block): zeros. */
static __device__ void lp_skip_row(float *logp, float *entropy, float *lse, int r) {
    if (threadIdx.x == 0) {
        logp[r] = 0.0f;
        lse[r] = 0.0f;
        if (entropy) entropy[r] = 0.0f;
    }
}

/* The row's outputs from each thread's online (m, s, su) (see lp_forward_kernel): the triples
 * moved to the block's max and summed in double; logp from the target's logit zt. Every
 * thread of the block calls it. */
static __device__ void lp_finish_row(float *logp, float *entropy, float *lse, int r, float zt,
                                     float m, double s, double su, float *shf, double *shd) {
    const float mx = lp_block_max(m, shf);
    if (s > 0.0) { /* threads that saw no element (V < blockDim) add nothing */
        const double dm = (double)mx - m, sc = exp(-dm);
        su = sc * (su - dm * s);
        s *= sc;
    }
    s = lp_block_sum(s, shd);
    if (entropy) su = lp_block_sum(su, shd); /* entropy: the same for the whole block */
    if (threadIdx.x == 0) {
        const double log_s = log(s);
        lse[r] = (float)(mx + log_s);
        logp[r] = (float)((double)(zt - mx) - log_s);
        if (entropy) entropy[r] = (float)(log_s - su / s);
    }
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
    if (t < 0) { /* the whole block leaves: t is the same for every thread */
        lp_skip_row(logp, entropy, lse, r);
        return;
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
    lp_finish_row(logp, entropy, lse, r, zr[t], m, s, su, shf, shd);
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

/* ---- fp16 logits (logprob_forward_f16_cuda, logprob_backward_f16_cuda) ---- */

/* The target's logit h[r] . w[t] in fp32 from the fp16 operands, on every thread of the block.
 * The stored fp16 logits carry 11 significant bits; the target's goes into logp directly, so
 * it is recomputed here (fp16 products are exact in fp32, the sum is in double). */
static __device__ float lp_target_logit(const __half *h, const __half *w, int d, double *sh) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        acc += (double)(__half2float(h[i]) * __half2float(w[i]));
    return (float)lp_block_sum(acc, sh);
}

/* Logits of a row per load: 8 (one 16-byte load) where V % 8 == 0, else 1. */
template <bool VEC> struct LpF16 { static constexpr int PER = VEC ? 8 : 1; };

__device__ __forceinline__ float lp_half_lo(uint32_t u) {
    return __half2float(__ushort_as_half((unsigned short)(u & 0xffffu)));
}
__device__ __forceinline__ float lp_half_hi(uint32_t u) {
    return __half2float(__ushort_as_half((unsigned short)(u >> 16)));
}

/* The PER logits of a row from v0 on, widened from fp16; the target's replaced by zt. */
template <bool VEC>
static __device__ __forceinline__ void lp_load_f16(float (&x)[LpF16<VEC>::PER], const __half *zr,
                                                   int v0, int t, float zt) {
    if constexpr (VEC) {
        const uint4 u = *reinterpret_cast<const uint4 *>(zr + v0);
        const uint32_t wd[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int k = 0; k < LpF16<VEC>::PER / 2; k++)
            x[2 * k] = lp_half_lo(wd[k]), x[2 * k + 1] = lp_half_hi(wd[k]);
    } else {
        x[0] = __half2float(zr[v0]);
    }
#pragma unroll
    for (int k = 0; k < LpF16<VEC>::PER; k++)
        if (v0 + k == t) x[k] = zt;
}

/* As lp_forward_kernel on fp16 logits, PER of them per load; the thread's running
 * (m, s, su) are fp32 (a few hundred terms each), the block's sums double. */
template <bool VEC>
__global__ void lp_forward_f16_kernel(float *logp, float *entropy, float *lse, const __half *z,
                                      const __half *h, const __half *w, const int *targets,
                                      int row0, int V, int d) {
    constexpr int PER = LpF16<VEC>::PER;
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int r = row0 + blockIdx.x, t = targets[r];
    if (t < 0) { /* the whole block leaves: t is the same for every thread */
        lp_skip_row(logp, entropy, lse, r);
        return;
    }
    const float zt = lp_target_logit(h + (size_t)r * d, w + (size_t)t * d, d, shd);
    const __half *zr = z + (size_t)blockIdx.x * V;
    float m = -INFINITY, s = 0.0f, su = 0.0f;
    for (int v0 = threadIdx.x * PER; v0 < V; v0 += blockDim.x * PER) {
        float x[PER];
        lp_load_f16<VEC>(x, zr, v0, t, zt);
        float mx = x[0];
#pragma unroll
        for (int k = 1; k < PER; k++) mx = fmaxf(mx, x[k]);
        if (mx > m) {
            if (s > 0.0f) {
                const float dm = mx - m, sc = expf(-dm);
                su = sc * (su - dm * s);
                s *= sc;
            }
            m = mx;
        }
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const float u = x[k] - m, e = expf(u);
            s += e;
            su += e * u;
        }
    }
    lp_finish_row(logp, entropy, lse, r, zt, m, s, su, shf, shd);
}

/* dz = dlogp (onehot - p) - dentropy p (log p + H) from fp16 logits, rounded to bf16 and
 * written over the same 2 bytes (each thread reads, then writes, its own elements). */
template <bool VEC>
__global__ void lp_backward_f16_kernel(__half *z, const float *dlogp, const float *dentropy,
                                       const __half *h, const __half *w, const int *targets,
                                       const float *lse, int row0, int V, int d) {
    constexpr int PER = LpF16<VEC>::PER;
    __shared__ double shd[32];
    const int r = row0 + blockIdx.x, t = targets[r];
    __half *zr = z + (size_t)blockIdx.x * V;
    __nv_bfloat16 *zb = reinterpret_cast<__nv_bfloat16 *>(zr);
    if (t < 0) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) zb[v] = __float2bfloat16(0.0f);
        return;
    }
    const float zt = lp_target_logit(h + (size_t)r * d, w + (size_t)t * d, d, shd);
    const float l = lse[r], dl = dlogp[r], de = dentropy ? dentropy[r] : 0.0f;
    float H = 0.0f;
    if (de != 0.0f) { /* de is the same for the whole block */
        float acc = 0.0f;
        for (int v0 = threadIdx.x * PER; v0 < V; v0 += blockDim.x * PER) {
            float x[PER];
            lp_load_f16<VEC>(x, zr, v0, t, zt);
#pragma unroll
            for (int k = 0; k < PER; k++) acc -= expf(x[k] - l) * (x[k] - l);
        }
        H = (float)lp_block_sum((double)acc, shd);
    }
    for (int v0 = threadIdx.x * PER; v0 < V; v0 += blockDim.x * PER) {
        float x[PER], g[PER];
        lp_load_f16<VEC>(x, zr, v0, t, zt);
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const float lp = x[k] - l, p = expf(lp);
            g[k] = -dl * p - de * p * (lp + H);
            if (v0 + k == t) g[k] += dl;
        }
        if constexpr (VEC) {
            uint4 u;
            u.x = bf16_pack2(g[0], g[1]), u.y = bf16_pack2(g[2], g[3]);
            u.z = bf16_pack2(g[4], g[5]), u.w = bf16_pack2(g[6], g[7]);
            *reinterpret_cast<uint4 *>(zb + v0) = u;
        } else {
            zb[v0] = __float2bfloat16(g[0]);
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

/* dh += dz @ w and dw += dz^T @ h from the fp32 dz (rows, V), written in place. */
static void lp_grads_f32(float *dh, float *dw, const float *dz, const float *h, const float *w,
                         int row0, int rows, int d, int V) {
    const float one = 1.0f;
    if (dh)
        CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, d, rows, V, &one, w, d, dz,
                                 V, &one, dh + (size_t)row0 * d, d));
    if (dw)
        CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, d, V, rows, &one,
                                 h + (size_t)row0 * d, d, dz, V, &one, dw, d));
}

/* dh += dz @ w and dw += dz^T @ h from the bf16 dz (rows, V) of row stride ldz. */
static void lp_grads_bf16(float *dh, float *dw, const uint16_t *dz, int ldz, const uint16_t *h,
                          const uint16_t *w, int row0, int rows, int d, int V) {
    const float one = 1.0f;
    if (dh)
        CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, d, rows, V, &one, w,
                                  CUDA_R_16BF, d, dz, CUDA_R_16BF, ldz, &one, dh + (size_t)row0 * d,
                                  CUDA_R_32F, d, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (dw)
        CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, d, V, rows, &one,
                                  h + (size_t)row0 * d, CUDA_R_16BF, d, dz, CUDA_R_16BF, ldz, &one,
                                  dw, CUDA_R_32F, d, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* z (rows, V) fp16 = h[row0 ..] @ w^T from fp16 h and w, fp32 accumulation. */
static void lp_logits_f16(__half *z, const uint16_t *h, const uint16_t *w, int row0, int rows,
                          int d, int V) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(dr_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, V, rows, d, &one, w,
                              CUDA_R_16F, d, h + (size_t)row0 * d, CUDA_R_16F, d, &zero, z,
                              CUDA_R_16F, V, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* The fp32 and bf16 entry points differ only in their products and in how dz is stored. */
struct LpOperands {
    const void *h, *w; /* (n, d), (V, d): fp32, or bf16 bits when bf16 */
    int d, V;
    bool bf16;
};

static void lp_logits(float *z, const LpOperands &o, int row0, int rows) {
    if (o.bf16)
        lp_logits_bf16(z, (const uint16_t *)o.h, (const uint16_t *)o.w, row0, rows, o.d, o.V);
    else
        lp_logits_f32(z, (const float *)o.h, (const float *)o.w, row0, rows, o.d, o.V);
}

static void lp_grads(float *dh, float *dw, const float *z, const LpOperands &o, int row0,
                     int rows) {
    if (o.bf16)
        lp_grads_bf16(dh, dw, (const uint16_t *)z, 2 * o.V, (const uint16_t *)o.h,
                      (const uint16_t *)o.w, row0, rows, o.d, o.V);
    else
        lp_grads_f32(dh, dw, z, (const float *)o.h, (const float *)o.w, row0, rows, o.d, o.V);
}

static void lp_dz(cudaStream_t st, float *z, const float *dlogp, const float *dentropy,
                  const int *targets, const float *lse, const LpOperands &o, int row0, int rows) {
    if (o.bf16)
        lp_backward_kernel<true>
            <<<rows, LP_THREADS, 0, st>>>(z, dlogp, dentropy, targets, lse, row0, o.V);
    else
        lp_backward_kernel<false>
            <<<rows, LP_THREADS, 0, st>>>(z, dlogp, dentropy, targets, lse, row0, o.V);
    LAUNCH_CHECK();
}

/* ---- the two-stream pipeline ---- */

/* How rows go through the products (DENSERL_LOGPROB_OVERLAP, read at every call so that a
 * test or a benchmark can compare them in one process):
 *   0 or unset: serial, chunk rows a step, all on the default stream (the fastest measured);
 *   1: the caller's scratch split into two halves of chunk/2 rows, the products of
 *      one half overlapping the row kernel of the other (serial when chunk < 2);
 *   2: two whole buffers of chunk rows, the caller's scratch and a runtime-owned second one
 *      (dr_cuda_scratch slot SCRATCH_LOGPROB, chunk x V floats more device memory). Steps of
 *      chunk rows keep the number of reads of w, and of read-modify-writes of dw in the
 *      backward, what they were in mode 0; halves double them. */
static int lp_overlap_mode(void) {
    const char *e = getenv("DENSERL_LOGPROB_OVERLAP");
    if (!e || !*e) return 0;
    return e[0] == '1' ? 1 : e[0] == '2' ? 2 : 0;
}

struct LpPlan {
    int step;      /* rows per step */
    float *buf[2]; /* step k uses buf[k & 1], each step x V floats */
    bool overlap;
};

static LpPlan lp_plan(int n, int chunk, int V, float *scratch) {
    LpPlan p = {chunk, {scratch, scratch}, false};
    const int mode = lp_overlap_mode();
    if (mode == 1 && chunk >= 2 && n > chunk / 2) {
        p.step = chunk / 2;
        p.buf[1] = scratch + (size_t)p.step * V;
        p.overlap = true;
    } else if (mode == 2 && n > chunk) {
        p.buf[1] = (float *)dr_cuda_scratch(SCRATCH_LOGPROB, sizeof(float) * (size_t)chunk * V);
        p.overlap = true;
    }
    return p;
}

/* Stream g runs every cuBLAS product, in chunk order (so dw sums its chunks in a fixed
 * order); stream s runs the row kernels. ready[b]: the logits in buf[b] are written;
 * done[b]: the row kernel on buf[b] is finished. Created once, for the device current at
 * the first call (one device per process). */
struct LpPipe {
    cudaStream_t g, s;
    cudaEvent_t entry, end_g, end_s, ready[2], done[2];
};

static LpPipe *lp_pipe(void) {
    static LpPipe p;
    static bool made = false;
    if (!made) {
        CUDA_CHECK(cudaStreamCreateWithFlags(&p.g, cudaStreamNonBlocking));
        CUDA_CHECK(cudaStreamCreateWithFlags(&p.s, cudaStreamNonBlocking));
        cudaEvent_t *ev[] = {&p.entry,    &p.end_g,   &p.end_s,  &p.ready[0],
                             &p.ready[1], &p.done[0], &p.done[1]};
        for (size_t i = 0; i < sizeof ev / sizeof *ev; i++)
            CUDA_CHECK(cudaEventCreateWithFlags(ev[i], cudaEventDisableTiming));
        made = true;
    }
    return &p;
}

/* Both streams start after everything already queued on the default stream, and the
 * products go to g. */
static void lp_pipe_begin(LpPipe *p) {
    CUDA_CHECK(cudaEventRecord(p->entry, 0));
    CUDA_CHECK(cudaStreamWaitEvent(p->g, p->entry, 0));
    CUDA_CHECK(cudaStreamWaitEvent(p->s, p->entry, 0));
    dr_cublas_stream(p->g);
}

/* The default stream resumes after both streams, and the handle goes back to it: every
 * other caller of dr_cublas() expects the default stream. */
static void lp_pipe_end(LpPipe *p) {
    CUDA_CHECK(cudaEventRecord(p->end_g, p->g));
    CUDA_CHECK(cudaEventRecord(p->end_s, p->s));
    CUDA_CHECK(cudaStreamWaitEvent(0, p->end_g, 0));
    CUDA_CHECK(cudaStreamWaitEvent(0, p->end_s, 0));
    dr_cublas_stream(DR_STREAM);
}

/* g: logits(k) into buf[k & 1] once the row kernel of step k - 2 has read that buffer;
 * s: the row kernel of step k once logits(k) are written. logits(k + 1) runs beside it. */
static void lp_forward_run(float *logp, float *entropy, float *lse, const LpOperands &o,
                           const int *targets, int n, int chunk, float *scratch) {
    lp_check_args(chunk, o.V);
    const LpPlan pl = lp_plan(n, chunk, o.V, scratch);
    if (!pl.overlap) {
        for (int row0 = 0; row0 < n; row0 += chunk) {
            const int rows = n - row0 < chunk ? n - row0 : chunk;
            lp_logits(scratch, o, row0, rows);
            lp_forward_kernel<<<rows, LP_THREADS>>>(logp, entropy, lse, scratch, targets, row0,
                                                    o.V);
            LAUNCH_CHECK();
        }
        return;
    }
    LpPipe *p = lp_pipe();
    lp_pipe_begin(p);
    for (int k = 0, row0 = 0; row0 < n; k++, row0 += pl.step) {
        const int rows = n - row0 < pl.step ? n - row0 : pl.step, b = k & 1;
        if (k >= 2) CUDA_CHECK(cudaStreamWaitEvent(p->g, p->done[b], 0));
        lp_logits(pl.buf[b], o, row0, rows);
        CUDA_CHECK(cudaEventRecord(p->ready[b], p->g));
        CUDA_CHECK(cudaStreamWaitEvent(p->s, p->ready[b], 0));
        lp_forward_kernel<<<rows, LP_THREADS, 0, p->s>>>(logp, entropy, lse, pl.buf[b], targets,
                                                         row0, o.V);
        LAUNCH_CHECK();
        CUDA_CHECK(cudaEventRecord(p->done[b], p->s));
    }
    lp_pipe_end(p);
}

/* g runs logits(0), then for each k: logits(k + 1), [wait dz(k)] grads(k); s runs
 * [wait logits(k)] dz(k). dz(k) overlaps logits(k + 1) and grads(k - 1). buf[k & 1] is
 * rewritten by logits(k + 2), which g issues after grads(k), which waited for dz(k): no
 * event is needed for that reuse. */
static void lp_backward_run(float *dh, float *dw, const float *dlogp, const float *dentropy,
                            const LpOperands &o, const int *targets, const float *lse, int n,
                            int chunk, float *scratch) {
    lp_check_args(chunk, o.V);
    if (!dh && !dw) return;
    const LpPlan pl = lp_plan(n, chunk, o.V, scratch);
    if (!pl.overlap) {
        for (int row0 = 0; row0 < n; row0 += chunk) {
            const int rows = n - row0 < chunk ? n - row0 : chunk;
            lp_logits(scratch, o, row0, rows);
            lp_dz(0, scratch, dlogp, dentropy, targets, lse, o, row0, rows);
            lp_grads(dh, dw, scratch, o, row0, rows);
        }
        return;
    }
    LpPipe *p = lp_pipe();
    lp_pipe_begin(p);
    const int step = pl.step, nk = (n + step - 1) / step;
    lp_logits(pl.buf[0], o, 0, n < step ? n : step);
    CUDA_CHECK(cudaEventRecord(p->ready[0], p->g));
    for (int k = 0; k < nk; k++) {
        const int row0 = k * step, rows = n - row0 < step ? n - row0 : step, b = k & 1;
        if (k + 1 < nk) {
            const int r1 = row0 + step;
            lp_logits(pl.buf[b ^ 1], o, r1, n - r1 < step ? n - r1 : step);
            CUDA_CHECK(cudaEventRecord(p->ready[b ^ 1], p->g));
        }
        CUDA_CHECK(cudaStreamWaitEvent(p->s, p->ready[b], 0));
        lp_dz(p->s, pl.buf[b], dlogp, dentropy, targets, lse, o, row0, rows);
        CUDA_CHECK(cudaEventRecord(p->done[b], p->s));
        CUDA_CHECK(cudaStreamWaitEvent(p->g, p->done[b], 0));
        lp_grads(dh, dw, pl.buf[b], o, row0, rows);
    }
    lp_pipe_end(p);
}

/* ---- fp16 logits: serial steps of twice the chunk's rows (fp16 rows are half as long) ---- */

static int lp_f16_step(int n, int chunk) {
    return chunk >= (n + 1) / 2 ? n : 2 * chunk;
}

/* The steps of a call: each step's fp16 logits into the scratch, then row(z, row0, rows, vec)
 * with vec when rows can be read 16 bytes at a time (V % 8 == 0). */
template <class RowFn>
static void lp_f16_steps(const uint16_t *h16, const uint16_t *w16, int n, int d, int V, int chunk,
                         float *scratch, RowFn row) {
    lp_check_args(chunk, V);
    const int step = lp_f16_step(n, chunk);
    __half *z = reinterpret_cast<__half *>(scratch);
    for (int row0 = 0; row0 < n; row0 += step) {
        const int rows = n - row0 < step ? n - row0 : step;
        lp_logits_f16(z, h16, w16, row0, rows, d, V);
        row(z, row0, rows, V % 8 == 0);
        LAUNCH_CHECK();
    }
}

static void lp_forward_f16_run(float *logp, float *entropy, float *lse, const uint16_t *h,
                               const uint16_t *w, const int *targets, int n, int d, int V,
                               int chunk, float *scratch) {
    const __half *hh = reinterpret_cast<const __half *>(h),
                 *wh = reinterpret_cast<const __half *>(w);
    lp_f16_steps(h, w, n, d, V, chunk, scratch, [&](__half *z, int row0, int rows, bool vec) {
        if (vec)
            lp_forward_f16_kernel<true>
                <<<rows, LP_THREADS>>>(logp, entropy, lse, z, hh, wh, targets, row0, V, d);
        else
            lp_forward_f16_kernel<false>
                <<<rows, LP_THREADS>>>(logp, entropy, lse, z, hh, wh, targets, row0, V, d);
    });
}

static void lp_backward_f16_run(float *dh, float *dw, const float *dlogp, const float *dentropy,
                                const uint16_t *h16, const uint16_t *w16, const uint16_t *hb,
                                const uint16_t *wb, const int *targets, const float *lse, int n,
                                int d, int V, int chunk, float *scratch) {
    if (!dh && !dw) return;
    const __half *hh = reinterpret_cast<const __half *>(h16),
                 *wh = reinterpret_cast<const __half *>(w16);
    lp_f16_steps(h16, w16, n, d, V, chunk, scratch, [&](__half *z, int row0, int rows, bool vec) {
        if (vec)
            lp_backward_f16_kernel<true>
                <<<rows, LP_THREADS>>>(z, dlogp, dentropy, hh, wh, targets, lse, row0, V, d);
        else
            lp_backward_f16_kernel<false>
                <<<rows, LP_THREADS>>>(z, dlogp, dentropy, hh, wh, targets, lse, row0, V, d);
        LAUNCH_CHECK();
        lp_grads_bf16(dh, dw, reinterpret_cast<const uint16_t *>(z), V, hb, wb, row0, rows, d, V);
    });
}

/* ---- entry points ---- */

extern "C" void logprob_forward_cuda(float *logp, float *entropy, float *lse, const float *h,
                                     const float *w, const int *targets, int n, int d, int V,
                                     int chunk, float *scratch) {
    const LpOperands o = {h, w, d, V, false};
    lp_forward_run(logp, entropy, lse, o, targets, n, chunk, scratch);
}

extern "C" void logprob_backward_cuda(float *dh, float *dw, const float *dlogp,
                                      const float *dentropy, const float *h, const float *w,
                                      const int *targets, const float *lse, int n, int d, int V,
                                      int chunk, float *scratch) {
    const LpOperands o = {h, w, d, V, false};
    lp_backward_run(dh, dw, dlogp, dentropy, o, targets, lse, n, chunk, scratch);
}

extern "C" void logprob_forward_bf16_cuda(float *logp, float *entropy, float *lse,
                                          const uint16_t *h, const uint16_t *w, const int *targets,
                                          int n, int d, int V, int chunk, float *scratch) {
    const LpOperands o = {h, w, d, V, true};
    lp_forward_run(logp, entropy, lse, o, targets, n, chunk, scratch);
}

extern "C" void logprob_backward_bf16_cuda(float *dh, float *dw, const float *dlogp,
                                           const float *dentropy, const uint16_t *h,
                                           const uint16_t *w, const int *targets, const float *lse,
                                           int n, int d, int V, int chunk, float *scratch) {
    const LpOperands o = {h, w, d, V, true};
    lp_backward_run(dh, dw, dlogp, dentropy, o, targets, lse, n, chunk, scratch);
}

extern "C" void logprob_forward_f16_cuda(float *logp, float *entropy, float *lse,
                                         const uint16_t *h16, const uint16_t *w16,
                                         const int *targets, int n, int d, int V, int chunk,
                                         float *scratch) {
    lp_forward_f16_run(logp, entropy, lse, h16, w16, targets, n, d, V, chunk, scratch);
}

extern "C" void logprob_backward_f16_cuda(float *dh, float *dw, const float *dlogp,
                                          const float *dentropy, const uint16_t *h16,
                                          const uint16_t *w16, const uint16_t *hb,
                                          const uint16_t *wb, const int *targets, const float *lse,
                                          int n, int d, int V, int chunk, float *scratch) {
    lp_backward_f16_run(dh, dw, dlogp, dentropy, h16, w16, hb, wb, targets, lse, n, d, V, chunk,
                        scratch);
}
