/* CUDA implicit process rewards (PRIME.md section 3) and the PRM's outcome loss (section 4),
 * the twins of reward_cpu.c. One block of RL_THREADS threads per row walks the row in
 * chunks: step / whole sums are a segmented block scan, the delta transform a backward scan
 * for "the next slot's value", the suffix-sum maximum a backward sum scan. Cross-row sums
 * go through per-row double partials and one fixed-order reduction block (rl_cuda.cuh). */
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"
#include "rl_cuda.cuh"

/* Whether position t of a row is a slot the transforms act on (reward_is_slot of the CPU). */
__device__ __forceinline__ int rw_is_slot(int gran, const float *m, const int *tg, int t, int last,
                                          int delim) {
    if (gran == REWARD_TOKEN) return m[t] > 0;
    if (gran == REWARD_STEP) return m[t] > 0 && (t == last || tg[t] == delim);
    return t == last;
}

/* r = beta (lp - lr) m in double; masked log-probs may be garbage and are never read. */
__device__ __forceinline__ double rw_value(const float *lp, const float *lr, const float *m, int t,
                                           float beta) {
    return m[t] > 0 ? (double)beta * ((double)lp[t] - lr[t]) * m[t] : 0.0;
}

/* Step / whole: each slot gets the sum of the values since the previous slot. */
__device__ void rw_segment_sums(float *r, const float *lp, const float *lr, const float *m,
                                const int *tg, int T, float beta, int gran, int delim, int last) {
    RlSeg carry = {0.0, 0};
    for (int base = 0; base < T; base += RL_THREADS) {
        int t = base + threadIdx.x, slot = 0;
        double v = 0.0;
        if (t < T) {
            v = rw_value(lp, lr, m, t, beta);
            slot = rw_is_slot(gran, m, tg, t, last, delim);
        }
        RlSeg incl, excl;
        rl_block_scan(RlSeg{slot ? 0.0 : v, slot}, incl, excl, carry);
        if (t < T) r[t] = slot ? (float)(excl.s + v) : 0.0f;
    }
}

/* Delta: rho_k -= rho_{next slot}, reading the untransformed next value from the scan. Each
 * thread reads and writes only its own position, so no position is read after it changed. */
__device__ void rw_delta(float *r, const float *m, const int *tg, int T, int gran, int delim,
                         int last) {
    RlLast carry = {0.0, 0};
    for (int base = 0; base < T; base += RL_THREADS) {
        int t = T - 1 - base - (int)threadIdx.x, slot = 0;
        float cur = 0.0f;
        if (t >= 0) {
            slot = rw_is_slot(gran, m, tg, t, last, delim);
            if (slot) cur = r[t];
        }
        RlLast incl, excl;
        rl_block_scan(RlLast{(double)cur, slot}, incl, excl, carry);
        if (t >= 0 && slot && excl.has) r[t] = cur - (float)excl.v;
    }
}

static __global__ void __launch_bounds__(RL_THREADS)
    prime_rewards_kernel(float *r, const float *logp_prm, const float *logp_ref, const float *mask,
                         const int *targets, int T, float beta, int gran, int delim, int xform,
                         float eta) {
    size_t o = (size_t)blockIdx.x * T;
    const float *m = mask + o, *lp = logp_prm + o, *lr = logp_ref + o;
    const int *tg = targets ? targets + o : NULL;
    float *ri = r + o;
    int last = rl_last_valid(m, T);
    if (gran == REWARD_TOKEN) {
        for (int t = threadIdx.x; t < T; t += RL_THREADS)
            ri[t] = (float)rw_value(lp, lr, m, t, beta);
    } else {
        rw_segment_sums(ri, lp, lr, m, tg, T, beta, gran, delim, last);
    }
    if (last < 0 || xform == REWARD_XFORM_NONE) return; /* the same on the whole block */
    __syncthreads(); /* the transforms read positions other threads wrote */
    if (xform == REWARD_XFORM_CLIP) {
        for (int t = threadIdx.x; t < T; t += RL_THREADS)
            if (rw_is_slot(gran, m, tg, t, last, delim)) {
                float v = ri[t] - eta;
                ri[t] = v < 0.0f ? v : 0.0f;
            }
    } else {
        rw_delta(ri, m, tg, T, gran, delim, last);
    }
}

extern "C" void prime_token_rewards_cuda(float *r, const float *logp_prm, const float *logp_ref,
                                         const float *mask, const int *targets, int N, int T,
                                         float beta, int granularity, int step_delim, int transform,
                                         float clip_eta) {
    if (N <= 0 || T <= 0) return;
    prime_rewards_kernel<<<N, RL_THREADS>>>(r, logp_prm, logp_ref, mask, targets, T, beta,
                                            granularity, step_delim, transform, clip_eta);
    LAUNCH_CHECK();
}

/* part[i] = max over t of |sum_{s >= t} r m| of row i. */
static __global__ void __launch_bounds__(RL_THREADS)
    suffix_absmax_kernel(double *part, const float *r, const float *mask, int T) {
    size_t o = (size_t)blockIdx.x * T;
    const float *ri = r + o, *m = mask + o;
    RlSeg carry = {0.0, 0};
    double best = 0.0;
    for (int base = 0; base < T; base += RL_THREADS) {
        int t = T - 1 - base - (int)threadIdx.x;
        double x = t >= 0 && m[t] > 0 ? (double)ri[t] * m[t] : 0.0;
        RlSeg incl, excl;
        rl_block_scan(RlSeg{x, 0}, incl, excl, carry);
        if (t >= 0) best = fmax(best, fabs(incl.s));
    }
    best = rl_block_max(best);
    if (threadIdx.x == 0) part[blockIdx.x] = best;
}

extern "C" float reward_suffix_absmax_cuda(const float *r, const float *mask, int N, int T) {
    if (N <= 0 || T <= 0) return 0.0f;
    double *part = rl_partials(N, 1), best;
    suffix_absmax_kernel<<<N, RL_THREADS>>>(part, r, mask, T);
    LAUNCH_CHECK();
    rl_finish(&best, part, N, 1, 1);
    return (float)best;
}

__device__ __forceinline__ double rw_softplus(double x) {
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

__device__ __forceinline__ double rw_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* One row: score, its BCE term into part, and the gradient on its valid tokens. */
static __global__ void __launch_bounds__(RL_THREADS)
    prm_loss_kernel(double *part, float *dlogp, float *score, const float *logp_prm,
                    const float *logp_ref, const float *mask, const float *outcome, int T,
                    float beta, double denom) {
    const int i = blockIdx.x;
    size_t o = (size_t)i * T;
    const float *m = mask + o, *lp = logp_prm + o, *lr = logp_ref + o;
    double q[1] = {0.0};
    for (int t = threadIdx.x; t < T; t += RL_THREADS)
        if (m[t] > 0) q[0] += ((double)lp[t] - lr[t]) * m[t];
    rl_block_sum<1>(q);
    double s = (double)beta * q[0], y = outcome[i];
    double g = (double)beta * (rw_sigmoid(s) - y) / denom;
    if (threadIdx.x == 0) {
        score[i] = (float)s;
        part[i] = rw_softplus(s) - y * s;
    }
    float *d = dlogp + o;
    for (int t = threadIdx.x; t < T; t += RL_THREADS) d[t] = m[t] > 0 ? (float)(g * m[t]) : 0.0f;
}

extern "C" double prm_loss_cuda(float *dlogp_prm, float *score, const float *logp_prm,
                                const float *logp_ref, const float *mask, const float *outcome,
                                int N, int T, float beta, double denom) {
    if (N <= 0) return 0.0;
    double *part = rl_partials(N, 1), total;
    prm_loss_kernel<<<N, RL_THREADS>>>(part, dlogp_prm, score, logp_prm, logp_ref, mask, outcome, T,
                                       beta, denom);
    LAUNCH_CHECK();
    rl_finish(&total, part, N, 1, 0);
    return total / denom;
}
