/* CUDA token sampling (sample.h), choosing the same token as sample_cpu for the same logits
 * and u. Greedy: the race's one pass without its noise (sample_gumbel_cuda.cu), many blocks a
 * row, lowest token among the maxima. Otherwise, as on the CPU, only a
 * prefix of each row's sampling order (descending logit, equal logits by lower index) is
 * sorted: one pass per row finds the largest logit cutoff mx + T lr (lr = -8, -16, ..., -128,
 * then everything) whose tokens hold the top-k or the mass the walk needs, the tokens above
 * it are compacted, and one device radix sort over 64-bit keys (row, logit order, token)
 * orders the survivors of a group of rows (at most 16M keys, so the scratch stays 256 MiB
 * however large the batch). Plain sampling (no top-k, no top-p) sorts a band of the order
 * instead of a prefix: the few tokens around where the walk stops (sp_band_kernel).
 * DENSERL_SAMPLE_SORT=full sorts whole rows instead (the first path, kept for comparison;
 * groups of 4M keys), and =prefix takes prefixes for plain sampling too. Then one block per
 * row walks its sorted tokens with block-wide prefix sums in double: the top-k mass, the
 * top-p cut, and the first token whose cumulative mass exceeds u times the kept mass. The
 * unnormalised probabilities are exp((z - max) / T) computed in double and rounded to float,
 * which agrees with the CPU's correctly rounded expf far more often than the CUDA expf
 * (2 ulp) would. The logits are only read. Generation samples plainly by the Gumbel race
 * instead (sample_gumbel_cuda.cu), which needs neither a sort nor a trip to the host. */
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cub/device/device_radix_sort.cuh>
#include "../kernels/kernels_cuda.h"
#include "../kernels/sample_race.cuh"
#include "../runtime/cuda_util.cuh"

enum { SP_THREADS = 1024 };        /* a multiple of 32, at most 1024 (32 warp slots below) */
enum { SP_GROUP_KEYS = 1 << 22 };  /* whole rows: the most keys one sort takes (V larger: V) */
enum { SP_PREFIX_KEYS = 1 << 24 }; /* prefixes: the most keys one sort takes (V larger: V) */

/* ---- sort keys ----
 * key = row << (32 + ib) | ~order(z) << ib | token, ib the bits of V - 1: ascending keys
 * are rows in order, each by descending logit, then ascending token. */

static __device__ __forceinline__ uint32_t sp_order(float z) {
    uint32_t f = __float_as_uint(z);
    if ((f & 0x7fffffffu) == 0) f = 0;               /* -0 == +0, as the CPU compares them */
    return (f & 0x80000000u) ? ~f : f | 0x80000000u; /* unsigned order = float order */
}

static __device__ __forceinline__ float sp_key_logit(uint64_t key, int ib) {
    uint32_t o = ~(uint32_t)(key >> ib);
    return __uint_as_float((o & 0x80000000u) ? o & 0x7fffffffu : ~o);
}

static __device__ __forceinline__ int sp_key_token(uint64_t key, int ib) {
    return (int)(key & ((1ull << ib) - 1));
}

/* keys for rows [b0, b0 + rows) of logits (B, V) */
__global__ void sp_keys_kernel(uint64_t *keys, const float *logits, int b0, int rows, int V,
                               int ib) {
    const long n = (long)rows * V;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        const long row = i / V;
        const int v = (int)(i - row * V);
        const uint32_t o = ~sp_order(logits[(size_t)b0 * V + i]);
        keys[i] = ((uint64_t)row << (32 + ib)) | ((uint64_t)o << ib) | (uint64_t)v;
    }
}

/* ---- block helpers (every thread gets the result; sh: 32 slots of shared memory) ---- */

static __device__ double sp_block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* sh may still be read by a previous call */
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ int sp_block_min(int v, int *sh) {
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static __device__ float sp_block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Inclusive prefix sum across the block of one value per thread; *total gets the block's
 * sum. sh: 32 doubles. */
static __device__ double sp_block_scan(double v, double *sh, double *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        double y = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += y;
    }
    __syncthreads();
    if (lane == 31) sh[warp] = v;
    __syncthreads();
    double w = lane < nw ? sh[lane] : 0.0; /* every warp scans the warp totals itself */
    for (int o = 1; o < 32; o <<= 1) {
        double y = __shfl_up_sync(0xffffffffu, w, o);
        if (lane >= o) w += y;
    }
    /* w at lane k: the sum of warps 0..k */
    double before = __shfl_sync(0xffffffffu, w, warp > 0 ? warp - 1 : 0);
    *total = __shfl_sync(0xffffffffu, w, nw - 1);
    return warp > 0 ? v + before : v;
}

/* ---- the sampling walk ---- */

/* The unnormalised probability exp((z - mx) / T) of a logit, as the CPU's expf rounds it. */
static __device__ __forceinline__ float sp_w(float z, float mx, float T) {
    return (float)exp((double)((z - mx) / T));
}

/* The unnormalised probability of sorted position j. */
static __device__ __forceinline__ float sp_weight(const uint64_t *s, int j, int ib, float mx,
                                                  float T) {
    return sp_w(sp_key_logit(s[j], ib), mx, T);
}

/* Over the sorted positions [0, n), the first j at which the running sum of the weights
 * (from carry) cum_j satisfies cum_j > target (strict) or cum_j >= target (!strict), or where the
 * weight is 0 when stop_zero; n if none. *cum_out: cum_j there (the sum of all n if
 * none). */
static __device__ int sp_find(const uint64_t *s, int n, int ib, float mx, float T, double target,
                              bool strict, bool stop_zero, double carry, double *cum_out,
                              double *shd, int *shi) {
    for (int base = 0; base < n; base += blockDim.x) {
        const int j = base + threadIdx.x;
        const float w = j < n ? sp_weight(s, j, ib, mx, T) : 0.0f;
        double total;
        const double cum = carry + sp_block_scan((double)w, shd, &total);
        const bool hit =
            j < n && ((stop_zero && w <= 0.0f) || (strict ? cum > target : cum >= target));
        const int first = sp_block_min(hit ? j : INT_MAX, shi);
        if (first != INT_MAX) {
            if (j == first) shd[0] = cum; /* all threads passed the scan's reads of shd */
            __syncthreads();
            *cum_out = shd[0];
            return first;
        }
        carry += total;
    }
    *cum_out = carry;
    return n;
}

/* One block per row of the group, row b0 + blockIdx.x. Whole rows sorted (off == NULL): the
 * row's V keys at blockIdx.x * V. Prefixes: off, cnt give where the row's sorted prefix
 * starts and its length, and zfull the mass of the whole row. Bands (carry != NULL, no top-k
 * or top-p): the sorted tokens are a band of the order, carry the mass before it and rmax
 * the row's largest logit. */
__global__ void sp_pick_kernel(int *out, const uint64_t *keys, const int *off, const int *cnt,
                               const double *zfull, const double *carry, const float *rmax,
                               const float *u, int b0, int V, int ib, float T, int top_k,
                               float top_p) {
    __shared__ double shd[32];
    __shared__ int shi[32];
    const int b = b0 + blockIdx.x;
    if (off && cnt[blockIdx.x] == 0) { /* no logit compares (all NaN): nothing to walk */
        if (threadIdx.x == 0) out[b] = 0;
        return;
    }
    const uint64_t *s = keys + (off ? (size_t)off[blockIdx.x] : (size_t)blockIdx.x * V);
    const float mx = carry ? rmax[blockIdx.x] : sp_key_logit(s[0], ib);
    const bool topk = top_k > 0 && top_k < V;
    const int kk = topk ? top_k : off ? cnt[blockIdx.x] : V; /* a prefix holds the top-k */
    double zc = 0.0; /* the mass of the top-k, or of the whole row */
    if (topk || !off) {
        for (int j = threadIdx.x; j < kk; j += blockDim.x) zc += sp_weight(s, j, ib, mx, T);
        zc = sp_block_sum(zc, shd);
    } else {
        zc = zfull[blockIdx.x];
    }
    int n = kk;
    double zp = zc; /* the mass of the kept tokens */
    if (top_p < 1.0f) {
        const int j =
            sp_find(s, kk, ib, mx, T, (double)top_p * zc, false, false, 0.0, &zp, shd, shi);
        if (j < kk) n = j + 1;
    }
    double cum;
    const double before = carry ? carry[blockIdx.x] : 0.0;
    const int j = sp_find(s, n, ib, mx, T, (double)u[b] * zp, true, true, before, &cum, shd, shi);
    /* j == n: u * zp rounded above the walk's sum; a zero weight: the rest underflowed.
     * Either way the last token with weight, as on the CPU (position 0 has weight 1; a
     * band's first token has weight, as the band holds more than the target mass). */
    int pick = j;
    if (j == n || sp_weight(s, j, ib, mx, T) <= 0.0f) pick = j > 0 ? j - 1 : 0;
    if (threadIdx.x == 0) out[b] = sp_key_token(s[pick], ib);
}

/* logp[b] = log softmax(logits[b])[out[b]] at temperature 1; one block per row. */
__global__ void sp_logp_kernel(float *logp, const float *logits, const int *out, int V) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const float *z = logits + (size_t)blockIdx.x * V;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, z[v]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) shf[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? shf[threadIdx.x & 31] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double s = 0.0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf(z[v] - mx);
    s = sp_block_sum(s, shd);
    if (threadIdx.x == 0) logp[blockIdx.x] = (float)((double)(z[out[blockIdx.x]] - mx) - log(s));
}

/* ---- the sorted prefix ---- */

enum { SP_CUTS = 6 }; /* lr = -8, -16, -32, -64, -128, then every token */

/* One block per row of the group: the row's cutoff cut[r] (tokens with z >= cut are kept),
 * how many tokens that keeps (cnt[r]) and the mass of the whole row (zfull[r]), chosen as
 * sample_cpu chooses its sorted prefix: with top-k, the first cutoff keeping at least k
 * tokens; otherwise the first whose tokens hold more than (1 + 1e-9) times the mass the
 * walk needs, top_p (or u) times the row's mass. */
__global__ void sp_cut_kernel(float *cut, int *cnt, double *zfull, const float *logits,
                              const float *u, int b0, int V, float T, int top_k, float top_p) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const float *z = logits + (size_t)(b0 + blockIdx.x) * V;
    float mx = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, z[v]);
    mx = sp_block_max(mx, shf);
    float cz[SP_CUTS];
#pragma unroll
    for (int k = 0; k < SP_CUTS; k++) /* mx + T lr, rounded as the CPU's separate ops */
        cz[k] = k == SP_CUTS - 1 ? -INFINITY : __fadd_rn(mx, __fmul_rn(T, -8.0f * (1 << k)));
    double zs = 0.0, mass[SP_CUTS] = {0};
    int n[SP_CUTS] = {0};
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float w = sp_w(z[v], mx, T);
        zs += w;
#pragma unroll
        for (int k = 0; k < SP_CUTS; k++)
            if (z[v] >= cz[k]) mass[k] += w, n[k]++;
    }
    zs = sp_block_sum(zs, shd);
    const bool topk = top_k > 0 && top_k < V;
    const double need = (top_p < 1.0f ? (double)top_p : (double)u[b0 + blockIdx.x]) * zs;
    int pick = SP_CUTS - 1;
#pragma unroll
    for (int k = 0; k < SP_CUTS - 1; k++) { /* uniform across the block: block-wide sums */
        const long nk = llrint(sp_block_sum((double)n[k], shd));
        const double mk = topk ? 0.0 : sp_block_sum(mass[k], shd);
        if (topk ? nk >= top_k : nk == V || mk > need * (1.0 + 1e-9)) {
            pick = k;
            break;
        }
    }
    float c = -INFINITY; /* cz[pick] and n[pick], unrolled so that both stay in registers */
    int np = 0;
#pragma unroll
    for (int k = 0; k < SP_CUTS; k++)
        if (k == pick) c = cz[k], np = n[k];
    const int kept = (int)llrint(sp_block_sum((double)np, shd));
    if (threadIdx.x == 0) cut[blockIdx.x] = c, cnt[blockIdx.x] = kept, zfull[blockIdx.x] = zs;
}

/* One block per row: the keys of the tokens at or above the row's cutoff (and below hi[r],
 * unless hi is NULL or that is +inf), at off[r] onward in any order (the sort orders them);
 * fill (rows) starts at zero. */
__global__ void sp_compact_kernel(uint64_t *keys, int *fill, const int *off, const float *cut,
                                  const float *hi, const float *logits, int b0, int V, int ib) {
    const float *z = logits + (size_t)(b0 + blockIdx.x) * V;
    const float c = cut[blockIdx.x], h = hi ? hi[blockIdx.x] : INFINITY;
    const unsigned lane = threadIdx.x & 31;
    for (int base = 0; base < V; base += blockDim.x) { /* the same trip count for a warp */
        const int v = base + threadIdx.x;
        const bool keep = v < V && z[v] >= c && (h == INFINITY || z[v] < h);
        const unsigned m = __ballot_sync(0xffffffffu, keep);
        int w0 = 0;
        if (lane == 0 && m) w0 = atomicAdd(&fill[blockIdx.x], __popc(m));
        w0 = __shfl_sync(0xffffffffu, w0, 0);
        if (keep) {
            const uint32_t o = ~sp_order(z[v]);
            keys[off[blockIdx.x] + w0 + __popc(m & ((1u << lane) - 1))] =
                ((uint64_t)blockIdx.x << (32 + ib)) | ((uint64_t)o << ib) | (uint64_t)v;
        }
    }
}

/* ---- the band (plain sampling: no top-k, no top-p) ----
 * The walk needs only the token where the running mass in sampling order first exceeds
 * u Z, so no prefix of the order has to be sorted: a few passes over the row narrow a band
 * of logit values lo <= z < hi that holds that token (SP_BAND_K - 1 cutoffs per pass,
 * evenly spaced over the band, with the mass and count at or above each), the band's
 * tokens alone are sorted, and the walk starts from the exact mass above hi. Each cutoff
 * is taken with a margin of 1e-9 of u Z on its side, so that the double sums' order cannot
 * move the crossing out of the band. */

enum { SP_BAND_THREADS = 512, SP_BAND_K = 16, SP_BAND_PASSES = 3, SP_BAND_SMALL = 2048 };
enum { SP_BAND_UNROLL = 4 }; /* logits each thread loads before it uses them */

/* The block's sums of SP_BAND_K - 1 doubles and ints per thread, into every thread's m and
 * n, in a fixed order (warp shuffles, then the warps in order). */
static __device__ void sp_band_sums(double m[SP_BAND_K - 1], int n[SP_BAND_K - 1],
                                    double (*shm)[32], int (*shn)[32]) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int k = 0; k < SP_BAND_K - 1; k++) {
        for (int o = 16; o > 0; o >>= 1) {
            m[k] += __shfl_xor_sync(0xffffffffu, m[k], o);
            n[k] += __shfl_xor_sync(0xffffffffu, n[k], o);
        }
    }
    __syncthreads(); /* a previous call's readers are done */
    if (lane == 0)
#pragma unroll
        for (int k = 0; k < SP_BAND_K - 1; k++) shm[k][warp] = m[k], shn[k][warp] = n[k];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < SP_BAND_K - 1; k++) {
        double s = 0.0;
        int c = 0;
        for (int w = 0; w < nw; w++) s += shm[k][w], c += shn[k][w];
        m[k] = s, n[k] = c;
    }
}

/* One block per row: the band [cut, hi) of the row's logits (hi = +inf: no upper end), its
 * token count cnt, the mass of the tokens at or above hi (carry) and of the whole row
 * (zfull), and the row's largest logit (rmax), which the weights are relative to. */
__global__ void __launch_bounds__(SP_BAND_THREADS)
    sp_band_kernel(float *cut, float *hi, int *cnt, double *carry, double *zfull, float *rmax,
                   const float *logits, const float *u, int V, float T) {
    __shared__ double shm[SP_BAND_K - 1][32];
    __shared__ int shn[SP_BAND_K - 1][32];
    __shared__ double shd[32];
    __shared__ float shf[32];
    const float *z = logits + (size_t)blockIdx.x * V;
    float mx = -INFINITY, mn = INFINITY; /* mn: the least finite logit */
    for (int v0 = threadIdx.x; v0 < V; v0 += SP_BAND_UNROLL * blockDim.x) {
        float xs[SP_BAND_UNROLL];
#pragma unroll
        for (int i = 0; i < SP_BAND_UNROLL; i++) {
            const int v = v0 + i * (int)blockDim.x;
            xs[i] = v < V ? z[v] : NAN;
        }
#pragma unroll
        for (int i = 0; i < SP_BAND_UNROLL; i++) {
            mx = fmaxf(mx, xs[i]);
            if (xs[i] > -INFINITY) mn = fminf(mn, xs[i]);
        }
    }
    mx = sp_block_max(mx, shf);
    mn = -sp_block_max(-mn, shf);
    float lo = -INFINITY, top = INFINITY;
    double above = 0.0, target = 0.0; /* the mass at or above top; u Z */
    int n_lo = 0, n_hi = 0;           /* tokens at or above lo, top */
    double zs = 0.0;
    for (int p = 0; p < SP_BAND_PASSES; p++) {
        const float a = fmaxf(lo, mn), b = fminf(top, mx);
        const bool split = a < b; /* else one value left, or none: only the totals */
        if (!split && p > 0) break;
        float t[SP_BAND_K - 1];
        double m[SP_BAND_K - 1];
        int n[SP_BAND_K - 1];
#pragma unroll
        for (int k = 0; k < SP_BAND_K - 1; k++) {
            t[k] = split ? __fadd_rn(a, __fmul_rn(b - a, (float)(k + 1) / SP_BAND_K)) : NAN;
            m[k] = 0.0, n[k] = 0;
        }
        double zp = 0.0;
        int nv = 0;
        for (int v0 = threadIdx.x; v0 < V; v0 += SP_BAND_UNROLL * blockDim.x) {
            float xs[SP_BAND_UNROLL]; /* the loads first, so that several are in flight */
#pragma unroll
            for (int i = 0; i < SP_BAND_UNROLL; i++) {
                const int v = v0 + i * (int)blockDim.x;
                xs[i] = v < V ? z[v] : NAN; /* a NaN counts nowhere */
            }
#pragma unroll
            for (int i = 0; i < SP_BAND_UNROLL; i++) {
                const float x = xs[i];
                if (!(x >= t[0])) { /* below every cutoff: only the first pass's totals */
                    if (p == 0 && x >= -INFINITY) zp += sp_w(x, mx, T), nv++;
                    continue;
                }
                const float w = sp_w(x, mx, T);
                if (p == 0) zp += w, nv++;
#pragma unroll
                for (int k = 0; k < SP_BAND_K - 1; k++)
                    if (x >= t[k]) m[k] += w, n[k]++;
            }
        }
        if (p == 0) {
            zs = sp_block_sum(zp, shd);
            n_lo = (int)llrint(sp_block_sum((double)nv, shd));
            target = (double)u[blockIdx.x] * zs;
        }
        if (!split) break;
        sp_band_sums(m, n, shm, shn);
        /* the mass at or above a cutoff falls as the cutoff rises: hi is the lowest cutoff
         * whose mass stays below the target, lo the highest whose mass exceeds it */
#pragma unroll
        for (int k = SP_BAND_K - 2; k >= 0; k--)
            if (m[k] < target * (1.0 - 1e-9)) top = t[k], above = m[k], n_hi = n[k];
#pragma unroll
        for (int k = 0; k < SP_BAND_K - 1; k++)
            if (m[k] > target * (1.0 + 1e-9)) lo = t[k], n_lo = n[k];
        if (n_lo - n_hi <= SP_BAND_SMALL) break;
    }
    if (threadIdx.x == 0) {
        cut[blockIdx.x] = lo, hi[blockIdx.x] = top, cnt[blockIdx.x] = n_lo - n_hi;
        carry[blockIdx.x] = above, zfull[blockIdx.x] = zs, rmax[blockIdx.x] = mx;
    }
}

/* ---- launchers ---- */

/* Sorts rows [b0, b0 + rows) into keys and returns the buffer holding the result. */
static uint64_t *sp_sort_rows(uint64_t *k0, uint64_t *k1, void *temp, size_t temp_bytes,
                              const float *logits, int b0, int rows, int V, int ib, int rb) {
    sp_keys_kernel<<<dr_blocks((long)rows * V, 256), 256>>>(k0, logits, b0, rows, V, ib);
    LAUNCH_CHECK();
    cub::DoubleBuffer<uint64_t> keys(k0, k1);
    CUDA_CHECK(
        cub::DeviceRadixSort::SortKeys(temp, temp_bytes, keys, (long)rows * V, 0, 32 + ib + rb, 0));
    return keys.Current();
}

static size_t sp_align(size_t x) {
    return (x + 255) & ~(size_t)255;
}

/* Rows per group of B rows of V tokens: the row must fit in the key's top 32 - ib bits
 * (*ib: the bits of a token, V - 1 < 2^ib; *rb: the bits of a row within the group), and a
 * group's keys are capped at SP_GROUP_KEYS (two buffers of 32 MiB). */
static long sp_group_rows(int B, int V, int *ib, int *rb) {
    *ib = 0;
    while ((1L << *ib) < V) ++*ib;
    long G = B;
    if (G > (1L << (32 - *ib))) G = 1L << (32 - *ib);
    if (G > SP_GROUP_KEYS / V) G = SP_GROUP_KEYS / V > 1 ? SP_GROUP_KEYS / V : 1;
    *rb = 0;
    while ((1L << *rb) < G) ++*rb;
    return G;
}

/* The temperature path: rows in groups small enough for the row to fit in the key. */
static void sp_sample_sorted(int *out, const float *logits, const float *u, int B, int V, float T,
                             int top_k, float top_p) {
    int ib, rb;
    const long G = sp_group_rows(B, V, &ib, &rb);
    const size_t nk = (size_t)G * V;
    size_t temp_bytes = 0;
    cub::DoubleBuffer<uint64_t> probe(NULL, NULL);
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(NULL, temp_bytes, probe, (long)nk, 0, 32 + ib + rb,
                                              0)); /* the same bits as every group's sort */
    const size_t kb = sp_align(nk * sizeof(uint64_t));
    char *buf = (char *)dr_cuda_scratch(SCRATCH_SAMPLE, 2 * kb + sp_align(temp_bytes));
    uint64_t *k0 = (uint64_t *)buf, *k1 = (uint64_t *)(buf + kb);
    for (int b0 = 0; b0 < B; b0 += G) {
        const int rows = B - b0 < G ? B - b0 : (int)G;
        const uint64_t *s =
            sp_sort_rows(k0, k1, buf + 2 * kb, temp_bytes, logits, b0, rows, V, ib, rb);
        sp_pick_kernel<<<rows, SP_THREADS>>>(out, s, nullptr, nullptr, nullptr, nullptr, nullptr, u,
                                             b0, V, ib, T, top_k, top_p);
        LAUNCH_CHECK();
    }
}

/* DENSERL_SAMPLE_SORT: "full" sorts whole rows (the first path), "prefix" takes sorted
 * prefixes for plain sampling too (the second); both kept for comparison. */
static bool sp_sort_is(const char *path) {
    const char *e = getenv("DENSERL_SAMPLE_SORT");
    return e && strcmp(e, path) == 0;
}

/* 3 B ints of host memory for the per-row counts, offsets and group starts, kept and grown
 * across calls (one per decode step). */
static int *sp_host_rows(int B) {
    static int *h = NULL;
    static size_t cap = 0;
    if (cap < 3 * (size_t)B) {
        free(h);
        cap = 3 * (size_t)B;
        h = (int *)malloc(sizeof(int) * cap);
        if (!h) {
            fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
            abort();
        }
    }
    return h;
}

/* The most keys one sort of prefixes takes: SP_PREFIX_KEYS, or DENSERL_SAMPLE_GROUP_KEYS
 * (tests set it low to make many groups). */
static long sp_prefix_keys(void) {
    const char *e = getenv("DENSERL_SAMPLE_GROUP_KEYS");
    const long n = e ? atol(e) : 0;
    return n > 0 ? n : (long)SP_PREFIX_KEYS;
}

/* The temperature path over sorted prefixes (the default). The cutoffs of all B rows come
 * from one launch (every multiprocessor busy); the host reads the prefix lengths once and
 * packs consecutive rows into groups of at most SP_PREFIX_KEYS keys (one row may hold all V)
 * and as many rows as the key's row bits allow; per group the keys are compacted, sorted
 * once and walked, one block per row. Peaked rows (an LM's) keep a few thousand tokens and
 * all rows make one group; flat rows keep most of V and need several. */
static void sp_sample_prefix(int *out, const float *logits, const float *u, int B, int V, float T,
                             int top_k, float top_p) {
    int ib = 0;
    while ((1L << ib) < V) ++ib;
    const long cap = sp_prefix_keys() > V ? sp_prefix_keys() : V;
    const long max_rows = B < (1L << (32 - ib)) ? B : 1L << (32 - ib);
    int rb = 0;
    while ((1L << rb) < max_rows) ++rb;
    size_t temp_bytes = 0;
    cub::DoubleBuffer<uint64_t> probe(NULL, NULL);
    CUDA_CHECK(cub::DeviceRadixSort::SortKeys(NULL, temp_bytes, probe, cap, 0, 32 + ib + rb, 0));
    const size_t kb = sp_align((size_t)cap * sizeof(uint64_t)), tb = sp_align(temp_bytes);
    const size_t rbytes = sp_align((size_t)B * sizeof(double)); /* per-row arrays */
    char *buf = (char *)dr_cuda_scratch(SCRATCH_SAMPLE, 2 * kb + tb + 8 * rbytes);
    uint64_t *k0 = (uint64_t *)buf, *k1 = (uint64_t *)(buf + kb);
    char *rows_at = buf + 2 * kb + tb;
    float *cut = (float *)rows_at;
    int *cnt = (int *)(rows_at + rbytes), *fill = (int *)(rows_at + 2 * rbytes);
    double *zfull = (double *)(rows_at + 3 * rbytes);
    int *off = (int *)(rows_at + 4 * rbytes);
    /* plain sampling (no top-k, no top-p): bands instead of prefixes, unless
     * DENSERL_SAMPLE_SORT=prefix */
    const bool band = (top_k <= 0 || top_k >= V) && top_p >= 1.0f && !sp_sort_is("prefix");
    float *hi = band ? (float *)(rows_at + 5 * rbytes) : nullptr;
    float *rmax = band ? (float *)(rows_at + 6 * rbytes) : nullptr;
    double *carry = band ? (double *)(rows_at + 7 * rbytes) : nullptr;
    if (band)
        sp_band_kernel<<<B, SP_BAND_THREADS>>>(cut, hi, cnt, carry, zfull, rmax, logits, u, V, T);
    else
        sp_cut_kernel<<<B, SP_THREADS>>>(cut, cnt, zfull, logits, u, 0, V, T, top_k, top_p);
    LAUNCH_CHECK();
    int *h = sp_host_rows(B); /* cnt, offset, first of a group */
    int *hcnt = h, *hoff = h + B, *hfirst = h + 2 * B;
    CUDA_CHECK(cudaMemcpy(hcnt, cnt, sizeof(int) * (size_t)B, cudaMemcpyDeviceToHost));
    long t = 0, rows = 0; /* offsets restart at zero with each group */
    for (int b = 0; b < B; b++) {
        hfirst[b] = b == 0 || rows == max_rows || t + hcnt[b] > cap;
        if (hfirst[b]) t = 0, rows = 0;
        hoff[b] = (int)t, t += hcnt[b], rows++;
    }
    CUDA_CHECK(cudaMemcpy(off, hoff, sizeof(int) * (size_t)B, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemsetAsync(fill, 0, sizeof(int) * (size_t)B, 0));
    for (int g0 = 0; g0 < B;) {
        int n = 1; /* the group: rows g0 .. g0 + n - 1 */
        while (g0 + n < B && !hfirst[g0 + n]) n++;
        const long total = (long)hoff[g0 + n - 1] + hcnt[g0 + n - 1];
        int rbg = 0;
        while ((1L << rbg) < n) ++rbg;
        sp_compact_kernel<<<n, 256>>>(k0, fill + g0, off + g0, cut + g0, band ? hi + g0 : nullptr,
                                      logits, g0, V, ib);
        LAUNCH_CHECK();
        cub::DoubleBuffer<uint64_t> keys(k0, k1);
        CUDA_CHECK(cub::DeviceRadixSort::SortKeys(buf + 2 * kb, temp_bytes, keys, total, 0,
                                                  32 + ib + rbg, 0));
        sp_pick_kernel<<<n, SP_THREADS>>>(out, keys.Current(), off + g0, cnt + g0, zfull + g0,
                                          band ? carry + g0 : nullptr, band ? rmax + g0 : nullptr,
                                          u, g0, V, ib, T, top_k, top_p);
        LAUNCH_CHECK();
        g0 += n;
    }
}

extern "C" void sample_logp_cuda(int *out, float *logp, float *logits, const float *u, int B, int V,
                                 float temperature, int top_k, float top_p) {
    if (B <= 0) return;
    if (!(temperature > 0.0f)) /* the race's pass without noise, log-probs included */
        return sample_race_cuda(out, logp, logits, nullptr, 0, B, V, 0.0f);
    if (sp_sort_is("full"))
        sp_sample_sorted(out, logits, u, B, V, temperature, top_k, top_p);
    else
        sp_sample_prefix(out, logits, u, B, V, temperature, top_k, top_p);
    if (logp) {
        sp_logp_kernel<<<B, SP_THREADS>>>(logp, logits, out, V);
        LAUNCH_CHECK();
    }
}

extern "C" void sample_cuda(int *out, float *logits, const float *u, int B, int V,
                            float temperature, int top_k, float top_p) {
    sample_logp_cuda(out, NULL, logits, u, B, V, temperature, top_k, top_p);
}
