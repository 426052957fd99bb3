/* CUDA twin of the dense layer y = x W^T + b with W (out, in) row-major. The three products
 * are cublasSgemm calls on the process handle (fp32 default math, no TF32): a row-major
 * (r, c) matrix is the column-major (c, r) one, so each product is written for the transposes.
 * The bias is copied into y before a beta = 1 product; its gradient (column sums of dy) is made
 * deterministic without atomics: each block sums a fixed slice of rows for 256 columns into a
 * scratch row, and a second kernel adds the slices in order. */
#include "../kernels/kernels_cuda.h"
#include "../runtime/cuda_util.cuh"

enum { LIN_THREADS = 256, LIN_DB_TARGET_BLOCKS = 528 };

/* y[i, j] = b[j] for every row i of y (n, out). */
__global__ void linear_bias_fill_kernel(float *__restrict__ y, const float *__restrict__ b,
                                        long total, int out) {
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < total;
         e += (long)gridDim.x * blockDim.x)
        y[e] = b[e % out];
}

/* part[slice, j] = sum of dy[i, j] over the slice's rows in order. */
__global__ void linear_db_partial_kernel(float *__restrict__ part, const float *__restrict__ dy,
                                         int n, int out, int rows_per) {
    const int j = blockIdx.x * LIN_THREADS + threadIdx.x;
    if (j >= out) return;
    const int i0 = blockIdx.y * rows_per;
    const int i1 = min(n, i0 + rows_per);
    float s = 0.0f;
#pragma unroll 4
    for (int i = i0; i < i1; i++) s += dy[(long)i * out + j];
    part[(long)blockIdx.y * out + j] = s;
}

/* db[j] += the slices' sums in slice order. */
__global__ void linear_db_final_kernel(float *__restrict__ db, const float *__restrict__ part,
                                       int out, int slices) {
    const int j = blockIdx.x * LIN_THREADS + threadIdx.x;
    if (j >= out) return;
    float s = 0.0f;
    for (int b = 0; b < slices; b++) s += part[(long)b * out + j];
    db[j] += s;
}

extern "C" void linear_forward_cuda(float *y, const float *x, const float *w, const float *b, int n,
                                    int in, int out) {
    if (n <= 0 || out <= 0) return;
    const long total = (long)n * out;
    if (b) {
        linear_bias_fill_kernel<<<dr_blocks(total, LIN_THREADS), LIN_THREADS>>>(y, b, total, out);
        LAUNCH_CHECK();
    } else if (in <= 0) {
        CUDA_CHECK(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)total, 0));
    }
    if (in <= 0) return;
    /* y^T (out, n) = W (out, in) x^T: W is column-major (in, out), so transposed */
    const float one = 1.0f, beta = b ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in,
                             &beta, y, out));
}

/* Slices depend only on (n, out), never on the device: the same bits on any GPU. */
static void linear_db(float *db, const float *dy, int n, int out) {
    const int col_blocks = (out + LIN_THREADS - 1) / LIN_THREADS;
    int slices = (LIN_DB_TARGET_BLOCKS + col_blocks - 1) / col_blocks;
    if (slices > n) slices = n;
    const int rows_per = (n + slices - 1) / slices;
    slices = (n + rows_per - 1) / rows_per;
    float *part = (float *)dr_cuda_scratch(SCRATCH_REDUCE, sizeof(float) * (size_t)slices * out);
    linear_db_partial_kernel<<<dim3((unsigned)col_blocks, (unsigned)slices), LIN_THREADS>>>(
        part, dy, n, out, rows_per);
    LAUNCH_CHECK();
    linear_db_final_kernel<<<(unsigned)col_blocks, LIN_THREADS>>>(db, part, out, slices);
    LAUNCH_CHECK();
}

extern "C" void linear_backward_cuda(float *dx, float *dw, float *db, const float *dy,
                                     const float *x, const float *w, int n, int in, int out) {
    if (n <= 0 || out <= 0) return;
    const float one = 1.0f;
    /* dx^T (in, n) += W^T (in, out) dy^T (out, n); W is column-major (in, out) */
    if (in > 0 && dx)
        CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy,
                                 out, &one, dx, in));
    /* dw^T (in, out) += x^T (in, n) dy (n, out); dy is column-major (out, n), so transposed */
    if (in > 0 && dw)
        CUBLAS_CHECK(cublasSgemm(dr_cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy,
                                 out, &one, dw, in));
    if (db) linear_db(db, dy, n, out);
}
