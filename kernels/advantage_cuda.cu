/* CUDA advantage estimators (PRIME.md section 5), the twins of advantage_cpu.c. Outcome
 * baselines (K values per group) take one thread per group in the CPU's order; process
 * baselines take a few resident blocks that stride over the groups, so that a group's second
 * and third reads come from L2; per-row work (combined rewards, discounted returns, GAE) one
 * block per row, each thread RL_VEC consecutive positions of a chunk, with the backward
 * recurrences split into a block scan of affine maps (rl_cuda.cuh) across threads and the
 * CPU's own step-by-step recurrence within a thread; masked moments reduce per-row double
 * partials in fixed order. */
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
    const int vec = rl_vec_ok((size_t)T, out, r, mask, NULL);
    rloo_process_kernel<<<adv_group_blocks(N / K), RL_THREADS, shmem>>>(out, r, mask, N / K, T, K,
                                                                        paper, vec);
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
    const size_t n = (size_t)K * T;
    const int vec = rl_vec_ok(n, out, r, mask, NULL);
    grpo_process_kernel<<<adv_group_blocks(N / K), RL_THREADS>>>(out, r, mask, N / K, n, eps, vec);
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

static __global__ void whiten_kernel(float *out, const float *x, const float *mask, size_t n,
                                     double mean, double inv) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n;
         k += (size_t)gridDim.x * blockDim.x)
        out[k] = mask[k] > 0 ? (float)((x[k] - mean) * inv) : 0.0f;
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
    whiten_kernel<<<dr_blocks((long)n, 256), 256>>>(out, x, mask, n, mean, inv);
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
