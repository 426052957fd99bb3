/* Aborting allocators and the recorded user-error message. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "error.h"

static char g_error[2048];

int dr_error(const char *fmt, ...) {
    /* formatted aside first: callers wrap the last message, dr_error("%s: %s", path,
     * dr_last_error()), and vsnprintf onto its own argument would garble it */
    char buf[sizeof g_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(g_error, buf, sizeof g_error);
    return DR_ERR;
}

const char *dr_last_error(void) {
    return g_error;
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    CHECK(p != NULL);
    return p;
}

void *xalloc_aligned(size_t n) {
    size_t sz = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, sz ? sz : 64);
    CHECK(p != NULL);
    memset(p, 0, sz ? sz : 64);
    return p;
}
