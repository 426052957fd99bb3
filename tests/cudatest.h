/* Helpers for the tests that hold a CUDA kernel against its CPU twin: device copies of
 * host arrays, poisoned device outputs (every byte 0xff: NaN floats, -1 ints, so an element
 * the kernel never writes fails the comparison), and a relative-error comparison. A test
 * starts with CUDA_TEST_BEGIN(), which exits with ctest's skip code 77 and says why when
 * the build has no CUDA or no GPU answers. Include after testutil.h. */
#ifndef DENSERL_CUDATEST_H
#define DENSERL_CUDATEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/backend.h"

#ifdef DENSERL_CUDA
#define CUDA_TEST_BEGIN()                                                                          \
    do {                                                                                           \
        if (!backend_cuda_available()) {                                                           \
            printf("SKIP no GPU answered: nothing checked\n");                                     \
            return 77;                                                                             \
        }                                                                                          \
        char name_[160];                                                                           \
        backend_describe(BACKEND_CUDA, name_, sizeof name_);                                       \
        printf("device: %s\n", name_);                                                             \
    } while (0)
#else
#define CUDA_TEST_BEGIN()                                                                          \
    do {                                                                                           \
        printf("SKIP built without CUDA: nothing checked\n");                                      \
        return 77;                                                                                 \
    } while (0)
#endif

/* A device copy of n host elements of size es. */
static inline void *dev_copy_of(const void *host, size_t n, size_t es) {
    void *d = be_alloc(BACKEND_CUDA, n * es);
    if (host) be_to_device(BACKEND_CUDA, d, host, n * es);
    return d;
}
#define DEV_F(h, n) ((float *)dev_copy_of((h), (size_t)(n), sizeof(float)))
#define DEV_I(h, n) ((int *)dev_copy_of((h), (size_t)(n), sizeof(int)))

/* A poisoned device buffer of n floats (or ints). */
static inline void *dev_poisoned(size_t n, size_t es) {
    void *d = be_alloc(BACKEND_CUDA, n * es);
    be_memset_byte(BACKEND_CUDA, d, 0xff, n * es);
    return d;
}
#define DEV_POISON_F(n) ((float *)dev_poisoned((size_t)(n), sizeof(float)))
#define DEV_POISON_I(n) ((int *)dev_poisoned((size_t)(n), sizeof(int)))

/* A new host array holding n device floats / ints. */
static inline void *host_copy_of(const void *dev, size_t n, size_t es) {
    void *h = malloc(n * es > 0 ? n * es : 1);
    be_to_host(BACKEND_CUDA, h, dev, n * es);
    return h;
}
#define HOST_F(d, n) ((float *)host_copy_of((d), (size_t)(n), sizeof(float)))
#define HOST_I(d, n) ((int *)host_copy_of((d), (size_t)(n), sizeof(int)))

static inline void dev_free(void *d) {
    if (d) be_free(BACKEND_CUDA, d);
}

/* ||got - want|| / max(||want||, tiny) over n elements; any NaN or Inf in got gives +Inf. */
static inline double rel_err(const float *got, const float *want, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i]) && !(isinf(got[i]) && got[i] == want[i])) return INFINITY;
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1.0);
}

/* max |got - want| over n elements; NaN in got gives +Inf. */
static inline double max_err(const float *got, const float *want, long n) {
    double e = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= e)) e = isnan(d) ? INFINITY : d;
    }
    return e;
}

/* n uniform floats in [-a, a) from testutil's stream. */
static inline float *rand_host(long n, double a) {
    float *x = (float *)calloc(n ? (size_t)n : 1, sizeof(float)); /* zeroed: no tail left unset */
    for (long i = 0; i < n; i++) x[i] = rng_sym(a);
    return x;
}

#endif
