/* Data parallelism over runtime/comm.h (dist.h). */
#include "dist.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../runtime/check.h"
#include "../runtime/comm.h"
#include "../runtime/error.h"

static Comm *g_comm;
static int g_rank, g_size = 1, g_zero;
static size_t g_bucket_bytes = (size_t)25 << 20;

int dist_init(Backend be) {
    if (g_comm) return DR_OK;
    if (comm_init(&g_comm, "auto", be)) return DR_ERR;
    g_rank = comm_rank(g_comm);
    g_size = comm_size(g_comm);
    return DR_OK;
}

void dist_finalize(void) {
    comm_finalize(g_comm);
    g_comm = NULL;
    g_rank = 0;
    g_size = 1;
}

int dist_rank(void) {
    return g_rank;
}

int dist_size(void) {
    return g_size;
}

const char *dist_describe(void) {
    static char buf[64];
    if (g_size == 1) return "1 rank";
    snprintf(buf, sizeof buf, "%d ranks over %s", g_size, comm_name(g_comm));
    return buf;
}

void dist_rows(int r0, int n, int *lo, int *hi) {
    size_t a, b;
    comm_shard_range((size_t)n, g_rank, g_size, &a, &b);
    *lo = r0 + (int)a;
    *hi = r0 + (int)b;
}

/* The rank holding a row: the one whose share of the range's total tokens holds the row's
 * middle token (pre: tokens of the range's rows before it). Non-decreasing along the range,
 * so each rank's rows are contiguous. */
static int row_owner(long long pre, long long len, long long total, int size) {
    int r = (int)((long long)size * (2 * pre + len) / (2 * total));
    return r < size ? r : size - 1;
}

int dist_split_balanced(int n, const int *len, int size, int rank, int *lo, int *hi) {
    long long total = 0, pre = 0;
    for (int i = 0; i < n; i++) total += len[i] > 0 ? len[i] : 0;
    if (total == 0) return 0;
    *lo = *hi = n;
    for (int i = 0; i < n; i++) {
        const long long l = len[i] > 0 ? len[i] : 0;
        const int r = row_owner(pre, l, total, size);
        if (r >= rank && *lo == n) *lo = i;
        if (r > rank) {
            *hi = i;
            break;
        }
        pre += l;
    }
    return 1;
}

void dist_rows_balanced(int r0, int n, const int *len, int *lo, int *hi) {
    if (g_size > 1 && len && dist_split_balanced(n, len + r0, g_size, g_rank, lo, hi)) {
        *lo += r0;
        *hi += r0;
        return;
    }
    dist_rows(r0, n, lo, hi);
}

/* Sum over ranks of rows r0..r0+n-1 where each rank contributes only its rows [lo, hi). */
static void complete_rows(double *tmp, int r0, int n, int T, int lo, int hi) {
    for (int i = r0; i < r0 + n; i++)
        if (i < lo || i >= hi) memset(tmp + (size_t)(i - r0) * T, 0, sizeof(double) * T);
    comm_allreduce_sum_f64(g_comm, tmp, (size_t)n * T);
}

void dist_complete_split_f32(float *buf, int r0, int n, int T, int lo, int hi) {
    if (g_size == 1 || n <= 0) return;
    size_t m = (size_t)n * T;
    double *tmp = xmalloc(sizeof(double) * m);
    const float *src = buf + (size_t)r0 * T;
    for (size_t k = 0; k < m; k++) tmp[k] = src[k];
    complete_rows(tmp, r0, n, T, lo, hi);
    float *dst = buf + (size_t)r0 * T;
    for (size_t k = 0; k < m; k++) dst[k] = (float)tmp[k];
    free(tmp);
}

void dist_complete_rows_f32(float *buf, int r0, int n, int T) {
    int lo, hi;
    dist_rows(r0, n, &lo, &hi);
    dist_complete_split_f32(buf, r0, n, T, lo, hi);
}

void dist_complete_rows_i32(int *buf, int r0, int n, int T) {
    if (g_size == 1 || n <= 0) return;
    size_t m = (size_t)n * T;
    double *tmp = xmalloc(sizeof(double) * m);
    const int *src = buf + (size_t)r0 * T;
    for (size_t k = 0; k < m; k++) tmp[k] = src[k];
    int lo, hi;
    dist_rows(r0, n, &lo, &hi);
    complete_rows(tmp, r0, n, T, lo, hi);
    int *dst = buf + (size_t)r0 * T;
    for (size_t k = 0; k < m; k++) dst[k] = (int)tmp[k];
    free(tmp);
}

void dist_sum_f64(double *v, size_t n) {
    if (g_size > 1 && n) comm_allreduce_sum_f64(g_comm, v, n);
}

void dist_sum_grads(float *g, size_t n) {
    if (g_size > 1 && n) comm_allreduce_sum_f32(g_comm, g, n);
}

void dist_sum_grads_start(float *g, size_t n) {
    if (g_size > 1 && n) comm_allreduce_sum_f32_start(g_comm, g, n);
}

void dist_wait_grads(void) {
    if (g_size > 1) comm_wait_all(g_comm);
}

double dist_bytes_sent(void) {
    return g_comm ? (double)comm_bytes_sent(g_comm, COMM_OP_TOTAL) : 0.0;
}

void dist_abort(int code, const char *msg) {
    if (g_size > 1) comm_abort(g_comm, code, msg);
    fprintf(stderr, "%s\n", msg);
    exit(code);
}

void dist_set_zero_stage(int stage) {
    g_zero = stage;
}

int dist_zero_stage(void) {
    return g_zero;
}

void dist_set_bucket_bytes(size_t bytes) {
    g_bucket_bytes = bytes;
}

size_t dist_bucket_bytes(void) {
    return g_bucket_bytes;
}

void dist_shard(size_t n, size_t *lo, size_t *hi) {
    comm_shard_range(n, g_rank, g_size, lo, hi);
}

void dist_reduce_scatter_grads(float *g, size_t n) {
    if (g_size > 1 && n) comm_reduce_scatter_sum_f32(g_comm, g, n);
}

void dist_allgather_params(float *p, size_t n) {
    if (g_size > 1 && n) comm_allgather_f32(g_comm, p, n);
}

void dist_reduce_scatter_window(float *buf, size_t at, size_t len, size_t n) {
    if (g_size > 1 && len) comm_reduce_scatter_window_f32(g_comm, buf, at, len, n);
}

void dist_allgather_window(float *buf, size_t at, size_t len, size_t n) {
    if (g_size > 1 && len) comm_allgather_window_f32(g_comm, buf, at, len, n);
}

void dist_allgather_window_u16(uint16_t *buf, size_t at, size_t len, size_t n) {
    if (g_size > 1 && len) comm_allgather_window_u16(g_comm, buf, at, len, n);
}

int dist_max_int(int v) {
    if (g_size == 1) return v;
    float f = (float)v;
    comm_allreduce_max_f32(g_comm, &f, 1);
    return (int)f;
}
