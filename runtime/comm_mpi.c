/* The MPI transport (ranks launched by mpirun): the byte exchanges of comm_internal.h as
 * MPI_Alltoallv, MPI_Allgatherv and MPI_Bcast on a private duplicate of MPI_COMM_WORLD.
 * Calls return their errors (MPI_ERRORS_RETURN) so a failure is reported as "rank R: ..."
 * and then brings the job down through MPI_Abort rather than hanging the other ranks.
 * Without DENSERL_MPI (no MPI found at build time) only a stub that explains is built. */
#include "comm_internal.h"
#include "error.h"

#ifdef DENSERL_MPI
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include "check.h"

typedef struct {
    MPI_Comm comm;
    int initialized_here;               /* MPI_Init was ours, so MPI_Finalize is too */
    int *cnt_s, *dsp_s, *cnt_r, *dsp_r; /* (size) int copies of a round's counts */
} MpiState;

int comm_mpi_built(void) {
    return 1;
}

static void mpi_ok(Comm *c, int err, const char *call) {
    if (err == MPI_SUCCESS) return;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, s, &len);
    comm_failf(c, "%s failed: %s", call, s);
}
#define MPI_OK(c, call) mpi_ok(c, (call), #call)

static int to_int(size_t v) {
    CHECK(v <= (size_t)INT_MAX); /* COMM_ROUND_BYTES keeps every round below this */
    return (int)v;
}

static void mpi_alltoallv(Comm *c, const void *send, const size_t *scount, void *recv,
                          const size_t *rcount, size_t stride) {
    MpiState *st = c->impl;
    for (int r = 0; r < c->size; r++) {
        st->cnt_s[r] = to_int(scount[r]);
        st->cnt_r[r] = to_int(rcount[r]);
        st->dsp_s[r] = st->dsp_r[r] = to_int((size_t)r * stride);
    }
    MPI_OK(c, MPI_Alltoallv(send, st->cnt_s, st->dsp_s, MPI_BYTE, recv, st->cnt_r, st->dsp_r,
                            MPI_BYTE, st->comm));
}

static void mpi_allgatherv(Comm *c, void *recv, const size_t *count, size_t stride) {
    MpiState *st = c->impl;
    for (int r = 0; r < c->size; r++) {
        st->cnt_r[r] = to_int(count[r]);
        st->dsp_r[r] = to_int((size_t)r * stride);
    }
    MPI_OK(c, MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, st->cnt_r, st->dsp_r,
                             MPI_BYTE, st->comm));
}

static void mpi_broadcast(Comm *c, void *buf, size_t bytes) {
    MpiState *st = c->impl;
    MPI_OK(c, MPI_Bcast(buf, to_int(bytes), MPI_BYTE, 0, st->comm));
}

static void mpi_barrier(Comm *c) {
    MpiState *st = c->impl;
    MPI_OK(c, MPI_Barrier(st->comm));
}

static void mpi_abort(Comm *c, int code, const char *message) {
    (void)c;
    (void)message; /* already printed by comm_abort */
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* MPI_Abort does not return; this satisfies noreturn */
}

static void mpi_finalize(Comm *c) {
    MpiState *st = c->impl;
    MPI_Comm_free(&st->comm);
    if (st->initialized_here) MPI_Finalize();
    free(st->cnt_s);
    free(st->dsp_s);
    free(st->cnt_r);
    free(st->dsp_r);
    free(st);
    c->impl = NULL;
}

static const CommTransport mpi_transport = {
    .alltoallv = mpi_alltoallv,
    .allgatherv = mpi_allgatherv,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .poll = NULL,
    .finalize = mpi_finalize,
};

int comm_mpi_open(Comm *c) {
    int inited = 0;
    MPI_Initialized(&inited);
    MpiState *st = xcalloc(1, sizeof *st);
    if (!inited) {
        if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
            free(st);
            return dr_error("communicator \"mpi\": MPI_Init failed");
        }
        st->initialized_here = 1;
    }
    c->impl = st;
    c->t = &mpi_transport;
    MPI_OK(c, MPI_Comm_dup(MPI_COMM_WORLD, &st->comm));
    MPI_OK(c, MPI_Comm_set_errhandler(st->comm, MPI_ERRORS_RETURN));
    MPI_OK(c, MPI_Comm_rank(st->comm, &c->rank));
    MPI_OK(c, MPI_Comm_size(st->comm, &c->size));
    /* the local rank picks the GPU: rank among the processes sharing this node's memory */
    MPI_Comm node;
    MPI_OK(c, MPI_Comm_split_type(st->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_OK(c, MPI_Comm_rank(node, &c->local_rank));
    MPI_Comm_free(&node);
    size_t sz = (size_t)c->size;
    st->cnt_s = xcalloc(sz, sizeof(int));
    st->dsp_s = xcalloc(sz, sizeof(int));
    st->cnt_r = xcalloc(sz, sizeof(int));
    st->dsp_r = xcalloc(sz, sizeof(int));
    return DR_OK;
}

#else

int comm_mpi_built(void) {
    return 0;
}

int comm_mpi_open(Comm *c) {
    (void)c;
    return dr_error("communicator \"mpi\": this binary was built without MPI (install "
                    "libopenmpi-dev and rebuild, or use \"file\" with DENSERL_RENDEZVOUS_DIR)");
}

#endif
