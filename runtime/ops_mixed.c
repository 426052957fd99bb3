/* Dispatch of the mixed-precision ops (ops_mixed.h): CUDA only. */
#include "ops_mixed.h"
#include "check.h"
#include "../kernels/attention_bf16.h"
#include "../kernels/attention_cudnn.h"
#include "../kernels/kernels_cuda.h"

#define MIXED_CALL(be, call)                                                                       \
    do {                                                                                           \
        CHECK((be) == BACKEND_CUDA);                                                               \
        call;                                                                                      \
    } while (0)

#ifndef DENSERL_CUDA
/* without CUDA no backend reaches these (backend_from_name never gives CUDA) */
#pragma GCC diagnostic ignored "-Wunused-parameter"
static void no_cuda(void) {
    CHECK(!"built without CUDA");
}
#define cast_bf16_cuda(...)                  no_cuda()
#define cast_f16_cuda(...)                   no_cuda()
#define rmsnorm_forward_bf16_cuda(...)       no_cuda()
#define swiglu_forward_bf16in_cuda(...)      no_cuda()
#define swiglu_backward_bf16in_cuda(...)     no_cuda()
#define linear_forward_bf16_mixed_cuda(...)  no_cuda()
#define linear_forward_res_mixed_cuda(...)   no_cuda()
#define linear_dx_bf16_mixed_cuda(...)       no_cuda()
#define linear_forward_mixed_cuda(...)       no_cuda()
#define linear_backward_mixed_cuda(...)      no_cuda()
#define attention_forward_mixed_cuda(...)    no_cuda()
#define attention_backward_mixed_cuda(...)   no_cuda()
#define logprob_forward_mixed_cuda(...)      no_cuda()
#define logprob_backward_mixed_cuda(...)     no_cuda()
#define attention_decode_prep_bf16_cuda(...) no_cuda()
#define kv_cache_store_bf16_cuda(...)        no_cuda()
#define widen_bf16_cuda(...)                 no_cuda()
#define embedding_forward_bf16_cuda(...)     no_cuda()
#define rope_bf16_cuda(...)                  no_cuda()
#define rope_backward_bf16_cuda(...)         no_cuda()
#define attention_forward_bf16in_cuda(...)   no_cuda()
#define attention_backward_bf16in_cuda(...)  no_cuda()
#endif

int op_mixed_attention_supported(int D) {
    return D == 64 || D == 128;
}

int op_mixed_attention_fits(int D) {
#ifdef DENSERL_CUDA
    return op_mixed_attention_supported(D) && attention_bf16_fits(D);
#else
    (void)D;
    return 0;
#endif
}

int op_mixed_attention_cudnn_available(void) {
#ifdef DENSERL_CUDA
    return attention_cudnn_available();
#else
    return 0;
#endif
}

size_t op_mixed_attention_scratch(int B, int T, int H, int Hkv, int D) {
    const size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * Hkv * D;
    return 2 * nq + 4 * nk; /* q, k, v and, in the backward, dq, dk, dv */
}

size_t op_mixed_attention_workspace(int B, int T, int H, int Hkv, int D) {
#ifdef DENSERL_CUDA
    return attention_backward_bf16_workspace(B, T, H, Hkv, D);
#else
    return 0;
#endif
}

void op_cast_bf16(Backend be, uint16_t *y, const float *x, long n) {
    MIXED_CALL(be, cast_bf16_cuda(y, x, n));
}

void op_cast_f16(Backend be, uint16_t *y, const float *x, long n) {
    MIXED_CALL(be, cast_f16_cuda(y, x, n));
}

void op_attention_decode_prep_bf16(Backend be, uint16_t *out, float *qo, const float *q,
                                   const float *k, const float *v, int ldq, int ldkv,
                                   uint16_t *kcache, uint16_t *vcache, const int *pos,
                                   const float *cos_t, const float *sin_t, int B, int Tc, int H,
                                   int Hkv, int D) {
    MIXED_CALL(be, attention_decode_prep_bf16_cuda(out, qo, q, k, v, ldq, ldkv, kcache, vcache, pos,
                                                   cos_t, sin_t, B, Tc, H, Hkv, D));
}

void op_widen_bf16(Backend be, float *y, const uint16_t *x, long n) {
    MIXED_CALL(be, widen_bf16_cuda(y, x, n));
}

void op_embedding_forward_bf16(Backend be, float *y, const int *ids, const uint16_t *table, int n,
                               int d) {
    MIXED_CALL(be, embedding_forward_bf16_cuda(y, ids, table, n, d));
}

void op_rope_bf16(Backend be, uint16_t *y, const float *x, const int *pos, const float *cos_t,
                  const float *sin_t, int n, int h, int D) {
    MIXED_CALL(be, rope_bf16_cuda(y, x, pos, cos_t, sin_t, n, h, D));
}

void op_rope_backward_bf16(Backend be, uint16_t *dyb, float *dy, const uint16_t *g, const int *pos,
                           const float *cos_t, const float *sin_t, int n, int h, int D) {
    MIXED_CALL(be, rope_backward_bf16_cuda(dyb, dy, g, pos, cos_t, sin_t, n, h, D));
}

void op_attention_forward_bf16in(Backend be, uint16_t *ob, float *lse, const uint16_t *qb,
                                 const uint16_t *kb, const uint16_t *vb, int B, int T, int H,
                                 int Hkv, int D, int cudnn) {
    MIXED_CALL(be, attention_forward_bf16in_cuda(ob, lse, qb, kb, vb, B, T, H, Hkv, D, cudnn));
}

void op_attention_backward_bf16in(Backend be, uint16_t *dqb, uint16_t *dkb, uint16_t *dvb,
                                  const uint16_t *gb, const uint16_t *qb, const uint16_t *kb,
                                  const uint16_t *vb, const uint16_t *ob, const float *lse, int B,
                                  int T, int H, int Hkv, int D, void *ws, int cudnn) {
    MIXED_CALL(be, attention_backward_bf16in_cuda(dqb, dkb, dvb, gb, qb, kb, vb, ob, lse, B, T, H,
                                                  Hkv, D, ws, cudnn));
}

void op_kv_cache_store_bf16(Backend be, uint16_t *cache, const float *x, const int *pos, int B,
                            int Tc, int width) {
    MIXED_CALL(be, kv_cache_store_bf16_cuda(cache, x, pos, B, Tc, width));
}

void op_rmsnorm_forward_bf16(Backend be, uint16_t *y, float *rstd, const float *x, const float *w,
                             int n, int d, float eps) {
    MIXED_CALL(be, rmsnorm_forward_bf16_cuda(y, rstd, x, w, n, d, eps));
}

void op_swiglu_forward_bf16in(Backend be, uint16_t *h, const uint16_t *g, const uint16_t *u,
                              long n) {
    MIXED_CALL(be, swiglu_forward_bf16in_cuda(h, g, u, n));
}

void op_swiglu_backward_bf16in(Backend be, uint16_t *dg, uint16_t *du, const uint16_t *dh,
                               const uint16_t *g, const uint16_t *u, long n) {
    MIXED_CALL(be, swiglu_backward_bf16in_cuda(dg, du, dh, g, u, n));
}

void op_linear_forward_res_mixed(Backend be, float *y, const float *x, const uint16_t *w,
                                 const float *b, const float *r, int n, int in, int out,
                                 uint16_t *xs) {
    MIXED_CALL(be, linear_forward_res_mixed_cuda(y, x, w, b, r, n, in, out, xs));
}

void op_linear_forward_bf16_mixed(Backend be, uint16_t *yb, const uint16_t *xs, const uint16_t *w,
                                  int n, int in, int out) {
    MIXED_CALL(be, linear_forward_bf16_mixed_cuda(yb, xs, w, n, in, out));
}

void op_linear_dx_bf16_mixed(Backend be, uint16_t *dxb, const float *dy, const uint16_t *w, int n,
                             int in, int out, uint16_t *dys) {
    MIXED_CALL(be, linear_dx_bf16_mixed_cuda(dxb, dy, w, n, in, out, dys));
}

void op_linear_forward_mixed(Backend be, float *y, const float *x, const uint16_t *w,
                             const float *b, int n, int in, int out, uint16_t *xs) {
    MIXED_CALL(be, linear_forward_mixed_cuda(y, x, w, b, n, in, out, xs));
}

void op_linear_backward_mixed(Backend be, float *dx, float *dw, float *db, const float *dy,
                              const float *x, const uint16_t *w, int n, int in, int out,
                              uint16_t *dys, uint16_t *xs) {
    MIXED_CALL(be, linear_backward_mixed_cuda(dx, dw, db, dy, x, w, n, in, out, dys, xs));
}

void op_attention_forward_mixed(Backend be, uint16_t *ob, float *lse, const float *q,
                                const float *k, const float *v, int B, int T, int H, int Hkv, int D,
                                uint16_t *s, int cudnn) {
    MIXED_CALL(be, attention_forward_mixed_cuda(ob, lse, q, k, v, B, T, H, Hkv, D, s, cudnn));
}

void op_attention_backward_mixed(Backend be, float *dq, float *dk, float *dv, const uint16_t *gb,
                                 const float *q, const float *k, const float *v, const uint16_t *ob,
                                 const float *lse, int B, int T, int H, int Hkv, int D, uint16_t *s,
                                 void *ws, int cudnn) {
    MIXED_CALL(be, attention_backward_mixed_cuda(dq, dk, dv, gb, q, k, v, ob, lse, B, T, H, Hkv, D,
                                                 s, ws, cudnn));
}

void op_logprob_forward_mixed(Backend be, float *logp, float *entropy, float *lse, const float *h,
                              const uint16_t *w, const uint16_t *w16, const int *targets, int n,
                              int d, int V, int chunk, float *scratch, uint16_t *hs) {
    MIXED_CALL(be, logprob_forward_mixed_cuda(logp, entropy, lse, h, w, w16, targets, n, d, V,
                                              chunk, scratch, hs));
}

void op_logprob_backward_mixed(Backend be, float *dh, float *dw, const float *dlogp,
                               const float *dentropy, const float *h, const uint16_t *w,
                               const uint16_t *w16, const int *targets, const float *lse, int n,
                               int d, int V, int chunk, float *scratch, uint16_t *hs) {
    MIXED_CALL(be, logprob_backward_mixed_cuda(dh, dw, dlogp, dentropy, h, w, w16, targets, lse, n,
                                               d, V, chunk, scratch, hs));
}
