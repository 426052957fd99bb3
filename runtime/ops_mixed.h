/* Mixed-precision ops (fp32 master weights and activations, bf16 copies into the tensor
 * cores): dispatch to the CUDA kernels of kernels_cuda.h. There is no CPU twin — the CPU
 * runs fp32 — so a run config asks for "precision": "bf16" only with a GPU, and these abort
 * on the CPU backend. Arguments as documented in kernels/kernels_cuda.h. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "backend.h"

int op_mixed_attention_supported(int D);
/* 1 when the hand-written bf16 attention for head dim D fits this GPU's shared memory */
int op_mixed_attention_fits(int D);
/* 1 when cuDNN's fused attention can stand in for the hand-written bf16 kernels (the cudnn
 * argument below); else 0 with the reason printed once */
int op_mixed_attention_cudnn_available(void);
size_t op_mixed_attention_scratch(int B, int T, int H, int Hkv, int D);   /* bf16 elements */
size_t op_mixed_attention_workspace(int B, int T, int H, int Hkv, int D); /* bytes */
void op_cast_bf16(Backend be, uint16_t *y, const float *x, long n);
void op_cast_f16(Backend be, uint16_t *y, const float *x, long n);
/* generation's KV cache in bf16: op_attention_decode_prep / op_kv_cache_store over it */
/* y = x widened from bf16 (overwritten) */
void op_widen_bf16(Backend be, float *y, const uint16_t *x, long n);
/* y (n, d) = the rows ids of the bf16 table, widened: the embedding lookup of a bf16 model */
void op_embedding_forward_bf16(Backend be, float *y, const int *ids, const uint16_t *table, int n,
                               int d);
/* rotary into bf16 and its backward out of bf16 (kernels_cuda.h: rope_bf16_cuda) */
void op_rope_bf16(Backend be, uint16_t *y, const float *x, const int *pos, const float *cos_t,
                  const float *sin_t, int n, int h, int D);
void op_rope_backward_bf16(Backend be, uint16_t *dyb, float *dy, const uint16_t *g, const int *pos,
                           const float *cos_t, const float *sin_t, int n, int h, int D);
/* attention on bf16 q, k, v; the backward writes bf16 dqb, dkb, dvb */
void op_attention_forward_bf16in(Backend be, uint16_t *ob, float *lse, const uint16_t *qb,
                                 const uint16_t *kb, const uint16_t *vb, int B, int T, int H,
                                 int Hkv, int D, int cudnn);
void op_attention_backward_bf16in(Backend be, uint16_t *dqb, uint16_t *dkb, uint16_t *dvb,
                                  const uint16_t *gb, const uint16_t *qb, const uint16_t *kb,
                                  const uint16_t *vb, const uint16_t *ob, const float *lse, int B,
                                  int T, int H, int Hkv, int D, void *ws, int cudnn);
/* op_attention_decode_prep over a bf16 cache, its output rounded to bf16 (the o projection's
 * input) */
void op_attention_decode_prep_bf16(Backend be, uint16_t *out, float *qo, const float *q,
                                   const float *k, const float *v, int ldq, int ldkv,
                                   uint16_t *kcache, uint16_t *vcache, const int *pos,
                                   const float *cos_t, const float *sin_t, int B, int Tc, int H,
                                   int Hkv, int D);
void op_kv_cache_store_bf16(Backend be, uint16_t *cache, const float *x, const int *pos, int B,
                            int Tc, int width);
void op_rmsnorm_forward_bf16(Backend be, uint16_t *y, float *rstd, const float *x, const float *w,
                             int n, int d, float eps);
void op_swiglu_forward_bf16in(Backend be, uint16_t *h, const uint16_t *g, const uint16_t *u,
                              long n);
void op_swiglu_backward_bf16in(Backend be, uint16_t *dg, uint16_t *du, const uint16_t *dh,
                               const uint16_t *g, const uint16_t *u, long n);
/* y = x W^T (+ b) + r, the residual r added by the product (y != r); x is cast into xs, or
 * with x NULL xs holds bf16(x) already */
void op_linear_forward_res_mixed(Backend be, float *y, const float *x, const uint16_t *w,
                                 const float *b, const float *r, int n, int in, int out,
                                 uint16_t *xs);
void op_linear_forward_bf16_mixed(Backend be, uint16_t *yb, const uint16_t *xs, const uint16_t *w,
                                  int n, int in, int out);
void op_linear_dx_bf16_mixed(Backend be, uint16_t *dxb, const float *dy, const uint16_t *w, int n,
                             int in, int out, uint16_t *dys);
void op_linear_forward_mixed(Backend be, float *y, const float *x, const uint16_t *w,
                             const float *b, int n, int in, int out, uint16_t *xs);
void op_linear_backward_mixed(Backend be, float *dx, float *dw, float *db, const float *dy,
                              const float *x, const uint16_t *w, int n, int in, int out,
                              uint16_t *dys, uint16_t *xs);
void op_attention_forward_mixed(Backend be, uint16_t *ob, float *lse, const float *q,
                                const float *k, const float *v, int B, int T, int H, int Hkv, int D,
                                uint16_t *s, int cudnn);
void op_attention_backward_mixed(Backend be, float *dq, float *dk, float *dv, const uint16_t *gb,
                                 const float *q, const float *k, const float *v, const uint16_t *ob,
                                 const float *lse, int B, int T, int H, int Hkv, int D, uint16_t *s,
                                 void *ws, int cudnn);
void op_logprob_forward_mixed(Backend be, float *logp, float *entropy, float *lse, const float *h,
                              const uint16_t *w, const uint16_t *w16, const int *targets, int n,
                              int d, int V, int chunk, float *scratch, uint16_t *hs);
void op_logprob_backward_mixed(Backend be, float *dh, float *dw, const float *dlogp,
                               const float *dentropy, const float *h, const uint16_t *w,
                               const uint16_t *w16, const int *targets, const float *lse, int n,
                               int d, int V, int chunk, float *scratch, uint16_t *hs);
