/* The communicator: how the ranks of a data-parallel run talk to each other. One interface,
 * chosen once at start-up like the backend: "single" (one rank, every op a no-op), "mpi"
 * (launched with mpirun; host buffers over MPI, GPU buffers over NCCL with its id broadcast
 * over MPI) and "file" (ranks started by Slurm or by hand, meeting in a shared directory;
 * host collectives go through files there, GPU buffers over NCCL with its id passed as a
 * file). Engine code calls these functions the same way for one rank or many.
 *
 * Sums are deterministic: on host buffers every element of a sum is x_0 + x_1 + ... +
 * x_{size-1} added left to right in rank order, whatever the transport and its algorithms,
 * so a run repeats bit for bit and a test can compute the expected value itself. NCCL sums
 * on GPU buffers repeat run to run on the same machines but follow NCCL's own order (set
 * DENSERL_NCCL=0 to stage GPU buffers through the host path instead; DENSERL_NCCL=1 opens
 * NCCL even for a single rank, so that one GPU can exercise the path).
 *
 * ZeRO-1 shards a flat buffer of n elements into contiguous ranges, rank r owning
 * [n*r/size, n*(r+1)/size) (comm_shard_range); any n works, shards differ by at most one.
 *
 * Failures never hang: a failed collective, a peer that never arrives (the file transport
 * waits DENSERL_COMM_TIMEOUT seconds, default 300) or a call to comm_abort on any rank makes
 * every rank exit non-zero with a line "rank R: ...". */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Comm Comm;

/* The op kinds the volume counters keep apart. */
typedef enum {
    COMM_OP_ALLREDUCE = 0,  /* allreduce_sum_f32/_f64, allreduce_max_f32 */
    COMM_OP_REDUCE_SCATTER, /* reduce_scatter_sum_f32 */
    COMM_OP_ALLGATHER,      /* allgather_f32, allgather_i32, allgather_bytes */
    COMM_OP_BROADCAST,      /* broadcast, broadcast_be */
    COMM_OP_N,
    COMM_OP_TOTAL = COMM_OP_N /* comm_bytes_sent: the sum over all kinds */
} CommOp;

/* kind: "auto" (MPI when launched by mpirun -- OMPI_COMM_WORLD_SIZE or PMI_SIZE set -- and
 * built in; else "file" when DENSERL_RENDEZVOUS_DIR is set; else "single"), "single", "mpi"
 * or "file". be: where the buffers of allreduce_sum_f32, reduce_scatter_sum_f32,
 * allgather_f32 and broadcast_be live; on CUDA each rank first takes GPU local_rank %
 * device_count, so call this before allocating backend memory. The file transport reads its
 * rank and size from DENSERL_RANK/DENSERL_WORLD_SIZE (else SLURM_PROCID/SLURM_NTASKS), its
 * local rank from DENSERL_LOCAL_RANK (else SLURM_LOCALID, else 0), and tags its files with
 * DENSERL_RUN_ID (else SLURM_JOB_ID.SLURM_STEP_ID, else "run"). DR_OK, or DR_ERR with a
 * message for a bad kind, missing environment or a transport that is not built in. */
int comm_init(Comm **c, const char *kind, Backend be);
/* Leaves the job cleanly (every rank must call it); frees c. NULL is a no-op. */
void comm_finalize(Comm *c);

int comm_rank(const Comm *c);
int comm_size(const Comm *c);
int comm_local_rank(const Comm *c); /* rank among the ranks on this machine */
/* "single", "mpi" or "file", with "+nccl" when GPU buffers go over NCCL. */
const char *comm_name(const Comm *c);

/* Rank r's shard of n elements: [lo, hi) = [n*r/size, n*(r+1)/size), computed without
 * overflow. Pure; the layout of reduce_scatter and allgather. */
void comm_shard_range(size_t n, int rank, int size, size_t *lo, size_t *hi);

/* In place on backend memory: buf (n) becomes the elementwise sum over ranks. */
void comm_allreduce_sum_f32(Comm *c, float *buf, size_t n);
/* The same sum, started now and finished by comm_wait_all, so that it can overlap the work
 * queued after it (a gradient bucket during the rest of the backward). Over NCCL it runs on
 * the communicator's own stream once the work already queued on the compute stream is
 * done; the host transports defer it to comm_wait_all, which runs the deferred sums in
 * address order, adjacent buffers merged into one sum. Every rank must start the same sums
 * in the same order, and buf must not be touched until comm_wait_all returns. */
void comm_allreduce_sum_f32_start(Comm *c, float *buf, size_t n);
/* Finishes every started sum: on return (host transports) or for every kernel queued
 * after it (NCCL) the buffers hold the sums. */
void comm_wait_all(Comm *c);
/* ZeRO-1: on return this rank's shard of buf (n, backend memory) holds the sum over ranks;
 * the rest of buf is unspecified. */
void comm_reduce_scatter_sum_f32(Comm *c, float *buf, size_t n);
/* The inverse: each rank's shard of buf (n, backend memory) is copied to every rank. */
void comm_allgather_f32(Comm *c, float *buf, size_t n);
/* The same two over a window: buf (len, backend memory) holds elements [at, at + len) of a flat
 * buffer of n elements sharded as above. The reduce-scatter leaves in each rank's part of the
 * window (its shard's overlap with it; possibly none) the sum over ranks, the rest of buf
 * unspecified; the allgather copies each rank's part to every rank. Every rank passes the same
 * at, len and n. With at = 0 and len = n they are the calls above. */
void comm_reduce_scatter_window_f32(Comm *c, float *buf, size_t at, size_t len, size_t n);
void comm_allgather_window_f32(Comm *c, float *buf, size_t at, size_t len, size_t n);
/* The same over 2-byte elements (bf16 weights). */
void comm_allgather_window_u16(Comm *c, uint16_t *buf, size_t at, size_t len, size_t n);
/* Host buffers, for statistics: sum (f64) and maximum (f32; NaN wins over numbers). */
void comm_allreduce_sum_f64(Comm *c, double *buf, size_t n);
void comm_allreduce_max_f32(Comm *c, float *buf, size_t n);
/* Rank 0's bytes to every rank: host memory, and backend memory. */
void comm_broadcast(Comm *c, void *buf, size_t bytes);
void comm_broadcast_be(Comm *c, void *buf, size_t bytes);
/* Small host arrays: out (size*n) receives every rank's in (n) in rank order. */
void comm_allgather_i32(Comm *c, const int32_t *in, int32_t *out, size_t n);
void comm_allgather_bytes(Comm *c, const void *in, void *out, size_t bytes);
void comm_barrier(Comm *c);
/* Takes the whole job down: prints "rank R: message" and makes every rank exit non-zero
 * (code, or 1 when code is 0). c may be NULL before init succeeded. Never returns. */
__attribute__((noreturn)) void comm_abort(Comm *c, int code, const char *message);

/* Payload bytes this rank has addressed to other ranks since init, per op kind (or
 * COMM_OP_TOTAL): reduce-scatter sends n - shard elements, allgather sends the own shard
 * to size-1 ranks, an allreduce is the two, a broadcast costs rank 0 bytes*(size-1). This
 * equals what a ring schedule (NCCL's) sends, so it gives the per-step volume; 0 on one
 * rank. */
uint64_t comm_bytes_sent(const Comm *c, CommOp op);
uint64_t comm_calls(const Comm *c, CommOp op);
const char *comm_op_name(CommOp op);
void comm_reset_counters(Comm *c);

#ifdef __cplusplus
}
#endif
