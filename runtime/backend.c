/* Backend selection and backend memory. The CUDA pieces come from backend_cuda.cu when
 * the build has DENSERL_CUDA; the op kernels for CUDA are not part of this build yet, so
 * "cuda" is refused by name and "auto" falls back to the CPU. */
#include <stdio.h>
#include <string.h>
#include "backend.h"
#include "check.h"
#include "error.h"

#ifdef DENSERL_CUDA
int cuda_device_count(void); /* backend_cuda.cu */
#endif

int backend_cuda_available(void) {
#ifdef DENSERL_CUDA
    return cuda_device_count() > 0;
#else
    return 0;
#endif
}

int backend_from_name(const char *name, Backend *out) {
    if (strcmp(name, "cpu") == 0) {
        *out = BACKEND_CPU;
        return DR_OK;
    }
    if (strcmp(name, "auto") == 0) {
        *out = BACKEND_CPU;
        if (backend_cuda_available())
            fprintf(stderr, "denserl: a GPU is present but this build has no CUDA kernels yet; "
                            "using the CPU\n");
        return DR_OK;
    }
    if (strcmp(name, "cuda") == 0)
        return dr_error("device \"cuda\": this build has no CUDA kernels yet; use \"cpu\" or "
                        "\"auto\"");
    return dr_error("device \"%s\": expected \"cpu\", \"cuda\" or \"auto\"", name);
}

const char *backend_name(Backend be) {
    return be == BACKEND_CUDA ? "cuda" : "cpu";
}

void *be_alloc(Backend be, size_t bytes) {
    CHECK(be == BACKEND_CPU);
    return xalloc_aligned(bytes);
}

void be_free(Backend be, void *p) {
    CHECK(be == BACKEND_CPU);
    free(p);
}

void be_memset0(Backend be, void *p, size_t bytes) {
    CHECK(be == BACKEND_CPU);
    memset(p, 0, bytes);
}

void be_to_device(Backend be, void *dst, const void *src, size_t bytes) {
    CHECK(be == BACKEND_CPU);
    memcpy(dst, src, bytes);
}

void be_to_host(Backend be, void *dst, const void *src, size_t bytes) {
    CHECK(be == BACKEND_CPU);
    memcpy(dst, src, bytes);
}

void be_copy(Backend be, void *dst, const void *src, size_t bytes) {
    CHECK(be == BACKEND_CPU);
    memcpy(dst, src, bytes);
}
