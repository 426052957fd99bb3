/* CPU reference for causal grouped-query attention. The forward keeps only the output and
 * the row log-sum-exp; the backward recomputes the probabilities from them in two passes,
 * one over query blocks (dq) and one over key blocks (dk, dv), so every gradient row has
 * exactly one writer: no races, no atomics, and the same bits for any thread count.
 *
 * Every product runs through one register-blocked micro-kernel (6 x 16 outputs, FMA over
 * the shared dimension) whose right operand is packed first into contiguous 16-wide panels
 * with zero padding, as GEMM libraries do: read in place, rows T or H*D floats apart fall
 * into a handful of L1 sets and every load misses. */
#include "attention.h"
#include "rope.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fastexp.h"

/* gcc -O3 unrolls-and-jams the micro-kernel's k loop by 2, which wants 24 accumulators in
 * 16 registers and spills them to the stack inside the hot loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-loop-unroll-and-jam")
#endif

#define ATTN_ROWS   6  /* output rows per micro-kernel call: queries, or keys in pass 2 */
#define ATTN_W      16 /* output columns per call, the width of a packed panel */
#define ATTN_KBLOCK 48 /* keys per dk/dv task: 3 panels, 8 row groups */

/* A plain a * b + c is never fused in ISO C mode (gcc's default -ffp-contract=off there),
 * which halves the throughput of the products; fmaf is one instruction where FMA exists. */
#ifdef __FMA__
#define ATTN_FMA(a, b, c) fmaf(a, b, c)
#else
#define ATTN_FMA(a, b, c) ((a) * (b) + (c))
#endif

static void *attn_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s:%d: out of memory allocating %zu bytes\n", __FILE__, __LINE__, n);
        abort();
    }
    return p;
}

/* exp(x) for x <= ~0 (x floored at -87; see fastexp.h). */
static inline float attn_exp(float x) {
    return fast_exp_neg(-x);
}

/* c (6, ldc)[:, 0:16) += sum_{k<K} a[r][k] * bp[k * 16 + 0:16), bp one packed panel. Written
 * so that gcc emits the classic 6 x 16 AVX2 kernel: 12 accumulator registers, the panel row
 * loaded once into two, one broadcast register reused row by row (with all six a[r][k]
 * loaded first it runs out of registers and re-reads the panel from memory per FMA).
 * Each output is one FMA chain over k in order, so its value does not depend on which
 * rows share the call; rows a caller does not need point at a needed one and are dropped. */
static void attn_mk(float *restrict c, size_t ldc, const float *const a[ATTN_ROWS],
                    const float *restrict bp, int K) {
    const float *restrict a0 = a[0], *restrict a1 = a[1], *restrict a2 = a[2], *restrict a3 = a[3],
                          *restrict a4 = a[4], *restrict a5 = a[5];
    float c0[ATTN_W] = {0}, c1[ATTN_W] = {0}, c2[ATTN_W] = {0}, c3[ATTN_W] = {0}, c4[ATTN_W] = {0},
          c5[ATTN_W] = {0};
    for (int k = 0; k < K; k++) {
        const float *restrict b = bp + (size_t)k * ATTN_W;
        float bv[ATTN_W];
        for (int j = 0; j < ATTN_W; j++) bv[j] = b[j];
        float x = a0[k];
        for (int j = 0; j < ATTN_W; j++) c0[j] = ATTN_FMA(x, bv[j], c0[j]);
        x = a1[k];
        for (int j = 0; j < ATTN_W; j++) c1[j] = ATTN_FMA(x, bv[j], c1[j]);
        x = a2[k];
        for (int j = 0; j < ATTN_W; j++) c2[j] = ATTN_FMA(x, bv[j], c2[j]);
        x = a3[k];
        for (int j = 0; j < ATTN_W; j++) c3[j] = ATTN_FMA(x, bv[j], c3[j]);
        x = a4[k];
        for (int j = 0; j < ATTN_W; j++) c4[j] = ATTN_FMA(x, bv[j], c4[j]);
        x = a5[k];
        for (int j = 0; j < ATTN_W; j++) c5[j] = ATTN_FMA(x, bv[j], c5[j]);
    }
    for (int j = 0; j < ATTN_W; j++) {
        c[j] += c0[j];
        c[ldc + j] += c1[j];
        c[2 * ldc + j] += c2[j];
        c[3 * ldc + j] += c3[j];
        c[4 * ldc + j] += c4[j];
        c[5 * ldc + j] += c5[j];
    }
}

/* Token panels, for products that reduce over D (scores): xp (B, nh, ceil(T/16), D, 16),
 * xp[b][h][p][d][j] = x[b][16p + j][h][d], zero past T. x is (B, T, nh, D). */
static void attn_pack_tokens(float *xp, const float *x, int B, int T, int nh, int D) {
    const int np = (T + ATTN_W - 1) / ATTN_W;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int p = 0; p < np; p++) {
                float *dst = xp + (((size_t)b * nh + h) * np + p) * D * ATTN_W;
                for (int j = 0; j < ATTN_W; j++) {
                    const int t = p * ATTN_W + j;
                    if (t < T) {
                        const float *src = x + (((size_t)b * T + t) * nh + h) * D;
                        for (int d = 0; d < D; d++) dst[(size_t)d * ATTN_W + j] = src[d];
                    } else {
                        for (int d = 0; d < D; d++) dst[(size_t)d * ATTN_W + j] = 0.0f;
                    }
                }
            }
}

/* Feature panels, for products that reduce over tokens (P V, dS K, P^T dout, dS^T Q):
 * xp (B, nh, ceil(D/16), T, 16), xp[b][h][c][t][j] = x[b][t][h][16c + j], zero past D. */
static void attn_pack_features(float *xp, const float *x, int B, int T, int nh, int D) {
    const int nc = (D + ATTN_W - 1) / ATTN_W;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < T; t++) {
                const float *src = x + (((size_t)b * T + t) * nh + h) * D;
                for (int c = 0; c < nc; c++) {
                    float *dst = xp + ((((size_t)b * nh + h) * nc + c) * T + t) * ATTN_W;
                    for (int j = 0; j < ATTN_W; j++) {
                        const int d = c * ATTN_W + j;
                        dst[j] = d < D ? src[d] : 0.0f;
                    }
                }
            }
}

void attention_forward_cpu(float *out, float *lse, const float *q, const float *k, const float *v,
                           int B, int T, int H, int Hkv, int D) {
    const float scale = (float)(1.0 / sqrt((double)D));
    const int group = H / Hkv;
    const size_t qs = (size_t)H * D; /* token stride of q and out */
    const int np = (T + ATTN_W - 1) / ATTN_W, nc = (D + ATTN_W - 1) / ATTN_W;
    const int Tp = np * ATTN_W, Dp = nc * ATTN_W;
    float *kp = attn_alloc((size_t)B * Hkv * Tp * D * sizeof(float)); /* token panels of k */
    float *vp = attn_alloc((size_t)B * Hkv * T * Dp * sizeof(float)); /* feature panels of v */
    attn_pack_tokens(kp, k, B, T, Hkv, D);
    attn_pack_features(vp, v, B, T, Hkv, D);
    const int nqb = (T + ATTN_ROWS - 1) / ATTN_ROWS;
    const long tasks = (long)B * H * nqb;
#pragma omp parallel
    {
        float *sc = attn_alloc((size_t)ATTN_ROWS * Tp * sizeof(float)); /* (6, Tp) S, then P */
        float *o = attn_alloc((size_t)ATTN_ROWS * Dp * sizeof(float));  /* (6, Dp) */
        /* Tasks are (b, h, query block), blocks fastest so neighbours share K and V in
         * cache; block i costs O(i), so they are dealt out dynamically. */
#pragma omp for schedule(dynamic, 2)
        for (long task = 0; task < tasks; task++) {
            const int t0 = (int)(task % nqb) * ATTN_ROWS;
            const int h = (int)(task / nqb % H), b = (int)(task / nqb / H), kh = h / group;
            const int nrows = T - t0 < ATTN_ROWS ? T - t0 : ATTN_ROWS;
            const int nkeys = t0 + nrows; /* keys 0 .. the block's last query */
            const int npk = (nkeys + ATTN_W - 1) / ATTN_W;
            const float *aq[ATTN_ROWS], *ap[ATTN_ROWS];
            for (int r = 0; r < ATTN_ROWS; r++) {
                const int rr = r < nrows ? r : nrows - 1;
                aq[r] = q + ((size_t)b * T + t0 + rr) * qs + (size_t)h * D;
                ap[r] = sc + (size_t)rr * Tp;
            }
            const float *kpb = kp + ((size_t)b * Hkv + kh) * Tp * D;
            const float *vpb = vp + ((size_t)b * Hkv + kh) * T * Dp;
            for (int r = 0; r < ATTN_ROWS; r++)
                memset(sc + (size_t)r * Tp, 0, (size_t)npk * ATTN_W * sizeof(float));
            for (int p = 0; p < npk; p++)
                attn_mk(sc + p * ATTN_W, Tp, aq, kpb + (size_t)p * D * ATTN_W, D);
            float inv[ATTN_ROWS];
            for (int r = 0; r < nrows; r++) {
                const int t = t0 + r;
                float *row = sc + (size_t)r * Tp;
                float m = -INFINITY;
#pragma omp simd reduction(max : m)
                for (int s = 0; s <= t; s++) {
                    row[s] *= scale;
                    m = row[s] > m ? row[s] : m;
                }
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int s = 0; s <= t; s++) {
                    row[s] = attn_exp(row[s] - m);
                    sum += row[s];
                }
                for (int s = t + 1; s < nkeys; s++) row[s] = 0.0f; /* causal mask */
                inv[r] = 1.0f / sum;
                lse[((size_t)b * H + h) * T + t] = m + logf(sum);
            }
            memset(o, 0, (size_t)ATTN_ROWS * Dp * sizeof(float));
            for (int c = 0; c < nc; c++)
                attn_mk(o + c * ATTN_W, Dp, ap, vpb + (size_t)c * T * ATTN_W, nkeys);
            for (int r = 0; r < nrows; r++) {
                float *ot = out + ((size_t)b * T + t0 + r) * qs + (size_t)h * D;
                for (int i = 0; i < D; i++) ot[i] = o[(size_t)r * Dp + i] * inv[r];
            }
        }
        free(sc);
        free(o);
    }
    free(kp);
    free(vp);
}

void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            int B, int T, int H, int Hkv, int D) {
    const float scale = (float)(1.0 / sqrt((double)D));
    const int group = H / Hkv;
    const size_t qs = (size_t)H * D, ks = (size_t)Hkv * D; /* token strides */
    const int np = (T + ATTN_W - 1) / ATTN_W, nc = (D + ATTN_W - 1) / ATTN_W;
    const int Tp = np * ATTN_W, Dp = nc * ATTN_W;
    const size_t nkt = (size_t)B * Hkv * Tp * D, nkf = (size_t)B * Hkv * T * Dp;
    const size_t nqf = (size_t)B * H * T * Dp;
    float *kt = attn_alloc(nkt * sizeof(float)); /* token panels of k: S = Q K^T */
    float *vt = attn_alloc(nkt * sizeof(float)); /* token panels of v: dP = dout V^T */
    float *kf = attn_alloc(nkf * sizeof(float)); /* feature panels of k: dq = dS K */
    float *qf = attn_alloc(nqf * sizeof(float)); /* feature panels of q: dk = dS^T Q */
    float *of = attn_alloc(nqf * sizeof(float)); /* feature panels of dout: dv = P^T dout */
    /* Delta_t = dout_t . out_t = sum_s P_ts dP_ts, written by pass 1, read by pass 2. */
    float *delta = attn_alloc((size_t)B * H * T * sizeof(float)); /* (B, H, T) */
    attn_pack_tokens(kt, k, B, T, Hkv, D);
    attn_pack_tokens(vt, v, B, T, Hkv, D);
    attn_pack_features(kf, k, B, T, Hkv, D);
    attn_pack_features(qf, q, B, T, H, D);
    attn_pack_features(of, dout, B, T, H, D);
    const int nqb = (T + ATTN_ROWS - 1) / ATTN_ROWS, nkb = (T + ATTN_KBLOCK - 1) / ATTN_KBLOCK;
    /* Row stride of the per-thread score scratch: one panel more than Tp, so that rows of a
     * power-of-two T do not all map to the same few L1 sets when written column-wise. */
    const size_t ld = (size_t)Tp + ATTN_W;
    const long qtasks = (long)B * H * nqb, ktasks = (long)B * Hkv * nkb;
#pragma omp parallel
    {
        /* pass 1: (6, ld) S then P, and dP then dS; pass 2: (48, ld) P^T and dS^T */
        const size_t srows = ATTN_KBLOCK > ATTN_ROWS ? ATTN_KBLOCK : ATTN_ROWS;
        float *p = attn_alloc(srows * ld * sizeof(float));
        float *ds = attn_alloc(srows * ld * sizeof(float));
        float *g1 = attn_alloc((size_t)ATTN_KBLOCK * Dp * sizeof(float)); /* dq; dk rows */
        float *g2 = attn_alloc((size_t)ATTN_KBLOCK * Dp * sizeof(float)); /* dv rows */
        float sb[ATTN_ROWS * ATTN_KBLOCK], db[ATTN_ROWS * ATTN_KBLOCK];   /* S, dP tiles */

        /* Pass 1, per query block: S = Q K^T, dP = dout V^T, dS = P (dP - Delta),
         * dq += scale dS K. */
#pragma omp for schedule(dynamic, 2)
        for (long task = 0; task < qtasks; task++) {
            const int t0 = (int)(task % nqb) * ATTN_ROWS;
            const int h = (int)(task / nqb % H), b = (int)(task / nqb / H), kh = h / group;
            const int nrows = T - t0 < ATTN_ROWS ? T - t0 : ATTN_ROWS;
            const int nkeys = t0 + nrows;
            const int npk = (nkeys + ATTN_W - 1) / ATTN_W;
            const float *aq[ATTN_ROWS], *ado[ATTN_ROWS], *ads[ATTN_ROWS];
            for (int r = 0; r < ATTN_ROWS; r++) {
                const int rr = r < nrows ? r : nrows - 1;
                const size_t o = ((size_t)b * T + t0 + rr) * qs + (size_t)h * D;
                aq[r] = q + o;
                ado[r] = dout + o;
                ads[r] = ds + (size_t)rr * ld;
            }
            for (int r = 0; r < ATTN_ROWS; r++) {
                memset(p + (size_t)r * ld, 0, (size_t)npk * ATTN_W * sizeof(float));
                memset(ds + (size_t)r * ld, 0, (size_t)npk * ATTN_W * sizeof(float));
            }
            const size_t kvo = ((size_t)b * Hkv + kh) * Tp * D;
            for (int pn = 0; pn < npk; pn++) {
                attn_mk(p + pn * ATTN_W, ld, aq, kt + kvo + (size_t)pn * D * ATTN_W, D);
                attn_mk(ds + pn * ATTN_W, ld, ado, vt + kvo + (size_t)pn * D * ATTN_W, D);
            }
            for (int r = 0; r < nrows; r++) {
                const int t = t0 + r;
                const size_t o = ((size_t)b * T + t) * qs + (size_t)h * D;
                float dl = 0.0f;
#pragma omp simd reduction(+ : dl)
                for (int i = 0; i < D; i++) dl += dout[o + i] * out[o + i];
                delta[((size_t)b * H + h) * T + t] = dl;
                const float l = lse[((size_t)b * H + h) * T + t];
                float *pr = p + (size_t)r * ld, *dr = ds + (size_t)r * ld;
#pragma omp simd
                for (int s = 0; s <= t; s++) dr[s] = attn_exp(pr[s] * scale - l) * (dr[s] - dl);
                for (int s = t + 1; s < nkeys; s++) dr[s] = 0.0f;
            }
            memset(g1, 0, (size_t)ATTN_ROWS * Dp * sizeof(float));
            const float *kfb = kf + ((size_t)b * Hkv + kh) * T * Dp;
            for (int c = 0; c < nc; c++)
                attn_mk(g1 + c * ATTN_W, Dp, ads, kfb + (size_t)c * T * ATTN_W, nkeys);
            for (int r = 0; r < nrows; r++) {
                float *dqt = dq + ((size_t)b * T + t0 + r) * qs + (size_t)h * D;
                for (int i = 0; i < D; i++) dqt[i] += scale * g1[(size_t)r * Dp + i];
            }
        }
        /* (implicit barrier: pass 2 reads every Delta) */

        /* Pass 2, per block of 48 keys s0.., over each query head of the group: S and dP
         * tiles for the queries t >= s0 as in pass 1, kept transposed as P^T and dS^T
         * (zero where t < s), then dv += P^T dout and dk += scale dS^T Q. */
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < ktasks; task++) {
            const int s0 = (int)(task % nkb) * ATTN_KBLOCK;
            const int kh = (int)(task / nkb % Hkv), b = (int)(task / nkb / Hkv);
            const int nk = T - s0 < ATTN_KBLOCK ? T - s0 : ATTN_KBLOCK;
            const int npk = (nk + ATTN_W - 1) / ATTN_W;
            const int nq = T - s0; /* queries s0 .. T-1 */
            const size_t kvo = ((size_t)b * Hkv + kh) * Tp * D + (size_t)s0 * D;
            memset(g1, 0, (size_t)ATTN_KBLOCK * Dp * sizeof(float));
            memset(g2, 0, (size_t)ATTN_KBLOCK * Dp * sizeof(float));
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                const float *lr = lse + ((size_t)b * H + h) * T;
                const float *dr = delta + ((size_t)b * H + h) * T;
                for (int t0 = s0; t0 < T; t0 += ATTN_ROWS) {
                    const int nrows = T - t0 < ATTN_ROWS ? T - t0 : ATTN_ROWS;
                    const float *aq[ATTN_ROWS], *ado[ATTN_ROWS];
                    for (int r = 0; r < ATTN_ROWS; r++) {
                        const int rr = r < nrows ? r : nrows - 1;
                        const size_t o = ((size_t)b * T + t0 + rr) * qs + (size_t)h * D;
                        aq[r] = q + o;
                        ado[r] = dout + o;
                    }
                    memset(sb, 0, sizeof sb);
                    memset(db, 0, sizeof db);
                    for (int pn = 0; pn < npk; pn++) {
                        const size_t po = kvo + (size_t)pn * D * ATTN_W;
                        attn_mk(sb + pn * ATTN_W, ATTN_KBLOCK, aq, kt + po, D);
                        attn_mk(db + pn * ATTN_W, ATTN_KBLOCK, ado, vt + po, D);
                    }
                    for (int r = 0; r < nrows; r++) {
                        const int t = t0 + r, jt = t - s0; /* key s0 + j is seen if j <= jt */
                        const int nj = jt + 1 < nk ? jt + 1 : nk;
                        const float l = lr[t], dl = dr[t];
                        float *sr = sb + r * ATTN_KBLOCK, *dpr = db + r * ATTN_KBLOCK;
#pragma omp simd
                        for (int j = 0; j < nj; j++) {
                            sr[j] = attn_exp(sr[j] * scale - l);
                            dpr[j] = sr[j] * (dpr[j] - dl);
                        }
                        for (int j = nj; j < nk; j++) sr[j] = dpr[j] = 0.0f;
                    }
                    /* Transpose the tile into columns t0 - s0 .. of P^T and dS^T. */
                    for (int j = 0; j < nk; j++) {
                        float *pj = p + (size_t)j * ld + (t0 - s0),
                              *dj = ds + (size_t)j * ld + (t0 - s0);
                        for (int r = 0; r < nrows; r++) {
                            pj[r] = sb[r * ATTN_KBLOCK + j];
                            dj[r] = db[r * ATTN_KBLOCK + j];
                        }
                    }
                }
                const float *ofb = of + ((size_t)b * H + h) * T * Dp + (size_t)s0 * ATTN_W;
                const float *qfb = qf + ((size_t)b * H + h) * T * Dp + (size_t)s0 * ATTN_W;
                for (int j0 = 0; j0 < nk; j0 += ATTN_ROWS) {
                    const float *ap[ATTN_ROWS], *ads[ATTN_ROWS];
                    for (int r = 0; r < ATTN_ROWS; r++) {
                        const int jj = j0 + r < nk ? j0 + r : nk - 1;
                        ap[r] = p + (size_t)jj * ld;
                        ads[r] = ds + (size_t)jj * ld;
                    }
                    /* Rows past nk land in g1/g2 rows that are never stored. */
                    for (int c = 0; c < nc; c++) {
                        const size_t go = (size_t)j0 * Dp + (size_t)c * ATTN_W;
                        attn_mk(g2 + go, Dp, ap, ofb + (size_t)c * T * ATTN_W, nq);
                        attn_mk(g1 + go, Dp, ads, qfb + (size_t)c * T * ATTN_W, nq);
                    }
                }
            }
            for (int j = 0; j < nk; j++) {
                const size_t o = ((size_t)b * T + s0 + j) * ks + (size_t)kh * D;
                for (int i = 0; i < D; i++) {
                    dk[o + i] += scale * g1[(size_t)j * Dp + i];
                    dv[o + i] += g2[(size_t)j * Dp + i];
                }
            }
        }
        free(p);
        free(ds);
        free(g1);
        free(g2);
    }
    free(kt);
    free(vt);
    free(kf);
    free(qf);
    free(of);
    free(delta);
}

/* Decode attention is memory-bound: each (row, kv head) task reads that head's cache once
 * and serves the whole query group from it, so GQA costs one cache pass, not H / Hkv. */
void attention_decode_cpu(float *out, const float *q, const float *kcache, const float *vcache,
                          const int *pos, int B, int Tc, int H, int Hkv, int D) {
    const float scale = (float)(1.0 / sqrt((double)D));
    const int group = H / Hkv;
    const size_t cs = (size_t)Hkv * D; /* position stride of the cache */
    const long tasks = (long)B * Hkv;
    /* a short cache pass is cheaper than waking the thread team */
    long work = 0;
    for (int b = 0; b < B; b++) work += (long)(pos[b] + 1) * group * D;
    work *= Hkv;
#pragma omp parallel if (work > 32768)
    {
        float *sc = attn_alloc((size_t)group * Tc * sizeof(float)); /* (group, Tc) S, then P */
#pragma omp for schedule(dynamic, 1)
        for (long task = 0; task < tasks; task++) {
            const int b = (int)(task / Hkv), kh = (int)(task % Hkv), n = pos[b] + 1;
            const float *kb = kcache + (size_t)b * Tc * cs + (size_t)kh * D;
            const float *vb = vcache + (size_t)b * Tc * cs + (size_t)kh * D;
            const float *qb = q + ((size_t)b * H + (size_t)kh * group) * D;
            float *ob = out + ((size_t)b * H + (size_t)kh * group) * D;
            for (int t = 0; t < n; t++) {
                const float *restrict kt = kb + (size_t)t * cs;
                for (int g = 0; g < group; g++) {
                    const float *restrict qg = qb + (size_t)g * D;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < D; i++) s = ATTN_FMA(qg[i], kt[i], s);
                    sc[(size_t)g * Tc + t] = s * scale;
                }
            }
            for (int g = 0; g < group; g++) {
                float *row = sc + (size_t)g * Tc;
                float m = -INFINITY;
                for (int t = 0; t < n; t++) m = row[t] > m ? row[t] : m;
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int t = 0; t < n; t++) {
                    row[t] = attn_exp(row[t] - m);
                    sum += row[t];
                }
                const float inv = 1.0f / sum;
#pragma omp simd
                for (int t = 0; t < n; t++) row[t] *= inv;
            }
            memset(ob, 0, (size_t)group * D * sizeof(float));
            for (int t = 0; t < n; t++) {
                const float *restrict vt = vb + (size_t)t * cs;
                for (int g = 0; g < group; g++) {
                    const float p = sc[(size_t)g * Tc + t];
                    float *restrict og = ob + (size_t)g * D;
#pragma omp simd
                    for (int i = 0; i < D; i++) og[i] = ATTN_FMA(p, vt[i], og[i]);
                }
            }
        }
        free(sc);
    }
}

void kv_cache_store_cpu(float *cache, const float *x, const int *pos, int B, int Tc, int width) {
    for (int b = 0; b < B; b++)
        memcpy(cache + ((size_t)b * Tc + pos[b]) * width, x + (size_t)b * width,
               (size_t)width * sizeof(float));
}

void kv_move_slots_cpu(void *kcache, void *vcache, const int *moves, int n, int L, int B_cap,
                       int Tc, int width, int es) {
    const size_t row = (size_t)Tc * width * es, layer = (size_t)B_cap * row;
    char *caches[2] = {kcache, vcache};
    for (int m = 0; m < n; m++) {
        const int dst = moves[3 * m], src = moves[3 * m + 1], len = moves[3 * m + 2];
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < L; l++)
                memcpy(caches[c] + l * layer + dst * row, caches[c] + l * layer + src * row,
                       (size_t)len * width * es);
    }
}

void decode_prep_cpu(float *qo, const float *q, const float *k, const float *v, int ldq, int ldkv,
                     float *kcache, float *vcache, const int *pos, const float *cos_t,
                     const float *sin_t, int B, int Tc, int H, int Hkv, int D) {
    const size_t qd = (size_t)H * D, kd = (size_t)Hkv * D;
    float *kr = attn_alloc(sizeof(float) * kd);
    for (int b = 0; b < B; b++) {
        float *qr = qo + b * qd;
        if (qr != q + (size_t)b * ldq) memcpy(qr, q + (size_t)b * ldq, sizeof(float) * qd);
        rope_forward_cpu(qr, pos + b, cos_t, sin_t, 1, H, D);
        memcpy(kr, k + (size_t)b * ldkv, sizeof(float) * kd);
        rope_forward_cpu(kr, pos + b, cos_t, sin_t, 1, Hkv, D);
        const size_t at = ((size_t)b * Tc + pos[b]) * kd;
        memcpy(kcache + at, kr, sizeof(float) * kd);
        memcpy(vcache + at, v + (size_t)b * ldkv, sizeof(float) * kd);
    }
    free(kr);
}

void attention_decode_prep_cpu(float *out, float *qo, const float *q, const float *k,
                               const float *v, int ldq, int ldkv, float *kcache, float *vcache,
                               const int *pos, const float *cos_t, const float *sin_t, int B,
                               int Tc, int H, int Hkv, int D) {
    decode_prep_cpu(qo, q, k, v, ldq, ldkv, kcache, vcache, pos, cos_t, sin_t, B, Tc, H, Hkv, D);
    attention_decode_cpu(out, qo, kcache, vcache, pos, B, Tc, H, Hkv, D);
}
