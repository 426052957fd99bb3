/* Times every CUDA kernel against the two floors measured in the same run: the bandwidth of a
 * large device-to-device copy (bytes read + written) and the rate of a large cuBLAS matrix
 * product (bf16 inputs with fp32 accumulation, and plain fp32 for the fp32 kernels). Each row
 * gives the median time over repeated launches (CUDA events), the bytes or FLOPs the kernel
 * must move or do at least, the achieved rate and its ratio to the floor that bounds it.
 * Inputs are random, never zeros, and larger than the L2 cache where the kernel is
 * memory-bound. Usage: bench_cuda [--json PATH] [--quick] */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/attention_bf16.h"
#include "kernels/attention_cudnn.h"
#include "kernels/kernels_cuda.h"
#include "kernels/logprob_bf16.h"
#include "kernels/philox.h"
#include "runtime/backend.h"

cublasHandle_t dr_cublas(void); /* runtime/backend_cuda.cu */

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_cuda: %s:%d: %s\n", __FILE__, __LINE__,                         \
                    cudaGetErrorString(e_));                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

enum { MEM = 0, F32 = 1, BF16 = 2 }; /* which floor bounds a kernel */

static json_t *g_rows;
static double g_floor[3]; /* GB/s, fp32 TFLOP/s, bf16 TFLOP/s */
static int g_reps = 20;
static cudaEvent_t g_ev0, g_ev1;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of reps runs of stmt, after 3 warm-up runs. */
#define TIME_MS(out, stmt)                                                                         \
    do {                                                                                           \
        for (int w_ = 0; w_ < 3; w_++) {                                                           \
            stmt;                                                                                  \
        }                                                                                          \
        CK(cudaDeviceSynchronize());                                                               \
        double t_[256];                                                                            \
        int n_ = g_reps < 256 ? g_reps : 256;                                                      \
        for (int r_ = 0; r_ < n_; r_++) {                                                          \
            CK(cudaEventRecord(g_ev0, 0));                                                         \
            stmt;                                                                                  \
            CK(cudaEventRecord(g_ev1, 0));                                                         \
            CK(cudaEventSynchronize(g_ev1));                                                       \
            float ms_;                                                                             \
            CK(cudaEventElapsedTime(&ms_, g_ev0, g_ev1));                                          \
            t_[r_] = ms_;                                                                          \
        }                                                                                          \
        qsort(t_, (size_t)n_, sizeof(double), cmp_double);                                         \
        (out) = t_[n_ / 2];                                                                        \
    } while (0)

/* One table row: amount is bytes for MEM kernels and FLOPs otherwise. */
static void report(const char *name, const char *shape, int kind, double amount, double ms) {
    double rate = kind == MEM ? amount / (ms * 1e-3) / 1e9 : amount / (ms * 1e-3) / 1e12;
    double ratio = g_floor[kind] > 0 ? rate / g_floor[kind] : NAN;
    const char *unit = kind == MEM ? "GB/s" : "TFLOP/s";
    printf("%-28s %-34s %9.3f ms %9.1f %-7s %5.2f of %s\n", name, shape, ms, rate, unit, ratio,
           kind == MEM   ? "copy"
           : kind == F32 ? "sgemm"
                         : "bf16 gemm");
    json_t *r = json_object();
    json_object_set_new(r, "name", json_string(name));
    json_object_set_new(r, "shape", json_string(shape));
    json_object_set_new(r, "ms", json_real(ms));
    json_object_set_new(r, "rate", json_real(rate));
    json_object_set_new(r, "unit", json_string(unit));
    json_object_set_new(r, "floor",
                        json_string(kind == MEM   ? "copy"
                                    : kind == F32 ? "sgemm"
                                                  : "bf16_gemm"));
    json_object_set_new(r, "ratio_to_floor", json_real(ratio));
    json_array_append_new(g_rows, r);
}

/* A row whose rate is also compared with a peer's rate (TFLOP/s) measured in this run. */
static void report_vs(const char *name, const char *shape, int kind, double amount, double ms,
                      double peer_rate) {
    report(name, shape, kind, amount, ms);
    double ratio = amount / (ms * 1e-3) / 1e12 / peer_rate;
    printf("%-28s %-34s %9s    %.2f of cuBLAS on the same product\n", "", "", "", ratio);
    json_object_set_new(json_array_get(g_rows, json_array_size(g_rows) - 1), "ratio_to_same_gemm",
                        json_real(ratio));
}

/* A row for cuDNN's version of a hand-written kernel timed just before it, with the ratio of
 * the two times (hand-written / cuDNN: above 1, cuDNN is faster). */
static void report_cudnn(const char *name, const char *shape, double amount, double ms,
                         double hand_ms) {
    report(name, shape, BF16, amount, ms);
    double ratio = hand_ms / ms;
    printf("%-28s %-34s %9s    %.2f hand-written / cuDNN time\n", "", "", "", ratio);
    json_object_set_new(json_array_get(g_rows, json_array_size(g_rows) - 1), "hand_over_cudnn",
                        json_real(ratio));
}

/* ---- device buffers of random data ---- */

static uint64_t g_seed = 1;

/* n device floats, x uniform in [0, 1): a (2x - 1) when centered, else a x^p. */
static float *uniform_dev(size_t n, float a, float p, int centered) {
    float *h = malloc(sizeof(float) * n);
    uint64_t s = g_seed++;
    for (size_t i = 0; i < n; i += 4) {
        philox4 r = philox_draw(s, 0, i / 4);
        for (size_t j = 0; j < 4 && i + j < n; j++) {
            const float x = philox_u01(r.v[j]);
            h[i + j] = centered ? a * (2.0f * x - 1.0f) : a * powf(x, p);
        }
    }
    float *d = be_alloc(BACKEND_CUDA, sizeof(float) * n);
    be_to_device(BACKEND_CUDA, d, h, sizeof(float) * n);
    free(h);
    return d;
}

/* n device floats uniform in [-a, a). */
static float *rand_dev(size_t n, float a) {
    return uniform_dev(n, a, 1.0f, 1);
}

static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static uint16_t *rand_dev_bf16(size_t n, float a) {
    uint16_t *h = malloc(sizeof(uint16_t) * n);
    uint64_t s = g_seed++;
    for (size_t i = 0; i < n; i += 4) {
        philox4 r = philox_draw(s, 0, i / 4);
        for (size_t j = 0; j < 4 && i + j < n; j++)
            h[i + j] = to_bf16(a * (2.0f * philox_u01(r.v[j]) - 1.0f));
    }
    uint16_t *d = be_alloc(BACKEND_CUDA, sizeof(uint16_t) * n);
    be_to_device(BACKEND_CUDA, d, h, sizeof(uint16_t) * n);
    free(h);
    return d;
}

static int *rand_ids(size_t n, int V) {
    int *h = malloc(sizeof(int) * n);
    for (size_t i = 0; i < n; i++) h[i] = (int)(philox_draw(g_seed, 1, i).v[0] % (uint32_t)V);
    g_seed++;
    int *d = be_alloc(BACKEND_CUDA, sizeof(int) * n);
    be_to_device(BACKEND_CUDA, d, h, sizeof(int) * n);
    free(h);
    return d;
}

/* A response mask: each row valid from a random start to a random end. */
static float *rand_mask(int N, int T) {
    float *h = malloc(sizeof(float) * (size_t)N * T);
    for (int i = 0; i < N; i++) {
        philox4 r = philox_draw(g_seed, 2, (uint64_t)i);
        int a = (int)(r.v[0] % (uint32_t)(T / 4 + 1)),
            b = T - (int)(r.v[1] % (uint32_t)(T / 4 + 1));
        for (int t = 0; t < T; t++) h[(size_t)i * T + t] = t >= a && t < b;
    }
    g_seed++;
    float *d = be_alloc(BACKEND_CUDA, sizeof(float) * (size_t)N * T);
    be_to_device(BACKEND_CUDA, d, h, sizeof(float) * (size_t)N * T);
    free(h);
    return d;
}

#define FREE(...)                                                                                  \
    do {                                                                                           \
        void *p_[] = {__VA_ARGS__};                                                                \
        for (size_t i_ = 0; i_ < sizeof p_ / sizeof p_[0]; i_++) be_free(BACKEND_CUDA, p_[i_]);    \
    } while (0)

/* ---- the floors ---- */

static void bench_floors(int quick) {
    size_t bytes = (size_t)(quick ? 256 : 1024) << 20;
    void *a = rand_dev(bytes / 4, 1.0f), *b = be_alloc(BACKEND_CUDA, bytes);
    double ms;
    TIME_MS(ms, CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0)));
    g_floor[MEM] = 2.0 * bytes / (ms * 1e-3) / 1e9;
    report("floor: copy d2d", quick ? "256 MiB" : "1 GiB", MEM, 2.0 * bytes, ms);
    FREE(a, b);

    int n = quick ? 4096 : 8192;
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) exit(1);
    cublasSetStream(h, cudaStreamPerThread); /* where the timing events are recorded */
    float one = 1.0f, zero = 0.0f;
    float *x = rand_dev((size_t)n * n, 1.0f), *y = rand_dev((size_t)n * n, 1.0f),
          *z = be_alloc(BACKEND_CUDA, sizeof(float) * n * n);
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%dx%d", n, n, n);
    TIME_MS(ms, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, x, n, y, n, &zero, z, n));
    g_floor[F32] = 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12;
    report("floor: sgemm fp32", shape, F32, 2.0 * n * n * (double)n, ms);
    FREE(x, y, z);
    uint16_t *xa = rand_dev_bf16((size_t)n * n, 1.0f), *xb = rand_dev_bf16((size_t)n * n, 1.0f),
             *xc = be_alloc(BACKEND_CUDA, sizeof(uint16_t) * n * n);
    TIME_MS(ms, cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, xa, CUDA_R_16BF, n, xb,
                             CUDA_R_16BF, n, &zero, xc, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
    g_floor[BF16] = 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12;
    report("floor: gemm bf16", shape, BF16, 2.0 * n * n * (double)n, ms);
    FREE(xa, xb, xc);
    cublasDestroy(h);
}

/* ---- memory-bound kernels (fp32) ---- */

static void bench_norm_rope(int quick) {
    int n = quick ? 8192 : 32768, d = 4096, H = 32, D = 128;
    size_t nd = (size_t)n * d;
    float *x = rand_dev(nd, 1.0f), *y = be_alloc(BACKEND_CUDA, 4 * nd), *w = rand_dev(d, 1.0f);
    float *rstd = be_alloc(BACKEND_CUDA, 4 * (size_t)n), *dy = rand_dev(nd, 1.0f);
    float *dw = be_alloc(BACKEND_CUDA, 4 * (size_t)d);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d d=%d", n, d);
    double ms;
    TIME_MS(ms, rmsnorm_forward_cuda(y, rstd, x, w, n, d, 1e-6f));
    report("rmsnorm fwd", shape, MEM, 4.0 * (2 * nd + n), ms);
    TIME_MS(ms, rmsnorm_backward_cuda(y, dw, dy, x, w, rstd, n, d));
    report("rmsnorm bwd", shape, MEM, 4.0 * (4 * nd + n), ms); /* dy, x, dx read+write */
    int maxpos = 4096;
    float *cs = rand_dev((size_t)maxpos * D / 2, 1.0f),
          *sn = rand_dev((size_t)maxpos * D / 2, 1.0f);
    int *pos = rand_ids((size_t)n, maxpos);
    snprintf(shape, sizeof shape, "n=%d h=%d D=%d", n, H, D);
    TIME_MS(ms, rope_forward_cuda(x, pos, cs, sn, n, H, D));
    report("rope fwd (in place)", shape, MEM, 8.0 * n * H * D, ms);
    TIME_MS(ms, rope_backward_cuda(x, pos, cs, sn, n, H, D));
    report("rope bwd (in place)", shape, MEM, 8.0 * n * H * D, ms);
    uint16_t *qb = be_alloc(BACKEND_CUDA, 2 * (size_t)n * H * D);
    TIME_MS(ms, rope_bf16_cuda(qb, x, pos, cs, sn, n, H, D));
    report("rope fwd fp32 -> bf16", shape, MEM, 6.0 * n * H * D, ms);
    TIME_MS(ms, rope_backward_bf16_cuda(qb, y, qb, pos, cs, sn, n, H, D));
    report("rope bwd bf16 -> bf16 + fp32", shape, MEM, 8.0 * n * H * D, ms);
    be_free(BACKEND_CUDA, qb);
    int V = 32000;
    float *table = rand_dev((size_t)V * d, 1.0f);
    int *ids = rand_ids((size_t)n, V);
    snprintf(shape, sizeof shape, "n=%d d=%d V=%d", n, d, V);
    TIME_MS(ms, embedding_forward_cuda(y, ids, table, n, d));
    report("embedding fwd", shape, MEM, 8.0 * nd, ms);
    uint16_t *tb = be_alloc(BACKEND_CUDA, sizeof(uint16_t) * (size_t)V * d);
    cast_bf16_cuda(tb, table, (long)V * d);
    TIME_MS(ms, embedding_forward_bf16_cuda(y, ids, tb, n, d));
    report("embedding fwd (bf16 table)", shape, MEM, 6.0 * nd, ms); /* 2 read, 4 written */
    be_free(BACKEND_CUDA, tb);
    TIME_MS(ms, embedding_backward_cuda(table, dy, ids, n, d));
    report("embedding bwd", shape, MEM, 12.0 * nd, ms); /* dy read, rows read+written */
    FREE(x, y, w, rstd, dy, dw, cs, sn, pos, table, ids);
}

static void bench_flat(int quick) {
    long n = quick ? (32L << 20) : (128L << 20);
    float *a = rand_dev((size_t)n, 1.0f), *b = rand_dev((size_t)n, 1.0f),
          *c = rand_dev((size_t)n, 1.0f), *d = rand_dev((size_t)n, 1.0f);
    float *e = rand_dev((size_t)n, 1.0f);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%ldM", n >> 20);
    double ms;
    TIME_MS(ms, swiglu_forward_cuda(c, a, b, n));
    report("swiglu fwd", shape, MEM, 12.0 * n, ms);
    TIME_MS(ms, swiglu_backward_cuda(d, e, c, a, b, n));
    report("swiglu bwd", shape, MEM, 28.0 * n, ms); /* dh g u read, dg du read+write */
    TIME_MS(ms, add_cuda(c, a, n));
    report("add (y += x)", shape, MEM, 12.0 * n, ms);
    TIME_MS(ms, scale_cuda(c, n, 1.0f));
    report("scale", shape, MEM, 8.0 * n, ms);
    uint16_t *hb = (uint16_t *)d; /* n bf16 in the first half of d, rewritten below */
    TIME_MS(ms, cast_bf16_cuda(hb, a, n));
    report("cast fp32 -> bf16", shape, MEM, 6.0 * n, ms);
    TIME_MS(ms, add_from_bf16_cuda(c, hb, n));
    report("add bf16 (y += x)", shape, MEM, 10.0 * n, ms);
    TIME_MS(ms, widen_bf16_cuda(c, hb, n));
    report("widen bf16 -> fp32", shape, MEM, 6.0 * n, ms);
    scale_cuda(d, n, 0.0f); /* d is AdamW's first moment below */
    volatile double sink = 0;
    TIME_MS(ms, sink += sumsq_cuda(a, n));
    (void)sink;
    report("sumsq (grad norm)", shape, MEM, 4.0 * n, ms);
    AdamWParams hp = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};
    for (long i = 0; i < 1; i++) scale_cuda(e, n, 0.0f); /* v >= 0 */
    TIME_MS(ms, adamw_update_cuda(a, b, d, e, n, hp, 10));
    report("adamw", shape, MEM, 28.0 * n, ms); /* p g m v read, p m v written */
    FREE(a, b, c, d, e);
}

/* A decode step's attention from the q|k|v product's rows over the bf16 caches kh, vh: by
 * decode_prep and then the decode (two launches, as before), and in one kernel; kv elements of
 * the caches read. */
static void bench_decode_prep(const char *shape, uint16_t *kh, uint16_t *vh, const int *pos, int B,
                              int Tc, int H, int Hkv, int D, double kv) {
    const int S = (H + 2 * Hkv) * D;
    float *qkv = rand_dev((size_t)B * S, 1.0f), *cs = rand_dev((size_t)Tc * D / 2, 1.0f),
          *sn = rand_dev((size_t)Tc * D / 2, 1.0f),
          *qo = be_alloc(BACKEND_CUDA, 4 * (size_t)B * H * D);
    uint16_t *ob = be_alloc(BACKEND_CUDA, 2 * (size_t)B * H * D);
    const float *q = qkv, *k = qkv + H * D, *v = k + Hkv * D;
    double ms;
    TIME_MS(ms, {
        decode_prep_bf16cache_cuda(qo, q, k, v, S, S, kh, vh, pos, cs, sn, B, Tc, H, Hkv, D);
        attention_decode_bf16_cuda(ob, qo, kh, vh, pos, B, Tc, H, Hkv, D);
    });
    report("decode prep + attn bf16", shape, MEM, 2.0 * kv, ms);
    TIME_MS(ms, attention_decode_prep_bf16_cuda(ob, qo, q, k, v, S, S, kh, vh, pos, cs, sn, B, Tc,
                                                H, Hkv, D));
    report("attn decode with prep bf16", shape, MEM, 2.0 * kv, ms);
    FREE(qkv, cs, sn, qo, ob);
}

/* Decode attention of B rows over a cache of Tc positions: every row at Tc - 1 or, with
 * spread, row b at p0 + b % (Tc - p0) (a generation wave halfway: the 0.5B step's 256 rows
 * after an 11-token prompt, 523 positions); bytes are the keys and values actually read. */
static void bench_decode_shape(int B, int Tc, int H, int Hkv, int D, int spread, int p0) {
    size_t cache = (size_t)B * Tc * Hkv * D;
    float *kc = rand_dev(cache, 1.0f), *vc = rand_dev(cache, 1.0f);
    float *q = rand_dev((size_t)B * H * D, 1.0f),
          *o = be_alloc(BACKEND_CUDA, 4 * (size_t)B * H * D);
    int *hpos = malloc(sizeof(int) * B);
    double keys = 0;
    for (int b = 0; b < B; b++) {
        hpos[b] = spread ? p0 + b % (Tc - p0) : Tc - 1;
        keys += hpos[b] + 1;
    }
    int *pos = be_alloc(BACKEND_CUDA, sizeof(int) * B);
    be_to_device(BACKEND_CUDA, pos, hpos, sizeof(int) * B);
    free(hpos);
    char shape[64];
    snprintf(shape, sizeof shape, "B=%d Tc=%d%s H=%d/%d D=%d", B, Tc, spread ? " spread" : "", H,
             Hkv, D);
    const double kv = keys * Hkv * D * 2; /* elements of K and V read */
    double ms;
    TIME_MS(ms, attention_decode_cuda(o, q, kc, vc, pos, B, Tc, H, Hkv, D));
    report("attention decode fp32", shape, MEM, 4.0 * kv, ms);
    uint16_t *kh = rand_dev_bf16(cache, 1.0f), *vh = rand_dev_bf16(cache, 1.0f);
    TIME_MS(ms, attention_decode_bf16cache_cuda(o, q, kh, vh, pos, B, Tc, H, Hkv, D));
    report("attention decode bf16 cache", shape, MEM, 2.0 * kv, ms);
    /* the block-tile decode the warp one replaced, on the same buffers */
    setenv("DENSERL_ATTN_DECODE", "tiles", 1);
    TIME_MS(ms, attention_decode_cuda(o, q, kc, vc, pos, B, Tc, H, Hkv, D));
    report("attention decode fp32 tiles", shape, MEM, 4.0 * kv, ms);
    TIME_MS(ms, attention_decode_bf16cache_cuda(o, q, kh, vh, pos, B, Tc, H, Hkv, D));
    report("attn decode bf16 cache tiles", shape, MEM, 2.0 * kv, ms);
    unsetenv("DENSERL_ATTN_DECODE");
    bench_decode_prep(shape, kh, vh, pos, B, Tc, H, Hkv, D, kv);
    FREE(kc, vc, kh, vh, q, o, pos);
}

static void bench_decode_sample(int quick) {
    bench_decode_shape(64, quick ? 1024 : 2048, 14, 2, 64, 0, 0);
    bench_decode_shape(256, 523, 14, 2, 64, 1, 11);
    char shape[64];
    double ms;
    int Bs = 256, V = 151936;
    float *u = uniform_dev((size_t)Bs, 1.0f, 1.0f, 0);
    float *lp = be_alloc(BACKEND_CUDA, 4 * (size_t)Bs);
    int *tok = be_alloc(BACKEND_CUDA, sizeof(int) * Bs);
    uint64_t *h_keys = malloc(sizeof(uint64_t) * Bs),
             *keys = be_alloc(BACKEND_CUDA, sizeof(uint64_t) * Bs);
    for (int b = 0; b < Bs; b++) h_keys[b] = 4096ull * (uint64_t)b + 7;
    be_to_device(BACKEND_CUDA, keys, h_keys, sizeof(uint64_t) * Bs);
    free(h_keys);
    /* flat: logits uniform in [-8, 8], the nucleus half the vocabulary; peaked: 24 x^8 for x
     * uniform in [0, 1), about 5% of the tokens within 8 nats of the top, as an LM's are */
    for (int peaked = 0; peaked < 2; peaked++) {
        float *logits =
            peaked ? uniform_dev((size_t)Bs * V, 24.0f, 8.0f, 0) : rand_dev((size_t)Bs * V, 8.0f);
        snprintf(shape, sizeof shape, "B=%d V=%d %s", Bs, V, peaked ? "peaked" : "flat");
        if (!peaked) {
            TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 0.0f, 0, 1.0f));
            report("sample greedy", shape, MEM, 4.0 * Bs * V, ms);
        }
        /* plain sampling (the RL step's default): the Gumbel race (generation's path), a
         * sorted band, or a sorted prefix */
        TIME_MS(ms, sample_gumbel_cuda(tok, lp, logits, keys, 3, Bs, V, 1.0f));
        report("sample T=1 gumbel", shape, MEM, 4.0 * Bs * V, ms);
        TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 1.0f, 0, 1.0f));
        report("sample T=1 (band)", shape, MEM, 4.0 * Bs * V, ms);
        setenv("DENSERL_SAMPLE_SORT", "prefix", 1);
        TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 1.0f, 0, 1.0f));
        report("sample T=1 prefix", shape, MEM, 4.0 * Bs * V, ms);
        unsetenv("DENSERL_SAMPLE_SORT");
        TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 1.0f, 0, 0.9f));
        report("sample T=1 top-p 0.9", shape, MEM, 4.0 * Bs * V, ms);
        setenv("DENSERL_SAMPLE_SORT", "full", 1); /* the earlier path: whole rows sorted */
        TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 1.0f, 0, 0.9f));
        report("sample T=1 top-p 0.9 full sort", shape, MEM, 4.0 * Bs * V, ms);
        unsetenv("DENSERL_SAMPLE_SORT");
        TIME_MS(ms, sample_logp_cuda(tok, lp, logits, u, Bs, V, 1.0f, 50, 1.0f));
        report("sample T=1 top-k 50", shape, MEM, 4.0 * Bs * V, ms);
        be_free(BACKEND_CUDA, logits);
    }
    FREE(u, lp, tok, keys);
}

static void bench_memory_kernels(int quick) {
    bench_norm_rope(quick);
    bench_flat(quick);
    bench_decode_sample(quick);
}

/* ---- RL math over (N, T) ---- */

static void bench_rl_kernels(int quick) {
    int N = quick ? 1024 : 4096, T = 4096, K = 4;
    size_t nt = (size_t)N * T;
    float *a = rand_dev(nt, 1.0f), *b = rand_dev(nt, 1.0f), *c = rand_dev(nt, 1.0f);
    float *o = be_alloc(BACKEND_CUDA, 4 * nt), *o2 = be_alloc(BACKEND_CUDA, 4 * nt);
    float *m = rand_mask(N, T), *out = rand_dev((size_t)N, 1.0f),
          *score = rand_dev((size_t)N, 1.0f);
    int *tg = rand_ids(nt, 64);
    char shape[64];
    snprintf(shape, sizeof shape, "N=%d T=%d", N, T);
    double ms, sink = 0;
    TIME_MS(ms, prime_token_rewards_cuda(o, a, b, m, tg, N, T, 0.05f, REWARD_TOKEN, 13,
                                         REWARD_XFORM_NONE, 0.0f));
    report("token rewards (token)", shape, MEM, 16.0 * nt, ms);
    TIME_MS(ms, prime_token_rewards_cuda(o, a, b, m, tg, N, T, 0.05f, REWARD_STEP, 13,
                                         REWARD_XFORM_DELTA, 0.0f));
    report("token rewards (step,delta)", shape, MEM, 20.0 * nt, ms);
    TIME_MS(ms, sink += prm_loss_cuda(o, score, a, b, m, out, N, T, 0.05f, N));
    report("prm loss + grad", shape, MEM, 16.0 * nt, ms);
    TIME_MS(ms, rloo_process_cuda(o, a, m, N, T, K, 0));
    report("rloo process", shape, MEM, 12.0 * nt, ms);
    TIME_MS(ms, grpo_process_cuda(o, a, m, N, T, K, 1e-6f));
    report("grpo process", shape, MEM, 12.0 * nt, ms);
    {
        /* the rows above hold a group (K T = 16384) in registers in one pass; groups past
         * that take the strided kernels, timed here on the same number of elements */
        const int N2 = N / 2, T2 = 2 * T;
        float *m2 = rand_mask(N2, T2);
        char shape2[64];
        snprintf(shape2, sizeof shape2, "N=%d T=%d K=%d", N2, T2, K);
        TIME_MS(ms, rloo_process_cuda(o, a, m2, N2, T2, K, 0));
        report("rloo process (strided)", shape2, MEM, 12.0 * nt, ms);
        TIME_MS(ms, grpo_process_cuda(o, a, m2, N2, T2, K, 1e-6f));
        report("grpo process (strided)", shape2, MEM, 12.0 * nt, ms);
        be_free(BACKEND_CUDA, m2);
    }
    TIME_MS(ms, combine_rewards_cuda(o2, o, out, m, N, T, 1.0f, 1.0f));
    report("combine rewards", shape, MEM, 12.0 * nt, ms);
    TIME_MS(ms, discounted_returns_cuda(o, a, m, N, T, 1.0f));
    report("discounted returns", shape, MEM, 12.0 * nt, ms);
    TIME_MS(ms, gae_cuda(o, o2, a, b, m, N, T, 1.0f, 0.95f));
    report("gae", shape, MEM, 20.0 * nt, ms);
    double s1 = 0, s2 = 0, cnt = 0;
    TIME_MS(ms, masked_moments_cuda(&s1, &s2, &cnt, a, m, N, T));
    report("masked moments", shape, MEM, 8.0 * nt, ms);
    TIME_MS(ms, whiten_cuda(o, a, m, N, T, s1, s2, cnt));
    report("whiten", shape, MEM, 12.0 * nt, ms);
    PpoParams pp = {0.2f, 0.2f, 0.0f, PPO_AGG_TOKEN_MEAN, 0.0f, KL_K3, 0.0f};
    PpoStats st;
    TIME_MS(ms, sink += ppo_loss_cuda(o, NULL, &st, a, b, NULL, NULL, c, m, N, T, pp, nt, N));
    report("ppo loss + grad", shape, MEM, 20.0 * nt, ms);
    double cf;
    TIME_MS(ms, sink += value_loss_cuda(o, &cf, a, b, c, m, N, T, 0.2f, nt));
    report("value loss + grad", shape, MEM, 20.0 * nt, ms);
    (void)sink;
    FREE(a, b, c, o, o2, m, out, score, tg);
}
/* ---- matrix-bound kernels ---- */

/* Causal attention FLOPs: QK^T and PV over the lower triangle; the backward does 2.5x. */
static double attn_flops(int B, int T, int H, int D) {
    return 2.0 * B * H * (double)T * T * D;
}

static void bench_attention(int quick) {
    /* the shape (head dim 128, T = 2048) with and without GQA, then the 0.5B RL
     * step's heads (14 / 2 of 64) at about its rows' length */
    const int shapes[3][5] = {{4, 2048, 16, 16, 128}, {4, 2048, 16, 4, 128}, {8, 576, 14, 2, 64}};
    for (int c = 0; c < 3; c++) {
        const int B = quick ? 1 : shapes[c][0], T = shapes[c][1], H = shapes[c][2];
        const int Hkv = shapes[c][3], D = shapes[c][4];
        size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * Hkv * D;
        char shape[80];
        snprintf(shape, sizeof shape, "B=%d T=%d H=%d/%d D=%d causal", B, T, H, Hkv, D);
        double f = attn_flops(B, T, H, D), ms;
        uint16_t *q = rand_dev_bf16(nq, 1.0f), *k = rand_dev_bf16(nk, 1.0f),
                 *v = rand_dev_bf16(nk, 1.0f), *dout = rand_dev_bf16(nq, 1.0f);
        uint16_t *o = be_alloc(BACKEND_CUDA, 2 * nq), *dq = be_alloc(BACKEND_CUDA, 2 * nq);
        uint16_t *dk = be_alloc(BACKEND_CUDA, 2 * nk), *dv = be_alloc(BACKEND_CUDA, 2 * nk);
        float *lse = be_alloc(BACKEND_CUDA, 4 * (size_t)B * H * T);
        void *ws = be_alloc(BACKEND_CUDA, attention_backward_bf16_workspace(B, T, H, Hkv, D));
        TIME_MS(ms, attention_forward_bf16_cuda(o, lse, q, k, v, B, T, H, Hkv, D));
        report("attention bf16 fwd", shape, BF16, f, ms);
        double fwd = ms;
        TIME_MS(ms, attention_backward_bf16_cuda(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, Hkv, D,
                                                 ws));
        report("attention bf16 bwd", shape, BF16, 2.5 * f, ms);
        report("attention bf16 fwd+bwd", shape, BF16, 3.5 * f, fwd + ms);
        /* each tile shape (the default picks q128k64 where the q64k128 grid has fewer CTAs
         * than SMs): 64 query rows over 128 keys per CTA, the first (128 query rows over 64
         * keys), and the q64k128 one-buffer form that GPUs with less shared memory run */
        const char *other[3] = {"q64k128", "q128k64", "q64k128s"};
        for (int t = 0; t < 3; t++) {
            double tm;
            char row[64];
            setenv("DENSERL_ATTN_BWD_TILES", other[t], 1);
            TIME_MS(tm, attention_backward_bf16_cuda(dq, dk, dv, dout, q, k, v, o, lse, B, T, H,
                                                     Hkv, D, ws));
            unsetenv("DENSERL_ATTN_BWD_TILES");
            snprintf(row, sizeof row, "attention bf16 bwd %s", other[t]);
            report(row, shape, BF16, 2.5 * f, tm);
        }
        if (attention_cudnn_available()) { /* cuDNN's fused attention on the same buffers */
            double bwd = ms, cfwd;
            TIME_MS(cfwd, attention_forward_cudnn(o, lse, q, k, v, B, T, H, Hkv, D));
            report_cudnn("attention cuDNN fwd", shape, f, cfwd, fwd);
            TIME_MS(ms,
                    attention_backward_cudnn(dq, dk, dv, dout, q, k, v, o, lse, B, T, H, Hkv, D));
            report_cudnn("attention cuDNN bwd", shape, 2.5 * f, ms, bwd);
            report_cudnn("attention cuDNN fwd+bwd", shape, 3.5 * f, cfwd + ms, fwd + bwd);
        }
        FREE(q, k, v, dout, o, dq, dk, dv, lse, ws);
        if (c != 1) continue; /* fp32 kernels: the engine's path, on the GQA shape only */
        float *qf = rand_dev(nq, 1.0f), *kf = rand_dev(nk, 1.0f), *vf = rand_dev(nk, 1.0f);
        float *of = be_alloc(BACKEND_CUDA, 4 * nq), *dof = rand_dev(nq, 1.0f);
        float *dqf = be_alloc(BACKEND_CUDA, 4 * nq), *dkf = be_alloc(BACKEND_CUDA, 4 * nk),
              *dvf = be_alloc(BACKEND_CUDA, 4 * nk),
              *lsef = be_alloc(BACKEND_CUDA, 4 * (size_t)B * H * T);
        TIME_MS(ms, attention_forward_cuda(of, lsef, qf, kf, vf, B, T, H, Hkv, D));
        report("attention fp32 fwd", shape, F32, f, ms);
        TIME_MS(ms,
                attention_backward_cuda(dqf, dkf, dvf, dof, qf, kf, vf, of, lsef, B, T, H, Hkv, D));
        report("attention fp32 bwd", shape, F32, 2.5 * f, ms);
        FREE(qf, kf, vf, of, dof, dqf, dkf, dvf, lsef);
    }
}

/* The fused log-prob over a Qwen2.5 vocabulary, with the cuBLAS product of the same shape
 * (the logits it never keeps) timed beside it. */
static void bench_logprob(int quick) {
    int n = quick ? 2048 : 8192, V = 151936, chunk = 1024;
    int dims[2] = {896, 3584};
    for (int c = 0; c < 2; c++) {
        int d = dims[c];
        char shape[80];
        snprintf(shape, sizeof shape, "n=%d d=%d V=%d chunk=%d", n, d, V, chunk);
        double f = 2.0 * n * (double)d * V, ms;
        uint16_t *h = rand_dev_bf16((size_t)n * d, 1.0f), *w = rand_dev_bf16((size_t)V * d, 0.05f);
        int *tg = rand_ids((size_t)n, V);
        float *lp = be_alloc(BACKEND_CUDA, 4 * (size_t)n),
              *ent = be_alloc(BACKEND_CUDA, 4 * (size_t)n);
        float *lse = be_alloc(BACKEND_CUDA, 4 * (size_t)n), *dlp = rand_dev((size_t)n, 1.0f);
        float *scratch = be_alloc(BACKEND_CUDA, 4 * (size_t)chunk * V);
        float *dh = be_alloc(BACKEND_CUDA, 4 * (size_t)n * d),
              *dw = be_alloc(BACKEND_CUDA, 4 * (size_t)V * d);
        /* the same product through cuBLAS into a full (n, V) bf16 logits matrix */
        uint16_t *full = be_alloc(BACKEND_CUDA, 2 * (size_t)n * V);
        float one = 1.0f, zero = 0.0f;
        TIME_MS(ms, cublasGemmEx(dr_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, V, n, d, &one, w,
                                 CUDA_R_16BF, d, h, CUDA_R_16BF, d, &zero, full, CUDA_R_16BF, V,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        report("gemm bf16 same product", shape, BF16, f, ms);
        double gemm_rate = f / (ms * 1e-3) / 1e12;
        be_free(BACKEND_CUDA, full);
        /* the three chunk layouts of DENSERL_LOGPROB_OVERLAP: serial, two half chunks, two
         * full chunks */
        static const char *modes[3] = {"serial", "overlap halves", "overlap 2 chunks"};
        for (int mode = 0; mode < 3; mode++) {
            char env[2] = {(char)('0' + mode), 0}, name[80];
            setenv("DENSERL_LOGPROB_OVERLAP", env, 1);
            TIME_MS(ms, logprob_forward_bf16_cuda(lp, ent, lse, h, w, tg, n, d, V, chunk, scratch));
            snprintf(name, sizeof name, "logprob bf16 fwd, %s", modes[mode]);
            report_vs(name, shape, BF16, f, ms, gemm_rate);
            TIME_MS(ms, logprob_backward_bf16_cuda(dh, dw, dlp, NULL, h, w, tg, lse, n, d, V, chunk,
                                                   scratch));
            snprintf(name, sizeof name, "logprob bf16 bwd, %s", modes[mode]);
            report_vs(name, shape, BF16, 3 * f, ms, gemm_rate);
        }
        unsetenv("DENSERL_LOGPROB_OVERLAP");
        /* fp16 logits (the model's default): fp16 operands for the logits, bf16 for dh, dw */
        float *tmp = rand_dev((size_t)V * d, 0.05f);
        uint16_t *w16 = be_alloc(BACKEND_CUDA, 2 * (size_t)V * d),
                 *h16 = be_alloc(BACKEND_CUDA, 2 * (size_t)n * d);
        cast_f16_cuda(w16, tmp, (long)V * d);
        be_free(BACKEND_CUDA, tmp);
        tmp = rand_dev((size_t)n * d, 1.0f);
        cast_f16_cuda(h16, tmp, (long)n * d);
        be_free(BACKEND_CUDA, tmp);
        TIME_MS(ms, logprob_forward_f16_cuda(lp, ent, lse, h16, w16, tg, n, d, V, chunk, scratch));
        report_vs("logprob f16 logits fwd", shape, BF16, f, ms, gemm_rate);
        TIME_MS(ms, logprob_backward_f16_cuda(dh, dw, dlp, NULL, h16, w16, h, w, tg, lse, n, d, V,
                                              chunk, scratch));
        report_vs("logprob f16 logits bwd", shape, BF16, 3 * f, ms, gemm_rate);
        FREE(w16, h16);
        if (c == 0) {
            float *hf = rand_dev((size_t)n * d, 1.0f), *wf = rand_dev((size_t)V * d, 0.05f);
            TIME_MS(ms, logprob_forward_cuda(lp, ent, lse, hf, wf, tg, n, d, V, chunk, scratch));
            report("logprob fp32 fwd (+entropy)", shape, F32, f, ms);
            TIME_MS(ms, logprob_backward_cuda(dh, dw, dlp, NULL, hf, wf, tg, lse, n, d, V, chunk,
                                              scratch));
            report("logprob fp32 bwd", shape, F32, 3 * f, ms);
            FREE(hf, wf);
        }
        FREE(h, w, tg, lp, ent, lse, dlp, scratch, dh, dw);
    }
}

/* The 0.5B shape's biased q/k/v product and its residual down projection in bf16, through
 * cuBLASLt's epilogues and without them (bias fill + product, product + add). */
static void bench_linear_mixed(int quick) {
    const int n = quick ? 2048 : 8192, shapes[2][3] = {{896, 1152, 1}, {4864, 896, 0}};
    for (int k = 0; k < 2; k++) {
        const int in = shapes[k][0], out = shapes[k][1], biased = shapes[k][2];
        uint16_t *xs = rand_dev_bf16((size_t)n * in, 1.0f),
                 *w = rand_dev_bf16((size_t)out * in, 0.02f);
        float *y = be_alloc(BACKEND_CUDA, 4 * (size_t)n * out), *b = rand_dev((size_t)out, 1.0f);
        float *r = rand_dev((size_t)n * out, 1.0f);
        char shape[64], name[80];
        snprintf(shape, sizeof shape, "n=%d in=%d out=%d", n, in, out);
        const double f = 2.0 * n * (double)in * out;
        for (int lt = 1; lt >= 0; lt--) {
            double ms;
            if (!lt) setenv("DENSERL_CUBLASLT", "0", 1);
            if (biased)
                TIME_MS(ms, linear_forward_mixed_cuda(y, NULL, w, b, n, in, out, xs));
            else
                TIME_MS(ms, linear_forward_res_mixed_cuda(y, NULL, w, NULL, r, n, in, out, xs));
            snprintf(name, sizeof name, "linear bf16 %s, %s", biased ? "+bias" : "+residual",
                     lt ? "cuBLASLt epilogue" : "separate pass");
            report(name, shape, BF16, f, ms);
            unsetenv("DENSERL_CUBLASLT");
        }
        FREE(xs, w, y, b, r);
    }
}

static void bench_linear(int quick) {
    int n = quick ? 2048 : 8192, in = 4096, out = 4096;
    float *x = rand_dev((size_t)n * in, 1.0f), *w = rand_dev((size_t)out * in, 0.02f);
    float *y = be_alloc(BACKEND_CUDA, 4 * (size_t)n * out), *b = rand_dev((size_t)out, 1.0f);
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d in=%d out=%d", n, in, out);
    double ms, f = 2.0 * n * (double)in * out;
    TIME_MS(ms, linear_forward_cuda(y, x, w, b, n, in, out));
    report("linear fp32 fwd (+bias)", shape, F32, f, ms);
    FREE(x, w, y, b);
    bench_linear_mixed(quick);
}

static void bench_matrix_kernels(int quick) {
    bench_linear(quick);
    bench_attention(quick);
    bench_logprob(quick);
}

int main(int argc, char **argv) {
    const char *json_path = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_cuda [--json PATH] [--quick]\n");
            return 2;
        }
    }
    if (!backend_cuda_available()) {
        printf("bench_cuda: no GPU answered; nothing timed\n");
        return 77;
    }
    char dev[160];
    backend_describe(BACKEND_CUDA, dev, sizeof dev);
    printf("device: %s\n", dev);
    if (quick) g_reps = 5;
    CK(cudaEventCreate(&g_ev0));
    CK(cudaEventCreate(&g_ev1));
    g_rows = json_array();
    bench_floors(quick);
    bench_memory_kernels(quick);
    bench_rl_kernels(quick);
    bench_matrix_kernels(quick);
    if (json_path) {
        json_t *root = json_object();
        json_object_set_new(root, "device", json_string(dev));
        json_object_set_new(root, "copy_GBps", json_real(g_floor[MEM]));
        json_object_set_new(root, "sgemm_TFLOPs", json_real(g_floor[F32]));
        json_object_set_new(root, "bf16_gemm_TFLOPs", json_real(g_floor[BF16]));
        json_object_set_new(root, "rows", g_rows);
        if (json_dump_file(root, json_path, JSON_INDENT(1))) {
            fprintf(stderr, "bench_cuda: cannot write %s\n", json_path);
            return 1;
        }
        json_decref(root);
    }
    return 0;
}
