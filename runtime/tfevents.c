/* TensorBoard event files (tfevents.h): TFRecord framing and the few protocol buffer fields of
 * an Event that scalars need, written by hand (no protobuf library).
 *   Event:   wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
 *            summary = 5 (Summary)
 *   Summary: value = 1 (repeated Value)
 *   Value:   tag = 1 (string), simple_value = 2 (float) */
#include "tfevents.h"
#include <stdlib.h>
#include <string.h>
#include "check.h"

uint32_t tfevents_crc32c(const void *data, size_t n) {
    static uint32_t table[256];
    static int ready = 0;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* The CRC as TFRecord stores it: rotated right by 15 and offset. */
static uint32_t masked_crc(const void *data, size_t n) {
    const uint32_t c = tfevents_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A growing byte buffer: room for k more bytes. */
static uint8_t *grow(uint8_t **buf, size_t *n, size_t *cap, size_t k) {
    if (*n + k > *cap) {
        *cap = (*n + k) * 2 + 64;
        *buf = realloc(*buf, *cap);
        CHECK(*buf);
    }
    uint8_t *at = *buf + *n;
    *n += k;
    return at;
}

static void put_varint(uint8_t **buf, size_t *n, size_t *cap, uint64_t v) {
    do {
        *grow(buf, n, cap, 1) = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

/* Field `field` as length-delimited bytes. */
static void put_bytes(uint8_t **buf, size_t *n, size_t *cap, int field, const void *p, size_t k) {
    put_varint(buf, n, cap, (uint64_t)field << 3 | 2);
    put_varint(buf, n, cap, k);
    memcpy(grow(buf, n, cap, k), p, k);
}

/* One TFRecord of data to fp. */
static int put_record(FILE *fp, const uint8_t *data, size_t n) {
    uint8_t head[12], tail[4];
    put_le(head, n, 8);
    put_le(head + 8, masked_crc(head, 8), 4);
    put_le(tail, masked_crc(data, n), 4);
    if (fwrite(head, 1, 12, fp) != 12 || fwrite(data, 1, n, fp) != n || fwrite(tail, 1, 4, fp) != 4)
        return -1;
    return fflush(fp) == 0 ? 0 : -1;
}

/* An Event of wall_time, step and then the given fields (already encoded) to fp. */
static int put_event(FILE *fp, double wall_time, long long step, const uint8_t *rest, size_t k) {
    uint8_t *e = NULL;
    size_t n = 0, cap = 0;
    uint64_t bits;
    memcpy(&bits, &wall_time, 8);
    *grow(&e, &n, &cap, 1) = 1 << 3 | 1; /* wall_time: 64-bit */
    put_le(grow(&e, &n, &cap, 8), bits, 8);
    *grow(&e, &n, &cap, 1) = 2 << 3; /* step: varint */
    put_varint(&e, &n, &cap, (uint64_t)step);
    if (k) memcpy(grow(&e, &n, &cap, k), rest, k);
    const int st = put_record(fp, e, n);
    free(e);
    return st;
}

void tfevents_init(TfEvents *t, FILE *fp, int fresh) {
    memset(t, 0, sizeof *t);
    t->fp = fp;
    if (!fresh) return;
    uint8_t *f = NULL;
    size_t n = 0, cap = 0;
    static const char version[] = "brain.Event:2";
    put_bytes(&f, &n, &cap, 3, version, sizeof version - 1);
    put_event(fp, 0, 0, f, n);
    free(f);
}

void tfevents_add(TfEvents *t, const char *tag, double v) {
    uint8_t *val = NULL;
    size_t n = 0, cap = 0;
    const float x = (float)v;
    uint32_t bits;
    memcpy(&bits, &x, 4);
    put_bytes(&val, &n, &cap, 1, tag, strlen(tag));
    *grow(&val, &n, &cap, 1) = 2 << 3 | 5; /* simple_value: 32-bit */
    put_le(grow(&val, &n, &cap, 4), bits, 4);
    put_bytes(&t->buf, &t->n, &t->cap, 1, val, n); /* Summary.value */
    free(val);
    t->values++;
}

int tfevents_write(TfEvents *t, long long step, double wall_time) {
    if (!t->values) return 0;
    uint8_t *s = NULL;
    size_t n = 0, cap = 0;
    put_bytes(&s, &n, &cap, 5, t->buf, t->n); /* Event.summary */
    const int st = put_event(t->fp, wall_time, step, s, n);
    free(s);
    t->n = 0;
    t->values = 0;
    return st;
}

void tfevents_free(TfEvents *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}
