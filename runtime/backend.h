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
/* height rows of width bytes, rows dpitch and spitch bytes apart, within backend memory. */
void be_copy_2d(Backend be, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                size_t height);
/* Waits for the backend's queued work (a no-op on the CPU); for timing. */
void be_synchronize(Backend be);
/* Graphs: a fixed sequence of backend work recorded once and replayed as one launch (CUDA
 * graphs; off on the CPU and with DENSERL_CUDA_GRAPHS=0). be_graph_begin returns 1 and
 * records the work that follows instead of running it, or 0 where graphs are off;
 * be_graph_end returns the recording, ready to launch, or NULL if the capture failed (then
 * nothing of it ran, graphs stay off for the run, and the caller runs the work directly).
 * A recording keeps the pointers and sizes it was made with. */
int be_graph_begin(Backend be);
void *be_graph_end(Backend be);
void be_graph_launch(Backend be, void *graph);
void be_graph_free(Backend be, void *graph);
/* Memory the backend can still give (bytes): on CUDA the device's free memory
 * (cudaMemGetInfo, so other processes count), on the CPU the host's MemAvailable; total gets the
 * device's or the host's whole memory. 0 where it cannot be read (then both are 0). */
int be_memory(Backend be, double *free_b, double *total_b);
/* One line naming the device, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.2 GiB)". */
void backend_describe(Backend be, char *buf, int n);

/* The dispatch rule of runtime/ops*.c: fn_cuda(args) on CUDA, fn_cpu(args) otherwise. */
#ifdef DENSERL_CUDA
#define BACKEND_CALL(be, fn, ...)                                                                  \
    ((be) == BACKEND_CUDA ? fn##_cuda(__VA_ARGS__) : fn##_cpu(__VA_ARGS__))
#else
#define BACKEND_CALL(be, fn, ...) ((void)(be), fn##_cpu(__VA_ARGS__))
#endif
