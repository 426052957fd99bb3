/* Backend dispatch for the RL math; CUDA kernels add their case here. */
#include "ops_rl.h"
#include "check.h"

void op_prime_token_rewards(Backend be, float *r, const float *logp_prm, const float *logp_ref,
                            const float *mask, const int *targets, int N, int T, float beta,
                            int granularity, int step_delim, int transform, float clip_eta) {
    CHECK(be == BACKEND_CPU);
    prime_token_rewards_cpu(r, logp_prm, logp_ref, mask, targets, N, T, beta, granularity,
                            step_delim, transform, clip_eta);
}

float op_reward_suffix_absmax(Backend be, const float *r, const float *mask, int N, int T) {
    CHECK(be == BACKEND_CPU);
    return reward_suffix_absmax_cpu(r, mask, N, T);
}

double op_prm_loss(Backend be, float *dlogp_prm, float *score, const float *logp_prm,
                   const float *logp_ref, const float *mask, const float *outcome, int N, int T,
                   float beta, double denom) {
    CHECK(be == BACKEND_CPU);
    return prm_loss_cpu(dlogp_prm, score, logp_prm, logp_ref, mask, outcome, N, T, beta, denom);
}

void op_rloo_outcome(Backend be, float *out, const float *o, int N, int K) {
    CHECK(be == BACKEND_CPU);
    rloo_outcome_cpu(out, o, N, K);
}

void op_rloo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     int paper) {
    CHECK(be == BACKEND_CPU);
    rloo_process_cpu(out, r, mask, N, T, K, paper);
}

void op_grpo_outcome(Backend be, float *out, const float *o, int N, int K, float eps) {
    CHECK(be == BACKEND_CPU);
    grpo_outcome_cpu(out, o, N, K, eps);
}

void op_grpo_process(Backend be, float *out, const float *r, const float *mask, int N, int T, int K,
                     float eps) {
    CHECK(be == BACKEND_CPU);
    grpo_process_cpu(out, r, mask, N, T, K, eps);
}

void op_combine_rewards(Backend be, float *c, const float *proc, const float *out,
                        const float *mask, int N, int T, float w_proc, float w_out) {
    CHECK(be == BACKEND_CPU);
    combine_rewards_cpu(c, proc, out, mask, N, T, w_proc, w_out);
}

void op_discounted_returns(Backend be, float *G, const float *c, const float *mask, int N, int T,
                           float gamma) {
    CHECK(be == BACKEND_CPU);
    discounted_returns_cpu(G, c, mask, N, T, gamma);
}

void op_masked_moments(Backend be, double *sum, double *sumsq, double *count, const float *x,
                       const float *mask, int N, int T) {
    CHECK(be == BACKEND_CPU);
    masked_moments_cpu(sum, sumsq, count, x, mask, N, T);
}

void op_whiten(Backend be, float *out, const float *x, const float *mask, int N, int T, double sum,
               double sumsq, double count) {
    CHECK(be == BACKEND_CPU);
    whiten_cpu(out, x, mask, N, T, sum, sumsq, count);
}

void op_gae(Backend be, float *A, float *R, const float *c, const float *V, const float *mask,
            int N, int T, float gamma, float lam) {
    CHECK(be == BACKEND_CPU);
    gae_cpu(A, R, c, V, mask, N, T, gamma, lam);
}

double op_ppo_loss(Backend be, float *dlogp, float *dent, PpoStats *stats, const float *logp,
                   const float *logp_old, const float *logp_ref, const float *entropy,
                   const float *adv, const float *mask, int N, int T, PpoParams p,
                   double token_denom, double seq_denom) {
    CHECK(be == BACKEND_CPU);
    return ppo_loss_cpu(dlogp, dent, stats, logp, logp_old, logp_ref, entropy, adv, mask, N, T, p,
                        token_denom, seq_denom);
}

double op_value_loss(Backend be, float *dV, double *clip_frac, const float *V, const float *V_old,
                     const float *R, const float *mask, int N, int T, float eps, double denom) {
    CHECK(be == BACKEND_CPU);
    return value_loss_cpu(dV, clip_frac, V, V_old, R, mask, N, T, eps, denom);
}
