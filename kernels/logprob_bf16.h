/* bf16 variants of the fused lm_head log-prob (logprob.h) for the large-vocabulary benchmark:
 * h and w in bf16 (uint16_t bit patterns), the products on tensor cores with fp32
 * accumulation and fp32 logits, the softmax pass as in the fp32 kernel. Same semantics,
 * skip rule and accumulate rules as logprob_forward_cpu / logprob_backward_cpu; every
 * pointer in device memory. Built only with DENSERL_CUDA. */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* logp, lse (n), entropy (n) or NULL: fp32 outputs; h (n, d), w (V, d): bf16;
 * targets (n); scratch: chunk * V floats. */
void logprob_forward_bf16_cuda(float *logp, float *entropy, float *lse, const uint16_t *h,
                               const uint16_t *w, const int *targets, int n, int d, int V,
                               int chunk, float *scratch);
/* Accumulates the fp32 gradients dh (n, d) and dw (V, d) (either may be NULL) from
 * dlogp (n) and dentropy (n) or NULL. scratch: chunk * V floats, the same as the forward:
 * each row's dlogits are rounded to bf16 and written over the first half of that row's
 * fp32 logits, so the bf16 dlogits matrix has a row stride of 2 * V elements. */
void logprob_backward_bf16_cuda(float *dh, float *dw, const float *dlogp, const float *dentropy,
                                const uint16_t *h, const uint16_t *w, const int *targets,
                                const float *lse, int n, int d, int V, int chunk, float *scratch);

/* fp16 logits: the logits products take fp16 copies of h and w (h16, w16: fp16 bit patterns)
 * and write fp16 logits, half the bytes of fp32 ones through memory, in steps of 2 * chunk
 * rows (the same scratch of chunk * V floats). The target's logit is recomputed in fp32 from
 * h16 and w16, so that logp does not carry the fp16 rounding of its own logit; every other
 * logit does (at most 2^-11 of its size), through lse and the entropy. The backward writes
 * bf16 dlogits over the fp16 logits and forms dh and dw from them with the bf16 copies hb
 * and wb (the gradients keep bf16's range). Logits beyond fp16's range (65504) are not
 * supported. */
void logprob_forward_f16_cuda(float *logp, float *entropy, float *lse, const uint16_t *h16,
                              const uint16_t *w16, const int *targets, int n, int d, int V,
                              int chunk, float *scratch);
void logprob_backward_f16_cuda(float *dh, float *dw, const float *dlogp, const float *dentropy,
                               const uint16_t *h16, const uint16_t *w16, const uint16_t *hb,
                               const uint16_t *wb, const int *targets, const float *lse, int n,
                               int d, int V, int chunk, float *scratch);

#ifdef __cplusplus
}
#endif
