/* The communicator's public face: choosing a transport, the single-rank case, and every
 * host collective built from the transport's two exchanges (alltoallv, allgatherv). Sums
 * are reduce-scatter then allgather, and the reduce step adds the ranks' pieces in rank
 * order on the shard's owner, so the result never depends on how MPI routes messages or on
 * timing. GPU buffers go to NCCL when it is on, else through a host copy. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "check.h"
#include "comm_internal.h"
#include "error.h"

double comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void comm_shard_range(size_t n, int rank, int size, size_t *lo, size_t *hi) {
    CHECK(size >= 1 && rank >= 0 && rank < size);
    /* n*r/size without forming n*r: with n = q*size + m it is q*r + m*r/size exactly */
    size_t q = n / (size_t)size, m = n % (size_t)size;
    *lo = q * (size_t)rank + m * (size_t)rank / (size_t)size;
    *hi = q * (size_t)(rank + 1) + m * (size_t)(rank + 1) / (size_t)size;
}

static int env_rank_guess(void) {
    const char *names[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "DENSERL_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

void comm_abort(Comm *c, int code, const char *message) {
    if (code == 0) code = 1;
    fprintf(stderr, "rank %d: %s\n", c ? c->rank : env_rank_guess(), message);
    fflush(stderr);
    fflush(stdout);
    if (c && c->t) c->t->abort(c, code, message);
    exit(code);
}

void comm_failf(Comm *c, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    comm_abort(c, 1, msg);
}

/* ---- choosing and opening ---- */

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* "auto": MPI under mpirun, files when a rendezvous directory is given, else one rank. A
 * multi-rank mpirun launch of a binary without MPI is an error: each rank would train alone
 * believing it is rank 0 of 1. */
static int resolve_auto(const char **kind) {
    const char *launched = env_nonempty("OMPI_COMM_WORLD_SIZE");
    if (!launched) launched = env_nonempty("PMI_SIZE");
    if (launched && comm_mpi_built()) {
        *kind = "mpi";
    } else if (launched && atoi(launched) > 1) {
        return dr_error("communicator \"auto\": launched by mpirun with %s ranks, but this binary "
                        "was built without MPI (install libopenmpi-dev and rebuild)",
                        launched);
    } else if (env_nonempty("DENSERL_RENDEZVOUS_DIR")) {
        *kind = "file";
    } else {
        *kind = "single";
    }
    return DR_OK;
}

static int read_timeout(double *out) {
    *out = 300;
    const char *v = env_nonempty("DENSERL_COMM_TIMEOUT");
    if (!v) return DR_OK;
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    if (errno || *end || !(t > 0) || !isfinite(t))
        return dr_error("DENSERL_COMM_TIMEOUT=\"%s\": expected a positive number of seconds", v);
    *out = t;
    return DR_OK;
}

int comm_init(Comm **out, const char *kind, Backend be) {
    *out = NULL;
    if (!kind) kind = "auto";
    if (strcmp(kind, "auto") == 0 && resolve_auto(&kind) != DR_OK) return DR_ERR;
#ifndef DENSERL_CUDA
    if (be != BACKEND_CPU) return dr_error("communicator: this binary was built without CUDA");
#endif
    Comm *c = xcalloc(1, sizeof *c);
    c->be = be;
    c->size = 1;
    int rc = read_timeout(&c->timeout_s);
    if (rc == DR_OK) {
        if (strcmp(kind, "single") == 0) {
            /* nothing to open */
        } else if (strcmp(kind, "mpi") == 0) {
            rc = comm_mpi_open(c);
        } else if (strcmp(kind, "file") == 0) {
            rc = comm_file_open(c);
        } else {
            rc = dr_error("communicator \"%s\": expected \"auto\", \"single\", \"mpi\" or \"file\"",
                          kind);
        }
    }
    if (rc != DR_OK) {
        free(c);
        return DR_ERR;
    }
    snprintf(c->name, sizeof c->name, "%s", kind);
    c->round_bytes = COMM_ROUND_BYTES;
    const char *rb = env_nonempty("DENSERL_COMM_ROUND_BYTES");
    if (rb && strtoull(rb, NULL, 10) > 0 && strtoull(rb, NULL, 10) < COMM_ROUND_BYTES)
        c->round_bytes = (size_t)strtoull(rb, NULL, 10);
    c->cnt_a = xcalloc((size_t)c->size, sizeof *c->cnt_a);
    c->cnt_b = xcalloc((size_t)c->size, sizeof *c->cnt_b);
#ifdef DENSERL_CUDA
    if (be == BACKEND_CUDA) {
        comm_cuda_select_device(c);
        const char *use = env_nonempty("DENSERL_NCCL");
        size_t id_bytes = comm_nccl_id_bytes();
        /* one rank needs no NCCL unless DENSERL_NCCL=1 asks for it (a check of the path) */
        int want = c->size > 1 ? !(use && strcmp(use, "0") == 0) : use && strcmp(use, "1") == 0;
        if (want && id_bytes) {
            unsigned char id[512];
            CHECK(id_bytes <= sizeof id);
            if (c->rank == 0) comm_nccl_new_id(id);
            if (c->size > 1) c->t->broadcast(c, id, id_bytes);
            comm_nccl_open(c, id);
            snprintf(c->name, sizeof c->name, "%s+nccl", kind);
        }
    }
#endif
    *out = c;
    return DR_OK;
}

void comm_finalize(Comm *c) {
    if (!c) return;
#ifdef DENSERL_CUDA
    if (c->nccl) comm_nccl_close(c);
#endif
    if (c->t) c->t->finalize(c);
    free(c->sbuf);
    free(c->rbuf);
    free(c->stage);
    free(c->deferred);
    free(c->cnt_a);
    free(c->cnt_b);
    free(c);
}

int comm_rank(const Comm *c) {
    return c->rank;
}
int comm_size(const Comm *c) {
    return c->size;
}
int comm_local_rank(const Comm *c) {
    return c->local_rank;
}
const char *comm_name(const Comm *c) {
    return c->name;
}

/* ---- counters ---- */

const char *comm_op_name(CommOp op) {
    static const char *names[] = {"allreduce", "reduce_scatter", "allgather", "broadcast", "total"};
    return (unsigned)op <= COMM_OP_TOTAL ? names[op] : "?";
}

static uint64_t counter_sum(const uint64_t *v, CommOp op) {
    if (op != COMM_OP_TOTAL) return (unsigned)op < COMM_OP_N ? v[op] : 0;
    uint64_t s = 0;
    for (int k = 0; k < COMM_OP_N; k++) s += v[k];
    return s;
}
uint64_t comm_bytes_sent(const Comm *c, CommOp op) {
    return counter_sum(c->bytes, op);
}
uint64_t comm_calls(const Comm *c, CommOp op) {
    return counter_sum(c->calls, op);
}

void comm_reset_counters(Comm *c) {
    memset(c->bytes, 0, sizeof c->bytes);
    memset(c->calls, 0, sizeof c->calls);
}

static size_t own_count(const Comm *c, size_t n) {
    size_t lo, hi;
    comm_shard_range(n, c->rank, c->size, &lo, &hi);
    return hi - lo;
}
static uint64_t rs_volume(const Comm *c, size_t n, size_t es) {
    return (uint64_t)(n - own_count(c, n)) * es;
}
static uint64_t ag_volume(const Comm *c, size_t n, size_t es) {
    return (uint64_t)own_count(c, n) * (uint64_t)(c->size - 1) * es;
}
static void count(Comm *c, CommOp op, uint64_t bytes) {
    c->calls[op]++;
    if (c->size > 1) c->bytes[op] += bytes;
}

/* ---- host collectives over the transport ---- */

typedef void (*Combine)(void *acc, const void *x, size_t n);

static void sum_f32(void *acc_, const void *x_, size_t n) {
    float *acc = acc_;
    const float *x = x_;
    for (size_t i = 0; i < n; i++) acc[i] = acc[i] + x[i];
}
static void sum_f64(void *acc_, const void *x_, size_t n) {
    double *acc = acc_;
    const double *x = x_;
    for (size_t i = 0; i < n; i++) acc[i] = acc[i] + x[i];
}
static void max_f32(void *acc_, const void *x_, size_t n) {
    float *acc = acc_;
    const float *x = x_;
    for (size_t i = 0; i < n; i++)
        if (!isnan(acc[i]) && (isnan(x[i]) || x[i] > acc[i])) acc[i] = x[i];
}

/* Round buffers of at least bytes each (bytes <= round_bytes); grown, never shrunk,
 * so a training loop stops allocating after its first step. */
static void round_buffers(Comm *c, size_t bytes) {
    if (bytes <= c->round_cap) return;
    free(c->sbuf);
    free(c->rbuf);
    c->sbuf = xmalloc(bytes);
    c->rbuf = xmalloc(bytes);
    c->round_cap = bytes;
}

/* Elements per rank and round: bounded so one round moves at most COMM_ROUND_BYTES. */
static size_t round_elems(const Comm *c, size_t max_count, size_t es) {
    size_t b = c->round_bytes / (es * (size_t)c->size);
    if (b < 1) b = 1;
    return b < max_count ? b : max_count;
}

static size_t clamp_len(size_t count, size_t k, size_t b) {
    if (count <= k) return 0;
    return count - k < b ? count - k : b;
}

void comm_window_part(size_t n, size_t at, size_t len, int r, int size, size_t *lo, size_t *hi) {
    size_t a, b;
    comm_shard_range(n, r, size, &a, &b);
    a = a > at ? a : at;
    b = b < at + len ? b : at + len;
    *lo = a < b ? a - at : 0;
    *hi = a < b ? b - at : 0;
}

/* The longest part any rank owns of the window. */
static size_t window_max(size_t n, size_t at, size_t len, int size) {
    size_t m = 0;
    for (int r = 0; r < size; r++) {
        size_t lo, hi;
        comm_window_part(n, at, len, r, size, &lo, &hi);
        if (hi - lo > m) m = hi - lo;
    }
    return m;
}

/* After it, this rank's part of the window buf (elements [at, at + len) of a flat buffer of n
 * elements of es bytes, host) holds x_0 op x_1 op ... op x_{size-1}, combined left to right.
 * Each round sends piece r of every part to its owner r, who combines the pieces in rank
 * order. The whole buffer is the window at 0 of length n. */
static void host_reduce_scatter(Comm *c, void *buf_, size_t at, size_t len, size_t n, size_t es,
                                Combine combine) {
    unsigned char *buf = buf_;
    const int size = c->size, me = c->rank;
    size_t lo_me, hi_me, max_count = window_max(n, at, len, size);
    comm_window_part(n, at, len, me, size, &lo_me, &hi_me);
    size_t b = round_elems(c, max_count, es), stride = b * es;
    round_buffers(c, stride * (size_t)size);
    for (size_t k = 0; k < max_count; k += b) {
        size_t mine = clamp_len(hi_me - lo_me, k, b);
        for (int r = 0; r < size; r++) {
            size_t lo, hi;
            comm_window_part(n, at, len, r, size, &lo, &hi);
            size_t part = clamp_len(hi - lo, k, b);
            c->cnt_a[r] = part * es;
            c->cnt_b[r] = mine * es;
            if (part) memcpy(c->sbuf + (size_t)r * stride, buf + (lo + k) * es, part * es);
        }
        c->t->alltoallv(c, c->sbuf, c->cnt_a, c->rbuf, c->cnt_b, stride);
        if (!mine) continue;
        unsigned char *out = buf + (lo_me + k) * es;
        memcpy(out, c->rbuf, mine * es);
        for (int r = 1; r < size; r++) combine(out, c->rbuf + (size_t)r * stride, mine);
    }
}

/* Every rank's part of the window buf (host) to every rank. */
static void host_allgather(Comm *c, void *buf_, size_t at, size_t len, size_t n, size_t es) {
    unsigned char *buf = buf_;
    const int size = c->size, me = c->rank;
    size_t max_count = window_max(n, at, len, size);
    size_t b = round_elems(c, max_count, es), stride = b * es;
    round_buffers(c, stride * (size_t)size);
    for (size_t k = 0; k < max_count; k += b) {
        for (int r = 0; r < size; r++) {
            size_t lo, hi;
            comm_window_part(n, at, len, r, size, &lo, &hi);
            c->cnt_a[r] = clamp_len(hi - lo, k, b) * es;
            if (r == me && c->cnt_a[r])
                memcpy(c->rbuf + (size_t)r * stride, buf + (lo + k) * es, c->cnt_a[r]);
        }
        c->t->allgatherv(c, c->rbuf, c->cnt_a, stride);
        for (int r = 0; r < size; r++) {
            if (r == me || !c->cnt_a[r]) continue;
            size_t lo, hi;
            comm_window_part(n, at, len, r, size, &lo, &hi);
            memcpy(buf + (lo + k) * es, c->rbuf + (size_t)r * stride, c->cnt_a[r]);
        }
    }
}

static void host_broadcast(Comm *c, void *buf, size_t bytes) {
    for (size_t k = 0; k < bytes; k += c->round_bytes) {
        size_t len = bytes - k < c->round_bytes ? bytes - k : c->round_bytes;
        c->t->broadcast(c, (unsigned char *)buf + k, len);
    }
}

/* A host view of a backend buffer of the given bytes: the buffer itself on the CPU, else the
 * staging copy (filled from the device when fill is set). */
static void *host_view(Comm *c, void *buf, size_t bytes, int fill) {
    if (c->be == BACKEND_CPU) return buf;
    if (bytes > c->stage_cap) {
        free(c->stage);
        c->stage = xmalloc(bytes);
        c->stage_cap = bytes;
    }
    if (fill) be_to_host(c->be, c->stage, buf, bytes);
    return c->stage;
}

/* ---- public collectives ---- */

void comm_allreduce_sum_f32(Comm *c, float *buf, size_t n) {
    count(c, COMM_OP_ALLREDUCE, rs_volume(c, n, 4) + ag_volume(c, n, 4));
    if ((c->size == 1 && !c->nccl) || n == 0) return;
#ifdef DENSERL_CUDA
    if (c->nccl) {
        comm_nccl_allreduce_sum_f32(c, buf, n);
        return;
    }
#endif
    float *h = host_view(c, buf, n * sizeof(float), 1);
    host_reduce_scatter(c, h, 0, n, n, sizeof(float), sum_f32);
    host_allgather(c, h, 0, n, n, sizeof(float));
    if (h != buf) be_to_device(c->be, buf, h, n * sizeof(float));
}

void comm_allreduce_sum_f32_start(Comm *c, float *buf, size_t n) {
    if ((c->size == 1 && !c->nccl) || n == 0) {
        count(c, COMM_OP_ALLREDUCE, 0);
        return;
    }
#ifdef DENSERL_CUDA
    if (c->nccl) {
        count(c, COMM_OP_ALLREDUCE, rs_volume(c, n, 4) + ag_volume(c, n, 4));
        comm_nccl_allreduce_start(c, buf, n);
        return;
    }
#endif
    if (c->n_deferred == c->deferred_cap) {
        size_t cap = c->deferred_cap ? 2 * c->deferred_cap : 16;
        void *grown = xmalloc(cap * sizeof *c->deferred);
        if (c->n_deferred) memcpy(grown, c->deferred, c->n_deferred * sizeof *c->deferred);
        free(c->deferred);
        c->deferred = grown;
        c->deferred_cap = cap;
    }
    c->deferred[c->n_deferred].buf = buf;
    c->deferred[c->n_deferred].n = n;
    c->n_deferred++;
}

static int by_address(const void *a, const void *b) {
    const uintptr_t x = (uintptr_t)((const CommDeferred *)a)->buf;
    const uintptr_t y = (uintptr_t)((const CommDeferred *)b)->buf;
    return x < y ? -1 : x > y;
}

void comm_wait_all(Comm *c) {
#ifdef DENSERL_CUDA
    if (c->nccl) comm_nccl_wait_all(c);
#endif
    /* Deferred sums in address order, adjacent ones merged (the layers' slices of one
     * gradient buffer become one sum): each element is still summed once, in rank order,
     * and every rank holds the same list. Counted by the synchronous sums. */
    size_t n = c->n_deferred, k = 0;
    qsort(c->deferred, n, sizeof *c->deferred, by_address);
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && c->deferred[k - 1].buf + c->deferred[k - 1].n == c->deferred[i].buf)
            c->deferred[k - 1].n += c->deferred[i].n;
        else
            c->deferred[k++] = c->deferred[i];
    }
    for (size_t i = 0; i < k; i++) comm_allreduce_sum_f32(c, c->deferred[i].buf, c->deferred[i].n);
    c->n_deferred = 0;
}

void comm_reduce_scatter_window_f32(Comm *c, float *buf, size_t at, size_t len, size_t n) {
    size_t lo, hi;
    comm_window_part(n, at, len, c->rank, c->size, &lo, &hi);
    count(c, COMM_OP_REDUCE_SCATTER, (uint64_t)(len - (hi - lo)) * 4);
    if ((c->size == 1 && !c->nccl) || len == 0) return;
#ifdef DENSERL_CUDA
    if (c->nccl) {
        comm_nccl_reduce_scatter_sum_f32(c, buf, at, len, n);
        return;
    }
#endif
    float *h = host_view(c, buf, len * sizeof(float), 1);
    host_reduce_scatter(c, h, at, len, n, sizeof(float), sum_f32);
    if (h != buf) be_to_device(c->be, buf + lo, h + lo, (hi - lo) * sizeof(float));
}

void comm_reduce_scatter_sum_f32(Comm *c, float *buf, size_t n) {
    comm_reduce_scatter_window_f32(c, buf, 0, n, n);
}

/* The window allgather for elements of es bytes (4 or 2). */
static void allgather_window(Comm *c, void *buf_, size_t at, size_t len, size_t n, size_t es) {
    unsigned char *buf = buf_;
    size_t lo, hi;
    comm_window_part(n, at, len, c->rank, c->size, &lo, &hi);
    count(c, COMM_OP_ALLGATHER, (uint64_t)(hi - lo) * (uint64_t)(c->size - 1) * es);
    if ((c->size == 1 && !c->nccl) || len == 0) return;
#ifdef DENSERL_CUDA
    if (c->nccl) {
        comm_nccl_allgather(c, buf, at, len, n, es);
        return;
    }
#endif
    unsigned char *h = host_view(c, buf, len * es, 0);
    if (h != buf) be_to_host(c->be, h + lo * es, buf + lo * es, (hi - lo) * es);
    host_allgather(c, h, at, len, n, es);
    if (h != buf) be_to_device(c->be, buf, h, len * es);
}

void comm_allgather_window_f32(Comm *c, float *buf, size_t at, size_t len, size_t n) {
    allgather_window(c, buf, at, len, n, sizeof(float));
}

void comm_allgather_window_u16(Comm *c, uint16_t *buf, size_t at, size_t len, size_t n) {
    allgather_window(c, buf, at, len, n, sizeof(uint16_t));
}

void comm_allgather_f32(Comm *c, float *buf, size_t n) {
    comm_allgather_window_f32(c, buf, 0, n, n);
}

void comm_allreduce_sum_f64(Comm *c, double *buf, size_t n) {
    count(c, COMM_OP_ALLREDUCE, rs_volume(c, n, 8) + ag_volume(c, n, 8));
    if (c->size == 1 || n == 0) return;
    host_reduce_scatter(c, buf, 0, n, n, sizeof(double), sum_f64);
    host_allgather(c, buf, 0, n, n, sizeof(double));
}

void comm_allreduce_max_f32(Comm *c, float *buf, size_t n) {
    count(c, COMM_OP_ALLREDUCE, rs_volume(c, n, 4) + ag_volume(c, n, 4));
    if (c->size == 1 || n == 0) return;
    host_reduce_scatter(c, buf, 0, n, n, sizeof(float), max_f32);
    host_allgather(c, buf, 0, n, n, sizeof(float));
}

void comm_broadcast(Comm *c, void *buf, size_t bytes) {
    count(c, COMM_OP_BROADCAST, c->rank == 0 ? (uint64_t)bytes * (uint64_t)(c->size - 1) : 0);
    if (c->size == 1 || bytes == 0) return;
    host_broadcast(c, buf, bytes);
}

void comm_broadcast_be(Comm *c, void *buf, size_t bytes) {
    if (c->be == BACKEND_CPU) {
        comm_broadcast(c, buf, bytes);
        return;
    }
    count(c, COMM_OP_BROADCAST, c->rank == 0 ? (uint64_t)bytes * (uint64_t)(c->size - 1) : 0);
    if ((c->size == 1 && !c->nccl) || bytes == 0) return;
#ifdef DENSERL_CUDA
    if (c->nccl) {
        comm_nccl_broadcast(c, buf, bytes);
        return;
    }
#endif
    void *h = host_view(c, NULL, bytes, 0);
    if (c->rank == 0) be_to_host(c->be, h, buf, bytes);
    host_broadcast(c, h, bytes);
    if (c->rank != 0) be_to_device(c->be, buf, h, bytes);
}

static void allgather_bytes_uncounted(Comm *c, const void *in, void *out_, size_t bytes) {
    unsigned char *out = out_;
    const int size = c->size;
    if (size == 1) {
        if (bytes) memmove(out, in, bytes);
        return;
    }
    size_t b = c->round_bytes / (size_t)size;
    if (b < 1) b = 1;
    if (b > bytes) b = bytes;
    round_buffers(c, b * (size_t)size);
    for (size_t k = 0; k < bytes; k += b) {
        size_t len = bytes - k < b ? bytes - k : b;
        for (int r = 0; r < size; r++) c->cnt_a[r] = len;
        memcpy(c->rbuf + (size_t)c->rank * len, (const unsigned char *)in + k, len);
        c->t->allgatherv(c, c->rbuf, c->cnt_a, len);
        for (int r = 0; r < size; r++)
            memcpy(out + (size_t)r * bytes + k, c->rbuf + (size_t)r * len, len);
    }
}

void comm_allgather_bytes(Comm *c, const void *in, void *out, size_t bytes) {
    count(c, COMM_OP_ALLGATHER, (uint64_t)bytes * (uint64_t)(c->size - 1));
    if (bytes) allgather_bytes_uncounted(c, in, out, bytes);
}

void comm_allgather_i32(Comm *c, const int32_t *in, int32_t *out, size_t n) {
    comm_allgather_bytes(c, in, out, n * sizeof(int32_t));
}

void comm_barrier(Comm *c) {
    if (c->size > 1) c->t->barrier(c);
}
