/* The compute backend a run uses, chosen once at start-up. Model and trainer code pass
 * it to the op_* dispatchers in ops.h and never test for CUDA themselves. */
#pragma once
#include <stddef.h>

typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1 } Backend;

/* Parses "cpu", "cuda" or "auto" (CUDA when built in and a GPU answers, else CPU, which
 * backend_note_fallback announces). DR_OK or DR_ERR naming the value. */
int backend_from_name(const char *name, Backend *out);
/* One line on stderr, once, if "auto" fell back to the CPU. Commands call it once their input
 * has been checked, so that an error is the only line a bad input prints. */
void backend_note_fallback(void);
const char *backend_name(Backend be);
/* 1 if this binary was built with the CUDA backend and a device is present. */
int backend_cuda_available(void);

/* Tensor memory on the backend, zeroed. */
void *be_alloc(Backend be, size_t bytes);
void be_free(Backend be, void *p);
void be_memset0(Backend be, void *p, size_t bytes);
/* Every byte of p set to byte (tests poison outputs with 0xff: NaN floats, -1 ints). */
void be_memset_byte(Backend be, void *p, int byte, size_t bytes);
/* Copies between host memory and backend memory (plain memcpy on the CPU). */
void be_to_device(Backend be, void *dst, const void *src, size_t bytes);
void be_to_host(Backend be, void *dst, const void *src, size_t bytes);
/* Copies within backend memory. */
void be_copy(Backend be, void *dst, const void *src, size_t bytes);
/* Waits for the backend's queued work (a no-op on the CPU); for timing. */
void be_synchronize(Backend be);
/* One line naming the device, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.2 GiB)". */
void backend_describe(Backend be, char *buf, int n);

/* The dispatch rule of runtime/ops*.c: fn_cuda(args) on CUDA, fn_cpu(args) otherwise. */
#ifdef DENSERL_CUDA
#define BACKEND_CALL(be, fn, ...)                                                                  \
    ((be) == BACKEND_CUDA ? fn##_cuda(__VA_ARGS__) : fn##_cpu(__VA_ARGS__))
#else
#define BACKEND_CALL(be, fn, ...) ((void)(be), fn##_cpu(__VA_ARGS__))
#endif
