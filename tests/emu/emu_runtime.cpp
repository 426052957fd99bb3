/* The CPU emulation's kernel launches, run by a fiber scheduler. Each block's threads are
 * fibers on this OS thread; a fiber runs until it reaches a barrier (__syncthreads) or a warp
 * collective, and the collective is carried out for all its lanes by whichever lane completes
 * it, so no lane can read a value another lane has already moved past. When nothing can run
 * and threads still wait, the launch is reported as a deadlock, naming the kernel and block
 * and counting who waits where. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <map>
#include <string>
#include <vector>
#include "cuda_runtime.h"

dim3 threadIdx, blockIdx, blockDim, gridDim;

/* The most dynamic shared memory a block may opt into: an H100's 227 KB, or
 * DENSERL_EMU_SMEM_KB (163 as an A100, 99 as an L40S) to try the kernels' smaller tiles. */
int emu_env_on(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}

size_t emu_max_dyn_smem(void) {
    static size_t v = 0;
    if (!v) {
        const char *e = getenv("DENSERL_EMU_SMEM_KB");
        const long kb = e && *e ? atol(e) : 227;
        v = (size_t)(kb > 0 && kb <= 227 ? kb : 227) << 10;
    }
    return v;
}

namespace {

enum { F_RUN, F_BLOCK, F_WARP, F_DONE };
enum { OP_EXCHANGE, OP_BALLOT, OP_CUSTOM, OP_SYNC };

struct Fiber {
    void *sp;
    int state;
    dim3 tid;
    unsigned lane, warp;
    /* the collective this lane waits in: what it posts and where its answer goes */
    int op;
    unsigned mask;
    uint64_t value, result;
    int src;
    const void *send;
    void *recv;
    emu_warp_fn fn;
    int cp_groups; /* cp.async groups committed */
};

const size_t STACK_BYTES = 64 << 10;
const uint64_t STACK_CANARY = 0x5eed0f57ac4ca7a1ull;
const int MAX_THREADS = 1024;
char *g_stacks;
Fiber g_fibers[MAX_THREADS];
unsigned g_live_lanes[MAX_THREADS / 32], g_waiting_lanes[MAX_THREADS / 32];
int g_threads, g_live, g_at_block;
Fiber *g_cur;
void *g_sched_sp;
void (*g_body)(void *);
void *g_ctx;
const char *g_kernel;
char *g_dyn_smem; /* exactly the launch's bytes, so that a read past them is caught */
size_t g_dyn_bytes;
cudaError_t g_launch_error = cudaSuccess;
uint64_t g_block_serial; /* counts blocks run, so each knows its shared arrays' state */

/* A thread's cp.async copies in flight: the bytes read at the issue, landing at a wait. */
struct CpAsync {
    void *dst;
    unsigned char data[16];
    int bytes;
    int group; /* the commit group; the open group is Fiber's cp_groups */
};
std::vector<CpAsync> g_cp_pending[MAX_THREADS];

[[noreturn]] void emu_fatal(const char *what) {
    fflush(stdout);
    fprintf(stderr, "fatal: CUDA emulation: kernel %s, block (%u,%u,%u): %s\n",
            g_kernel ? g_kernel : "?", blockIdx.x, blockIdx.y, blockIdx.z, what);
    abort();
}

} // namespace

/* A word at the bottom of each stack, checked when its thread ends: an overflow into the
 * neighbour's stack is reported instead of corrupting it unseen. */
static uint64_t *emu_canary(int i) {
    return (uint64_t *)(g_stacks + (size_t)i * STACK_BYTES);
}

/* ---- context switching ---- */
#if defined(__x86_64__)
extern "C" void emu_ctx_switch(void **save_sp, void *new_sp);
asm(R"(
    .text
    .globl emu_ctx_switch
    .type emu_ctx_switch, @function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch
)");
#else
#error "the CUDA emulation's fibers switch with x86-64 code only"
#endif

/* Built with AddressSanitizer (make test-emu EMU_ASAN=1), the emulation tells it of every
 * stack switch, so that the kernels' loads and stores out of their buffers are reported
 * while the fibers' own stacks are not taken for errors. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif
const void *g_sched_bottom;
size_t g_sched_size;

/* Switches from the running context to the one saved at to_sp, whose stack is thread `to`'s
 * (or the launching thread's, -1). */
static void emu_jump(void **save_sp, void *to_sp, int to) {
#ifdef EMU_ASAN
    void *fake = NULL;
    if (to < 0)
        __sanitizer_start_switch_fiber(&fake, g_sched_bottom, g_sched_size);
    else
        __sanitizer_start_switch_fiber(&fake, g_stacks + (size_t)to * STACK_BYTES, STACK_BYTES);
    emu_ctx_switch(save_sp, to_sp);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)to;
    emu_ctx_switch(save_sp, to_sp);
#endif
}

/* The order in which runnable threads go next (DENSERL_EMU_SCHEDULE): "rr" (the default)
 * takes the next lane of the current warp, then the next warp's, close to warps in step and
 * the fewest switches; "low" takes the lowest-numbered, so the first warps run ahead of the
 * others, and "high" the highest; "random" a seeded random one. A kernel that is right runs
 * the same under every order; a missing barrier shows under one or another. */
enum { SCHED_RR, SCHED_LOW, SCHED_HIGH, SCHED_RANDOM };
static int g_schedule;

static int emu_schedule(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("DENSERL_EMU_SCHEDULE");
        v = !e || !*e || !strcmp(e, "rr") ? SCHED_RR
            : !strcmp(e, "low")           ? SCHED_LOW
            : !strcmp(e, "high")          ? SCHED_HIGH
            : !strcmp(e, "random")        ? SCHED_RANDOM
                                          : -2;
        if (v == -2) {
            fprintf(stderr, "error: DENSERL_EMU_SCHEDULE=%s: expected rr, low, high or random\n",
                    e);
            exit(2);
        }
    }
    return v;
}

static int emu_first_to_try(int me) {
    static uint64_t x = 0x9e3779b97f4a7c15ull;
    switch (g_schedule) {
    case SCHED_LOW:
        return 0;
    case SCHED_HIGH:
        return g_threads - 1;
    case SCHED_RANDOM:
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        return (int)(x % (uint64_t)g_threads);
    default:
        return (me + 1) % g_threads;
    }
}

static void emu_switch(Fiber *from, Fiber *to) {
    g_cur = to;
    threadIdx = to->tid;
    emu_jump(&from->sp, to->sp, (int)(to - g_fibers));
}

/* Goes to the next runnable fiber, directly, or back to the launch when none can run: then
 * the block is finished, or it is deadlocked. */
static void emu_yield(void) {
    Fiber *from = g_cur;
    const int me = (int)(from - g_fibers);
    if (g_schedule == SCHED_RR) {
        /* the rest of this warp first, as a GPU keeps a warp's lanes together */
        const int base = me & ~31, end = g_threads - base < 32 ? g_threads : base + 32;
        for (int i = me + 1; i < end; i++)
            if (g_fibers[i].state == F_RUN) return emu_switch(from, &g_fibers[i]);
        for (int i = base; i < me; i++)
            if (g_fibers[i].state == F_RUN) return emu_switch(from, &g_fibers[i]);
    }
    const int first = emu_first_to_try(me);
    const int step = g_schedule == SCHED_HIGH ? -1 : 1;
    for (int k = 0, i = first; k < g_threads; k++) {
        Fiber *to = &g_fibers[i];
        if (to->state == F_RUN) {
            if (to == from) return;
            return emu_switch(from, to);
        }
        i += step;
        if (i == g_threads) i = 0;
        if (i < 0) i = g_threads - 1;
    }
    emu_jump(&from->sp, g_sched_sp, -1);
}

static void emu_release_block(void);
static bool emu_try_release_warp(unsigned warp, unsigned mask);

/* Lands thread f's cp.async copies of the groups before group `before`, in issue order. */
static void emu_cp_land(Fiber *f, int before) {
    std::vector<CpAsync> &q = g_cp_pending[f - g_fibers];
    size_t kept = 0;
    for (size_t i = 0; i < q.size(); i++) {
        if (q[i].group < before)
            memcpy(q[i].dst, q[i].data, (size_t)q[i].bytes);
        else
            q[kept++] = q[i];
    }
    q.resize(kept);
}

void emu_cp_async(void *dst, const void *src, int bytes, bool valid) {
    if (bytes != 4 && bytes != 8 && bytes != 16)
        emu_fatal("cp.async of other than 4, 8 or 16 bytes");
    /* the PTX ISA: both addresses aligned to the copy's size (a GPU stops the kernel with a
     * misaligned-address error), the source's even when nothing is read from it */
    if ((uintptr_t)dst % (uintptr_t)bytes || (uintptr_t)src % (uintptr_t)bytes)
        emu_fatal("cp.async address not aligned to its size");
    CpAsync c;
    c.dst = dst;
    c.bytes = bytes;
    c.group = g_cur->cp_groups;
    if (valid)
        memcpy(c.data, src, (size_t)bytes);
    else
        memset(c.data, 0, (size_t)bytes);
    g_cp_pending[g_cur - g_fibers].push_back(c);
}

void emu_cp_async_commit(void) {
    g_cur->cp_groups++;
}

void emu_cp_async_wait(int n) {
    emu_cp_land(g_cur, g_cur->cp_groups - n);
}

static void emu_fiber_entry(void) {
#ifdef EMU_ASAN
    /* first arrival on this stack: from the launching thread's, whose extent is learnt here */
    const void *from_bottom = NULL;
    size_t from_size = 0;
    __sanitizer_finish_switch_fiber(NULL, &from_bottom, &from_size);
    if (!g_sched_bottom && g_cur == g_fibers)
        g_sched_bottom = from_bottom, g_sched_size = from_size;
#endif
    g_body(g_ctx);
    Fiber *f = g_cur;
    if (*emu_canary((int)(f - g_fibers)) != STACK_CANARY)
        emu_fatal("a thread overflowed its stack");
    emu_cp_land(f, INT32_MAX); /* what the thread never waited for lands anyway */
    f->state = F_DONE;
    g_live--;
    g_live_lanes[f->warp] &= ~(1u << f->lane);
    /* the exit may complete a barrier or a collective the others wait in */
    if (g_live > 0 && g_at_block == g_live) emu_release_block();
    for (int i = (int)f->warp * 32; i < g_threads && i < (int)f->warp * 32 + 32; i++)
        if (g_fibers[i].state == F_WARP && emu_try_release_warp(f->warp, g_fibers[i].mask)) break;
    emu_yield();
    emu_fatal("a finished thread was resumed");
}

static void emu_fiber_start(Fiber *f, int i) {
    /* an initial frame that emu_ctx_switch pops into emu_fiber_entry, 16-byte aligned as the
     * ABI wants at a call */
    uintptr_t top = (uintptr_t)(g_stacks + (size_t)(i + 1) * STACK_BYTES);
    /* stacks a power of two apart would share cache sets: each starts at its own offset */
    top -= (uintptr_t)(i * 4160) % (16 << 10);
    void **sp = (void **)top;
    *--sp = NULL;
    *--sp = (void *)emu_fiber_entry;
    for (int r = 0; r < 6; r++) *--sp = NULL;
    f->sp = sp;
}

static void emu_stacks_init(void) {
    if (g_stacks) return;
    const size_t total = STACK_BYTES * MAX_THREADS;
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) emu_fatal("no memory for the fiber stacks");
    g_stacks = (char *)p;
    /* every switch lands on another stack: huge pages spare the TLB most of those misses */
    madvise(p, total, MADV_HUGEPAGE);
}

/* ---- barriers and collectives ---- */
static void emu_release_block(void) {
    /* __syncthreads_count and friends: the count of posted predicates */
    uint64_t count = 0;
    for (int i = 0; i < g_threads; i++)
        if (g_fibers[i].state == F_BLOCK) count += g_fibers[i].value != 0;
    for (int i = 0; i < g_threads; i++)
        if (g_fibers[i].state == F_BLOCK) {
            g_fibers[i].state = F_RUN;
            g_fibers[i].result = count;
        }
    g_at_block = 0;
}

static uint64_t emu_block_barrier(uint64_t pred) {
    Fiber *f = g_cur;
    f->state = F_BLOCK;
    f->op = OP_SYNC;
    f->value = pred;
    if (++g_at_block == g_live)
        emu_release_block();
    else
        emu_yield();
    /* the releasing thread itself is still marked runnable by emu_release_block */
    return f->result;
}

void __syncthreads(void) {
    emu_block_barrier(0);
}
int __syncthreads_count(int pred) {
    return (int)emu_block_barrier(pred != 0);
}
int __syncthreads_or(int pred) {
    return emu_block_barrier(pred != 0) != 0;
}
int __syncthreads_and(int pred) {
    const int live = g_live;
    return (int)emu_block_barrier(pred != 0) == live;
}

/* Completes the collective of lanes waiting with this mask when every live lane of the mask
 * waits in it; the answers are written into each lane's fiber before any lane goes on. */
static bool emu_try_release_warp(unsigned warp, unsigned mask) {
    const unsigned need = mask & g_live_lanes[warp];
    if ((g_waiting_lanes[warp] & need) != need) return false;
    Fiber *w = &g_fibers[warp * 32];
    const int op = w[__builtin_ctz(need)].op;
    uint64_t ballot = 0;
    for (unsigned b = need; b; b &= b - 1) {
        const Fiber *f = &w[__builtin_ctz(b)];
        if (f->mask != mask) return false; /* in another collective, of other lanes */
        if (f->op != op) emu_fatal("lanes of one mask wait in different warp collectives");
        ballot |= (uint64_t)(f->value != 0) << __builtin_ctz(b);
    }
    if (op == OP_CUSTOM) {
        /* ldmatrix, mma: the whole warp's operation, carried out once for every lane */
        const void *send[32] = {0};
        void *recv[32] = {0};
        for (unsigned b = need; b; b &= b - 1)
            send[__builtin_ctz(b)] = w[__builtin_ctz(b)].send,
            recv[__builtin_ctz(b)] = w[__builtin_ctz(b)].recv;
        w[__builtin_ctz(need)].fn(send, recv, need);
    }
    for (unsigned b = need; b; b &= b - 1) {
        Fiber *f = &w[__builtin_ctz(b)];
        if (op == OP_EXCHANGE) {
            const int s = f->src;
            f->result = s >= 0 && s < 32 && (need >> s & 1u) ? w[s].value : ~0ull;
        } else if (op == OP_BALLOT) {
            f->result = ballot;
        }
        f->state = F_RUN;
    }
    g_waiting_lanes[warp] &= ~need;
    return true;
}

static void emu_warp_wait(int op, unsigned mask) {
    Fiber *f = g_cur;
    if (!(mask >> f->lane & 1u)) emu_fatal("a warp collective's mask leaves out the calling lane");
    f->state = F_WARP;
    f->op = op;
    f->mask = mask;
    g_waiting_lanes[f->warp] |= 1u << f->lane;
    if (!emu_try_release_warp(f->warp, mask)) emu_yield();
}

unsigned emu_lane(void) {
    return g_cur->lane;
}

uint64_t emu_exchange(unsigned mask, uint64_t v, int src) {
    g_cur->value = v;
    g_cur->src = src;
    emu_warp_wait(OP_EXCHANGE, mask);
    return g_cur->result;
}

unsigned __ballot_sync(unsigned mask, int pred) {
    g_cur->value = pred != 0;
    emu_warp_wait(OP_BALLOT, mask);
    return (unsigned)g_cur->result;
}

void emu_warp_collective(unsigned mask, emu_warp_fn fn, const void *mine, void *out) {
    g_cur->send = mine;
    g_cur->recv = out;
    g_cur->fn = fn;
    emu_warp_wait(OP_CUSTOM, mask);
}

void __syncwarp(unsigned mask) {
    g_cur->value = 0;
    emu_warp_wait(OP_BALLOT, mask);
}

void emu_shared_fresh(void *p, size_t bytes, unsigned long long *filled_in) {
    if (*filled_in != g_block_serial) {
        memset(p, 0xff, bytes);
        *filled_in = g_block_serial;
    }
}

/* ---- shared-memory bank conflicts of ldmatrix (DENSERL_EMU_BANKS=1) ---- */

namespace {
struct LdsmCount {
    unsigned long long loads, wavefronts;
};
std::map<std::string, LdsmCount> g_ldsm;

void emu_ldsm_report(void) {
    for (const auto &k : g_ldsm) {
        const LdsmCount &c = k.second;
        printf("emu: ldmatrix in %s: %llu x4 loads, %llu wavefronts (%.3f of the fewest)%s\n",
               k.first.c_str(), c.loads, c.wavefronts, (double)c.wavefronts / (4.0 * c.loads),
               c.wavefronts > 4 * c.loads ? ": bank conflicts" : ", conflict-free");
    }
}
} // namespace

/* An ldmatrix.x4 reads 4 matrices of 8 rows of 16 bytes, one wavefront of the 32 banks per
 * matrix at best; 8 rows in the same 16-byte bank group at different addresses take 8. */
void emu_count_ldsm(const void *const rows[32]) {
    static int on = -1;
    if (on < 0) {
        on = emu_env_on("DENSERL_EMU_BANKS");
        if (on) atexit(emu_ldsm_report);
    }
    if (!on) return;
    unsigned waves = 0;
    for (int m = 0; m < 4; m++) {
        uintptr_t seen[8];
        int n = 0, per_group[8] = {0};
        for (int l = 8 * m; l < 8 * m + 8; l++) {
            const uintptr_t a = (uintptr_t)rows[l] >> 4;
            bool dup = false;
            for (int j = 0; j < n; j++) dup |= seen[j] == a;
            if (dup) continue; /* the same row again: a broadcast */
            seen[n++] = a;
            per_group[a % 8]++;
        }
        int most = 0;
        for (int g = 0; g < 8; g++) most = per_group[g] > most ? per_group[g] : most;
        waves += (unsigned)most;
    }
    LdsmCount &c = g_ldsm[g_kernel ? g_kernel : "?"];
    c.loads++;
    c.wavefronts += waves;
}

void emu_launch_bound(long max_threads) {
    if ((long)blockDim.x * blockDim.y * blockDim.z > max_threads)
        emu_fatal("a block of more threads than the kernel's __launch_bounds__");
}

void *emu_dyn_smem(void) {
    return g_dyn_smem;
}

/* ---- launches ---- */
static void emu_deadlock(void) {
    int at_block = 0, at_warp = 0, done = 0;
    for (int i = 0; i < g_threads; i++) {
        at_block += g_fibers[i].state == F_BLOCK;
        at_warp += g_fibers[i].state == F_WARP;
        done += g_fibers[i].state == F_DONE;
    }
    char msg[200];
    snprintf(msg, sizeof msg,
             "deadlock: %d threads wait at __syncthreads, %d in a warp collective, %d have exited",
             at_block, at_warp, done);
    emu_fatal(msg);
}

static void emu_run_block(void) {
    const int nx = (int)blockDim.x, ny = (int)blockDim.y;
    for (int i = 0; i < g_threads; i++) {
        Fiber *f = &g_fibers[i];
        *f = Fiber();
        g_cp_pending[i].clear();
        f->tid = dim3((unsigned)(i % nx), (unsigned)(i / nx % ny), (unsigned)(i / (nx * ny)));
        f->lane = (unsigned)(i % 32);
        f->warp = (unsigned)(i / 32);
        f->state = F_RUN;
#ifdef EMU_ASAN
        /* the frames a finished block's threads left are not this block's */
        ASAN_UNPOISON_MEMORY_REGION(g_stacks + (size_t)i * STACK_BYTES, STACK_BYTES);
#endif
        emu_fiber_start(f, i);
        *emu_canary(i) = STACK_CANARY;
    }
    for (int w = 0; w < (g_threads + 31) / 32; w++) {
        const int n = g_threads - w * 32 < 32 ? g_threads - w * 32 : 32;
        g_live_lanes[w] = n == 32 ? 0xffffffffu : (1u << n) - 1u;
        g_waiting_lanes[w] = 0;
    }
    g_live = g_threads;
    g_at_block = 0;
    g_block_serial++;
    /* dynamic shared memory starts as NaN bytes, so a read before any write shows */
    if (g_dyn_bytes) memset(g_dyn_smem, 0xff, g_dyn_bytes);
    g_cur = &g_fibers[0];
    threadIdx = g_cur->tid;
    emu_jump(&g_sched_sp, g_cur->sp, 0);
    if (g_live > 0) emu_deadlock();
}

static bool emu_reverse_blocks(void) {
    static int v = -1;
    if (v < 0) v = emu_env_on("DENSERL_EMU_REVERSE_BLOCKS");
    return v;
}

void emu_launch_raw(const char *name, emu_cfg cfg, void (*body)(void *), void *ctx) {
    const unsigned long threads = (unsigned long)cfg.block.x * cfg.block.y * cfg.block.z;
    if (threads == 0 || threads > MAX_THREADS || cfg.block.z > 64 || cfg.grid.x == 0 ||
        cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.x > 2147483647u || cfg.grid.y > 65535 ||
        cfg.grid.z > 65535 || cfg.smem > emu_max_dyn_smem()) {
        fprintf(stderr,
                "CUDA emulation: kernel %s: invalid launch (grid %u,%u,%u, block %u,%u,%u, "
                "%zu bytes of dynamic shared memory)\n",
                name, cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.block.y, cfg.block.z,
                cfg.smem);
        g_launch_error = cudaErrorInvalidConfiguration;
        return;
    }
    emu_stacks_init();
    g_schedule = emu_schedule();
    g_kernel = name;
    g_body = body;
    g_ctx = ctx;
    g_threads = (int)threads;
    g_dyn_bytes = cfg.smem;
    if (posix_memalign((void **)&g_dyn_smem, 128, cfg.smem ? cfg.smem : 1) != 0)
        emu_fatal("no memory for the dynamic shared memory");
    gridDim = cfg.grid;
    blockDim = cfg.block;
    const unsigned long nb = (unsigned long)cfg.grid.x * cfg.grid.y * cfg.grid.z;
    for (unsigned long k = 0; k < nb; k++) {
        const unsigned long b = emu_reverse_blocks() ? nb - 1 - k : k;
        blockIdx = dim3((unsigned)(b % cfg.grid.x), (unsigned)(b / cfg.grid.x % cfg.grid.y),
                        (unsigned)(b / ((unsigned long)cfg.grid.x * cfg.grid.y)));
        emu_run_block();
    }
    free(g_dyn_smem);
    g_dyn_smem = NULL;
    g_kernel = NULL;
}

cudaError_t emu_launch_error(void) {
    return g_launch_error;
}
void emu_clear_launch_error(void) {
    g_launch_error = cudaSuccess;
}

cudaError_t emu_func_set_max_dyn_smem(const void *, int bytes) {
    return bytes >= 0 && (size_t)bytes <= emu_max_dyn_smem() ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t emu_occupancy(int *blocks, int threads, size_t smem) {
    int b = threads > 0 ? 2048 / threads : 1;
    if (smem && (int)((228u << 10) / smem) < b) b = (int)((228u << 10) / smem);
    *blocks = b > 32 ? 32 : b;
    return cudaSuccess;
}
