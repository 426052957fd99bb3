/* The one place where ops dispatch on the backend: op_x(be, ...) calls x_cpu or x_cuda.
 * Shapes and accumulation rules are those of the kernel headers in kernels/. */
#pragma once
#include <stdint.h>
#include "backend.h"
#include "../kernels/optim.h"

void op_embedding_forward(Backend be, float *y, const int *ids, const float *table, int n, int d);
void op_embedding_backward(Backend be, float *dtable, const float *dy, const int *ids, int n,
                           int d);
void op_rmsnorm_forward(Backend be, float *y, float *rstd, const float *x, const float *w, int n,
                        int d, float eps);
void op_rmsnorm_backward(Backend be, float *dx, float *dw, const float *dy, const float *x,
                         const float *w, const float *rstd, int n, int d);
void op_linear_forward(Backend be, float *y, const float *x, const float *w, const float *b, int n,
                       int in, int out);
void op_linear_backward(Backend be, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, int n, int in, int out);
void op_rope_forward(Backend be, float *x, const int *pos, const float *cos_t, const float *sin_t,
                     int n, int h, int D);
void op_rope_backward(Backend be, float *dx, const int *pos, const float *cos_t, const float *sin_t,
                      int n, int h, int D);
void op_attention_forward(Backend be, float *out, float *lse, const float *q, const float *k,
                          const float *v, int B, int T, int H, int Hkv, int D);
void op_attention_backward(Backend be, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *out,
                           const float *lse, int B, int T, int H, int Hkv, int D);
void op_kv_cache_store(Backend be, float *cache, const float *x, const int *pos, int B, int Tc,
                       int width);
void op_kv_move_slots(Backend be, void *kcache, void *vcache, const int *moves, int n, int L,
                      int B_cap, int Tc, int width, int es);
/* a decode step's attention from the q|k|v product's rows (attention_decode_prep_cpu) */
void op_attention_decode_prep(Backend be, float *out, float *qo, const float *q, const float *k,
                              const float *v, int ldq, int ldkv, float *kcache, float *vcache,
                              const int *pos, const float *cos_t, const float *sin_t, int B, int Tc,
                              int H, int Hkv, int D);
void op_swiglu_forward(Backend be, float *h, const float *g, const float *u, long n);
void op_swiglu_backward(Backend be, float *dg, float *du, const float *dh, const float *g,
                        const float *u, long n);
void op_logprob_forward(Backend be, float *logp, float *entropy, float *lse, const float *h,
                        const float *w, const int *targets, int n, int d, int V, int chunk,
                        float *scratch);
void op_logprob_backward(Backend be, float *dh, float *dw, const float *dlogp,
                         const float *dentropy, const float *h, const float *w, const int *targets,
                         const float *lse, int n, int d, int V, int chunk, float *scratch);
void op_sample(Backend be, int *out, float *logits, const float *u, int B, int V, float temperature,
               int top_k, float top_p);
void op_sample_logp(Backend be, int *out, float *logp, float *logits, const float *u, int B, int V,
                    float temperature, int top_k, float top_p);
void op_sample_gumbel(Backend be, int *out, float *logp, const float *logits, const uint64_t *keys,
                      uint64_t seed, int B, int V, float temperature);
void op_adamw_update(Backend be, float *p, const float *g, float *m, float *v, long n,
                     AdamWParams hp, int t);
double op_sumsq(Backend be, const float *g, long n);
void op_scale(Backend be, float *x, long n, float s);
void op_add(Backend be, float *y, const float *x, long n); /* y += x */
