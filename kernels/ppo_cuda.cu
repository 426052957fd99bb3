/* CUDA PPO policy loss (clipped surrogate, dual clip, KL to the reference, entropy bonus) with
 * its gradient, and the critic's clipped value loss: the twins of ppo_cpu.c. One block of
 * RL_THREADS per row does the per-token work in double, exactly as the CPU does, and leaves
 * the row's weighted sums as double partials; one fixed-order block then adds the rows, so
 * the loss and the stats are bit-identical from run to run. */
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

static __global__ void __launch_bounds__(RL_THREADS)
    ppo_loss_kernel(double *part, float *dlogp, float *dent, const float *logp,
                    const float *logp_old, const float *logp_ref, const float *entropy,
                    const float *adv, const float *mask, int N, int T, PpoParams p,
                    double token_denom, double seq_denom) {
    const size_t o = (size_t)blockIdx.x * T;
    const float *m = mask + o;
    double n[1] = {0.0};
    for (int t = threadIdx.x; t < T; t += RL_THREADS)
        if (m[t] > 0) n[0] += m[t];
    rl_block_sum<1>(n);
    const double scale = p.agg == PPO_AGG_SEQ_MEAN_TOKEN_MEAN
                             ? (n[0] > 0 ? 1.0 / (n[0] * seq_denom) : 0.0)
                             : 1.0 / token_denom;
    double acc[PP_NC] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int t = threadIdx.x; t < T; t += RL_THREADS) {
        const size_t k = o + t;
        float g = 0.0f, ge = 0.0f;
        if (m[t] > 0) {
            const double w = m[t] * scale;
            g = (float)ppo_token(acc, p, m[t], w, adv[k], logp[k], logp_old[k],
                                 logp_ref ? logp_ref + k : NULL, entropy ? entropy + k : NULL);
            ge = (float)(-(double)p.ent_coef * w);
        }
        dlogp[k] = g;
        if (dent) dent[k] = ge;
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
        ppo_loss_kernel<<<N, RL_THREADS>>>(part, dlogp, dent, logp, logp_old, logp_ref, entropy,
                                           adv, mask, N, T, p, token_denom, seq_denom);
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

/* part[(0, 1, 2) N + i] = row i's sum of m 0.5 err^2, clipped count and valid count. */
static __global__ void __launch_bounds__(RL_THREADS)
    value_loss_kernel(double *part, float *dV, const float *V, const float *V_old, const float *R,
                      const float *mask, int N, int T, float eps, double denom) {
    const size_t o = (size_t)blockIdx.x * T;
    double acc[3] = {0.0, 0.0, 0.0};
    for (int t = threadIdx.x; t < T; t += RL_THREADS) {
        const size_t k = o + t;
        const double m = mask[k];
        if (!(m > 0)) {
            dV[k] = 0.0f;
            continue;
        }
        const double v = V[k], vo = V_old[k], ret = R[k];
        const double vc = fmin(fmax(v, vo - eps), vo + eps);
        const double e1 = (v - ret) * (v - ret), e2 = (vc - ret) * (vc - ret);
        const int cl = e2 > e1;
        acc[0] += m * 0.5 * (cl ? e2 : e1);
        acc[1] += m * cl;
        acc[2] += m;
        dV[k] = (float)(cl ? 0.0 : m * (v - ret) / denom);
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
        value_loss_kernel<<<N, RL_THREADS>>>(part, dV, V, V_old, R, mask, N, T, eps, denom);
        LAUNCH_CHECK();
        rl_finish(tot, part, N, 3, 0);
    }
    if (clip_frac) *clip_frac = tot[2] > 0 ? tot[1] / tot[2] : 0.0;
    return tot[0] / denom;
}
