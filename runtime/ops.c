/* Backend dispatch for every op (BACKEND_CALL in backend.h). */
#include "ops.h"
#include "check.h"
#include "../kernels/attention.h"
#include "../kernels/kernels_cuda.h"
#include "../kernels/embedding.h"
#include "../kernels/linear.h"
#include "../kernels/logprob.h"
#include "../kernels/rmsnorm.h"
#include "../kernels/rope.h"
#include "../kernels/sample.h"
#include "../kernels/swiglu.h"

void op_embedding_forward(Backend be, float *y, const int *ids, const float *table, int n, int d) {
    BACKEND_CALL(be, embedding_forward, y, ids, table, n, d);
}

void op_embedding_backward(Backend be, float *dtable, const float *dy, const int *ids, int n,
                           int d) {
    BACKEND_CALL(be, embedding_backward, dtable, dy, ids, n, d);
}

void op_rmsnorm_forward(Backend be, float *y, float *rstd, const float *x, const float *w, int n,
                        int d, float eps) {
    BACKEND_CALL(be, rmsnorm_forward, y, rstd, x, w, n, d, eps);
}

void op_rmsnorm_backward(Backend be, float *dx, float *dw, const float *dy, const float *x,
                         const float *w, const float *rstd, int n, int d) {
    BACKEND_CALL(be, rmsnorm_backward, dx, dw, dy, x, w, rstd, n, d);
}

void op_linear_forward(Backend be, float *y, const float *x, const float *w, const float *b, int n,
                       int in, int out) {
    BACKEND_CALL(be, linear_forward, y, x, w, b, n, in, out);
}

void op_linear_backward(Backend be, float *dx, float *dw, float *db, const float *dy,
                        const float *x, const float *w, int n, int in, int out) {
    BACKEND_CALL(be, linear_backward, dx, dw, db, dy, x, w, n, in, out);
}

void op_rope_forward(Backend be, float *x, const int *pos, const float *cos_t, const float *sin_t,
                     int n, int h, int D) {
    BACKEND_CALL(be, rope_forward, x, pos, cos_t, sin_t, n, h, D);
}

void op_rope_backward(Backend be, float *dx, const int *pos, const float *cos_t, const float *sin_t,
                      int n, int h, int D) {
    BACKEND_CALL(be, rope_backward, dx, pos, cos_t, sin_t, n, h, D);
}

void op_attention_forward(Backend be, float *out, float *lse, const float *q, const float *k,
                          const float *v, int B, int T, int H, int Hkv, int D) {
    BACKEND_CALL(be, attention_forward, out, lse, q, k, v, B, T, H, Hkv, D);
}

void op_attention_backward(Backend be, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *out,
                           const float *lse, int B, int T, int H, int Hkv, int D) {
    BACKEND_CALL(be, attention_backward, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, Hkv, D);
}

void op_kv_cache_store(Backend be, float *cache, const float *x, const int *pos, int B, int Tc,
                       int width) {
    BACKEND_CALL(be, kv_cache_store, cache, x, pos, B, Tc, width);
}

void op_kv_move_slots(Backend be, void *kcache, void *vcache, const int *moves, int n, int L,
                      int B_cap, int Tc, int width, int es) {
    BACKEND_CALL(be, kv_move_slots, kcache, vcache, moves, n, L, B_cap, Tc, width, es);
}

void op_attention_decode_prep(Backend be, float *out, float *qo, const float *q, const float *k,
                              const float *v, int ldq, int ldkv, float *kcache, float *vcache,
                              const int *pos, const float *cos_t, const float *sin_t, int B, int Tc,
                              int H, int Hkv, int D) {
    BACKEND_CALL(be, attention_decode_prep, out, qo, q, k, v, ldq, ldkv, kcache, vcache, pos, cos_t,
                 sin_t, B, Tc, H, Hkv, D);
}

void op_swiglu_forward(Backend be, float *h, const float *g, const float *u, long n) {
    BACKEND_CALL(be, swiglu_forward, h, g, u, n);
}

void op_swiglu_backward(Backend be, float *dg, float *du, const float *dh, const float *g,
                        const float *u, long n) {
    BACKEND_CALL(be, swiglu_backward, dg, du, dh, g, u, n);
}

void op_logprob_forward(Backend be, float *logp, float *entropy, float *lse, const float *h,
                        const float *w, const int *targets, int n, int d, int V, int chunk,
                        float *scratch) {
    BACKEND_CALL(be, logprob_forward, logp, entropy, lse, h, w, targets, n, d, V, chunk, scratch);
}

void op_logprob_backward(Backend be, float *dh, float *dw, const float *dlogp,
                         const float *dentropy, const float *h, const float *w, const int *targets,
                         const float *lse, int n, int d, int V, int chunk, float *scratch) {
    BACKEND_CALL(be, logprob_backward, dh, dw, dlogp, dentropy, h, w, targets, lse, n, d, V, chunk,
                 scratch);
}

void op_sample(Backend be, int *out, float *logits, const float *u, int B, int V, float temperature,
               int top_k, float top_p) {
    BACKEND_CALL(be, sample, out, logits, u, B, V, temperature, top_k, top_p);
}

void op_sample_logp(Backend be, int *out, float *logp, float *logits, const float *u, int B, int V,
                    float temperature, int top_k, float top_p) {
    BACKEND_CALL(be, sample_logp, out, logp, logits, u, B, V, temperature, top_k, top_p);
}

void op_sample_gumbel(Backend be, int *out, float *logp, const float *logits, const uint64_t *keys,
                      uint64_t seed, int B, int V, float temperature) {
    BACKEND_CALL(be, sample_gumbel, out, logp, logits, keys, seed, B, V, temperature);
}

void op_adamw_update(Backend be, float *p, const float *g, float *m, float *v, long n,
                     AdamWParams hp, int t) {
    BACKEND_CALL(be, adamw_update, p, g, m, v, n, hp, t);
}

double op_sumsq(Backend be, const float *g, long n) {
    return BACKEND_CALL(be, sumsq, g, n);
}

void op_scale(Backend be, float *x, long n, float s) {
    BACKEND_CALL(be, scale, x, n, s);
}

static void add_cpu(float *y, const float *x, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) y[i] += x[i];
}

void op_add(Backend be, float *y, const float *x, long n) {
    BACKEND_CALL(be, add, y, x, n);
}
