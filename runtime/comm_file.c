/* The file transport: ranks that share a directory (DENSERL_RENDEZVOUS_DIR) and nothing
 * else -- Slurm tasks without MPI, or processes started by hand. It carries the NCCL id
 * on GPUs and, slowly but simply, every host collective: for op number s each rank writes
 * one file "<tag>.<s>.r<rank>" (to a temporary name, then renamed, so a reader never sees
 * it half-written) and waits until every other rank's file of op s exists, reading the
 * parts addressed to it. Every op is therefore also a barrier, which is what makes the
 * clean-up safe: when all files of op s exist, every rank has finished reading op s-1, so
 * each rank deletes its own file of op s-1. Waiting checks an abort marker
 * "<tag>.abort" (written by comm_abort on any rank) and gives up after
 * DENSERL_COMM_TIMEOUT seconds, so a dead peer ends the job instead of hanging it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "comm_internal.h"
#include "error.h"
#include "fileio.h"

#define FILE_MAGIC 0x64726c636f6d6d00ull /* "drlcomm\0" */

enum { OP_HELLO = 1, OP_ALLTOALL, OP_ALLGATHER, OP_BROADCAST, OP_BARRIER };

static const char *op_label(int op) {
    static const char *names[] = {"?", "hello", "alltoallv", "allgatherv", "broadcast", "barrier"};
    return op >= OP_HELLO && op <= OP_BARRIER ? names[op] : "?";
}

typedef struct {
    char dir[2048];
    char tag[128];
    uint64_t seq;   /* number of the next op */
    uint64_t *lens; /* (size) block lengths read from a peer's header */
} FileState;

/* The header every op file starts with, followed by nblocks uint64 lengths and the data. */
typedef struct {
    uint64_t magic, op, seq, nblocks;
} FileHeader;

typedef struct {
    int fd;
    uint64_t nblocks;
    size_t data_off;
} Peer;

static void op_path(const FileState *st, uint64_t seq, int rank, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.%010llu.r%d", st->dir, st->tag, (unsigned long long)seq, rank);
}
static void bye_path(const FileState *st, int rank, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.bye.r%d", st->dir, st->tag, rank);
}
static void abort_path(const FileState *st, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.abort", st->dir, st->tag);
}

/* Exits (the marker's code) when any rank has aborted the job. */
static void check_abort(Comm *c) {
    FileState *st = c->impl;
    char path[2300];
    abort_path(st, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return;
    int code = 1, who = -1;
    char msg[1024] = "";
    if (fscanf(f, "%d %d ", &code, &who) == 2 && fgets(msg, sizeof msg, f)) {
        size_t k = strlen(msg);
        if (k && msg[k - 1] == '\n') msg[k - 1] = '\0';
    }
    fclose(f);
    fprintf(stderr, "rank %d: stopping: rank %d aborted the job: %s\n", c->rank, who, msg);
    fflush(stderr);
    exit(code ? code : 1);
}

static void write_all(Comm *c, int fd, const void *p, size_t n, const char *path) {
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) comm_failf(c, "%s: write failed: %s", path, strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

static void read_at(Comm *c, int fd, void *p, size_t n, size_t off, int peer) {
    unsigned char *b = p;
    while (n) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            comm_failf(c, "collective file of rank %d is short or unreadable: %s", peer,
                       r < 0 ? strerror(errno) : "unexpected end of file");
        b += r;
        n -= (size_t)r;
        off += (size_t)r;
    }
}

/* Writes this rank's file of the current op: nblocks blocks, block i being lens[i] bytes at
 * base + i*stride. No fsync: the file is read by peers, not kept, and rename alone makes it
 * appear whole to them. */
static void publish(Comm *c, int op, int nblocks, const unsigned char *base, const size_t *lens,
                    size_t stride) {
    FileState *st = c->impl;
    char path[2300], tmp[2310];
    op_path(st, st->seq, c->rank, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) comm_failf(c, "%s: cannot create: %s", tmp, strerror(errno));
    FileHeader h = {FILE_MAGIC, (uint64_t)op, st->seq, (uint64_t)nblocks};
    write_all(c, fd, &h, sizeof h, tmp);
    for (int i = 0; i < nblocks; i++) st->lens[i] = lens[i];
    write_all(c, fd, st->lens, (size_t)nblocks * sizeof(uint64_t), tmp);
    for (int i = 0; i < nblocks; i++)
        if (lens[i]) write_all(c, fd, base + (size_t)i * stride, lens[i], tmp);
    if (close(fd) != 0) comm_failf(c, "%s: close failed: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) comm_failf(c, "%s: rename failed: %s", path, strerror(errno));
}

/* Opens PATH once it exists, polling with a growing pause (10 us to 2 ms); aborts the job
 * when another rank did, or when waiting passes the timeout. */
static int wait_open(Comm *c, const char *path, int peer, const char *what) {
    double t0 = comm_now();
    long pause_ns = 10000;
    for (;;) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) return fd;
        if (errno != ENOENT) comm_failf(c, "%s: cannot open: %s", path, strerror(errno));
        check_abort(c);
        if (comm_now() - t0 > c->timeout_s)
            comm_failf(c, "rank %d did not arrive at %s within %g s (DENSERL_COMM_TIMEOUT)", peer,
                       what, c->timeout_s);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 2000000) pause_ns *= 2;
    }
}

/* Waits for rank r's file of the current op and checks that it is the same op. */
static void open_peer(Comm *c, int r, int op, Peer *p) {
    FileState *st = c->impl;
    char path[2300], what[96];
    op_path(st, st->seq, r, path, sizeof path);
    snprintf(what, sizeof what, "collective #%llu (%s)", (unsigned long long)st->seq, op_label(op));
    p->fd = wait_open(c, path, r, what);
    FileHeader h;
    read_at(c, p->fd, &h, sizeof h, 0, r);
    if (h.magic != FILE_MAGIC || h.seq != st->seq)
        comm_failf(c, "%s: not a collective file of this run", path);
    if (h.op != (uint64_t)op)
        comm_failf(c, "collective #%llu: this rank is in %s but rank %d is in %s",
                   (unsigned long long)st->seq, op_label(op), r, op_label((int)h.op));
    if (h.nblocks > (uint64_t)c->size) comm_failf(c, "%s: corrupt header", path);
    p->nblocks = h.nblocks;
    read_at(c, p->fd, st->lens, (size_t)h.nblocks * sizeof(uint64_t), sizeof h, r);
    p->data_off = sizeof h + (size_t)h.nblocks * sizeof(uint64_t);
}

/* Block i of an opened peer file into dst, which expects exactly want bytes. Block lengths
 * must be read (st->lens) before another peer is opened. */
static void read_block(Comm *c, Peer *p, int r, uint64_t i, void *dst, size_t want) {
    FileState *st = c->impl;
    if (i >= p->nblocks || st->lens[i] != want)
        comm_failf(c,
                   "collective #%llu: rank %d sent %llu bytes where %zu were expected (do all "
                   "ranks pass the same sizes?)",
                   (unsigned long long)st->seq, r,
                   (unsigned long long)(i < p->nblocks ? st->lens[i] : 0), want);
    size_t off = p->data_off;
    for (uint64_t k = 0; k < i; k++) off += st->lens[k];
    if (want) read_at(c, p->fd, dst, want, off, r);
}

/* The op is complete on this rank: every peer has written its file of this op, so every
 * peer is done reading the previous one, and ours of the previous op can go. */
static void finish_op(Comm *c) {
    FileState *st = c->impl;
    if (st->seq > 0) {
        char path[2300];
        op_path(st, st->seq - 1, c->rank, path, sizeof path);
        unlink(path);
    }
    st->seq++;
}

/* ---- the transport ---- */

static void file_alltoallv(Comm *c, const void *send, const size_t *scount, void *recv,
                           const size_t *rcount, size_t stride) {
    const int me = c->rank;
    publish(c, OP_ALLTOALL, c->size, send, scount, stride);
    CHECK(scount[me] == rcount[me]);
    memcpy((unsigned char *)recv + (size_t)me * stride,
           (const unsigned char *)send + (size_t)me * stride, scount[me]);
    for (int r = 0; r < c->size; r++) {
        if (r == me) continue;
        Peer p;
        open_peer(c, r, OP_ALLTOALL, &p);
        read_block(c, &p, r, (uint64_t)me, (unsigned char *)recv + (size_t)r * stride, rcount[r]);
        close(p.fd);
    }
    finish_op(c);
}

static void file_allgatherv(Comm *c, void *recv, const size_t *count, size_t stride) {
    const int me = c->rank;
    unsigned char *base = recv;
    publish(c, OP_ALLGATHER, 1, base + (size_t)me * stride, &count[me], 0);
    for (int r = 0; r < c->size; r++) {
        if (r == me) continue;
        Peer p;
        open_peer(c, r, OP_ALLGATHER, &p);
        read_block(c, &p, r, 0, base + (size_t)r * stride, count[r]);
        close(p.fd);
    }
    finish_op(c);
}

/* Every rank writes (rank 0 the data, the others nothing) and waits for all: see the
 * clean-up rule at the top. */
static void file_broadcast(Comm *c, void *buf, size_t bytes) {
    size_t len = c->rank == 0 ? bytes : 0;
    publish(c, OP_BROADCAST, 1, buf, &len, 0);
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank) continue;
        Peer p;
        open_peer(c, r, OP_BROADCAST, &p);
        if (r == 0) read_block(c, &p, 0, 0, buf, bytes);
        close(p.fd);
    }
    finish_op(c);
}

static void file_barrier(Comm *c) {
    publish(c, OP_BARRIER, 0, NULL, NULL, 0);
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank) continue;
        Peer p;
        open_peer(c, r, OP_BARRIER, &p);
        close(p.fd);
    }
    finish_op(c);
}

/* The marker holds "code rank message"; it stays after the job so a rerun in the same
 * directory is told what happened instead of meeting stale files. */
static void file_abort(Comm *c, int code, const char *message) {
    FileState *st = c->impl;
    char path[2300], tmp[2320], text[1200];
    abort_path(st, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.r%d", path, c->rank);
    int n = snprintf(text, sizeof text, "%d %d %s\n", code, c->rank, message);
    if (n < 0 || (size_t)n >= sizeof text) n = (int)sizeof text - 1;
    FILE *f = fopen(tmp, "w");
    if (f) {
        fwrite(text, 1, (size_t)n, f);
        if (fclose(f) == 0) rename(tmp, path);
    }
    exit(code);
}

static void file_poll(Comm *c) {
    check_abort(c);
}

/* Ranks other than 0 leave a "bye" file and go; rank 0 waits for all of them and then
 * removes what is left (each rank's file of the last op and the bye files). */
static void file_finalize(Comm *c) {
    FileState *st = c->impl;
    char path[2300];
    if (c->size > 1) {
        if (c->rank != 0) {
            bye_path(st, c->rank, path, sizeof path);
            char tmp[2310];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || close(fd) != 0 || rename(tmp, path) != 0)
                comm_failf(c, "%s: cannot write: %s", path, strerror(errno));
        } else {
            for (int r = 1; r < c->size; r++) {
                bye_path(st, r, path, sizeof path);
                close(wait_open(c, path, r, "comm_finalize"));
            }
            for (int r = 0; r < c->size; r++) {
                if (st->seq > 0) {
                    op_path(st, st->seq - 1, r, path, sizeof path);
                    unlink(path);
                }
                bye_path(st, r, path, sizeof path);
                unlink(path);
            }
        }
    }
    free(st->lens);
    free(st);
    c->impl = NULL;
}

static const CommTransport file_transport = {
    .alltoallv = file_alltoallv,
    .allgatherv = file_allgatherv,
    .broadcast = file_broadcast,
    .barrier = file_barrier,
    .abort = file_abort,
    .poll = file_poll,
    .finalize = file_finalize,
};

/* ---- opening ---- */

static int env_int(const char *name, int *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < 0 || x > 1000000) return -1;
    *out = (int)x;
    return 1;
}

static int read_rank_size(Comm *c) {
    const char *rn = "DENSERL_RANK", *sn = "DENSERL_WORLD_SIZE";
    if (!getenv(rn) && !getenv(sn)) {
        rn = "SLURM_PROCID";
        sn = "SLURM_NTASKS";
    }
    int hr = env_int(rn, &c->rank), hs = env_int(sn, &c->size);
    if (hr == 0 || hs == 0)
        return dr_error("communicator \"file\": set DENSERL_RANK and DENSERL_WORLD_SIZE (or run "
                        "under Slurm, which sets SLURM_PROCID and SLURM_NTASKS)");
    if (hr < 0 || hs < 0 || c->size < 1 || c->rank >= c->size)
        return dr_error("communicator \"file\": %s=\"%s\", %s=\"%s\": expected 0 <= rank < size",
                        rn, getenv(rn), sn, getenv(sn));
    return DR_OK;
}

static int read_tag(char *tag, size_t cap) {
    const char *id = getenv("DENSERL_RUN_ID"), *job = getenv("SLURM_JOB_ID");
    if (id && *id) {
        snprintf(tag, cap, "%s", id);
    } else if (job && *job) {
        const char *step = getenv("SLURM_STEP_ID");
        snprintf(tag, cap, "%s.%s", job, step && *step ? step : "0");
    } else {
        snprintf(tag, cap, "run");
    }
    for (const char *p = tag; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            return dr_error("DENSERL_RUN_ID=\"%s\": expected letters, digits, '.', '-' or '_'",
                            tag);
    return DR_OK;
}

/* Files this rank would write already present mean an earlier run with the same tag left
 * them; meeting them would mix two runs, so refuse with a message saying how to fix it. */
static int check_fresh(Comm *c, FileState *st) {
    char path[2300];
    abort_path(st, path, sizeof path);
    if (file_exists(path))
        return dr_error("%s: an earlier run with tag \"%s\" aborted in this directory; remove the "
                        "file, use an empty DENSERL_RENDEZVOUS_DIR or set DENSERL_RUN_ID",
                        path, st->tag);
    DIR *d = opendir(st->dir);
    if (!d)
        return dr_error("%s: cannot read the rendezvous directory: %s", st->dir, strerror(errno));
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".r%d", c->rank);
    size_t tl = strlen(st->tag), sl = strlen(suffix);
    int stale = 0;
    char name[512] = "";
    for (struct dirent *e; (e = readdir(d));) {
        size_t nl = strlen(e->d_name);
        if (nl > tl + sl && strncmp(e->d_name, st->tag, tl) == 0 && e->d_name[tl] == '.' &&
            strcmp(e->d_name + nl - sl, suffix) == 0) {
            stale = 1;
            snprintf(name, sizeof name, "%s", e->d_name);
            break;
        }
    }
    closedir(d);
    if (stale)
        return dr_error("%s: holds %s from an earlier run with tag \"%s\"; use an empty "
                        "DENSERL_RENDEZVOUS_DIR or set DENSERL_RUN_ID",
                        st->dir, name, st->tag);
    return DR_OK;
}

/* The first op: every rank tells its world size and host name, so a rank started with
 * another size is caught here and ranks on one host number themselves for the GPUs. */
typedef struct {
    int32_t size;
    char host[124];
} Hello;

static void hello(Comm *c) {
    Hello mine = {c->size, ""};
    gethostname(mine.host, sizeof mine.host - 1);
    size_t len = sizeof mine;
    publish(c, OP_HELLO, 1, (const unsigned char *)&mine, &len, 0);
    int local = 0;
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank) continue;
        Peer p;
        Hello h;
        open_peer(c, r, OP_HELLO, &p);
        read_block(c, &p, r, 0, &h, sizeof h);
        close(p.fd);
        h.host[sizeof h.host - 1] = '\0';
        if (h.size != c->size)
            comm_failf(c, "rank %d was started with world size %d, this rank with %d", r, h.size,
                       c->size);
        if (r < c->rank && strcmp(h.host, mine.host) == 0) local++;
    }
    finish_op(c);
    c->local_rank = local;
    int env_local;
    if (env_int("DENSERL_LOCAL_RANK", &env_local) == 1) c->local_rank = env_local;
}

int comm_file_open(Comm *c) {
    const char *dir = getenv("DENSERL_RENDEZVOUS_DIR");
    if (!dir || !*dir)
        return dr_error("communicator \"file\": set DENSERL_RENDEZVOUS_DIR to a directory all "
                        "ranks share");
    if (strlen(dir) >= 2000) return dr_error("DENSERL_RENDEZVOUS_DIR: path is too long");
    if (read_rank_size(c) != DR_OK) return DR_ERR;
    FileState *st = xcalloc(1, sizeof *st);
    snprintf(st->dir, sizeof st->dir, "%s", dir);
    if (read_tag(st->tag, sizeof st->tag) != DR_OK || make_dirs(st->dir) != DR_OK ||
        check_fresh(c, st) != DR_OK) {
        free(st);
        return DR_ERR;
    }
    st->lens = xcalloc((size_t)c->size, sizeof *st->lens);
    c->impl = st;
    c->t = &file_transport;
    if (c->size > 1) hello(c);
    return DR_OK;
}
