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

/* One new query per sequence against a KV cache, for generation. q (B, H, D); kcache,
 * vcache (B, Tc, Hkv, D) of one layer, row b already holding positions 0 .. pos[b]
 * inclusive (entries past pos[b] are never read); pos (B); out (B, H, D). Causal over
 * [0, pos[b]], scale 1/sqrt(D), query head h reads cache head h / (H / Hkv). */
void attention_decode_cpu(float *out, const float *q, const float *kcache, const float *vcache,
                          const int *pos, int B, int Tc, int H, int Hkv, int D);
/* Writes x (B, width) into cache (B, Tc, width) at row b, position pos[b] (B). */
void kv_cache_store_cpu(float *cache, const float *x, const int *pos, int B, int Tc, int width);
/* Moves cache rows: for each of n moves (dst, src, len) in moves (n x 3), positions
 * 0 .. len - 1 of slot src into slot dst, in every layer of both caches (L, B_cap, Tc,
 * width) of es-byte elements (4: fp32, 2: bf16). No slot is both a source and a destination. */
void kv_move_slots_cpu(void *kcache, void *vcache, const int *moves, int n, int L, int B_cap,
                       int Tc, int width, int es);
/* A decode step's attention inputs at once: rotary (rope.h, by each row's pos) on q into qo
 * (B, H, D), and on k, which is stored with v into kcache, vcache at pos, as rope_forward_cpu
 * and kv_cache_store_cpu give them. Row b of q, k and v starts at b ldq, b ldkv and b ldkv
 * (one packed q|k|v row or three tensors); qo may be q itself when ldq = H D; cos_t, sin_t
 * (max_pos, D / 2). */
void decode_prep_cpu(float *qo, const float *q, const float *k, const float *v, int ldq, int ldkv,
                     float *kcache, float *vcache, const int *pos, const float *cos_t,
                     const float *sin_t, int B, int Tc, int H, int Hkv, int D);
/* A decode step's attention from the q|k|v product's rows: decode_prep_cpu (the rotated
 * queries into qo) then attention_decode_cpu into out. The CUDA twin does both in one kernel,
 * leaving qo unwritten (except in its block-tile fallback) and the caches as here. */
void attention_decode_prep_cpu(float *out, float *qo, const float *q, const float *k,
                               const float *v, int ldq, int ldkv, float *kcache, float *vcache,
                               const int *pos, const float *cos_t, const float *sin_t, int B,
                               int Tc, int H, int Hkv, int D);
