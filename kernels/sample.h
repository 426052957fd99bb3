/* Token sampling from logits: greedy, or a temperature softmax truncated by top-k and then
 * top-p (nucleus), with the token picked by inverse CDF from a uniform the caller draws, so
 * the choice is a pure function of (logits, u) on every backend and for any batch; and plain
 * temperature sampling by a Gumbel-max race under a noise key (sample_gumbel_cpu). */
#pragma once
#include <stdint.h>

/* logits (B, V), which an implementation may overwrite; u (B) uniforms in [0, 1); out (B).
 * temperature <= 0: greedy, the argmax (lowest index on ties). Otherwise, with tokens
 * ordered by descending logit (equal logits by lower index), which is descending
 * probability: p = softmax(logits / temperature); keep the first top_k (top_k <= 0 or >= V:
 * all), then the shortest prefix of those whose mass reaches top_p of theirs (top_p >= 1:
 * all; never fewer than one); renormalise, and return the first token in that order whose
 * cumulative probability exceeds u[b]. */
void sample_cpu(int *out, float *logits, const float *u, int B, int V, float temperature, int top_k,
                float top_p);
/* As sample_cpu; logp (B), when not NULL, gets the chosen token's log-prob under
 * softmax(logits) itself (temperature 1, no top-k/top-p): the policy's log-prob of the
 * sample, which the RL step needs. */
void sample_logp_cpu(int *out, float *logp, float *logits, const float *u, int B, int V,
                     float temperature, int top_k, float top_p);

/* Plain sampling (temperature > 0, neither top-k nor top-p) by the Gumbel-max race, in one
 * pass with no sort: out[b] = the token v maximising logits[b][v] / temperature - log E_v,
 * lowest index on ties, where E_v = -log(1 - u_v) ~ Exp(1) comes from Philox under seed with
 * row b's noise key keys[b] (philox.h: philox_gumbel_draw, philox_log_exp). The winner is
 * distributed as softmax(logits / temperature) exactly, up to the float rounding of the
 * scores; the choice is a pure function of (logits, seed, key) on every backend and for any
 * batch, but not the token sample_cpu draws for a uniform. Backends agree except where two
 * scores lie within a few ulps. logp as for sample_logp_cpu. The logits are only read. */
void sample_gumbel_cpu(int *out, float *logp, const float *logits, const uint64_t *keys,
                       uint64_t seed, int B, int V, float temperature);
