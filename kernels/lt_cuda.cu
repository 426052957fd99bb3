/* Mixed-precision forward products through cuBLASLt, so that what cublasGemmEx needs passes of
 * its own for happens in the product: the bias is added in the epilogue (instead of a kernel
 * that fills y with it for a beta = 1 product to add onto), and a residual r comes in as the C
 * operand with D = y (instead of an add over y afterwards). bf16 inputs, fp32 accumulation,
 * fp32 bias, C and D, column-major as cuBLAS sees the row-major arrays:
 *   y^T (out, n) = op_T(W^T (in, out)) x^T (in, n) + bias (out) + r^T (out, n).
 * Plans (descriptors and the heuristic's algorithm) are cached per shape and pointer alignment.
 * Where cuBLASLt offers no algorithm, or a call fails, linear_lt_forward_cuda returns 0 and the
 * caller does it the plain way; a failed call turns the path off for the process, with one
 * line. DENSERL_CUBLASLT=0 in the environment turns it off (for comparisons). */
#include <cublasLt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"

enum { LT_PLANS = 64, LT_WORKSPACE = 32 << 20 };

typedef struct {
    int n, in, out, bias, res;
    unsigned align;  /* the alignments of w, x, r, y, packed a byte each (log2) */
    unsigned balign; /* the bias pointer's (log2; 0 without one): the heuristic reads its value */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulAlgo_t algo;
    int ok; /* the heuristic gave an algorithm */
} LtPlan;

static struct {
    int state; /* 0: not yet asked, 1: on, -1: off */
    cublasLtHandle_t h;
    LtPlan plans[LT_PLANS];
    int n_plans, next; /* plans in use, the one replaced next once all are */
} g_lt;

/* log2 of the largest power of two up to 256 that divides the address */
static unsigned lt_align_log2(const void *p) {
    unsigned k = 0;
    while (k < 8 && ((uintptr_t)p & ((uintptr_t)1 << k)) == 0) k++;
    return k;
}

/* Read at every call, so that a test or a benchmark can compare both ways in one process. */
static int lt_on(void) {
    const char *e = getenv("DENSERL_CUBLASLT");
    if (g_lt.state < 0 || (e && !strcmp(e, "0"))) return 0;
    if (g_lt.state == 0) g_lt.state = cublasLtCreate(&g_lt.h) == CUBLAS_STATUS_SUCCESS ? 1 : -1;
    return g_lt.state == 1;
}

static void lt_off(const char *what, cublasStatus_t st) {
    fprintf(stderr, "note: cuBLASLt %s failed (status %d); products go through cublasGemmEx\n",
            what, (int)st);
    g_lt.state = -1;
}

static void lt_plan_free(LtPlan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    cublasLtMatrixLayout_t ls[] = {p->a, p->b, p->c, p->d};
    for (int i = 0; i < 4; i++)
        if (ls[i]) cublasLtMatrixLayoutDestroy(ls[i]);
    memset(p, 0, sizeof *p);
}

/* The descriptors and the heuristic's first algorithm for one shape and alignment. */
static cublasStatus_t lt_plan_make(LtPlan *p, const float *bias) {
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = p->bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cublasStatus_t st = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (!st)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (!st)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (!st)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (!st && p->bias)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof bias);
    if (!st) st = cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, p->in, p->out, p->in);
    if (!st) st = cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, p->in, p->n, p->in);
    if (!st) st = cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, p->out, p->n, p->out);
    if (!st) st = cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, p->out, p->n, p->out);
    if (st) return st;
    cublasLtMatmulPreference_t pref;
    st = cublasLtMatmulPreferenceCreate(&pref);
    if (st) return st;
    const size_t ws = LT_WORKSPACE;
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                              sizeof ws);
    const cublasLtMatmulPreferenceAttributes_t al[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && !st; i++) {
        const uint32_t bytes = 1u << ((p->align >> (8 * i)) & 0xff);
        st = cublasLtMatmulPreferenceSetAttribute(pref, al[i], &bytes, sizeof bytes);
    }
    cublasLtMatmulHeuristicResult_t r;
    int found = 0;
    if (!st)
        st = cublasLtMatmulAlgoGetHeuristic(g_lt.h, p->op, p->a, p->b, p->c, p->d, pref, 1, &r,
                                            &found);
    cublasLtMatmulPreferenceDestroy(pref);
    p->ok = !st && found > 0;
    if (p->ok) p->algo = r.algo;
    return CUBLAS_STATUS_SUCCESS; /* no algorithm is an answer, not a failure */
}

static LtPlan *lt_plan(int n, int in, int out, int bias, int res, unsigned align, const float *b) {
    const unsigned balign = b ? lt_align_log2(b) : 0;
    for (int i = 0; i < g_lt.n_plans; i++) {
        LtPlan *p = &g_lt.plans[i];
        if (p->n == n && p->in == in && p->out == out && p->bias == bias && p->res == res &&
            p->align == align && p->balign == balign)
            return p;
    }
    int slot = g_lt.n_plans < LT_PLANS ? g_lt.n_plans++ : g_lt.next++ % LT_PLANS;
    LtPlan *p = &g_lt.plans[slot];
    lt_plan_free(p);
    p->n = n, p->in = in, p->out = out, p->bias = bias, p->res = res, p->align = align;
    p->balign = balign;
    const cublasStatus_t st = lt_plan_make(p, b);
    if (st) {
        lt_plan_free(p);
        lt_off("plan", st);
        return NULL;
    }
    return p;
}

extern "C" int linear_lt_forward_cuda(float *y, const uint16_t *xs, const uint16_t *w,
                                      const float *b, const float *r, int n, int in, int out) {
    if (n <= 0 || in <= 0 || out <= 0 || !lt_on()) return 0;
    if (b && ((uintptr_t)b & 15)) return 0; /* the epilogue reads the bias in 16-byte pieces */
    const unsigned align = lt_align_log2(w) | lt_align_log2(xs) << 8 |
                           lt_align_log2(r ? (const void *)r : y) << 16 | lt_align_log2(y) << 24;
    LtPlan *p = lt_plan(n, in, out, b != NULL, r != NULL, align, b);
    if (!p || !p->ok) return 0;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (b)
        st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b);
    const float one = 1.0f, beta = r ? 1.0f : 0.0f;
    void *ws = dr_cuda_scratch(SCRATCH_LT, LT_WORKSPACE);
    if (!st)
        st = cublasLtMatmul(g_lt.h, p->op, &one, w, p->a, xs, p->b, &beta, r ? r : y, p->c, y, p->d,
                            &p->algo, ws, LT_WORKSPACE, DR_STREAM);
    if (st) {
        lt_off("matmul", st);
        return 0;
    }
    LAUNCH_CHECK();
    return 1;
}
