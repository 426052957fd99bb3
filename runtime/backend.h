/* The compute backend a run uses, chosen once at start-up. Model and trainer code pass
 * it to the op_* dispatchers in ops.h and never test for CUDA themselves. */
#pragma once
#include <stddef.h>

typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1 } Backend;

/* Parses "cpu", "cuda" or "auto" (CUDA when built in and a GPU answers, else CPU with one
 * line on stderr). DR_OK or DR_ERR naming the value. */
int backend_from_name(const char *name, Backend *out);
const char *backend_name(Backend be);
/* 1 if this binary was built with the CUDA backend and a device is present. */
int backend_cuda_available(void);

/* Tensor memory on the backend, zeroed. */
void *be_alloc(Backend be, size_t bytes);
void be_free(Backend be, void *p);
void be_memset0(Backend be, void *p, size_t bytes);
/* Copies between host memory and backend memory (plain memcpy on the CPU). */
void be_to_device(Backend be, void *dst, const void *src, size_t bytes);
void be_to_host(Backend be, void *dst, const void *src, size_t bytes);
/* Copies within backend memory. */
void be_copy(Backend be, void *dst, const void *src, size_t bytes);
