/* Causal grouped-query attention over B sequences of T tokens, scale 1/sqrt(D).
 * Query head h reads key/value head h / (H / Hkv). Only the output and the row
 * log-sum-exp are kept; the backward recomputes the probabilities from them. */
#pragma once

/* q (B, T, H, D), k, v (B, T, Hkv, D); out (B, T, H, D), lse (B, H, T). */
void attention_forward_cpu(float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int T, int H, int Hkv, int D);
/* Accumulates dq (B, T, H, D), dk, dv (B, T, Hkv, D) from dout (B, T, H, D). */
void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            int B, int T, int H, int Hkv, int D);
