/* CUDA PPO policy loss (clipped surrogate, dual clip, KL to the reference, entropy bonus) with
 * its gradient, and the critic's clipped value loss: the twins of ppo_cpu.c. One block of
 * RL_THREADS per row; each thread takes RL_VEC consecutive positions of a chunk (float4 loads
 * and stores where every row start is 16-byte aligned, rl_cuda.cuh), does their per-token work
 * in double, exactly as the CPU does, in a fixed order, and the block leaves the row's weighted
 * sums as double partials; one fixed-order block then adds the rows, so the loss and the stats
 * are bit-identical from run to run. */
#include <math.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"
#include "rl_cuda.cuh"

/* Per-row sums, in partial-component order. */
enum { PP_LOSS, PP_PG, PP_KL, PP_ENT, PP_CLIPPED, PP_AKL, PP_N, PP_NC };

/* One valid token of ppo_row (ppo_cpu.c): adds w-weighted terms to acc, returns dloss/dlogp. */
__device__ __forceinline__ double ppo_token(double (&acc)[PP_NC], const PpoParams &p, double mt,
                                            double w, double a, double lp, double lpo,
                                            const float *lref, const float *ent) {
    const double lo = 1.0 - (double)p.clip_low, hi = 1.0 + (double)p.clip_high;
    const double d = lp - lpo, rho = exp(d);
    const double l1 = -a * rho, l2 = -a * fmin(fmax(rho, lo), hi);
    const int clipped = l2 > l1;
    double pg = clipped ? l2 : l1, dpg = clipped ? 0.0 : -a * rho;
    if (p.dual_clip > 1.0f && a < 0 && -p.dual_clip * a < pg) {
        pg = -p.dual_clip * a;
        dpg = 0.0;
    }
    double l = pg, g = dpg;
    if (lref) {
        const double x = (double)*lref - lp;
        double kl, dkl;
        if (p.kl_estimator == KL_K3) {
            kl = expm1(x) - x;
            dkl = -expm1(x);
        } else {
            kl = -x;
            dkl = 1.0;
        }
        acc[PP_KL] += w * kl;
        if (p.kl_coef != 0.0f) {
            l += p.kl_coef * kl;
            g += p.kl_coef * dkl;
        }
    }
    if (ent) {
        acc[PP_ENT] += w * *ent;
        l -= p.ent_coef * (double)*ent;
    }
    acc[PP_LOSS] += w * l;
    acc[PP_PG] += w * pg;
    acc[PP_CLIPPED] += mt * clipped;
    acc[PP_AKL] += mt * 0.5 * d * d;
    acc[PP_N] += mt;
    return w * g;
}

/* Two passes over the row, RL_VEC consecutive positions per thread: the mask total (for the
 * seq-mean-token-mean scale), then the tokens. Inputs are loaded whole but read only where
 * m > 0 (masked positions may hold anything, NaN included); dlogp and dent get 0 there. */
static __global__ void __launch_bounds__(RL_THREADS)
    ppo_loss_kernel(double *part, float *dlogp, float *dent, const float *logp,
                    const float *logp_old, const float *logp_ref, const float *entropy,
                    const float *adv, const float *mask, int N, int T, PpoParams p,
                    double token_denom, double seq_denom, int vec) {
    const size_t o = (size_t)blockIdx.x * T;
    double n[1] = {0.0};
    for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
        float m[RL_VEC];
        rl_load(m, mask + o, t0, T, vec);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++)
            if (m[k] > 0) n[0] += m[k];
    }
    rl_block_sum<1>(n);
    const double scale = p.agg == PPO_AGG_SEQ_MEAN_TOKEN_MEAN
                             ? (n[0] > 0 ? 1.0 / (n[0] * seq_denom) : 0.0)
                             : 1.0 / token_denom;
    double acc[PP_NC] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
        float m[RL_VEC], a[RL_VEC], lp[RL_VEC], lpo[RL_VEC];
        float lr[RL_VEC] = {}, en[RL_VEC] = {}; /* stay 0 (and unused) for a NULL input */
        rl_load(m, mask + o, t0, T, vec);
        rl_load(a, adv + o, t0, T, vec);
        rl_load(lp, logp + o, t0, T, vec);
        rl_load(lpo, logp_old + o, t0, T, vec);
        if (logp_ref) rl_load(lr, logp_ref + o, t0, T, vec);
        if (entropy) rl_load(en, entropy + o, t0, T, vec);
        float g[RL_VEC], ge[RL_VEC];
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            g[k] = ge[k] = 0.0f;
            if (m[k] > 0) {
                const double w = m[k] * scale;
                /* ppo_token takes the optional inputs by address; scalar copies keep lr
                 * and en in registers (addresses into the arrays put them on the stack) */
                const float r = lr[k], e = en[k];
                g[k] = (float)ppo_token(acc, p, m[k], w, a[k], lp[k], lpo[k], logp_ref ? &r : NULL,
                                        entropy ? &e : NULL);
                ge[k] = (float)(-(double)p.ent_coef * w);
            }
        }
        rl_store(dlogp + o, g, t0, T, vec);
        if (dent) rl_store(dent + o, ge, t0, T, vec);
    }
    rl_block_sum<PP_NC>(acc);
    if (threadIdx.x == 0)
        for (int c = 0; c < PP_NC; c++) part[(size_t)c * N + blockIdx.x] = acc[c];
}

extern "C" double ppo_loss_cuda(float *dlogp, float *dent, PpoStats *stats, const float *logp,
                                const float *logp_old, const float *logp_ref, const float *entropy,
                                const float *adv, const float *mask, int N, int T, PpoParams p,
                                double token_denom, double seq_denom) {
    double tot[PP_NC] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    if (N > 0) {
        double *part = rl_partials(N, PP_NC);
        const int vec = rl_vec_ok((size_t)T, dlogp, dent, logp, logp_old) &&
                        rl_vec_ok((size_t)T, logp_ref, entropy, adv, mask);
        ppo_loss_kernel<<<N, RL_THREADS>>>(part, dlogp, dent, logp, logp_old, logp_ref, entropy,
                                           adv, mask, N, T, p, token_denom, seq_denom, vec);
        LAUNCH_CHECK();
        rl_finish(tot, part, N, PP_NC, 0);
    }
    if (stats) {
        stats->pg_loss = tot[PP_PG];
        stats->kl_ref = tot[PP_KL];
        stats->entropy = tot[PP_ENT];
        stats->clip_frac = tot[PP_N] > 0 ? tot[PP_CLIPPED] / tot[PP_N] : 0.0;
        stats->approx_kl_old = tot[PP_N] > 0 ? tot[PP_AKL] / tot[PP_N] : 0.0;
        stats->valid = tot[PP_N];
    }
    return tot[PP_LOSS];
}

/* part[(0, 1, 2) N + i] = row i's sum of m 0.5 err^2, clipped count and valid count; RL_VEC
 * consecutive positions per thread, read only where m > 0, dV = 0 elsewhere. */
static __global__ void __launch_bounds__(RL_THREADS)
    value_loss_kernel(double *part, float *dV, const float *V, const float *V_old, const float *R,
                      const float *mask, int N, int T, float eps, double denom, int vec) {
    const size_t o = (size_t)blockIdx.x * T;
    double acc[3] = {0.0, 0.0, 0.0};
    for (int t0 = threadIdx.x * RL_VEC; t0 < T; t0 += RL_CHUNK) {
        float mv[RL_VEC], vv[RL_VEC], vov[RL_VEC], rv[RL_VEC], y[RL_VEC];
        rl_load(mv, mask + o, t0, T, vec);
        rl_load(vv, V + o, t0, T, vec);
        rl_load(vov, V_old + o, t0, T, vec);
        rl_load(rv, R + o, t0, T, vec);
#pragma unroll
        for (int k = 0; k < RL_VEC; k++) {
            const double m = mv[k];
            y[k] = 0.0f;
            if (!(m > 0)) continue;
            const double v = vv[k], vo = vov[k], ret = rv[k];
            const double vc = fmin(fmax(v, vo - eps), vo + eps);
            const double e1 = (v - ret) * (v - ret), e2 = (vc - ret) * (vc - ret);
            const int cl = e2 > e1;
            acc[0] += m * 0.5 * (cl ? e2 : e1);
            acc[1] += m * cl;
            acc[2] += m;
            y[k] = (float)(cl ? 0.0 : m * (v - ret) / denom);
        }
        rl_store(dV + o, y, t0, T, vec);
    }
    rl_block_sum<3>(acc);
    if (threadIdx.x == 0)
        for (int c = 0; c < 3; c++) part[(size_t)c * N + blockIdx.x] = acc[c];
}

extern "C" double value_loss_cuda(float *dV, double *clip_frac, const float *V, const float *V_old,
                                  const float *R, const float *mask, int N, int T, float eps,
                                  double denom) {
    double tot[3] = {0.0, 0.0, 0.0};
    if (N > 0) {
        double *part = rl_partials(N, 3);
        const int vec =
            rl_vec_ok((size_t)T, dV, V, V_old, R) && rl_vec_ok((size_t)T, mask, NULL, NULL, NULL);
        value_loss_kernel<<<N, RL_THREADS>>>(part, dV, V, V_old, R, mask, N, T, eps, denom, vec);
        LAUNCH_CHECK();
        rl_finish(tot, part, N, 3, 0);
    }
    if (clip_frac) *clip_frac = tot[2] > 0 ? tot[1] / tot[2] : 0.0;
    return tot[0] / denom;
}
