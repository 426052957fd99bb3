/* CUDA twins of the AdamW update and the sum of squares behind gradient clipping. AdamW is a
 * grid-stride loop over float4 (all four buffers 16-byte aligned) with a scalar tail, doing
 * the CPU's float operations in the CPU's order with explicitly rounded intrinsics, so no
 * multiply-add is fused and the result matches the CPU bit for bit. The sum of squares is
 * deterministic: a grid fixed by n alone, each thread summing its float4 groups in double,
 * per-block partials in scratch, and one final block adding them in a fixed order. */
#include <math.h>
#include <stdint.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"

enum { OPT_THREADS = 256, SUMSQ_MAX_BLOCKS = 1024 };

static inline bool opt_al16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

/* The per-step constants, formed on the host exactly as adamw_update_cpu forms them. */
struct AdamConst {
    float b1, b2, omb1, omb2, eps, step, sqrt_bc2, decay;
};

static __device__ __forceinline__ void adamw_elem(float &p, float g, float &m, float &v,
                                                  const AdamConst &c) {
    const float mi = __fadd_rn(__fmul_rn(c.b1, m), __fmul_rn(c.omb1, g));
    const float vi = __fadd_rn(__fmul_rn(c.b2, v), __fmul_rn(__fmul_rn(c.omb2, g), g));
    m = mi;
    v = vi;
    const float pi = __fmul_rn(p, c.decay); /* decay before the Adam step, as torch */
    const float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c.sqrt_bc2), c.eps);
    p = __fsub_rn(pi, __fmul_rn(c.step, __fdiv_rn(mi, den)));
}

__global__ void adamw_kernel(float *__restrict__ p, const float *__restrict__ g,
                             float *__restrict__ m, float *__restrict__ v, long n, long n4,
                             AdamConst c) {
    const long stride = (long)gridDim.x * blockDim.x,
               t = blockIdx.x * (long)blockDim.x + threadIdx.x;
    for (long i = t; i < n4; i += stride) {
        float4 pp = ((float4 *)p)[i], mm = ((float4 *)m)[i], vv = ((float4 *)v)[i];
        const float4 gg = ((const float4 *)g)[i];
        adamw_elem(pp.x, gg.x, mm.x, vv.x, c);
        adamw_elem(pp.y, gg.y, mm.y, vv.y, c);
        adamw_elem(pp.z, gg.z, mm.z, vv.z, c);
        adamw_elem(pp.w, gg.w, mm.w, vv.w, c);
        ((float4 *)p)[i] = pp;
        ((float4 *)m)[i] = mm;
        ((float4 *)v)[i] = vv;
    }
    for (long i = n4 * 4 + t; i < n; i += stride) adamw_elem(p[i], g[i], m[i], v[i], c);
}

extern "C" void adamw_update_cuda(float *p, const float *g, float *m, float *v, long n,
                                  AdamWParams hp, int t) {
    if (n <= 0) return;
    const double bc1 = 1.0 - pow((double)hp.beta1, t);
    const double bc2 = 1.0 - pow((double)hp.beta2, t);
    AdamConst c;
    c.b1 = hp.beta1;
    c.b2 = hp.beta2;
    c.omb1 = 1.0f - hp.beta1;
    c.omb2 = 1.0f - hp.beta2;
    c.eps = hp.eps;
    c.step = (float)(hp.lr / bc1);
    c.sqrt_bc2 = (float)sqrt(bc2);
    c.decay = (float)(1.0 - (double)hp.lr * hp.weight_decay);
    const long n4 = opt_al16(p) && opt_al16(g) && opt_al16(m) && opt_al16(v) ? n / 4 : 0;
    unsigned blocks = dr_blocks(n4 ? n4 : n, OPT_THREADS);
    const unsigned cap = (unsigned)dr_cuda_sm_count() * 16u;
    if (blocks > cap) blocks = cap;
    adamw_kernel<<<blocks, OPT_THREADS>>>(p, g, m, v, n, n4, c);
    LAUNCH_CHECK();
}

/* The sum of s over the block's threads, returned in thread 0 (others get 0). */
static __device__ double block_sum(double s) {
    __shared__ double warp_part[OPT_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const int lane = threadIdx.x & 31, wid = threadIdx.x / 32;
    if (lane == 0) warp_part[wid] = s;
    __syncthreads();
    s = 0.0;
    if (threadIdx.x == 0)
        for (int k = 0; k < OPT_THREADS / 32; k++) s += warp_part[k];
    return s;
}

/* part[block] = sum of g^2 over the groups of four this block's threads own. Thread t owns
 * groups t, t + stride, ...; group q is elements 4q .. 4q + 3, read as one float4 when vec is
 * set and one by one otherwise (same sums either way). Elements past the last whole group go
 * to the first threads. */
__global__ void sumsq_partial_kernel(double *__restrict__ part, const float *__restrict__ g, long n,
                                     int vec) {
    const long stride = (long)gridDim.x * blockDim.x,
               t = blockIdx.x * (long)blockDim.x + threadIdx.x;
    const long n4 = n / 4;
    double s = 0.0;
    for (long q = t; q < n4; q += stride) {
        float4 a;
        if (vec) {
            a = ((const float4 *)g)[q];
        } else {
            a = make_float4(g[4 * q], g[4 * q + 1], g[4 * q + 2], g[4 * q + 3]);
        }
        s += (double)a.x * a.x;
        s += (double)a.y * a.y;
        s += (double)a.z * a.z;
        s += (double)a.w * a.w;
    }
    for (long i = n4 * 4 + t; i < n; i += stride) s += (double)g[i] * g[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* part[nb] = sum of part[0 .. nb - 1]: thread k adds k, k + 256, ... in order, then the block
 * tree. One block. */
__global__ void sumsq_final_kernel(double *part, int nb) {
    double s = 0.0;
    for (int k = threadIdx.x; k < nb; k += OPT_THREADS) s += part[k];
    s = block_sum(s);
    if (threadIdx.x == 0) part[nb] = s;
}

extern "C" double sumsq_cuda(const float *g, long n) {
    if (n <= 0) return 0.0;
    /* the grid depends on n only, so the summation order (and the bits) are the same on every
     * run and every GPU */
    long nb = (n / 4 + OPT_THREADS - 1) / OPT_THREADS;
    if (nb < 1) nb = 1;
    if (nb > SUMSQ_MAX_BLOCKS) nb = SUMSQ_MAX_BLOCKS;
    double *part = (double *)dr_cuda_scratch(SCRATCH_REDUCE, sizeof(double) * (size_t)(nb + 1));
    sumsq_partial_kernel<<<(unsigned)nb, OPT_THREADS>>>(part, g, n, opt_al16(g));
    LAUNCH_CHECK();
    sumsq_final_kernel<<<1, OPT_THREADS>>>(part, (int)nb);
    LAUNCH_CHECK();
    double total = 0.0;
    CUDA_CHECK(cudaMemcpy(&total, part + nb, sizeof total, cudaMemcpyDeviceToHost));
    return total;
}
