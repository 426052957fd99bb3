/* CUDA advantage estimators (PRIME.md section 5), the twins of advantage_cpu.c. Outcome
 * baselines (K values per group) take one thread per group in the CPU's order; process
 * baselines take one block per group; per-row work (combined rewards, discounted returns,
 * GAE) one block per row, with the backward recurrences evaluated as block scans of affine
 * maps (rl_cuda.cuh); masked moments reduce per-row double partials in fixed order. */
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

/* One block per group: row means into shared memory (K doubles), then the baseline. */
static __global__ void __launch_bounds__(RL_THREADS)
    rloo_process_kernel(float *out, const float *r, const float *mask, int T, int K, int paper) {
    extern __shared__ double mu[]; /* (K) */
    const size_t g0 = (size_t)blockIdx.x * K * T;
    for (int j = 0; j < K; j++) {
        const float *rj = r + g0 + (size_t)j * T, *mj = mask + g0 + (size_t)j * T;
        double acc[2] = {0.0, 0.0};
        for (int t = threadIdx.x; t < T; t += RL_THREADS)
            if (mj[t] > 0) {
                acc[0] += rj[t];
                acc[1] += 1.0;
            }
        rl_block_sum<2>(acc);
        if (threadIdx.x == 0) mu[j] = acc[1] > 0 ? acc[0] / acc[1] : 0.0;
    }
    __syncthreads();
    double mu_sum = 0.0;
    for (int j = 0; j < K; j++) mu_sum += mu[j];
    const double scale = paper ? 1.0 : (double)K / (K - 1);
    for (int j = 0; j < K; j++) {
        const double base = paper ? (mu_sum - mu[j]) / (K - 1) : mu_sum / (K - 1);
        const size_t o = g0 + (size_t)j * T;
        for (int t = threadIdx.x; t < T; t += RL_THREADS)
            out[o + t] = mask[o + t] > 0 ? (float)(__dmul_rn(r[o + t], scale) - base) : 0.0f;
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
    rloo_process_kernel<<<N / K, RL_THREADS, shmem>>>(out, r, mask, T, K, paper);
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

/* One block per group; the group's rows are one contiguous (K T) span. */
static __global__ void __launch_bounds__(RL_THREADS)
    grpo_process_kernel(float *out, const float *r, const float *mask, size_t n, float eps) {
    const size_t o = (size_t)blockIdx.x * n;
    const float *x = r + o, *m = mask + o;
    double acc[2] = {0.0, 0.0};
    for (size_t k = threadIdx.x; k < n; k += RL_THREADS)
        if (m[k] > 0) {
            acc[0] += x[k];
            acc[1] += 1.0;
        }
    rl_block_sum<2>(acc);
    const double cnt = acc[1], mean = cnt > 0 ? acc[0] / cnt : 0.0;
    double ss[1] = {0.0};
    for (size_t k = threadIdx.x; k < n; k += RL_THREADS)
        if (m[k] > 0) ss[0] += (x[k] - mean) * (x[k] - mean);
    rl_block_sum<1>(ss);
    const double sd = cnt > 1 ? sqrt(ss[0] / (cnt - 1)) : 0.0;
    for (size_t k = threadIdx.x; k < n; k += RL_THREADS)
        out[o + k] = m[k] > 0 ? (float)((x[k] - mean) / (sd + eps)) : 0.0f;
}

extern "C" void grpo_process_cuda(float *out, const float *r, const float *mask, int N, int T,
                                  int K, float eps) {
    assert(K >= 1 && N % K == 0);
    if (N <= 0 || T <= 0) return;
    grpo_process_kernel<<<N / K, RL_THREADS>>>(out, r, mask, (size_t)K * T, eps);
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

/* G_t = gamma G_{t+1} + [valid] c_t, as a backward scan of the maps g -> gamma g + x_t
 * (masked positions still multiply by gamma). */
static __global__ void __launch_bounds__(RL_THREADS)
    discounted_returns_kernel(float *G, const float *c, const float *mask, int T, float gamma) {
    const size_t o = (size_t)blockIdx.x * T;
    RlAff carry = {1.0, 0.0};
    for (int base = 0; base < T; base += RL_THREADS) {
        const int t = T - 1 - base - (int)threadIdx.x;
        const int valid = t >= 0 && mask[o + t] > 0;
        RlAff x = {1.0, 0.0};
        if (t >= 0) x = RlAff{(double)gamma, valid ? (double)c[o + t] : 0.0};
        RlAff incl, excl;
        rl_block_scan(x, incl, excl, carry);
        if (t >= 0) G[o + t] = valid ? (float)incl.b : 0.0f;
    }
}

extern "C" void discounted_returns_cuda(float *G, const float *c, const float *mask, int N, int T,
                                        float gamma) {
    if (N <= 0 || T <= 0) return;
    discounted_returns_kernel<<<N, RL_THREADS>>>(G, c, mask, T, gamma);
    LAUNCH_CHECK();
}

/* part[(0, 1, 2) N + i] = masked sum, sum of squares and count of row i. */
static __global__ void __launch_bounds__(RL_THREADS)
    masked_moments_kernel(double *part, const float *x, const float *mask, int N, int T) {
    const size_t o = (size_t)blockIdx.x * T;
    double acc[3] = {0.0, 0.0, 0.0};
    for (int t = threadIdx.x; t < T; t += RL_THREADS)
        if (mask[o + t] > 0) {
            double v = x[o + t];
            acc[0] += v;
            acc[1] += v * v;
            acc[2] += 1.0;
        }
    rl_block_sum<3>(acc);
    if (threadIdx.x == 0)
        for (int k = 0; k < 3; k++) part[(size_t)k * N + blockIdx.x] = acc[k];
}

extern "C" void masked_moments_cuda(double *sum, double *sumsq, double *count, const float *x,
                                    const float *mask, int N, int T) {
    if (N <= 0) return;
    double *part = rl_partials(N, 3), tot[3];
    masked_moments_kernel<<<N, RL_THREADS>>>(part, x, mask, N, T);
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

/* GAE, backward over the row: a scan for V at the next valid position (v_next), then a scan
 * of the maps gae -> gamma lam gae + delta_t on valid positions (identity on masked ones). */
static __global__ void __launch_bounds__(RL_THREADS)
    gae_kernel(float *A, float *R, const float *c, const float *V, const float *mask, int T,
               float gamma, float lam) {
    const size_t o = (size_t)blockIdx.x * T;
    RlLast vcarry = {0.0, 0};
    RlAff acarry = {1.0, 0.0};
    for (int base = 0; base < T; base += RL_THREADS) {
        const int t = T - 1 - base - (int)threadIdx.x;
        const int valid = t >= 0 && mask[o + t] > 0;
        const double v = valid ? (double)V[o + t] : 0.0;
        RlLast li, le;
        rl_block_scan(RlLast{v, valid}, li, le, vcarry);
        const double v_next = le.has ? le.v : 0.0;
        RlAff x = {1.0, 0.0};
        if (valid) x = RlAff{(double)gamma * lam, c[o + t] + gamma * v_next - v};
        RlAff ai, ae;
        rl_block_scan(x, ai, ae, acarry);
        if (t >= 0) {
            A[o + t] = valid ? (float)ai.b : 0.0f;
            R[o + t] = valid ? (float)(ai.b + v) : 0.0f;
        }
    }
}

extern "C" void gae_cuda(float *A, float *R, const float *c, const float *V, const float *mask,
                         int N, int T, float gamma, float lam) {
    if (N <= 0 || T <= 0) return;
    gae_kernel<<<N, RL_THREADS>>>(A, R, c, V, mask, T, gamma, lam);
    LAUNCH_CHECK();
}
