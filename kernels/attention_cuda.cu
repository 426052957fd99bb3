/* CUDA twins of attention.h in fp32: a flash-attention forward (K/V tiles in shared memory,
 * online softmax, only out and the row log-sum-exp written), a deterministic two-kernel
 * FlashAttention-2 backward (one kernel owns a key tile and sums dk, dv over every query
 * head of its group; another owns a query tile and sums dq; no atomics), a split-key decode
 * for one query per sequence against the KV cache (by default one whose warps each walk
 * their own key tiles with no block barrier; DENSERL_ATTN_DECODE=tiles selects the older
 * one whose whole block walks each tile), and the cache store.
 *
 * Every kernel but the warp decode gives one row (a query, or a key) to a group of G
 * adjacent lanes; lane i of the group holds float4 slices i, i + G, ... of the row's vectors
 * in registers (NV of them), and dot products finish with a butterfly over the group, which
 * leaves the same bits in every lane. G = 8 serves D <= 128, G = 16 serves D <= 256. */
#include "../kernels/bf16_cuda.cuh"
#include "../kernels/kernels_cuda.h"
#include "../kernels/rope_cuda.cuh"
#include "../runtime/cuda_util.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ATTN_NT        512 /* threads of the forward and backward blocks */
#define ATTN_BK        32  /* keys (or queries) per shared-memory tile */
#define ATTN_DEC_NT    256 /* threads of a decode block */
#define ATTN_FWD_CHUNK 16  /* keys per online-softmax step of the forward */

/* internal linkage: the bf16 attention file has kernels and helpers of the same names */
namespace {

/* ---- group helpers ---- */

/* Sum over the G lanes of an aligned group; every lane of it gets the same bits, since
 * each butterfly step adds the same two values (a + b == b + a exactly). */
template <int G> __device__ __forceinline__ float attn_group_sum(float a) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    return a;
}

/* This lane's part of x . y, x in registers, y a row of float4 (shared or global). */
template <int G, int NV>
__device__ __forceinline__ float attn_dot(const float4 (&x)[NV], const float4 *y, int lane,
                                          int D4) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c = lane + i * G;
        if (c < D4) {
            const float4 b = y[c];
            s = fmaf(x[i].x, b.x, s);
            s = fmaf(x[i].y, b.y, s);
            s = fmaf(x[i].z, b.z, s);
            s = fmaf(x[i].w, b.w, s);
        }
    }
    return s;
}

/* acc += a * y over this lane's slices. */
template <int G, int NV>
__device__ __forceinline__ void attn_axpy(float4 (&acc)[NV], float a, const float4 *y, int lane,
                                          int D4) {
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c = lane + i * G;
        if (c < D4) {
            const float4 b = y[c];
            acc[i].x = fmaf(a, b.x, acc[i].x);
            acc[i].y = fmaf(a, b.y, acc[i].y);
            acc[i].z = fmaf(a, b.z, acc[i].z);
            acc[i].w = fmaf(a, b.w, acc[i].w);
        }
    }
}

/* This lane's slices of row (zeros where invalid or past D). */
template <int G, int NV>
__device__ __forceinline__ void attn_load_row(float4 (&x)[NV], const float4 *row, bool valid,
                                              int lane, int D4) {
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c = lane + i * G;
        x[i] = (valid && c < D4) ? row[c] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

template <int NV> __device__ __forceinline__ void attn_zero(float4 (&x)[NV]) {
#pragma unroll
    for (int i = 0; i < NV; i++) x[i] = make_float4(0.f, 0.f, 0.f, 0.f);
}

/* dst[c] += a * x over this lane's slices. */
template <int G, int NV>
__device__ __forceinline__ void attn_add_row(float4 *dst, const float4 (&x)[NV], float a, int lane,
                                             int D4) {
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c = lane + i * G;
        if (c < D4) {
            float4 o = dst[c];
            o.x += a * x[i].x;
            o.y += a * x[i].y;
            o.z += a * x[i].z;
            o.w += a * x[i].w;
            dst[c] = o;
        }
    }
}

/* Stages rows t0 .. t0 + ATTN_BK - 1 of head hh of x (B, T, nh, D) into tile (ATTN_BK, D4),
 * zeros past T. All threads of the block take part. */
__device__ __forceinline__ void attn_stage(float4 *tile, const float *__restrict__ x, int b, int t0,
                                           int hh, int T, int nh, int D4) {
    for (int idx = threadIdx.x; idx < ATTN_BK * D4; idx += blockDim.x) {
        const int r = idx / D4, c = idx - r * D4, t = t0 + r;
        float4 val = make_float4(0.f, 0.f, 0.f, 0.f);
        if (t < T) val = ((const float4 *)(x + (((size_t)b * T + t) * nh + hh) * D4 * 4))[c];
        tile[idx] = val;
    }
}

/* ---- forward ---- */

/* One online-softmax step over keys 0 .. ATTN_FWD_CHUNK - 1 of the tiles ks, vs: key j is
 * masked when rel + j > 0 (rel = its index minus the query's). Key 0 of the sequence is in
 * the first step of every row, so mt is finite from there on and alpha = exp(-inf) = 0. */
template <int G, int NV>
__device__ __forceinline__ void
attn_fwd_chunk(float4 (&acc)[NV], float &m, float &l, const float4 (&qr)[NV], const float4 *ks,
               const float4 *vs, int rel, int lane, int D4, float scale) {
    float s[ATTN_FWD_CHUNK];
    float mt = m;
#pragma unroll
    for (int j = 0; j < ATTN_FWD_CHUNK; j++) {
        s[j] = attn_group_sum<G>(attn_dot<G, NV>(qr, ks + j * D4, lane, D4)) * scale;
        if (rel + j > 0) s[j] = -INFINITY; /* causal; also every key past T */
        mt = fmaxf(mt, s[j]);
    }
    const float alpha = expf(m - mt);
    float ps = 0.0f;
#pragma unroll
    for (int j = 0; j < ATTN_FWD_CHUNK; j++) {
        s[j] = expf(s[j] - mt);
        ps += s[j];
    }
    l = l * alpha + ps;
    m = mt;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        acc[i].x *= alpha;
        acc[i].y *= alpha;
        acc[i].z *= alpha;
        acc[i].w *= alpha;
    }
#pragma unroll
    for (int j = 0; j < ATTN_FWD_CHUNK; j++) attn_axpy<G, NV>(acc, s[j], vs + j * D4, lane, D4);
}

/* grid (ceil(T / BQ), H, B), BQ = ATTN_NT / G query rows per block; shared K and V tiles
 * (ATTN_BK, D) each. */
template <int G, int NV>
__global__ void __launch_bounds__(ATTN_NT, 1)
    attn_fwd_kernel(float *__restrict__ out, float *__restrict__ lse, const float *__restrict__ q,
                    const float *__restrict__ k, const float *__restrict__ v, int T, int H, int Hkv,
                    int D, float scale) {
    constexpr int BQ = ATTN_NT / G;
    extern __shared__ float4 attn_smem[];
    const int D4 = D >> 2, b = blockIdx.z, h = blockIdx.y, kh = h / (H / Hkv);
    float4 *ks = attn_smem, *vs = attn_smem + ATTN_BK * D4;
    const int lane = threadIdx.x % G, q0 = blockIdx.x * BQ, row = q0 + threadIdx.x / G;
    const bool valid = row < T;
    float4 qr[NV], acc[NV];
    attn_load_row<G, NV>(qr, (const float4 *)(q + (((size_t)b * T + row) * H + h) * D), valid, lane,
                         D4);
    attn_zero<NV>(acc);
    float m = -INFINITY, l = 0.0f;
    const int last = min(q0 + BQ, T) - 1; /* the block's last query sees keys 0 .. last */
    for (int k0 = 0; k0 <= last; k0 += ATTN_BK) {
        __syncthreads(); /* the previous tiles are consumed */
        attn_stage(ks, k, b, k0, kh, T, Hkv, D4);
        attn_stage(vs, v, b, k0, kh, T, Hkv, D4);
        __syncthreads();
#pragma unroll 1
        for (int j0 = 0; j0 < ATTN_BK; j0 += ATTN_FWD_CHUNK)
            attn_fwd_chunk<G, NV>(acc, m, l, qr, ks + j0 * D4, vs + j0 * D4, k0 + j0 - row, lane,
                                  D4, scale);
    }
    if (!valid) return;
    const float inv = 1.0f / l;
    float4 *o = (float4 *)(out + (((size_t)b * T + row) * H + h) * D);
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const int c = lane + i * G;
        if (c < D4)
            o[c] = make_float4(acc[i].x * inv, acc[i].y * inv, acc[i].z * inv, acc[i].w * inv);
    }
    if (lane == 0) lse[((size_t)b * H + h) * T + row] = m + logf(l);
}

/* ---- backward ---- */

/* Delta (B, H, T) = rowsum(dout * out), one warp per (b, t, h) row. */
__global__ void attn_delta_kernel(float *__restrict__ delta, const float *__restrict__ dout,
                                  const float *__restrict__ out, int B, int T, int H, int D) {
    const long n = (long)B * T * H, warps = (long)gridDim.x * (blockDim.x / 32);
    const int lane = threadIdx.x % 32;
    /* r is the same for the whole warp, so all of its lanes reach the shuffles */
    for (long r = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < n; r += warps) {
        const float *a = dout + r * D, *o = out + r * D;
        float s = 0.0f;
        for (int i = lane; i < D; i += 32) s = fmaf(a[i], o[i], s);
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        const int h = (int)(r % H), t = (int)(r / H % T), b = (int)(r / H / T);
        if (lane == 0) delta[((size_t)b * H + h) * T + t] = s;
    }
}

/* grid (ceil(T / BKV), Hkv, B), BKV = ATTN_NT / G keys per block. Each key row keeps k, v and
 * its dk, dv sums in registers and walks the queries t >= its tile's first key, of every
 * query head of its group in order, staged ATTN_BK at a time: P and dS recomputed from
 * q, k, lse and Delta, then dv += P dout and dk += dS q. Shared: q and dout tiles, lse and
 * Delta of the tile. */
template <int G, int NV>
__global__ void __launch_bounds__(ATTN_NT, 1)
    attn_bwd_dkdv_kernel(float *__restrict__ dk, float *__restrict__ dv,
                         const float *__restrict__ dout, const float *__restrict__ q,
                         const float *__restrict__ k, const float *__restrict__ v,
                         const float *__restrict__ lse, const float *__restrict__ delta, int T,
                         int H, int Hkv, int D, float scale) {
    constexpr int BKV = ATTN_NT / G;
    extern __shared__ float4 attn_smem[];
    const int D4 = D >> 2, b = blockIdx.z, kh = blockIdx.y, group = H / Hkv;
    float4 *qs = attn_smem, *ds = attn_smem + ATTN_BK * D4;
    float *ls = (float *)(ds + ATTN_BK * D4), *dls = ls + ATTN_BK;
    const int lane = threadIdx.x % G, k0 = blockIdx.x * BKV, key = k0 + threadIdx.x / G;
    const bool valid = key < T;
    const size_t ko = (((size_t)b * T + key) * Hkv + kh) * D;
    float4 kr[NV], vr[NV], dka[NV], dva[NV];
    attn_load_row<G, NV>(kr, (const float4 *)(k + ko), valid, lane, D4);
    attn_load_row<G, NV>(vr, (const float4 *)(v + ko), valid, lane, D4);
    attn_zero<NV>(dka);
    attn_zero<NV>(dva);
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        const float *lh = lse + ((size_t)b * H + h) * T, *dh = delta + ((size_t)b * H + h) * T;
        for (int t0 = k0; t0 < T; t0 += ATTN_BK) {
            __syncthreads();
            attn_stage(qs, q, b, t0, h, T, H, D4);
            attn_stage(ds, dout, b, t0, h, T, H, D4);
            if (threadIdx.x < ATTN_BK) {
                const int t = t0 + threadIdx.x;
                ls[threadIdx.x] = t < T ? lh[t] : 0.0f;
                dls[threadIdx.x] = t < T ? dh[t] : 0.0f;
            }
            __syncthreads();
#pragma unroll 2
            for (int r = 0; r < ATTN_BK; r++) {
                const float4 *qt = qs + r * D4, *dt = ds + r * D4;
                const float sc = attn_group_sum<G>(attn_dot<G, NV>(kr, qt, lane, D4));
                const float dp = attn_group_sum<G>(attn_dot<G, NV>(vr, dt, lane, D4));
                const int t = t0 + r;
                const float p = (t >= key && t < T) ? expf(sc * scale - ls[r]) : 0.0f;
                const float dsc = p * (dp - dls[r]);
                attn_axpy<G, NV>(dva, p, dt, lane, D4);
                attn_axpy<G, NV>(dka, dsc, qt, lane, D4);
            }
        }
    }
    if (!valid) return;
    attn_add_row<G, NV>((float4 *)(dk + ko), dka, scale, lane, D4);
    attn_add_row<G, NV>((float4 *)(dv + ko), dva, 1.0f, lane, D4);
}

/* grid (ceil(T / BQ), H, B), BQ = ATTN_NT / G query rows per block. Each query row keeps q,
 * dout and its dq sum in registers and walks the keys 0 .. its causal limit, staged
 * ATTN_BK at a time: dS recomputed as in the dk/dv kernel, dq += dS k. */
template <int G, int NV>
__global__ void __launch_bounds__(ATTN_NT, 1)
    attn_bwd_dq_kernel(float *__restrict__ dq, const float *__restrict__ dout,
                       const float *__restrict__ q, const float *__restrict__ k,
                       const float *__restrict__ v, const float *__restrict__ lse,
                       const float *__restrict__ delta, int T, int H, int Hkv, int D, float scale) {
    constexpr int BQ = ATTN_NT / G;
    extern __shared__ float4 attn_smem[];
    const int D4 = D >> 2, b = blockIdx.z, h = blockIdx.y, kh = h / (H / Hkv);
    float4 *ks = attn_smem, *vs = attn_smem + ATTN_BK * D4;
    const int lane = threadIdx.x % G, q0 = blockIdx.x * BQ, row = q0 + threadIdx.x / G;
    const bool valid = row < T;
    const size_t qo = (((size_t)b * T + row) * H + h) * D;
    float4 qr[NV], dor[NV], dqa[NV];
    attn_load_row<G, NV>(qr, (const float4 *)(q + qo), valid, lane, D4);
    attn_load_row<G, NV>(dor, (const float4 *)(dout + qo), valid, lane, D4);
    attn_zero<NV>(dqa);
    const float l = valid ? lse[((size_t)b * H + h) * T + row] : 0.0f;
    const float dl = valid ? delta[((size_t)b * H + h) * T + row] : 0.0f;
    const int last = min(q0 + BQ, T) - 1;
    for (int k0 = 0; k0 <= last; k0 += ATTN_BK) {
        __syncthreads();
        attn_stage(ks, k, b, k0, kh, T, Hkv, D4);
        attn_stage(vs, v, b, k0, kh, T, Hkv, D4);
        __syncthreads();
#pragma unroll 2
        for (int j = 0; j < ATTN_BK; j++) {
            const float4 *kt = ks + j * D4;
            const float sc = attn_group_sum<G>(attn_dot<G, NV>(qr, kt, lane, D4));
            const float dp = attn_group_sum<G>(attn_dot<G, NV>(dor, vs + j * D4, lane, D4));
            const float p = (k0 + j <= row) ? expf(sc * scale - l) : 0.0f;
            attn_axpy<G, NV>(dqa, p * (dp - dl), kt, lane, D4);
        }
    }
    if (valid) attn_add_row<G, NV>((float4 *)(dq + qo), dqa, scale, lane, D4);
}

/* ---- decode ---- */

/* Query heads of one kv group per decode block; a larger group takes several blocks, each
 * reading the group's K and V. */
#define ATTN_DEC_QC 8
/* Fewest keys worth a split of their own. */
#define ATTN_DEC_MINK 64
/* dr_cuda_scratch slot of the decode's split partials: slot 6 (SCRATCH_ATTN) holds the
 * backward's Delta, and 7 is used nowhere else. */
#define ATTN_DEC_SCRATCH 7

/* Keys per shared-memory tile of the decode, from the widest row the instantiation serves:
 * a K (or V) tile holds at least ATTN_DEC_NT float4, so each thread fetches one or two of
 * each per tile, and at most 32 keys, so one warp holds a tile's scores of one query. */
__host__ __device__ constexpr int attn_dec_bk(int d4max) {
    return d4max <= 16 ? 32 : d4max <= 32 ? 16 : 8;
}

/* Four consecutive cache entries as loaded (AttnDecRaw: a float4 of an fp32 cache, or four
 * bf16 of a bf16 one in a uint2, which takes half the registers in flight), and as floats
 * (attn_dec_widen: a bf16 is the high half of its float, so widening is exact). */
template <typename CT> struct AttnDecRaw { using T = float4; };
template <> struct AttnDecRaw<uint16_t> { using T = uint2; };
__device__ __forceinline__ float4 attn_dec_raw(const float *p) {
    return *(const float4 *)p;
}
__device__ __forceinline__ uint2 attn_dec_raw(const uint16_t *p) {
    return *(const uint2 *)p;
}
__device__ __forceinline__ float4 attn_dec_widen(float4 r) {
    return r;
}
__device__ __forceinline__ float4 attn_dec_widen(uint2 h) {
    return make_float4(bf16_lo(h.x), bf16_hi(h.x), bf16_lo(h.y), bf16_hi(h.y));
}
template <typename CT> __device__ __forceinline__ float4 attn_dec_load4(const CT *p) {
    return attn_dec_widen(attn_dec_raw(p));
}

/* x as a cache holds it: fp32 as it is, or bf16 rounded to nearest even. */
template <typename CT> __device__ __forceinline__ CT kv_cast(float x);
template <> __device__ __forceinline__ float kv_cast<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ uint16_t kv_cast<uint16_t>(float x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
}

/* Four output values at float4 index i4 of a decode's out: as floats, or as bf16 rounded to
 * nearest even (the o projection's input, so no cast pass is needed between the two). */
__device__ __forceinline__ void attn_dec_put(float *out, size_t i4, float4 v) {
    ((float4 *)out)[i4] = v;
}
__device__ __forceinline__ void attn_dec_put(uint16_t *out, size_t i4, float4 v) {
    ((uint2 *)out)[i4] = make_uint2(bf16_pack2(v.x, v.y), bf16_pack2(v.z, v.w));
}

/* This thread's slots of the K and V tile at keys t0 .. t0 + BK - 1 of [.., tend): slot i is
 * row lr[i], float4 column lc[i] (rows >= BK: no slot); zeros past tend, which is never
 * past pos[b], so no cache entry past it is read. kb, vb point at the (b, kh) head of key 0;
 * rs is the element distance between positions. */
template <int LPT, int BK, typename CT>
__device__ __forceinline__ void attn_dec_fetch(float4 (&pk)[LPT], float4 (&pv)[LPT],
                                               const CT *__restrict__ kb, const CT *__restrict__ vb,
                                               size_t rs, const int (&lr)[LPT],
                                               const int (&lc)[LPT], int t0, int tend) {
#pragma unroll
    for (int i = 0; i < LPT; i++) {
        pk[i] = make_float4(0.f, 0.f, 0.f, 0.f);
        pv[i] = pk[i];
        const int t = t0 + lr[i];
        if (lr[i] < BK && t < tend) {
            const size_t o = (size_t)t * rs + (size_t)lc[i] * 4;
            pk[i] = attn_dec_load4(kb + o);
            pv[i] = attn_dec_load4(vb + o);
        }
    }
}

/* x[0] + x[stride] + ... + x[(np - 1) * stride], in that order. */
__device__ __forceinline__ float4 attn_dec_phase_sum(const float4 *x, int np, int stride) {
    float4 r = x[0];
    for (int p = 1; p < np; p++) {
        const float4 a = x[p * stride];
        r.x += a.x;
        r.y += a.y;
        r.z += a.z;
        r.w += a.w;
    }
    return r;
}

/* What block (s, kh * nqc + qc, b) of a decode grid (S, Hkv * nqc, B) serves: query heads
 * h0 .. h0 + Gq - 1 (h0 = kh * group + qc * ATTN_DEC_QC) of row b, adjacent in q from row
 * r0 = (b, h0), over keys tbeg .. tend - 1 of the row's n = pos[b] + 1: the row cut into S
 * chunks of whole tiles of bk keys, at least mink keys each (S <= ceil(Tc / mink), so no
 * overflow). A split past the row's end (never split 0, as n >= 1) writes m = -inf for the
 * combine to skip, and the caller returns when empty is set. */
struct AttnDecTask {
    size_t r0;
    int kh, qc, Gq, tbeg, tend;
    bool empty;
};

__device__ __forceinline__ AttnDecTask attn_dec_task(float *pml, const int *pos, int Tc, int H,
                                                     int Hkv, int mink, int bk) {
    const int QC = ATTN_DEC_QC, S = gridDim.x, s = blockIdx.x, b = blockIdx.z;
    const int group = H / Hkv, nqc = (group + QC - 1) / QC;
    AttnDecTask t;
    t.kh = blockIdx.y / nqc;
    t.qc = blockIdx.y % nqc;
    t.Gq = min(QC, group - t.qc * QC);
    t.r0 = (size_t)b * H + (size_t)t.kh * group + (size_t)t.qc * QC;
    const int n = min(pos[b] + 1, Tc);
    int chunk = max((n + S - 1) / S, mink);
    chunk = (chunk + bk - 1) / bk * bk;
    t.tbeg = s * chunk;
    t.tend = min(n, t.tbeg + chunk);
    t.empty = t.tbeg >= t.tend;
    if (t.empty && (int)threadIdx.x < t.Gq) {
        pml[((t.r0 + threadIdx.x) * S + s) * 2] = -INFINITY;
        pml[((t.r0 + threadIdx.x) * S + s) * 2 + 1] = 0.0f;
    }
    return t;
}

/* grid (S, Hkv * nqc, B), ATTN_DEC_NT threads: block (s, kh, qc, b) serves query heads
 * h0 .. h0 + Gq - 1 (h0 = kh * group + qc * ATTN_DEC_QC) of row b over split s of the keys
 * 0 .. pos[b], so each K and V row of the cache is read once for its whole query group.
 * The row's n = pos[b] + 1 keys are cut into S chunks of whole tiles (at least
 * ATTN_DEC_MINK keys), so a split past the row's end is empty. Per tile: all threads stage
 * K and V in shared memory (the next tile is fetched into registers meanwhile); lane group
 * grp scores key grp % BK against queries grp / BK, grp / BK + NG / BK, ...; warp g runs
 * the online softmax of query g over the tile; then thread (ph, c) adds P V for float4
 * column c over keys ph, ph + NP, ... of the tile, for every query of the block, all
 * against the same running max, so the NP phases sum at the end without rescaling.
 * S == 1 writes out; otherwise each (b, h, s) leaves acc (unnormalised, relative to its
 * max m) in pacc (B, H, S, D) and (m, l) in pml (B, H, S, 2), m = -inf for an empty
 * split, for attn_decode_combine_kernel. */
template <int G, int NV, typename CT, typename OT>
__global__ void __launch_bounds__(ATTN_DEC_NT, 2)
    attn_decode_split_kernel(OT *__restrict__ out, float *__restrict__ pacc,
                             float *__restrict__ pml, const float *__restrict__ q,
                             const CT *__restrict__ kc, const CT *__restrict__ vc,
                             const int *__restrict__ pos, int Tc, int H, int Hkv, int D,
                             float scale) {
    constexpr int NT = ATTN_DEC_NT, QC = ATTN_DEC_QC, D4M = G * NV, BK = attn_dec_bk(D4M);
    constexpr int NG = NT / G, GSTEP = NG / BK, LPT = (BK * D4M + NT - 1) / NT;
    /* every lane group of a warp scores the same queries (the loop over g is warp-uniform,
     * so all lanes reach the shuffles); one warp per query; red fits in ks */
    static_assert(NG % BK == 0 && BK % (32 / G) == 0 && BK <= 32, "decode score layout");
    static_assert(QC <= NT / 32 && BK * D4M >= NT, "decode softmax and merge layout");
    __shared__ float4 ks[BK * D4M], vs[BK * D4M], qs[QC * D4M];
    __shared__ float ss[QC * BK], salpha[QC], sml[2 * QC];

    const int tid = threadIdx.x, D4 = D >> 2, S = gridDim.x, s = blockIdx.x, b = blockIdx.z;
    const AttnDecTask tk = attn_dec_task(pml, pos, Tc, H, Hkv, ATTN_DEC_MINK, BK);
    if (tk.empty) return;
    const int kh = tk.kh, Gq = tk.Gq, tbeg = tk.tbeg, tend = tk.tend;
    const size_t r0 = tk.r0;

    /* the block's query rows are adjacent in q (B, H, D) */
    for (int i = tid; i < Gq * D4; i += NT) qs[i] = ((const float4 *)(q + r0 * D))[i];

    const size_t rs = (size_t)Hkv * D;
    const CT *kb = kc + (size_t)b * Tc * rs + (size_t)kh * D;
    const CT *vb = vc + (size_t)b * Tc * rs + (size_t)kh * D;
    int lr[LPT], lc[LPT];
#pragma unroll
    for (int i = 0; i < LPT; i++) {
        const int idx = tid + i * NT;
        lr[i] = idx / D4;
        lc[i] = idx - lr[i] * D4;
    }
    const int lane = tid % G, grp = tid / G, js = grp % BK, gs = grp / BK; /* scores */
    const int warp = tid / 32, l32 = tid % 32;                             /* softmax */
    const int NP = NT / D4, ph = tid / D4, pc = tid - ph * D4;             /* P V */
    const bool pv_on = ph < NP;
    float m = -INFINITY, l = 0.0f; /* of query warp, in warp warp < Gq */
    float4 acc[QC];
    attn_zero<QC>(acc);
    float4 pk[LPT], pv[LPT];
    attn_dec_fetch<LPT, BK, CT>(pk, pv, kb, vb, rs, lr, lc, tbeg, tend);

    for (int t0 = tbeg; t0 < tend; t0 += BK) {
        __syncthreads(); /* the previous tile (and its scores) is consumed */
#pragma unroll
        for (int i = 0; i < LPT; i++)
            if (lr[i] < BK) {
                ks[tid + i * NT] = pk[i];
                vs[tid + i * NT] = pv[i];
            }
        if (t0 + BK < tend) attn_dec_fetch<LPT, BK, CT>(pk, pv, kb, vb, rs, lr, lc, t0 + BK, tend);
        __syncthreads();
        {
            float4 kr[NV];
            attn_load_row<G, NV>(kr, ks + js * D4, true, lane, D4);
            const bool live = t0 + js < tend;
            for (int g = gs; g < Gq; g += GSTEP) {
                const float d = attn_group_sum<G>(attn_dot<G, NV>(kr, qs + g * D4, lane, D4));
                if (lane == 0) ss[g * BK + js] = live ? d * scale : -INFINITY;
            }
        }
        __syncthreads();
        if (warp < Gq) {
            /* the tile holds a live key (t0 < tend), so mt and mn are finite */
            const float sc = l32 < BK ? ss[warp * BK + l32] : -INFINITY;
            float mt = sc;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            const float mn = fmaxf(m, mt), alpha = expf(m - mn), p = expf(sc - mn);
            const float ps = attn_group_sum<32>(p);
            l = l * alpha + ps;
            m = mn;
            if (l32 < BK) ss[warp * BK + l32] = p;
            if (l32 == 0) salpha[warp] = alpha;
        }
        __syncthreads();
        if (pv_on) {
#pragma unroll
            for (int g = 0; g < QC; g++) {
                const float a = g < Gq ? salpha[g] : 1.0f;
                if (a != 1.0f) { /* x * 1 == x, so skipping leaves the same bits */
                    acc[g].x *= a;
                    acc[g].y *= a;
                    acc[g].z *= a;
                    acc[g].w *= a;
                }
            }
            for (int j = ph; j < BK; j += NP) {
                const float4 w = vs[j * D4 + pc];
#pragma unroll
                for (int g = 0; g < QC; g++) {
                    if (g < Gq) {
                        const float p = ss[g * BK + j];
                        acc[g].x = fmaf(p, w.x, acc[g].x);
                        acc[g].y = fmaf(p, w.y, acc[g].y);
                        acc[g].z = fmaf(p, w.z, acc[g].z);
                        acc[g].w = fmaf(p, w.w, acc[g].w);
                    }
                }
            }
        }
    }

    /* sum the NP phases of each query in a fixed order, through ks */
    if (warp < Gq && l32 == 0) {
        sml[2 * warp] = m;
        sml[2 * warp + 1] = l;
    }
    float4 *red = ks;
#pragma unroll
    for (int g = 0; g < QC; g++) {
        if (g >= Gq) break; /* Gq is the same for the whole block */
        __syncthreads();    /* red is free (and sml written) */
        if (pv_on) red[ph * D4 + pc] = acc[g];
        __syncthreads();
        for (int c = tid; c < D4; c += NT) {
            const float4 r = attn_dec_phase_sum(red + c, NP, D4);
            if (S == 1) {
                const float inv = 1.0f / sml[2 * g + 1];
                attn_dec_put(out, (r0 + g) * D4 + c,
                             make_float4(r.x * inv, r.y * inv, r.z * inv, r.w * inv));
            } else {
                ((float4 *)pacc)[((r0 + g) * S + s) * D4 + c] = r;
            }
        }
        if (S > 1 && tid == 0) {
            pml[((r0 + g) * S + s) * 2] = sml[2 * g];
            pml[((r0 + g) * S + s) * 2 + 1] = sml[2 * g + 1];
        }
    }
}

/* One warp per (b, h) row of rows = B * H: merges the S split partials in split order,
 * skipping empty ones (m = -inf; their acc is never written). Split 0 is never empty, so
 * M is finite. */
template <typename OT>
__global__ void attn_decode_combine_kernel(OT *__restrict__ out, const float *__restrict__ pacc,
                                           const float *__restrict__ pml, int rows, int S, int D4) {
    const long r = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (r >= rows) return; /* no shuffles or barriers below */
    const int lane = threadIdx.x % 32;
    const float *ml = pml + r * S * 2;
    float M = -INFINITY;
    for (int s = 0; s < S; s++) M = fmaxf(M, ml[2 * s]);
    float L = 0.0f;
    for (int s = 0; s < S; s++)
        if (ml[2 * s] != -INFINITY) L += ml[2 * s + 1] * expf(ml[2 * s] - M);
    const float inv = 1.0f / L;
    for (int c = lane; c < D4; c += 32) {
        float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int s = 0; s < S; s++) {
            const float ms = ml[2 * s];
            if (ms == -INFINITY) continue;
            const float w = expf(ms - M);
            const float4 a = ((const float4 *)pacc)[(r * S + s) * D4 + c];
            o.x = fmaf(w, a.x, o.x);
            o.y = fmaf(w, a.y, o.y);
            o.z = fmaf(w, a.z, o.z);
            o.w = fmaf(w, a.w, o.w);
        }
        attn_dec_put(out, r * D4 + c, make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv));
    }
}

/* ---- decode by independent warps ---- */

/* decode_prep's inputs when attn_decode_warp_kernel does its work too: the q|k|v product's
 * rows (ldq, ldkv floats apart), the rotary tables, and the caches, which take the new key
 * and value. q NULL: the kernel's q argument holds rotated queries and the caches are
 * complete. */
template <typename CT> struct AttnDecPrep {
    const float *q, *k, *v;
    int ldq, ldkv;
    const float *cos_t, *sin_t;
    CT *kc, *vc;
};

/* Warps of a block of attn_decode_warp_kernel, and the fewest keys a split gets: a tile
 * for each warp. */
#define ATTN_DECW_NW   4
#define ATTN_DECW_MINK (ATTN_DECW_NW * 32)

/* Bytes of attn_decode_warp_kernel's dynamic shared memory: the block's queries (QC x D4
 * float4), each warp's probabilities of its tile (32 keys x QC), each warp's partial sums
 * (QC x 32 x CPL float4, a slot a lane), each warp's (max, sum) per query, and the new key
 * and value as the cache holds them (up to D floats each). */
static size_t attn_decw_smem(int D4, int cpl) {
    const int NW = ATTN_DECW_NW, QC = ATTN_DEC_QC;
    return (size_t)(QC * D4 + NW * 32 * QC / 4 + NW * QC * 32 * cpl + 2 * D4) * sizeof(float4) +
           (size_t)NW * QC * 2 * sizeof(float);
}

/* decode_prep's work for one decode block (all its threads): its query heads h0 ..
 * h0 + Gq - 1 of row b rotated by p into qf (Gq x D); with fresh, kv head kh's new key
 * (rotated) and value as the cache holds them into knew, vnew; with store, into the caches
 * at p too. The rotations are decode_prep_kernel's, so the bits are the same. */
template <typename CT>
__device__ void attn_dec_prep(float *qf, CT *knew, CT *vnew, const AttnDecPrep<CT> &pr, size_t h0,
                              int Gq, int kh, int b, int p, bool fresh, bool store, int Tc, int Hkv,
                              int D) {
    const int half = D / 2;
    const float *cs = pr.cos_t + (size_t)p * half, *sn = pr.sin_t + (size_t)p * half;
    const float *qr = pr.q + (size_t)b * pr.ldq + h0 * D;
    for (int i = threadIdx.x; i < Gq * half; i += blockDim.x) {
        const int g = i / half, j = i - g * half;
        float a = qr[g * D + j], e = qr[g * D + j + half];
        rope_rot(a, e, cs[j], sn[j]);
        qf[g * D + j] = a;
        qf[g * D + j + half] = e;
    }
    if (!fresh) return;
    const size_t o = (size_t)b * pr.ldkv + (size_t)kh * D;
    const size_t co = ((size_t)b * Tc + p) * Hkv * D + (size_t)kh * D;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float a = pr.k[o + j], e = pr.k[o + j + half];
        rope_rot(a, e, cs[j], sn[j]);
        knew[j] = kv_cast<CT>(a);
        knew[j + half] = kv_cast<CT>(e);
        vnew[j] = kv_cast<CT>(pr.v[o + j]);
        vnew[j + half] = kv_cast<CT>(pr.v[o + j + half]);
        if (store) {
            pr.kc[co + j] = knew[j], pr.kc[co + j + half] = knew[j + half];
            pr.vc[co + j] = vnew[j], pr.vc[co + j + half] = vnew[j + half];
        }
    }
}

/* grid (S, Hkv * nqc, B), ATTN_DECW_NW warps: block (s, kh, qc, b) serves the same query
 * heads and split of the keys as attn_decode_split_kernel, but its warps run apart, with no
 * block barrier until the end: warp w takes the 32-key tiles w, w + NW, ... of the split
 * and keeps its own online softmax. In a tile, lane j scores key j against every query of
 * the block (the key read straight from the cache, the queries from shared memory), a
 * warp max per query moves the running max, the probabilities go through the warp's shared
 * slots, and lane (kp, c) adds P V for float4 column c (and c + 32 when CPL = 2) over the
 * keys kp, kp + KP, ... (KP = 32 / D4 phases when D4 <= 32). The end merges the warps'
 * (max, sum, partial P V) in warp order, the phases in phase order, so the bits do not
 * depend on timing. Output as attn_decode_split_kernel's. With pr.q the block first does
 * decode_prep's work for itself (attn_dec_prep): its queries rotated into shared memory, and
 * in the split that holds the new key p its key and value as the cache holds them, which the
 * lanes take in place of the cache's entry p (read, never used) while one block stores them;
 * so no block reads what another writes. */
template <int CPL, typename CT, typename OT>
__global__ void __launch_bounds__(ATTN_DECW_NW * 32)
    attn_decode_warp_kernel(OT *__restrict__ out, float *__restrict__ pacc, float *__restrict__ pml,
                            const float *__restrict__ q, const CT *__restrict__ kc,
                            const CT *__restrict__ vc, const int *__restrict__ pos, int Tc, int H,
                            int Hkv, int D, float scale, AttnDecPrep<CT> pr) {
    constexpr int NW = ATTN_DECW_NW, NT = NW * 32, QC = ATTN_DEC_QC;
    /* cache loads a lane issues together (key columns in the scores, keys in P V): as many
     * as 32 registers hold */
    constexpr int LB = sizeof(CT) == 2 ? 16 : 8;
    using Raw = typename AttnDecRaw<CT>::T;
    static_assert(QC == 8, "a key's probabilities are read as two float4");
    extern __shared__ float4 attn_decw_smem4[];
    const int tid = threadIdx.x, w = tid / 32, lane = tid % 32, D4 = D >> 2;
    const int S = gridDim.x, s = blockIdx.x, b = blockIdx.z;
    const AttnDecTask tk = attn_dec_task(pml, pos, Tc, H, Hkv, ATTN_DECW_MINK, 32);
    if (tk.empty) return;
    const int kh = tk.kh, Gq = tk.Gq, tbeg = tk.tbeg, tend = tk.tend;
    const size_t r0 = tk.r0;
    float4 *qs = attn_decw_smem4;                      /* QC x D4 */
    float *pw = (float *)(qs + QC * D4) + w * 32 * QC; /* this warp's 32 keys x QC */
    float4 *part = qs + QC * D4 + NW * 32 * QC / 4;    /* NW x QC x 32 * CPL */
    float *mls = (float *)(part + NW * QC * 32 * CPL); /* NW x QC x (max, sum) */
    CT *knew = (CT *)(mls + NW * QC * 2), *vnew = knew + D;
    const size_t rs = (size_t)Hkv * D;
    const int pn = pos[b]; /* the new key's position */
    /* with decode_prep's work: this split's keys end at the new one */
    const bool fresh = pr.q && tbeg <= pn && pn < tend;
    if (pr.q)
        attn_dec_prep<CT>((float *)qs, knew, vnew, pr, r0 - (size_t)b * H, Gq, kh, b, pn, fresh,
                          fresh && tk.qc == 0, Tc, Hkv, D);
    else
        for (int i = tid; i < Gq * D4; i += NT) qs[i] = ((const float4 *)(q + r0 * D))[i];
    __syncthreads();

    const CT *kb = kc + (size_t)b * Tc * rs + (size_t)kh * D;
    const CT *vb = vc + (size_t)b * Tc * rs + (size_t)kh * D;
    const int KP = CPL == 1 ? 32 / D4 : 1, kp = CPL == 1 ? lane / D4 : 0;
    const int lc = lane - kp * D4; /* this lane's first float4 column */
    float m[QC], l[QC];            /* m the same in every lane; l this lane's part */
    float4 acc[QC][CPL];
#pragma unroll
    for (int g = 0; g < QC; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
        attn_zero<CPL>(acc[g]);
    }
    for (int t0 = tbeg + w * 32; t0 < tend; t0 += NW * 32) {
        const bool live = t0 + lane < tend;
        float sc[QC];
#pragma unroll
        for (int g = 0; g < QC; g++) sc[g] = 0.0f;
        if (live) { /* LB columns at a time, their loads issued together */
            const CT *kr = kb + (size_t)(t0 + lane) * rs;
            const bool isnew = fresh && t0 + lane == pn; /* from knew: see attn_dec_prep */
#pragma unroll 1
            for (int c0 = 0; c0 < D4; c0 += LB) {
                Raw k4[LB];
#pragma unroll
                for (int u = 0; u < LB; u++)
                    k4[u] = c0 + u < D4 ? attn_dec_raw(kr + 4 * (c0 + u)) : Raw{};
                if (isnew)
#pragma unroll
                    for (int u = 0; u < LB; u++)
                        if (c0 + u < D4) k4[u] = attn_dec_raw(knew + 4 * (c0 + u));
#pragma unroll
                for (int u = 0; u < LB; u++) {
                    if (c0 + u >= D4) break;
                    const float4 k = attn_dec_widen(k4[u]);
#pragma unroll
                    for (int g = 0; g < QC; g++)
                        if (g < Gq) {
                            const float4 q4 = qs[g * D4 + c0 + u];
                            sc[g] = fmaf(q4.x, k.x, sc[g]);
                            sc[g] = fmaf(q4.y, k.y, sc[g]);
                            sc[g] = fmaf(q4.z, k.z, sc[g]);
                            sc[g] = fmaf(q4.w, k.w, sc[g]);
                        }
                }
            }
        }
#pragma unroll
        for (int g = 0; g < QC; g++) {
            if (g >= Gq) break; /* the same in every lane */
            /* lane 0's key is live (t0 < tend), so mt and mn are finite */
            const float x = live ? sc[g] * scale : -INFINITY;
            float mt = x;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
            const float mn = fmaxf(m[g], mt), alpha = expf(m[g] - mn), p = expf(x - mn);
            l[g] = l[g] * alpha + p;
            m[g] = mn;
            pw[lane * QC + g] = p;
            if (alpha != 1.0f) /* x * 1 == x, so skipping leaves the same bits */
#pragma unroll
                for (int i = 0; i < CPL; i++) {
                    acc[g][i].x *= alpha;
                    acc[g][i].y *= alpha;
                    acc[g][i].z *= alpha;
                    acc[g][i].w *= alpha;
                }
        }
        __syncwarp();
        if (kp < KP) { /* VB keys at a time, their loads issued together */
            constexpr int VB = LB / CPL;
            const int nk = min(32, tend - t0);
#pragma unroll 1
            for (int j0 = kp; j0 < nk; j0 += VB * KP) {
                Raw v4[VB][CPL];
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const CT *vr = vb + (size_t)(t0 + j0 + u * KP) * rs;
#pragma unroll
                    for (int i = 0; i < CPL; i++)
                        v4[u][i] = j0 + u * KP < nk && lc + 32 * i < D4
                                       ? attn_dec_raw(vr + 4 * (lc + 32 * i))
                                       : Raw{};
                }
                if (fresh) /* the new key's value from vnew */
#pragma unroll
                    for (int u = 0; u < VB; u++)
#pragma unroll
                        for (int i = 0; i < CPL; i++)
                            if (t0 + j0 + u * KP == pn && lc + 32 * i < D4)
                                v4[u][i] = attn_dec_raw(vnew + 4 * (lc + 32 * i));
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const int j = j0 + u * KP;
                    if (j >= nk) break;
                    const float4 pa = ((const float4 *)(pw + j * QC))[0];
                    const float4 pb = ((const float4 *)(pw + j * QC))[1];
                    const float pj[QC] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
                    for (int i = 0; i < CPL; i++) {
                        const float4 v = attn_dec_widen(v4[u][i]);
#pragma unroll
                        for (int g = 0; g < QC; g++)
                            if (g < Gq) {
                                acc[g][i].x = fmaf(pj[g], v.x, acc[g][i].x);
                                acc[g][i].y = fmaf(pj[g], v.y, acc[g][i].y);
                                acc[g][i].z = fmaf(pj[g], v.z, acc[g][i].z);
                                acc[g][i].w = fmaf(pj[g], v.w, acc[g][i].w);
                            }
                    }
                }
            }
        }
        __syncwarp(); /* the tile's probabilities are read before the next overwrites them */
    }

    /* each warp leaves its (max, sum) and its lanes' partials, read back in fixed order */
#pragma unroll
    for (int g = 0; g < QC; g++) {
        if (g >= Gq) break;
        const float lw = attn_group_sum<32>(l[g]);
        if (lane == 0) {
            mls[(w * QC + g) * 2] = m[g];
            mls[(w * QC + g) * 2 + 1] = lw;
        }
#pragma unroll
        for (int i = 0; i < CPL; i++) part[((w * QC + g) * CPL + i) * 32 + lane] = acc[g][i];
    }
    __syncthreads();
    for (int idx = tid; idx < Gq * D4; idx += NT) {
        const int g = idx / D4, c = idx - g * D4;
        float M = -INFINITY, L = 0.0f;
        for (int v = 0; v < NW; v++) M = fmaxf(M, mls[(v * QC + g) * 2]);
        float4 r = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int v = 0; v < NW; v++) {
            const float mv = mls[(v * QC + g) * 2];
            if (mv == -INFINITY) continue; /* a warp with no tile of this split */
            const float e = expf(mv - M);
            L += mls[(v * QC + g) * 2 + 1] * e;
            const float4 *pv = part + (size_t)(v * QC + g) * CPL * 32;
            /* slots kp * D4 + c (CPL = 1), or slot c (CPL = 2, one phase) */
            const float4 a = attn_dec_phase_sum(pv + c, KP, D4);
            r.x = fmaf(e, a.x, r.x);
            r.y = fmaf(e, a.y, r.y);
            r.z = fmaf(e, a.z, r.z);
            r.w = fmaf(e, a.w, r.w);
        }
        if (S == 1) {
            const float inv = 1.0f / L;
            attn_dec_put(out, (r0 + g) * D4 + c,
                         make_float4(r.x * inv, r.y * inv, r.z * inv, r.w * inv));
        } else {
            ((float4 *)pacc)[((r0 + g) * S + s) * D4 + c] = r;
            if (c == 0) {
                pml[((r0 + g) * S + s) * 2] = M;
                pml[((r0 + g) * S + s) * 2 + 1] = L;
            }
        }
    }
}

} // namespace

/* ---- host side ---- */

static void attn_check_shape(const char *fn, int H, int Hkv, int D) {
    if (D <= 0 || D > 256 || D % 4 != 0 || Hkv <= 0 || H % Hkv != 0) {
        fprintf(stderr,
                "fatal: %s: unsupported shape H=%d Hkv=%d D=%d (D a multiple of 4 up to "
                "256, H a multiple of Hkv)\n",
                fn, H, Hkv, D);
        abort();
    }
}

static void attn_check_aligned(const char *fn, const void *p) {
    if ((size_t)p % 16 != 0) {
        fprintf(stderr, "fatal: %s: pointer %p is not 16-byte aligned\n", fn, p);
        abort();
    }
}

/* Launches kernel with dynamic shared memory smem, raising the kernel's limit past the
 * default 48 KiB when it needs to (D = 256 tiles take 64 KiB). */
template <typename K, typename... Args>
static void attn_launch(K kernel, dim3 grid, int threads, size_t smem, Args... args) {
    if (smem > 48 * 1024)
        CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kernel<<<grid, threads, smem>>>(args...);
    LAUNCH_CHECK();
}

/* Calls F::run<G, NV>() for the lane-group shape that fits D (checked by the caller). */
template <typename F> static void attn_dispatch(int D, F f) {
    const int D4 = D / 4;
    if (D4 <= 8)
        f.template run<8, 1>();
    else if (D4 <= 16)
        f.template run<8, 2>();
    else if (D4 <= 24)
        f.template run<8, 3>();
    else if (D4 <= 32)
        f.template run<8, 4>();
    else if (D4 <= 48)
        f.template run<16, 3>();
    else
        f.template run<16, 4>();
}

struct AttnFwd {
    float *out, *lse;
    const float *q, *k, *v;
    int B, T, H, Hkv, D;
    float scale;
    template <int G, int NV> void run() const {
        const int BQ = ATTN_NT / G;
        const dim3 grid((T + BQ - 1) / BQ, H, B);
        const size_t smem = 2 * ATTN_BK * (size_t)D * sizeof(float);
        attn_launch(attn_fwd_kernel<G, NV>, grid, ATTN_NT, smem, out, lse, q, k, v, T, H, Hkv, D,
                    scale);
    }
};

struct AttnBwd {
    float *dq, *dk, *dv;
    const float *dout, *q, *k, *v, *lse, *delta;
    int B, T, H, Hkv, D;
    float scale;
    template <int G, int NV> void run() const {
        const int BR = ATTN_NT / G;
        const size_t tiles = 2 * ATTN_BK * (size_t)D * sizeof(float);
        const dim3 gk((T + BR - 1) / BR, Hkv, B), gq((T + BR - 1) / BR, H, B);
        attn_launch(attn_bwd_dkdv_kernel<G, NV>, gk, ATTN_NT, tiles + 2 * ATTN_BK * sizeof(float),
                    dk, dv, dout, q, k, v, lse, delta, T, H, Hkv, D, scale);
        attn_launch(attn_bwd_dq_kernel<G, NV>, gq, ATTN_NT, tiles, dq, dout, q, k, v, lse, delta, T,
                    H, Hkv, D, scale);
    }
};

/* The split count S fills one wave: as many blocks as the SMs hold at once (resident a
 * SM), cut over tasks = B * Hkv * nqc (kv head, query chunk) blocks, and no more splits
 * than Tc has runs of mink keys. pos stays on the device, so S comes from Tc; each row cuts
 * its own pos[b] + 1 keys into S chunks, and splits past its end are empty. */
static long attn_decode_splits(int resident, long tasks, int Tc, int mink) {
    const long smax = (Tc + mink - 1) / mink;
    long S = (long)resident * dr_cuda_sm_count() / tasks;
    if (S > smax) S = smax;
    return S < 1 ? 1 : S;
}

/* Runs a decode kernel over S splits of the keys: with one split it writes out itself;
 * otherwise each split's partials go to scratch and attn_decode_combine_kernel merges them. */
template <typename CT, typename OT, typename K, typename... Extra>
static void attn_decode_run(K kernel, long S, int threads, size_t smem, OT *out, const float *q,
                            const CT *kc, const CT *vc, const int *pos, int B, int Tc, int H,
                            int Hkv, int D, float scale, Extra... extra) {
    const int nqc = (H / Hkv + ATTN_DEC_QC - 1) / ATTN_DEC_QC, rows = B * H;
    const dim3 grid((unsigned)S, (unsigned)(Hkv * nqc), (unsigned)B);
    float *pacc = nullptr, *pml = nullptr;
    if (S > 1) {
        pacc =
            (float *)dr_cuda_scratch(ATTN_DEC_SCRATCH, (size_t)rows * S * (D + 2) * sizeof(float));
        pml = pacc + (size_t)rows * S * D;
    }
    kernel<<<grid, threads, smem>>>(out, pacc, pml, q, kc, vc, pos, Tc, H, Hkv, D, scale, extra...);
    LAUNCH_CHECK();
    if (S == 1) return;
    attn_decode_combine_kernel<OT><<<(rows + 3) / 4, 128>>>(out, pacc, pml, rows, (int)S, D / 4);
    LAUNCH_CHECK();
}

/* The block-tile decode (DENSERL_ATTN_DECODE=tiles): attn_decode_split_kernel. */
template <typename CT, typename OT> struct AttnDecode {
    OT *out; /* float, or bf16 (uint16_t) */
    const float *q;
    const CT *kc, *vc; /* fp32 or bf16 (uint16_t) */
    const int *pos;
    int B, Tc, H, Hkv, D;
    float scale;
    template <int G, int NV> void run() const {
        static int resident = 0; /* blocks of this instantiation one SM holds */
        if (!resident) {
            CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &resident, attn_decode_split_kernel<G, NV, CT, OT>, ATTN_DEC_NT, 0));
            if (resident < 1) resident = 1;
        }
        const int nqc = (H / Hkv + ATTN_DEC_QC - 1) / ATTN_DEC_QC;
        const long S = attn_decode_splits(resident, (long)B * Hkv * nqc, Tc, ATTN_DEC_MINK);
        attn_decode_run<CT>(attn_decode_split_kernel<G, NV, CT, OT>, S, ATTN_DEC_NT, 0, out, q, kc,
                            vc, pos, B, Tc, H, Hkv, D, scale);
    }
};

/* The warp decode (the default): attn_decode_warp_kernel, one float4 column a lane up to
 * D = 128 and two up to 256. */
template <int CPL, typename CT, typename OT>
static void attn_decode_warps(OT *out, const float *q, const CT *kc, const CT *vc, const int *pos,
                              int B, int Tc, int H, int Hkv, int D, float scale,
                              AttnDecPrep<CT> pr) {
    static int resident[65]; /* blocks one SM holds, by D4 (the shared memory differs) */
    const int D4 = D / 4;
    const size_t smem = attn_decw_smem(D4, CPL);
    if (!resident[D4]) {
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &resident[D4], attn_decode_warp_kernel<CPL, CT, OT>, ATTN_DECW_NW * 32, smem));
        if (resident[D4] < 1) resident[D4] = 1;
    }
    const int nqc = (H / Hkv + ATTN_DEC_QC - 1) / ATTN_DEC_QC;
    const long S = attn_decode_splits(resident[D4], (long)B * Hkv * nqc, Tc, ATTN_DECW_MINK);
    attn_decode_run<CT>(attn_decode_warp_kernel<CPL, CT, OT>, S, ATTN_DECW_NW * 32, smem, out, q,
                        kc, vc, pos, B, Tc, H, Hkv, D, scale, pr);
}

static float attn_scale(int D) {
    return (float)(1.0 / sqrt((double)D)); /* as the CPU computes it */
}

extern "C" void attention_forward_cuda(float *out, float *lse, const float *q, const float *k,
                                       const float *v, int B, int T, int H, int Hkv, int D) {
    attn_check_shape("attention_forward_cuda", H, Hkv, D);
    if (B <= 0 || T <= 0) return;
    const void *ptrs[] = {out, q, k, v};
    for (const void *p : ptrs) attn_check_aligned("attention_forward_cuda", p);
    attn_dispatch(D, AttnFwd{out, lse, q, k, v, B, T, H, Hkv, D, attn_scale(D)});
}

extern "C" void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dout,
                                        const float *q, const float *k, const float *v,
                                        const float *out, const float *lse, int B, int T, int H,
                                        int Hkv, int D) {
    attn_check_shape("attention_backward_cuda", H, Hkv, D);
    if (B <= 0 || T <= 0) return;
    const void *ptrs[] = {dq, dk, dv, dout, q, k, v};
    for (const void *p : ptrs) attn_check_aligned("attention_backward_cuda", p);
    const long rows = (long)B * T * H;
    float *delta = (float *)dr_cuda_scratch(SCRATCH_ATTN, (size_t)rows * sizeof(float));
    attn_delta_kernel<<<dr_blocks(rows, 8), 256>>>(delta, dout, out, B, T, H, D);
    LAUNCH_CHECK();
    attn_dispatch(D,
                  AttnBwd{dq, dk, dv, dout, q, k, v, lse, delta, B, T, H, Hkv, D, attn_scale(D)});
}

template <typename CT>
static void decode_prep(float *qo, const float *q, const float *k, const float *v, int ldq,
                        int ldkv, CT *kc, CT *vc, const int *pos, const float *cos_t,
                        const float *sin_t, int B, int Tc, int H, int Hkv, int D);

/* The decode; with pr.q, decode_prep's work first: in the warp kernel itself, or (block
 * tiles) by decode_prep_kernel into qo, which the tiles then read. */
template <typename CT, typename OT>
static void attn_decode(const char *fn, OT *out, const float *q, const CT *kcache, const CT *vcache,
                        const int *pos, int B, int Tc, int H, int Hkv, int D,
                        AttnDecPrep<CT> pr = {}, float *qo = nullptr) {
    attn_check_shape(fn, H, Hkv, D);
    if (B <= 0 || Tc <= 0) return;
    const void *ptrs[] = {out, pr.q ? qo : q, kcache, vcache};
    for (const void *p : ptrs) attn_check_aligned(fn, p);
    const char *e = getenv("DENSERL_ATTN_DECODE");
    if (e && strcmp(e, "tiles") == 0) {
        if (pr.q) {
            decode_prep(qo, pr.q, pr.k, pr.v, pr.ldq, pr.ldkv, pr.kc, pr.vc, pos, pr.cos_t,
                        pr.sin_t, B, Tc, H, Hkv, D);
            q = qo;
        }
        attn_dispatch(
            D, AttnDecode<CT, OT>{out, q, kcache, vcache, pos, B, Tc, H, Hkv, D, attn_scale(D)});
    } else if (D <= 128) {
        attn_decode_warps<1, CT, OT>(out, q, kcache, vcache, pos, B, Tc, H, Hkv, D, attn_scale(D),
                                     pr);
    } else {
        attn_decode_warps<2, CT, OT>(out, q, kcache, vcache, pos, B, Tc, H, Hkv, D, attn_scale(D),
                                     pr);
    }
}

extern "C" void attention_decode_cuda(float *out, const float *q, const float *kcache,
                                      const float *vcache, const int *pos, int B, int Tc, int H,
                                      int Hkv, int D) {
    attn_decode("attention_decode_cuda", out, q, kcache, vcache, pos, B, Tc, H, Hkv, D);
}

extern "C" void attention_decode_bf16cache_cuda(float *out, const float *q, const uint16_t *kcache,
                                                const uint16_t *vcache, const int *pos, int B,
                                                int Tc, int H, int Hkv, int D) {
    attn_decode("attention_decode_bf16cache_cuda", out, q, kcache, vcache, pos, B, Tc, H, Hkv, D);
}

extern "C" void attention_decode_bf16_cuda(uint16_t *out, const float *q, const uint16_t *kcache,
                                           const uint16_t *vcache, const int *pos, int B, int Tc,
                                           int H, int Hkv, int D) {
    attn_decode("attention_decode_bf16_cuda", out, q, kcache, vcache, pos, B, Tc, H, Hkv, D);
}

extern "C" void attention_decode_prep_cuda(float *out, float *qo, const float *q, const float *k,
                                           const float *v, int ldq, int ldkv, float *kcache,
                                           float *vcache, const int *pos, const float *cos_t,
                                           const float *sin_t, int B, int Tc, int H, int Hkv,
                                           int D) {
    const AttnDecPrep<float> pr = {q, k, v, ldq, ldkv, cos_t, sin_t, kcache, vcache};
    attn_decode("attention_decode_prep_cuda", out, (const float *)nullptr, (const float *)kcache,
                (const float *)vcache, pos, B, Tc, H, Hkv, D, pr, qo);
}

extern "C" void attention_decode_prep_bf16_cuda(uint16_t *out, float *qo, const float *q,
                                                const float *k, const float *v, int ldq, int ldkv,
                                                uint16_t *kcache, uint16_t *vcache, const int *pos,
                                                const float *cos_t, const float *sin_t, int B,
                                                int Tc, int H, int Hkv, int D) {
    const AttnDecPrep<uint16_t> pr = {q, k, v, ldq, ldkv, cos_t, sin_t, kcache, vcache};
    attn_decode("attention_decode_prep_bf16_cuda", out, (const float *)nullptr,
                (const uint16_t *)kcache, (const uint16_t *)vcache, pos, B, Tc, H, Hkv, D, pr, qo);
}

/* x (B, width) fp32 into the cache at each row's position, as it is or rounded to bf16
 * (nearest even). */
template <typename CT> __device__ __forceinline__ void kv_put(CT *c, float x) {
    *c = kv_cast<CT>(x);
}

template <typename CT>
__global__ void kv_cache_store_kernel(CT *__restrict__ cache, const float *__restrict__ x,
                                      const int *__restrict__ pos, int B, int Tc, int width) {
    const long n = (long)B * width;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const int b = (int)(i / width), c = (int)(i % width);
        kv_put(cache + ((size_t)b * Tc + pos[b]) * width + c, x[i]);
    }
}

extern "C" void kv_cache_store_cuda(float *cache, const float *x, const int *pos, int B, int Tc,
                                    int width) {
    const long n = (long)B * width;
    if (n <= 0) return;
    kv_cache_store_kernel<float><<<dr_blocks(n, 256), 256>>>(cache, x, pos, B, Tc, width);
    LAUNCH_CHECK();
}

extern "C" void kv_cache_store_bf16_cuda(uint16_t *cache, const float *x, const int *pos, int B,
                                         int Tc, int width) {
    const long n = (long)B * width;
    if (n <= 0) return;
    kv_cache_store_kernel<uint16_t><<<dr_blocks(n, 256), 256>>>(cache, x, pos, B, Tc, width);
    LAUNCH_CHECK();
}

/* One block per (move, layer, cache): len x width elements of slot src into slot dst, in
 * 16-byte words when every row allows (V = 16) or one byte at a time. */
template <int V>
__global__ void kv_move_slots_kernel(char *kcache, char *vcache, const int *__restrict__ moves,
                                     size_t row, size_t layer, int width, int es) {
    const int m = blockIdx.x, l = blockIdx.y;
    char *base = (blockIdx.z ? vcache : kcache) + (size_t)l * layer;
    const int dst = moves[3 * m], src = moves[3 * m + 1];
    const size_t words = (size_t)moves[3 * m + 2] * width * es / V;
    char *d = base + dst * row;
    const char *s = base + src * row;
    for (size_t i = threadIdx.x; i < words; i += blockDim.x) {
        if constexpr (V == 16)
            reinterpret_cast<uint4 *>(d)[i] = reinterpret_cast<const uint4 *>(s)[i];
        else
            d[i] = s[i];
    }
}

extern "C" void kv_move_slots_cuda(void *kcache, void *vcache, const int *moves, int n, int L,
                                   int B_cap, int Tc, int width, int es) {
    if (n <= 0 || L <= 0) return;
    const size_t row = (size_t)Tc * width * es, layer = (size_t)B_cap * row;
    const bool vec = row % 16 == 0 && (size_t)width * es % 16 == 0 &&
                     (((uintptr_t)kcache | (uintptr_t)vcache) & 15) == 0;
    const dim3 grid((unsigned)n, (unsigned)L, 2);
    if (vec)
        kv_move_slots_kernel<16>
            <<<grid, 256>>>((char *)kcache, (char *)vcache, moves, row, layer, width, es);
    else
        kv_move_slots_kernel<1>
            <<<grid, 256>>>((char *)kcache, (char *)vcache, moves, row, layer, width, es);
    LAUNCH_CHECK();
}

/* One thread per (row, head of q then of k, rotary pair): the pair of q rotated by the row's
 * position into qo, or the pair of k rotated and stored with v's pair into the caches. Rows
 * of q start ldq apart, of k and v ldkv apart (a packed q|k|v product, or three tensors). */
template <typename CT>
__global__ void decode_prep_kernel(float *qo, const float *q, const float *__restrict__ k,
                                   const float *__restrict__ v, int ldq, int ldkv,
                                   CT *__restrict__ kc, CT *__restrict__ vc,
                                   const int *__restrict__ pos, const float *__restrict__ cos_t,
                                   const float *__restrict__ sin_t, int B, int Tc, int H, int Hkv,
                                   int D) {
    const int half = D / 2, heads = H + Hkv;
    const long n = (long)B * heads * half;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const int j = (int)(i % half), hh = (int)(i / half % heads), b = (int)(i / half / heads);
        const int p = pos[b];
        const float c = cos_t[(size_t)p * half + j], sn = sin_t[(size_t)p * half + j];
        if (hh < H) {
            const float *x = q + (size_t)b * ldq + (size_t)hh * D + j;
            float a = x[0], e = x[half];
            rope_rot(a, e, c, sn);
            float *y = qo + ((size_t)b * H + hh) * D + j;
            y[0] = a, y[half] = e;
            continue;
        }
        const size_t o = (size_t)b * ldkv + (size_t)(hh - H) * D + j;
        const size_t co = ((size_t)b * Tc + p) * Hkv * D + (size_t)(hh - H) * D + j;
        float a = k[o], e = k[o + half];
        rope_rot(a, e, c, sn);
        kv_put(kc + co, a);
        kv_put(kc + co + half, e);
        kv_put(vc + co, v[o]);
        kv_put(vc + co + half, v[o + half]);
    }
}

template <typename CT>
static void decode_prep(float *qo, const float *q, const float *k, const float *v, int ldq,
                        int ldkv, CT *kc, CT *vc, const int *pos, const float *cos_t,
                        const float *sin_t, int B, int Tc, int H, int Hkv, int D) {
    const long n = (long)B * (H + Hkv) * (D / 2);
    if (n <= 0) return;
    decode_prep_kernel<CT><<<dr_blocks(n, 256), 256>>>(qo, q, k, v, ldq, ldkv, kc, vc, pos, cos_t,
                                                       sin_t, B, Tc, H, Hkv, D);
    LAUNCH_CHECK();
}

extern "C" void decode_prep_cuda(float *qo, const float *q, const float *k, const float *v, int ldq,
                                 int ldkv, float *kcache, float *vcache, const int *pos,
                                 const float *cos_t, const float *sin_t, int B, int Tc, int H,
                                 int Hkv, int D) {
    decode_prep(qo, q, k, v, ldq, ldkv, kcache, vcache, pos, cos_t, sin_t, B, Tc, H, Hkv, D);
}

extern "C" void decode_prep_bf16cache_cuda(float *qo, const float *q, const float *k,
                                           const float *v, int ldq, int ldkv, uint16_t *kcache,
                                           uint16_t *vcache, const int *pos, const float *cos_t,
                                           const float *sin_t, int B, int Tc, int H, int Hkv,
                                           int D) {
    decode_prep(qo, q, k, v, ldq, ldkv, kcache, vcache, pos, cos_t, sin_t, B, Tc, H, Hkv, D);
}
