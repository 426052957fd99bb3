/* Backend selection and backend memory. The CUDA pieces come from backend_cuda.cu when
 * the build has DENSERL_CUDA; "auto" takes the GPU when one answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "check.h"
#include "error.h"

#ifdef DENSERL_CUDA
#define ON_CUDA(be) ((be) == BACKEND_CUDA)
/* backend_cuda.cu */
int cuda_device_count(void);
void *cuda_alloc(size_t bytes);
void cuda_free(void *p);
void cuda_memset0(void *p, size_t bytes);
void cuda_memset_byte(void *p, int byte, size_t bytes);
void cuda_copy(void *dst, const void *src, size_t bytes, int kind); /* 0 H2D, 1 D2H, 2 D2D */
void cuda_copy_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                  size_t height); /* D2D */
void cuda_synchronize(void);
void cuda_device_name(char *buf, int n);
void cuda_memory(double *free_b, double *total_b);
int cuda_graph_begin(void);
void *cuda_graph_end(void);
void cuda_graph_launch(void *exec);
void cuda_graph_free(void *exec);
#else
static int cpu_only(Backend be) {
    CHECK(be == BACKEND_CPU);
    return 0;
}
#define ON_CUDA(be) cpu_only(be)
#endif

int backend_cuda_available(void) {
#ifdef DENSERL_CUDA
    static int avail = -1;
    if (avail < 0) avail = cuda_device_count() > 0;
    return avail;
#else
    return 0;
#endif
}

static int g_auto_fell_back;

void backend_note_fallback(void) {
    if (g_auto_fell_back == 1) fprintf(stderr, "denserl: no GPU answered; running on the CPU\n");
    if (g_auto_fell_back) g_auto_fell_back = 2;
}

int backend_from_name(const char *name, Backend *out) {
    if (strcmp(name, "cpu") == 0) {
        *out = BACKEND_CPU;
        return DR_OK;
    }
    if (strcmp(name, "auto") == 0) {
        *out = backend_cuda_available() ? BACKEND_CUDA : BACKEND_CPU;
        if (*out == BACKEND_CPU && !g_auto_fell_back) g_auto_fell_back = 1;
        return DR_OK;
    }
    if (strcmp(name, "cuda") == 0) {
        *out = BACKEND_CUDA;
#ifdef DENSERL_CUDA
        if (backend_cuda_available()) return DR_OK;
        return dr_error("device \"cuda\": no GPU answered (use \"cpu\" or \"auto\")");
#else
        return dr_error("device \"cuda\": this binary was built without CUDA (rebuild with "
                        "-DDENSERL_CUDA=ON, or use \"cpu\")");
#endif
    }
    return dr_error("device \"%s\": expected \"cpu\", \"cuda\" or \"auto\"", name);
}

const char *backend_name(Backend be) {
    return be == BACKEND_CUDA ? "cuda" : "cpu";
}

void backend_describe(Backend be, char *buf, int n) {
#ifdef DENSERL_CUDA
    if (be == BACKEND_CUDA) {
        cuda_device_name(buf, n);
        return;
    }
#else
    (void)ON_CUDA(be);
#endif
    snprintf(buf, (size_t)n, "cpu");
}

/* A "Key: N kB" line of /proc/meminfo in bytes, or -1. */
static double meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    const size_t n = strlen(key);
    while (v < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') v = atof(line + n + 1) * 1024.0;
    fclose(f);
    return v;
}

int be_memory(Backend be, double *free_b, double *total_b) {
    *free_b = *total_b = 0;
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) {
        cuda_memory(free_b, total_b);
        return 1;
    }
#else
    (void)ON_CUDA(be);
#endif
    const double avail = meminfo("MemAvailable"), total = meminfo("MemTotal");
    if (avail < 0 || total <= 0) return 0;
    *free_b = avail;
    *total_b = total;
    return 1;
}

void *be_alloc(Backend be, size_t bytes) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_alloc(bytes);
#else
    (void)ON_CUDA(be);
#endif
    return xalloc_aligned(bytes);
}

void be_free(Backend be, void *p) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_free(p);
#else
    (void)ON_CUDA(be);
#endif
    free(p);
}

void be_memset0(Backend be, void *p, size_t bytes) {
    be_memset_byte(be, p, 0, bytes);
}

void be_memset_byte(Backend be, void *p, int byte, size_t bytes) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_memset_byte(p, byte, bytes);
#else
    (void)ON_CUDA(be);
#endif
    memset(p, byte, bytes);
}

void be_to_device(Backend be, void *dst, const void *src, size_t bytes) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_copy(dst, src, bytes, 0);
#else
    (void)ON_CUDA(be);
#endif
    memcpy(dst, src, bytes);
}

void be_to_host(Backend be, void *dst, const void *src, size_t bytes) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_copy(dst, src, bytes, 1);
#else
    (void)ON_CUDA(be);
#endif
    memcpy(dst, src, bytes);
}

void be_copy(Backend be, void *dst, const void *src, size_t bytes) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_copy(dst, src, bytes, 2);
#else
    (void)ON_CUDA(be);
#endif
    memmove(dst, src, bytes);
}

int be_graph_begin(Backend be) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_graph_begin();
#else
    (void)ON_CUDA(be);
#endif
    return 0;
}

void *be_graph_end(Backend be) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_graph_end();
#else
    (void)ON_CUDA(be);
#endif
    return NULL;
}

void be_graph_launch(Backend be, void *graph) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_graph_launch(graph);
#else
    (void)ON_CUDA(be);
#endif
    CHECK(graph == NULL);
}

void be_graph_free(Backend be, void *graph) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_graph_free(graph);
#else
    (void)ON_CUDA(be);
#endif
    CHECK(graph == NULL);
}

void be_copy_2d(Backend be, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                size_t height) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) return cuda_copy_2d(dst, dpitch, src, spitch, width, height);
#else
    (void)ON_CUDA(be);
#endif
    for (size_t r = 0; r < height; r++)
        memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
}

void be_synchronize(Backend be) {
#ifdef DENSERL_CUDA
    if (ON_CUDA(be)) cuda_synchronize();
#else
    (void)ON_CUDA(be);
#endif
}
