/* cuBLAS and cuBLASLt on the host, for the CPU emulation of the CUDA backend: the calls declared
 * in tests/emu/include/cublas_v2.h and cublasLt.h, with the real libraries' column-major BLAS
 * semantics (op(A) is m x k, op(B) k x n, C m x n, leading dimensions in elements; beta == 0
 * leaves C unread, alpha == 0 leaves A and B unread). Operands of type fp32, fp16 and bf16 are
 * widened to float once, summed in fp32 by OpenBLAS as a GPU's tensor cores accumulate, and
 * the result rounded once to the output type (round to nearest even, fp16 overflow to inf, NaN
 * kept). Calls run at once on the calling thread: the
 * emulated kernels run synchronously, so streams need no ordering here. Anything these do not
 * implement returns CUBLAS_STATUS_INVALID_VALUE with one line on stderr, never a wrong answer. */
#include <cublas_v2.h>
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cblas.h>
#include <string.h>

struct cublasContext {
    cudaStream_t stream;
    int math;
};

struct cublasLtContext {
    int unused;
};

struct cublasLtMatmulDescOpaque_t {
    int compute, scale, pointer_mode;
    int transa, transb, transc;
    unsigned epilogue;
    const void *bias;
    int bias_type; /* -1: D's type, as in cuBLASLt */
};

struct cublasLtMatrixLayoutOpaque_t {
    int type;
    uint64_t rows, cols;
    int64_t ld;
};

struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t max_workspace;
    uint32_t align[4]; /* the alignments of A, B, C and D the caller promises (bytes) */
};

/* The mark of an algorithm from this heuristic, in algo.data[0]; data[1..5] hold the alignments
 * (bytes) of A, B, C, D and the bias that the algorithm was chosen for. */
static const uint64_t EMU_ALGO_MAGIC = 0x454d554c54414c47ull;

static cublasStatus_t emu_fail(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cublas emu: %s: ", fn);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CUBLAS_STATUS_INVALID_VALUE;
}

/* ---- element conversions: the emulation's own bf16 and fp16 (cuda_bf16.h, cuda_fp16.h) ---- */

static float bf16_to_f32(uint16_t h) {
    return __bfloat162float(__ushort_as_bfloat16(h));
}
static uint16_t f32_to_bf16(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
static float f16_to_f32(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
static uint16_t f32_to_f16(float f) {
    return __half_as_ushort(__float2half_rn(f));
}

static int type_ok(int type) {
    return type == CUDA_R_32F || type == CUDA_R_16F || type == CUDA_R_16BF;
}

static const char *type_name(int type) {
    switch (type) {
    case CUDA_R_32F:
        return "CUDA_R_32F";
    case CUDA_R_16F:
        return "CUDA_R_16F";
    case CUDA_R_16BF:
        return "CUDA_R_16BF";
    case CUDA_R_64F:
        return "CUDA_R_64F";
    case CUDA_R_8I:
        return "CUDA_R_8I";
    case CUDA_R_32I:
        return "CUDA_R_32I";
    default:
        return "an unknown type";
    }
}

static float load(const void *p, int type, size_t i) {
    if (type == CUDA_R_32F) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return type == CUDA_R_16F ? f16_to_f32(h) : bf16_to_f32(h);
}

static void store(void *p, int type, size_t i, float v) {
    if (type == CUDA_R_32F)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = type == CUDA_R_16F ? f32_to_f16(v) : f32_to_bf16(v);
}

/* ---- the product ---- */

/* P (R x k, row r contiguous) from X: P(r, l) = X[l + r ld] when the operand's k runs along
 * its columns' contiguous dimension, else X[r + l ld]. op(A) is packed by rows and op(B) by
 * columns, so every output element is one contiguous dot product. */
static float *pack(const void *x, int type, int64_t ld, int64_t R, int64_t k, bool l_contig) {
    float *p = (float *)malloc(sizeof(float) * (size_t)(R * k > 0 ? R * k : 1));
    if (!p) return NULL;
    for (int64_t r = 0; r < R; r++)
        for (int64_t l = 0; l < k; l++)
            p[r * k + l] = load(x, type, (size_t)(l_contig ? l + r * ld : r + l * ld));
    return p;
}

typedef struct {
    const void *p;
    int type;
    int64_t ld;
    int trans; /* CUBLAS_OP_* */
} Operand;

/* D = alpha op(A) op(B) + beta C (+ bias[i] on row i), m x n. C is read only when beta != 0,
 * A and B only when alpha != 0 and k > 0. C and D may be the same matrix. */
static cublasStatus_t gemm(int64_t m, int64_t n, int64_t k, float alpha, Operand a, Operand b,
                           float beta, const void *c, int ctype, int64_t ldc, void *d, int dtype,
                           int64_t ldd, const void *bias, int bias_type) {
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (emu_capturing()) { /* the product runs at each launch of the graph, as recorded */
        emu_record([=] {
            gemm(m, n, k, alpha, a, b, beta, c, ctype, ldc, d, dtype, ldd, bias, bias_type);
        });
        return CUBLAS_STATUS_SUCCESS;
    }
    const bool prod = alpha != 0.0f && k > 0;
    float *ap = NULL, *bp = NULL, *pr = NULL;
    if (prod) {
        ap = pack(a.p, a.type, a.ld, m, k, a.trans != CUBLAS_OP_N);
        bp = pack(b.p, b.type, b.ld, n, k, b.trans == CUBLAS_OP_N);
        pr = (float *)malloc(sizeof(float) * (size_t)(m * n));
        if (!ap || !bp || !pr) {
            free(ap);
            free(bp);
            free(pr);
            return CUBLAS_STATUS_ALLOC_FAILED;
        }
        /* the sums in fp32, as the tensor cores accumulate, by OpenBLAS: a naive loop would
         * leave the emulated model tests waiting on their products */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, ap,
                    (int)k, bp, (int)k, 0.0f, pr, (int)n);
    }
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < m; i++) {
            /* as a GPU does it: the sum scaled, then beta C, then the epilogue's bias */
            float v = prod ? alpha * pr[i * n + j] : 0.0f;
            if (beta != 0.0f) v += beta * load(c, ctype, (size_t)(i + j * ldc));
            if (bias) v += load(bias, bias_type, (size_t)i);
            store(d, dtype, (size_t)(i + j * ldd), v);
        }
    }
    free(ap);
    free(bp);
    free(pr);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLAS ---- */

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    cublasContext *h = (cublasContext *)calloc(1, sizeof *h);
    if (!h) return CUBLAS_STATUS_ALLOC_FAILED;
    h->math = CUBLAS_DEFAULT_MATH;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

/* The products need no workspace here; the checks are the real function's. */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
    if ((uintptr_t)workspace % 256) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base < CUBLAS_DEFAULT_MATH || base > CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = (int)mode; /* TF32 is refused by the fp32 products that it would change */
    return CUBLAS_STATUS_SUCCESS;
}

/* The checks and statuses of the real cublas<t>gemm. */
static cublasStatus_t gemm_args(const char *fn, cublasHandle_t h, cublasOperation_t ta,
                                cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                                int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((unsigned)ta > CUBLAS_OP_C || (unsigned)tb > CUBLAS_OP_C)
        return emu_fail(fn, "transa %d / transb %d", (int)ta, (int)tb);
    if (m < 0 || n < 0 || k < 0) return emu_fail(fn, "m %d n %d k %d", m, n, k);
    const int arows = ta == CUBLAS_OP_N ? m : k, brows = tb == CUBLAS_OP_N ? k : n;
    if (lda < (arows > 1 ? arows : 1)) return emu_fail(fn, "lda %d < %d rows", lda, arows);
    if (ldb < (brows > 1 ? brows : 1)) return emu_fail(fn, "ldb %d < %d rows", ldb, brows);
    if (ldc < (m > 1 ? m : 1)) return emu_fail(fn, "ldc %d < %d rows", ldc, m);
    return CUBLAS_STATUS_SUCCESS;
}

static bool math_tf32(cublasHandle_t h) {
    const int base = h->math & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    return base == CUBLAS_TF32_TENSOR_OP_MATH || base == CUBLAS_TENSOR_OP_MATH;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    const cublasStatus_t st =
        gemm_args("cublasSgemm", handle, transa, transb, m, n, k, lda, ldb, ldc);
    if (st) return st;
    if (!alpha || !beta) return emu_fail("cublasSgemm", "alpha or beta is NULL");
    if (math_tf32(handle))
        return emu_fail("cublasSgemm", "math mode %d (TF32 inputs) is not emulated", handle->math);
    const Operand a = {A, CUDA_R_32F, lda, transa}, b = {B, CUDA_R_32F, ldb, transb};
    return gemm(m, n, k, *alpha, a, b, *beta, C, CUDA_R_32F, ldc, C, CUDA_R_32F, ldc, NULL, 0);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
    const char *fn = "cublasGemmEx";
    const cublasStatus_t st = gemm_args(fn, handle, transa, transb, m, n, k, lda, ldb, ldc);
    if (st) return st;
    if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_PEDANTIC)
        return emu_fail(fn, "compute type %d (only CUBLAS_COMPUTE_32F is emulated)",
                        (int)computeType);
    if (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP)
        return emu_fail(fn, "algo %d", (int)algo);
    /* the combinations cuBLAS offers for CUBLAS_COMPUTE_32F among fp32, fp16 and bf16 */
    if (!type_ok(Atype) || Btype != Atype || (Ctype != CUDA_R_32F && Ctype != Atype))
        return emu_fail(fn, "types A %s, B %s, C %s", type_name(Atype), type_name(Btype),
                        type_name(Ctype));
    if (Atype == CUDA_R_32F && math_tf32(handle))
        return emu_fail(fn, "math mode %d (TF32 inputs) is not emulated", handle->math);
    if (!alpha || !beta) return emu_fail(fn, "alpha or beta is NULL");
    const Operand a = {A, Atype, lda, transa}, b = {B, Btype, ldb, transb};
    return gemm(m, n, k, *(const float *)alpha, a, b, *(const float *)beta, C, Ctype, ldc, C, Ctype,
                ldc, NULL, 0);
}

/* ---- cuBLASLt ---- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
    *lightHandle = (cublasLtContext *)calloc(1, sizeof(cublasLtContext));
    return *lightHandle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    free(lightHandle);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc,
                                        cublasComputeType_t computeType, cudaDataType_t scaleType) {
    const char *fn = "cublasLtMatmulDescCreate";
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_PEDANTIC)
        return emu_fail(fn, "compute type %d (only CUBLAS_COMPUTE_32F is emulated)",
                        (int)computeType);
    if (scaleType != CUDA_R_32F) return emu_fail(fn, "scale type %s", type_name(scaleType));
    cublasLtMatmulDescOpaque_t *d =
        (cublasLtMatmulDescOpaque_t *)calloc(1, sizeof(cublasLtMatmulDescOpaque_t));
    if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
    d->compute = (int)computeType;
    d->scale = (int)scaleType;
    d->transa = d->transb = d->transc = CUBLAS_OP_N;
    d->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    d->bias_type = -1;
    *matmulDesc = d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    free(matmulDesc);
    return CUBLAS_STATUS_SUCCESS;
}

/* An int32 attribute of exactly 4 bytes, as cuBLASLt insists. */
static cublasStatus_t attr_i32(const char *fn, const char *name, const void *buf, size_t size,
                               int32_t *v) {
    if (!buf || size != sizeof(int32_t))
        return emu_fail(fn, "%s of %zu bytes (expected 4)", name, size);
    memcpy(v, buf, sizeof *v);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                              cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t sizeInBytes) {
    const char *fn = "cublasLtMatmulDescSetAttribute";
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t v = 0;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        if (!(st = attr_i32(fn, "COMPUTE_TYPE", buf, sizeInBytes, &v))) {
            if (v != CUBLAS_COMPUTE_32F && v != CUBLAS_COMPUTE_32F_PEDANTIC)
                return emu_fail(fn, "compute type %d", (int)v);
            matmulDesc->compute = v;
        }
        return st;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
        if (!(st = attr_i32(fn, "SCALE_TYPE", buf, sizeInBytes, &v))) {
            if (v != CUDA_R_32F) return emu_fail(fn, "scale type %s", type_name(v));
            matmulDesc->scale = v;
        }
        return st;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
        if (!(st = attr_i32(fn, "POINTER_MODE", buf, sizeInBytes, &v)) && v != 0)
            return emu_fail(fn, "pointer mode %d (only host scalars are emulated)", (int)v);
        return st;
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_TRANSC:
        if ((st = attr_i32(fn, "TRANS", buf, sizeInBytes, &v))) return st;
        if (v < CUBLAS_OP_N || v > CUBLAS_OP_C) return emu_fail(fn, "transpose %d", (int)v);
        if (attr == CUBLASLT_MATMUL_DESC_TRANSC && v != CUBLAS_OP_N)
            return emu_fail(fn, "TRANSC %d (cuBLASLt supports CUBLAS_OP_N only)", (int)v);
        if (attr == CUBLASLT_MATMUL_DESC_TRANSA) matmulDesc->transa = v;
        if (attr == CUBLASLT_MATMUL_DESC_TRANSB) matmulDesc->transb = v;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if ((st = attr_i32(fn, "EPILOGUE", buf, sizeInBytes, &v))) return st;
        if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS)
            return emu_fail(fn, "epilogue %d (DEFAULT and BIAS are emulated)", (int)v);
        matmulDesc->epilogue = (unsigned)v;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (!buf || sizeInBytes != sizeof(void *))
            return emu_fail(fn, "BIAS_POINTER of %zu bytes", sizeInBytes);
        memcpy(&matmulDesc->bias, buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        if ((st = attr_i32(fn, "BIAS_DATA_TYPE", buf, sizeInBytes, &v))) return st;
        if (v != -1 && !type_ok(v)) return emu_fail(fn, "bias type %s", type_name(v));
        matmulDesc->bias_type = v;
        return CUBLAS_STATUS_SUCCESS;
    default:
        return emu_fail(fn, "attribute %d is not emulated", (int)attr);
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
    if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
    cublasLtMatrixLayoutOpaque_t *l =
        (cublasLtMatrixLayoutOpaque_t *)calloc(1, sizeof(cublasLtMatrixLayoutOpaque_t));
    if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
    l->type = (int)type, l->rows = rows, l->cols = cols, l->ld = ld;
    *matLayout = l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    free(matLayout);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    cublasLtMatmulPreferenceOpaque_t *p =
        (cublasLtMatmulPreferenceOpaque_t *)calloc(1, sizeof(cublasLtMatmulPreferenceOpaque_t));
    if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
    for (int i = 0; i < 4; i++) p->align[i] = 256; /* cuBLASLt's default promise */
    *pref = p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    free(pref);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t sizeInBytes) {
    const char *fn = "cublasLtMatmulPreferenceSetAttribute";
    if (!pref || !buf) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        if (sizeInBytes != sizeof(uint64_t))
            return emu_fail(fn, "MAX_WORKSPACE_BYTES of %zu bytes (expected 8)", sizeInBytes);
        memcpy(&pref->max_workspace, buf, sizeof(uint64_t));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        if (sizeInBytes != sizeof(uint32_t))
            return emu_fail(fn, "MIN_ALIGNMENT of %zu bytes (expected 4)", sizeInBytes);
        memcpy(&pref->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, 4);
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
    case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT:
    case CUBLASLT_MATMUL_PREF_IMPL_MASK:
        return CUBLAS_STATUS_SUCCESS; /* these only narrow the choice among real algorithms */
    default:
        return emu_fail(fn, "attribute %d is not emulated", (int)attr);
    }
}

typedef struct {
    int64_t m, n, k;
    int bias_type;
} LtShape;

/* What cuBLASLt would refuse and what the emulation does not do, with the product's shape. */
static cublasStatus_t lt_check(const char *fn, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                               cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                               cublasLtMatrixLayout_t d, LtShape *s) {
    if (!op || !a || !b || !c || !d) return emu_fail(fn, "a descriptor is NULL");
    const bool ta = op->transa != CUBLAS_OP_N, tb = op->transb != CUBLAS_OP_N;
    s->m = (int64_t)(ta ? a->cols : a->rows);
    s->k = (int64_t)(ta ? a->rows : a->cols);
    s->n = (int64_t)(tb ? b->rows : b->cols);
    const int64_t kb = (int64_t)(tb ? b->cols : b->rows);
    if (kb != s->k || (int64_t)d->rows != s->m || (int64_t)d->cols != s->n || c->rows != d->rows ||
        c->cols != d->cols)
        return emu_fail(
            fn, "shapes: op(A) %lld x %lld, op(B) %lld x %lld, C %llu x %llu, D %llu x %llu",
            (long long)s->m, (long long)s->k, (long long)kb, (long long)s->n,
            (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)d->rows,
            (unsigned long long)d->cols);
    const cublasLtMatrixLayoutOpaque_t *ls[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        const int64_t rows = (int64_t)ls[i]->rows;
        if (ls[i]->ld < (rows > 1 ? rows : 1))
            return emu_fail(fn, "matrix %c: ld %lld < %lld rows", "ABCD"[i], (long long)ls[i] -> ld,
                            (long long)rows);
    }
    /* A and B of one type; C and D of one type, the inputs' or fp32 (cuBLASLt's table for
     * CUBLAS_COMPUTE_32F among these types) */
    if (!type_ok(a->type) || b->type != a->type || c->type != d->type ||
        (d->type != CUDA_R_32F && d->type != a->type))
        return emu_fail(fn, "types A %s, B %s, C %s, D %s", type_name(a->type), type_name(b->type),
                        type_name(c->type), type_name(d->type));
    s->bias_type = op->bias_type == -1 ? d->type : op->bias_type;
    if (op->epilogue == CUBLASLT_EPILOGUE_BIAS && !op->bias)
        return emu_fail(fn, "the BIAS epilogue without a bias pointer");
    return CUBLAS_STATUS_SUCCESS;
}

static uint64_t align_of(const void *p) {
    uint64_t a = 1;
    while (a < 256 && ((uintptr_t)p & a) == 0) a <<= 1;
    return a;
}

/* cuBLASLt's kernels load at most 16 bytes at a time: that is what an algorithm chosen for a
 * promised alignment relies on. */
static uint64_t align_need(uint64_t promised) {
    return promised < 16 ? (promised ? promised : 1) : 16;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int *returnAlgoCount) {
    const char *fn = "cublasLtMatmulAlgoGetHeuristic";
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!preference || requestedAlgoCount < 1 || !heuristicResultsArray || !returnAlgoCount)
        return CUBLAS_STATUS_INVALID_VALUE;
    *returnAlgoCount = 0;
    LtShape s;
    const cublasStatus_t st = lt_check(fn, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &s);
    if (st) return st;
    cublasLtMatmulHeuristicResult_t *r = &heuristicResultsArray[0];
    memset(r, 0, sizeof *r);
    r->algo.data[0] = EMU_ALGO_MAGIC;
    for (int i = 0; i < 4; i++) r->algo.data[1 + i] = align_need(preference->align[i]);
    /* the heuristic reads the bias pointer's value for its alignment, as cuBLASLt's does */
    r->algo.data[5] = operationDesc->epilogue == CUBLASLT_EPILOGUE_BIAS
                          ? align_need(align_of(operationDesc->bias))
                          : 1;
    r->workspaceSize = 0;
    r->state = CUBLAS_STATUS_SUCCESS;
    r->wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                              const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    const char *fn = "cublasLtMatmul";
    (void)workspace, (void)workspaceSizeInBytes, (void)stream;
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    LtShape s;
    cublasStatus_t st = lt_check(fn, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &s);
    if (st) return st;
    if (!alpha || !beta) return emu_fail(fn, "alpha or beta is NULL");
    if (C == D && (Cdesc->ld != Ddesc->ld || Cdesc->type != Ddesc->type))
        return emu_fail(fn, "in place (C == D) with different C and D layouts");
    const bool bias = computeDesc->epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (algo) {
        if (algo->data[0] != EMU_ALGO_MAGIC)
            return emu_fail(fn, "an algorithm not from cublasLtMatmulAlgoGetHeuristic");
        const void *ps[5] = {A, B, C, D, bias ? computeDesc->bias : NULL};
        static const char *const names[5] = {"A", "B", "C", "D", "the bias"};
        for (int i = 0; i < 5; i++)
            if (ps[i] && align_of(ps[i]) < algo->data[1 + i])
                return emu_fail(fn,
                                "%s at %p is less aligned than the %llu bytes its algorithm "
                                "was chosen for",
                                names[i], ps[i], (unsigned long long)algo->data[1 + i]);
    }
    const Operand a = {A, Adesc->type, Adesc->ld, computeDesc->transa};
    const Operand b = {B, Bdesc->type, Bdesc->ld, computeDesc->transb};
    return gemm(s.m, s.n, s.k, *(const float *)alpha, a, b, *(const float *)beta, C, Cdesc->type,
                Cdesc->ld, D, Ddesc->type, Ddesc->ld, bias ? computeDesc->bias : NULL, s.bias_type);
}
