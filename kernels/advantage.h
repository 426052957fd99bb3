/* Advantage estimators of PRIME: leave-one-out (RLOO) and group normalisation (GRPO) of
 * outcome and process rewards, discounted returns, batch whitening and GAE. Rows come in
 * groups of K consecutive rows sharing a prompt (N = P K). (N, T) arrays as in reward.h;
 * "last_i" is row i's last valid token. Every output is 0 on masked positions. */
#pragma once

/* Index of the last t with mask > 0 in row i, or -1. */
int adv_last_valid(const float *mask, int i, int T);

/* out_i = o_i - mean_{j in g(i), j != i} o_j. K >= 2. */
void rloo_outcome_cpu(float *out, const float *o, int N, int K);
/* mu_j = mean of r over row j's valid tokens (0 if none). prime variant (paper = 0):
 * out = r K/(K-1) - (sum_{j in g(i)} mu_j)/(K-1); paper variant: out = r - mean_{j != i} mu_j.
 * Applied on valid tokens only. */
void rloo_process_cpu(float *out, const float *r, const float *mask, int N, int T, int K,
                      int paper);
/* (x - mean_group) / (std_group + eps), std unbiased (0 when K = 1). */
void grpo_outcome_cpu(float *out, const float *o, int N, int K, float eps);
/* Same over all valid tokens of the group's rows. */
void grpo_process_cpu(float *out, const float *r, const float *mask, int N, int T, int K,
                      float eps);
/* c = w_proc proc + w_out out_i [t = last_i] on valid tokens (proc may be NULL). */
void combine_rewards_cpu(float *c, const float *proc, const float *out, const float *mask, int N,
                         int T, float w_proc, float w_out);
/* G[i, t] = sum_{s >= t} gamma^{s - t} c[i, s] over valid s; 0 on masked positions. */
void discounted_returns_cpu(float *G, const float *c, const float *mask, int N, int T, float gamma);
/* Accumulates the masked sum, sum of squares and count of x (double) for whitening. */
void masked_moments_cpu(double *sum, double *sumsq, double *count, const float *x,
                        const float *mask, int N, int T);
/* out = (x - mean) / sqrt(var + 1e-8) on valid tokens, var the unbiased variance from the
 * moments (sum, sumsq, count). out may alias x. */
void whiten_cpu(float *out, const float *x, const float *mask, int N, int T, double sum,
                double sumsq, double count);
/* GAE (PRIME.md section 5) per row, from t = T-1 down to 0, with V_next = gae_next = 0 at the
 * start: delta = c_t + gamma V_next - V_t; gae = delta + gamma lambda gae_next; on valid t:
 * A_t = gae, R_t = gae + V_t, V_next = V_t, gae_next = gae; masked t: A = R = 0 and the
 * carried values unchanged. */
void gae_cpu(float *A, float *R, const float *c, const float *V, const float *mask, int N, int T,
             float gamma, float lam);
