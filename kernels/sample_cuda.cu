/* CUDA token sampling (sample.h), choosing the same token as sample_cpu for the same logits
 * and u. Greedy: one block per row finds the first maximum. Otherwise every row is sorted
 * in the sampling order (descending logit, equal logits by lower index) with one device
 * radix sort over 64-bit keys (row, logit order, token), a group of rows at a time (at
 * most 4M keys, so the scratch stays 64 MiB however large the batch); then
 * one block per row walks the sorted row with block-wide prefix sums in double: the top-k
 * mass, the top-p cut, and the first token whose cumulative mass exceeds u times the kept
 * mass. The unnormalised probabilities are exp((z - max) / T) computed in double and
 * rounded to float, which agrees with the CPU's correctly rounded expf far more often than
 * the CUDA expf (2 ulp) would. The logits are only read. */
#include <climits>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"

enum { SP_THREADS = 1024 };       /* a multiple of 32, at most 1024 (32 warp slots below) */
enum { SP_GROUP_KEYS = 1 << 22 }; /* the most keys one sort takes, unless V is larger */

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

/* The unnormalised probability of sorted position j. */
static __device__ __forceinline__ float sp_weight(const uint64_t *s, int j, int ib, float mx,
                                                  float T) {
    return (float)exp((double)((sp_key_logit(s[j], ib) - mx) / T));
}

/* Over the sorted positions [0, n), the first j at which the running sum of the weights
 * cum_j satisfies cum_j > target (strict) or cum_j >= target (!strict), or where the
 * weight is 0 when stop_zero; n if none. *cum_out: cum_j there (the sum of all n if
 * none). */
static __device__ int sp_find(const uint64_t *s, int n, int ib, float mx, float T, double target,
                              bool strict, bool stop_zero, double *cum_out, double *shd, int *shi) {
    double carry = 0.0;
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

/* One block per row of the group; s: the group's sorted keys, row b0 + blockIdx.x. */
__global__ void sp_pick_kernel(int *out, const uint64_t *keys, const float *u, int b0, int V,
                               int ib, float T, int top_k, float top_p) {
    __shared__ double shd[32];
    __shared__ int shi[32];
    const int b = b0 + blockIdx.x;
    const uint64_t *s = keys + (size_t)blockIdx.x * V;
    const float mx = sp_key_logit(s[0], ib);
    const int kk = top_k > 0 && top_k < V ? top_k : V;
    double zc = 0.0; /* the mass of the top-k */
    for (int j = threadIdx.x; j < kk; j += blockDim.x) zc += sp_weight(s, j, ib, mx, T);
    zc = sp_block_sum(zc, shd);
    int n = kk;
    double zp = zc; /* the mass of the kept tokens */
    if (top_p < 1.0f) {
        const int j = sp_find(s, kk, ib, mx, T, (double)top_p * zc, false, false, &zp, shd, shi);
        if (j < kk) n = j + 1;
    }
    double cum;
    const int j = sp_find(s, n, ib, mx, T, (double)u[b] * zp, true, true, &cum, shd, shi);
    /* j == n: u * zp rounded above the walk's sum; a zero weight: the rest underflowed.
     * Either way the last token with weight, as on the CPU (position 0 has weight 1). */
    int pick = j;
    if (j == n || sp_weight(s, j, ib, mx, T) <= 0.0f) pick = j > 0 ? j - 1 : 0;
    if (threadIdx.x == 0) out[b] = sp_key_token(s[pick], ib);
}

/* Greedy: the first maximum of each row; one block per row. */
__global__ void sp_argmax_kernel(int *out, const float *logits, int V) {
    __shared__ float shv[32];
    __shared__ int shi[32];
    const float *z = logits + (size_t)blockIdx.x * V;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int v = threadIdx.x; v < V; v += blockDim.x)
        if (bi == INT_MAX || z[v] > bv) bv = z[v], bi = v;
    /* (value, index) pairs: the larger value, the lower index among equals */
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    if ((threadIdx.x & 31) == 0) shv[threadIdx.x >> 5] = bv, shi[threadIdx.x >> 5] = bi;
    __syncthreads();
    if (threadIdx.x < 32) {
        const bool in = (int)threadIdx.x < (int)(blockDim.x >> 5);
        bv = in ? shv[threadIdx.x] : -INFINITY;
        bi = in ? shi[threadIdx.x] : INT_MAX;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        }
        if (threadIdx.x == 0) out[blockIdx.x] = bi;
    }
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

/* The temperature path: rows in groups small enough for the row to fit in the key. */
static void sp_sample_sorted(int *out, const float *logits, const float *u, int B, int V, float T,
                             int top_k, float top_p) {
    int ib = 0;
    while ((1L << ib) < V) ib++; /* V - 1 < 2^ib */
    /* rows per group: the row must fit in the key's top 32 - ib bits, and a group's keys
     * are capped at SP_GROUP_KEYS (two buffers of 32 MiB) */
    long G = B;
    if (G > (1L << (32 - ib))) G = 1L << (32 - ib);
    if (G > SP_GROUP_KEYS / V) G = SP_GROUP_KEYS / V > 1 ? SP_GROUP_KEYS / V : 1;
    int rb = 0; /* bits of the row within a group */
    while ((1L << rb) < G) rb++;
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
        sp_pick_kernel<<<rows, SP_THREADS>>>(out, s, u, b0, V, ib, T, top_k, top_p);
        LAUNCH_CHECK();
    }
}

extern "C" void sample_logp_cuda(int *out, float *logp, float *logits, const float *u, int B, int V,
                                 float temperature, int top_k, float top_p) {
    if (B <= 0) return;
    if (!(temperature > 0.0f)) {
        sp_argmax_kernel<<<B, SP_THREADS>>>(out, logits, V);
        LAUNCH_CHECK();
    } else {
        sp_sample_sorted(out, logits, u, B, V, temperature, top_k, top_p);
    }
    if (logp) {
        sp_logp_kernel<<<B, SP_THREADS>>>(logp, logits, out, V);
        LAUNCH_CHECK();
    }
}

extern "C" void sample_cuda(int *out, float *logits, const float *u, int B, int V,
                            float temperature, int top_k, float top_p) {
    sample_logp_cuda(out, NULL, logits, u, B, V, temperature, top_k, top_p);
}
