/* CUDA twin of RMSNorm. Rows with d % 4 == 0 and 512 <= d <= 8192 (aligned) take the register
 * path: a block of T threads holds a row in registers as K float4 per thread (thread t owns the
 * float4 columns t, t + T, ..., so each load is coalesced), so the row is read from memory once.
 * The forward gives each row its own block; the backward gives each block a contiguous group of
 * rows and keeps per-column partial sums of dy x r in registers across them (every thread owns
 * the same columns for all its rows), so dx and the weight gradient's partials come from one
 * read of dy and x. Other shapes use one warp per row, reading the row twice, with the weight
 * gradient's partials made by a separate pass. The row sums (sum of squares, sum of w dy x) are
 * accumulated in double as on the CPU. The weight gradient is a sum over rows, made
 * deterministic without atomics: row groups depend only on (n, d), each writes a scratch row of
 * partials, and a last kernel adds each column's partials in a fixed order. */
#include <stdint.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"
#include "bf16_cuda.cuh"

enum {
    RN_THREADS = 256,
    RN_WARPS = RN_THREADS / 32,
    RN_DW_TARGET_BLOCKS = 528,
    RN_REG_MAXT = 512,               /* threads of a register-path block at most */
    RN_REG_MIN_D4 = 128,             /* below d = 512 a warp per row is as good */
    RN_REG_MAX_D4 = 4 * RN_REG_MAXT, /* K = 4 float4 per thread: d = 8192 */
    RN_BWD_TARGET_BLOCKS = 528,      /* row groups of the fused backward: 4 per SM of an H100 */
    RN_FIN_COLS = 32,
    RN_FIN_LANES = 8,
    RN_FIN_THREADS = RN_FIN_COLS * RN_FIN_LANES
};

static inline bool rn_al16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

static __device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum of v over the block (blockDim.x a multiple of 32), the same value in every thread; every
 * thread adds the warps' sums in warp order, so the result has fixed bits. red holds a slot per
 * warp; the caller must not reuse it before every thread has passed the next __syncthreads. */
static __device__ __forceinline__ double block_sum(double v, double *red) {
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    const int nw = blockDim.x >> 5;
    double s = 0.0;
    for (int i = 0; i < nw; i++) s += red[i];
    return s;
}

/* The forward's output, fp32 or bf16 (Y = uint16_t: rounded to nearest even, the bits
 * cast_bf16_cuda gives the fp32 result): element j, or the group of four at element 4 j. */
static __device__ __forceinline__ void rn_put(float *y, long j, float v) {
    y[j] = v;
}
static __device__ __forceinline__ void rn_put(uint16_t *y, long j, float v) {
    y[j] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
static __device__ __forceinline__ void rn_put4(float *y, long j4, float4 v) {
    ((float4 *)y)[j4] = v;
}
static __device__ __forceinline__ void rn_put4(uint16_t *y, long j4, float4 v) {
    ((uint2 *)y)[j4] = make_uint2(bf16_pack2(v.x, v.y), bf16_pack2(v.z, v.w));
}

/* ---- register path ---- */

/* One row per block: y = w * (x * r), r = 1 / sqrt(mean(x^2) + eps). */
template <int K, class Y>
__global__ void __launch_bounds__(RN_REG_MAXT, K >= 4 ? 2 : 3)
    rmsnorm_fwd_reg_kernel(Y *__restrict__ y, float *__restrict__ rstd, const float *__restrict__ x,
                           const float *__restrict__ w, int d, float eps) {
    __shared__ double red[RN_REG_MAXT / 32];
    const int tid = threadIdx.x, T = blockDim.x, d4 = d >> 2;
    const long row = blockIdx.x;
    const float4 *xr = (const float4 *)(x + row * d), *w4 = (const float4 *)w;
    Y *yr = y + row * d;
    float4 a[K], b[K];
    const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int c = tid + k * T;
        a[k] = c < d4 ? xr[c] : z;
        b[k] = c < d4 ? w4[c] : z;
    }
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < K; k++) {
        s += (double)a[k].x * a[k].x;
        s += (double)a[k].y * a[k].y;
        s += (double)a[k].z * a[k].z;
        s += (double)a[k].w * a[k].w;
    }
    const double ss = block_sum(s, red);
    const float r = (float)(1.0 / sqrt(ss / d + (double)eps));
    /* normalise first, then scale by the weight, as the CPU and Hugging Face round */
    if (tid == 0) rstd[row] = r;
#pragma unroll
    for (int k = 0; k < K; k++) {
        const int c = tid + k * T;
        if (c < d4)
            rn_put4(yr, c,
                    make_float4(b[k].x * (a[k].x * r), b[k].y * (a[k].y * r), b[k].z * (a[k].z * r),
                                b[k].w * (a[k].w * r)));
    }
}

/* Rows [blockIdx.x * rows_per, + rows_per) of: dx_j += r w_j dy_j - x_j r^3 / d * sum_k w_k dy_k
 * x_k (when dx), and part[blockIdx.x, j] = sum over those rows, in order, of dy_j (x_j r) (when
 * part). */
template <int K>
__global__ void __launch_bounds__(RN_REG_MAXT, K >= 4 ? 1 : 2)
    rmsnorm_bwd_reg_kernel(float *__restrict__ dx, float *__restrict__ part,
                           const float *__restrict__ dy, const float *__restrict__ x,
                           const float *__restrict__ w, const float *__restrict__ rstd, int n,
                           int d, int rows_per) {
    /* two sets of slots, alternating by row, so one __syncthreads per row suffices */
    __shared__ double red[2][RN_REG_MAXT / 32];
    const int tid = threadIdx.x, T = blockDim.x, d4 = d >> 2;
    const int i0 = blockIdx.x * rows_per, i1 = min(n, i0 + rows_per);
    const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
    float4 acc[K];
#pragma unroll
    for (int k = 0; k < K; k++) acc[k] = z;
    for (int i = i0; i < i1; i++) {
        const long off = (long)i * d;
        const float4 *xr = (const float4 *)(x + off), *gr = (const float4 *)(dy + off);
        float4 *dxr = dx ? (float4 *)(dx + off) : NULL;
        /* every load of the row is issued before the block waits in the reduction; w is
         * re-read per row, from L1, to leave registers for dx */
        float4 a[K], g[K], o[K];
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = tid + k * T;
            a[k] = c < d4 ? xr[c] : z;
            g[k] = c < d4 ? gr[c] : z;
            o[k] = dx && c < d4 ? dxr[c] : z;
        }
        const float r = rstd[i];
        if (dx) {
            double s = 0.0;
            float4 wv[K];
#pragma unroll
            for (int k = 0; k < K; k++) {
                const int c = tid + k * T;
                wv[k] = c < d4 ? ((const float4 *)w)[c] : z;
                s += (double)(wv[k].x * g[k].x) * a[k].x;
                s += (double)(wv[k].y * g[k].y) * a[k].y;
                s += (double)(wv[k].z * g[k].z) * a[k].z;
                s += (double)(wv[k].w * g[k].w) * a[k].w;
            }
            const double cs = block_sum(s, red[i & 1]);
            const float kk = (float)(cs * r * r * r / d);
#pragma unroll
            for (int k = 0; k < K; k++) {
                const int c = tid + k * T;
                if (c < d4) {
                    o[k].x += r * wv[k].x * g[k].x - kk * a[k].x;
                    o[k].y += r * wv[k].y * g[k].y - kk * a[k].y;
                    o[k].z += r * wv[k].z * g[k].z - kk * a[k].z;
                    o[k].w += r * wv[k].w * g[k].w - kk * a[k].w;
                    dxr[c] = o[k];
                }
            }
        }
#pragma unroll
        for (int k = 0; k < K; k++) {
            acc[k].x += g[k].x * (a[k].x * r);
            acc[k].y += g[k].y * (a[k].y * r);
            acc[k].z += g[k].z * (a[k].z * r);
            acc[k].w += g[k].w * (a[k].w * r);
        }
    }
    if (part) {
        float4 *pr = (float4 *)(part + (long)blockIdx.x * d);
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = tid + k * T;
            if (c < d4) pr[c] = acc[k];
        }
    }
}

/* The register path's shape for a row of d4 float4: the fewest float4 per thread (K) that keeps
 * the block within RN_REG_MAXT threads, and the block rounded up to whole warps. Returns K, or 0
 * when the row takes the warp-per-row path. */
static int rn_reg_shape(int d, int *threads) {
    if (d % 4 != 0) return 0;
    const int d4 = d / 4;
    if (d4 < RN_REG_MIN_D4 || d4 > RN_REG_MAX_D4) return 0;
    const int K = d4 <= RN_REG_MAXT ? 1 : d4 <= 2 * RN_REG_MAXT ? 2 : 4;
    *threads = ((d4 + K - 1) / K + 31) / 32 * 32;
    return K;
}

/* ---- warp-per-row path ---- */

/* Row sums for the forward: sum_j x_j^2 (w == NULL) or, for the backward, sum_j (w_j dy_j) x_j,
 * over this lane's columns; VEC reads float4 (d % 4 == 0, aligned). */
template <bool VEC>
static __device__ __forceinline__ double lane_dot(const float *x, const float *w, const float *dy,
                                                  int d, int lane) {
    double s = 0.0;
    if (VEC) {
        for (int j = lane; j < d / 4; j += 32) {
            const float4 a = ((const float4 *)x)[j];
            if (w) {
                const float4 b = ((const float4 *)w)[j], c = ((const float4 *)dy)[j];
                s += (double)(b.x * c.x) * a.x;
                s += (double)(b.y * c.y) * a.y;
                s += (double)(b.z * c.z) * a.z;
                s += (double)(b.w * c.w) * a.w;
            } else {
                s += (double)a.x * a.x;
                s += (double)a.y * a.y;
                s += (double)a.z * a.z;
                s += (double)a.w * a.w;
            }
        }
    } else {
        for (int j = lane; j < d; j += 32)
            s += w ? (double)(w[j] * dy[j]) * x[j] : (double)x[j] * x[j];
    }
    return s;
}

template <bool VEC, class Y>
__global__ void rmsnorm_fwd_kernel(Y *__restrict__ y, float *__restrict__ rstd,
                                   const float *__restrict__ x, const float *__restrict__ w, int n,
                                   int d, float eps) {
    const int row = blockIdx.x * RN_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return; /* the whole warp leaves together */
    const float *xr = x + (long)row * d;
    Y *yr = y + (long)row * d;
    const double ss = warp_sum(lane_dot<VEC>(xr, NULL, NULL, d, lane));
    const float r = (float)(1.0 / sqrt(ss / d + (double)eps));
    if (lane == 0) rstd[row] = r;
    /* normalise first, then scale by the weight, as the CPU and Hugging Face round */
    if (VEC) {
        for (int j = lane; j < d / 4; j += 32) {
            const float4 a = ((const float4 *)xr)[j], b = ((const float4 *)w)[j];
            rn_put4(
                yr, j,
                make_float4(b.x * (a.x * r), b.y * (a.y * r), b.z * (a.z * r), b.w * (a.w * r)));
        }
    } else {
        for (int j = lane; j < d; j += 32) rn_put(yr, j, w[j] * (xr[j] * r));
    }
}

/* dx_j += r w_j dy_j - x_j r^3 / d * sum_k w_k dy_k x_k, one warp per row. */
template <bool VEC>
__global__ void rmsnorm_dx_kernel(float *__restrict__ dx, const float *__restrict__ dy,
                                  const float *__restrict__ x, const float *__restrict__ w,
                                  const float *__restrict__ rstd, int n, int d) {
    const int row = blockIdx.x * RN_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return;
    const long off = (long)row * d;
    const float *xr = x + off, *dyr = dy + off;
    float *dxr = dx + off;
    const double c = warp_sum(lane_dot<VEC>(xr, w, dyr, d, lane));
    const float r = rstd[row];
    const float k = (float)(c * r * r * r / d);
    if (VEC) {
        for (int j = lane; j < d / 4; j += 32) {
            const float4 a = ((const float4 *)xr)[j], b = ((const float4 *)w)[j],
                         g = ((const float4 *)dyr)[j];
            float4 o = ((float4 *)dxr)[j];
            o.x += r * b.x * g.x - k * a.x;
            o.y += r * b.y * g.y - k * a.y;
            o.z += r * b.z * g.z - k * a.z;
            o.w += r * b.w * g.w - k * a.w;
            ((float4 *)dxr)[j] = o;
        }
    } else {
        for (int j = lane; j < d; j += 32) dxr[j] += r * w[j] * dyr[j] - k * xr[j];
    }
}

/* part[slice, j] = sum over the slice's rows, in order, of dy_ij * (x_ij r_i). Grid: (column
 * blocks of 256, row slices of rows_per rows). */
__global__ void rmsnorm_dw_partial_kernel(float *__restrict__ part, const float *__restrict__ dy,
                                          const float *__restrict__ x,
                                          const float *__restrict__ rstd, int n, int d,
                                          int rows_per) {
    const int j = blockIdx.x * RN_THREADS + threadIdx.x;
    if (j >= d) return;
    const int i0 = blockIdx.y * rows_per;
    const int i1 = min(n, i0 + rows_per);
    float s = 0.0f;
#pragma unroll 4
    for (int i = i0; i < i1; i++) {
        const long o = (long)i * d + j;
        s += dy[o] * (x[o] * rstd[i]);
    }
    part[(long)blockIdx.y * d + j] = s;
}

/* dw_j += sum over slices of part[slice, j]: lane q of a column sums slices q, q + 8, ... in
 * order, then the 8 lane sums are added in lane order (fixed bits). A block covers 32 columns,
 * so each warp reads 128 contiguous bytes per slice and 8 slices are in flight per column. */
__global__ void __launch_bounds__(RN_FIN_THREADS)
    rmsnorm_dw_final_kernel(float *__restrict__ dw, const float *__restrict__ part, int d,
                            int slices) {
    __shared__ float sh[RN_FIN_LANES][RN_FIN_COLS];
    const int col = threadIdx.x % RN_FIN_COLS, q = threadIdx.x / RN_FIN_COLS;
    const int j = blockIdx.x * RN_FIN_COLS + col;
    float s = 0.0f;
    if (j < d) {
#pragma unroll 4
        for (int b = q; b < slices; b += RN_FIN_LANES) s += part[(long)b * d + j];
    }
    sh[q][col] = s;
    __syncthreads();
    if (q == 0 && j < d) {
        float t = 0.0f;
        for (int l = 0; l < RN_FIN_LANES; l++) t += sh[l][col];
        dw[j] += t;
    }
}

static void rmsnorm_dw_final(float *dw, const float *part, int d, int slices) {
    rmsnorm_dw_final_kernel<<<(unsigned)((d + RN_FIN_COLS - 1) / RN_FIN_COLS), RN_FIN_THREADS>>>(
        dw, part, d, slices);
    LAUNCH_CHECK();
}

/* The forward's dispatch for either output type; y_al: y allows the vector stores (16 bytes
 * for fp32, 8 for bf16). */
template <class Y>
static void rmsnorm_forward(Y *y, float *rstd, const float *x, const float *w, int n, int d,
                            float eps, bool y_al) {
    if (n <= 0 || d <= 0) return;
    const bool al = y_al && rn_al16(x) && rn_al16(w);
    int T = 0;
    const int K = al ? rn_reg_shape(d, &T) : 0;
    if (K == 1)
        rmsnorm_fwd_reg_kernel<1, Y><<<(unsigned)n, T>>>(y, rstd, x, w, d, eps);
    else if (K == 2)
        rmsnorm_fwd_reg_kernel<2, Y><<<(unsigned)n, T>>>(y, rstd, x, w, d, eps);
    else if (K == 4)
        rmsnorm_fwd_reg_kernel<4, Y><<<(unsigned)n, T>>>(y, rstd, x, w, d, eps);
    else {
        const unsigned grid = (unsigned)((n + RN_WARPS - 1) / RN_WARPS);
        if (d % 4 == 0 && al)
            rmsnorm_fwd_kernel<true, Y><<<grid, RN_THREADS>>>(y, rstd, x, w, n, d, eps);
        else
            rmsnorm_fwd_kernel<false, Y><<<grid, RN_THREADS>>>(y, rstd, x, w, n, d, eps);
    }
    LAUNCH_CHECK();
}

extern "C" void rmsnorm_forward_cuda(float *y, float *rstd, const float *x, const float *w, int n,
                                     int d, float eps) {
    rmsnorm_forward(y, rstd, x, w, n, d, eps, rn_al16(y));
}

extern "C" void rmsnorm_forward_bf16_cuda(uint16_t *y, float *rstd, const float *x, const float *w,
                                          int n, int d, float eps) {
    rmsnorm_forward(y, rstd, x, w, n, d, eps, ((uintptr_t)y & 7u) == 0);
}

/* The row slicing depends only on (n, d), never on the device, so dw has the same bits on any
 * GPU: about RN_DW_TARGET_BLOCKS blocks (4 per SM of an H100) when there are rows enough. */
static void rmsnorm_dw(float *dw, const float *dy, const float *x, const float *rstd, int n,
                       int d) {
    const int col_blocks = (d + RN_THREADS - 1) / RN_THREADS;
    int slices = (RN_DW_TARGET_BLOCKS + col_blocks - 1) / col_blocks;
    if (slices > n) slices = n;
    const int rows_per = (n + slices - 1) / slices;
    slices = (n + rows_per - 1) / rows_per;
    float *part = (float *)dr_cuda_scratch(SCRATCH_REDUCE, sizeof(float) * (size_t)slices * d);
    rmsnorm_dw_partial_kernel<<<dim3((unsigned)col_blocks, (unsigned)slices), RN_THREADS>>>(
        part, dy, x, rstd, n, d, rows_per);
    LAUNCH_CHECK();
    rmsnorm_dw_final(dw, part, d, slices);
}

extern "C" void rmsnorm_backward_cuda(float *dx, float *dw, const float *dy, const float *x,
                                      const float *w, const float *rstd, int n, int d) {
    if (n <= 0 || d <= 0 || (!dx && !dw)) return;
    int T = 0;
    const bool al = (!dx || rn_al16(dx)) && rn_al16(dy) && rn_al16(x) && rn_al16(w);
    const int K = al ? rn_reg_shape(d, &T) : 0;
    if (K) {
        /* row groups from (n, d) alone, so dw has the same bits on any GPU */
        const int rows_per = (n + RN_BWD_TARGET_BLOCKS - 1) / RN_BWD_TARGET_BLOCKS;
        const int groups = (n + rows_per - 1) / rows_per;
        float *part =
            dw ? (float *)dr_cuda_scratch(SCRATCH_REDUCE, sizeof(float) * (size_t)groups * d)
               : NULL;
        if (K == 1)
            rmsnorm_bwd_reg_kernel<1>
                <<<(unsigned)groups, T>>>(dx, part, dy, x, w, rstd, n, d, rows_per);
        else if (K == 2)
            rmsnorm_bwd_reg_kernel<2>
                <<<(unsigned)groups, T>>>(dx, part, dy, x, w, rstd, n, d, rows_per);
        else
            rmsnorm_bwd_reg_kernel<4>
                <<<(unsigned)groups, T>>>(dx, part, dy, x, w, rstd, n, d, rows_per);
        LAUNCH_CHECK();
        if (dw) rmsnorm_dw_final(dw, part, d, groups);
        return;
    }
    if (dx) {
        const unsigned grid = (unsigned)((n + RN_WARPS - 1) / RN_WARPS);
        if (d % 4 == 0 && rn_al16(dx) && rn_al16(dy) && rn_al16(x) && rn_al16(w))
            rmsnorm_dx_kernel<true><<<grid, RN_THREADS>>>(dx, dy, x, w, rstd, n, d);
        else
            rmsnorm_dx_kernel<false><<<grid, RN_THREADS>>>(dx, dy, x, w, rstd, n, d);
        LAUNCH_CHECK();
    }
    if (dw) rmsnorm_dw(dw, dy, x, rstd, n, d);
}
