/* Data parallelism for the trainer, on top of runtime/comm.h: which rows of a batch this
 * rank computes, and the few exchanges that make every rank hold what a single rank would.
 * Rows are sharded contiguously; host arrays of per-row results are completed by a sum
 * over ranks of zero-filled copies (exact: every element has one non-zero contributor);
 * gradients are summed in rank order. With one rank every call is a no-op, so a
 * single-process run is unchanged bit for bit. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../runtime/backend.h"

/* Starts the communicator ("auto": MPI under mpirun, a shared-file rendezvous when
 * DENSERL_RENDEZVOUS_DIR is set, else one rank). Call once, before any backend memory.
 * DR_OK or DR_ERR with a message. */
int dist_init(Backend be);
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
static inline int dist_is_root(void) {
    return dist_rank() == 0;
}
/* One line describing the ranks ("1 rank" or "4 ranks over mpi"). */
const char *dist_describe(void);

/* This rank's rows [*lo, *hi) of rows r0 .. r0+n-1. */
void dist_rows(int r0, int n, int *lo, int *hi);
/* The same split into contiguous ranges that balance the sum of len (the rows' tokens)
 * instead of the row count: a row goes to the rank whose share of the range's tokens holds
 * its middle. len NULL, or no tokens: dist_rows. Every rank must pass the same len. */
void dist_rows_balanced(int r0, int n, const int *len, int *lo, int *hi);
/* Its rule for n rows of lengths len over size ranks: rank's rows [*lo, *hi); 0 (and nothing
 * set) when the rows hold no tokens. */
int dist_split_balanced(int n, const int *len, int size, int rank, int *lo, int *hi);
/* Rows r0 .. r0+n-1 of buf (row length T, host): every rank computed its own shard; after
 * the call every rank holds all of them. Floats and ints (ints must fit in 2^53). */
void dist_complete_rows_f32(float *buf, int r0, int n, int T);
void dist_complete_rows_i32(int *buf, int r0, int n, int T);
/* The same where this rank's shard is [lo, hi) of the range (from dist_rows_balanced). */
void dist_complete_split_f32(float *buf, int r0, int n, int T, int lo, int hi);
/* Host doubles summed over ranks, in place. */
void dist_sum_f64(double *v, size_t n);
/* Gradients (n floats of backend memory) summed over ranks, in place. */
void dist_sum_grads(float *g, size_t n);
/* The same, started now and finished by dist_wait_grads (comm_allreduce_sum_f32_start):
 * every rank starts the same sums in the same order. */
void dist_sum_grads_start(float *g, size_t n);
void dist_wait_grads(void);

/* ZeRO stage of the optimizers made from now on: 0 replicates the AdamW state, 1 shards it
 * (and the update) by contiguous ranges of the flat parameter buffer, 2 the gradients too
 * (the RL step's models: model_shard_grads), 3 also the frozen reference's bf16 weights
 * (MODEL_W16_SHARDED). */
void dist_set_zero_stage(int stage);
int dist_zero_stage(void);
/* Gradient buckets of the optimizers made from now on (grad_sync.h), in bytes; 0 sums the
 * whole buffer at the update instead. */
void dist_set_bucket_bytes(size_t bytes);
size_t dist_bucket_bytes(void);
/* This rank's range [*lo, *hi) of a flat buffer of n elements. */
void dist_shard(size_t n, size_t *lo, size_t *hi);
/* ZeRO-1: this rank's shard of g (backend memory) becomes the sum over ranks (the rest of
 * g is left unspecified); and the inverse, every rank's shard of p copied to all. */
void dist_reduce_scatter_grads(float *g, size_t n);
void dist_allgather_params(float *p, size_t n);
/* The same over the window [at, at + len) of a flat buffer of n elements, which buf holds
 * (comm_reduce_scatter_window_f32): ZeRO-2's gradients, a layer at a time. */
void dist_reduce_scatter_window(float *buf, size_t at, size_t len, size_t n);
void dist_allgather_window(float *buf, size_t at, size_t len, size_t n);
/* The allgather over 2-byte elements: ZeRO-3's bf16 weights, a layer at a time. */
void dist_allgather_window_u16(uint16_t *buf, size_t at, size_t len, size_t n);
/* The largest v over ranks (|v| < 2^24). */
int dist_max_int(int v);
/* Bytes this rank has sent through the communicator so far (ring-schedule count). */
double dist_bytes_sent(void);
/* Ends the whole job with a message naming this rank (no-op wrapper with one rank: exit). */
void dist_abort(int code, const char *msg);
