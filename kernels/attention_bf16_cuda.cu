/* Causal grouped-query flash attention in bf16 on tensor cores (FlashAttention-2), forward
 * and backward, with warp-level mma.sync m16n8k16 (bf16 in, fp32 accumulate) fed by
 * ldmatrix from padded shared-memory tiles that cp.async fills, double-buffered.
 *
 * Forward: one CTA of 4 warps per (64 query rows, head, batch); each warp owns 16 rows and
 * keeps its Q fragments, the output accumulator and the online-softmax state in registers
 * while 64-key K/V tiles stream through shared memory. Tiles above the diagonal are never
 * loaded; tiles that cross it (or the end of the sequence) are masked.
 * Backward: Di = rowsum(dO * O) first; then one CTA of 8 warps per (128-key tile, kv head,
 * batch) holds its K and V tile and loops over every query head of the group and every
 * 64-row query tile at or below the diagonal: S = Q K^T and dP = dO V^T in registers, P and
 * dS = P (dP - Di) as bf16 tiles in shared memory, dV += P^T dO and dK += dS^T Q in
 * registers (so a kv head's gradients sum over its query heads with no atomics), and
 * dQ += dS K added into an fp32 workspace with atomics, converted to bf16 at the end. */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/attention_bf16.h"
#include "../runtime/cuda_util.cuh"

typedef __nv_bfloat16 bf16;

#define ATT_BN     64 /* keys per K/V tile (forward and backward) */
#define ATT_FWD_NW 4  /* forward warps per CTA */
#ifndef ATT_FWD_MT
#define ATT_FWD_MT 2 /* forward 16-row m-tiles per warp */
#endif
#define ATT_BWD_NT 256 /* backward threads per CTA */
#define ATT_LOG2E  1.4426950408889634f
#define ATT_LN2    0.6931471805599453f

/* ---- PTX wrappers ----
 *
 * mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, per lane (g = lane / 4, t = lane % 4):
 *   A 16x16 (row-major, M x K), four .b32 registers of two bf16 each (low half = lower col):
 *     a0 = A[g][2t, 2t+1]   a1 = A[g+8][2t, 2t+1]   a2 = A[g][2t+8, 2t+9]   a3 = A[g+8][2t+8, 2t+9]
 *   B 16x8 (K x N, "col": each register holds two consecutive k of one column n):
 *     b0 = B[2t, 2t+1][g]   b1 = B[2t+8, 2t+9][g]
 *   C/D 16x8 fp32:  c0, c1 = C[g][2t, 2t+1]   c2, c3 = C[g+8][2t, 2t+1]
 * ldmatrix.m8n8.x4: lanes 8i .. 8i+7 give the row addresses of 8x8 matrix i (16 bytes each);
 * register i receives matrix i with lane holding row lane/4, elements 2(lane%4), +1. With
 * .trans, lane instead holds rows 2(lane%4), +1 of column lane/4 (the transpose).
 * Hence, for a row-major smem tile X with row stride ld:
 *   A operand from X[r0.., c0..] (A = X):        address X[r0 + lane%16][c0 + (lane/16)*8]
 *   B operand with B[k][n] = X[n][k] (X = K for S = Q K^T), n-blocks n0 and n0+8 at once:
 *     address X[n0 + lane%8 + (lane/16)*8][k0 + ((lane/8)%2)*8]; {r0,r1} -> n0, {r2,r3} -> n0+8
 *   B operand with B[k][n] = X[k][n] (X = V for P V), .trans, n-blocks n0 and n0+8:
 *     address X[k0 + lane%8 + ((lane/8)%2)*8][n0 + (lane/16)*8]; {r0,r1} -> n0, {r2,r3} -> n0+8
 *   A operand with A[m][k] = X[k][m] (A = P^T from P stored [q][key]), .trans:
 *     address X[k0 + lane%8 + (lane/16)*8][m0 + ((lane/8)%2)*8]
 * A C fragment pair of n-blocks 2j, 2j+1 repacked to bf16 is the A fragment of k-chunk j:
 *   a0 = (c0, c1) of 2j, a1 = (c2, c3) of 2j, a2 = (c0, c1) of 2j+1, a3 = (c2, c3) of 2j+1. */

__device__ __forceinline__ uint32_t smem_addr(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

#ifdef __CUDA_EMU__
/* the CPU emulation of the CUDA backend (tests/emu) carries these out for the warp */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    emu_cp_async(dst, src, 16, valid);
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, bool valid) {
    emu_cp_async(dst, src, 4, valid);
}
__device__ __forceinline__ void cp_async_commit() {
    emu_cp_async_commit();
}
__device__ __forceinline__ void cp_async_wait_all() {
    emu_cp_async_wait(0);
}
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p) {
    emu_ldmatrix_x4(r, p, false);
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const bf16 *p) {
    emu_ldmatrix_x4(r, p, true);
}
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    emu_mma_m16n8k16_bf16(c, a, b0, b1);
}
#else
/* 16 bytes global -> shared; when !valid the destination is zero-filled and nothing is read. */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

/* c += A B for one m16n8k16 tile. */
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

/* Two floats as bf16 (round to nearest even), lo in the low half. */
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* Rows r0 .. r0+ROWS-1 of a (rows, stride) bf16 matrix g into s (ROWS, D + 8) with cp.async;
 * rows at or past T are zero-filled (row 0 stands in as the never-read source address). */
template <int ROWS, int D, int NT>
__device__ __forceinline__ void load_rows(bf16 *s, const bf16 *g, size_t stride, int r0, int T) {
    constexpr int CPR = D / 8, LD = D + 8;
    static_assert((ROWS * CPR) % NT == 0, "tile chunks must divide evenly among threads");
#pragma unroll
    for (int i = 0; i < ROWS * CPR / NT; i++) {
        const int c = (int)threadIdx.x + i * NT;
        const int r = c / CPR, col = (c % CPR) * 8;
        const bool ok = r0 + r < T;
        cp_async16(s + r * LD + col, g + (size_t)(ok ? r0 + r : 0) * stride + col, ok);
    }
}

__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* ---- forward ---- */

/* S tiles (MT m-tiles of 16 rows of this warp x 64 keys) = Q K^T, Q and K from smem (the
 * Q fragments are re-read per tile: registers go to the second m-tile, which halves the
 * K fragment loads per product). */
template <int D, int MT>
__device__ __forceinline__ void fwd_scores(float s[MT][ATT_BN / 8][4], const bf16 *wQ,
                                           const bf16 *cK, int lane) {
    constexpr int LD = D + 8;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int j = 0; j < ATT_BN / 8; j++)
            s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            ldsm_x4(qa[mt], wQ + (16 * mt + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int np = 0; np < ATT_BN / 16; np++) {
            uint32_t bk[4];
            ldsm_x4(bk, cK + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 +
                            ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(s[mt][2 * np], qa[mt], bk[0], bk[1]);
                mma16816(s[mt][2 * np + 1], qa[mt], bk[2], bk[3]);
            }
        }
    }
}

/* Online softmax step on one S tile (already scaled to log2 units and masked): updates the
 * running max m and the thread-partial row sums l of rows g and g+8, rescales o, and turns
 * s into P = exp2(s - m). */
template <int D>
__device__ __forceinline__ void fwd_softmax(float s[ATT_BN / 8][4], float o[D / 8][4], float m[2],
                                            float l[2]) {
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < ATT_BN / 8; j++) {
        mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
    }
    float ms[2], alpha[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const float mn = fmaxf(m[r], quad_max(mx[r]));
        ms[r] = mn == -INFINITY ? 0.0f : mn; /* a row with nothing unmasked yet stays at 0 */
        alpha[r] = exp2f(m[r] - ms[r]);
        m[r] = mn;
    }
#pragma unroll
    for (int j = 0; j < ATT_BN / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            s[j][e] = exp2f(s[j][e] - ms[e >> 1]);
            rs[e >> 1] += s[j][e];
        }
#pragma unroll
    for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + rs[r];
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        o[n][0] *= alpha[0];
        o[n][1] *= alpha[0];
        o[n][2] *= alpha[1];
        o[n][3] *= alpha[1];
    }
}

/* o += P V, P from the S accumulators (repacked as A fragments), V from smem. */
template <int D, int MT>
__device__ __forceinline__ void fwd_pv(float o[MT][D / 8][4], const float s[MT][ATT_BN / 8][4],
                                       const bf16 *cV, int lane) {
    constexpr int LD = D + 8;
#pragma unroll
    for (int kc = 0; kc < ATT_BN / 16; kc++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            a[mt][0] = pack_bf16(s[mt][2 * kc][0], s[mt][2 * kc][1]);
            a[mt][1] = pack_bf16(s[mt][2 * kc][2], s[mt][2 * kc][3]);
            a[mt][2] = pack_bf16(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
            a[mt][3] = pack_bf16(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t bv[4];
            ldsm_x4_t(bv, cV + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dp * 16 +
                              (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(o[mt][2 * dp], a[mt], bv[0], bv[1]);
                mma16816(o[mt][2 * dp + 1], a[mt], bv[2], bv[3]);
            }
        }
    }
}

/* Writes this warp's 16-row m-tile mt (rows wrow + 16 mt ..): lse, and out staged in the
 * warp's own rows of sQ (read only by this warp, and finished with), then stored as 16-byte
 * rows. Key 0 is unmasked for every row, so l > 0 and m is finite. */
template <int D>
__device__ __forceinline__ void fwd_store(bf16 *ob, float *lseb, size_t qs, bf16 *sO,
                                          const float o[D / 8][4], const float m[2], float l[2],
                                          int row0, int T, int lane) {
    constexpr int LD = D + 8, CPR = D / 8;
    const int g = lane >> 2, t4 = lane & 3;
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] = quad_sum(l[r]);
        inv[r] = 1.0f / l[r];
        const int row = row0 + g + 8 * r;
        if (t4 == 0 && row < T) lseb[row] = m[r] * ATT_LN2 + logf(l[r]);
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        const int col = 8 * n + 2 * t4;
        *reinterpret_cast<uint32_t *>(sO + g * LD + col) =
            pack_bf16(o[n][0] * inv[0], o[n][1] * inv[0]);
        *reinterpret_cast<uint32_t *>(sO + (g + 8) * LD + col) =
            pack_bf16(o[n][2] * inv[1], o[n][3] * inv[1]);
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 16 * CPR / 32; i++) {
        const int c = lane + 32 * i, r = c / CPR, col = (c % CPR) * 8;
        if (row0 + r < T)
            *reinterpret_cast<uint4 *>(ob + (size_t)(row0 + r) * qs + col) =
                *reinterpret_cast<const uint4 *>(sO + r * LD + col);
    }
}

/* grid (B * H, ceil(T / BM)), block NW * 32, BM = 16 NW MT; y counts down from the last
 * (longest) query tile. Warp w owns rows 16 MT w .. 16 MT (w + 1) - 1 of the tile. */
template <int D, int NW, int MT>
__global__ void __launch_bounds__(NW * 32)
    attn_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ lse, const bf16 *__restrict__ q,
                    const bf16 *__restrict__ k, const bf16 *__restrict__ v, int T, int H, int Hkv,
                    float sl2) {
    constexpr int BM = 16 * NW * MT, BN = ATT_BN, LD = D + 8, NT = NW * 32;
    extern __shared__ __align__(16) unsigned char att_smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(att_smem); /* (BM, LD), at the end the output */
    bf16 *sK = sQ + BM * LD;                       /* two (BN, LD) buffers */
    bf16 *sV = sK + 2 * BN * LD;                   /* two (BN, LD) buffers */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int b = blockIdx.x / H, h = blockIdx.x % H, kh = h / (H / Hkv);
    const int q0 = (gridDim.y - 1 - blockIdx.y) * BM;
    const size_t qs = (size_t)H * D, ks = (size_t)Hkv * D; /* token strides */
    const bf16 *qb = q + (size_t)b * T * qs + (size_t)h * D;
    const bf16 *kb = k + (size_t)b * T * ks + (size_t)kh * D;
    const bf16 *vb = v + (size_t)b * T * ks + (size_t)kh * D;
    const int nkv = (min(T, q0 + BM) + BN - 1) / BN; /* key tiles up to the last query */
    load_rows<BM, D, NT>(sQ, qb, qs, q0, T);
    load_rows<BN, D, NT>(sK, kb, ks, 0, T);
    load_rows<BN, D, NT>(sV, vb, ks, 0, T);
    cp_async_commit();

    const int wrow = q0 + 16 * MT * warp; /* first query row of this warp */
    bf16 *wQ = sQ + 16 * MT * warp * LD;
    float o[MT][D / 8][4], m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }
    for (int j = 0; j < nkv; j++) {
        /* Tile j has landed, and every warp is done with tile j - 1, whose buffer the
         * prefetch of tile j + 1 below reuses. */
        cp_async_wait_all();
        __syncthreads();
        if (j + 1 < nkv) {
            const int nb = (j + 1) & 1;
            load_rows<BN, D, NT>(sK + nb * BN * LD, kb, ks, (j + 1) * BN, T);
            load_rows<BN, D, NT>(sV + nb * BN * LD, vb, ks, (j + 1) * BN, T);
        }
        cp_async_commit();
        const int k0 = j * BN;
        if (k0 > wrow + 16 * MT - 1) continue; /* all of this warp's rows are before the tile */
        float s[MT][BN / 8][4];
        fwd_scores<D, MT>(s, wQ, sK + (j & 1) * BN * LD, lane);
        const bool mask = k0 + BN - 1 > wrow || k0 + BN > T;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int jn = 0; jn < BN / 8; jn++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[mt][jn][e] * sl2;
                    const int key = k0 + 8 * jn + 2 * t4 + (e & 1);
                    const int row = wrow + 16 * mt + g + 8 * (e >> 1);
                    if (mask && (key > row || key >= T)) x = -INFINITY;
                    s[mt][jn][e] = x;
                }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) fwd_softmax<D>(s[mt], o[mt], m[mt], l[mt]);
        fwd_pv<D, MT>(o, s, sV + (j & 1) * BN * LD, lane);
    }
    bf16 *ob = out + (size_t)b * T * qs + (size_t)h * D;
    float *lseb = lse + ((size_t)b * H + h) * T;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        fwd_store<D>(ob, lseb, qs, wQ + 16 * mt * LD, o[mt], m[mt], l[mt], wrow + 16 * mt, T, lane);
}

/* ---- backward ---- */

/* di (B, H, T) = rowsum(dout * out); one warp per (b, t, h) row, 8 rows per block. */
template <int D>
__global__ void attn_bwd_pre_kernel(float *__restrict__ di, const bf16 *__restrict__ dout,
                                    const bf16 *__restrict__ out, int B, int T, int H) {
    const long rowi = (long)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (rowi >= (long)B * T * H) return;
    const bf16 *po = out + rowi * D, *pd = dout + rowi * D;
    float s = 0.0f;
#pragma unroll
    for (int d = 2 * lane; d < D; d += 64) {
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(po + d));
        const float2 c = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(pd + d));
        s += a.x * c.x + a.y * c.y;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) {
        const int h = (int)(rowi % H), t = (int)(rowi / H % T), b = (int)(rowi / H / T);
        di[((size_t)b * H + h) * T + t] = s;
    }
}

/* dq (n) = scale * dqacc, fp32 -> bf16, four at a time (n is a multiple of 64). */
__global__ void attn_dq_convert_kernel(bf16 *__restrict__ dq, const float *__restrict__ dqacc,
                                       long n4, float scale) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (long)gridDim.x * blockDim.x) {
        const float4 x = reinterpret_cast<const float4 *>(dqacc)[i];
        uint2 y;
        y.x = pack_bf16(x.x * scale, x.y * scale);
        y.y = pack_bf16(x.z * scale, x.w * scale);
        reinterpret_cast<uint2 *>(dq)[i] = y;
    }
}

/* Before sm_90 (no vector atomics): two scalar atomics. */
__device__ __forceinline__ void red_add2(float *p, float x, float y) {
    atomicAdd(p, x);
    atomicAdd(p + 1, y);
}

/* The backward's tile shape: BM query rows per step, BN keys per CTA, 8 warps, NB buffers of
 * Q, dO, lse and Di (2: the next step's load overlaps the whole step; 1: it overlaps phase 3,
 * for GPUs with less shared memory).
 * Phase 1 (S, dP): warps WM1 x WN1 over (BM, BN), each 32 rows x 32 keys (MT m-tiles).
 * Phase 2 (dV, dK): warps 4 x 2 over (BN, D), each 16 KT keys x D/2 features.
 * Phase 3 (dQ):     warps WM3 x WD3 over (BM, D), each 32 rows x CW features.
 * Shared memory, in bf16 elements then floats: K, V (BN, LD); Q, dO NB (BM, LD) buffers
 * each; P, dS (BM, LDP); lse and Di NB buffers of BM each. */
template <int D, int BM_, int BN_, int NB_> struct Bwd {
    static constexpr int BM = BM_, BN = BN_, NB = NB_, LD = D + 8, LDP = BN + 8, MT = 2;
    static constexpr int WM1 = BM / 32, WN1 = BN / 32, KT = BN / 64;
    static constexpr int WM3 = BM / 32, WD3 = 8 / WM3, CW = D / WD3;
    static_assert(WM1 * WN1 == 8 && BN % 64 == 0 && 8 % WM3 == 0 && CW % 16 == 0,
                  "backward tiles must split among 8 warps");
    static constexpr int K = 0, V = K + BN * LD, Q = V + BN * LD;
    static constexpr int DO = Q + NB * BM * LD, P = DO + NB * BM * LD, DS = P + BM * LDP;
    static constexpr int NBF16 = DS + BM * LDP;
    static constexpr size_t BYTES = (size_t)NBF16 * 2 + 2 * NB * BM * sizeof(float);
};

/* P and dS of one 16 x 32 warp tile (local rows r0 .., keys c0 ..) into smem as bf16. */
template <int LDP>
__device__ __forceinline__ void
bwd_p_ds_store(bf16 *sP, bf16 *sdS, const float s[4][4], const float dp[4][4], const float *cL,
               const float *cDi, int r0, int c0, int q0, int k0, int T, float sl2, bool mask) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int r[2] = {r0 + g, r0 + g + 8}; /* local query rows */
    const float L[2] = {cL[r[0]] * ATT_LOG2E, cL[r[1]] * ATT_LOG2E};
    const float Di[2] = {cDi[r[0]], cDi[r[1]]};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int c = c0 + 8 * j + 2 * t4; /* local key column of elements 0 and 2 */
        float p[4], ds[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float pe = exp2f(s[j][e] * sl2 - L[e >> 1]);
            const int key = k0 + c + (e & 1), qr = q0 + r[e >> 1];
            if (mask && (key > qr || key >= T || qr >= T)) pe = 0.0f;
            p[e] = pe;
            ds[e] = pe * (dp[j][e] - Di[e >> 1]);
        }
        *reinterpret_cast<uint32_t *>(sP + r[0] * LDP + c) = pack_bf16(p[0], p[1]);
        *reinterpret_cast<uint32_t *>(sP + r[1] * LDP + c) = pack_bf16(p[2], p[3]);
        *reinterpret_cast<uint32_t *>(sdS + r[0] * LDP + c) = pack_bf16(ds[0], ds[1]);
        *reinterpret_cast<uint32_t *>(sdS + r[1] * LDP + c) = pack_bf16(ds[2], ds[3]);
    }
}

/* One 32 x 32 warp tile (rows 32 wm .., keys 32 wn ..) of X Y^T over D, X (BM, LD) and
 * Y (BN, LD) in smem. */
template <int D, class C>
__device__ __forceinline__ void bwd_tile_nt(float acc[C::MT][4][4], const bf16 *X, const bf16 *Y,
                                            int wm, int wn, int lane) {
    constexpr int LD = C::LD, MT = C::MT;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            ldsm_x4(a[mt],
                    X + (16 * (MT * wm + mt) + (lane & 15)) * LD + 16 * kk + (lane >> 4) * 8);
#pragma unroll
        for (int np = 0; np < 2; np++) {
            uint32_t bb[4];
            ldsm_x4(bb, Y + (32 * wn + 16 * np + (lane & 7) + ((lane >> 4) << 3)) * LD + 16 * kk +
                            ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(acc[mt][2 * np], a[mt], bb[0], bb[1]);
                mma16816(acc[mt][2 * np + 1], a[mt], bb[2], bb[3]);
            }
        }
    }
}

/* Phase 1 of a backward step, warp tile 32 queries x 32 keys: S = Q K^T and dP = dO V^T,
 * then P = exp(scale S - lse) (zero where masked) and dS = P (dP - Di) into smem as bf16. */
template <int D, class C>
__device__ __forceinline__ void bwd_p_ds(bf16 *sP, bf16 *sdS, const bf16 *cQ, const bf16 *cdO,
                                         const bf16 *sK, const bf16 *sV, const float *cL,
                                         const float *cDi, int q0, int k0, int T, float sl2) {
    constexpr int MT = C::MT;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = warp % C::WM1, wn = warp / C::WM1;
    float s[MT][4][4], dp[MT][4][4];
    bwd_tile_nt<D, C>(s, cQ, sK, wm, wn, lane);   /* S = Q K^T, then dP = dO V^T: one pair */
    bwd_tile_nt<D, C>(dp, cdO, sV, wm, wn, lane); /* of operand fragments live at a time */
    const bool mask = q0 < k0 + C::BN - 1 || q0 + C::BM > T || k0 + C::BN > T;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
        bwd_p_ds_store<C::LDP>(sP, sdS, s[mt], dp[mt], cL, cDi, 16 * (MT * wm + mt), 32 * wn, q0,
                               k0, T, sl2, mask);
}

/* Phase 2, warp tile 16 KT keys x D/2 features: dv += P^T dO, dk += dS^T Q over BM queries. */
template <int D, class C>
__device__ __forceinline__ void bwd_dkdv(float dva[C::KT][D / 16][4], float dka[C::KT][D / 16][4],
                                         const bf16 *sP, const bf16 *sdS, const bf16 *cQ,
                                         const bf16 *cdO) {
    constexpr int LD = C::LD, LDP = C::LDP, KT = C::KT;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wk = warp & 3, wd = warp >> 2;
#pragma unroll
    for (int kq = 0; kq < C::BM / 16; kq++) {
        uint32_t ap[KT][4], as[KT][4];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            const int offa = (16 * kq + (lane & 7) + ((lane >> 4) << 3)) * LDP +
                             16 * (KT * wk + kt) + ((lane >> 3) & 1) * 8;
            ldsm_x4_t(ap[kt], sP + offa);
            ldsm_x4_t(as[kt], sdS + offa);
        }
#pragma unroll
        for (int dp2 = 0; dp2 < D / 32; dp2++) {
            uint32_t bo[4], bq[4];
            const int offb = (16 * kq + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + wd * (D / 2) +
                             16 * dp2 + (lane >> 4) * 8;
            ldsm_x4_t(bo, cdO + offb);
            ldsm_x4_t(bq, cQ + offb);
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                mma16816(dva[kt][2 * dp2], ap[kt], bo[0], bo[1]);
                mma16816(dva[kt][2 * dp2 + 1], ap[kt], bo[2], bo[3]);
                mma16816(dka[kt][2 * dp2], as[kt], bq[0], bq[1]);
                mma16816(dka[kt][2 * dp2 + 1], as[kt], bq[2], bq[3]);
            }
        }
    }
}

/* Phase 3, warp tile 32 queries x CW features: dqacc += dS K (unscaled), fp32 atomics. */
template <int D, class C>
__device__ __forceinline__ void bwd_dq(float *dqb, size_t qs, const bf16 *sdS, const bf16 *sK,
                                       int q0, int T) {
    constexpr int LD = C::LD, LDP = C::LDP, MT = C::MT, CW = C::CW;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int wm = warp % C::WM3, wd = warp / C::WM3;
    float dq[MT][CW / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < CW / 8; n++)
            dq[mt][n][0] = dq[mt][n][1] = dq[mt][n][2] = dq[mt][n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < C::BN / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            ldsm_x4(a[mt],
                    sdS + (16 * (MT * wm + mt) + (lane & 15)) * LDP + 16 * kk + (lane >> 4) * 8);
#pragma unroll
        for (int dp2 = 0; dp2 < CW / 16; dp2++) {
            uint32_t bk[4];
            ldsm_x4_t(bk, sK + (16 * kk + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + wd * CW +
                              16 * dp2 + (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma16816(dq[mt][2 * dp2], a[mt], bk[0], bk[1]);
                mma16816(dq[mt][2 * dp2 + 1], a[mt], bk[2], bk[3]);
            }
        }
    }
#if __CUDA_ARCH__ >= 900
    /* Four consecutive columns per atomic: lanes t4 and t4 ^ 1 trade halves, so the even lane
     * adds its row g's columns 2 t4 .. 2 t4 + 3 and the odd lane its row g + 8's columns
     * 2 (t4 - 1) .. 2 t4 + 1 (16-byte aligned: qs, CW and the bases are multiples of 4). */
    const bool odd = t4 & 1;
    float *p = dqb + wd * CW + 2 * (t4 & ~1);
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int qr = q0 + 16 * (MT * wm + mt) + g + (odd ? 8 : 0);
#pragma unroll
        for (int n = 0; n < CW / 8; n++) {
            const float *c = dq[mt][n];
            const float r0 = __shfl_xor_sync(0xffffffffu, odd ? c[0] : c[2], 1);
            const float r1 = __shfl_xor_sync(0xffffffffu, odd ? c[1] : c[3], 1);
            const float4 v =
                odd ? make_float4(r0, r1, c[2], c[3]) : make_float4(c[0], c[1], r0, r1);
            if (qr < T) atomicAdd(reinterpret_cast<float4 *>(p + (size_t)qr * qs + 8 * n), v);
        }
    }
#else
    float *p = dqb + wd * CW + 2 * t4;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int qr0 = q0 + 16 * (MT * wm + mt) + g, qr1 = qr0 + 8;
#pragma unroll
        for (int n = 0; n < CW / 8; n++) {
            if (qr0 < T) red_add2(p + (size_t)qr0 * qs + 8 * n, dq[mt][n][0], dq[mt][n][1]);
            if (qr1 < T) red_add2(p + (size_t)qr1 * qs + 8 * n, dq[mt][n][2], dq[mt][n][3]);
        }
    }
#endif
}

/* Writes a (BN keys, D/2) warp-tiled fp32 accumulator, times mul, as bf16 rows of x. */
template <int D, int KT>
__device__ __forceinline__ void bwd_store_kv(bf16 *xb, size_t ks, const float acc[KT][D / 16][4],
                                             float mul, int k0, int T) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    bf16 *p = xb + (warp >> 2) * (D / 2) + 2 * t4;
#pragma unroll
    for (int kt = 0; kt < KT; kt++) {
        const int key0 = k0 + 16 * (KT * (warp & 3) + kt) + g, key1 = key0 + 8;
#pragma unroll
        for (int n = 0; n < D / 16; n++) {
            if (key0 < T)
                *reinterpret_cast<uint32_t *>(p + (size_t)key0 * ks + 8 * n) =
                    pack_bf16(acc[kt][n][0] * mul, acc[kt][n][1] * mul);
            if (key1 < T)
                *reinterpret_cast<uint32_t *>(p + (size_t)key1 * ks + 8 * n) =
                    pack_bf16(acc[kt][n][2] * mul, acc[kt][n][3] * mul);
        }
    }
}

/* grid (B * Hkv, ceil(T / BN)), block 256: key tile blockIdx.y of kv head kh, over query
 * heads kh * group .. + group - 1 and query tiles from the diagonal to the end. */
template <int D, int BM_, int BN_, int NB_>
__global__ void __launch_bounds__(ATT_BWD_NT)
    attn_bwd_kernel(bf16 *__restrict__ dk, bf16 *__restrict__ dv, float *__restrict__ dqacc,
                    const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                    const bf16 *__restrict__ v, const bf16 *__restrict__ dout,
                    const float *__restrict__ lse, const float *__restrict__ di, int T, int H,
                    int Hkv, float scale) {
    typedef Bwd<D, BM_, BN_, NB_> C;
    constexpr int BM = C::BM, BN = C::BN, LD = C::LD, NT = ATT_BWD_NT, KT = C::KT;
    extern __shared__ __align__(16) unsigned char att_smem[];
    bf16 *sm = reinterpret_cast<bf16 *>(att_smem);
    bf16 *sK = sm + C::K, *sV = sm + C::V, *sQ = sm + C::Q, *sdO = sm + C::DO;
    bf16 *sP = sm + C::P, *sdS = sm + C::DS;
    float *sL = reinterpret_cast<float *>(sm + C::NBF16); /* NB buffers of BM */
    float *sDi = sL + C::NB * BM;                         /* NB buffers of BM */
    const int b = blockIdx.x / Hkv, kh = blockIdx.x % Hkv, group = H / Hkv;
    const int k0 = blockIdx.y * BN;
    const int qt0 = k0 / BM, nq = (T + BM - 1) / BM - qt0, total = group * nq;
    const size_t qs = (size_t)H * D, ks = (size_t)Hkv * D;
    const size_t kvo = (size_t)b * T * ks + (size_t)kh * D;
    const float sl2 = scale * ATT_LOG2E;

    /* Step it covers query head kh * group + it / nq, query tile qt0 + it % nq. */
    auto issue = [&](int it, int buf) {
        const int h = kh * group + it / nq, q0 = (qt0 + it % nq) * BM;
        const size_t qo = (size_t)b * T * qs + (size_t)h * D, lo = ((size_t)b * H + h) * T;
        load_rows<BM, D, NT>(sQ + buf * BM * LD, q + qo, qs, q0, T);
        load_rows<BM, D, NT>(sdO + buf * BM * LD, dout + qo, qs, q0, T);
        const int i = threadIdx.x & (BM - 1), r = q0 + i;
        if (threadIdx.x < BM)
            cp_async4(sL + buf * BM + i, lse + lo + (r < T ? r : 0), r < T);
        else if (threadIdx.x < 2 * BM)
            cp_async4(sDi + buf * BM + i, di + lo + (r < T ? r : 0), r < T);
    };
    load_rows<BN, D, NT>(sK, k + kvo, ks, k0, T);
    load_rows<BN, D, NT>(sV, v + kvo, ks, k0, T);
    issue(0, 0);
    cp_async_commit();

    float dva[KT][D / 16][4], dka[KT][D / 16][4];
#pragma unroll
    for (int kt = 0; kt < KT; kt++)
#pragma unroll
        for (int n = 0; n < D / 16; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) dva[kt][n][e] = dka[kt][n][e] = 0.0f;
    for (int it = 0; it < total; it++) {
        const int cur = C::NB == 2 ? it & 1 : 0;
        /* Step it's tiles have landed, and every warp is done with step it - 1 (its buffer
         * is refilled below with two buffers; its P and dS are overwritten in phase 1). */
        cp_async_wait_all();
        __syncthreads();
        if (C::NB == 2) {
            if (it + 1 < total) issue(it + 1, cur ^ 1);
            cp_async_commit();
        }
        const int h = kh * group + it / nq, q0 = (qt0 + it % nq) * BM;
        const bf16 *cQ = sQ + cur * BM * LD, *cdO = sdO + cur * BM * LD;
        bwd_p_ds<D, C>(sP, sdS, cQ, cdO, sK, sV, sL + cur * BM, sDi + cur * BM, q0, k0, T, sl2);
        __syncthreads();
        bwd_dkdv<D, C>(dva, dka, sP, sdS, cQ, cdO);
        if (C::NB == 1) { /* phase 3 reads neither Q, dO, lse nor Di: refill them meanwhile */
            __syncthreads();
            if (it + 1 < total) issue(it + 1, 0);
            cp_async_commit();
        }
        bwd_dq<D, C>(dqacc + (size_t)b * T * qs + (size_t)h * D, qs, sdS, sK, q0, T);
    }
    bwd_store_kv<D, KT>(dk + kvo, ks, dka, scale, k0, T);
    bwd_store_kv<D, KT>(dv + kvo, ks, dva, 1.0f, k0, T);
}

/* ---- launchers ---- */

static void att_check_args(const char *fn, int B, int T, int H, int Hkv, int D) {
    if (D != 64 && D != 128) {
        fprintf(stderr, "fatal: %s: head dim D = %d is not supported (64 or 128 only)\n", fn, D);
        abort();
    }
    if (B < 0 || T < 0 || H <= 0 || Hkv <= 0 || H % Hkv != 0) {
        fprintf(stderr,
                "fatal: %s: bad shape B=%d T=%d H=%d Hkv=%d (H must be a multiple of Hkv)\n", fn, B,
                T, H, Hkv);
        abort();
    }
}

static void att_check_align(const char *fn, const void *p) {
    if ((uintptr_t)p % 16 != 0) {
        fprintf(stderr, "fatal: %s: device pointer %p is not 16-byte aligned\n", fn, p);
        abort();
    }
}

/* The forward's shared memory: the Q tile and two K and two V tiles. */
template <int D> static constexpr size_t att_fwd_smem(void) {
    return (size_t)(16 * ATT_FWD_NW * ATT_FWD_MT + 4 * ATT_BN) * (D + 8) * sizeof(bf16);
}

template <int D>
static void att_fwd_launch(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                           int B, int T, int H, int Hkv) {
    constexpr int NW = ATT_FWD_NW, MT = ATT_FWD_MT, BM = 16 * NW * MT;
    const size_t smem = att_fwd_smem<D>();
    static bool attr_set = false;
    if (!attr_set) {
        CUDA_CHECK(cudaFuncSetAttribute(attn_fwd_kernel<D, NW, MT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attr_set = true;
    }
    const dim3 grid((unsigned)(B * H), (unsigned)((T + BM - 1) / BM));
    const float sl2 = (float)(1.0 / sqrt((double)D)) * ATT_LOG2E;
    attn_fwd_kernel<D, NW, MT><<<grid, NW * 32, smem>>>(out, lse, q, k, v, T, H, Hkv, sl2);
    LAUNCH_CHECK();
}

extern "C" void attention_forward_bf16_cuda(uint16_t *out, float *lse, const uint16_t *q,
                                            const uint16_t *k, const uint16_t *v, int B, int T,
                                            int H, int Hkv, int D) {
    att_check_args("attention_forward_bf16_cuda", B, T, H, Hkv, D);
    if (B == 0 || T == 0) return;
    const void *ptrs[] = {out, q, k, v};
    for (const void *p : ptrs) att_check_align("attention_forward_bf16_cuda", p);
    bf16 *o = reinterpret_cast<bf16 *>(out);
    const bf16 *qq = reinterpret_cast<const bf16 *>(q), *kk = reinterpret_cast<const bf16 *>(k),
               *vv = reinterpret_cast<const bf16 *>(v);
    if (D == 64)
        att_fwd_launch<64>(o, lse, qq, kk, vv, B, T, H, Hkv);
    else
        att_fwd_launch<128>(o, lse, qq, kk, vv, B, T, H, Hkv);
}

extern "C" size_t attention_backward_bf16_workspace(int B, int T, int H, int Hkv, int D) {
    (void)Hkv;
    const size_t dq = (size_t)B * T * H * D * sizeof(float); /* fp32 dq accumulator */
    const size_t di = (size_t)B * H * T * sizeof(float);     /* rowsum(dout * out) */
    return dq + di;
}

template <int D, int BM, int BN, int NB>
static void att_bwd_launch(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                           const bf16 *v, const float *lse, int B, int T, int H, int Hkv,
                           float *dqacc, const float *di, float scale) {
    const size_t smem = Bwd<D, BM, BN, NB>::BYTES;
    static bool attr_set = false;
    if (!attr_set) {
        CUDA_CHECK(cudaFuncSetAttribute(attn_bwd_kernel<D, BM, BN, NB>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attr_set = true;
    }
    const dim3 grid((unsigned)(B * Hkv), (unsigned)((T + BN - 1) / BN));
    attn_bwd_kernel<D, BM, BN, NB>
        <<<grid, ATT_BWD_NT, smem>>>(dk, dv, dqacc, q, k, v, dout, lse, di, T, H, Hkv, scale);
    LAUNCH_CHECK();
}

/* The backward's tiles: 128 keys per CTA over 64-row query steps, with two buffers of the
 * query-side tiles where the GPU's shared memory holds them (H100: 171 KB at D = 128) and
 * one where it does not (A100: 136.5 KB). The 128-key tiles halve the dq atomics and the
 * Q / dO reads per key, but a call with fewer (sequence, kv head, 128-key tile) CTAs than the
 * GPU has SMs (ctas128) leaves SMs idle, and there the first shape (128 query rows over 64
 * keys per CTA, twice the CTAs) runs instead: on an H200 at 8 rows of 576, 14/2 heads of 64
 * (80 CTAs) it took 0.181 ms against 0.234 (benchmarks/CUDA_NOTES.md, 2026-11-28).
 * DENSERL_ATTN_BWD_TILES=q128k64 or q64k128 sets the shape whatever the grid, and q64k128s
 * forces one buffer. ctas128 0: only whether they fit. */
enum AttBwdTiles { ATT_Q64K128, ATT_Q64K128_SINGLE, ATT_Q128K64, ATT_NO_FIT };

template <int D> static AttBwdTiles att_bwd_tiles(long ctas128) {
    const char *e = getenv("DENSERL_ATTN_BWD_TILES");
    const size_t have = (size_t)dr_cuda_smem_optin();
    const bool small = ctas128 > 0 && ctas128 < dr_cuda_sm_count();
    AttBwdTiles t = e && strcmp(e, "q128k64") == 0    ? ATT_Q128K64
                    : e && strcmp(e, "q64k128s") == 0 ? ATT_Q64K128_SINGLE
                    : e && strcmp(e, "q64k128") == 0  ? ATT_Q64K128
                    : small                           ? ATT_Q128K64
                                                      : ATT_Q64K128;
    if (t == ATT_Q128K64 && Bwd<D, 128, 64, 2>::BYTES > have) t = ATT_Q64K128_SINGLE;
    if (t == ATT_Q64K128 && Bwd<D, 64, 128, 2>::BYTES > have) t = ATT_Q64K128_SINGLE;
    if (t == ATT_Q64K128_SINGLE && Bwd<D, 64, 128, 1>::BYTES > have) t = ATT_NO_FIT;
    return t;
}

template <int D>
static void att_bwd(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
                    const bf16 *v, const bf16 *out, const float *lse, int B, int T, int H, int Hkv,
                    float *dqacc, float *di) {
    const float scale = (float)(1.0 / sqrt((double)D));
    const long rows = (long)B * T * H;
    CUDA_CHECK(cudaMemsetAsync(dqacc, 0, (size_t)rows * D * sizeof(float), 0));
    attn_bwd_pre_kernel<D><<<(unsigned)((rows + 7) / 8), 256>>>(di, dout, out, B, T, H);
    LAUNCH_CHECK();
    switch (att_bwd_tiles<D>((long)B * Hkv * ((T + 127) / 128))) { /* as attention_bf16_bwd_tiles */
    case ATT_Q64K128:
        att_bwd_launch<D, 64, 128, 2>(dk, dv, dout, q, k, v, lse, B, T, H, Hkv, dqacc, di, scale);
        break;
    case ATT_Q64K128_SINGLE:
        att_bwd_launch<D, 64, 128, 1>(dk, dv, dout, q, k, v, lse, B, T, H, Hkv, dqacc, di, scale);
        break;
    case ATT_Q128K64:
        att_bwd_launch<D, 128, 64, 2>(dk, dv, dout, q, k, v, lse, B, T, H, Hkv, dqacc, di, scale);
        break;
    case ATT_NO_FIT:
        fprintf(stderr,
                "fatal: attention_backward_bf16_cuda: head dim %d needs %zu bytes of shared "
                "memory per block and this GPU gives %d (see attention_bf16_fits)\n",
                D, Bwd<D, 64, 128, 1>::BYTES, dr_cuda_smem_optin());
        abort();
    }
    const long n4 = rows * D / 4;
    attn_dq_convert_kernel<<<dr_blocks(n4, 256), 256>>>(dq, dqacc, n4, scale);
    LAUNCH_CHECK();
}

extern "C" const char *attention_bf16_bwd_tiles(int B, int T, int Hkv, int D) {
    const long ctas = (long)B * Hkv * ((T + 127) / 128);
    const AttBwdTiles t = D == 64 ? att_bwd_tiles<64>(ctas) : att_bwd_tiles<128>(ctas);
    return t == ATT_Q64K128          ? "q64k128"
           : t == ATT_Q64K128_SINGLE ? "q64k128s"
           : t == ATT_Q128K64        ? "q128k64"
                                     : NULL;
}

extern "C" int attention_bf16_fits(int D) {
    const size_t have = (size_t)dr_cuda_smem_optin();
    if (D == 64) return att_fwd_smem<64>() <= have && att_bwd_tiles<64>(0) != ATT_NO_FIT;
    if (D == 128) return att_fwd_smem<128>() <= have && att_bwd_tiles<128>(0) != ATT_NO_FIT;
    return 0;
}

extern "C" void attention_backward_bf16_cuda(uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                             const uint16_t *dout, const uint16_t *q,
                                             const uint16_t *k, const uint16_t *v,
                                             const uint16_t *out, const float *lse, int B, int T,
                                             int H, int Hkv, int D, void *workspace) {
    const char *fn = "attention_backward_bf16_cuda";
    att_check_args(fn, B, T, H, Hkv, D);
    if (B == 0 || T == 0) return;
    const void *ptrs[] = {dq, dk, dv, dout, q, k, v, out, workspace};
    for (const void *p : ptrs) att_check_align(fn, p);
    float *dqacc = static_cast<float *>(workspace);
    float *di = dqacc + (size_t)B * T * H * D;
    typedef const bf16 *cp;
    if (D == 64)
        att_bwd<64>((bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (cp)dout, (cp)q, (cp)k, (cp)v, (cp)out, lse,
                    B, T, H, Hkv, dqacc, di);
    else
        att_bwd<128>((bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (cp)dout, (cp)q, (cp)k, (cp)v, (cp)out,
                     lse, B, T, H, Hkv, dqacc, di);
}
