/* CUDA implicit process rewards (PRIME.md section 3) and the PRM's outcome loss (section 4),
 * the twins of reward_cpu.c. Step / whole rewards on rows up to RW_SEG_MAX_T take one read of
 * the inputs (prime_seg_rewards_kernel, RL_VEC positions per thread, the row's slot values
 * parked in shared memory between a forward and a backward pass). Otherwise one block of
 * RL_THREADS threads per row walks the row in chunks of RL_THREADS: step / whole sums are a
 * segmented block scan, the delta transform a backward scan for "the next slot's value", the
 * suffix-sum maximum a backward sum scan. Cross-row sums
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

/* Rows up to this long take the one-read kernel below: its per-row shared memory (RL_SEG_BYTES
 * per padded position) stays under the default 48 KB. */
enum { RW_SEG_MAX_T = 4 * RL_CHUNK, RL_SEG_BYTES = sizeof(float) + 1 };

/* Step / whole granularity in one read of the inputs. Pass 1 walks the row forward, RL_VEC
 * positions per thread: a segmented block scan gives the sum since the previous delimiter
 * slot entering each thread, the thread runs the sums over its positions and parks each
 * slot's value and flag in shared memory, in a thread-major layout (only the owning thread
 * reads them back, without bank conflicts). The row's last valid position is only known at
 * the end; the sum left over then is exactly its value (nothing valid follows it). Pass 2
 * walks backward and writes each position once, applying the transform; delta takes the
 * next slot's value from a reversed scan. */
static __global__ void __launch_bounds__(RL_THREADS)
    prime_seg_rewards_kernel(float *r, const float *logp_prm, const float *logp_ref,
                             const float *mask, const int *targets, int T, float beta, int gran,
                             int delim, int xform, float eta, int vec) {
    extern __shared__ float rho_sm[]; /* (nch RL_CHUNK) values, then as many slot flags */
    const int nch = (T + RL_CHUNK - 1) / RL_CHUNK;
    unsigned char *slot_sm = (unsigned char *)(rho_sm + (size_t)nch * RL_CHUNK);
    const size_t o = (size_t)blockIdx.x * T;
    const float *m = mask + o, *lp = logp_prm + o, *lr = logp_ref + o;
    const int *tg = targets ? targets + o : NULL;
    RlSeg carry = {0.0, 0};
    int last = -1;
    for (int ch = 0; ch < nch; ch++) {
        const int t0 = ch * RL_CHUNK + threadIdx.x * RL_VEC;
        float mv[RL_VEC], a[RL_VEC], b[RL_VEC];
        int tv[RL_VEC] = {0};
        rl_load(mv, m, t0, T, vec);
        rl_load(a, lp, t0, T, vec);
        rl_load(b, lr, t0, T, vec);
        if (gran == REWARD_STEP) rl_load(tv, tg, t0, T, vec);
        double v[RL_VEC];
        int sl[RL_VEC];
        RlSeg loc = {0.0, 0};
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            const int valid = mv[k] > 0;
            v[k] = valid ? (double)beta * ((double)a[k] - b[k]) * mv[k] : 0.0;
            sl[k] = valid && gran == REWARD_STEP && tv[k] == delim;
            if (valid) last = t0 + k;
            loc = rl_combine(loc, RlSeg{sl[k] ? 0.0 : v[k], sl[k]});
        }
        RlSeg incl, excl;
        rl_block_scan_dir<false>(loc, incl, excl, carry);
        double acc = excl.s;
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            const int idx = ch * RL_CHUNK + k * RL_THREADS + threadIdx.x;
            float rho = 0.0f;
            if (sl[k]) {
                rho = (float)(acc + v[k]);
                acc = 0.0;
            } else {
                acc += v[k];
            }
            rho_sm[idx] = rho;
            slot_sm[idx] = (unsigned char)sl[k];
        }
    }
    last = rl_block_max_int(last);         /* also orders every shared write before pass 2 */
    const float rho_last = (float)carry.s; /* used only where last is not a delimiter slot */
    const int act = last >= 0 && xform != REWARD_XFORM_NONE;
    RlLast next = {0.0, 0};
    for (int ch = nch - 1; ch >= 0; ch--) {
        const int t0 = ch * RL_CHUNK + threadIdx.x * RL_VEC;
        float rho[RL_VEC];
        int sl[RL_VEC];
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            const int idx = ch * RL_CHUNK + k * RL_THREADS + threadIdx.x;
            rho[k] = rho_sm[idx];
            sl[k] = slot_sm[idx];
            if (t0 + k == last && !sl[k]) rho[k] = rho_last, sl[k] = 1;
        }
        if (act && xform == REWARD_XFORM_CLIP) {
#pragma unroll
            for (int k = 0; k < RL_VEC; k++)
                if (sl[k]) {
                    const float x = rho[k] - eta;
                    rho[k] = x < 0.0f ? x : 0.0f;
                }
        } else if (act) { /* delta: rho_k -= the next slot's untransformed value */
            RlLast loc = {0.0, 0};
#pragma unroll
            for (int k = RL_VEC - 1; k >= 0; k--)
                if (sl[k]) loc = RlLast{(double)rho[k], 1};
            RlLast incl, excl;
            rl_block_scan_dir<true>(loc, incl, excl, next);
#pragma unroll
            for (int k = RL_VEC - 1; k >= 0; k--)
                if (sl[k]) {
                    const float cur = rho[k];
                    if (excl.has) rho[k] = cur - (float)excl.v;
                    excl = RlLast{(double)cur, 1};
                }
        }
        rl_store(r + o, rho, t0, T, vec);
    }
}

extern "C" void prime_token_rewards_cuda(float *r, const float *logp_prm, const float *logp_ref,
                                         const float *mask, const int *targets, int N, int T,
                                         float beta, int granularity, int step_delim, int transform,
                                         float clip_eta) {
    if (N <= 0 || T <= 0) return;
    if (granularity != REWARD_TOKEN && T <= RW_SEG_MAX_T) {
        const int vec = rl_vec_ok((size_t)T, r, logp_prm, logp_ref, mask) &&
                        rl_vec_ok((size_t)T, targets, NULL, NULL, NULL);
        const size_t shmem = (size_t)((T + RL_CHUNK - 1) / RL_CHUNK) * RL_CHUNK * RL_SEG_BYTES;
        prime_seg_rewards_kernel<<<N, RL_THREADS, shmem>>>(r, logp_prm, logp_ref, mask, targets, T,
                                                           beta, granularity, step_delim, transform,
                                                           clip_eta, vec);
        LAUNCH_CHECK();
        return;
    }
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
