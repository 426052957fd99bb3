/* Implicit process rewards (PRIME): r = beta * (logp_prm - logp_ref) on response tokens,
 * at token, step or whole-response granularity, with the optional clip / delta transforms,
 * and the PRM's cross-entropy loss on outcomes. All (N, T) arrays are aligned with the
 * model's log-prob output: column t holds the log-prob of targets[i, t]. mask is 1 on
 * response tokens and 0 elsewhere; a row's valid tokens are contiguous. */
#pragma once

enum { REWARD_TOKEN = 0, REWARD_STEP = 1, REWARD_WHOLE = 2 };
enum { REWARD_XFORM_NONE = 0, REWARD_XFORM_CLIP = 1, REWARD_XFORM_DELTA = 2 };

/* r (N, T) out. Token: r = beta q m. Step: a step ends at each valid position whose target
 * is step_delim, and at the row's last valid token; the step's summed r goes on its last
 * token, 0 elsewhere. Whole: the row's sum on its last valid token. Then, on the S slots of
 * the chosen granularity (every valid token, each step's last token, or the last valid token;
 * a slot whose value happens to be 0 still counts), in order: clip: rho_k = min(rho_k - eta,
 * 0); delta: rho_k = rho_k - rho_{k+1} for k < S. targets is read only for step granularity
 * (may be NULL otherwise). */
void prime_token_rewards_cpu(float *r, const float *logp_prm, const float *logp_ref,
                             const float *mask, const int *targets, int N, int T, float beta,
                             int granularity, int step_delim, int transform, float clip_eta);
/* max over (i, t) of |sum_{s >= t} r[i, s] m[i, s]| (the batch_norm divisor, before + 1e-6). */
float reward_suffix_absmax_cpu(const float *r, const float *mask, int N, int T);

/* PRM loss: s_i = beta sum_t m q (written to score (N)); returns sum_i BCE(sigmoid(s_i), o_i)
 * / denom (computed stably from logits) and writes dlogp_prm (N, T) =
 * beta (sigmoid(s_i) - o_i) m / denom. outcome (N) in [0, 1]. */
double prm_loss_cpu(float *dlogp_prm, float *score, const float *logp_prm, const float *logp_ref,
                    const float *mask, const float *outcome, int N, int T, float beta,
                    double denom);
