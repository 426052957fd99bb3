/* Backend dispatch for the RL math (rewards, advantages, losses): op_x(be, ...) calls x_cpu
 * or x_cuda. Shapes and semantics are those of kernels/reward.h, advantage.h and ppo.h. */
#pragma once
#include "backend.h"
#include "../kernels/advantage.h"
#include "../kernels/ppo.h"
#include "../kernels/reward.h"

void op_prime_token_rewards(Backend be, float *r, const float *logp_prm, const float *logp_ref,
                            const float *mask, const int *targets, int N, int T, float beta,
                            int granularity, int step_delim, int transform, float clip_eta);
float op_reward_suffix_absmax(Backend be, const float *r, const float *mask, int N, int T);
double op_prm_loss(Backend be, float *dlogp_prm, float *score, const float *logp_prm,
                   const float *logp_ref, const float *mask, const float *outcome, int N, int T,
                   float beta, double denom);
void op_rloo_outcome(Backend be, float *out, const float *o, int N, int K);
void op_rloo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     int paper);
void op_grpo_outcome(Backend be, float *out, const float *o, int N, int K, float eps);
void op_grpo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     float eps);
void op_combine_rewards(Backend be, float *c, const float *proc, const float *out,
                        const float *mask, int N, int T, float w_proc, float w_out);
void op_discounted_returns(Backend be, float *G, const float *c, const float *mask, int N, int T,
                           float gamma);
void op_masked_moments(Backend be, double *sum, double *sumsq, double *count, const float *x,
                       const float *mask, int N, int T);
void op_whiten(Backend be, float *out, const float *x, const float *mask, int N, int T, double sum,
               double sumsq, double count);
void op_gae(Backend be, float *A, float *R, const float *c, const float *V, const float *mask,
            int N, int T, float gamma, float lam);
double op_ppo_loss(Backend be, float *dlogp, float *dent, PpoStats *stats, const float *logp,
                   const float *logp_old, const float *logp_ref, const float *entropy,
                   const float *adv, const float *mask, int N, int T, PpoParams p,
                   double token_denom, double seq_denom);
double op_value_loss(Backend be, float *dV, double *clip_frac, const float *V, const float *V_old,
                     const float *R, const float *mask, int N, int T, float eps, double denom);
