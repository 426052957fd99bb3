/* Token sampling from logits: greedy, or a temperature softmax truncated by top-k and then
 * top-p (nucleus), with the token picked by inverse CDF from a uniform the caller draws, so
 * the choice is a pure function of (logits, u) on every backend and for any batch. */
#pragma once

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
