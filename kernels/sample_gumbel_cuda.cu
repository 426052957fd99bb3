/* CUDA plain sampling by the Gumbel-max race (sample.h: sample_gumbel_cpu), and greedy picks
 * by the same pass without the noise. One pass over the logits with no sort and no host round
 * trip: each row is cut into chunks of SG_CHUNK tokens, one block a chunk, so that a batch of
 * a few hundred rows over a 152k vocabulary makes thousands of blocks. A block draws its
 * tokens' Philox words (one call per two tokens), scores them with the same float arithmetic
 * as the CPU (philox.h), and leaves the chunk's best (score, token) and its softmax partials
 * (max, sum of exp) in scratch; one warp per row then merges the chunks in order, lowest
 * token on equal scores, and forms the chosen token's log-prob. */
#include <climits>
#include <cstdint>
#include "../kernels/kernels_cuda.h"
#include "../kernels/philox.h"
#include "../kernels/sample_race.cuh"
#include "../runtime/cuda_util.cuh"

enum { SG_THREADS = 256, SG_CHUNK = 4096 }; /* SG_CHUNK even: a chunk holds whole pairs */

typedef struct {
    double s;    /* sum of exp(z - m) over the chunk's finite logits */
    float m;     /* their max (-inf: none) */
    float score; /* the best score */
    int tok;     /* its token (INT_MAX: no score beat NaN) */
    int pad;
} SgPart;

/* Does (s, t) come before (bs, bt) in the race: the higher score, the lower token on ties. */
static __device__ __forceinline__ bool sg_wins(float s, int t, float bs, int bt) {
    return s > bs || (s == bs && t < bt);
}

/* Folds logit z into a running (m, s) with s in double. */
static __device__ __forceinline__ void sg_add(float z, float *m, double *s) {
    if (!(z > -INFINITY)) return; /* -inf (and NaN) add nothing */
    if (z > *m) {
        *s = *s * exp((double)*m - (double)z) + 1.0;
        *m = z;
    } else {
        *s += (double)expf(z - *m);
    }
}

/* Merges partial b into a: the race, then the softmax sums. */
static __device__ __forceinline__ void sg_merge(SgPart *a, const SgPart &b) {
    if (sg_wins(b.score, b.tok, a->score, a->tok)) a->score = b.score, a->tok = b.tok;
    if (b.m > a->m) {
        a->s = a->s * exp((double)a->m - (double)b.m) + b.s;
        a->m = b.m;
    } else if (b.m > -INFINITY) {
        a->s += b.s * exp((double)b.m - (double)a->m);
    }
}

static __device__ SgPart sg_shfl(const SgPart &p, int o) {
    SgPart q;
    q.s = __shfl_xor_sync(0xffffffffu, p.s, o);
    q.m = __shfl_xor_sync(0xffffffffu, p.m, o);
    q.score = __shfl_xor_sync(0xffffffffu, p.score, o);
    q.tok = __shfl_xor_sync(0xffffffffu, p.tok, o);
    q.pad = 0;
    return q;
}

static __device__ SgPart sg_warp_merge(SgPart p) {
    for (int o = 16; o > 0; o >>= 1) sg_merge(&p, sg_shfl(p, o));
    return p;
}

static __device__ __forceinline__ SgPart sg_empty(void) {
    SgPart p;
    p.s = 0.0, p.m = -INFINITY, p.score = -INFINITY, p.tok = INT_MAX, p.pad = 0;
    return p;
}

/* grid (chunks, B): chunk blockIdx.x of row blockIdx.y into part[row * chunks + chunk];
 * keys NULL: the logits themselves are the scores (greedy); the softmax partials only with
 * want_logp. */
__global__ void __launch_bounds__(SG_THREADS)
    sg_chunk_kernel(SgPart *part, const float *logits, const uint64_t *keys, uint64_t seed, int V,
                    float T, bool want_logp) {
    __shared__ SgPart sh[SG_THREADS / 32];
    const int b = blockIdx.y, v0 = blockIdx.x * SG_CHUNK;
    const int v1 = v0 + SG_CHUNK < V ? v0 + SG_CHUNK : V;
    const float *z = logits + (size_t)b * V;
    const bool noise = keys != nullptr;
    const uint64_t key = noise ? keys[b] : 0;
    SgPart p = sg_empty();
    for (int v = v0 + 2 * (int)threadIdx.x; v < v1; v += 2 * SG_THREADS) {
        philox4 w = {{0, 0, 0, 0}};
        if (noise) w = philox_gumbel_draw(seed, key, (uint32_t)(v / 2));
        for (int j = 0; j < 2 && v + j < v1; j++) {
            const float x = z[v + j];
            const float s = noise ? x / T - philox_log_exp(w.v[2 * j], w.v[2 * j + 1]) : x;
            if (sg_wins(s, v + j, p.score, p.tok)) p.score = s, p.tok = v + j;
            if (want_logp) sg_add(x, &p.m, &p.s);
        }
    }
    p = sg_warp_merge(p);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = p;
    __syncthreads();
    if (threadIdx.x < 32) {
        p = threadIdx.x < SG_THREADS / 32 ? sh[threadIdx.x] : sg_empty();
        p = sg_warp_merge(p);
        if (threadIdx.x == 0) part[(size_t)b * gridDim.x + blockIdx.x] = p;
    }
}

/* One warp per row: the row's chunks in order, then out and logp. */
__global__ void sg_row_kernel(int *out, float *logp, const SgPart *part, const float *logits,
                              int chunks, int V) {
    const int b = blockIdx.x;
    SgPart p = sg_empty();
    for (int c = threadIdx.x; c < chunks; c += 32) sg_merge(&p, part[(size_t)b * chunks + c]);
    p = sg_warp_merge(p);
    if (threadIdx.x == 0) {
        const int tok = p.tok == INT_MAX ? 0 : p.tok;
        out[b] = tok;
        if (logp) {
            const float z = logits[(size_t)b * V + tok];
            logp[b] = (float)((double)(z - p.m) - log(p.s));
        }
    }
}

void sample_race_cuda(int *out, float *logp, const float *logits, const uint64_t *keys,
                      uint64_t seed, int B, int V, float temperature) {
    if (B <= 0) return;
    const int chunks = (V + SG_CHUNK - 1) / SG_CHUNK;
    SgPart *part = (SgPart *)dr_cuda_scratch(SCRATCH_SAMPLE, sizeof(SgPart) * (size_t)B * chunks);
    for (int b0 = 0; b0 < B; b0 += 65535) { /* a grid's y extent */
        const int n = B - b0 < 65535 ? B - b0 : 65535;
        const float *z = logits + (size_t)b0 * V;
        sg_chunk_kernel<<<dim3(chunks, n), SG_THREADS>>>(part + (size_t)b0 * chunks, z,
                                                         keys ? keys + b0 : nullptr, seed, V,
                                                         temperature, logp != nullptr);
        LAUNCH_CHECK();
    }
    sg_row_kernel<<<B, 32>>>(out, logp, part, logits, chunks, V);
    LAUNCH_CHECK();
}

extern "C" void sample_gumbel_cuda(int *out, float *logp, const float *logits, const uint64_t *keys,
                                   uint64_t seed, int B, int V, float temperature) {
    sample_race_cuda(out, logp, logits, keys, seed, B, V, temperature);
}
