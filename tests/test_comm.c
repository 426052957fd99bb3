/* The communicator on one rank: the ZeRO-1 shard layout (a pure function, checked for many
 * n and sizes), every collective's single-rank meaning (sums and maxima leave the buffer as
 * it is, gathers copy), the volume counters, the choice made by "auto", and the errors for
 * a bad kind, a missing or inconsistent environment and a rendezvous directory left by an
 * earlier run. Many ranks are tested by test_comm_mpi.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/backend.h"
#include "runtime/comm.h"
#include "runtime/error.h"
#include "testutil.h"

static void test_shard_ranges(void) {
    const size_t ns[] = {0, 1, 7, 1000, 1001, 4097};
    int bad = 0;
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        size_t n = ns[k];
        for (int size = 1; size <= 8; size++) {
            size_t prev_hi = 0, min_len = SIZE_MAX, max_len = 0;
            for (int r = 0; r < size; r++) {
                size_t lo, hi;
                comm_shard_range(n, r, size, &lo, &hi);
                /* the documented formula, which cannot overflow at these n */
                if (lo != n * (size_t)r / (size_t)size || hi != n * (size_t)(r + 1) / (size_t)size)
                    bad++;
                if (lo != prev_hi || hi < lo) bad++;
                prev_hi = hi;
                if (hi - lo < min_len) min_len = hi - lo;
                if (hi - lo > max_len) max_len = hi - lo;
            }
            if (prev_hi != n || max_len - min_len > 1) bad++;
        }
    }
    EXPECT(bad == 0,
           "shard ranges for n in {0,1,7,1000,1001,4097}, size 1..8: [n*r/size, "
           "n*(r+1)/size), contiguous, covering [0,n), sizes within one (%d bad)",
           bad);

    size_t lo, hi;
    comm_shard_range(7, 0, 1, &lo, &hi);
    EXPECT(lo == 0 && hi == 7, "size 1: the whole buffer");
    comm_shard_range(1, 0, 3, &lo, &hi);
    size_t lo2, hi2;
    comm_shard_range(1, 2, 3, &lo2, &hi2);
    EXPECT(lo == 0 && hi == 0 && lo2 == 0 && hi2 == 1,
           "n=1, size 3: ranks 0 and 1 empty, rank 2 "
           "owns [0,1) (got [%zu,%zu) and [%zu,%zu))",
           lo, hi, lo2, hi2);

    /* n*r would overflow 64 bits here; the split formula must not */
    size_t big = SIZE_MAX / 2 + 12345;
    size_t prev = 0;
    int ok = 1;
    for (int r = 0; r < 7; r++) {
        comm_shard_range(big, r, 7, &lo, &hi);
        if (lo != prev || hi < lo) ok = 0;
        prev = hi;
    }
    EXPECT(ok && prev == big, "n near SIZE_MAX/2, size 7: no overflow, ranges still tile [0,n)");
}

static void clear_env(void) {
    const char *names[] = {
        "DENSERL_RENDEZVOUS_DIR", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",     "DENSERL_RANK",
        "DENSERL_WORLD_SIZE",     "SLURM_PROCID",         "SLURM_NTASKS", "DENSERL_COMM_TIMEOUT",
        "DENSERL_RUN_ID",         "SLURM_JOB_ID"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unsetenv(names[i]);
}

/* Every collective on a single rank, on the backend's memory where the API says so. */
/* On one rank, allreduce, reduce-scatter, allgather and broadcast_be of n backend floats
 * leave them unchanged. */
static void one_rank_identities(Comm *c, Backend be, int n) {
    float *h = malloc(sizeof(float) * n), *back = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) h[i] = 0.125f * (float)i - 3.0f;
    float *d = be_alloc(be, sizeof(float) * n);
    be_to_device(be, d, h, sizeof(float) * n);
    comm_allreduce_sum_f32(c, d, n);
    comm_reduce_scatter_sum_f32(c, d, n);
    comm_allgather_f32(c, d, n);
    comm_broadcast_be(c, d, sizeof(float) * n);
    comm_allreduce_sum_f32_start(c, d + n / 2, (size_t)(n - n / 2)); /* started, then waited */
    comm_allreduce_sum_f32_start(c, d, (size_t)(n / 2));
    comm_wait_all(c);
    be_to_host(be, back, d, sizeof(float) * n);
    EXPECT(memcmp(back, h, sizeof(float) * n) == 0,
           "%s on %s, one rank: allreduce/reduce-scatter/allgather/broadcast_be and started "
           "sums leave %d floats unchanged",
           comm_name(c), backend_name(be), n);
    be_free(be, d);
    free(h);
    free(back);
}

static void test_single(Backend be) {
    Comm *c = NULL;
    REQUIRE(comm_init(&c, "single", be) == DR_OK, "comm_init single (%s): %s", backend_name(be),
            dr_last_error());
    EXPECT(comm_rank(c) == 0 && comm_size(c) == 1 && comm_local_rank(c) == 0,
           "single: rank 0 of 1, local rank 0");
    EXPECT(strcmp(comm_name(c), "single") == 0, "name \"%s\"", comm_name(c));

    one_rank_identities(c, be, 37);

    double s[3] = {1.5, -2.25, 1e300};
    comm_allreduce_sum_f64(c, s, 3);
    EXPECT(s[0] == 1.5 && s[1] == -2.25 && s[2] == 1e300, "allreduce_sum_f64 is the identity");
    float m[3] = {-1.0f, 0.0f, 7.5f};
    comm_allreduce_max_f32(c, m, 3);
    EXPECT(m[0] == -1.0f && m[1] == 0.0f && m[2] == 7.5f, "allreduce_max_f32 is the identity");
    unsigned char bytes[5] = {1, 2, 3, 4, 5};
    comm_broadcast(c, bytes, sizeof bytes);
    EXPECT(bytes[0] == 1 && bytes[4] == 5, "broadcast keeps rank 0's bytes");

    int32_t flags[3] = {1, 0, -7}, all[3] = {0, 0, 0};
    comm_allgather_i32(c, flags, all, 3);
    EXPECT(all[0] == 1 && all[1] == 0 && all[2] == -7, "allgather_i32 copies the own array");
    char word[6] = "hello", got[6] = "";
    comm_allgather_bytes(c, word, got, sizeof word);
    EXPECT(strcmp(got, "hello") == 0, "allgather_bytes copies the own bytes");
    comm_barrier(c);
    comm_reset_counters(c);
    comm_allreduce_sum_f32(c, (float[]){1}, 1);
    comm_allgather_i32(c, flags, all, 3);
    EXPECT(comm_calls(c, COMM_OP_ALLREDUCE) == 1 && comm_calls(c, COMM_OP_ALLGATHER) == 1 &&
               comm_calls(c, COMM_OP_TOTAL) == 2,
           "calls are counted per op kind");
    EXPECT(comm_bytes_sent(c, COMM_OP_TOTAL) == 0, "one rank sends nothing");
    EXPECT(strcmp(comm_op_name(COMM_OP_REDUCE_SCATTER), "reduce_scatter") == 0 &&
               strcmp(comm_op_name(COMM_OP_TOTAL), "total") == 0,
           "op names");
    comm_finalize(c);
    comm_finalize(NULL);
}

static void expect_init_error(const char *kind, const char *want, const char *what) {
    Comm *c = (Comm *)1;
    int rc = comm_init(&c, kind, BACKEND_CPU);
    EXPECT(rc == DR_ERR && c == NULL && strstr(dr_last_error(), want) != NULL,
           "%s: error naming \"%s\" (got \"%s\")", what, want,
           rc == DR_ERR ? dr_last_error() : "ok");
    if (rc == DR_OK) comm_finalize(c);
}

static void test_choice_and_errors(void) {
    clear_env();
    Comm *c = NULL;
    REQUIRE(comm_init(&c, "auto", BACKEND_CPU) == DR_OK, "auto: %s", dr_last_error());
    EXPECT(strcmp(comm_name(c), "single") == 0 && comm_size(c) == 1,
           "auto without mpirun or a rendezvous dir is single (got %s)", comm_name(c));
    comm_finalize(c);
    REQUIRE(comm_init(&c, NULL, BACKEND_CPU) == DR_OK, "NULL kind: %s", dr_last_error());
    EXPECT(comm_size(c) == 1, "NULL kind means auto");
    comm_finalize(c);

    expect_init_error("nccl2", "expected \"auto\", \"single\", \"mpi\" or \"file\"", "bad kind");
    expect_init_error("file", "DENSERL_RENDEZVOUS_DIR", "file without a directory");

    char dir[256];
    if (test_mkdtemp(dir, sizeof dir, "/tmp/denserl_comm_XXXXXX") != 0) return;
    setenv("DENSERL_RENDEZVOUS_DIR", dir, 1);
    expect_init_error("file", "DENSERL_RANK", "file without rank and size");
    setenv("DENSERL_RANK", "3", 1);
    setenv("DENSERL_WORLD_SIZE", "2", 1);
    expect_init_error("file", "expected 0 <= rank < size", "rank beyond the size");
    setenv("DENSERL_RANK", "0", 1);
    setenv("DENSERL_WORLD_SIZE", "1", 1);
    setenv("DENSERL_COMM_TIMEOUT", "soon", 1);
    expect_init_error("file", "DENSERL_COMM_TIMEOUT", "unparsable timeout");
    setenv("DENSERL_COMM_TIMEOUT", "5", 1);
    setenv("DENSERL_RUN_ID", "a/b", 1);
    expect_init_error("file", "DENSERL_RUN_ID", "run id with a slash");
    unsetenv("DENSERL_RUN_ID");

    /* auto picks the file transport when a rendezvous dir is set; one rank works alone */
    c = NULL;
    if (EXPECT(comm_init(&c, "auto", BACKEND_CPU) == DR_OK, "auto with a rendezvous dir: %s",
               dr_last_error())) {
        EXPECT(strcmp(comm_name(c), "file") == 0 && comm_size(c) == 1 && comm_rank(c) == 0,
               "auto with DENSERL_RENDEZVOUS_DIR is the file transport (got %s)", comm_name(c));
        double v = 2.5;
        comm_allreduce_sum_f64(c, &v, 1);
        comm_barrier(c);
        EXPECT(v == 2.5, "file transport, one rank: sums are the identity");
        comm_finalize(c);
    }

    /* a file this rank would write, left by an earlier run, is refused */
    char stale[400];
    snprintf(stale, sizeof stale, "%s/run.0000000003.r0", dir);
    FILE *f = fopen(stale, "w");
    if (f) fclose(f);
    expect_init_error("file", "earlier run", "stale files of an earlier run");
    remove(stale);
    snprintf(stale, sizeof stale, "%s/run.abort", dir);
    f = fopen(stale, "w");
    if (f) {
        fputs("1 2 rank 2: boom\n", f);
        fclose(f);
    }
    expect_init_error("file", "aborted", "abort marker of an earlier run");
    setenv("DENSERL_RUN_ID", "fresh-tag_1.0", 1);
    c = NULL;
    EXPECT(comm_init(&c, "file", BACKEND_CPU) == DR_OK,
           "another DENSERL_RUN_ID ignores the earlier run's files: %s", dr_last_error());
    if (c) comm_finalize(c);
    test_rmtree(dir);
    clear_env();
}

/* DENSERL_NCCL=1 puts one rank's GPU buffers through NCCL: the same identities as the
 * single-rank checks, now through ncclAllReduce, ReduceScatter, AllGather and Broadcast. */
static void test_nccl_one_rank(void) {
    if (!backend_cuda_available()) {
        printf("SKIP NCCL with one rank (no GPU)\n");
        return;
    }
    setenv("DENSERL_NCCL", "1", 1);
    Comm *c = NULL;
    int ok = comm_init(&c, "single", BACKEND_CUDA) == DR_OK;
    unsetenv("DENSERL_NCCL");
    REQUIRE(ok, "comm_init single with DENSERL_NCCL=1: %s", dr_last_error());
    if (!strstr(comm_name(c), "+nccl")) {
        printf("SKIP NCCL with one rank: built without NCCL (communicator %s)\n", comm_name(c));
        comm_finalize(c);
        return;
    }
    one_rank_identities(c, BACKEND_CUDA, 1001);
    EXPECT(comm_calls(c, COMM_OP_TOTAL) == 6, "6 collectives counted (%llu)",
           (unsigned long long)comm_calls(c, COMM_OP_TOTAL));
    comm_finalize(c);
}

int main(void) {
    test_shard_ranges();
    test_single(BACKEND_CPU);
    if (backend_cuda_available())
        test_single(BACKEND_CUDA);
    else
        printf("SKIP CUDA single-rank checks (no GPU)\n");
    test_nccl_one_rank();
    test_choice_and_errors();
    return test_summary();
}
