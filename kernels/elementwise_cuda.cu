/* CUDA twins of the memory-bound kernels: the embedding gather and its deterministic
 * scatter-add backward, the rotary embedding, the SwiGLU gate, and x *= s / y += x.
 * Flat kernels are grid-stride loops over float4 where every pointer is 16-byte aligned,
 * with the last n % 4 elements (or all of them, unaligned) done one by one in the same
 * launch. The embedding backward sorts (id, position) pairs with CUB's stable radix sort and
 * lets one warp own each run of equal ids, so every table row is summed in token order:
 * no atomics, the same bits on every run, and parallel over both tokens and columns. */
#include <cuda_bf16.h>
#include <stdint.h>
#include <cub/device/device_radix_sort.cuh>
#include "../kernels/bf16_cuda.cuh"
#include "../kernels/kernels_cuda.h"
#include "../kernels/rope_cuda.cuh"
#include "../runtime/cuda_util.cuh"

enum { EW_THREADS = 256, EW_WARPS = EW_THREADS / 32 };

/* Blocks for a grid-stride loop over n items: one item per thread, at most 16 blocks per SM
 * (8 are resident at 256 threads; the rest hide the tail). */
static unsigned ew_grid(long n) {
    unsigned b = dr_blocks(n, EW_THREADS), cap = (unsigned)dr_cuda_sm_count() * 16u;
    return b < cap ? b : cap;
}

static inline bool al16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

#define GRID_STRIDE(i, start, end)                                                                 \
    for (long i = (start) + blockIdx.x * (long)blockDim.x + threadIdx.x; i < (end);                \
         i += (long)gridDim.x * blockDim.x)

/* ---- embedding ---- */

/* y[i, c] = table[ids[i], c] with T = float or float4 and dv = d in units of T. */
template <typename T>
__global__ void embedding_fwd_kernel(T *__restrict__ y, const int *__restrict__ ids,
                                     const T *__restrict__ table, long total, int dv) {
    GRID_STRIDE(e, 0, total) {
        const long i = e / dv;
        y[e] = table[(long)ids[i] * dv + (e - i * dv)];
    }
}

extern "C" void embedding_forward_cuda(float *y, const int *ids, const float *table, int n, int d) {
    if (n <= 0 || d <= 0) return;
    if (d % 4 == 0 && al16(y) && al16(table)) {
        const long total = (long)n * (d / 4);
        embedding_fwd_kernel<float4>
            <<<ew_grid(total), EW_THREADS>>>((float4 *)y, ids, (const float4 *)table, total, d / 4);
    } else {
        const long total = (long)n * d;
        embedding_fwd_kernel<float><<<ew_grid(total), EW_THREADS>>>(y, ids, table, total, d);
    }
    LAUNCH_CHECK();
}

__global__ void emb_iota_kernel(int *v, int n) {
    GRID_STRIDE(i, 0, n) v[i] = (int)i;
}

static __device__ __forceinline__ void acc_add(float &a, float b) {
    a += b;
}
static __device__ __forceinline__ void acc_add(float4 &a, float4 b) {
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
}

/* One warp per sorted position k that starts a run of equal ids (the others exit at once),
 * and per 32-wide slice of the columns (blockIdx.y; in units of T). The warp adds the run's
 * dy rows to the table row in ascending token order: the stable sort kept that order. */
template <typename T>
__global__ void embedding_bwd_kernel(T *__restrict__ dtable, const T *__restrict__ dy,
                                     const int *__restrict__ skey, const int *__restrict__ spos,
                                     int n, int dv) {
    const int k = blockIdx.x * EW_WARPS + threadIdx.x / 32;
    const int c = blockIdx.y * 32 + (threadIdx.x & 31);
    if (k >= n || c >= dv) return;
    const int id = skey[k];
    if (k > 0 && skey[k - 1] == id) return;
    int end = k + 1;
    while (end < n && skey[end] == id) end++;
    T *dst = dtable + (long)id * dv + c;
    T acc = *dst;
    int p = k;
    /* four loads in flight, added in order */
    for (; p + 4 <= end; p += 4) {
        const T a0 = dy[(long)spos[p] * dv + c], a1 = dy[(long)spos[p + 1] * dv + c];
        const T a2 = dy[(long)spos[p + 2] * dv + c], a3 = dy[(long)spos[p + 3] * dv + c];
        acc_add(acc, a0);
        acc_add(acc, a1);
        acc_add(acc, a2);
        acc_add(acc, a3);
    }
    for (; p < end; p++) acc_add(acc, dy[(long)spos[p] * dv + c]);
    *dst = acc;
}

static size_t align256(size_t b) {
    return (b + 255) & ~(size_t)255;
}

extern "C" void embedding_backward_cuda(float *dtable, const float *dy, const int *ids, int n,
                                        int d) {
    if (n <= 0 || d <= 0) return;
    /* scratch: sorted ids, positions before and after the sort, then CUB's temp storage */
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, ids, (int *)NULL, (int *)NULL,
                                               (int *)NULL, n));
    const size_t arr = align256((size_t)n * sizeof(int));
    char *s = (char *)dr_cuda_scratch(SCRATCH_REDUCE, 3 * arr + temp_bytes);
    int *skey = (int *)s, *pos = (int *)(s + arr), *spos = (int *)(s + 2 * arr);
    emb_iota_kernel<<<ew_grid(n), EW_THREADS>>>(pos, n);
    LAUNCH_CHECK();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(s + 3 * arr, temp_bytes, ids, skey, pos, spos, n));
    const bool vec = d % 4 == 0 && al16(dtable) && al16(dy);
    const int dv = vec ? d / 4 : d;
    const dim3 grid((unsigned)((n + EW_WARPS - 1) / EW_WARPS), (unsigned)((dv + 31) / 32));
    if (vec)
        embedding_bwd_kernel<float4>
            <<<grid, EW_THREADS>>>((float4 *)dtable, (const float4 *)dy, skey, spos, n, dv);
    else
        embedding_bwd_kernel<float><<<grid, EW_THREADS>>>(dtable, dy, skey, spos, n, dv);
    LAUNCH_CHECK();
}

/* ---- rotary embedding ---- */

/* One thread per (row, head, group of V pairs); sign -1 rotates by -angle (the backward). */
template <int V>
__global__ void ew_rope_kernel(float *__restrict__ x, const int *__restrict__ pos,
                               const float *__restrict__ cos_t, const float *__restrict__ sin_t,
                               long total, int h, int D, float sign) {
    const int half = D / 2, gpr = half / V; /* groups per head */
    GRID_STRIDE(e, 0, total) {
        const long ih = e / gpr;
        const int j = (int)(e - ih * gpr) * V;
        const long t = (long)pos[ih / h] * half + j;
        float *x1 = x + ih * D + j, *x2 = x1 + half;
        if (V == 4) {
            float4 a = *(float4 *)x1, b = *(float4 *)x2;
            const float4 c = *(const float4 *)(cos_t + t), s = *(const float4 *)(sin_t + t);
            rope_rot(a.x, b.x, c.x, sign * s.x);
            rope_rot(a.y, b.y, c.y, sign * s.y);
            rope_rot(a.z, b.z, c.z, sign * s.z);
            rope_rot(a.w, b.w, c.w, sign * s.w);
            *(float4 *)x1 = a;
            *(float4 *)x2 = b;
        } else {
            float a = *x1, b = *x2;
            rope_rot(a, b, cos_t[t], sign * sin_t[t]);
            *x1 = a;
            *x2 = b;
        }
    }
}

static void rope_launch(float *x, const int *pos, const float *cos_t, const float *sin_t, int n,
                        int h, int D, float sign) {
    const int half = D / 2;
    if (n <= 0 || h <= 0 || half <= 0) return;
    if (half % 4 == 0 && al16(x) && al16(cos_t) && al16(sin_t)) {
        const long total = (long)n * h * (half / 4);
        ew_rope_kernel<4><<<ew_grid(total), EW_THREADS>>>(x, pos, cos_t, sin_t, total, h, D, sign);
    } else {
        const long total = (long)n * h * half;
        ew_rope_kernel<1><<<ew_grid(total), EW_THREADS>>>(x, pos, cos_t, sin_t, total, h, D, sign);
    }
    LAUNCH_CHECK();
}

extern "C" void rope_forward_cuda(float *x, const int *pos, const float *cos_t, const float *sin_t,
                                  int n, int h, int D) {
    rope_launch(x, pos, cos_t, sin_t, n, h, D, 1.0f);
}

extern "C" void rope_backward_cuda(float *dx, const int *pos, const float *cos_t,
                                   const float *sin_t, int n, int h, int D) {
    rope_launch(dx, pos, cos_t, sin_t, n, h, D, -1.0f);
}

/* ---- SwiGLU ---- */

/* sigmoid(g) and 1 - sigmoid(g) from e = exp(-|g|), which cannot overflow, as on the CPU. */
static __device__ __forceinline__ void sigmoids(float g, float &sig, float &sigc) {
    const float e = expf(-fabsf(g)), inv = 1.0f / (1.0f + e);
    sig = (g < 0.0f ? e : 1.0f) * inv;
    sigc = (g < 0.0f ? 1.0f : e) * inv;
}

static __device__ __forceinline__ float swiglu_f(float g, float u) {
    float sig, sigc;
    sigmoids(g, sig, sigc);
    return g * sig * u;
}

static __device__ __forceinline__ void swiglu_b(float &dg, float &du, float dh, float g, float u) {
    float sig, sigc;
    sigmoids(g, sig, sigc);
    dg += dh * u * sig * (1.0f + g * sigc);
    du += dh * (g * sig);
}

/* n4 float4 groups (0 when unaligned), then elements n4 * 4 .. n - 1 one by one. */
__global__ void swiglu_fwd_kernel(float *__restrict__ h, const float *__restrict__ g,
                                  const float *__restrict__ u, long n, long n4) {
    GRID_STRIDE(i, 0, n4) {
        const float4 a = ((const float4 *)g)[i], b = ((const float4 *)u)[i];
        ((float4 *)h)[i] = make_float4(swiglu_f(a.x, b.x), swiglu_f(a.y, b.y), swiglu_f(a.z, b.z),
                                       swiglu_f(a.w, b.w));
    }
    GRID_STRIDE(i, n4 * 4, n) h[i] = swiglu_f(g[i], u[i]);
}

__global__ void swiglu_bwd_kernel(float *__restrict__ dg, float *__restrict__ du,
                                  const float *__restrict__ dh, const float *__restrict__ g,
                                  const float *__restrict__ u, long n, long n4) {
    GRID_STRIDE(i, 0, n4) {
        float4 a = ((float4 *)dg)[i], b = ((float4 *)du)[i];
        const float4 c = ((const float4 *)dh)[i], x = ((const float4 *)g)[i],
                     y = ((const float4 *)u)[i];
        swiglu_b(a.x, b.x, c.x, x.x, y.x);
        swiglu_b(a.y, b.y, c.y, x.y, y.y);
        swiglu_b(a.z, b.z, c.z, x.z, y.z);
        swiglu_b(a.w, b.w, c.w, x.w, y.w);
        ((float4 *)dg)[i] = a;
        ((float4 *)du)[i] = b;
    }
    GRID_STRIDE(i, n4 * 4, n) swiglu_b(dg[i], du[i], dh[i], g[i], u[i]);
}

extern "C" void swiglu_forward_cuda(float *h, const float *g, const float *u, long n) {
    if (n <= 0) return;
    const long n4 = al16(h) && al16(g) && al16(u) ? n / 4 : 0;
    swiglu_fwd_kernel<<<ew_grid(n4 ? n4 : n), EW_THREADS>>>(h, g, u, n, n4);
    LAUNCH_CHECK();
}

extern "C" void swiglu_backward_cuda(float *dg, float *du, const float *dh, const float *g,
                                     const float *u, long n) {
    if (n <= 0) return;
    const bool vec = al16(dg) && al16(du) && al16(dh) && al16(g) && al16(u);
    const long n4 = vec ? n / 4 : 0;
    swiglu_bwd_kernel<<<ew_grid(n4 ? n4 : n), EW_THREADS>>>(dg, du, dh, g, u, n, n4);
    LAUNCH_CHECK();
}

/* The bf16 twins for mixed precision: the same float math, the result rounded to bf16 for
 * the product that takes it (h into the down projection; dg, du into the gate and up
 * backward products). The backward overwrites dg and du and reads dh in bf16. g and u are
 * fp32 (GU float) or, as the gate and up products leave them in bf16, bf16 (GU bf16). */
static __device__ __forceinline__ float4 sw_load4(const float *p, long i) {
    return ((const float4 *)p)[i];
}
static __device__ __forceinline__ float4 sw_load4(const __nv_bfloat16 *p, long i) {
    const uint2 c = ((const uint2 *)p)[i];
    return make_float4(bf16_lo(c.x), bf16_hi(c.x), bf16_lo(c.y), bf16_hi(c.y));
}
static __device__ __forceinline__ float sw_load1(const float *p, long i) {
    return p[i];
}
static __device__ __forceinline__ float sw_load1(const __nv_bfloat16 *p, long i) {
    return __bfloat162float(p[i]);
}

template <class GU>
__global__ void swiglu_fwd_bf16_kernel(__nv_bfloat16 *__restrict__ h, const GU *__restrict__ g,
                                       const GU *__restrict__ u, long n, long n4) {
    GRID_STRIDE(i, 0, n4) {
        const float4 a = sw_load4(g, i), b = sw_load4(u, i);
        ((uint2 *)h)[i] = make_uint2(bf16_pack2(swiglu_f(a.x, b.x), swiglu_f(a.y, b.y)),
                                     bf16_pack2(swiglu_f(a.z, b.z), swiglu_f(a.w, b.w)));
    }
    GRID_STRIDE(i, n4 * 4, n) h[i] = __float2bfloat16_rn(swiglu_f(sw_load1(g, i), sw_load1(u, i)));
}

template <class GU>
__global__ void
swiglu_bwd_bf16_kernel(__nv_bfloat16 *__restrict__ dg, __nv_bfloat16 *__restrict__ du,
                       const __nv_bfloat16 *__restrict__ dh, const GU *__restrict__ g,
                       const GU *__restrict__ u, long n, long n4) {
    GRID_STRIDE(i, 0, n4) {
        const float4 c = sw_load4(dh, i), x = sw_load4(g, i), y = sw_load4(u, i);
        float a[4] = {0.0f, 0.0f, 0.0f, 0.0f}, b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        swiglu_b(a[0], b[0], c.x, x.x, y.x);
        swiglu_b(a[1], b[1], c.y, x.y, y.y);
        swiglu_b(a[2], b[2], c.z, x.z, y.z);
        swiglu_b(a[3], b[3], c.w, x.w, y.w);
        ((uint2 *)dg)[i] = make_uint2(bf16_pack2(a[0], a[1]), bf16_pack2(a[2], a[3]));
        ((uint2 *)du)[i] = make_uint2(bf16_pack2(b[0], b[1]), bf16_pack2(b[2], b[3]));
    }
    GRID_STRIDE(i, n4 * 4, n) {
        float a = 0.0f, b = 0.0f;
        swiglu_b(a, b, __bfloat162float(dh[i]), sw_load1(g, i), sw_load1(u, i));
        dg[i] = __float2bfloat16_rn(a);
        du[i] = __float2bfloat16_rn(b);
    }
}

static inline bool al8(const void *p) {
    return ((uintptr_t)p & 7) == 0;
}

/* 4-wide where every pointer allows: 8-byte alignment for bf16 arrays, 16 for fp32 ones */
static inline bool sw_al(const float *p) {
    return al16(p);
}
static inline bool sw_al(const __nv_bfloat16 *p) {
    return al8(p);
}

template <class GU>
static void swiglu_fwd_bf16_launch(uint16_t *h, const GU *g, const GU *u, long n) {
    if (n <= 0) return;
    const long n4 = al8(h) && sw_al(g) && sw_al(u) ? n / 4 : 0;
    swiglu_fwd_bf16_kernel<GU>
        <<<ew_grid(n4 ? n4 : n), EW_THREADS>>>((__nv_bfloat16 *)h, g, u, n, n4);
    LAUNCH_CHECK();
}

template <class GU>
static void swiglu_bwd_bf16_launch(uint16_t *dg, uint16_t *du, const uint16_t *dh, const GU *g,
                                   const GU *u, long n) {
    if (n <= 0) return;
    const bool vec = al8(dg) && al8(du) && al8(dh) && sw_al(g) && sw_al(u);
    const long n4 = vec ? n / 4 : 0;
    swiglu_bwd_bf16_kernel<GU><<<ew_grid(n4 ? n4 : n), EW_THREADS>>>(
        (__nv_bfloat16 *)dg, (__nv_bfloat16 *)du, (const __nv_bfloat16 *)dh, g, u, n, n4);
    LAUNCH_CHECK();
}

extern "C" void swiglu_forward_bf16_cuda(uint16_t *h, const float *g, const float *u, long n) {
    swiglu_fwd_bf16_launch(h, g, u, n);
}

extern "C" void swiglu_backward_bf16_cuda(uint16_t *dg, uint16_t *du, const uint16_t *dh,
                                          const float *g, const float *u, long n) {
    swiglu_bwd_bf16_launch(dg, du, dh, g, u, n);
}

extern "C" void swiglu_forward_bf16in_cuda(uint16_t *h, const uint16_t *g, const uint16_t *u,
                                           long n) {
    swiglu_fwd_bf16_launch(h, (const __nv_bfloat16 *)g, (const __nv_bfloat16 *)u, n);
}

extern "C" void swiglu_backward_bf16in_cuda(uint16_t *dg, uint16_t *du, const uint16_t *dh,
                                            const uint16_t *g, const uint16_t *u, long n) {
    swiglu_bwd_bf16_launch(dg, du, dh, (const __nv_bfloat16 *)g, (const __nv_bfloat16 *)u, n);
}

/* ---- x *= s, y += x ---- */

__global__ void ew_scale_kernel(float *__restrict__ x, long n, long n4, float s) {
    GRID_STRIDE(i, 0, n4) {
        float4 a = ((float4 *)x)[i];
        a.x *= s;
        a.y *= s;
        a.z *= s;
        a.w *= s;
        ((float4 *)x)[i] = a;
    }
    GRID_STRIDE(i, n4 * 4, n) x[i] *= s;
}

__global__ void ew_add_kernel(float *__restrict__ y, const float *__restrict__ x, long n, long n4) {
    GRID_STRIDE(i, 0, n4) {
        float4 a = ((float4 *)y)[i];
        acc_add(a, ((const float4 *)x)[i]);
        ((float4 *)y)[i] = a;
    }
    GRID_STRIDE(i, n4 * 4, n) y[i] += x[i];
}

extern "C" void scale_cuda(float *x, long n, float s) {
    if (n <= 0) return;
    const long n4 = al16(x) ? n / 4 : 0;
    ew_scale_kernel<<<ew_grid(n4 ? n4 : n), EW_THREADS>>>(x, n, n4, s);
    LAUNCH_CHECK();
}

extern "C" void add_cuda(float *y, const float *x, long n) {
    if (n <= 0) return;
    const long n4 = al16(y) && al16(x) ? n / 4 : 0;
    ew_add_kernel<<<ew_grid(n4 ? n4 : n), EW_THREADS>>>(y, x, n, n4);
    LAUNCH_CHECK();
}
