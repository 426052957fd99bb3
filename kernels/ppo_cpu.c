/* CPU PPO policy loss (clipped surrogate, optional dual clip, KL to the reference, entropy
 * bonus) with its gradient, and the critic's clipped value loss. Per-token work is done in
 * double; rows are split by OpenMP and their partial sums combined in row order, so the loss
 * and the stats are the same whatever the thread count. */
#include "ppo.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

enum { PPO_ROW_GROUP = 256 };

/* Per-row partial sums of the weighted loss terms and the token statistics. */
typedef struct {
    double loss, pg, kl, ent; /* sum over the row of w l, w = the aggregation weight */
    double clipped, akl, n;   /* sums of m [clip active], m 0.5 d^2, m */
} PpoRow;

static void ppo_row(PpoRow *acc, float *dlogp, float *dent, const float *logp,
                    const float *logp_old, const float *logp_ref, const float *entropy,
                    const float *adv, const float *m, int T, const PpoParams *p, double token_denom,
                    double seq_denom) {
    double n = 0.0;
    for (int t = 0; t < T; t++)
        if (m[t] > 0) n += m[t];
    double scale = p->agg == PPO_AGG_SEQ_MEAN_TOKEN_MEAN ? (n > 0 ? 1.0 / (n * seq_denom) : 0.0)
                                                         : 1.0 / token_denom;
    const double lo = 1.0 - (double)p->clip_low, hi = 1.0 + (double)p->clip_high;
    const int dual = p->dual_clip > 1.0f, use_kl = p->kl_coef != 0.0f && logp_ref;
    PpoRow r = {0};
    for (int t = 0; t < T; t++) {
        if (!(m[t] > 0)) {
            dlogp[t] = 0.0f;
            if (dent) dent[t] = 0.0f;
            continue;
        }
        double w = m[t] * scale, a = adv[t], d = (double)logp[t] - logp_old[t];
        double rho = exp(d);
        double l1 = -a * rho, l2 = -a * fmin(fmax(rho, lo), hi);
        /* l2 > l1 only where the ratio clip is active, and there the loss no longer depends
         * on logp; on a tie both branches carry the same gradient -A rho. */
        int clipped = l2 > l1;
        double pg = clipped ? l2 : l1, dpg = clipped ? 0.0 : -a * rho;
        /* For A < 0 the ratio clip and the dual cap never act together (the cap -c A lies
         * above the clipped value -(1 - eps) A), so clipped stays the ratio-clip flag. */
        if (dual && a < 0 && -p->dual_clip * a < pg) {
            pg = -p->dual_clip * a;
            dpg = 0.0;
        }
        double l = pg, g = dpg;
        if (logp_ref) {
            double x = (double)logp_ref[t] - logp[t], kl, dkl;
            if (p->kl_estimator == KL_K3) {
                kl = expm1(x) - x;
                dkl = -expm1(x); /* d/dlogp of e^x - x - 1 with x = ref - logp */
            } else {
                kl = -x;
                dkl = 1.0;
            }
            r.kl += w * kl;
            if (use_kl) {
                l += p->kl_coef * kl;
                g += p->kl_coef * dkl;
            }
        }
        if (entropy) {
            r.ent += w * entropy[t];
            l -= p->ent_coef * (double)entropy[t];
        }
        r.loss += w * l;
        r.pg += w * pg;
        r.clipped += m[t] * clipped;
        r.akl += m[t] * 0.5 * d * d;
        r.n += m[t];
        dlogp[t] = (float)(w * g);
        if (dent) dent[t] = (float)(-(double)p->ent_coef * w);
    }
    *acc = r;
}

double ppo_loss_cpu(float *dlogp, float *dent, PpoStats *stats, const float *logp,
                    const float *logp_old, const float *logp_ref, const float *entropy,
                    const float *adv, const float *mask, int N, int T, PpoParams p,
                    double token_denom, double seq_denom) {
    assert(p.kl_coef == 0.0f || logp_ref);
    assert(p.ent_coef == 0.0f || entropy);
    PpoRow part[PPO_ROW_GROUP], tot = {0};
    for (int i0 = 0; i0 < N; i0 += PPO_ROW_GROUP) {
        int nr = N - i0 < PPO_ROW_GROUP ? N - i0 : PPO_ROW_GROUP;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < nr; j++) {
            size_t o = (size_t)(i0 + j) * T;
            ppo_row(&part[j], dlogp + o, dent ? dent + o : NULL, logp + o, logp_old + o,
                    logp_ref ? logp_ref + o : NULL, entropy ? entropy + o : NULL, adv + o, mask + o,
                    T, &p, token_denom, seq_denom);
        }
        for (int j = 0; j < nr; j++) {
            tot.loss += part[j].loss;
            tot.pg += part[j].pg;
            tot.kl += part[j].kl;
            tot.ent += part[j].ent;
            tot.clipped += part[j].clipped;
            tot.akl += part[j].akl;
            tot.n += part[j].n;
        }
    }
    if (stats) {
        stats->pg_loss = tot.pg;
        stats->kl_ref = tot.kl;
        stats->entropy = tot.ent;
        stats->clip_frac = tot.n > 0 ? tot.clipped / tot.n : 0.0;
        stats->approx_kl_old = tot.n > 0 ? tot.akl / tot.n : 0.0;
        stats->valid = tot.n;
    }
    return tot.loss;
}

double value_loss_cpu(float *dV, double *clip_frac, const float *V, const float *V_old,
                      const float *R, const float *mask, int N, int T, float eps, double denom) {
    double part[PPO_ROW_GROUP][3], loss = 0.0, clipped = 0.0, n = 0.0;
    for (int i0 = 0; i0 < N; i0 += PPO_ROW_GROUP) {
        int nr = N - i0 < PPO_ROW_GROUP ? N - i0 : PPO_ROW_GROUP;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < nr; j++) {
            size_t o = (size_t)(i0 + j) * T;
            double s = 0.0, c = 0.0, k = 0.0;
            for (int t = 0; t < T; t++) {
                double m = mask[o + t];
                if (!(m > 0)) {
                    dV[o + t] = 0.0f;
                    continue;
                }
                double v = V[o + t], vo = V_old[o + t], ret = R[o + t];
                double vc = fmin(fmax(v, vo - eps), vo + eps);
                double e1 = (v - ret) * (v - ret), e2 = (vc - ret) * (vc - ret);
                /* e2 > e1 needs vc != v, where the clipped branch is flat in V. */
                int cl = e2 > e1;
                s += m * 0.5 * (cl ? e2 : e1);
                c += m * cl;
                k += m;
                dV[o + t] = (float)(cl ? 0.0 : m * (v - ret) / denom);
            }
            part[j][0] = s;
            part[j][1] = c;
            part[j][2] = k;
        }
        for (int j = 0; j < nr; j++) {
            loss += part[j][0];
            clipped += part[j][1];
            n += part[j][2];
        }
    }
    if (clip_frac) *clip_frac = n > 0 ? clipped / n : 0.0;
    return loss / denom;
}
