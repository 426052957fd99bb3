/* Fused lm_head -> log-softmax -> gather: the log-prob (and optionally the entropy) of
 * each row's target token, never holding more than chunk x V logits. The same kernel
 * gives the supervised cross-entropy (loss = -logp). Accumulation in fp32, the
 * log-sum-exp with the max subtracted. */
#pragma once

/* h (n, d) final hidden states, w (V, d) lm_head, targets (n): a target < 0 marks a row to
 * skip (logp, entropy and lse written as 0). Writes logp (n), lse (n) (saved for the
 * backward) and, if entropy is not NULL, entropy (n) = -sum_v p_v log p_v.
 * scratch holds chunk * V floats. */
void logprob_forward_cpu(float *logp, float *entropy, float *lse, const float *h, const float *w,
                         const int *targets, int n, int d, int V, int chunk, float *scratch);
/* Accumulates dh (n, d) and dw (V, d) given dlogp (n) and, if not NULL, dentropy (n).
 * Recomputes each chunk's logits from h and w; lse as written by the forward.
 * Rows with target < 0 get no gradient. dh or dw may be NULL to skip it. */
void logprob_backward_cpu(float *dh, float *dw, const float *dlogp, const float *dentropy,
                          const float *h, const float *w, const int *targets, const float *lse,
                          int n, int d, int V, int chunk, float *scratch);
