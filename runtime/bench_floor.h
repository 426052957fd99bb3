/* Floors for end-to-end benchmarks, measured in the same process as the numbers they
 * judge: the machine's dense matrix-product rate (the denominator of MFU) and the memory
 * a run holds. */
#pragma once
#include <stddef.h>
#include "backend.h"

/* Best rate in TFLOP/s of a large square product on the backend: cublasGemmEx with bf16
 * inputs and fp32 accumulation (bf16 != 0) or cublasSgemm on CUDA, cblas_sgemm on the CPU
 * (bf16 is ignored there). what (if not NULL) gets a short description of the product. */
double bench_matrix_rate(Backend be, int bf16, char *what, int what_len);

/* Memory in use, in bytes: on CUDA the device's total minus free (cudaMemGetInfo, so other
 * processes on the device count too), on the CPU this process's peak resident set. total
 * (if not NULL) gets the device capacity, or 0 on the CPU. */
double bench_memory_used(Backend be, double *total);
