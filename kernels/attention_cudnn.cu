/* Causal grouped-query attention through cuDNN's fused flash attention, written against the
 * cuDNN 9 graph backend API (cudnn_graph.h): per shape and direction it describes the attention
 * as an operation graph of matmul, pointwise, reduction and reshape nodes, which cuDNN's
 * attention engines recognise and run as one fused kernel (or a few), asks the heuristics for
 * an engine, keeps the execution plan in a small cache and runs it on the default stream.
 *
 * Layouts. Our tensors are (B, T, heads, D) row-major; cuDNN's attention graphs are written in
 * (batch, heads, seq, D) order, so every tensor is described by dims in that order and strides
 * that walk our layout: Q, O, dO, dQ dims (B, H, T, D) strides (T H D, D, H D, 1); K and V
 * (B, Hkv, T, D) strides (T Hkv D, D, Hkv D, 1); K^T (and V^T in the backward) the same
 * memory as (B, Hkv, D, T) with the last two strides swapped. Stats is (B, H, T, 1) packed,
 * i.e. our lse (B, H, T): cuDNN's stats are max + log(sum exp(s - max)) of the scaled scores s,
 * the natural-log log-sum-exp, so lse needs no conversion. A batch dimension of Hkv against H
 * in a matmul broadcasts each kv head over its H / Hkv query heads (GQA). Every tensor is bf16
 * in memory, every intermediate fp32 unless noted; s, p are (B, H, T, T) virtual tensors.
 *
 * Forward graph (outputs O and Stats):
 *   s   = matmul(Q, K^T)                        fp32
 *   s1  = s * scale                              scale: by-value fp32 scalar 1/sqrt(D)
 *   r   = gen_index(s1, axis 2), c = gen_index(s1, axis 3)    int32
 *   keep = r >= c                                boolean
 *   s2  = keep ? s1 : neg_inf                    binary select; neg_inf: by-value scalar
 *   m   = reduce_max(s2) over the last axis      (B, H, T, 1)
 *   e   = exp(s2 - m)
 *   z   = reduce_add(e)                          (B, H, T, 1)
 *   Stats = m + log(z)                           non-virtual fp32 (B, H, T, 1) = lse
 *   p   = e / z                                  bf16 virtual
 *   O   = matmul(p, V)                           bf16
 *
 * Backward graph (outputs dQ, dK, dV), the recomputing flash-attention backward:
 *   t      = reduce_add(dO * O)                  (B, H, T, 1)
 *   Sum    = t * one                             non-virtual fp32 (B, H, T, 1), workspace
 *   s      = matmul(Q, K^T) * scale - Stats
 *   [s     = padding_mask(s)]                    older cuDNN only, see below
 *   s      = causal mask as in the forward (gen_index, >=, select with neg_inf)
 *   p      = exp(s)                              fp32 virtual
 *   dV     = matmul(reshape(p)^T bf16, dO)       GQA: (B, H, T, D) bf16 virtual, reduce_add
 *                                                over each group of query heads into dV
 *   dS     = (matmul(dO, V^T) - Sum) * p * scale
 *   dK     = matmul(reshape(dS)^T bf16, Q)       GQA: reduced over the group as dV
 *   dQacc  = matmul(dS, reshape(K^T) = K)        non-virtual fp32 (B, H, T, D), workspace
 *   dQ     = identity(dQacc)                     bf16
 * Sum and dQacc are graph tensors that live in our workspace (cuDNN before 9.6 wants dQacc
 * zeroed first). With cuDNN <= 9.15.0 and T not a multiple of 128 the backward also carries a
 * padding mask with per-sequence lengths all equal to T (gen_index, < seq_len_q / seq_len_kv,
 * and, select), and the matmuls take those lengths as M/N/K overrides: the workaround
 * cuDNN's own frontend applies for a known problem of those versions; cuDNN 9.0-9.9 want the
 * mask twice. The masked value is -inf from cuDNN 9.10 on, the lowest float before.
 *
 * Engine choice: heuristics mode A, then the fallback list; the first configuration whose
 * plan finalizes is kept. The forward is deterministic unless the engine's numerical notes say
 * otherwise; the backward is never claimed to be (dQacc is summed in no fixed order). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/attention_cudnn.h"
#include "../runtime/cuda_util.cuh"

#ifndef DENSERL_CUDNN

static void no_cudnn(const char *fn) {
    fprintf(stderr,
            "fatal: %s: denserl was built without cuDNN (CMake found no cudnn_graph.h and "
            "libcudnn); use the hand-written attention (attention_bf16.h)\n",
            fn);
    abort();
}

extern "C" int attention_cudnn_available(void) {
    static int said = 0;
    if (!said) fprintf(stderr, "cuDNN attention: built without cuDNN\n");
    said = 1;
    return 0;
}
extern "C" long attention_cudnn_version(void) {
    return 0;
}
extern "C" void attention_forward_cudnn(uint16_t *, float *, const uint16_t *, const uint16_t *,
                                        const uint16_t *, int, int, int, int, int) {
    no_cudnn(__func__);
}
extern "C" void attention_backward_cudnn(uint16_t *, uint16_t *, uint16_t *, const uint16_t *,
                                         const uint16_t *, const uint16_t *, const uint16_t *,
                                         const uint16_t *, const float *, int, int, int, int, int) {
    no_cudnn(__func__);
}
extern "C" size_t attention_cudnn_workspace(int, int, int, int, int, int) {
    no_cudnn(__func__);
    return 0;
}
extern "C" int attention_cudnn_deterministic(int, int, int, int, int, int) {
    no_cudnn(__func__);
    return 0;
}
extern "C" void attention_cudnn_describe(int, int, int, int, int, int, char *buf, size_t n) {
    if (n) snprintf(buf, n, "built without cuDNN");
}

#else /* DENSERL_CUDNN */

#include <cudnn_graph.h>

#if CUDNN_MAJOR < 9
#error "kernels/attention_cudnn.cu needs cuDNN 9 or newer (the graph backend API of cudnn_graph.h)"
#endif

/* ---- error handling ----
 * Graph building reports a failed call through CUDNN_TRY (the message kept in g_err, the
 * builder returns -1) so that attention_cudnn_available() can answer 0 with the reason; the
 * public calls abort on it. Anything at run time goes through CUDNN_CHECK and aborts. */

static char g_err[1536];

static int cudnn_fail(cudnnStatus_t st, const char *call, const char *file, int line) {
    char last[1024];
    last[0] = 0;
    cudnnGetLastErrorString(last, sizeof last);
    snprintf(g_err, sizeof g_err, "%s:%d: %s: %s (%d): %s", file, line, call,
             cudnnGetErrorString(st), (int)st, last[0] ? last : "(cuDNN left no message)");
    return -1;
}

#define CUDNN_TRY(call)                                                                            \
    do {                                                                                           \
        cudnnStatus_t st_ = (call);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) return cudnn_fail(st_, #call, __FILE__, __LINE__);        \
    } while (0)

#define CUDNN_CHECK(call)                                                                          \
    do {                                                                                           \
        cudnnStatus_t st_ = (call);                                                                \
        if (st_ != CUDNN_STATUS_SUCCESS) {                                                         \
            cudnn_fail(st_, #call, __FILE__, __LINE__);                                            \
            fprintf(stderr, "fatal: %s\n", g_err);                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A builder step that failed: its message is in g_err. */
#define STEP(call)                                                                                 \
    do {                                                                                           \
        if ((call) != 0) return -1;                                                                \
    } while (0)

#define SET(d, name, type, n, ptr)                                                                 \
    CUDNN_TRY(cudnnBackendSetAttribute((d), (name), (type), (n), (ptr)))

/* ---- the handle ---- */

static cudnnHandle_t g_handle;

static int handle_get(cudnnHandle_t *h) {
    if (!g_handle) {
        cudnnHandle_t nh = NULL;
        CUDNN_TRY(cudnnCreate(&nh));
        g_handle = nh;
        /* the default stream, where every denserl kernel runs (runtime/cuda_util.cuh) */
        CUDNN_TRY(cudnnSetStream(g_handle, DR_STREAM));
    }
    *h = g_handle;
    return 0;
}

static long cudnn_version(void) {
    return (long)cudnnGetVersion();
}

/* ---- one cached graph: its descriptors, plan and the tensors of its variant pack ---- */

enum {
    UID_Q = 1,
    UID_K,
    UID_V,
    UID_O,
    UID_STATS,
    UID_DO,
    UID_DQ,
    UID_DK,
    UID_DV,
    UID_SCALE,
    UID_NEG_INF,
    UID_ONE,
    UID_SUM,
    UID_DQ_ACC,
    UID_SEQ_Q,
    UID_SEQ_KV,
    UID_VIRTUAL = 1000 /* intermediates count up from here */
};

#define MAX_OPS 64

typedef struct {
    int B, T, H, Hkv, D, bwd;
    cudnnBackendDescriptor_t *desc; /* every descriptor made for this graph, in order */
    int ndesc, cap;
    cudnnBackendDescriptor_t ops[MAX_OPS];
    int nops;
    int64_t next_uid;
    cudnnBackendDescriptor_t plan; /* one of desc[] */
    long long engine;              /* global index of the chosen engine */
    int heur_mode;                 /* CUDNN_HEUR_MODE_A or _FALLBACK */
    int deterministic;             /* the engine has no NONDETERMINISTIC note */
    int padding;                   /* the <= 9.15.0 padding-mask workaround is in the graph */
    size_t plan_ws, sum_off, acc_off, acc_bytes, ws_bytes;
    int *seqlen; /* device (2 B) int32, all T: seq_len_q then seq_len_kv (workaround only) */
    float scale, neg_inf, one; /* by-value scalars, read at execute time */
} Graph;

static int make_desc(Graph *g, cudnnBackendDescriptorType_t type, cudnnBackendDescriptor_t *out) {
    *out = NULL;
    if (g->ndesc == g->cap) {
        int cap = g->cap ? 2 * g->cap : 128;
        void *p = realloc(g->desc, sizeof(*g->desc) * (size_t)cap);
        if (!p) {
            snprintf(g_err, sizeof g_err, "out of host memory for cuDNN descriptors");
            return -1;
        }
        g->desc = (cudnnBackendDescriptor_t *)p;
        g->cap = cap;
    }
    cudnnBackendDescriptor_t d = NULL;
    CUDNN_TRY(cudnnBackendCreateDescriptor(type, &d));
    g->desc[g->ndesc++] = d;
    *out = d;
    return 0;
}

static int add_op(Graph *g, cudnnBackendDescriptor_t op) {
    if (g->nops == MAX_OPS) {
        snprintf(g_err, sizeof g_err, "more than %d operations in one attention graph", MAX_OPS);
        return -1;
    }
    g->ops[g->nops++] = op;
    return 0;
}

enum { T_VIRTUAL = 1, T_BY_VALUE = 2 };

/* A 4-d tensor descriptor: uid 0 takes the next virtual id. */
static int tensor(Graph *g, cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t dt,
                  const int64_t dim[4], const int64_t stride[4], int flags) {
    cudnnBackendDescriptor_t t;
    STEP(make_desc(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, &t));
    if (!uid) uid = g->next_uid++;
    const int64_t align = 16;
    SET(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SET(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim);
    SET(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride);
    SET(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SET(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    if (flags & T_VIRTUAL) {
        const bool yes = true;
        SET(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &yes);
    }
    if (flags & T_BY_VALUE) {
        const bool yes = true;
        SET(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    }
    CUDNN_TRY(cudnnBackendFinalize(t));
    *out = t;
    return 0;
}

static int virt(Graph *g, cudnnBackendDescriptor_t *out, cudnnDataType_t dt, const int64_t dim[4],
                const int64_t stride[4]) {
    return tensor(g, out, 0, dt, dim, stride, T_VIRTUAL);
}

/* y = mode(x [, b [, t]]) computed in prec; axis >= 0 only for gen_index. */
static int pointwise(Graph *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec, int64_t axis,
                     cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                     cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t pw, op;
    STEP(make_desc(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, &pw));
    SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) SET(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    CUDNN_TRY(cudnnBackendFinalize(pw));
    STEP(make_desc(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, &op));
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) SET(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t) SET(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    const float one = 1.0f;
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one);
    SET(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
    CUDNN_TRY(cudnnBackendFinalize(op));
    return add_op(g, op);
}

/* c = a @ b over the last two dims (batch dims broadcast), fp32 accumulation; m, n, k: optional
 * (B, 1, 1, 1) int32 tensors overriding the product's extents per sequence. */
static int matmul(Graph *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                  cudnnBackendDescriptor_t c, cudnnBackendDescriptor_t m,
                  cudnnBackendDescriptor_t n, cudnnBackendDescriptor_t k) {
    cudnnBackendDescriptor_t mm, op;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    STEP(make_desc(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, &mm));
    SET(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CUDNN_TRY(cudnnBackendFinalize(mm));
    STEP(make_desc(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, &op));
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    SET(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm);
    if (m)
        SET(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &m);
    if (n)
        SET(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &n);
    if (k)
        SET(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
            &k);
    CUDNN_TRY(cudnnBackendFinalize(op));
    return add_op(g, op);
}

/* y = reduce(x) over the dims where y has extent 1 (and x does not), in fp32. */
static int reduction(Graph *g, cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                     cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t rd, op;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    STEP(make_desc(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, &rd));
    SET(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    SET(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    CUDNN_TRY(cudnnBackendFinalize(rd));
    STEP(make_desc(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, &op));
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SET(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    CUDNN_TRY(cudnnBackendFinalize(op));
    return add_op(g, op);
}

/* y: the same data as x under y's dims and strides (a transposed view). */
static int reshape(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op;
    STEP(make_desc(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, &op));
    SET(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SET(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    CUDNN_TRY(cudnnBackendFinalize(op));
    return add_op(g, op);
}

/* *y = (row >= col) ? x : neg_inf for scores x of dims sdim (top-left aligned causal mask). */
static int causal_mask(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t neg_inf,
                       const int64_t sdim[4], const int64_t sstr[4], cudnnBackendDescriptor_t *y) {
    cudnnBackendDescriptor_t row, col, keep;
    STEP(virt(g, &row, CUDNN_DATA_INT32, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 2, x, NULL, NULL, row));
    STEP(virt(g, &col, CUDNN_DATA_INT32, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, 3, x, NULL, NULL, col));
    STEP(virt(g, &keep, CUDNN_DATA_BOOLEAN, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, -1, row, col, NULL, keep));
    STEP(virt(g, y, CUDNN_DATA_FLOAT, sdim, sstr));
    return pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, x, neg_inf, keep, *y);
}

/* *y = (row < seq_q[b] && col < seq_kv[b]) ? x : neg_inf (the workaround's padding mask). */
static int padding_mask(Graph *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t neg_inf,
                        cudnnBackendDescriptor_t seq_q, cudnnBackendDescriptor_t seq_kv,
                        const int64_t sdim[4], const int64_t sstr[4], cudnnBackendDescriptor_t *y) {
    cudnnBackendDescriptor_t row, col, row_in, col_in, keep;
    STEP(virt(g, &row, CUDNN_DATA_INT32, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, 2, x, NULL, NULL, row));
    STEP(virt(g, &col, CUDNN_DATA_INT32, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, 3, x, NULL, NULL, col));
    STEP(virt(g, &row_in, CUDNN_DATA_BOOLEAN, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, -1, row, seq_q, NULL, row_in));
    STEP(virt(g, &col_in, CUDNN_DATA_BOOLEAN, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, -1, col, seq_kv, NULL, col_in));
    STEP(virt(g, &keep, CUDNN_DATA_BOOLEAN, sdim, sstr));
    STEP(pointwise(g, CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, -1, row_in, col_in, NULL,
                   keep));
    STEP(virt(g, y, CUDNN_DATA_FLOAT, sdim, sstr));
    return pointwise(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, -1, x, neg_inf, keep, *y);
}

/* Dims and strides of one shape, in cuDNN's (batch, heads, seq, D) order (see the top). */
typedef struct {
    int64_t q[4], qs[4];   /* Q, O, dO, dQ */
    int64_t kv[4], kvs[4]; /* K, V, dK, dV */
    int64_t kt[4], kts[4]; /* K^T, V^T */
    int64_t s[4], ss[4];   /* scores (B, H, T, T) */
    int64_t st[4], sts[4]; /* scores transposed, same memory */
    int64_t r[4], rs[4];   /* per-row (B, H, T, 1): stats, sums */
    int64_t one[4];        /* a scalar */
} Dims;

static void set4(int64_t a[4], int64_t w, int64_t x, int64_t y, int64_t z) {
    a[0] = w, a[1] = x, a[2] = y, a[3] = z;
}

static Dims dims_of(const Graph *g) {
    const int64_t b = g->B, h = g->H, hk = g->Hkv, t = g->T, d = g->D;
    Dims x;
    set4(x.q, b, h, t, d), set4(x.qs, t * h * d, d, h * d, 1);
    set4(x.kv, b, hk, t, d), set4(x.kvs, t * hk * d, d, hk * d, 1);
    set4(x.kt, b, hk, d, t), set4(x.kts, t * hk * d, d, 1, hk * d);
    set4(x.s, b, h, t, t), set4(x.ss, h * t * t, t * t, t, 1);
    set4(x.st, b, h, t, t), set4(x.sts, h * t * t, t * t, 1, t);
    set4(x.r, b, h, t, 1), set4(x.rs, h * t, t, 1, 1);
    set4(x.one, 1, 1, 1, 1);
    return x;
}

static int build_forward(Graph *g) {
    const Dims x = dims_of(g);
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t q, kt, v, o, stats, scale, neg_inf;
    STEP(tensor(g, &q, UID_Q, bf, x.q, x.qs, 0));
    STEP(tensor(g, &kt, UID_K, bf, x.kt, x.kts, 0));
    STEP(tensor(g, &v, UID_V, bf, x.kv, x.kvs, 0));
    STEP(tensor(g, &o, UID_O, bf, x.q, x.qs, 0));
    STEP(tensor(g, &stats, UID_STATS, f32, x.r, x.rs, 0));
    STEP(tensor(g, &scale, UID_SCALE, f32, x.one, x.one, T_BY_VALUE));
    STEP(tensor(g, &neg_inf, UID_NEG_INF, f32, x.one, x.one, T_BY_VALUE));

    cudnnBackendDescriptor_t s, s1, s2, m, sm, e, z, logz, p;
    STEP(virt(g, &s, f32, x.s, x.ss));
    STEP(matmul(g, q, kt, s, NULL, NULL, NULL));
    STEP(virt(g, &s1, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, s, scale, NULL, s1));
    STEP(causal_mask(g, s1, neg_inf, x.s, x.ss, &s2));
    STEP(virt(g, &m, f32, x.r, x.rs));
    STEP(reduction(g, CUDNN_REDUCE_TENSOR_MAX, s2, m));
    STEP(virt(g, &sm, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_SUB, f32, -1, s2, m, NULL, sm));
    STEP(virt(g, &e, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_EXP, f32, -1, sm, NULL, NULL, e));
    STEP(virt(g, &z, f32, x.r, x.rs));
    STEP(reduction(g, CUDNN_REDUCE_TENSOR_ADD, e, z));
    STEP(virt(g, &logz, f32, x.r, x.rs));
    STEP(pointwise(g, CUDNN_POINTWISE_LOG, f32, -1, z, NULL, NULL, logz));
    STEP(pointwise(g, CUDNN_POINTWISE_ADD, f32, -1, m, logz, NULL, stats));
    STEP(virt(g, &p, bf, x.s, x.ss)); /* the probabilities enter the second product as bf16 */
    STEP(pointwise(g, CUDNN_POINTWISE_DIV, f32, -1, e, z, NULL, p));
    return matmul(g, p, v, o, NULL, NULL, NULL);
}

static int build_backward(Graph *g) {
    const Dims x = dims_of(g);
    const cudnnDataType_t bf = CUDNN_DATA_BFLOAT16, f32 = CUDNN_DATA_FLOAT;
    const int64_t b = g->B, h = g->H, t = g->T, d = g->D;
    cudnnBackendDescriptor_t q, kt, vt, o, dout, stats, dq, dk, dv, scale, neg_inf, one, sum, acc;
    cudnnBackendDescriptor_t seq_q = NULL, seq_kv = NULL;
    STEP(tensor(g, &q, UID_Q, bf, x.q, x.qs, 0));
    STEP(tensor(g, &kt, UID_K, bf, x.kt, x.kts, 0));
    STEP(tensor(g, &vt, UID_V, bf, x.kt, x.kts, 0));
    STEP(tensor(g, &o, UID_O, bf, x.q, x.qs, 0));
    STEP(tensor(g, &dout, UID_DO, bf, x.q, x.qs, 0));
    STEP(tensor(g, &stats, UID_STATS, f32, x.r, x.rs, 0));
    STEP(tensor(g, &dq, UID_DQ, bf, x.q, x.qs, 0));
    STEP(tensor(g, &dk, UID_DK, bf, x.kv, x.kvs, 0));
    STEP(tensor(g, &dv, UID_DV, bf, x.kv, x.kvs, 0));
    STEP(tensor(g, &scale, UID_SCALE, f32, x.one, x.one, T_BY_VALUE));
    STEP(tensor(g, &neg_inf, UID_NEG_INF, f32, x.one, x.one, T_BY_VALUE));
    STEP(tensor(g, &one, UID_ONE, f32, x.one, x.one, T_BY_VALUE));
    STEP(tensor(g, &sum, UID_SUM, f32, x.r, x.rs, 0));
    const int64_t acc_str[4] = {h * t * d, t * d, d, 1}; /* packed (B, H, T, D) */
    STEP(tensor(g, &acc, UID_DQ_ACC, f32, x.q, acc_str, 0));
    if (g->padding) {
        const int64_t ldim[4] = {b, 1, 1, 1}, lstr[4] = {1, 1, 1, 1};
        STEP(tensor(g, &seq_q, UID_SEQ_Q, CUDNN_DATA_INT32, ldim, lstr, 0));
        STEP(tensor(g, &seq_kv, UID_SEQ_KV, CUDNN_DATA_INT32, ldim, lstr, 0));
    }

    /* Sum = rowsum(dO * O) */
    cudnnBackendDescriptor_t prod, rowsum;
    const int64_t prod_str[4] = {h * t * d, t * d, h * d, 1};
    STEP(virt(g, &prod, f32, x.q, prod_str));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, dout, o, NULL, prod));
    STEP(virt(g, &rowsum, f32, x.r, x.rs));
    STEP(reduction(g, CUDNN_REDUCE_TENSOR_ADD, prod, rowsum));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, rowsum, one, NULL, sum));

    /* p = exp(mask(Q K^T * scale - Stats)) */
    cudnnBackendDescriptor_t s, s1, s2, s3, p;
    STEP(virt(g, &s, f32, x.s, x.ss));
    STEP(matmul(g, q, kt, s, seq_q, seq_kv, NULL));
    STEP(virt(g, &s1, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, s, scale, NULL, s1));
    STEP(virt(g, &s2, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_SUB, f32, -1, s1, stats, NULL, s2));
    if (g->padding) {
        STEP(padding_mask(g, s2, neg_inf, seq_q, seq_kv, x.s, x.ss, &s2));
        const long ver = cudnn_version();
        if (ver >= 90000 && ver < 91000)
            STEP(padding_mask(g, s2, neg_inf, seq_q, seq_kv, x.s, x.ss, &s2));
    }
    STEP(causal_mask(g, s2, neg_inf, x.s, x.ss, &s3));
    STEP(virt(g, &p, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_EXP, f32, -1, s3, NULL, NULL, p));

    /* dV = p^T dO, summed over each group of query heads */
    cudnnBackendDescriptor_t pt;
    STEP(virt(g, &pt, bf, x.st, x.sts));
    STEP(reshape(g, p, pt));
    const int64_t full[4] = {b, h, t, d}, full_str[4] = {h * t * d, t * d, d, 1};
    if (g->H == g->Hkv) {
        STEP(matmul(g, pt, dout, dv, seq_kv, NULL, seq_q));
    } else {
        cudnnBackendDescriptor_t dv_full;
        STEP(virt(g, &dv_full, bf, full, full_str));
        STEP(matmul(g, pt, dout, dv_full, seq_kv, NULL, seq_q));
        STEP(reduction(g, CUDNN_REDUCE_TENSOR_ADD, dv_full, dv));
    }

    /* dS = (dO V^T - Sum) * p * scale */
    cudnnBackendDescriptor_t dp, ds1, ds2, ds;
    STEP(virt(g, &dp, f32, x.s, x.ss));
    STEP(matmul(g, dout, vt, dp, seq_q, seq_kv, NULL));
    STEP(virt(g, &ds1, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_SUB, f32, -1, dp, sum, NULL, ds1));
    STEP(virt(g, &ds2, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, ds1, p, NULL, ds2));
    STEP(virt(g, &ds, f32, x.s, x.ss));
    STEP(pointwise(g, CUDNN_POINTWISE_MUL, f32, -1, ds2, scale, NULL, ds));

    /* dK = dS^T Q, summed over each group of query heads */
    cudnnBackendDescriptor_t dst;
    STEP(virt(g, &dst, bf, x.st, x.sts));
    STEP(reshape(g, ds, dst));
    if (g->H == g->Hkv) {
        STEP(matmul(g, dst, q, dk, seq_kv, NULL, seq_q));
    } else {
        cudnnBackendDescriptor_t dk_full;
        STEP(virt(g, &dk_full, bf, full, full_str));
        STEP(matmul(g, dst, q, dk_full, seq_kv, NULL, seq_q));
        STEP(reduction(g, CUDNN_REDUCE_TENSOR_ADD, dk_full, dk));
    }

    /* dQ = dS K, accumulated in fp32 then converted */
    cudnnBackendDescriptor_t k;
    STEP(virt(g, &k, f32, x.kv, x.kvs));
    STEP(reshape(g, kt, k));
    STEP(matmul(g, ds, k, acc, seq_q, NULL, seq_kv));
    return pointwise(g, CUDNN_POINTWISE_IDENTITY, f32, -1, acc, NULL, NULL, dq);
}

/* Reads the chosen engine's global index and numerical notes off an engine config. */
static int engine_info(Graph *g, cudnnBackendDescriptor_t cfg) {
    cudnnBackendDescriptor_t eng;
    int64_t n = 0, index = -1;
    STEP(make_desc(g, CUDNN_BACKEND_ENGINE_DESCRIPTOR, &eng));
    CUDNN_TRY(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &eng));
    CUDNN_TRY(cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                                       &index));
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    n = 0;
    CUDNN_TRY(cudnnBackendGetAttribute(eng, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                       CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT,
                                       &n, notes));
    g->engine = (long long)index;
    g->deterministic = 1;
    for (int64_t i = 0; i < n && i < CUDNN_NUMERICAL_NOTE_TYPE_COUNT; i++)
        if (notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) g->deterministic = 0;
    return 0;
}

/* The operation graph, then the first engine config (heuristics mode A, then the fallback
 * list) whose execution plan finalizes. */
static int make_plan(Graph *g, cudnnHandle_t handle) {
    cudnnBackendDescriptor_t graph;
    STEP(make_desc(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
    SET(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops);
    SET(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    CUDNN_TRY(cudnnBackendFinalize(graph));

    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    char why[sizeof g_err] = "the heuristics offered no engine configuration";
    for (int mi = 0; mi < 2; mi++) {
        cudnnBackendDescriptor_t heur;
        STEP(make_desc(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
        SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
        SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[mi]);
        const cudnnStatus_t hst = cudnnBackendFinalize(heur);
        if (hst != CUDNN_STATUS_SUCCESS) { /* no engine of this mode knows the graph: the next */
            cudnn_fail(hst, "cudnnBackendFinalize(heuristics)", __FILE__, __LINE__);
            memcpy(why, g_err, sizeof why);
            continue;
        }
        int64_t count = 0;
        CUDNN_TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL));
        if (count > 32) count = 32;
        if (count <= 0) continue;
        cudnnBackendDescriptor_t cfgs[32];
        for (int64_t i = 0; i < count; i++)
            STEP(make_desc(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]));
        int64_t got = 0;
        CUDNN_TRY(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, cfgs));
        for (int64_t i = 0; i < got && i < count; i++) {
            cudnnBackendDescriptor_t plan;
            STEP(make_desc(g, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan));
            SET(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
            SET(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                &cfgs[i]);
            const cudnnStatus_t st = cudnnBackendFinalize(plan);
            if (st != CUDNN_STATUS_SUCCESS) { /* this config cannot run the graph: the next */
                cudnn_fail(st, "cudnnBackendFinalize(execution plan)", __FILE__, __LINE__);
                memcpy(why, g_err, sizeof why);
                continue;
            }
            int64_t n = 0, ws = 0;
            CUDNN_TRY(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                               CUDNN_TYPE_INT64, 1, &n, &ws));
            STEP(engine_info(g, cfgs[i]));
            /* cuDNN's notes do not cover this: its backward adds the dQ partial products of the
             * key tiles into the fp32 dQacc in no fixed order (its deterministic backward is a
             * different graph, with a B H T^2 workspace), so the bits may differ run to run */
            if (g->bwd) g->deterministic = 0;
            g->plan = plan;
            g->plan_ws = ws > 0 ? (size_t)ws : 0;
            g->heur_mode = (int)modes[mi];
            return 0;
        }
    }
    snprintf(g_err, sizeof g_err, "no cuDNN engine runs this attention graph; last failure: %s",
             why);
    return -1;
}

static size_t align256(size_t n) {
    return (n + 255) & ~(size_t)255;
}

static void graph_free(Graph *g) {
    if (!g) return;
    for (int i = g->ndesc - 1; i >= 0; i--) CUDNN_CHECK(cudnnBackendDestroyDescriptor(g->desc[i]));
    free(g->desc);
    if (g->seqlen) CUDA_CHECK(cudaFree(g->seqlen));
    free(g);
}

static Graph *graph_build(int B, int T, int H, int Hkv, int D, int bwd) {
    if (B < 1 || T < 1 || H < 1 || Hkv < 1 || H % Hkv != 0 || (D != 64 && D != 128)) {
        snprintf(g_err, sizeof g_err,
                 "cuDNN attention: unsupported shape B=%d T=%d H=%d Hkv=%d D=%d (needs D 64 or "
                 "128 and Hkv dividing H)",
                 B, T, H, Hkv, D);
        return NULL;
    }
    cudnnHandle_t handle = NULL;
    if (handle_get(&handle) != 0) return NULL;
    Graph *g = (Graph *)calloc(1, sizeof(Graph));
    if (!g) {
        snprintf(g_err, sizeof g_err, "out of host memory");
        return NULL;
    }
    const long ver = cudnn_version();
    g->B = B, g->T = T, g->H = H, g->Hkv = Hkv, g->D = D, g->bwd = bwd;
    g->next_uid = UID_VIRTUAL;
    g->scale = (float)(1.0 / sqrt((double)D));
    g->neg_inf = ver < 91000 ? -FLT_MAX : -INFINITY;
    g->one = 1.0f;
    g->padding = bwd && ver <= 91500 && T % 128 != 0;
    if (g->padding) {
        int *h = (int *)malloc(sizeof(int) * 2 * (size_t)B);
        if (!h) {
            free(g);
            snprintf(g_err, sizeof g_err, "out of host memory");
            return NULL;
        }
        for (int i = 0; i < 2 * B; i++) h[i] = T;
        CUDA_CHECK(cudaMalloc(&g->seqlen, sizeof(int) * 2 * (size_t)B));
        CUDA_CHECK(cudaMemcpy(g->seqlen, h, sizeof(int) * 2 * (size_t)B, cudaMemcpyHostToDevice));
        free(h);
    }
    if ((bwd ? build_backward(g) : build_forward(g)) != 0 || make_plan(g, handle) != 0) {
        char msg[sizeof g_err];
        snprintf(msg, sizeof msg, "%s attention graph B=%d T=%d H=%d Hkv=%d D=%d: %.1400s",
                 bwd ? "backward" : "forward", B, T, H, Hkv, D, g_err);
        memcpy(g_err, msg, sizeof g_err);
        graph_free(g);
        return NULL;
    }
    size_t ws = align256(g->plan_ws);
    if (bwd) {
        const size_t rows = (size_t)B * H * T;
        g->sum_off = ws;
        ws += align256(rows * sizeof(float));
        g->acc_off = ws;
        g->acc_bytes = rows * (size_t)D * sizeof(float);
        ws += align256(g->acc_bytes);
    }
    g->ws_bytes = ws;
    return g;
}

/* ---- the cache of built graphs and the shared workspace ---- */

/* The RL step's model calls run at their own length (a multiple of 64) with as many rows as
 * fit, so a run meets up to two graphs (forward, backward) per (rows, length) pair: a few
 * hundred for long contexts, of which a step uses a few dozen. A graph's descriptors take
 * kilobytes; rebuilding one takes a plan search. The cache drops the least recently used. */
#define CACHE_N 256
static Graph *g_cache[CACHE_N];
static int g_ncache;
static void *g_ws;
static size_t g_ws_cap;

/* The cached graph of a shape, built on first use; NULL (message in g_err) if none can be. */
static Graph *graph_find(int B, int T, int H, int Hkv, int D, int bwd) {
    for (int i = 0; i < g_ncache; i++) {
        Graph *g = g_cache[i];
        if (g->B == B && g->T == T && g->H == H && g->Hkv == Hkv && g->D == D && g->bwd == bwd) {
            /* to the back: the front is the least recently used, which a full cache drops */
            memmove(g_cache + i, g_cache + i + 1, sizeof(g_cache[0]) * (g_ncache - 1 - i));
            g_cache[g_ncache - 1] = g;
            return g;
        }
    }
    Graph *g = graph_build(B, T, H, Hkv, D, bwd);
    if (!g) return NULL;
    if (g_ncache == CACHE_N) { /* drop the least recently used; its plan may still run */
        CUDA_CHECK(cudaDeviceSynchronize());
        graph_free(g_cache[0]);
        memmove(g_cache, g_cache + 1, sizeof(g_cache[0]) * (CACHE_N - 1));
        g_ncache--;
    }
    g_cache[g_ncache++] = g;
    return g;
}

static Graph *graph_get(int B, int T, int H, int Hkv, int D, int bwd) {
    Graph *g = graph_find(B, T, H, Hkv, D, bwd);
    if (!g) {
        fprintf(stderr, "fatal: %s\n", g_err);
        abort();
    }
    return g;
}

static char *workspace(size_t bytes) {
    if (bytes > g_ws_cap) {
        if (g_ws) CUDA_CHECK(cudaFree(g_ws)); /* waits for the calls still using it */
        CUDA_CHECK(cudaMalloc(&g_ws, bytes));
        g_ws_cap = bytes;
    }
    return (char *)g_ws;
}

static void execute(Graph *g, int n, const int64_t *uids, void **ptrs, void *ws) {
    cudnnHandle_t handle = NULL;
    if (handle_get(&handle) != 0) {
        fprintf(stderr, "fatal: %s\n", g_err);
        abort();
    }
    cudnnBackendDescriptor_t pack;
    CUDNN_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                                         n, uids));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                         CUDNN_TYPE_VOID_PTR, n, ptrs));
    CUDNN_CHECK(cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                         CUDNN_TYPE_VOID_PTR, 1, &ws));
    CUDNN_CHECK(cudnnBackendFinalize(pack));
    CUDNN_CHECK(cudnnBackendExecute(handle, g->plan, pack));
    CUDNN_CHECK(cudnnBackendDestroyDescriptor(pack));
    LAUNCH_CHECK();
}

extern "C" long attention_cudnn_version(void) {
    return cudnn_version();
}

extern "C" int attention_cudnn_available(void) {
    static int answer = -1;
    if (answer >= 0) return answer;
    answer = 0;
    const long ver = cudnn_version();
    int dev = 0, major = 0;
    if (ver < 90000) {
        fprintf(stderr, "cuDNN attention: cuDNN %ld is older than 9.0\n", ver);
    } else if (ver == 91000 || ver == 91001) {
        fprintf(stderr, "cuDNN attention: cuDNN %ld has known attention bugs; use 9.10.2+\n", ver);
    } else if (cudaGetDevice(&dev) != cudaSuccess ||
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) !=
                   cudaSuccess) {
        cudaGetLastError(); /* clear the sticky error */
        fprintf(stderr, "cuDNN attention: no CUDA device answered\n");
    } else if (major < 8) {
        fprintf(stderr, "cuDNN attention: needs sm_80 or newer, this GPU is sm_%d\n", 10 * major);
    } else if (!graph_find(1, 64, 2, 1, 64, 0) || !graph_find(1, 64, 2, 1, 64, 1)) {
        fprintf(stderr, "cuDNN attention: unavailable: %s\n", g_err);
    } else {
        answer = 1;
    }
    return answer;
}

extern "C" void attention_forward_cudnn(uint16_t *out, float *lse, const uint16_t *q,
                                        const uint16_t *k, const uint16_t *v, int B, int T, int H,
                                        int Hkv, int D) {
    Graph *g = graph_get(B, T, H, Hkv, D, 0);
    const int64_t uids[7] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NEG_INF};
    void *ptrs[7] = {(void *)q,   (void *)k, (void *)v,  (void *)out,
                     (void *)lse, &g->scale, &g->neg_inf};
    execute(g, 7, uids, ptrs, g->ws_bytes ? workspace(g->ws_bytes) : NULL);
}

extern "C" void attention_backward_cudnn(uint16_t *dq, uint16_t *dk, uint16_t *dv,
                                         const uint16_t *dout, const uint16_t *q, const uint16_t *k,
                                         const uint16_t *v, const uint16_t *out, const float *lse,
                                         int B, int T, int H, int Hkv, int D) {
    Graph *g = graph_get(B, T, H, Hkv, D, 1);
    char *ws = workspace(g->ws_bytes);
    if (cudnn_version() < 90600) /* older cuDNN accumulates into dQacc without clearing it */
        CUDA_CHECK(cudaMemsetAsync(ws + g->acc_off, 0, g->acc_bytes, 0));
    const int64_t uids[16] = {UID_Q,   UID_K,      UID_V,     UID_O,     UID_STATS,   UID_DO,
                              UID_DQ,  UID_DK,     UID_DV,    UID_SCALE, UID_NEG_INF, UID_ONE,
                              UID_SUM, UID_DQ_ACC, UID_SEQ_Q, UID_SEQ_KV};
    char *sum = ws + g->sum_off, *acc = ws + g->acc_off;
    int *seq_q = g->seqlen, *seq_kv = g->seqlen ? g->seqlen + B : NULL;
    void *ptrs[16] = {(void *)q, (void *)k, (void *)v, (void *)out, (void *)lse, (void *)dout,
                      dq,        dk,        dv,        &g->scale,   &g->neg_inf, &g->one,
                      sum,       acc,       seq_q,     seq_kv};
    execute(g, g->padding ? 16 : 14, uids, ptrs, ws);
}

extern "C" size_t attention_cudnn_workspace(int B, int T, int H, int Hkv, int D, int backward) {
    return graph_get(B, T, H, Hkv, D, backward != 0)->ws_bytes;
}

extern "C" int attention_cudnn_deterministic(int B, int T, int H, int Hkv, int D, int backward) {
    return graph_get(B, T, H, Hkv, D, backward != 0)->deterministic;
}

extern "C" void attention_cudnn_describe(int B, int T, int H, int Hkv, int D, int backward,
                                         char *buf, size_t n) {
    const Graph *g = graph_get(B, T, H, Hkv, D, backward != 0);
    const long ver = cudnn_version();
    if (n)
        snprintf(buf, n,
                 "cuDNN %ld.%ld.%ld %s: engine %lld (heuristics %s), workspace %zu bytes, %s%s",
                 ver / 10000, ver / 100 % 100, ver % 100, backward ? "backward" : "forward",
                 g->engine, g->heur_mode == CUDNN_HEUR_MODE_A ? "mode A" : "fallback", g->ws_bytes,
                 g->deterministic ? "deterministic" : "non-deterministic",
                 g->padding ? ", padding-mask workaround" : "");
}

#endif /* DENSERL_CUDNN */
