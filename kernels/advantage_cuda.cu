/* CUDA advantage estimators (PRIME.md section 5), the twins of advantage_cpu.c. Outcome
 * baselines (K values per group) take one thread per group in the CPU's order; process
 * baselines take one block per group that holds the whole group (up to 8 chunks of RL_CHUNK
 * elements) in registers, read once and written once, and larger groups a few resident blocks
 * that stride over the groups, reading each two or three times, the later reads from L2;
 * per-row work (combined rewards, discounted returns, GAE) one block per row, each thread
 * RL_VEC consecutive positions of a chunk, with the backward recurrences split into a block
 * scan of affine maps (rl_cuda.cuh) across threads and the CPU's own step-by-step recurrence
 * within a thread; masked moments reduce per-row double partials in fixed order. */
#include <assert.h>
#include <math.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"
#include "rl_cuda.cuh"

static __global__ void rloo_outcome_kernel(float *out, const float *o, int G, int K) {
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= G) return;
    double sum = 0.0;
    for (int j = 0; j < K; j++) sum += o[g * K + j];
    for (int j = 0; j < K; j++) {
        double oi = o[g * K + j];
        out[g * K + j] = (float)(oi - (sum - oi) / (K - 1));
    }
}

extern "C" void rloo_outcome_cuda(float *out, const float *o, int N, int K) {
    assert(K >= 2 && N % K == 0);
    if (N <= 0) return;
    rloo_outcome_kernel<<<dr_blocks(N / K, 128), 128>>>(out, o, N / K, K);
    LAUNCH_CHECK();
}

/* Blocks that stay resident over the groups of a group kernel: few enough (two per SM) that a
 * group's data read in one pass is still in L2 for the next pass over it. */
static unsigned adv_group_blocks(int G) {
    int dev = 0, sms = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    return (unsigned)(G < 2 * sms ? G : 2 * sms);
}

/* ---- process baselines in one pass: a group of up to ADV_MAX_NC chunks in registers ---- */

/* Thread j of a one-pass block holds elements [c RL_CHUNK + j RL_VEC, + RL_VEC) of its group's
 * (K T) span for c < NC, and the mask of element k of chunk c as bit (c % 4) 8 + k of word
 * c / 4. */
enum { ADV_MAX_NC = 8 };
#define ADV_MB(NC) (((NC) + 3) / 4)

__device__ __forceinline__ bool adv_bit(const unsigned *mb, int c, int k) {
    return (mb[c >> 2] >> ((c & 3) * RL_VEC + k)) & 1u;
}
__device__ __forceinline__ unsigned adv_seg(const unsigned *mb, int c) {
    return (mb[c >> 2] >> ((c & 3) * RL_VEC)) & 0xffu;
}

/* x[k] = p[t0 + k] where t0 + k < n, 0 elsewhere: 16 bytes at a time when vec (then n and t0
 * are multiples of 4, so each 4 lie wholly inside or outside), else one element at a time.
 * Loads are predicated, not branched around, so every load of a group can be in flight. */
__device__ __forceinline__ void adv_load(float (&x)[RL_VEC], const float *p, int t0, int n,
                                         int vec) {
    if (vec) {
#pragma unroll
        for (int q = 0; q < RL_VEC; q += 4) {
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (t0 + q + 4 <= n) v = *(const float4 *)(p + t0 + q);
            x[q] = v.x, x[q + 1] = v.y, x[q + 2] = v.z, x[q + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) x[k] = t0 + k < n ? p[t0 + k] : 0.0f;
    }
}

/* Loads the thread's share of an n-element group (0 and mask bit 0 past n): the mask first,
 * all of it in flight at once and turned into bits, then r, all of it in flight at once. The
 * other order would need the registers for r and the mask together, more than 2 blocks per SM
 * leave, and the compiler would then issue the mask a chunk at a time. */
template <int NC>
__device__ __forceinline__ void adv_load_group(float (&x)[NC][RL_VEC], unsigned (&mb)[ADV_MB(NC)],
                                               const float *r, const float *mask, int n, int vec) {
    const int e0 = threadIdx.x * RL_VEC;
    float m[NC][RL_VEC];
#pragma unroll
    for (int c = 0; c < NC; c++) adv_load(m[c], mask, c * RL_CHUNK + e0, n, vec);
#pragma unroll
    for (int w = 0; w < ADV_MB(NC); w++) mb[w] = 0;
#pragma unroll
    for (int c = 0; c < NC; c++)
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (m[c][k] > 0) mb[c >> 2] |= 1u << ((c & 3) * RL_VEC + k);
#pragma unroll
    for (int c = 0; c < NC; c++) adv_load(x[c], r, c * RL_CHUNK + e0, n, vec);
}

/* Makes a thread's segment opaque to the compiler, which then converts it to double where it
 * is used, one segment at a time, instead of converting every element early and keeping the
 * doubles (two registers each) alive, which spills. Emits no instruction. */
__device__ __forceinline__ void adv_opaque(float (&x)[RL_VEC]) {
#ifndef __CUDA_EMU__ /* a hint to nvcc only, without meaning on the CPU emulation */
#pragma unroll
    for (int k = 0; k < RL_VEC; k++) asm volatile("" : "+f"(x[k]));
#endif
}

/* v, as a value the compiler cannot relate to v: what is derived from it after the barriers
 * (row positions, the output address) is recomputed there rather than kept in registers from
 * the start of the kernel. Emits no instruction. */
__device__ __forceinline__ int adv_fresh(int v) {
#ifndef __CUDA_EMU__
    asm volatile("" : "+r"(v));
#endif
    return v;
}

/* Masked sum and count of a row since its start, as a scan element: nf = count << 1 | (the
 * range holds a row start). Combining restarts at the later range's row start, like RlSeg. */
struct AdvRun {
    double s;
    int nf;
};
__device__ __forceinline__ AdvRun rl_identity(AdvRun) {
    return AdvRun{0.0, 0};
}
__device__ __forceinline__ AdvRun rl_combine(AdvRun x, AdvRun y) {
    return (y.nf & 1) ? y : AdvRun{x.s + y.s, x.nf + y.nf};
}
__device__ __forceinline__ AdvRun rl_shfl_up(AdvRun x, int d) {
    return AdvRun{__shfl_up_sync(0xffffffffu, x.s, d), __shfl_up_sync(0xffffffffu, x.nf, d)};
}

/* Scans a over the warp in lane order: returns the inclusive value and sets excl (the
 * identity on lane 0). */
__device__ __forceinline__ AdvRun adv_warp_scan(AdvRun a, AdvRun &excl) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
        const AdvRun y = rl_shfl_up(a, d);
        if (lane >= d) a = rl_combine(y, a);
    }
    const AdvRun e = rl_shfl_up(a, 1);
    excl = lane == 0 ? rl_identity(a) : e;
    return a;
}

/* Row j and position p of a group element, stepped a chunk at a time without dividing. */
struct AdvPos {
    int j, p;
};
__device__ __forceinline__ void adv_next_chunk(AdvPos &q, AdvPos step, int T) {
    q.j += step.j, q.p += step.p;
    if (q.p >= T) q.p -= T, q.j++;
}

/* Bits lo..hi (lo may be negative: from 0) of a segment's 8 mask bits. */
__device__ __forceinline__ unsigned adv_span(int lo, int hi) {
    return ((2u << hi) - 1) & ~((1u << max(lo, 0)) - 1);
}

/* Sum of x[k] over the bits of sel (constant k, so x stays in registers). */
__device__ __forceinline__ double adv_seg_sum(const float (&x)[RL_VEC], unsigned sel) {
    double s = 0.0;
#pragma unroll
    for (int k = 0; k < RL_VEC; k++)
        if ((sel >> k) & 1u) s += x[k];
    return s;
}

/* The parts of a segment that starts at row position q.p (element e of n) that a row sum needs:
 * returns tail, the masked sum and count from its last row start, if it holds one, to its end
 * (its scan element); sets head, the same from its start to its first row end, if it holds one
 * (marked as a row start when the row starts with the segment); stores the rows wholly inside
 * it after the first (T < RL_VEC). cnt holds count << 1 | 1. */
__device__ __forceinline__ AdvRun adv_seg_parts(double *ms, int *cnt, AdvRun &head,
                                                const float (&x)[RL_VEC], unsigned seg, AdvPos q,
                                                int T, int e, int n) {
    const int v = q.p + RL_VEC - 1, last = RL_VEC - 1 - (v < 2 * T ? (v >= T ? v - T : v) : v % T);
    const int end = T - 1 - q.p;
    const unsigned sel_tail = seg & adv_span(last, RL_VEC - 1);
    const unsigned sel_head = seg & adv_span(0, min(end, RL_VEC - 1));
    head = AdvRun{adv_seg_sum(x, sel_head), __popc(sel_head) << 1 | (q.p == 0)};
    for (int end2 = end + T, j = q.j + 1; end2 < RL_VEC && e + end2 < n; end2 += T, j++) {
        const unsigned sel = seg & adv_span(end2 - (T - 1), end2);
        ms[j] = adv_seg_sum(x, sel);
        cnt[j] = __popc(sel) << 1 | 1;
    }
    return AdvRun{adv_seg_sum(x, sel_tail), __popc(sel_tail) << 1 | (last >= 0)};
}

/* Stores the masked sum and count of every row of the group (cnt: count << 1 | 1), from an
 * exclusive scan of the segments' tails in element order (chunk, then thread). Each segment
 * keeps its parts (adv_seg_parts); warp scans of every chunk give the row ending first in a
 * segment its part within the warp; after one barrier, the (chunk, warp) totals combined in
 * fixed order give the part before that warp, added to the rows whose start was not yet seen
 * (listed in fix and fix_row). x is used only before the warp scans, and little else lives
 * across the barrier, which keeps the kernel within its registers. */
template <int NC>
__device__ __forceinline__ void adv_row_sums(double *ms, int *cnt, float (&x)[NC][RL_VEC],
                                             const unsigned (&mb)[ADV_MB(NC)], int T, int n) {
    __shared__ AdvRun tot[NC][RL_WARPS];
    __shared__ int fix_row[NC][RL_THREADS];
    const int warp = threadIdx.x >> 5, e0 = threadIdx.x * RL_VEC;
    const AdvPos step = {RL_CHUNK / T, RL_CHUNK % T};
    AdvPos q = {e0 / T, e0 % T};
    unsigned fix = 0;
#pragma unroll
    for (int c = 0; c < NC; c++, adv_next_chunk(q, step, T)) {
        const int e = c * RL_CHUNK + e0;
        adv_opaque(x[c]);
        AdvRun head, ex;
        const AdvRun in =
            adv_warp_scan(adv_seg_parts(ms, cnt, head, x[c], adv_seg(mb, c), q, T, e, n), ex);
        if ((threadIdx.x & 31) == 31) tot[c][warp] = in;
        const int end = T - 1 - q.p;
        if (end < RL_VEC && e + end < n) {
            const AdvRun a = rl_combine(ex, head);
            ms[q.j] = a.s, cnt[q.j] = a.nf;
            if (!(a.nf & 1)) fix |= 1u << c, fix_row[c][threadIdx.x] = q.j;
        }
    }
    __syncthreads();
    AdvRun carry = {0.0, 0};
#pragma unroll
    for (int c = 0; c < NC; c++) {
        AdvRun pre = carry;
#pragma unroll
        for (int w = 0; w < RL_WARPS; w++) {
            const AdvRun t = tot[c][w];
            if (w < warp) pre = rl_combine(pre, t);
            carry = rl_combine(carry, t);
        }
        if ((fix >> c) & 1u) {
            const int j = fix_row[c][threadIdx.x];
            ms[j] = pre.s + ms[j], cnt[j] += pre.nf;
        }
    }
}

/* RLOO over one group in registers: the row sums and counts (adv_row_sums), then the block
 * takes the row means, their sum (rl_block_sum) and each row's baseline, in shared memory. */
template <int NC>
static __global__ void __launch_bounds__(RL_THREADS, 2)
    rloo_process_1p_kernel(float *out, const float *r, const float *mask, int T, int K, int paper,
                           int vec) {
    extern __shared__ double ms[]; /* (K + 1) row sums, means, then baselines; (K) counts << 1 */
    int *cnt = (int *)(ms + K + 1);
    const int n = K * T, e0 = threadIdx.x * RL_VEC;
    const size_t g0 = (size_t)blockIdx.x * n;
    float x[NC][RL_VEC];
    unsigned mb[ADV_MB(NC)];
    adv_load_group<NC>(x, mb, r + g0, mask + g0, n, vec);
    adv_row_sums<NC>(ms, cnt, x, mb, T, n);
    __syncthreads();
    double mu_sum[1] = {0.0};
#pragma unroll 1
    for (int j = threadIdx.x; j < K; j += RL_THREADS) {
        const int nj = cnt[j] >> 1;
        const double mu = nj > 0 ? ms[j] / nj : 0.0;
        ms[j] = mu;
        mu_sum[0] += mu;
    }
    rl_block_sum<1>(mu_sum);
#pragma unroll 1
    for (int j = threadIdx.x; j < K; j += RL_THREADS)
        ms[j] = paper ? (mu_sum[0] - ms[j]) / (K - 1) : mu_sum[0] / (K - 1);
    __syncthreads();
    const double scale = paper ? 1.0 : (double)K / (K - 1);
    const int e1 = adv_fresh(e0); /* recomputed below, not kept from the start in a register */
    float *o = out + (size_t)blockIdx.x * adv_fresh(n);
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const int e = c * RL_CHUNK + e1;
        if (e >= n) break;
        adv_opaque(x[c]);
        AdvPos t = {e / T, e % T};
        double base = ms[t.j];
        float y[RL_VEC];
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            y[k] = adv_bit(mb, c, k) ? (float)(__dmul_rn(x[c][k], scale) - base) : 0.0f;
            if (++t.p == T) t.p = 0, base = ms[min(++t.j, K)]; /* ms[K]: past the group */
        }
        rl_store(o, y, e, n, vec);
    }
}

/* GRPO over one group in registers: masked sum and count, then the sum of squares about the
 * mean, then the output, with the existing kernel's arithmetic. */
template <int NC>
static __global__ void __launch_bounds__(RL_THREADS, 2)
    grpo_process_1p_kernel(float *out, const float *r, const float *mask, int n, float eps,
                           int vec) {
    const size_t g0 = (size_t)blockIdx.x * n;
    float x[NC][RL_VEC];
    unsigned mb[ADV_MB(NC)];
    adv_load_group<NC>(x, mb, r + g0, mask + g0, n, vec);
    double acc[2] = {0.0, 0.0};
    int c1 = 0;
#pragma unroll
    for (int c = 0; c < NC; c++) {
        adv_opaque(x[c]);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (adv_bit(mb, c, k)) acc[0] += x[c][k], c1++;
    }
    acc[1] = c1;
    rl_block_sum<2>(acc);
    const double cnt = acc[1], mean = cnt > 0 ? acc[0] / cnt : 0.0;
    double ss[1] = {0.0};
#pragma unroll
    for (int c = 0; c < NC; c++) {
        adv_opaque(x[c]);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (adv_bit(mb, c, k)) ss[0] += (x[c][k] - mean) * (x[c][k] - mean);
    }
    rl_block_sum<1>(ss);
    const double sd = cnt > 1 ? sqrt(ss[0] / (cnt - 1)) : 0.0;
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const int e0 = c * RL_CHUNK + threadIdx.x * RL_VEC;
        if (e0 >= n) break;
        adv_opaque(x[c]);
        float y[RL_VEC];
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            y[k] = adv_bit(mb, c, k) ? (float)((x[c][k] - mean) / (sd + eps)) : 0.0f;
        rl_store(out + g0, y, e0, n, vec);
    }
}

/* Chunks per thread for the one-pass kernels: the fewest of 1, 2, 4, 8 that hold a group of n
 * elements; 0 (the strided kernels) for larger groups. */
static int adv_one_pass_nc(size_t n) {
    for (int nc = 1; nc <= ADV_MAX_NC; nc *= 2)
        if (n <= (size_t)nc * RL_CHUNK) return nc;
    return 0;
}

/* Blocks stride over the groups; per group, the row means into shared memory (K doubles),
 * then the baseline. Each thread takes RL_VEC consecutive elements of a chunk. */
static __global__ void __launch_bounds__(RL_THREADS)
    rloo_process_kernel(float *out, const float *r, const float *mask, int G, int T, int K,
                        int paper, int vec) {
    extern __shared__ double mu[]; /* (K) */
    const double scale = paper ? 1.0 : (double)K / (K - 1);
    for (int g = blockIdx.x; g < G; g += gridDim.x) {
        const size_t g0 = (size_t)g * K * T;
        for (int j = 0; j < K; j++) {
            const float *rj = r + g0 + (size_t)j * T, *mj = mask + g0 + (size_t)j * T;
            double acc[2] = {0.0, 0.0};
            for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
                float x[RL_VEC], m[RL_VEC];
                rl_load(m, mj, t0, T, vec);
                rl_load(x, rj, t0, T, vec);
#pragma unroll
                for (int k = 0; k < RL_VEC; k++)
                    if (m[k] > 0) {
                        acc[0] += x[k];
                        acc[1] += 1.0;
                    }
            }
            rl_block_sum<2>(acc);
            if (threadIdx.x == 0) mu[j] = acc[1] > 0 ? acc[0] / acc[1] : 0.0;
        }
        __syncthreads();
        double mu_sum = 0.0;
        for (int j = 0; j < K; j++) mu_sum += mu[j];
        for (int j = 0; j < K; j++) {
            const double base = paper ? (mu_sum - mu[j]) / (K - 1) : mu_sum / (K - 1);
            const size_t o = g0 + (size_t)j * T;
            for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
                float x[RL_VEC], m[RL_VEC], y[RL_VEC];
                rl_load(m, mask + o, t0, T, vec);
                rl_load(x, r + o, t0, T, vec);
#pragma unroll
                for (int k = 0; k < RL_VEC; k++)
                    y[k] = m[k] > 0 ? (float)(__dmul_rn(x[k], scale) - base) : 0.0f;
                rl_store(out + o, y, t0, T, vec);
            }
        }
        __syncthreads(); /* mu is rewritten by the next group */
    }
}

extern "C" void rloo_process_cuda(float *out, const float *r, const float *mask, int N, int T,
                                  int K, int paper) {
    assert(K >= 2 && N % K == 0);
    if (N <= 0 || T <= 0) return;
    size_t shmem = sizeof(double) * (size_t)K;
    if (shmem > 48 * 1024) {
        fprintf(stderr, "fatal: rloo_process_cuda: group size K = %d too large\n", K);
        abort();
    }
    /* groups of up to ADV_MAX_NC chunks in one pass, if its K + 1 sums and K counts fit the
     * default 48 KB of shared memory; larger ones by the strided kernel */
    const unsigned G = (unsigned)(N / K);
    const size_t n = (size_t)K * T, shmem1 = (sizeof(double) + sizeof(int)) * K + sizeof(double);
    const int nc = shmem1 <= 48 * 1024 ? adv_one_pass_nc(n) : 0;
    const int vec1 = rl_vec_ok(n, out, r, mask, NULL);
    if (nc == 1)
        rloo_process_1p_kernel<1><<<G, RL_THREADS, shmem1>>>(out, r, mask, T, K, paper, vec1);
    else if (nc == 2)
        rloo_process_1p_kernel<2><<<G, RL_THREADS, shmem1>>>(out, r, mask, T, K, paper, vec1);
    else if (nc == 4)
        rloo_process_1p_kernel<4><<<G, RL_THREADS, shmem1>>>(out, r, mask, T, K, paper, vec1);
    else if (nc == 8)
        rloo_process_1p_kernel<8><<<G, RL_THREADS, shmem1>>>(out, r, mask, T, K, paper, vec1);
    else
        rloo_process_kernel<<<adv_group_blocks((int)G), RL_THREADS, shmem>>>(
            out, r, mask, (int)G, T, K, paper, rl_vec_ok((size_t)T, out, r, mask, NULL));
    LAUNCH_CHECK();
}

static __global__ void grpo_outcome_kernel(float *out, const float *o, int G, int K, float eps) {
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= G) return;
    const float *x = o + (size_t)g * K;
    double mean = 0.0, ss = 0.0;
    for (int j = 0; j < K; j++) mean += x[j];
    mean /= K;
    for (int j = 0; j < K; j++) ss += (x[j] - mean) * (x[j] - mean);
    double sd = K > 1 ? sqrt(ss / (K - 1)) : 0.0;
    for (int j = 0; j < K; j++) out[(size_t)g * K + j] = (float)((x[j] - mean) / (sd + eps));
}

extern "C" void grpo_outcome_cuda(float *out, const float *o, int N, int K, float eps) {
    assert(K >= 1 && N % K == 0);
    if (N <= 0) return;
    grpo_outcome_kernel<<<dr_blocks(N / K, 128), 128>>>(out, o, N / K, K, eps);
    LAUNCH_CHECK();
}

/* Blocks stride over the groups; a group's rows are one contiguous (K T) span, read three
 * times (sum, squares, output) RL_VEC consecutive elements per thread at a time. */
static __global__ void __launch_bounds__(RL_THREADS)
    grpo_process_kernel(float *out, const float *r, const float *mask, int G, size_t n, float eps,
                        int vec) {
    for (int g = blockIdx.x; g < G; g += gridDim.x) {
        const size_t o = (size_t)g * n;
        const float *x = r + o, *m = mask + o;
        double acc[2] = {0.0, 0.0};
        for (size_t t0 = threadIdx.x * RL_VEC; t0 < n; t0 += RL_CHUNK) {
            float xv[RL_VEC], mv[RL_VEC];
            rl_load(mv, m, t0, n, vec);
            rl_load(xv, x, t0, n, vec);
#pragma unroll
            for (int k = 0; k < RL_VEC; k++)
                if (mv[k] > 0) {
                    acc[0] += xv[k];
                    acc[1] += 1.0;
                }
        }
        rl_block_sum<2>(acc);
        const double cnt = acc[1], mean = cnt > 0 ? acc[0] / cnt : 0.0;
        double ss[1] = {0.0};
        for (size_t t0 = threadIdx.x * RL_VEC; t0 < n; t0 += RL_CHUNK) {
            float xv[RL_VEC], mv[RL_VEC];
            rl_load(mv, m, t0, n, vec);
            rl_load(xv, x, t0, n, vec);
#pragma unroll
            for (int k = 0; k < RL_VEC; k++)
                if (mv[k] > 0) ss[0] += (xv[k] - mean) * (xv[k] - mean);
        }
        rl_block_sum<1>(ss);
        const double sd = cnt > 1 ? sqrt(ss[0] / (cnt - 1)) : 0.0;
        for (size_t t0 = threadIdx.x * RL_VEC; t0 < n; t0 += RL_CHUNK) {
            float xv[RL_VEC], mv[RL_VEC], y[RL_VEC];
            rl_load(mv, m, t0, n, vec);
            rl_load(xv, x, t0, n, vec);
#pragma unroll
            for (int k = 0; k < RL_VEC; k++)
                y[k] = mv[k] > 0 ? (float)((xv[k] - mean) / (sd + eps)) : 0.0f;
            rl_store(out + o, y, t0, n, vec);
        }
    }
}

extern "C" void grpo_process_cuda(float *out, const float *r, const float *mask, int N, int T,
                                  int K, float eps) {
    assert(K >= 1 && N % K == 0);
    if (N <= 0 || T <= 0) return;
    /* groups of up to ADV_MAX_NC chunks in one pass, larger ones by the strided kernel */
    const unsigned G = (unsigned)(N / K);
    const size_t n = (size_t)K * T;
    const int vec = rl_vec_ok(n, out, r, mask, NULL), nc = adv_one_pass_nc(n);
    if (nc == 1)
        grpo_process_1p_kernel<1><<<G, RL_THREADS>>>(out, r, mask, (int)n, eps, vec);
    else if (nc == 2)
        grpo_process_1p_kernel<2><<<G, RL_THREADS>>>(out, r, mask, (int)n, eps, vec);
    else if (nc == 4)
        grpo_process_1p_kernel<4><<<G, RL_THREADS>>>(out, r, mask, (int)n, eps, vec);
    else if (nc == 8)
        grpo_process_1p_kernel<8><<<G, RL_THREADS>>>(out, r, mask, (int)n, eps, vec);
    else
        grpo_process_kernel<<<adv_group_blocks((int)G), RL_THREADS>>>(out, r, mask, (int)G, n, eps,
                                                                      vec);
    LAUNCH_CHECK();
}

/* One block per row (the row's last valid token is a block reduction). The float products
 * are rounded apart, as on the CPU, rather than fused. */
static __global__ void __launch_bounds__(RL_THREADS)
    combine_rewards_kernel(float *c, const float *proc, const float *out, const float *mask, int T,
                           float w_proc, float w_out) {
    const int i = blockIdx.x;
    const size_t o = (size_t)i * T;
    const int last = rl_last_valid(mask + o, T);
    for (int t = threadIdx.x; t < T; t += RL_THREADS) {
        float v = 0.0f;
        if (mask[o + t] > 0) {
            if (proc) v = __fmul_rn(w_proc, proc[o + t]);
            if (out && t == last) v = __fadd_rn(v, __fmul_rn(w_out, out[i]));
        }
        c[o + t] = v;
    }
}

extern "C" void combine_rewards_cuda(float *c, const float *proc, const float *out,
                                     const float *mask, int N, int T, float w_proc, float w_out) {
    if (N <= 0 || T <= 0) return;
    combine_rewards_kernel<<<N, RL_THREADS>>>(c, proc, out, mask, T, w_proc, w_out);
    LAUNCH_CHECK();
}

/* G_t = gamma G_{t+1} + [valid] c_t (masked positions still multiply by gamma). Chunks are
 * walked from the row's end; each thread composes the maps g -> gamma g + x_t of its RL_VEC
 * positions, a reversed block scan of those gives the G entering each thread, and the thread
 * then runs the CPU's recurrence over its positions, rounded step by step as there. */
static __global__ void __launch_bounds__(RL_THREADS)
    discounted_returns_kernel(float *G, const float *c, const float *mask, int T, float gamma,
                              int vec) {
    const size_t o = (size_t)blockIdx.x * T;
    const double gm = gamma;
    RlAff carry = {1.0, 0.0};
    for (int cb = (T - 1) / RL_CHUNK * RL_CHUNK; cb >= 0; cb -= RL_CHUNK) {
        const int t0 = cb + threadIdx.x * RL_VEC;
        float m[RL_VEC], cv[RL_VEC], y[RL_VEC];
        rl_load(m, mask + o, t0, T, vec);
        rl_load(cv, c + o, t0, T, vec);
        RlAff loc = {1.0, 0.0};
#pragma unroll
        for (int k = RL_VEC - 1; k >= 0; k--)
            if (t0 + k < T) loc = rl_combine(loc, RlAff{gm, m[k] > 0 ? (double)cv[k] : 0.0});
        RlAff incl, excl;
        rl_block_scan_dir<true>(loc, incl, excl, carry);
        double g = excl.b;
#pragma unroll
        for (int k = RL_VEC - 1; k >= 0; k--) {
            const int valid = m[k] > 0;
            if (t0 + k < T) g = __dadd_rn(__dmul_rn(gm, g), valid ? (double)cv[k] : 0.0);
            y[k] = valid ? (float)g : 0.0f;
        }
        rl_store(G + o, y, t0, T, vec);
    }
}

extern "C" void discounted_returns_cuda(float *G, const float *c, const float *mask, int N, int T,
                                        float gamma) {
    if (N <= 0 || T <= 0) return;
    const int vec = rl_vec_ok((size_t)T, G, c, mask, NULL);
    discounted_returns_kernel<<<N, RL_THREADS>>>(G, c, mask, T, gamma, vec);
    LAUNCH_CHECK();
}

/* part[(0, 1, 2) N + i] = masked sum, sum of squares and count of row i. */
static __global__ void __launch_bounds__(RL_THREADS)
    masked_moments_kernel(double *part, const float *x, const float *mask, int N, int T, int vec) {
    const size_t o = (size_t)blockIdx.x * T;
    double acc[3] = {0.0, 0.0, 0.0};
    for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
        float xv[RL_VEC], m[RL_VEC];
        rl_load(m, mask + o, t0, T, vec);
        rl_load(xv, x + o, t0, T, vec);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (m[k] > 0) {
                double v = xv[k];
                acc[0] += v;
                acc[1] += v * v;
                acc[2] += 1.0;
            }
    }
    rl_block_sum<3>(acc);
    if (threadIdx.x == 0)
        for (int k = 0; k < 3; k++) part[(size_t)k * N + blockIdx.x] = acc[k];
}

extern "C" void masked_moments_cuda(double *sum, double *sumsq, double *count, const float *x,
                                    const float *mask, int N, int T) {
    if (N <= 0) return;
    double *part = rl_partials(N, 3), tot[3];
    const int vec = rl_vec_ok((size_t)T, x, mask, NULL, NULL);
    masked_moments_kernel<<<N, RL_THREADS>>>(part, x, mask, N, T, vec);
    LAUNCH_CHECK();
    rl_finish(tot, part, N, 3, 0);
    *sum += tot[0];
    *sumsq += tot[1];
    *count += tot[2];
}

/* RL_VEC consecutive elements per thread, float4 where allowed: one pass over x and the mask,
 * many loads in flight per thread. */
static __global__ void __launch_bounds__(RL_THREADS)
    whiten_kernel(float *out, const float *x, const float *mask, size_t n, double mean, double inv,
                  int vec) {
    for (size_t e = ((size_t)blockIdx.x * RL_THREADS + threadIdx.x) * RL_VEC; e < n;
         e += (size_t)gridDim.x * RL_CHUNK) {
        float xv[RL_VEC], m[RL_VEC], y[RL_VEC];
        rl_load(m, mask, e, n, vec);
        rl_load(xv, x, e, n, vec);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) y[k] = m[k] > 0 ? (float)((xv[k] - mean) * inv) : 0.0f;
        rl_store(out, y, e, n, vec);
    }
}

extern "C" void whiten_cuda(float *out, const float *x, const float *mask, int N, int T, double sum,
                            double sumsq, double count) {
    /* the same host arithmetic as whiten_cpu, so mean and inv are bit-identical */
    double mean = count > 0 ? sum / count : 0.0;
    double var = count > 1 ? (sumsq - sum * mean) / (count - 1) : 0.0;
    if (var < 0) var = 0.0;
    double inv = 1.0 / sqrt(var + 1e-8);
    size_t n = (size_t)N * T;
    if (n == 0) return;
    const int vec = rl_vec_ok(n, out, x, mask, NULL);
    whiten_kernel<<<dr_blocks((long)((n + RL_VEC - 1) / RL_VEC), RL_THREADS), RL_THREADS>>>(
        out, x, mask, n, mean, inv, vec);
    LAUNCH_CHECK();
}

/* GAE, backward over the row in chunks, RL_VEC positions per thread: a reversed block scan
 * for V at the next valid position gives each thread the v_next entering it, from which it
 * takes its deltas; a reversed block scan of the composed maps gae -> gamma lam gae + delta
 * (identity on masked positions) gives the gae entering it, and the thread then runs the
 * CPU's recurrence over its positions, rounded step by step as there. */
static __global__ void __launch_bounds__(RL_THREADS)
    gae_kernel(float *A, float *R, const float *c, const float *V, const float *mask, int T,
               float gamma, float lam, int vec) {
    const size_t o = (size_t)blockIdx.x * T;
    const double gm = gamma, gl = (double)gamma * lam;
    RlLast vcarry = {0.0, 0};
    RlAff acarry = {1.0, 0.0};
    for (int cb = (T - 1) / RL_CHUNK * RL_CHUNK; cb >= 0; cb -= RL_CHUNK) {
        const int t0 = cb + threadIdx.x * RL_VEC;
        float m[RL_VEC], cv[RL_VEC], vv[RL_VEC];
        rl_load(m, mask + o, t0, T, vec);
        rl_load(cv, c + o, t0, T, vec);
        rl_load(vv, V + o, t0, T, vec);
        RlLast lv = {0.0, 0}; /* the thread's last valid V in scan order: its lowest t */
#pragma unroll
        for (int k = RL_VEC - 1; k >= 0; k--)
            if (m[k] > 0) lv = RlLast{(double)vv[k], 1};
        RlLast li, le;
        rl_block_scan_dir<true>(lv, li, le, vcarry);
        double v_next = le.has ? le.v : 0.0, delta[RL_VEC];
        RlAff loc = {1.0, 0.0};
#pragma unroll
        for (int k = RL_VEC - 1; k >= 0; k--) {
            delta[k] = 0.0;
            if (m[k] > 0) {
                const double v = vv[k];
                delta[k] = __dsub_rn(__dadd_rn((double)cv[k], __dmul_rn(gm, v_next)), v);
                v_next = v;
                loc = rl_combine(loc, RlAff{gl, delta[k]});
            }
        }
        RlAff ai, ae;
        rl_block_scan_dir<true>(loc, ai, ae, acarry);
        double g = ae.b;
        float a[RL_VEC], rr[RL_VEC];
#pragma unroll
        for (int k = RL_VEC - 1; k >= 0; k--) {
            a[k] = rr[k] = 0.0f;
            if (m[k] > 0) {
                g = __dadd_rn(delta[k], __dmul_rn(gl, g));
                a[k] = (float)g;
                rr[k] = (float)(g + (double)vv[k]);
            }
        }
        rl_store(A + o, a, t0, T, vec);
        rl_store(R + o, rr, t0, T, vec);
    }
}

extern "C" void gae_cuda(float *A, float *R, const float *c, const float *V, const float *mask,
                         int N, int T, float gamma, float lam) {
    if (N <= 0 || T <= 0) return;
    const int vec =
        rl_vec_ok((size_t)T, A, R, c, V) && rl_vec_ok((size_t)T, mask, NULL, NULL, NULL);
    gae_kernel<<<N, RL_THREADS>>>(A, R, c, V, mask, T, gamma, lam, vec);
    LAUNCH_CHECK();
}
