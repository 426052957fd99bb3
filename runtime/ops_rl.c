/* Backend dispatch for the RL math (BACKEND_CALL in backend.h). */
#include "ops_rl.h"
#include "check.h"
#include "../kernels/kernels_cuda.h"

void op_prime_token_rewards(Backend be, float *r, const float *logp_prm, const float *logp_ref,
                            const float *mask, const int *targets, int N, int T, float beta,
                            int granularity, int step_delim, int transform, float clip_eta) {
    BACKEND_CALL(be, prime_token_rewards, r, logp_prm, logp_ref, mask, targets, N, T, beta,
                 granularity, step_delim, transform, clip_eta);
}

float op_reward_suffix_absmax(Backend be, const float *r, const float *mask, int N, int T) {
    return BACKEND_CALL(be, reward_suffix_absmax, r, mask, N, T);
}

double op_prm_loss(Backend be, float *dlogp_prm, float *score, const float *logp_prm,
                   const float *logp_ref, const float *mask, const float *outcome, int N, int T,
                   float beta, double denom) {
    return BACKEND_CALL(be, prm_loss, dlogp_prm, score, logp_prm, logp_ref, mask, outcome, N, T,
                        beta, denom);
}

void op_rloo_outcome(Backend be, float *out, const float *o, int N, int K) {
    BACKEND_CALL(be, rloo_outcome, out, o, N, K);
}

void op_rloo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     int paper) {
    BACKEND_CALL(be, rloo_process, out, r, mask, N, T, K, paper);
}

void op_grpo_outcome(Backend be, float *out, const float *o, int N, int K, float eps) {
    BACKEND_CALL(be, grpo_outcome, out, o, N, K, eps);
}

void op_grpo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     float eps) {
    BACKEND_CALL(be, grpo_process, out, r, mask, N, T, K, eps);
}

void op_combine_rewards(Backend be, float *c, const float *proc, const float *out,
                        const float *mask, int N, int T, float w_proc, float w_out) {
    BACKEND_CALL(be, combine_rewards, c, proc, out, mask, N, T, w_proc, w_out);
}

void op_discounted_returns(Backend be, float *G, const float *c, const float *mask, int N, int T,
                           float gamma) {
    BACKEND_CALL(be, discounted_returns, G, c, mask, N, T, gamma);
}

void op_masked_moments(Backend be, double *sum, double *sumsq, double *count, const float *x,
                       const float *mask, int N, int T) {
    BACKEND_CALL(be, masked_moments, sum, sumsq, count, x, mask, N, T);
}

void op_whiten(Backend be, float *out, const float *x, const float *mask, int N, int T, double sum,
               double sumsq, double count) {
    BACKEND_CALL(be, whiten, out, x, mask, N, T, sum, sumsq, count);
}

void op_gae(Backend be, float *A, float *R, const float *c, const float *V, const float *mask,
            int N, int T, float gamma, float lam) {
    BACKEND_CALL(be, gae, A, R, c, V, mask, N, T, gamma, lam);
}

double op_ppo_loss(Backend be, float *dlogp, float *dent, PpoStats *stats, const float *logp,
                   const float *logp_old, const float *logp_ref, const float *entropy,
                   const float *adv, const float *mask, int N, int T, PpoParams p,
                   double token_denom, double seq_denom) {
    return BACKEND_CALL(be, ppo_loss, dlogp, dent, stats, logp, logp_old, logp_ref, entropy, adv,
                        mask, N, T, p, token_denom, seq_denom);
}

double op_value_loss(Backend be, float *dV, double *clip_frac, const float *V, const float *V_old,
                     const float *R, const float *mask, int N, int T, float eps, double denom) {
    return BACKEND_CALL(be, value_loss, dV, clip_frac, V, V_old, R, mask, N, T, eps, denom);
}
