/* One rank of the multi-rank communicator test (tests/test_comm_mpi.sh starts several, under
 * mpirun or as plain processes meeting in a rendezvous directory).
 *
 *   comm_worker KIND check SIZE   every collective against values computed here: sums must
 *                                 equal x_0 + x_1 + ... added in rank order, bit for bit;
 *                                 prints "rank R: N passed, M failed" and a digest of one sum
 *   comm_worker KIND abort R      rank R calls comm_abort after a barrier, the others wait
 *                                 in a second barrier that must never complete
 *   comm_worker KIND wait         one barrier (for the timeout test: start too few ranks)
 *
 * COMM_WORKER_DEVICE=cuda puts the GPU-buffer collectives on the GPU (NCCL sums are then
 * compared with a tolerance unless NCCL is off). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/backend.h"
#include "runtime/check.h"
#include "runtime/comm.h"
#include "runtime/error.h"
#include "testutil.h"

static int rank, size, exact;

/* Rank r's value at i: signs and exponents spread so that a different addition order
 * would change the rounded sum. */
static float value(int r, size_t i) {
    uint64_t z = (uint64_t)r * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + 12345;
    z = (z ^ (z >> 31)) * 0x94D049BB133111EBull;
    z ^= z >> 29;
    double u = (double)(z >> 11) * 0x1.0p-53 - 0.5;
    int e = (int)(z % 24) - 12;
    return (float)ldexp(u, e);
}

static float expected_sum(size_t i) {
    float s = value(0, i);
    for (int r = 1; r < size; r++) s = s + value(r, i);
    return s;
}

static int same(float got, float want) {
    if (exact) return memcmp(&got, &want, sizeof got) == 0;
    return fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want));
}

static size_t count_bad(const float *h, size_t lo, size_t hi) {
    size_t bad = 0;
    for (size_t i = lo; i < hi; i++) bad += !same(h[i], expected_sum(i));
    return bad;
}

static uint64_t digest(const float *h, size_t n) {
    uint64_t d = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)h;
    for (size_t k = 0; k < n * sizeof(float); k++) d = (d ^ p[k]) * 1099511628211ull;
    return d;
}

static void fill(Backend be, float *d, float *h, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = value(rank, i);
    be_to_device(be, d, h, n * sizeof(float));
}

static void check_sums(Comm *c, Backend be) {
    const size_t ns[] = {1, 2, 7, 1000, 1001, 4099, 100003};
    size_t nmax = 100003;
    float *h = xmalloc(nmax * sizeof(float));
    float *d = be_alloc(be, nmax * sizeof(float));
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        size_t n = ns[k], lo, hi;
        comm_shard_range(n, rank, size, &lo, &hi);

        fill(be, d, h, n);
        comm_allreduce_sum_f32(c, d, n);
        be_to_host(be, h, d, n * sizeof(float));
        size_t bad = count_bad(h, 0, n);
        check(bad == 0, "rank %d: allreduce_sum_f32 n=%zu equals the rank-order sum (%zu differ)",
              rank, n, bad);
        if (n == nmax) printf("rank %d: digest %016llx\n", rank, (unsigned long long)digest(h, n));

        fill(be, d, h, n);
        comm_reduce_scatter_sum_f32(c, d, n);
        be_to_host(be, h, d, n * sizeof(float));
        bad = count_bad(h, lo, hi);
        check(bad == 0,
              "rank %d: reduce_scatter n=%zu: own shard [%zu,%zu) is the sum (%zu differ)", rank, n,
              lo, hi, bad);
        /* everything outside the own shard must come from the allgather */
        for (size_t i = 0; i < n; i++)
            if (i < lo || i >= hi) h[i] = NAN;
        be_to_device(be, d, h, n * sizeof(float));
        comm_allgather_f32(c, d, n);
        be_to_host(be, h, d, n * sizeof(float));
        bad = count_bad(h, 0, n);
        check(bad == 0,
              "rank %d: reduce_scatter + allgather n=%zu rebuilds the whole sum (%zu "
              "differ)",
              rank, n, bad);
    }
    be_free(be, d);
    free(h);
}

/* The window collectives (ZeRO-2's gradient windows): windows of a buffer of n elements that
 * start and end inside shards, span several, or fall in one; each rank's part of the window
 * must hold the rank-order sum of the whole buffer's elements there, and the allgather must
 * rebuild the window from the parts alone. */
static void check_windows(Comm *c, Backend be) {
    const size_t n = 4099;
    const size_t wins[][2] = {{0, 4099}, {1, 4098}, {1000, 1500}, {2050, 3}, {4098, 1}, {7, 0}};
    float *h = xmalloc(n * sizeof(float));
    float *d = be_alloc(be, n * sizeof(float));
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++) {
        const size_t at = wins[k][0], len = wins[k][1];
        size_t lo, hi, slo, shi, bad = 0;
        comm_shard_range(n, rank, size, &slo, &shi);
        lo = slo > at ? slo : at; /* the own part, in buffer coordinates */
        hi = shi < at + len ? shi : at + len;
        if (hi < lo) hi = lo;
        for (size_t i = 0; i < len; i++) h[i] = value(rank, at + i);
        be_to_device(be, d, h, (len ? len : 1) * sizeof(float));
        comm_reduce_scatter_window_f32(c, d, at, len, n);
        be_to_host(be, h, d, (len ? len : 1) * sizeof(float));
        for (size_t i = lo; i < hi; i++) bad += !same(h[i - at], expected_sum(i));
        check(bad == 0,
              "rank %d: reduce_scatter window [%zu,+%zu): own part [%zu,%zu) is the sum "
              "(%zu differ)",
              rank, at, len, lo, hi, bad);
        for (size_t i = 0; i < len; i++)
            if (at + i < lo || at + i >= hi) h[i] = NAN;
        be_to_device(be, d, h, (len ? len : 1) * sizeof(float));
        comm_allgather_window_f32(c, d, at, len, n);
        be_to_host(be, h, d, (len ? len : 1) * sizeof(float));
        bad = 0;
        for (size_t i = 0; i < len; i++) bad += !same(h[i], expected_sum(at + i));
        check(bad == 0, "rank %d: allgather window [%zu,+%zu) rebuilds the sum (%zu differ)", rank,
              at, len, bad);
    }
    be_free(be, d);
    free(h);
    /* 2-byte elements (ZeRO-3's bf16 weights): each rank's part of the window arrives whole */
    uint16_t *h16 = xmalloc(n * sizeof(uint16_t));
    uint16_t *d16 = be_alloc(be, n * sizeof(uint16_t));
    for (size_t k = 0; k < sizeof wins / sizeof *wins; k++) {
        const size_t at = wins[k][0], len = wins[k][1];
        size_t slo, shi, bad = 0;
        comm_shard_range(n, rank, size, &slo, &shi);
        for (size_t i = 0; i < len; i++) {
            const size_t g = at + i;
            h16[i] = g >= slo && g < shi ? (uint16_t)(g * 40503u >> 3) : 0xFFFF;
        }
        be_to_device(be, d16, h16, (len ? len : 1) * sizeof(uint16_t));
        comm_allgather_window_u16(c, d16, at, len, n);
        be_to_host(be, h16, d16, (len ? len : 1) * sizeof(uint16_t));
        for (size_t i = 0; i < len; i++) bad += h16[i] != (uint16_t)((at + i) * 40503u >> 3);
        check(bad == 0, "rank %d: allgather_u16 window [%zu,+%zu) rebuilds it (%zu differ)", rank,
              at, len, bad);
    }
    be_free(be, d16);
    free(h16);
}

static void check_host_ops(Comm *c, Backend be) {
    /* f64: magnitudes far apart, so only the rank-order sum matches bit for bit */
    enum { M = 5 };
    double v[M], want[M];
    for (int i = 0; i < M; i++) {
        for (int r = 0; r <= size - 1; r++) {
            double x = (r % 2 ? -1.0 : 1.0) * ldexp(1.0 + 0.1 * i, 52 - 30 * r) + 0.3 * i;
            if (r == rank) v[i] = x;
            want[i] = r == 0 ? x : want[i] + x;
        }
    }
    comm_allreduce_sum_f64(c, v, M);
    check(memcmp(v, want, sizeof v) == 0, "rank %d: allreduce_sum_f64 equals the rank-order sum",
          rank);

    float m[3] = {(float)rank, -(float)rank, rank == 1 ? NAN : 0.0f};
    comm_allreduce_max_f32(c, m, 3);
    check(m[0] == (float)(size - 1) && m[1] == 0.0f && (size > 1 ? isnan(m[2]) : m[2] == 0.0f),
          "rank %d: allreduce_max_f32 (max %g, %g; a NaN on rank 1 wins: %g)", rank, m[0], m[1],
          m[2]);

    int32_t flags[3] = {rank, rank * rank, rank % 2}, *all = xmalloc(3 * sizeof(int32_t) * size);
    comm_allgather_i32(c, flags, all, 3);
    int ok = 1;
    for (int r = 0; r < size; r++)
        ok &= all[3 * r] == r && all[3 * r + 1] == r * r && all[3 * r + 2] == r % 2;
    check(ok, "rank %d: allgather_i32 of group flags, in rank order", rank);
    free(all);

    char word[24], *words = xmalloc(sizeof word * size);
    snprintf(word, sizeof word, "hello-from-%03d", rank);
    comm_allgather_bytes(c, word, words, sizeof word);
    ok = 1;
    for (int r = 0; r < size; r++) {
        char w[24];
        snprintf(w, sizeof w, "hello-from-%03d", r);
        ok &= strcmp(words + sizeof word * r, w) == 0;
    }
    check(ok, "rank %d: allgather_bytes", rank);
    free(words);

    enum { B = 10007 };
    unsigned char *bytes = xmalloc(B);
    for (int i = 0; i < B; i++) bytes[i] = rank == 0 ? (unsigned char)(i * 7 + 1) : 0;
    comm_broadcast(c, bytes, B);
    ok = 1;
    for (int i = 0; i < B; i++) ok &= bytes[i] == (unsigned char)(i * 7 + 1);
    check(ok, "rank %d: broadcast of %d bytes from rank 0", rank, B);

    float fb[B], *d = be_alloc(be, sizeof fb);
    for (int i = 0; i < B; i++) fb[i] = rank == 0 ? (float)i * 0.5f : -1.0f;
    be_to_device(be, d, fb, sizeof fb);
    comm_broadcast_be(c, d, sizeof fb);
    be_to_host(be, fb, d, sizeof fb);
    ok = 1;
    for (int i = 0; i < B; i++) ok &= fb[i] == (float)i * 0.5f;
    check(ok, "rank %d: broadcast_be of backend memory", rank);
    be_free(be, d);
    free(bytes);
    comm_barrier(c);
}

static void check_counters(Comm *c, Backend be) {
    const size_t n = 1001;
    size_t lo, hi;
    comm_shard_range(n, rank, size, &lo, &hi);
    uint64_t own = hi - lo, rs = (n - own) * 4, ag = own * (uint64_t)(size - 1) * 4;
    float *d = be_alloc(be, n * sizeof(float));
    comm_reset_counters(c);
    comm_allreduce_sum_f32(c, d, n);
    comm_reduce_scatter_sum_f32(c, d, n);
    comm_allgather_f32(c, d, n);
    char b[100] = "";
    comm_broadcast(c, b, sizeof b);
    be_free(be, d);
    check(comm_bytes_sent(c, COMM_OP_ALLREDUCE) == rs + ag &&
              comm_bytes_sent(c, COMM_OP_REDUCE_SCATTER) == rs &&
              comm_bytes_sent(c, COMM_OP_ALLGATHER) == ag &&
              comm_bytes_sent(c, COMM_OP_BROADCAST) == (rank == 0 ? 100u * (size - 1) : 0) &&
              comm_bytes_sent(c, COMM_OP_TOTAL) ==
                  2 * (rs + ag) + (rank == 0 ? 100u * (size - 1) : 0),
          "rank %d: volume counters (allreduce %llu = %llu + %llu bytes)", rank,
          (unsigned long long)comm_bytes_sent(c, COMM_OP_ALLREDUCE), (unsigned long long)rs,
          (unsigned long long)ag);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: comm_worker KIND check SIZE | abort RANK | wait\n");
        return 2;
    }
    const char *dev = getenv("COMM_WORKER_DEVICE");
    Backend be = BACKEND_CPU;
    if (dev && backend_from_name(dev, &be) != DR_OK) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    Comm *c = NULL;
    if (comm_init(&c, argv[1], be) != DR_OK) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    rank = comm_rank(c);
    size = comm_size(c);
    exact = strstr(comm_name(c), "nccl") == NULL;
    test_quiet = 1;

    if (strcmp(argv[2], "abort") == 0 && argc > 3) {
        comm_barrier(c);
        if (rank == atoi(argv[3])) comm_abort(c, 3, "worker asked to abort");
        comm_barrier(c);
        printf("rank %d: passed a barrier that rank %s never reaches\n", rank, argv[3]);
        return 0;
    }
    if (strcmp(argv[2], "wait") == 0) {
        comm_barrier(c);
        comm_finalize(c);
        return 0;
    }
    if (strcmp(argv[2], "check") != 0 || argc < 4) {
        fprintf(stderr, "comm_worker: unknown mode\n");
        return 2;
    }
    check(size == atoi(argv[3]), "rank %d: size %d (expected %s) via %s", rank, size, argv[3],
          comm_name(c));
    check(rank >= 0 && rank < size && comm_local_rank(c) == rank,
          "rank %d: local rank %d (all ranks on one host)", rank, comm_local_rank(c));
    check_sums(c, be);
    check_windows(c, be);
    check_host_ops(c, be);
    check_counters(c, be);
    printf("rank %d: %d passed, %d failed\n", rank, test_passed, test_failed);
    fflush(stdout);
    comm_finalize(c);
    return test_failed ? 1 : 0;
}
