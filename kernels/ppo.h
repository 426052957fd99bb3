/* The PPO policy loss with its gradient with respect to the new log-probs (and the entropy),
 * the optional KL-to-reference and entropy terms, and the clipped value loss of the critic.
 * (N, T) arrays as in reward.h. Aggregation denominators are passed in so that a
 * mini-batch or a rank computes its share of the global mean. */
#pragma once

enum { PPO_AGG_TOKEN_MEAN = 0, PPO_AGG_SEQ_MEAN_TOKEN_MEAN = 1 };
enum { KL_K1 = 0, KL_K3 = 1 };

typedef struct {
    float clip_low, clip_high; /* ratio clipped to [1 - clip_low, 1 + clip_high] */
    float dual_clip;           /* c > 1 enables: for A < 0 the loss is at most -c A; 0 disables */
    int agg;                   /* PPO_AGG_* */
    float kl_coef;             /* loss += kl_coef * KL(new || ref) estimate */
    int kl_estimator;          /* KL_K1: logp - ref; KL_K3: exp(ref - logp) - (ref - logp) - 1 */
    float ent_coef;            /* loss -= ent_coef * entropy */
} PpoParams;

typedef struct {
    double pg_loss, kl_ref, entropy; /* aggregated like the loss */
    double clip_frac;                /* fraction of valid tokens where the clip was active */
    double approx_kl_old;            /* mean over valid tokens of 0.5 (logp - logp_old)^2 */
    double valid;                    /* valid tokens seen */
} PpoStats;

/* Per-token term l = -min(rho A, clip(rho) A) (dual clip: min(l, -c A) where A < 0),
 * rho = exp(logp - logp_old), + kl_coef kl - ent_coef H. Aggregation: token mean divides
 * sum m l by token_denom; seq-mean-token-mean divides each row's sum m l by that row's valid
 * count and the sum over rows by seq_denom. Writes dlogp (N, T) and, when not NULL, dent
 * (N, T) = dloss/dentropy; logp_ref is needed only when kl_coef != 0 and entropy only when
 * ent_coef != 0 or stats are wanted (may be NULL otherwise). Returns the loss. */
double ppo_loss_cpu(float *dlogp, float *dent, PpoStats *stats, const float *logp,
                    const float *logp_old, const float *logp_ref, const float *entropy,
                    const float *adv, const float *mask, int N, int T, PpoParams p,
                    double token_denom, double seq_denom);
/* 0.5 max((V - R)^2, (clip(V, V_old - eps, V_old + eps) - R)^2) summed over valid tokens
 * / denom; writes dV (N, T). Returns the loss; *clip_frac gets the clipped fraction. */
double value_loss_cpu(float *dV, double *clip_frac, const float *V, const float *V_old,
                      const float *R, const float *mask, int N, int T, float eps, double denom);
