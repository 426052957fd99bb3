/* Inside the communicator: the Comm struct and the small set of byte-moving primitives a
 * transport (MPI, files) provides. comm.c builds every public collective from these, so the
 * reduction order -- and with it determinism -- is decided in one place; comm_nccl.cu
 * replaces them for GPU buffers. Only comm*.c and comm_nccl.cu include this. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest total a collective moves in one round: per-rank blocks are at most
 * COMM_ROUND_BYTES / size, so MPI's int counts and displacements never overflow. */
#define COMM_ROUND_BYTES ((size_t)1 << 27)

typedef struct CommTransport {
    /* Block r of send (scount[r] bytes at send + r*stride) goes to rank r; block r of recv
     * (rcount[r] bytes at recv + r*stride) arrives from rank r. */
    void (*alltoallv)(Comm *c, const void *send, const size_t *scount, void *recv,
                      const size_t *rcount, size_t stride);
    /* In place: block rank of recv (count[rank] bytes at recv + rank*stride) already holds
     * this rank's piece; every other block r receives count[r] bytes from rank r. */
    void (*allgatherv)(Comm *c, void *recv, const size_t *count, size_t stride);
    /* Rank 0's bytes (at most COMM_ROUND_BYTES) to every rank. */
    void (*broadcast)(Comm *c, void *buf, size_t bytes);
    void (*barrier)(Comm *c);
    /* After comm_abort printed the message: take every rank down (does not return). */
    void (*abort)(Comm *c, int code, const char *message);
    /* Called while waiting on GPU collectives: exits if another rank aborted. May be NULL. */
    void (*poll)(Comm *c);
    void (*finalize)(Comm *c);
} CommTransport;

/* A sum started on the host path (comm_allreduce_sum_f32_start), run by comm_wait_all. */
typedef struct {
    float *buf;
    size_t n;
} CommDeferred;

struct Comm {
    const CommTransport *t; /* NULL for the single-rank communicator */
    void *impl;             /* the transport's own state */
    int rank, size, local_rank;
    Backend be;
    double timeout_s; /* DENSERL_COMM_TIMEOUT */
    char name[24];
    void *nccl;                 /* comm_nccl.cu state; NULL when GPU buffers go through the host */
    unsigned char *sbuf, *rbuf; /* (round_cap) round buffers of the host path */
    size_t round_cap;           /* at most round_bytes */
    size_t round_bytes; /* COMM_ROUND_BYTES, or DENSERL_COMM_ROUND_BYTES (tests: many rounds) */
    void *stage;        /* (stage_cap bytes) host copy of a GPU buffer when staging */
    size_t stage_cap;
    size_t *cnt_a, *cnt_b; /* (size) per-rank byte counts of a round */
    uint64_t bytes[COMM_OP_N], calls[COMM_OP_N];
    CommDeferred *deferred; /* (n_deferred) started sums of the host path, in start order */
    size_t n_deferred, deferred_cap;
    void *nccl_async; /* comm_nccl.cu: the stream and events of started sums */
};

/* comm_abort with a formatted message. */
__attribute__((noreturn, format(printf, 2, 3))) void comm_failf(Comm *c, const char *fmt, ...);
/* Rank r's part [*lo, *hi) of the window [at, at + len) of a flat buffer of n elements sharded
 * by comm_shard_range, as offsets into the window (lo == hi: none). */
void comm_window_part(size_t n, size_t at, size_t len, int r, int size, size_t *lo, size_t *hi);
/* Seconds on a monotonic clock. */
double comm_now(void);

/* Transports: fill rank, size, local_rank, t and impl, or return DR_ERR with a message. */
int comm_mpi_open(Comm *c);
int comm_mpi_built(void); /* 1 when MPI was found at build time */
int comm_file_open(Comm *c);

/* comm_nccl.cu (built with CUDA). */
void comm_cuda_select_device(Comm *c);
size_t comm_nccl_id_bytes(void); /* 0 when NCCL is not built in */
void comm_nccl_new_id(void *id);
void comm_nccl_open(Comm *c, const void *id); /* sets c->nccl */
void comm_nccl_close(Comm *c);
void comm_nccl_allreduce_sum_f32(Comm *c, float *buf, size_t n);
/* Windows [at, at + len) of a flat buffer of n (comm_reduce_scatter_window_f32). */
void comm_nccl_reduce_scatter_sum_f32(Comm *c, float *buf, size_t at, size_t len, size_t n);
void comm_nccl_allgather(Comm *c, void *buf, size_t at, size_t len, size_t n, size_t es);
void comm_nccl_broadcast(Comm *c, void *buf, size_t bytes);
/* Started sums (comm_allreduce_sum_f32_start) on the communicator's own stream. */
void comm_nccl_allreduce_start(Comm *c, float *buf, size_t n);
void comm_nccl_wait_all(Comm *c);

#ifdef __cplusplus
}
#endif
