/* Tests for runtime/safetensors.c.
 *  1. Scalar conversions: every f16 and bf16 code decoded against an ldexp formula, and
 *     fp32 -> f16/bf16 rounding against a reference that searches the table of all
 *     representable values for the nearest one (ties to the even code), on random bit
 *     patterns, exact ties, near-ties, subnormals, overflow boundaries, inf and NaN.
 *  2. Round trip: st_write then st_open/st_read_f32 for F32, BF16, F16 and I32 tensors
 *     (scalar, empty, and large ones that take the OpenMP path), layout of the file,
 *     metadata, writer argument errors.
 *  3. Python's `safetensors` package reads our files and we read its files (skipped, with a
 *     note, when numpy/safetensors cannot be imported).
 *  4. A table of broken files, each of which must give DR_ERR naming the file, and a table
 *     of unusual but valid files that must load.
 *  5. A fuzz loop of random mutations of a valid file: never a crash, every accepted file's
 *     tensors lie inside the mapping.
 * Works in a fresh directory under /tmp, removed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "runtime/error.h"
#include "runtime/fileio.h"
#include "runtime/safetensors.h"
#include "testutil.h"

static char g_dir[256];

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- independent reference for half-precision formats ---- */

static double ref_f16_value(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static double ref_bf16_value(uint16_t h) {
    int e = (h >> 7) & 255, m = h & 127;
    double v = e == 255 ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
    return (h & 0x8000) ? -v : v;
}

/* Values of the non-negative codes 0..inf_code; the entry at the infinity code is the value
 * the next exponent would start at (65536, 2^128), which is the right rounding partner for
 * the largest finite value. */
static double g_f16_tab[0x7c01], g_bf16_tab[0x7f81];

static void build_tables(void) {
    for (int c = 0; c <= 0x7c00; c++)
        g_f16_tab[c] = c < 0x7c00 ? ref_f16_value((uint16_t)c) : 65536.0;
    for (int c = 0; c <= 0x7f80; c++)
        g_bf16_tab[c] = c < 0x7f80 ? ref_bf16_value((uint16_t)c) : ldexp(1.0, 128);
}

/* Nearest code to a >= 0 by search; ties go to the even code (the even mantissa). The
 * midpoint of two neighbours is exact in double, so comparing against it is exact. */
static int ref_round_code(double a, const double *tab, int top) {
    if (a >= tab[top]) return top;
    int lo = 0, hi = top;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (tab[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    if (tab[lo] == a) return lo;
    double m = 0.5 * (tab[lo] + tab[hi]);
    if (a < m) return lo;
    if (a > m) return hi;
    return (lo & 1) ? hi : lo;
}

/* Reference encodings; NaN keeps its sign, forces the quiet bit and keeps the top payload. */
static uint16_t ref_to_bf16(float x) {
    uint32_t b = fbits(x);
    if (isnan(x)) return (uint16_t)((b >> 16) | 0x0040);
    uint16_t sign = (b >> 31) ? 0x8000 : 0;
    return (uint16_t)(sign | ref_round_code(fabs((double)x), g_bf16_tab, 0x7f80));
}

static uint16_t ref_to_f16(float x) {
    uint32_t b = fbits(x);
    uint16_t sign = (b >> 31) ? 0x8000 : 0;
    if (isnan(x)) return (uint16_t)(sign | 0x7e00 | ((b >> 13) & 0x3ff));
    return (uint16_t)(sign | ref_round_code(fabs((double)x), g_f16_tab, 0x7c00));
}

/* A hard float for half-precision rounding: random bits, exact ties, near-ties, values near
 * the overflow and underflow boundaries, or ordinary values. */
static float hard_float(void) {
    int kind = (int)(xorshift_next() % 8);
    float s = (xorshift_next() & 1) ? -1.0f : 1.0f;
    switch (kind) {
    case 0:
        return bitsf((uint32_t)xorshift_next());
    case 1: { /* exact f16 tie */
        int c = (int)(xorshift_next() % 0x7c00);
        return s * (float)(0.5 * (g_f16_tab[c] + g_f16_tab[c + 1]));
    }
    case 2: { /* exact bf16 tie (the last finite code's midpoint is beyond FLT_MAX) */
        int c = (int)(xorshift_next() % 0x7f7f);
        return s * (float)(0.5 * (g_bf16_tab[c] + g_bf16_tab[c + 1]));
    }
    case 3: { /* one float ulp either side of a tie */
        int c = (int)(xorshift_next() % 0x7c00);
        float t = (float)(0.5 * (g_f16_tab[c] + g_f16_tab[c + 1]));
        return s * nextafterf(t, (xorshift_next() & 1) ? INFINITY : 0.0f);
    }
    case 4: { /* one float ulp either side of a bf16 tie */
        int c = (int)(xorshift_next() % 0x7f7f);
        float t = (float)(0.5 * (g_bf16_tab[c] + g_bf16_tab[c + 1]));
        return s * nextafterf(t, (xorshift_next() & 1) ? INFINITY : 0.0f);
    }
    case 5:
        return s * ldexpf((float)(1.0 + xorshift_u01()), (int)(xorshift_next() % 48) - 30);
    case 6:
        return s * bitsf((uint32_t)(xorshift_next() % 0x800000)); /* f32 subnormal */
    default:
        return s * (float)(xorshift_u01() * 4.0 - 2.0);
    }
}

static void test_conversions(void) {
    build_tables();
    /* decode every code */
    int bad16 = 0, badb = 0, first16 = -1, firstb = -1;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = st_f16_to_f32((uint16_t)h);
        double want = ref_f16_value((uint16_t)h);
        int ok;
        if (isnan(want))
            ok = isnan(got) && (fbits(got) >> 31) == (h >> 15) &&
                 ((fbits(got) >> 13) & 0x3ff) == (h & 0x3ff);
        else
            ok = (double)got == want && (fbits(got) >> 31) == (h >> 15);
        if (!ok && bad16++ == 0) first16 = (int)h;
        got = st_bf16_to_f32((uint16_t)h);
        want = ref_bf16_value((uint16_t)h);
        if (isnan(want))
            ok = isnan(got) && fbits(got) == h << 16;
        else
            ok = (double)got == want && (fbits(got) >> 31) == (h >> 15);
        if (!ok && badb++ == 0) firstb = (int)h;
    }
    EXPECT(bad16 == 0, "%d f16 codes decode wrongly, first 0x%04x", bad16, first16);
    EXPECT(badb == 0, "%d bf16 codes decode wrongly, first 0x%04x", badb, firstb);

    /* encode: fixed edge cases, then many hard random floats */
    const float edges[] = {0.0f,
                           -0.0f,
                           1.0f,
                           -1.0f,
                           65504.0f,
                           65519.996f,
                           65520.0f,
                           65536.0f,
                           1e9f,
                           3.4028235e38f,
                           -3.4028235e38f,
                           0x1p-14f,
                           0x1.ff8p-15f,
                           0x1p-24f,
                           0x1p-25f,
                           0x1.000002p-25f,
                           0x1.8p-24f,
                           0x1p-26f,
                           0x1p-126f,
                           0x1p-149f,
                           0x1.fefffep127f,
                           0x1.ff0000p127f,
                           0x1.ff8000p127f,
                           1.00390625f,
                           1.01171875f,
                           INFINITY,
                           -INFINITY,
                           NAN,
                           -NAN};
    int n_edges = (int)(sizeof edges / sizeof edges[0]);
    int n_rand = 400000, mis_b = 0, mis_h = 0;
    float ex_b = 0, ex_h = 0;
    for (int i = 0; i < n_edges + n_rand + 4; i++) {
        float x;
        if (i < n_edges)
            x = edges[i];
        else if (i < n_edges + n_rand)
            x = hard_float();
        else
            x = bitsf(0x7f800001u + (uint32_t)(xorshift_next() % 0x7fffff)) * ((i & 1) ? -1 : 1);
        uint16_t gb = st_f32_to_bf16(x), wb = ref_to_bf16(x);
        uint16_t gh = st_f32_to_f16(x), wh = ref_to_f16(x);
        int okh = isnan(x)
                      ? ((gh & 0x7c00) == 0x7c00 && (gh & 0x3ff) && (gh & 0x8000) == (wh & 0x8000))
                      : gh == wh;
        if (gb != wb && mis_b++ == 0) ex_b = x;
        if (!okh && mis_h++ == 0) ex_h = x;
    }
    EXPECT(mis_b == 0,
           "%d bf16 roundings differ from the reference, first x=%a (got 0x%04x want 0x%04x)",
           mis_b, (double)ex_b, st_f32_to_bf16(ex_b), ref_to_bf16(ex_b));
    EXPECT(mis_h == 0,
           "%d f16 roundings differ from the reference, first x=%a (got 0x%04x want 0x%04x)", mis_h,
           (double)ex_h, st_f32_to_f16(ex_h), ref_to_f16(ex_h));
    /* spot values a reader can check by eye */
    EXPECT(st_f32_to_bf16(1.00390625f) == 0x3f80, "1+2^-8 is a tie, rounds to even 1.0");
    EXPECT(st_f32_to_bf16(1.01171875f) == 0x3f82, "1+3*2^-8 is a tie, rounds up to even");
    EXPECT(st_f32_to_f16(65520.0f) == 0x7c00 && st_f32_to_f16(65519.996f) == 0x7bff,
           "f16 overflow boundary");
    EXPECT(st_f32_to_f16(0x1p-25f) == 0 && st_f32_to_f16(0x1.000002p-25f) == 1,
           "f16 underflow boundary");
    EXPECT(st_f32_to_bf16(3.4028235e38f) == 0x7f80, "FLT_MAX rounds to bf16 inf");

    /* dtype helpers */
    const char *names[] = {"F32", "F16", "BF16", "I32", "I64", "F64", "U8", "BOOL"};
    const size_t sizes[] = {4, 2, 2, 4, 8, 8, 1, 1};
    int okd = 1;
    for (int d = 0; d < 8; d++)
        okd &= strcmp(st_dtype_name((StDtype)d), names[d]) == 0 &&
               st_dtype_size((StDtype)d) == sizes[d];
    EXPECT(okd, "st_dtype_name/st_dtype_size table");
}

/* ---- helpers for files ---- */

static void dir_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    /* a fresh inode each time: truncating and rewriting makes ext4 flush on close
     * (auto_da_alloc), which would make the fuzz loop crawl */
    unlink(path);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
}

/* Writes an 8-byte length (hlen, normally strlen(header)), the header text and data_bytes
 * bytes of data 0, 1, 2, ... */
static void write_st_raw(const char *path, uint64_t hlen, const char *header, size_t header_len,
                         size_t data_bytes) {
    size_t n = 8 + header_len + data_bytes;
    unsigned char *buf = malloc(n);
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, header, header_len);
    for (size_t i = 0; i < data_bytes; i++) buf[8 + header_len + i] = (unsigned char)i;
    write_bytes(path, buf, n);
    free(buf);
}

static int is_zeroed(const StFile *f) {
    return !f->path && !f->map && !f->tensors && !f->metadata_json && f->n == 0;
}

static int count_temps(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '\\.tmp\\.' > '%s/.count' 2>/dev/null", g_dir,
             g_dir);
    if (system(cmd) == -1) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/.count", g_dir);
    FILE *fp = fopen(p, "r");
    int n = -1;
    if (fp) {
        if (fscanf(fp, "%d", &n) != 1) n = -1;
        fclose(fp);
    }
    unlink(p);
    return n;
}

/* ---- round trip ---- */

enum { N_BIG = 300000 };
typedef struct {
    float f32[3 * 5 * 7];
    float bf[17 * 33];
    float h[1000];
    int32_t ids[4 * 6];
    float scalar;
    float big_bf[N_BIG];
    float big_h[N_BIG];
} RtData;

/* The entries written by the round-trip test, also used for the python cross-check. */
static int make_entries(RtData *d, StEntry *e) {
    for (int i = 0; i < 3 * 5 * 7; i++) d->f32[i] = hard_float();
    for (int i = 0; i < 17 * 33; i++) d->bf[i] = hard_float();
    for (int i = 0; i < 1000; i++)
        d->h[i] =
            (i % 4) ? hard_float() : ldexpf((float)xorshift_u01(), -(int)(xorshift_next() % 30));
    for (int i = 0; i < 24; i++) d->ids[i] = (int32_t)(uint32_t)xorshift_next();
    d->ids[0] = INT32_MIN;
    d->ids[1] = INT32_MAX;
    d->scalar = 3.25f;
    for (int i = 0; i < N_BIG; i++) d->big_bf[i] = hard_float(), d->big_h[i] = hard_float();
    memset(e, 0, 8 * sizeof *e);
    e[0] = (StEntry){"w_f32", ST_F32, ST_F32, 3, {3, 5, 7}, d->f32};
    e[1] =
        (StEntry){"w_bf16", ST_F32, ST_BF16, 2, {17, 33}, d->bf}; /* odd size: misaligns the rest */
    e[2] = (StEntry){"w_f16", ST_F32, ST_F16, 1, {1000}, d->h};
    e[3] = (StEntry){"ids", ST_I32, ST_I32, 2, {4, 6}, d->ids};
    e[4] = (StEntry){"scalar", ST_F32, ST_F32, 0, {0}, &d->scalar};
    e[5] = (StEntry){"empty", ST_F32, ST_BF16, 2, {0, 4}, NULL};
    e[6] = (StEntry){"big_bf16", ST_F32, ST_BF16, 1, {N_BIG}, d->big_bf};
    e[7] = (StEntry){"big_f16", ST_F32, ST_F16, 2, {N_BIG / 3, 3}, d->big_h};
    return 8;
}

/* The value a reader must return for source x stored as dt, as float bits; NaN as NaN. */
static float expected_value(float x, StDtype dt) {
    if (dt == ST_BF16) return bitsf((uint32_t)ref_to_bf16(x) << 16);
    if (dt == ST_F16) return (float)ref_f16_value(ref_to_f16(x));
    return x;
}

static int same_float(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fbits(a) == fbits(b);
}

static void test_roundtrip(StEntry *e, int n, const char *path) {
    const char *meta = "{\"format\":\"pt\",\"note\":\"h\\u00e9llo \\\"quoted\\\"\"}";
    EXPECT(st_write(path, e, n, meta) == DR_OK, "st_write: %s", dr_last_error());
    EXPECT(count_temps() == 0, "st_write left a temporary file");

    StFile f;
    if (st_open(&f, path) != DR_OK) {
        EXPECT(0, "st_open of a written file: %s", dr_last_error());
        return;
    }
    EXPECT(f.n == n, "n = %d, expected %d", f.n, n);
    uint64_t hlen;
    memcpy(&hlen, f.map, 8);
    EXPECT(hlen % 8 == 0, "header length %llu is not a multiple of 8", (unsigned long long)hlen);
    const char *hdr = (const char *)f.map + 8;
    size_t jl = hlen;
    while (jl > 0 && hdr[jl - 1] == ' ') jl--;
    EXPECT(hdr[jl - 1] == '}' && hlen - jl < 8,
           "header is not JSON padded with fewer than 8 spaces");
    size_t total = 8 + hlen;
    const unsigned char *expect_ptr = (const unsigned char *)f.map + 8 + hlen;
    for (int i = 0; i < n && i < f.n; i++) {
        const StTensor *t = &f.tensors[i];
        int ok =
            strcmp(t->name, e[i].name) == 0 && t->dtype == e[i].store_dtype && t->ndim == e[i].ndim;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == e[i].shape[k];
        EXPECT(ok, "tensor %d ('%s'): name/dtype/shape differ from what was written", i, t->name);
        EXPECT(st_find(&f, e[i].name) == t, "st_find('%s')", e[i].name);
        int64_t numel = 1;
        for (int k = 0; k < e[i].ndim; k++) numel *= e[i].shape[k];
        EXPECT(st_numel(t) == numel && t->nbytes == (size_t)numel * st_dtype_size(t->dtype),
               "'%s': numel %lld nbytes %zu", t->name, (long long)st_numel(t), t->nbytes);
        EXPECT((const unsigned char *)t->data == expect_ptr,
               "'%s': data not contiguous with the previous tensor", t->name);
        expect_ptr += t->nbytes;
        total += t->nbytes;
        if (e[i].src_dtype == ST_I32) {
            EXPECT(t->nbytes == 0 || memcmp(t->data, e[i].data, t->nbytes) == 0,
                   "'%s': int32 data differ", t->name);
            float dummy[32];
            EXPECT(st_read_f32(t, dummy) == DR_ERR, "st_read_f32 accepted an I32 tensor");
            continue;
        }
        float *out = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        EXPECT(st_read_f32(t, out) == DR_OK, "st_read_f32('%s'): %s", t->name, dr_last_error());
        const float *src = e[i].data;
        int64_t bad = 0, first = -1;
        for (int64_t k = 0; k < numel; k++)
            if (!same_float(out[k], expected_value(src[k], e[i].store_dtype)) && bad++ == 0)
                first = k;
        EXPECT(bad == 0,
               "'%s': %lld values differ from the reference rounding, first [%lld] src %a got %a "
               "want %a",
               t->name, (long long)bad, (long long)first, first >= 0 ? (double)src[first] : 0.0,
               first >= 0 ? (double)out[first] : 0.0,
               first >= 0 ? (double)expected_value(src[first], e[i].store_dtype) : 0.0);
        free(out);
    }
    EXPECT(total == f.map_size, "file is %zu bytes, header + data is %zu", f.map_size, total);
    EXPECT(st_find(&f, "nope") == NULL, "st_find of a missing name");
    json_t *want = json_loads(meta, 0, NULL);
    json_t *got = f.metadata_json ? json_loads(f.metadata_json, 0, NULL) : NULL;
    EXPECT(got && json_equal(want, got), "metadata read back as '%s'",
           f.metadata_json ? f.metadata_json : "(null)");
    json_decref(want);
    json_decref(got);
    st_close(&f);
    EXPECT(is_zeroed(&f), "st_close leaves the struct zeroed");
    st_close(&f); /* closing twice is harmless */

    /* no metadata, no tensors */
    char p2[512];
    dir_path(p2, sizeof p2, "empty.safetensors");
    EXPECT(st_write(p2, NULL, 0, NULL) == DR_OK, "st_write of no tensors: %s", dr_last_error());
    EXPECT(st_open(&f, p2) == DR_OK && f.n == 0 && f.metadata_json == NULL,
           "reading a file with no tensors: %s", dr_last_error());
    st_close(&f);
}

static void test_write_errors(void) {
    char path[512];
    dir_path(path, sizeof path, "bad_write.safetensors");
    float x[4] = {1, 2, 3, 4};
    int32_t k[4] = {1, 2, 3, 4};
    struct {
        const char *what;
        StEntry e[2];
        int n;
        const char *meta;
    } cases[] = {
        {"duplicate names",
         {{"a", ST_F32, ST_F32, 1, {4}, x}, {"a", ST_F32, ST_F32, 1, {4}, x}},
         2,
         NULL},
        {"I32 stored as BF16", {{"a", ST_I32, ST_BF16, 1, {4}, k}}, 1, NULL},
        {"F32 stored as I32", {{"a", ST_F32, ST_I32, 1, {4}, x}}, 1, NULL},
        {"negative dimension", {{"a", ST_F32, ST_F32, 2, {-1, 4}, x}}, 1, NULL},
        {"ndim 9", {{"a", ST_F32, ST_F32, 9, {1, 1, 1, 1, 1, 1, 1, 1}, x}}, 1, NULL},
        {"NULL name", {{NULL, ST_F32, ST_F32, 1, {4}, x}}, 1, NULL},
        {"NULL data", {{"a", ST_F32, ST_F32, 1, {4}, NULL}}, 1, NULL},
        {"tensor named __metadata__", {{"__metadata__", ST_F32, ST_F32, 1, {4}, x}}, 1, NULL},
        {"metadata not JSON", {{"a", ST_F32, ST_F32, 1, {4}, x}}, 1, "{\"k\":"},
        {"metadata not an object", {{"a", ST_F32, ST_F32, 1, {4}, x}}, 1, "[\"k\"]"},
        {"metadata value not a string", {{"a", ST_F32, ST_F32, 1, {4}, x}}, 1, "{\"k\":1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = st_write(path, cases[i].e, cases[i].n, cases[i].meta);
        EXPECT(rc == DR_ERR && strstr(dr_last_error(), path), "st_write with %s: rc %d, '%s'",
               cases[i].what, rc, dr_last_error());
        EXPECT(access(path, F_OK) != 0, "st_write with %s left a file", cases[i].what);
    }
    dir_path(path, sizeof path, "missing_dir/x.safetensors");
    StEntry ok = {"a", ST_F32, ST_F32, 1, {4}, x};
    EXPECT(st_write(path, &ok, 1, NULL) == DR_ERR && strstr(dr_last_error(), path),
           "st_write into a missing directory: '%s'", dr_last_error());
    EXPECT(count_temps() == 0, "failed writes left temporary files");
}

/* ---- python cross-check ---- */

static const char *k_py =
    "import sys\n"
    "import numpy as np\n"
    "from safetensors import deserialize\n"
    "from safetensors.numpy import load_file, save_file\n"
    "mode = sys.argv[1]\n"
    "if mode == 'read':\n"
    "    path, out = sys.argv[2], sys.argv[3]\n"
    "    raw = open(path, 'rb').read()\n"
    "    items = deserialize(raw)\n"
    "    np_names = {'float32': 'F32', 'float16': 'F16', 'int32': 'I32'}\n"
    "    if not any(info['dtype'] == 'BF16' for _, info in items):\n"
    "        # numpy has no bfloat16, so the numpy loader only sees files without it\n"
    "        arrs = load_file(path)\n"
    "        items = [(k, {'dtype': np_names[str(a.dtype)], 'shape': list(a.shape), 'arr': a})\n"
    "                 for k, a in arrs.items()]\n"
    "    with open(out + '/index.txt', 'w') as idx:\n"
    "        for name, info in items:\n"
    "            dt = info['dtype']\n"
    "            if 'arr' in info:\n"
    "                a = info['arr']\n"
    "            elif dt == 'BF16':\n"
    "                a = (np.frombuffer(bytes(info['data']), np.uint16).astype(np.uint32) << "
    "16).view(np.float32)\n"
    "            else:\n"
    "                a = np.frombuffer(bytes(info['data']), {'F32': np.float32, 'F16': np.float16, "
    "'I32': np.int32}[dt])\n"
    "            np.ascontiguousarray(a, dtype=np.float64).tofile(out + '/' + name + '.f64')\n"
    "            idx.write(name + ' ' + dt + ' ' + str(len(info['shape'])) + ''.join(' ' + str(s) "
    "for s in info['shape']) + '\\n')\n"
    "else:\n"
    "    src, out = sys.argv[2], sys.argv[3]\n"
    "    x = np.fromfile(src, dtype=np.float32)\n"
    "    with np.errstate(over='ignore'):\n"
    "        h = x.astype(np.float16)\n"
    "    t = {'f32': x.reshape(3, 4, 5), 'f16': h, 'i32': np.arange(60, dtype=np.int32) - 30,\n"
    "         'i64': (np.arange(60, dtype=np.int64) * 1234567891234 - 7).reshape(6, 10),\n"
    "         'f64': x.astype(np.float64).reshape(2, 30) * 1e200, 'u8': (np.arange(60) * 7 % "
    "256).astype(np.uint8),\n"
    "         'b': np.arange(60) % 3 == 0, 'empty': np.zeros((0, 3), np.float32)}\n"
    "    save_file(t, out, metadata={'source': 'numpy'})\n";

static int python_available(void) {
    return system("python3 -c 'import numpy, safetensors.numpy' >/dev/null 2>&1") == 0;
}

/* Python reads a file we wrote; its view of each tensor must match ours value for value. */
static void check_python_reads(const char *st_path, const StEntry *e, int n, const char *script) {
    char out[512], cmd[2048];
    dir_path(out, sizeof out, "py_out");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && python3 '%s' read '%s' '%s'", out, out,
             script, st_path, out);
    int rc = system(cmd);
    EXPECT(rc == 0, "python could not read %s (exit %d)", st_path, rc);
    if (rc != 0) return;
    char idxp[600];
    snprintf(idxp, sizeof idxp, "%s/index.txt", out);
    FILE *idx = fopen(idxp, "r");
    int seen = 0;
    char name[128], dt[16];
    int nd;
    while (idx && fscanf(idx, "%127s %15s %d", name, dt, &nd) == 3) {
        int64_t shape[ST_MAX_DIMS] = {0};
        for (int k = 0; k < nd && k < ST_MAX_DIMS; k++)
            if (fscanf(idx, "%lld", (long long *)&shape[k]) != 1) break;
        const StEntry *en = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(e[i].name, name) == 0) en = &e[i];
        if (!en) {
            EXPECT(0, "python found an unknown tensor '%s'", name);
            continue;
        }
        seen++;
        int ok = strcmp(dt, st_dtype_name(en->store_dtype)) == 0 && nd == en->ndim;
        int64_t numel = 1;
        for (int k = 0; ok && k < nd; k++) ok = shape[k] == en->shape[k], numel *= shape[k];
        EXPECT(ok, "python sees '%s' as %s with %d dims", name, dt, nd);
        if (!ok) continue;
        char vp[700];
        snprintf(vp, sizeof vp, "%s/%s.f64", out, name);
        double *v = malloc((size_t)(numel ? numel : 1) * sizeof(double));
        FILE *fp = fopen(vp, "rb");
        size_t got = fp ? fread(v, sizeof(double), (size_t)numel, fp) : 0;
        if (fp) fclose(fp);
        int64_t bad = 0;
        for (int64_t k = 0; k < numel && (size_t)k < got; k++) {
            double want =
                en->src_dtype == ST_I32
                    ? (double)((const int32_t *)en->data)[k]
                    : (double)expected_value(((const float *)en->data)[k], en->store_dtype);
            if (!(v[k] == want || (isnan(v[k]) && isnan(want)))) bad++;
        }
        EXPECT(got == (size_t)numel && bad == 0, "python's values of '%s': %lld of %lld differ",
               name, (long long)bad, (long long)numel);
        free(v);
    }
    if (idx) fclose(idx);
    EXPECT(seen == n, "python listed %d of %d tensors", seen, n);
}

/* We read a file written by python's save_file. */
static void check_python_writes(const char *script) {
    float x[60];
    for (int i = 0; i < 60; i++) x[i] = hard_float();
    x[0] = 65520.0f;   /* overflows f16 */
    x[1] = 0x1.8p-24f; /* f16 subnormal tie */
    x[2] = NAN;
    char src[512], out[512], cmd[2048];
    dir_path(src, sizeof src, "py_src.bin");
    dir_path(out, sizeof out, "from_python.safetensors");
    write_bytes(src, x, sizeof x);
    snprintf(cmd, sizeof cmd, "python3 '%s' write '%s' '%s'", script, src, out);
    int rc = system(cmd);
    EXPECT(rc == 0, "python could not write (exit %d)", rc);
    if (rc != 0) return;
    StFile f;
    if (st_open(&f, out) != DR_OK) {
        EXPECT(0, "reading python's file: %s", dr_last_error());
        return;
    }
    EXPECT(f.n == 8, "python's file has %d tensors", f.n);
    json_t *m = f.metadata_json ? json_loads(f.metadata_json, 0, NULL) : NULL;
    EXPECT(m && json_is_string(json_object_get(m, "source")) &&
               !strcmp(json_string_value(json_object_get(m, "source")), "numpy"),
           "metadata of python's file: %s", f.metadata_json ? f.metadata_json : "(null)");
    json_decref(m);
    float buf[60];
    const StTensor *t = st_find(&f, "f32");
    int ok = t && t->dtype == ST_F32 && t->ndim == 3 && t->shape[0] == 3 && t->shape[2] == 5 &&
             st_read_f32(t, buf) == DR_OK;
    for (int i = 0; ok && i < 60; i++) ok = same_float(buf[i], x[i]);
    EXPECT(ok, "python's f32 tensor");
    t = st_find(&f, "f16");
    ok = t && t->dtype == ST_F16 && t->ndim == 1 && t->shape[0] == 60 &&
         st_read_f32(t, buf) == DR_OK;
    for (int i = 0; ok && i < 60; i++) ok = same_float(buf[i], expected_value(x[i], ST_F16));
    EXPECT(ok, "python's f16 tensor (numpy's rounding vs the reference)");
    t = st_find(&f, "i32");
    ok = t && t->dtype == ST_I32 && t->nbytes == 240 && st_read_f32(t, buf) == DR_ERR;
    for (int i = 0; ok && i < 60; i++) {
        int32_t v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        ok = v == i - 30;
    }
    EXPECT(ok, "python's i32 tensor");
    t = st_find(&f, "i64");
    ok = t && t->dtype == ST_I64 && t->ndim == 2 && t->shape[0] == 6 && t->nbytes == 480;
    for (int i = 0; ok && i < 60; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ok = v == (int64_t)i * 1234567891234ll - 7;
    }
    EXPECT(ok, "python's i64 tensor");
    t = st_find(&f, "f64");
    ok = t && t->dtype == ST_F64 && t->nbytes == 480;
    for (int i = 0; ok && i < 60; i++) {
        double v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ok = v == (double)x[i] * 1e200 || (isnan(v) && isnan(x[i]));
    }
    EXPECT(ok, "python's f64 tensor");
    t = st_find(&f, "u8");
    ok = t && t->dtype == ST_U8 && t->nbytes == 60;
    for (int i = 0; ok && i < 60; i++) ok = ((const uint8_t *)t->data)[i] == (uint8_t)(i * 7 % 256);
    EXPECT(ok, "python's u8 tensor");
    t = st_find(&f, "b");
    ok = t && t->dtype == ST_BOOL && t->nbytes == 60;
    for (int i = 0; ok && i < 60; i++) ok = ((const uint8_t *)t->data)[i] == (i % 3 == 0);
    EXPECT(ok, "python's bool tensor");
    t = st_find(&f, "empty");
    EXPECT(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0 &&
               st_read_f32(t, buf) == DR_OK,
           "python's empty tensor");
    st_close(&f);
}

static void test_python(const char *rt_path, const StEntry *e, int n) {
    if (!python_available()) {
        printf("note: python3 with numpy and safetensors not importable, cross-check SKIPPED\n");
        return;
    }
    char script[512], p2[512];
    dir_path(script, sizeof script, "check.py");
    write_bytes(script, k_py, strlen(k_py));
    check_python_reads(rt_path, e, n, script); /* has BF16: python's raw deserialize */
    /* without BF16, so numpy's load_file reads it */
    StEntry e2[8];
    int n2 = 0;
    for (int i = 0; i < n && n2 < 8; i++)
        if (e[i].store_dtype != ST_BF16) e2[n2++] = e[i];
    dir_path(p2, sizeof p2, "for_numpy.safetensors");
    EXPECT(st_write(p2, e2, n2, "{\"a\":\"b\"}") == DR_OK, "st_write: %s", dr_last_error());
    check_python_reads(p2, e2, n2, script);
    check_python_writes(script);
    printf("python cross-check ran\n");
}

/* ---- broken and unusual files ---- */

typedef struct {
    const char *label;
    const char *header;
    size_t data_bytes;
    const char *expect;
} BadCase;

#define T(name, body) "\"" name "\":{" body "}"
static const BadCase k_bad[] = {
    {"unknown dtype", "{" T("x", "\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
     "tensor 'x': unknown dtype 'Q7'"},
    {"offsets past data", "{" T("x", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]") "}",
     8, "tensor 'x': data_offsets [0, 16] out of range (data section is 8 bytes)"},
    {"truncated data section",
     "{" T("a", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]") "," T(
         "b", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]") "}",
     20, "tensor 'b': data_offsets [16, 32] out of range (data section is 20 bytes)"},
    {"overlap out of order",
     "{" T("b", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]") "," T(
         "a", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]") "}",
     16, "tensors 'a' and 'b' overlap"},
    {"shape vs bytes", "{" T("x", "\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]") "}",
     24, "tensor 'x': shape [2, 3] needs 24 bytes but data_offsets span 20"},
    {"missing dtype", "{" T("x", "\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
     "tensor 'x': missing \"dtype\""},
    {"dtype not a string", "{" T("x", "\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
     "\"dtype\" must be a string"},
    {"missing shape", "{" T("x", "\"dtype\":\"F32\",\"data_offsets\":[0,8]") "}", 8,
     "missing \"shape\""},
    {"shape not a list", "{" T("x", "\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]") "}", 8,
     "\"shape\" must be a list"},
    {"shape with a real",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]") "}", 8,
     "shape[0] must be an integer"},
    {"shape with a string",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]") "}", 8,
     "shape[1] must be an integer"},
    {"negative dim", "{" T("x", "\"dtype\":\"F32\",\"shape\":[-2,-1],\"data_offsets\":[0,8]") "}",
     8, "shape[0] is -2, dimensions cannot be negative"},
    {"ndim 9",
     "{" T("x", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]") "}", 8,
     "shape has 9 dimensions, at most 8"},
    {"missing offsets", "{" T("x", "\"dtype\":\"F32\",\"shape\":[2]") "}", 8,
     "missing \"data_offsets\""},
    {"offsets of length 1", "{" T("x", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]") "}",
     8, "\"data_offsets\" must be a list of two integers"},
    {"offsets of length 3",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]") "}", 8,
     "\"data_offsets\" must be a list of two integers"},
    {"offsets with a string",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]") "}", 8,
     "\"data_offsets\" must be a list of two integers"},
    {"offsets with a real",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]") "}", 8,
     "\"data_offsets\" must be a list of two integers"},
    {"offsets not a list", "{" T("x", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}") "}", 8,
     "\"data_offsets\" must be a list of two integers"},
    {"begin after end", "{" T("x", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]") "}", 8,
     "data_offsets [8, 4] out of range"},
    {"negative begin", "{" T("x", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]") "}", 8,
     "data_offsets [-4, 0] out of range"},
    {"shape overflows",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":["
                "0,0]") "}",
     8, "too large"},
    {"shape wraps to 0 bytes",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]") "}", 8,
     "too large"},
    {"tensor not an object", "{\"x\":[1,2]}", 8, "tensor 'x': expected an object"},
    {"metadata not an object", "{\"__metadata__\":\"v\"}", 0, "\"__metadata__\" must be an object"},
    {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0,
     "key 'k' must have a string value"},
    {"header is a list", "[{\"x\":1}]", 0, "header must be a JSON object"},
    {"header is a string", "\"abc\"", 0, "header"},
    {"invalid JSON", "{\"x\":", 0, "header is not valid JSON (line 1"},
    {"trailing garbage", "{}  xyz", 0, "header is not valid JSON"},
    {"two objects", "{}{}", 0, "header is not valid JSON"},
    {"integer too big",
     "{" T("x", "\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]") "}", 0,
     "header is not valid JSON"},
    {"invalid UTF-8 key", "{\"\xff\xfe\":{}}", 0, "header is not valid JSON"},
};

static void check_bad(const char *label, const char *path, const char *expect) {
    StFile f;
    memset(&f, 0x5a, sizeof f); /* st_open must not rely on a zeroed struct */
    int rc = st_open(&f, path);
    const char *msg = dr_last_error();
    EXPECT(rc == DR_ERR, "%s: st_open accepted it", label);
    EXPECT(strncmp(msg, path, strlen(path)) == 0 && msg[strlen(path)] == ':',
           "%s: message does not start with the path: '%s'", label, msg);
    EXPECT(strstr(msg, expect) != NULL, "%s: message '%s' lacks '%s'", label, msg, expect);
    EXPECT(is_zeroed(&f), "%s: StFile not cleared after the error", label);
    if (rc == DR_OK) st_close(&f);
}

static void test_bad_files(void) {
    char path[512];
    int n = 0;
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++, n++) {
        snprintf(path, sizeof path, "%s/bad%02zu.safetensors", g_dir, i);
        write_st_raw(path, strlen(k_bad[i].header), k_bad[i].header, strlen(k_bad[i].header),
                     k_bad[i].data_bytes);
        check_bad(k_bad[i].label, path, k_bad[i].expect);
    }
    /* cases that need hand-made bytes */
    dir_path(path, sizeof path, "empty_file.safetensors");
    write_bytes(path, "", 0);
    check_bad("empty file", path, "shorter than the 8-byte header length"), n++;
    dir_path(path, sizeof path, "short.safetensors");
    write_bytes(path, "\x02\0\0\0\0", 5);
    check_bad("5-byte file", path, "file is 5 bytes, shorter than"), n++;
    dir_path(path, sizeof path, "hlen0.safetensors");
    write_st_raw(path, 0, "{}", 2, 0);
    check_bad("header length 0", path, "header length is 0"), n++;
    dir_path(path, sizeof path, "hlen_big.safetensors");
    write_st_raw(path, 123456, "{}", 2, 2038);
    check_bad("header length past the end", path,
              "header length 123456 runs past the end of the file (2048 bytes)"),
        n++;
    dir_path(path, sizeof path, "hlen_max.safetensors");
    write_st_raw(path, UINT64_MAX, "{}", 2, 100);
    check_bad("header length 2^64-1", path, "runs past the end of the file"), n++;
    { /* absurd length inside a (sparse) file big enough to hold it */
        dir_path(path, sizeof path, "hlen_absurd.safetensors");
        uint64_t h = 100000008ull;
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int ok = fd >= 0 && write(fd, &h, 8) == 8 && ftruncate(fd, (off_t)(8 + h + 16)) == 0;
        if (fd >= 0) close(fd);
        if (ok)
            check_bad("absurd header length", path, "larger than the"), n++;
        else
            printf("note: could not make a sparse file, absurd-length case skipped\n");
        unlink(path);
    }
    {
        static const char hdr[] =
            "{\"x\":{\"dtype\":\"F32\",\0\"shape\":[1],\"data_offsets\":[0,4]}}";
        dir_path(path, sizeof path, "nul.safetensors");
        write_st_raw(path, sizeof hdr - 1, hdr, sizeof hdr - 1, 4);
        check_bad("NUL inside the header", path, "header is not valid JSON"), n++;
    }
    {
        char deep[6000];
        memset(deep, '[', sizeof deep);
        dir_path(path, sizeof path, "deep.safetensors");
        write_st_raw(path, sizeof deep, deep, sizeof deep, 0);
        check_bad("6000 nested lists", path, "header is not valid JSON"), n++;
    }
    dir_path(path, sizeof path, "no_such_file.safetensors");
    check_bad("missing file", path, "cannot open"), n++;
    check_bad("a directory", g_dir, "regular"), n++;
    printf("%d broken files checked\n", n);
}

static void test_unusual_valid(void) {
    char path[512];
    StFile f;
    /* duplicate key: jansson keeps the last one */
    const char *dup = "{" T("x", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]") "," T(
        "x", "\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]") "}";
    dir_path(path, sizeof path, "dup.safetensors");
    write_st_raw(path, strlen(dup), dup, strlen(dup), 8);
    int rc = st_open(&f, path);
    EXPECT(rc == DR_OK && f.n == 1 && f.tensors[0].dtype == ST_I32 &&
               (const char *)f.tensors[0].data == (const char *)f.map + 8 + strlen(dup) + 4,
           "duplicate key: %s", rc ? dr_last_error() : "kept the wrong one");
    if (rc == DR_OK) st_close(&f);

    /* out of offset order, a gap, empty tensors (one inside another's range), a scalar,
     * unknown extra fields, metadata last, trailing whitespace, and an odd header length so
     * the data is unaligned */
    /* clang-format off */
    const char *odd = "{"
        T("b", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16],\"extra\":[1]")
        ","
        T("e", "\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[4,4]")
        ","
        T("a", "\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]")
        ","
        T("s", "\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[16,20]")
        ","
        T("e2", "\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[12,12]")
        ",\"__metadata__\":{\"k\":\"v\"}} \n ";
    /* clang-format on */
    size_t hl = strlen(odd);
    unsigned char data[24] = {0};
    uint16_t a0 = 0x3c00, a1 = 0x8001; /* f16 1.0 and the smallest negative subnormal */
    float b0 = 2.5f, b1 = -7.0f;
    int32_t s = -12345;
    memcpy(data, &a0, 2), memcpy(data + 2, &a1, 2), memcpy(data + 8, &b0, 4),
        memcpy(data + 12, &b1, 4);
    memcpy(data + 16, &s, 4);
    unsigned char *buf = malloc(8 + hl + sizeof data);
    uint64_t h = hl;
    memcpy(buf, &h, 8), memcpy(buf + 8, odd, hl), memcpy(buf + 8 + hl, data, sizeof data);
    dir_path(path, sizeof path, "odd.safetensors");
    write_bytes(path, buf, 8 + hl + sizeof data);
    free(buf);
    rc = st_open(&f, path);
    EXPECT(rc == DR_OK, "unusual valid file rejected: %s", dr_last_error());
    if (rc == DR_OK) {
        const char *order[] = {"b", "e", "a", "s", "e2"};
        int ok = f.n == 5;
        for (int i = 0; ok && i < 5; i++) ok = strcmp(f.tensors[i].name, order[i]) == 0;
        EXPECT(ok, "tensors not in header order");
        float out[2];
        const StTensor *t = st_find(&f, "a");
        EXPECT(t && st_read_f32(t, out) == DR_OK && out[0] == 1.0f && out[1] == -0x1p-24f,
               "f16 values at an unaligned address");
        t = st_find(&f, "b");
        EXPECT(t && st_read_f32(t, out) == DR_OK && out[0] == 2.5f && out[1] == -7.0f,
               "f32 values at an unaligned address");
        t = st_find(&f, "s");
        int32_t sv = 0;
        if (t) memcpy(&sv, t->data, 4);
        EXPECT(t && t->ndim == 0 && st_numel(t) == 1 && sv == -12345, "scalar I32");
        t = st_find(&f, "e");
        EXPECT(t && t->nbytes == 0 && st_numel(t) == 0 && st_read_f32(t, out) == DR_OK,
               "empty BF16");
        EXPECT(f.metadata_json && strcmp(f.metadata_json, "{\"k\":\"v\"}") == 0,
               "metadata text '%s'", f.metadata_json ? f.metadata_json : "(null)");
        st_close(&f);
    }
    dir_path(path, sizeof path, "braces.safetensors");
    write_st_raw(path, 2, "{}", 2, 0);
    rc = st_open(&f, path);
    EXPECT(rc == DR_OK && f.n == 0, "'{}' header: %s", dr_last_error());
    if (rc == DR_OK) st_close(&f);
}

/* ---- fuzz ---- */

static void fuzz_check_accepted(const StFile *f, size_t size, int *bad) {
    uint64_t hlen;
    memcpy(&hlen, f->map, 8);
    const unsigned char *lo = (const unsigned char *)f->map + 8 + hlen;
    const unsigned char *hi = (const unsigned char *)f->map + size;
    for (int i = 0; i < f->n; i++) {
        const StTensor *t = &f->tensors[i];
        const unsigned char *p = t->data;
        int ok = t->ndim >= 0 && t->ndim <= ST_MAX_DIMS && p >= lo && p <= hi &&
                 t->nbytes <= (size_t)(hi - p) &&
                 (uint64_t)st_numel(t) * st_dtype_size(t->dtype) == t->nbytes &&
                 st_find(f, t->name);
        if (!ok) {
            (*bad)++;
            continue;
        }
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            float *out = malloc(t->nbytes * 2 + 4);
            if (st_read_f32(t, out) != DR_OK) (*bad)++;
            free(out);
        } else {
            volatile unsigned s = 0;
            for (size_t k = 0; k < t->nbytes; k++) s += p[k]; /* touches every byte */
        }
    }
}

static void test_fuzz(void) {
    char base_path[512], path[512];
    dir_path(base_path, sizeof base_path, "fuzz_base.safetensors");
    dir_path(path, sizeof path, "fuzz.safetensors");
    float v[8] = {1, -2, 3.5f, 0.25f, 1e-6f, 65504, -0.0f, 7};
    int32_t k[2] = {7, -7};
    StEntry e[] = {{"a", ST_F32, ST_F32, 2, {2, 3}, v},    {"bb", ST_F32, ST_BF16, 1, {5}, v},
                   {"c", ST_F32, ST_F16, 1, {3}, v},       {"ids", ST_I32, ST_I32, 1, {2}, k},
                   {"z", ST_F32, ST_F32, 2, {0, 2}, NULL}, {"s", ST_F32, ST_F16, 0, {0}, v}};
    if (st_write(base_path, e, 6, "{\"m\":\"1\"}") != DR_OK) {
        EXPECT(0, "fuzz base: %s", dr_last_error());
        return;
    }
    FILE *fp = fopen(base_path, "rb");
    unsigned char base[4096], buf[8192];
    size_t base_n = fread(base, 1, sizeof base, fp);
    fclose(fp);
    uint64_t base_hlen;
    memcpy(&base_hlen, base, 8);
    static const char special[] = "{}[]\",:-.0123456789eE\\ tfnu";

    int iters = 0, accepted = 0, rejected = 0, bad = 0, badmsg = 0;
    double t0 = now_s();
    for (; iters < 20000 && (iters < 3000 || now_s() - t0 < 3.0); iters++) {
        size_t n = base_n;
        memcpy(buf, base, n);
        int muts = 1 + (int)(xorshift_next() % 3);
        for (int m = 0; m < muts; m++) {
            size_t hend = 8 + base_hlen < n ? 8 + base_hlen : n; /* most bytes worth hitting */
            switch (xorshift_next() % 7) {
            case 0:
                if (n) buf[xorshift_next() % n] ^= (unsigned char)(1u << (xorshift_next() % 8));
                break;
            case 1:
                if (n) buf[xorshift_next() % n] = (unsigned char)xorshift_next();
                break;
            case 2: /* a JSON-significant character inside the header */
                if (hend > 8)
                    buf[8 + xorshift_next() % (hend - 8)] =
                        (unsigned char)special[xorshift_next() % (sizeof special - 1)];
                break;
            case 3: { /* change one digit: shapes and offsets */
                if (hend <= 8) break;
                size_t pos = 8 + xorshift_next() % (hend - 8);
                for (size_t q = 0; q < hend - 8; q++, pos = pos + 1 < hend ? pos + 1 : 8)
                    if (buf[pos] >= '0' && buf[pos] <= '9') {
                        buf[pos] = (unsigned char)('0' + xorshift_next() % 10);
                        break;
                    }
                break;
            }
            case 4:
                n = xorshift_next() % (n + 1);
                break; /* truncate */
            case 5: {  /* header length field */
                uint64_t h = 0;
                if (n >= 8) memcpy(&h, buf, 8);
                int r = (int)(xorshift_next() % 3);
                h = r == 0   ? h + (xorshift_next() % 17) - 8
                    : r == 1 ? xorshift_next() % (n + 16)
                             : xorshift_next();
                if (n >= 8) memcpy(buf, &h, 8);
                break;
            }
            default: { /* append garbage */
                size_t add = xorshift_next() % 64;
                for (size_t q = 0; q < add && n < sizeof buf; q++)
                    buf[n++] = (unsigned char)xorshift_next();
            }
            }
        }
        write_bytes(path, buf, n);
        StFile f;
        if (st_open(&f, path) == DR_OK) {
            accepted++;
            fuzz_check_accepted(&f, n, &bad);
            st_close(&f);
        } else {
            rejected++;
            const char *msg = dr_last_error();
            if (strncmp(msg, path, strlen(path)) != 0 || !is_zeroed(&f)) {
                if (badmsg++ == 0) printf("bad rejection message: '%s'\n", msg);
            }
        }
    }
    printf("fuzz: %d mutated files, %d accepted, %d rejected, %.1f s\n", iters, accepted, rejected,
           now_s() - t0);
    EXPECT(bad == 0, "%d accepted fuzz files had tensors outside the mapping or unreadable", bad);
    EXPECT(badmsg == 0, "%d rejections without the path in the message or with a dirty struct",
           badmsg);
    /* a fuzzer that only ever produced one outcome would not be testing the validator */
    EXPECT(accepted > 0 && rejected > 0, "fuzz outcomes: %d accepted, %d rejected", accepted,
           rejected);
}

int main(void) {
    test_quiet = 1;
    xorshift_seed(0x2545f4914f6cdd1dull);
    if (test_mkdtemp(g_dir, sizeof g_dir, "/tmp/denserl_test_st_XXXXXX") != 0) return 1;
    test_conversions();

    static RtData data;
    StEntry e[8];
    int n = make_entries(&data, e);
    char rt_path[512];
    dir_path(rt_path, sizeof rt_path, "roundtrip.safetensors");
    test_roundtrip(e, n, rt_path);
    test_write_errors();
    test_python(rt_path, e, n);
    test_bad_files();
    test_unusual_valid();
    test_fuzz();

    test_rmtree(g_dir);
    return test_summary();
}
