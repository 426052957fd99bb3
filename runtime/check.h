/* Aborting checks for broken invariants and failed system calls: they print the file,
 * the line and the failing expression. User mistakes never reach these; they return a
 * status through error.h instead. */
#pragma once
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fatal: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* malloc/calloc that abort on exhaustion instead of returning NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
/* 64-byte aligned, zeroed allocation for tensors; free with free(). */
void *xalloc_aligned(size_t n);
