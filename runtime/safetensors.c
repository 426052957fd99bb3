/* safetensors reading and writing. The reader maps the file and checks every header field
 * (lengths, JSON, dtypes, shapes against byte ranges, bounds, overlaps) before it hands out
 * a single pointer, so a hostile or truncated file ends in DR_ERR, never in a crash. The
 * writer builds the header with jansson and goes through fileio.h so it is atomic. Tensor
 * data is not padded for alignment (the format requires contiguous offsets), so data
 * pointers may be unaligned and are only ever read through memcpy here. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "error.h"
#include "fileio.h"
#include "safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian)"
#endif

/* The same cap the reference implementation uses: a header beyond it is a corrupt length,
 * not a real model. */
#define ST_MAX_HEADER 100000000ull
/* Below this many elements, starting OpenMP threads costs more than the conversion. */
#define ST_OMP_MIN 65536

static const char *const k_dtype_names[] = {"F32", "F16", "BF16", "I32",
                                            "I64", "F64", "U8",   "BOOL"};
static const size_t k_dtype_sizes[] = {4, 2, 2, 4, 8, 8, 1, 1};
#define ST_NUM_DTYPES ((int)(sizeof k_dtype_sizes / sizeof k_dtype_sizes[0]))

size_t st_dtype_size(StDtype dt) {
    return ((int)dt >= 0 && (int)dt < ST_NUM_DTYPES) ? k_dtype_sizes[dt] : 0;
}

const char *st_dtype_name(StDtype dt) {
    return ((int)dt >= 0 && (int)dt < ST_NUM_DTYPES) ? k_dtype_names[dt] : "?";
}

static int dtype_from_name(const char *s, StDtype *out) {
    for (int i = 0; i < ST_NUM_DTYPES; i++) {
        if (strcmp(s, k_dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 1;
        }
    }
    return 0;
}

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---- scalar conversions ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep sign and top payload, force quiet */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* round to nearest even: add just under half an ulp, plus one more when the kept lsb is
     * odd; overflow past the largest bf16 correctly carries into infinity */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        /* subnormal: normalise so the leading one becomes the implicit bit */
        int shifts = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shifts++;
        }
        mant &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(113 - shifts) << 23) | (mant << 13));
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf, or NaN kept */
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t st_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                                   /* below 2^-14: f16 subnormal */
        uint32_t e = x >> 23;
        if (e < 102) return sign; /* below 2^-25 (incl. f32 subnormals): rounds to zero */
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r); /* r == 0x400 is exactly the smallest normal */
    }
    uint32_t r = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ffu);
    uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++; /* carry may bump the exponent */
    return (uint16_t)(sign | r);
}

/* ---- reader ---- */

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

void st_close(StFile *f) {
    if (f->map) munmap(f->map, f->map_size);
    if (f->tensors)
        for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->metadata_json);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

static char *json_to_text(const json_t *v) {
    size_t need = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (need == 0) return NULL;
    char *buf = xmalloc(need + 1);
    json_dumpb(v, buf, need, JSON_COMPACT);
    buf[need] = '\0';
    return buf;
}

static void format_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Names can be arbitrary header text; a bounded copy keeps messages readable. */
#define NAMEFMT "%.200s"

static int check_metadata(const char *path, const json_t *meta, const char *what) {
    if (!json_is_object(meta))
        return dr_error("%s: %s must be an object of string values", path, what);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)meta, k, v) {
        if (!json_is_string(v))
            return dr_error("%s: %s key '" NAMEFMT "' must have a string value", path, what, k);
    }
    return DR_OK;
}

static int get_int(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return 0;
    *out = (int64_t)json_integer_value(v);
    return 1;
}

typedef struct {
    int64_t begin, end;
    int idx;
} Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int parse_tensor(const char *path, const char *name, const json_t *obj, size_t data_size,
                        const unsigned char *data, StTensor *t, Span *span) {
    if (!json_is_object(obj))
        return dr_error("%s: tensor '" NAMEFMT "': expected an object with dtype, shape and "
                        "data_offsets",
                        path, name);
    const json_t *jd = json_object_get(obj, "dtype");
    const json_t *js = json_object_get(obj, "shape");
    const json_t *jo = json_object_get(obj, "data_offsets");
    if (!jd) return dr_error("%s: tensor '" NAMEFMT "': missing \"dtype\"", path, name);
    if (!json_is_string(jd))
        return dr_error("%s: tensor '" NAMEFMT "': \"dtype\" must be a string", path, name);
    if (!dtype_from_name(json_string_value(jd), &t->dtype))
        return dr_error("%s: tensor '" NAMEFMT "': unknown dtype '%.40s' (expected one of F32, "
                        "F16, BF16, I32, I64, F64, U8, BOOL)",
                        path, name, json_string_value(jd));
    if (!js) return dr_error("%s: tensor '" NAMEFMT "': missing \"shape\"", path, name);
    if (!json_is_array(js))
        return dr_error("%s: tensor '" NAMEFMT "': \"shape\" must be a list of non-negative "
                        "integers",
                        path, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return dr_error("%s: tensor '" NAMEFMT "': shape has %zu dimensions, at most %d are "
                        "supported",
                        path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        int64_t d;
        if (!get_int(json_array_get(js, i), &d))
            return dr_error("%s: tensor '" NAMEFMT "': shape[%zu] must be an integer", path, name,
                            i);
        if (d < 0)
            return dr_error("%s: tensor '" NAMEFMT "': shape[%zu] is %lld, dimensions cannot be "
                            "negative",
                            path, name, i, (long long)d);
        t->shape[i] = d;
    }
    if (!jo) return dr_error("%s: tensor '" NAMEFMT "': missing \"data_offsets\"", path, name);
    int64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !get_int(json_array_get(jo, 0), &b) ||
        !get_int(json_array_get(jo, 1), &e))
        return dr_error("%s: tensor '" NAMEFMT "': \"data_offsets\" must be a list of two "
                        "integers [begin, end]",
                        path, name);
    if (b < 0 || e < b || (uint64_t)e > data_size)
        return dr_error("%s: tensor '" NAMEFMT "': data_offsets [%lld, %lld] out of range (data "
                        "section is %zu bytes)",
                        path, name, (long long)b, (long long)e, data_size);
    /* element count and byte size with overflow checks: a shape such as [2^40, 2^40] must
     * not wrap around to match a small range */
    uint64_t numel = 1, esize = st_dtype_size(t->dtype);
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (d == 0) {
            numel = 0;
            overflow = 0;
            break;
        }
        if (numel > INT64_MAX / d)
            overflow = 1;
        else
            numel *= d;
    }
    if (!overflow && numel > INT64_MAX / esize) overflow = 1;
    uint64_t need = numel * esize;
    if (overflow || need != (uint64_t)(e - b)) {
        char sh[256];
        format_shape(sh, sizeof sh, t->shape, t->ndim);
        if (overflow)
            return dr_error("%s: tensor '" NAMEFMT "': shape %s is too large (more than 2^63 "
                            "bytes) but data_offsets span %lld",
                            path, name, sh, (long long)(e - b));
        return dr_error("%s: tensor '" NAMEFMT "': shape %s needs %llu bytes but data_offsets "
                        "span %lld",
                        path, name, sh, (unsigned long long)need, (long long)(e - b));
    }
    t->data = data + b;
    t->nbytes = (size_t)need;
    span->begin = b;
    span->end = e;
    return DR_OK;
}

static int parse_header(StFile *f, const unsigned char *hdr, size_t hlen, size_t data_size,
                        const unsigned char *data) {
    const char *path = f->path;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, hlen, 0, &jerr);
    if (!root)
        return dr_error("%s: header is not valid JSON (line %d: %s)", path, jerr.line, jerr.text);
    int rc = DR_OK;
    Span *spans = NULL;
    if (!json_is_object(root)) {
        rc = dr_error("%s: header must be a JSON object of tensors", path);
        goto done;
    }
    size_t count = json_object_size(root);
    f->tensors = xcalloc(count ? count : 1, sizeof(StTensor));
    spans = xcalloc(count ? count : 1, sizeof(Span));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = check_metadata(path, val, "\"__metadata__\"")) != DR_OK) goto done;
            free(f->metadata_json);
            f->metadata_json = json_to_text(val);
            continue;
        }
        StTensor *t = &f->tensors[f->n];
        t->name = xstrdup(key);
        f->n++;
        spans[f->n - 1].idx = f->n - 1;
        if ((rc = parse_tensor(path, key, val, data_size, data, t, &spans[f->n - 1])) != DR_OK)
            goto done;
    }
    /* Offsets may come in any order; after sorting, each non-empty range must start at or
     * after the end of the previous non-empty one. Empty tensors occupy no bytes. */
    qsort(spans, (size_t)f->n, sizeof(Span), span_cmp);
    int prev = -1;
    for (int i = 0; i < f->n; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev >= 0 && spans[i].begin < spans[prev].end) {
            rc = dr_error("%s: tensors '" NAMEFMT "' and '" NAMEFMT "' overlap ([%lld, %lld] and "
                          "[%lld, %lld])",
                          path, f->tensors[spans[prev].idx].name, f->tensors[spans[i].idx].name,
                          (long long)spans[prev].begin, (long long)spans[prev].end,
                          (long long)spans[i].begin, (long long)spans[i].end);
            goto done;
        }
        prev = i;
    }
done:
    free(spans);
    json_decref(root);
    return rc;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dr_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return dr_error("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return dr_error("%s: expected a regular safetensors file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return dr_error("%s: file is %zu bytes, shorter than the 8-byte header length", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED) return dr_error("%s: cannot map: %s", path, strerror(map_errno));
    f->path = xstrdup(path);
    f->map = map;
    f->map_size = size;
    const unsigned char *bytes = map;
    uint64_t hlen;
    memcpy(&hlen, bytes, 8);
    int rc;
    if (hlen == 0) {
        rc = dr_error("%s: header length is 0 (expected a JSON header)", path);
    } else if (hlen > size - 8) {
        rc = dr_error("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                      (unsigned long long)hlen, size);
    } else if (hlen > ST_MAX_HEADER) {
        rc = dr_error("%s: header length %llu is larger than the %llu-byte limit", path,
                      (unsigned long long)hlen, ST_MAX_HEADER);
    } else {
        rc = parse_header(f, bytes + 8, (size_t)hlen, size - 8 - (size_t)hlen, bytes + 8 + hlen);
    }
    if (rc != DR_OK) st_close(f);
    return rc;
}

int st_read_f32(const StTensor *t, float *out) {
    int64_t n = st_numel(t);
    size_t es = st_dtype_size(t->dtype);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return dr_error("tensor '" NAMEFMT "': dtype %s cannot be read as fp32 (expected F32, "
                        "F16 or BF16)",
                        t->name ? t->name : "?", st_dtype_name(t->dtype));
    if (n < 0 || (uint64_t)n * es != t->nbytes)
        return dr_error("tensor '" NAMEFMT "': %zu bytes do not match its shape",
                        t->name ? t->name : "?", t->nbytes);
    if (n == 0) return DR_OK;
    const unsigned char *p = t->data;
    if (t->dtype == ST_F32) {
        memcpy(out, p, t->nbytes);
    } else if (t->dtype == ST_F16) {
#pragma omp parallel for schedule(static) if (n >= ST_OMP_MIN)
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = st_f16_to_f32(h);
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= ST_OMP_MIN)
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = st_bf16_to_f32(h);
        }
    }
    return DR_OK;
}

/* ---- writer ---- */

static int entry_to_json(const char *path, const StEntry *e, uint64_t *offset, json_t *hdr) {
    if (!e->name) return dr_error("%s: a tensor has no name", path);
    const char *name = e->name;
    if (strcmp(name, "__metadata__") == 0)
        return dr_error("%s: \"__metadata__\" cannot be a tensor name", path);
    if (json_object_get(hdr, name))
        return dr_error("%s: tensor name '" NAMEFMT "' appears twice", path, name);
    int ok = (e->src_dtype == ST_F32 && (e->store_dtype == ST_F32 || e->store_dtype == ST_BF16 ||
                                         e->store_dtype == ST_F16)) ||
             (e->src_dtype == ST_I32 && e->store_dtype == ST_I32);
    if (!ok)
        return dr_error("%s: tensor '" NAMEFMT "': cannot store %s data as %s (expected F32 "
                        "data as F32, BF16 or F16, or I32 data as I32)",
                        path, name, st_dtype_name(e->src_dtype), st_dtype_name(e->store_dtype));
    if (e->ndim < 0 || e->ndim > ST_MAX_DIMS)
        return dr_error("%s: tensor '" NAMEFMT "': ndim %d (expected 0..%d)", path, name, e->ndim,
                        ST_MAX_DIMS);
    uint64_t numel = 1;
    json_t *shape = json_array();
    for (int i = 0; i < e->ndim; i++) {
        int64_t d = e->shape[i];
        if (d < 0) {
            json_decref(shape);
            return dr_error("%s: tensor '" NAMEFMT "': shape[%d] is %lld, dimensions cannot be "
                            "negative",
                            path, name, i, (long long)d);
        }
        if (d > 0 && numel > (1ull << 60) / (uint64_t)d) {
            json_decref(shape);
            return dr_error("%s: tensor '" NAMEFMT "': shape is too large", path, name);
        }
        numel *= (uint64_t)d;
        json_array_append_new(shape, json_integer((json_int_t)d));
    }
    if (numel > 0 && !e->data) {
        json_decref(shape);
        return dr_error("%s: tensor '" NAMEFMT "': data is NULL", path, name);
    }
    uint64_t nbytes = numel * st_dtype_size(e->store_dtype);
    json_t *t = json_object();
    json_object_set_new(t, "dtype", json_string(st_dtype_name(e->store_dtype)));
    json_object_set_new(t, "shape", shape);
    json_object_set_new(t, "data_offsets",
                        json_pack("[II]", (json_int_t)*offset, (json_int_t)(*offset + nbytes)));
    if (json_object_set_new(hdr, name, t) != 0)
        return dr_error("%s: tensor name '" NAMEFMT "' is not valid UTF-8", path, name);
    *offset += nbytes;
    return DR_OK;
}

static int write_entry_data(AtomicFile *af, const StEntry *e) {
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) numel *= (uint64_t)e->shape[i];
    if (numel == 0) return DR_OK;
    if (e->store_dtype == ST_F32 || e->store_dtype == ST_I32)
        return fwrite(e->data, 4, numel, af->fp) == numel ? DR_OK : DR_ERR;
    /* half precision: convert in chunks so a large tensor needs no full-size copy */
    enum { CHUNK = 1 << 16 };
    uint16_t *buf = xmalloc(CHUNK * sizeof(uint16_t));
    const float *src = e->data;
    int rc = DR_OK;
    for (uint64_t s = 0; s < numel && rc == DR_OK; s += CHUNK) {
        size_t m = (size_t)(numel - s < CHUNK ? numel - s : CHUNK);
        if (e->store_dtype == ST_BF16)
            for (size_t i = 0; i < m; i++) buf[i] = st_f32_to_bf16(src[s + i]);
        else
            for (size_t i = 0; i < m; i++) buf[i] = st_f32_to_f16(src[s + i]);
        if (fwrite(buf, 2, m, af->fp) != m) rc = DR_ERR;
    }
    free(buf);
    return rc;
}

int st_write(const char *path, const StEntry *entries, int n, const char *metadata_json) {
    if (n < 0 || (n > 0 && !entries))
        return dr_error("%s: expected a list of tensors to write", path);
    json_t *hdr = json_object();
    int rc = DR_OK;
    if (metadata_json) {
        json_error_t jerr;
        json_t *meta = json_loads(metadata_json, 0, &jerr);
        if (!meta) {
            rc = dr_error("%s: metadata is not valid JSON (line %d: %s)", path, jerr.line,
                          jerr.text);
            goto fail;
        }
        if ((rc = check_metadata(path, meta, "metadata")) != DR_OK) {
            json_decref(meta);
            goto fail;
        }
        json_object_set_new(hdr, "__metadata__", meta);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++)
        if ((rc = entry_to_json(path, &entries[i], &offset, hdr)) != DR_OK) goto fail;
    char *text = json_to_text(hdr);
    json_decref(hdr);
    hdr = NULL;
    if (!text) return dr_error("%s: cannot encode the header as JSON", path);
    size_t len = strlen(text);
    size_t padded = (len + 7) / 8 * 8; /* keeps the data section 8-byte aligned */
    char *header = xmalloc(padded);
    memcpy(header, text, len);
    memset(header + len, ' ', padded - len);
    free(text);

    AtomicFile af;
    if (atomic_open(&af, path) != DR_OK) {
        free(header);
        return DR_ERR;
    }
    uint64_t hlen = padded;
    int ok = fwrite(&hlen, 8, 1, af.fp) == 1 && fwrite(header, 1, padded, af.fp) == padded;
    free(header);
    for (int i = 0; ok && i < n; i++) ok = write_entry_data(&af, &entries[i]) == DR_OK;
    if (!ok) {
        int e = errno;
        atomic_abort(&af);
        return dr_error("%s: write failed: %s", path, e ? strerror(e) : "I/O error");
    }
    return atomic_commit(&af);
fail:
    json_decref(hdr);
    return rc;
}
