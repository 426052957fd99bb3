/* The CUDA twins of the CPU kernels: same arguments, same shapes, same accumulate-or-write
 * rules as the _cpu function of the same name in the header named beside each group, with
 * every pointer in device memory. Functions returning a scalar bring it back to the host
 * (and so wait for the device). Built only with DENSERL_CUDA; runtime/ops*.c dispatch here. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "advantage.h"
#include "optim.h"
#include "ppo.h"
#include "reward.h"

#ifdef __cplusplus
extern "C" {
#endif

/* embedding.h, rmsnorm.h, rope.h, swiglu.h, linear.h (cuBLAS, fp32 without TF32) */
void embedding_forward_cuda(float *y, const int *ids, const float *table, int n, int d);
void embedding_backward_cuda(float *dtable, const float *dy, const int *ids, int n, int d);
void rmsnorm_forward_cuda(float *y, float *rstd, const float *x, const float *w, int n, int d,
                          float eps);
/* The forward with its output rounded to bf16 (the bits of cast_bf16_cuda of the fp32 output),
 * for a norm whose output only feeds matrix products (mixed precision). */
void rmsnorm_forward_bf16_cuda(uint16_t *y, float *rstd, const float *x, const float *w, int n,
                               int d, float eps);
void rmsnorm_backward_cuda(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           const float *rstd, int n, int d);
void rope_forward_cuda(float *x, const int *pos, const float *cos_t, const float *sin_t, int n,
                       int h, int D);
void rope_backward_cuda(float *dx, const int *pos, const float *cos_t, const float *sin_t, int n,
                        int h, int D);
void swiglu_forward_cuda(float *h, const float *g, const float *u, long n);
void swiglu_backward_cuda(float *dg, float *du, const float *dh, const float *g, const float *u,
                          long n);
void linear_forward_cuda(float *y, const float *x, const float *w, const float *b, int n, int in,
                         int out);
void linear_backward_cuda(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, int n, int in, int out);

/* optim.h, plus y += x */
void adamw_update_cuda(float *p, const float *g, float *m, float *v, long n, AdamWParams hp, int t);
double sumsq_cuda(const float *g, long n);
void scale_cuda(float *x, long n, float s);
void add_cuda(float *y, const float *x, long n);

/* attention.h */
void attention_forward_cuda(float *out, float *lse, const float *q, const float *k, const float *v,
                            int B, int T, int H, int Hkv, int D);
void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *out, const float *lse,
                             int B, int T, int H, int Hkv, int D);
void attention_decode_cuda(float *out, const float *q, const float *kcache, const float *vcache,
                           const int *pos, int B, int Tc, int H, int Hkv, int D);
void kv_cache_store_cuda(float *cache, const float *x, const int *pos, int B, int Tc, int width);
void kv_move_slots_cuda(void *kcache, void *vcache, const int *moves, int n, int L, int B_cap,
                        int Tc, int width, int es);
/* decode_prep_cpu's twins (attention.h), over fp32 and bf16 caches */
void decode_prep_cuda(float *qo, const float *q, const float *k, const float *v, int ldq, int ldkv,
                      float *kcache, float *vcache, const int *pos, const float *cos_t,
                      const float *sin_t, int B, int Tc, int H, int Hkv, int D);
/* The same over a bf16 KV cache (bf16 precision's generation): the store rounds x to bf16
 * (nearest even), the decode widens the cache's entries exactly and computes in fp32. */
void attention_decode_bf16cache_cuda(float *out, const float *q, const uint16_t *kcache,
                                     const uint16_t *vcache, const int *pos, int B, int Tc, int H,
                                     int Hkv, int D);
/* The same with out rounded to bf16 (nearest even) as it is written: the bits of
 * attention_decode_bf16cache_cuda's out rounded. */
void attention_decode_bf16_cuda(uint16_t *out, const float *q, const uint16_t *kcache,
                                const uint16_t *vcache, const int *pos, int B, int Tc, int H,
                                int Hkv, int D);
void kv_cache_store_bf16_cuda(uint16_t *cache, const float *x, const int *pos, int B, int Tc,
                              int width);
void decode_prep_bf16cache_cuda(float *qo, const float *q, const float *k, const float *v, int ldq,
                                int ldkv, uint16_t *kcache, uint16_t *vcache, const int *pos,
                                const float *cos_t, const float *sin_t, int B, int Tc, int H,
                                int Hkv, int D);
/* attention_decode_prep_cpu's twin (attention.h): decode_prep and the decode in one kernel;
 * the decode's blocks rotate their own queries, and the blocks whose keys end at pos[b] take
 * the new key and value from the product's rows (rounded as the cache holds them) while one
 * of them stores them, so the bits of out and of the caches are those of decode_prep_cuda
 * followed by attention_decode_cuda. qo is written only by the block-tile decode
 * (DENSERL_ATTN_DECODE=tiles), which runs the two kernels. */
void attention_decode_prep_cuda(float *out, float *qo, const float *q, const float *k,
                                const float *v, int ldq, int ldkv, float *kcache, float *vcache,
                                const int *pos, const float *cos_t, const float *sin_t, int B,
                                int Tc, int H, int Hkv, int D);
/* The same over a bf16 cache, out in bf16 (attention_decode_bf16_cuda's) */
void attention_decode_prep_bf16_cuda(uint16_t *out, float *qo, const float *q, const float *k,
                                     const float *v, int ldq, int ldkv, uint16_t *kcache,
                                     uint16_t *vcache, const int *pos, const float *cos_t,
                                     const float *sin_t, int B, int Tc, int H, int Hkv, int D);

/* logprob.h (scratch: chunk * V floats of device memory) */
void logprob_forward_cuda(float *logp, float *entropy, float *lse, const float *h, const float *w,
                          const int *targets, int n, int d, int V, int chunk, float *scratch);
void logprob_backward_cuda(float *dh, float *dw, const float *dlogp, const float *dentropy,
                           const float *h, const float *w, const int *targets, const float *lse,
                           int n, int d, int V, int chunk, float *scratch);

/* sample.h */
void sample_cuda(int *out, float *logits, const float *u, int B, int V, float temperature,
                 int top_k, float top_p);
void sample_logp_cuda(int *out, float *logp, float *logits, const float *u, int B, int V,
                      float temperature, int top_k, float top_p);
void sample_gumbel_cuda(int *out, float *logp, const float *logits, const uint64_t *keys,
                        uint64_t seed, int B, int V, float temperature);

/* reward.h */
void prime_token_rewards_cuda(float *r, const float *logp_prm, const float *logp_ref,
                              const float *mask, const int *targets, int N, int T, float beta,
                              int granularity, int step_delim, int transform, float clip_eta);
float reward_suffix_absmax_cuda(const float *r, const float *mask, int N, int T);
double prm_loss_cuda(float *dlogp_prm, float *score, const float *logp_prm, const float *logp_ref,
                     const float *mask, const float *outcome, int N, int T, float beta,
                     double denom);

/* advantage.h (the double outputs of masked_moments are host pointers) */
void rloo_outcome_cuda(float *out, const float *o, int N, int K);
void rloo_process_cuda(float *out, const float *r, const float *mask, int N, int T, int K,
                       int paper);
void grpo_outcome_cuda(float *out, const float *o, int N, int K, float eps);
void grpo_process_cuda(float *out, const float *r, const float *mask, int N, int T, int K,
                       float eps);
void combine_rewards_cuda(float *c, const float *proc, const float *out, const float *mask, int N,
                          int T, float w_proc, float w_out);
void discounted_returns_cuda(float *G, const float *c, const float *mask, int N, int T,
                             float gamma);
void masked_moments_cuda(double *sum, double *sumsq, double *count, const float *x,
                         const float *mask, int N, int T);
void whiten_cuda(float *out, const float *x, const float *mask, int N, int T, double sum,
                 double sumsq, double count);
void gae_cuda(float *A, float *R, const float *c, const float *V, const float *mask, int N, int T,
              float gamma, float lam);

/* ppo.h (stats is a host pointer) */
double ppo_loss_cuda(float *dlogp, float *dent, PpoStats *stats, const float *logp,
                     const float *logp_old, const float *logp_ref, const float *entropy,
                     const float *adv, const float *mask, int N, int T, PpoParams p,
                     double token_denom, double seq_denom);
double value_loss_cuda(float *dV, double *clip_frac, const float *V, const float *V_old,
                       const float *R, const float *mask, int N, int T, float eps, double denom);

/* Mixed precision (mixed_cuda.cu): fp32 in and out, bf16 copies into the tensor cores.
 * w is the bf16 copy of the fp32 weight; xs, dys, hs, s are caller scratch of bf16 elements:
 * xs n*in, dys n*out, hs n*d, s attention_mixed_scratch(...). The products cast x into xs
 * and dy into dys; x NULL (dy NULL) says xs (dys) holds bf16(x) (bf16(dy)) already, made by
 * the caller or a product just before (dy NULL allows no bias gradient). Accumulate rules as
 * the fp32 ops. Attention needs D = 64 or 128, s of 4 B T (H + Hkv) D elements and, for
 * the backward, attention_backward_bf16_workspace(...) bytes of ws (runtime/ops_mixed.h gives
 * both). */
/* y = bf16(x) rounded to nearest even; y += x and y = x widening bf16 x to fp32. */
void cast_bf16_cuda(uint16_t *y, const float *x, long n);
/* y = fp16(x) rounded to nearest even (the fp16 logits' operands, logprob_bf16.h) */
void cast_f16_cuda(uint16_t *y, const float *x, long n);
void add_from_bf16_cuda(float *y, const uint16_t *x, long n);
void widen_bf16_cuda(float *y, const uint16_t *x, long n);
/* y (n, d) = the rows ids of the bf16 table (V, d), widened: a bf16 model's embedding lookup */
void embedding_forward_bf16_cuda(float *y, const int *ids, const uint16_t *table, int n, int d);
/* SwiGLU with bf16 results (elementwise_cuda.cu): h = bf16(silu(g) u); dg, du = bf16 of the
 * swiglu_backward terms for a bf16 dh, overwritten (not accumulated). */
void swiglu_forward_bf16_cuda(uint16_t *h, const float *g, const float *u, long n);
void swiglu_backward_bf16_cuda(uint16_t *dg, uint16_t *du, const uint16_t *dh, const float *g,
                               const float *u, long n);
/* the same with g and u in bf16, as linear_forward_bf16_mixed_cuda leaves them */
void swiglu_forward_bf16in_cuda(uint16_t *h, const uint16_t *g, const uint16_t *u, long n);
void swiglu_backward_bf16in_cuda(uint16_t *dg, uint16_t *du, const uint16_t *dh, const uint16_t *g,
                                 const uint16_t *u, long n);
/* dxb (n, in) = bf16(dy (n, out) W (out, in)), overwritten; dys gets bf16(dy), which a dw
 * product (linear_backward_mixed_cuda with dy NULL) can reuse. */
void linear_dx_bf16_mixed_cuda(uint16_t *dxb, const float *dy, const uint16_t *w, int n, int in,
                               int out, uint16_t *dys);
void linear_forward_mixed_cuda(float *y, const float *x, const uint16_t *w, const float *b, int n,
                               int in, int out, uint16_t *xs);
/* y = x W^T + b + r (b may be NULL): the residual r added by the product (y != r) */
void linear_forward_res_mixed_cuda(float *y, const float *x, const uint16_t *w, const float *b,
                                   const float *r, int n, int in, int out, uint16_t *xs);
/* lt_cuda.cu: y (n, out) = xs W^T (+ b) (+ r) in one cuBLASLt product (bias in the epilogue, r
 * as the C operand); 1 when done, 0 when cuBLASLt cannot (the caller does it another way) */
int linear_lt_forward_cuda(float *y, const uint16_t *xs, const uint16_t *w, const float *b,
                           const float *r, int n, int in, int out);
/* yb (n, out) = bf16(xs W^T) for a bf16 input xs, no bias: an output that only feeds bf16
 * consumers (the gate and up products into SwiGLU) */
void linear_forward_bf16_mixed_cuda(uint16_t *yb, const uint16_t *xs, const uint16_t *w, int n,
                                    int in, int out);
void linear_backward_mixed_cuda(float *dx, float *dw, float *db, const float *dy, const float *x,
                                const uint16_t *w, int n, int in, int out, uint16_t *dys,
                                uint16_t *xs);
/* rotary into bf16: y (n, h, D) = bf16(rope(x)) for fp32 x, what rope_forward_cuda and a
 * cast give; the backward t = rope^T(g) for a bf16 gradient g into dyb = bf16(t) (which may
 * be g itself) and, unless dy is NULL, dy = t in fp32 (overwritten) */
void rope_bf16_cuda(uint16_t *y, const float *x, const int *pos, const float *cos_t,
                    const float *sin_t, int n, int h, int D);
void rope_backward_bf16_cuda(uint16_t *dyb, float *dy, const uint16_t *g, const int *pos,
                             const float *cos_t, const float *sin_t, int n, int h, int D);
/* attention on bf16 q, k, v (after rotary) and bf16 output and gradients; the backward
 * writes (does not accumulate) dqb, dkb, dvb. cudnn as below */
void attention_forward_bf16in_cuda(uint16_t *ob, float *lse, const uint16_t *qb, const uint16_t *kb,
                                   const uint16_t *vb, int B, int T, int H, int Hkv, int D,
                                   int cudnn);
void attention_backward_bf16in_cuda(uint16_t *dqb, uint16_t *dkb, uint16_t *dvb, const uint16_t *gb,
                                    const uint16_t *qb, const uint16_t *kb, const uint16_t *vb,
                                    const uint16_t *ob, const float *lse, int B, int T, int H,
                                    int Hkv, int D, void *ws, int cudnn);
/* attention: q, k, v in fp32 (after rotary) are cast into the scratch s; the output ob and
 * its gradient gb are bf16 (they only meet the o-projection's products), dq, dk, dv fp32,
 * accumulated. cudnn != 0 runs cuDNN's fused attention (attention_cudnn.h) instead of the
 * hand-written bf16 kernels; ws is then unused */
void attention_forward_mixed_cuda(uint16_t *ob, float *lse, const float *q, const float *k,
                                  const float *v, int B, int T, int H, int Hkv, int D, uint16_t *s,
                                  int cudnn);
void attention_backward_mixed_cuda(float *dq, float *dk, float *dv, const uint16_t *gb,
                                   const float *q, const float *k, const float *v,
                                   const uint16_t *ob, const float *lse, int B, int T, int H,
                                   int Hkv, int D, uint16_t *s, void *ws, int cudnn);
/* log-prob: w is the bf16 copy of the lm_head weight; w16 its fp16 copy for fp16 logits
 * (logprob_forward_f16_cuda), or NULL for fp32 logits. hs: n*d bf16 elements, 2*n*d for the
 * backward with w16. */
void logprob_forward_mixed_cuda(float *logp, float *entropy, float *lse, const float *h,
                                const uint16_t *w, const uint16_t *w16, const int *targets, int n,
                                int d, int V, int chunk, float *scratch, uint16_t *hs);
void logprob_backward_mixed_cuda(float *dh, float *dw, const float *dlogp, const float *dentropy,
                                 const float *h, const uint16_t *w, const uint16_t *w16,
                                 const int *targets, const float *lse, int n, int d, int V,
                                 int chunk, float *scratch, uint16_t *hs);

#ifdef __cplusplus
}
#endif
