/* CUDA twin of RMSNorm. One warp per row (8 rows per 256-thread block): the row's sum of
 * squares (or the backward's sum of w dy x) is accumulated in double as on the CPU, reduced by
 * warp shuffles, and the row is then read again (from cache) to write its output; rows of
 * d % 4 == 0 move as float4. The weight gradient is a sum over rows, made deterministic
 * without atomics: each block sums a fixed slice of rows for 256 columns into a scratch row of
 * partials, and a second kernel adds each column's partials in slice order. */
#include <stdint.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"

enum { RN_THREADS = 256, RN_WARPS = RN_THREADS / 32, RN_DW_TARGET_BLOCKS = 528 };

static inline bool rn_al16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

static __device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

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

template <bool VEC>
__global__ void rmsnorm_fwd_kernel(float *__restrict__ y, float *__restrict__ rstd,
                                   const float *__restrict__ x, const float *__restrict__ w, int n,
                                   int d, float eps) {
    const int row = blockIdx.x * RN_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= n) return; /* the whole warp leaves together */
    const float *xr = x + (long)row * d;
    float *yr = y + (long)row * d;
    const double ss = warp_sum(lane_dot<VEC>(xr, NULL, NULL, d, lane));
    const float r = (float)(1.0 / sqrt(ss / d + (double)eps));
    if (lane == 0) rstd[row] = r;
    /* normalise first, then scale by the weight, as the CPU and Hugging Face round */
    if (VEC) {
        for (int j = lane; j < d / 4; j += 32) {
            const float4 a = ((const float4 *)xr)[j], b = ((const float4 *)w)[j];
            ((float4 *)yr)[j] =
                make_float4(b.x * (a.x * r), b.y * (a.y * r), b.z * (a.z * r), b.w * (a.w * r));
        }
    } else {
        for (int j = lane; j < d; j += 32) yr[j] = w[j] * (xr[j] * r);
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

/* dw_j += sum over slices, in slice order, of part[slice, j]. */
__global__ void rmsnorm_dw_final_kernel(float *__restrict__ dw, const float *__restrict__ part,
                                        int d, int slices) {
    const int j = blockIdx.x * RN_THREADS + threadIdx.x;
    if (j >= d) return;
    float s = 0.0f;
    for (int b = 0; b < slices; b++) s += part[(long)b * d + j];
    dw[j] += s;
}

extern "C" void rmsnorm_forward_cuda(float *y, float *rstd, const float *x, const float *w, int n,
                                     int d, float eps) {
    if (n <= 0 || d <= 0) return;
    const unsigned grid = (unsigned)((n + RN_WARPS - 1) / RN_WARPS);
    if (d % 4 == 0 && rn_al16(y) && rn_al16(x) && rn_al16(w))
        rmsnorm_fwd_kernel<true><<<grid, RN_THREADS>>>(y, rstd, x, w, n, d, eps);
    else
        rmsnorm_fwd_kernel<false><<<grid, RN_THREADS>>>(y, rstd, x, w, n, d, eps);
    LAUNCH_CHECK();
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
    rmsnorm_dw_final_kernel<<<(unsigned)col_blocks, RN_THREADS>>>(dw, part, d, slices);
    LAUNCH_CHECK();
}

extern "C" void rmsnorm_backward_cuda(float *dx, float *dw, const float *dy, const float *x,
                                      const float *w, const float *rstd, int n, int d) {
    if (n <= 0 || d <= 0) return;
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
