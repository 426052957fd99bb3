/* GPU side of the communicator: the device each rank takes, and (with DENSERL_NCCL) the
 * NCCL collectives on GPU buffers. Collectives run on the legacy default stream, so they
 * are ordered with every denserl kernel; the host then waits for them by polling, which
 * turns a peer's failure (NCCL's async error, another rank's abort, the timeout) into a
 * "rank R: ..." exit instead of a hang inside a kernel. ncclReduceScatter/ncclAllGather
 * need equal shards, so when size does not divide n, or the call covers a window of the
 * buffer, the shard layout of comm_shard_range is served by one grouped ncclReduce/ncclBroadcast
 * per shard root instead. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "comm_internal.h"
#include "cuda_util.cuh"

extern "C" void comm_cuda_select_device(Comm *c) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        comm_failf(c, "backend cuda: no GPU answered");
    }
    cudaError_t e = cudaSetDevice(c->local_rank % n);
    if (e != cudaSuccess)
        comm_failf(c, "cudaSetDevice(%d): %s", c->local_rank % n, cudaGetErrorString(e));
}

#ifdef DENSERL_NCCL
#include <nccl.h>

#define NCCL_OK(c, call)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess)                                                                     \
            comm_failf(c, "%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(r_));     \
    } while (0)

static ncclComm_t nccl_of(Comm *c) {
    return (ncclComm_t)c->nccl;
}

extern "C" size_t comm_nccl_id_bytes(void) {
    return sizeof(ncclUniqueId);
}

extern "C" void comm_nccl_new_id(void *id) {
    ncclUniqueId u;
    NCCL_OK((Comm *)NULL, ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u);
}

extern "C" void comm_nccl_open(Comm *c, const void *id) {
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclComm_t nc;
    NCCL_OK(c, ncclCommInitRank(&nc, c->size, u, c->rank));
    c->nccl = nc;
}

static void async_free(Comm *c);

extern "C" void comm_nccl_close(Comm *c) {
    async_free(c);
    if (!c->nccl) return;
    ncclCommDestroy(nccl_of(c));
    c->nccl = NULL;
}

/* Waits for the collectives queued on stream s; a failure anywhere ends the job. */
static void wait_stream(Comm *c, cudaStream_t s, const char *what) {
    double t0 = comm_now();
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) comm_failf(c, "%s: %s", what, cudaGetErrorString(e));
        ncclResult_t ae = ncclSuccess;
        ncclCommGetAsyncError(nccl_of(c), &ae);
        if (ae != ncclSuccess) {
            ncclCommAbort(nccl_of(c));
            c->nccl = NULL;
            comm_failf(c, "%s: NCCL: %s", what, ncclGetErrorString(ae));
        }
        if (c->t->poll) c->t->poll(c);
        if (comm_now() - t0 > c->timeout_s) {
            ncclCommAbort(nccl_of(c));
            c->nccl = NULL;
            comm_failf(c, "%s: not complete after %g s (DENSERL_COMM_TIMEOUT)", what, c->timeout_s);
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

static void wait_done(Comm *c, const char *what) {
    wait_stream(c, 0, what);
}

/* Started sums: a stream of their own that does not wait for the legacy default stream
 * except through the events below. */
typedef struct {
    cudaStream_t stream;
    cudaEvent_t ready, done;
    int pending;
} NcclAsync;

extern "C" void comm_nccl_allreduce_start(Comm *c, float *buf, size_t n) {
    NcclAsync *a = (NcclAsync *)c->nccl_async;
    if (!a) {
        a = (NcclAsync *)calloc(1, sizeof *a);
        if (!a) comm_failf(c, "out of memory");
        CUDA_CHECK(cudaStreamCreateWithFlags(&a->stream, cudaStreamNonBlocking));
        CUDA_CHECK(cudaEventCreateWithFlags(&a->ready, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&a->done, cudaEventDisableTiming));
        c->nccl_async = a;
    }
    /* after everything the compute stream has queued so far (the bucket's gradients) */
    CUDA_CHECK(cudaEventRecord(a->ready, 0));
    CUDA_CHECK(cudaStreamWaitEvent(a->stream, a->ready, 0));
    NCCL_OK(c, ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, nccl_of(c), a->stream));
    a->pending = 1;
}

extern "C" void comm_nccl_wait_all(Comm *c) {
    NcclAsync *a = (NcclAsync *)c->nccl_async;
    if (!a || !a->pending) return;
    CUDA_CHECK(cudaEventRecord(a->done, a->stream));
    CUDA_CHECK(cudaStreamWaitEvent(0, a->done, 0)); /* later kernels see the sums */
    wait_stream(c, a->stream, "started ncclAllReduce");
    a->pending = 0;
}

static void async_free(Comm *c) {
    NcclAsync *a = (NcclAsync *)c->nccl_async;
    if (!a) return;
    cudaEventDestroy(a->ready);
    cudaEventDestroy(a->done);
    cudaStreamDestroy(a->stream);
    free(a);
    c->nccl_async = NULL;
}

extern "C" void comm_nccl_allreduce_sum_f32(Comm *c, float *buf, size_t n) {
    NCCL_OK(c, ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, nccl_of(c), 0));
    wait_done(c, "ncclAllReduce");
}

/* The whole buffer in equal shards: the plain collectives apply. */
static int equal_shards(const Comm *c, size_t at, size_t len, size_t n) {
    return at == 0 && len == n && n % (size_t)c->size == 0;
}

extern "C" void comm_nccl_reduce_scatter_sum_f32(Comm *c, float *buf, size_t at, size_t len,
                                                 size_t n) {
    size_t lo, hi;
    comm_window_part(n, at, len, c->rank, c->size, &lo, &hi);
    if (equal_shards(c, at, len, n)) {
        /* in place: the receive buffer is the own shard of the send buffer */
        NCCL_OK(c, ncclReduceScatter(buf, buf + lo, hi - lo, ncclFloat, ncclSum, nccl_of(c), 0));
    } else {
        NCCL_OK(c, ncclGroupStart());
        for (int r = 0; r < c->size; r++) {
            size_t a, b;
            comm_window_part(n, at, len, r, c->size, &a, &b);
            if (b > a)
                NCCL_OK(c,
                        ncclReduce(buf + a, buf + a, b - a, ncclFloat, ncclSum, r, nccl_of(c), 0));
        }
        NCCL_OK(c, ncclGroupEnd());
    }
    wait_done(c, "reduce-scatter");
}

extern "C" void comm_nccl_allgather(Comm *c, void *buf_, size_t at, size_t len, size_t n,
                                    size_t es) {
    char *buf = (char *)buf_;
    const ncclDataType_t t = es == 2 ? ncclFloat16 : ncclFloat; /* moved, never added */
    size_t lo, hi;
    comm_window_part(n, at, len, c->rank, c->size, &lo, &hi);
    if (equal_shards(c, at, len, n)) {
        NCCL_OK(c, ncclAllGather(buf + lo * es, buf, hi - lo, t, nccl_of(c), 0));
    } else {
        NCCL_OK(c, ncclGroupStart());
        for (int r = 0; r < c->size; r++) {
            size_t a, b;
            comm_window_part(n, at, len, r, c->size, &a, &b);
            if (b > a)
                NCCL_OK(c, ncclBroadcast(buf + a * es, buf + a * es, b - a, t, r, nccl_of(c), 0));
        }
        NCCL_OK(c, ncclGroupEnd());
    }
    wait_done(c, "allgather");
}

extern "C" void comm_nccl_broadcast(Comm *c, void *buf, size_t bytes) {
    NCCL_OK(c, ncclBroadcast(buf, buf, bytes, ncclUint8, 0, nccl_of(c), 0));
    wait_done(c, "ncclBroadcast");
}

#else /* CUDA without NCCL: GPU buffers are staged through the host transport */

extern "C" size_t comm_nccl_id_bytes(void) {
    return 0;
}

static void no_nccl(Comm *c) {
    comm_failf(c, "internal: NCCL is not built in");
}
extern "C" void comm_nccl_new_id(void *) {
    no_nccl(NULL);
}
extern "C" void comm_nccl_open(Comm *c, const void *) {
    no_nccl(c);
}
extern "C" void comm_nccl_close(Comm *) {}
extern "C" void comm_nccl_allreduce_sum_f32(Comm *c, float *, size_t) {
    no_nccl(c);
}
extern "C" void comm_nccl_reduce_scatter_sum_f32(Comm *c, float *, size_t, size_t, size_t) {
    no_nccl(c);
}
extern "C" void comm_nccl_allgather(Comm *c, void *, size_t, size_t, size_t, size_t) {
    no_nccl(c);
}
extern "C" void comm_nccl_broadcast(Comm *c, void *, size_t) {
    no_nccl(c);
}
extern "C" void comm_nccl_allreduce_start(Comm *c, float *, size_t) {
    no_nccl(c);
}
extern "C" void comm_nccl_wait_all(Comm *c) {
    no_nccl(c);
}

#endif
