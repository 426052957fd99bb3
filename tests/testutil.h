/* The harness shared by the C tests: pass/fail counters behind check() and the EXPECT/REQUIRE
 * macros (which also print the failing expression and its place), test_summary() for the final
 * "N passed, M failed" line and exit code, two seeded random streams (splitmix64 with uniform
 * and symmetric draws; xorshift64 for raw bit patterns), max_abs_diff against a float64
 * reference, and a temporary directory maker and remover. Everything is static in this header,
 * so each test binary gets its own state; a test that sets test_quiet prints only failures. */
#ifndef DENSERL_TESTUTIL_H
#define DENSERL_TESTUTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- counting and reporting ---- */

static int test_passed, test_failed;
static int test_quiet; /* 1: no PASS lines, for tests with hundreds of checks */

static inline int test_vreport(int ok, const char *fmt, va_list ap) {
    ok = ok != 0;
    ok ? test_passed++ : test_failed++;
    if (ok && test_quiet) return ok;
    fputs(ok ? "PASS " : "FAIL ", stdout);
    vprintf(fmt, ap);
    putchar('\n');
    return ok;
}

/* Counts one check and prints "PASS <message>" or "FAIL <message>"; returns ok as 0/1. */
__attribute__((format(printf, 2, 3))) static inline int check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ok = test_vreport(ok, fmt, ap);
    va_end(ap);
    return ok;
}

/* check() whose line also names the source place and the expression:
 * "FAIL file.c:123: cond: message". */
__attribute__((format(printf, 5, 6))) static inline int
test_expect(int ok, const char *file, int line, const char *cond, const char *fmt, ...) {
    ok = ok != 0;
    ok ? test_passed++ : test_failed++;
    if (ok && test_quiet) return ok;
    /* printed apart from the caller's format: the expression text may hold '%' */
    printf("%s %s:%d: %s: ", ok ? "PASS" : "FAIL", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    return ok;
}

#define EXPECT(cond, ...) test_expect(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/* EXPECT that ends the current (void) test function on failure, for preconditions whose
 * failure would make the rest crash (e.g. writing to a FILE that was never opened). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!EXPECT(cond, __VA_ARGS__)) return;                                                    \
    } while (0)

/* Prints the final line every test ends with; returns the exit code (1 if anything failed). */
static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* ---- random numbers ---- */

/* splitmix64: each test seeds it once (rng_seed) so its inputs are the same on every run. */
static uint64_t rng_state;

static inline void rng_seed(uint64_t seed) {
    rng_state = seed;
}
/* Uniform on [0, 1) with 53 random bits. */
static inline double rng_u01(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}
/* Uniform on [-a, a). */
static inline float rng_sym(double a) {
    return (float)(a * (2.0 * rng_u01() - 1.0));
}

/* xorshift64 (13, 7, 17), a separate stream for tests that want raw 64-bit patterns; the
 * state must be seeded nonzero. */
static uint64_t xorshift_state;

static inline void xorshift_seed(uint64_t seed) {
    xorshift_state = seed;
}
static inline uint64_t xorshift_next(void) {
    xorshift_state ^= xorshift_state << 13;
    xorshift_state ^= xorshift_state >> 7;
    xorshift_state ^= xorshift_state << 17;
    return xorshift_state;
}
/* Uniform on [0, 1) from the top 53 bits of the next draw. */
static inline double xorshift_u01(void) {
    return (double)(xorshift_next() >> 11) * 0x1.0p-53;
}

/* ---- comparisons ---- */

/* max_k |a_k - b_k| of a float result against its float64 reference; NaN counts as the
 * largest error. */
static inline double max_abs_diff(const float *a, const double *b, int n) {
    double e = 0;
    for (int k = 0; k < n; k++) {
        double d = fabs((double)a[k] - b[k]);
        if (!(d <= e)) e = d;
    }
    return e;
}

/* ---- temporary directories ---- */

/* Makes a fresh directory from TEMPLATE (ending in XXXXXX) into dir (cap bytes); returns 0, or
 * -1 after printing why. */
static inline int test_mkdtemp(char *dir, size_t cap, const char *template) {
    snprintf(dir, cap, "%s", template);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* Removes DIR and everything under it; returns 0, or -1 after printing a note. */
static inline int test_rmtree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        printf("note: could not remove %s\n", dir);
        return -1;
    }
    return 0;
}

#endif
