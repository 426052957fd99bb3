/* CPU implicit process rewards (PRIME.md section 3) and the PRM's outcome loss (section 4).
 * Rows are independent, so OpenMP splits rows; every sum is taken within one row in double,
 * and the only cross-row sum (the PRM loss) is combined in row order, so results do not
 * depend on the thread count. */
#include "reward.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>

enum { REWARD_ROW_GROUP = 256 };

static int reward_last_valid(const float *m, int T) {
    for (int t = T - 1; t >= 0; t--)
        if (m[t] > 0) return t;
    return -1;
}

/* Whether position t of a row is one of the slots the transforms act on. */
static int reward_is_slot(int granularity, const float *m, const int *tg, int t, int last,
                          int step_delim) {
    switch (granularity) {
    case REWARD_TOKEN:
        return m[t] > 0;
    case REWARD_STEP:
        return m[t] > 0 && (t == last || tg[t] == step_delim);
    default:
        return t == last;
    }
}

static int reward_next_slot(int granularity, const float *m, const int *tg, int from, int last,
                            int step_delim) {
    for (int t = from; t <= last; t++)
        if (reward_is_slot(granularity, m, tg, t, last, step_delim)) return t;
    return -1;
}

void prime_token_rewards_cpu(float *r, const float *logp_prm, const float *logp_ref,
                             const float *mask, const int *targets, int N, int T, float beta,
                             int granularity, int step_delim, int transform, float clip_eta) {
    assert(granularity != REWARD_STEP || targets != NULL);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        size_t o = (size_t)i * T;
        const float *m = mask + o, *lp = logp_prm + o, *lr = logp_ref + o;
        const int *tg = targets ? targets + o : NULL;
        float *ri = r + o;
        int last = reward_last_valid(m, T);
        /* Masked log-probs may hold anything (padding), so they are never read into r. */
        double acc = 0.0;
        for (int t = 0; t < T; t++) {
            double v = m[t] > 0 ? (double)beta * ((double)lp[t] - lr[t]) * m[t] : 0.0;
            if (granularity == REWARD_TOKEN) {
                ri[t] = (float)v;
                continue;
            }
            acc += v;
            if (reward_is_slot(granularity, m, tg, t, last, step_delim)) {
                ri[t] = (float)acc;
                acc = 0.0;
            } else {
                ri[t] = 0.0f;
            }
        }
        if (last < 0 || transform == REWARD_XFORM_NONE) continue;
        /* Walking forward, the next slot still holds its untransformed value when the
         * current one reads it, which is what delta needs. */
        for (int k = reward_next_slot(granularity, m, tg, 0, last, step_delim); k >= 0;) {
            int nk = k < last ? reward_next_slot(granularity, m, tg, k + 1, last, step_delim) : -1;
            if (transform == REWARD_XFORM_CLIP) {
                float v = ri[k] - clip_eta;
                ri[k] = v < 0.0f ? v : 0.0f;
            } else if (nk >= 0) {
                ri[k] = ri[k] - ri[nk];
            }
            k = nk;
        }
    }
}

float reward_suffix_absmax_cpu(const float *r, const float *mask, int N, int T) {
    double best = 0.0;
#pragma omp parallel for schedule(static) reduction(max : best)
    for (int i = 0; i < N; i++) {
        const float *ri = r + (size_t)i * T, *m = mask + (size_t)i * T;
        double s = 0.0;
        for (int t = T - 1; t >= 0; t--) {
            if (m[t] > 0) s += (double)ri[t] * m[t];
            double a = fabs(s);
            if (a > best) best = a;
        }
    }
    return (float)best;
}

/* log(1 + e^x) without overflow for large x or loss of digits for very negative x. */
static double reward_softplus(double x) {
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

static double reward_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

double prm_loss_cpu(float *dlogp_prm, float *score, const float *logp_prm, const float *logp_ref,
                    const float *mask, const float *outcome, int N, int T, float beta,
                    double denom) {
    double total = 0.0;
    double part[REWARD_ROW_GROUP];
    for (int i0 = 0; i0 < N; i0 += REWARD_ROW_GROUP) {
        int nr = N - i0 < REWARD_ROW_GROUP ? N - i0 : REWARD_ROW_GROUP;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < nr; j++) {
            int i = i0 + j;
            size_t o = (size_t)i * T;
            const float *m = mask + o, *lp = logp_prm + o, *lr = logp_ref + o;
            double q = 0.0;
            for (int t = 0; t < T; t++)
                if (m[t] > 0) q += ((double)lp[t] - lr[t]) * m[t];
            double s = (double)beta * q, y = outcome[i];
            score[i] = (float)s;
            /* BCE(sigmoid(s), y) = y softplus(-s) + (1 - y) softplus(s) = softplus(s) - y s */
            part[j] = reward_softplus(s) - y * s;
            double g = (double)beta * (reward_sigmoid(s) - y) / denom;
            float *d = dlogp_prm + o;
            for (int t = 0; t < T; t++) d[t] = m[t] > 0 ? (float)(g * m[t]) : 0.0f;
        }
        for (int j = 0; j < nr; j++) total += part[j];
    }
    return total / denom;
}
