/* `denserl bench CONFIG.json [--set k=v ...] [--shape NAME | --model-config DIR|config.json]
 * [--warmup W] [--steps S] [--json PATH]`: times W + S real PRIME steps (prime_step, the
 * same code `train` runs) of a randomly initialised model of a named shape on the run
 * config's batch (P prompts x K samples, responses sampled by the model itself up to
 * rl.max_response_tokens, the accuracy filter forced open) and reports, per phase, seconds,
 * tokens/s, achieved TFLOP/s and MFU against the matrix-product rate measured in the same
 * process, with peak memory and the time from process start to the first step.
 *
 * FLOP model (per token of a sequence, the usual dense-transformer count):
 *   forward(ctx) = 2 * P_ne + 2 * d * V + 4 * L * Hq * Dh * ctx
 * where P_ne is the parameter count without the embedding and lm_head matrices (the
 * lm_head product is the 2 d V term, counted once whether or not it is tied), and the last
 * term is QK^T and PV over ctx earlier positions. A packed training pass over N rows of T
 * tokens uses ctx = T / 2 (causal), with the lm_head term for the response tokens only (the
 * positions that have a target: the lm_head skips the others). A backward costs 2 x its
 * forward. Generation counts each response token as one forward at its true context (prompt
 * + tokens so far) and the prompt prefill as decoder-only forwards (no lm_head). Optimizer, norms,
 * rotary and the RL arithmetic are not counted (they are O(params) or O(tokens), not O(params x
 * tokens)). */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "build_info.h"
#include "commands.h"
#include "dist.h"
#include "memplan.h"
#include "model_io.h"
#include "prime.h"
#include "run_config.h"
#include "tokenizer_char.h"
#include "../runtime/bench_floor.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"

void openblas_set_num_threads(int n);

/* Qwen2.5 shapes from their published config.json files, plus a toy one for tests. */
typedef struct {
    const char *name;
    int vocab, d, layers, heads, kv_heads, ff, tied, max_pos;
    float rope_theta;
} BenchShape;

static const BenchShape k_shapes[] = {
    {"qwen2.5-0.5b", 151936, 896, 24, 14, 2, 4864, 1, 32768, 1e6f},
    {"qwen2.5-1.5b", 151936, 1536, 28, 12, 2, 8960, 1, 32768, 1e6f},
    {"qwen2.5-7b", 152064, 3584, 28, 28, 4, 18944, 0, 32768, 1e6f},
    {"tiny", 64, 32, 2, 4, 2, 64, 0, 2048, 1e4f},
};
enum { N_SHAPES = sizeof k_shapes / sizeof k_shapes[0] };

enum { PH_GEN, PH_VERIFY, PH_LOGP, PH_PRM, PH_ADV, PH_POLICY, N_PHASES };
static const char *const k_phase[N_PHASES] = {"generate",   "verify",     "logprobs",
                                              "prm_update", "advantages", "policy_update"};

typedef struct {
    double s, tokens, flop; /* sums over the timed steps */
} PhaseSum;

typedef struct {
    const char *cfg_path, *shape, *model_dir, *json_path;
    char **sets;
    int n_sets, warmup, steps;
} BenchArgs;

static void shape_config(const BenchShape *s, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "qwen2");
    c->vocab = s->vocab;
    c->d_model = s->d;
    c->n_layers = s->layers;
    c->n_heads = s->heads;
    c->n_kv_heads = s->kv_heads;
    c->head_dim = s->d / s->heads;
    c->d_ff = s->ff;
    c->tied = s->tied;
    c->max_pos = s->max_pos;
    c->rope_theta = s->rope_theta;
    c->norm_eps = 1e-6f;
    c->qkv_bias = 1;
}

/* The run config's own "model" section, as `train` would build it. */
static void run_config_shape(const RunConfig *rc, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%.31s", rc->model.model_type);
    c->vocab = rc->model.vocab_size > CHARTOK_VOCAB ? rc->model.vocab_size : CHARTOK_VOCAB;
    c->d_model = rc->model.hidden_size;
    c->n_layers = rc->model.num_hidden_layers;
    c->n_heads = rc->model.num_attention_heads;
    c->n_kv_heads = rc->model.num_key_value_heads;
    c->head_dim = c->n_heads > 0 ? c->d_model / c->n_heads : 0;
    c->d_ff = rc->model.intermediate_size;
    c->max_pos = rc->model.max_position_embeddings;
    c->norm_eps = 1e-6f;
    c->rope_theta = (float)rc->model.rope_theta;
    c->tied = rc->model.tie_word_embeddings;
    c->qkv_bias = !strcmp(c->model_type, "qwen2");
}

static const char BENCH_USAGE[] =
    "denserl bench CONFIG.json [--set key.path=value ...] [--shape NAME | --model-config "
    "DIR|config.json] [--warmup W] [--steps S] [--json OUT.json]";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: bench: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* one line, as every other error: the usage goes in parentheses after it */
    fprintf(stderr, " (usage: %s)\n", BENCH_USAGE);
    return 2;
}

static int parse_count(const char *s, int lo, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1000000) return DR_ERR;
    *out = (int)v;
    return DR_OK;
}

static int parse_args(int argc, char **argv, BenchArgs *a) {
    memset(a, 0, sizeof *a);
    a->warmup = 1;
    a->steps = 3;
    a->sets = xcalloc(argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("usage: %s\n", BENCH_USAGE);
            return -1;
        }
        int takes = !strcmp(f, "--set") || !strcmp(f, "--shape") || !strcmp(f, "--model-config") ||
                    !strcmp(f, "--warmup") || !strcmp(f, "--steps") || !strcmp(f, "--json");
        if (takes && !v) return usage_error("'%s' needs a value", f);
        if (!strcmp(f, "--set")) {
            a->sets[a->n_sets++] = argv[++i];
        } else if (!strncmp(f, "--set=", 6)) {
            a->sets[a->n_sets++] = argv[i] + 6;
        } else if (!strcmp(f, "--shape")) {
            a->shape = argv[++i];
        } else if (!strcmp(f, "--model-config")) {
            a->model_dir = argv[++i];
        } else if (!strcmp(f, "--json")) {
            a->json_path = argv[++i];
        } else if (!strcmp(f, "--warmup")) {
            if (parse_count(argv[++i], 0, &a->warmup))
                return usage_error("--warmup must be an integer >= 0, got '%s'", argv[i]);
        } else if (!strcmp(f, "--steps")) {
            if (parse_count(argv[++i], 1, &a->steps))
                return usage_error("--steps must be an integer >= 1, got '%s'", argv[i]);
        } else if (f[0] != '-' && !a->cfg_path) {
            a->cfg_path = f;
        } else {
            return usage_error("unexpected argument '%s'", f);
        }
    }
    if (!a->cfg_path) return usage_error("a CONFIG.json is required");
    if (a->shape && a->model_dir)
        return usage_error("--shape and --model-config exclude each other");
    if (a->shape) {
        int found = 0;
        for (int s = 0; s < N_SHAPES; s++) found |= !strcmp(a->shape, k_shapes[s].name);
        if (!found)
            return usage_error("unknown --shape '%s' (expected qwen2.5-0.5b, qwen2.5-1.5b, "
                               "qwen2.5-7b or tiny)",
                               a->shape);
    }
    return 0;
}

/* Seconds since this process started (/proc/self/stat, 10 ms resolution); -1 if unknown. */
static double process_age(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    /* starttime is field 22; p points at the end of field 2 */
    unsigned long long start = 0;
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ') field++;
    if (field != 22 || sscanf(p, "%llu", &start) != 1) return -1;
    struct timespec ts;
    if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return -1;
    double now = ts.tv_sec + ts.tv_nsec * 1e-9;
    return now - (double)start / (double)sysconf(_SC_CLK_TCK);
}

/* Settings, shape and model of the run; every user mistake returns DR_ERR here. */
static int prepare(const BenchArgs *a, RunConfig *rc, ModelConfig *mc, Backend *be,
                   const char **shape_name, MemPlan *plan) {
    if (run_config_load(rc, a->cfg_path, a->sets, a->n_sets)) return DR_ERR;
    if (a->json_path && atomic_check(a->json_path)) return DR_ERR;
    /* every sampled group enters the step: a fixed batch of P x K rows each step */
    rc->rl.acc_lo = 0;
    rc->rl.acc_hi = 1;
    rc->rl.oversample = 1;
    rc->rl.max_attempts = 1;
    rc->rl.drop_truncated = 0;
    rc->debug_dump_dir[0] = 0;
    if (backend_from_name(rc->device, be)) return dr_error("%s: %s", a->cfg_path, dr_last_error());
    /* under mpirun every rank runs its share of the step; rank 0 prints and writes */
    if (dist_init(*be)) return dr_error("%s: %s", a->cfg_path, dr_last_error());
    dist_set_zero_stage(rc->zero_stage);
    dist_set_bucket_bytes((size_t)(rc->grad_bucket_mb * 1048576.0));
    if (!dist_is_root() && !freopen("/dev/null", "w", stdout))
        return dr_error("cannot silence rank %d", dist_rank());
    if (!strcmp(rc->precision, "bf16") && *be != BACKEND_CUDA)
        return dr_error("%s: 'precision' \"bf16\" runs on a GPU only, and this run is on the CPU "
                        "(use \"fp32\")",
                        a->cfg_path);
    if (a->model_dir) {
        /* a model directory, or the config.json inside one */
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", a->model_dir);
        const char *base = strrchr(dir, '/');
        if (file_exists(dir)) {
            if (strcmp(base ? base + 1 : dir, "config.json") != 0)
                return dr_error("%s: --model-config expects a model directory or a file named "
                                "config.json",
                                a->model_dir);
            if (base)
                dir[base - dir] = 0;
            else
                snprintf(dir, sizeof dir, ".");
        }
        if (model_config_load(dir, mc)) return DR_ERR;
        *shape_name = a->model_dir;
    } else if (a->shape) {
        for (int s = 0; s < N_SHAPES; s++)
            if (!strcmp(a->shape, k_shapes[s].name)) shape_config(&k_shapes[s], mc);
        *shape_name = a->shape;
    } else if (strcmp(rc->model.init, "random") != 0) {
        if (model_config_load(rc->model.init, mc)) return DR_ERR;
        *shape_name = rc->model.init;
    } else {
        run_config_shape(rc, mc);
        if (model_config_validate(mc, a->cfg_path)) return DR_ERR;
        *shape_name = "config";
    }
    /* the prompts and the verifier speak the task's character tokens */
    mc->bos_id = CHARTOK_BOS;
    mc->eos_id = CHARTOK_EOS;
    mc->pad_id = CHARTOK_PAD;
    if (mc->vocab < CHARTOK_VOCAB)
        return dr_error("%s: vocab_size %d is smaller than the task's %d tokens", *shape_name,
                        mc->vocab, CHARTOK_VOCAB);
    int len = prime_max_len(NULL, rc);
    if (model_check_seq_len(mc, len, *shape_name)) return DR_ERR;
    const char *what = strcmp(*shape_name, "config") ? *shape_name : a->cfg_path;
    if (model_check_runnable(mc, *be, prime_micro_rows(rc), len, what)) return DR_ERR;
    MemShape ms = {*mc, *be, 0, 0, len, len, prime_gen_rows(NULL, rc)};
    if (memplan_resolve(rc, &ms, what, plan)) return DR_ERR;
    if (rc->threads > 0) {
        omp_set_num_threads(rc->threads);
        openblas_set_num_threads(rc->threads);
    }
    return DR_OK;
}

/* Parameters outside the embedding and lm_head matrices. */
static double nonembedding_params(const ModelConfig *c) {
    double vd = (double)c->vocab * c->d_model;
    return (double)model_param_count(c) - vd * (c->tied ? 1 : 2);
}

/* FLOPs of one token's forward at context ctx; lm_head: include the 2 d V product. */
static double fwd_flop(const ModelConfig *c, double ctx, int lm_head) {
    double dq = (double)c->n_heads * c->head_dim;
    return 2 * nonembedding_params(c) + (lm_head ? 2.0 * c->d_model * c->vocab : 0) +
           4.0 * c->n_layers * dq * ctx;
}

/* What one step computed: tokens and FLOPs of each phase, from the packed batch. A training
 * pass counts each row's own tokens at ctx = its length / 2: the calls run rows of similar
 * length together at their own length, and padding is not useful work. */
static void step_work(const Prime *p, const RolloutStats *rs, double tok[N_PHASES],
                      double flop[N_PHASES]) {
    const RlConfig *c = &p->rc->rl;
    const ModelConfig *mc = &p->policy->cfg;
    const StepBatch *b = &p->b;
    double NT = prime_batch_tokens(p), pass = 0, critic_pass = 0, gen = 0;
    const double head = 2.0 * mc->d_model * mc->vocab;
    for (int i = 0; i < b->N; i++) {
        double L = b->len[i], pl = b->prompt_len[i], rl = b->resp_len[i];
        pass += L * fwd_flop(mc, L / 2.0, 0) + rl * head; /* the lm_head: rows with a target */
        critic_pass += L * fwd_flop(mc, L / 2.0, 0);
        gen += (pl - 1) * fwd_flop(mc, pl / 2.0, 0);
        /* response token j is predicted at context pl + j: the sum over j of the attention */
        gen += rl * fwd_flop(mc, 0, 1) +
               4.0 * mc->n_layers * mc->n_heads * mc->head_dim * (rl * pl + rl * (rl - 1) / 2.0);
    }
    memset(tok, 0, sizeof(double) * N_PHASES);
    memset(flop, 0, sizeof(double) * N_PHASES);
    tok[PH_GEN] = rs->response_tokens;
    flop[PH_GEN] = gen;
    int fwd = prime_logprob_forwards(p),
        train = rl_has_prm(c) && strcmp(c->prm_update, "none") != 0;
    tok[PH_LOGP] = fwd * NT;
    flop[PH_LOGP] = fwd * pass + (p->has_critic ? critic_pass : 0);
    /* a training PRM update runs its own forward and backward (prime.c's prm_update) */
    tok[PH_PRM] = NT;
    flop[PH_PRM] = train ? 3 * pass : 0;
    tok[PH_ADV] = NT;
    tok[PH_POLICY] = NT * c->ppo_epochs;
    flop[PH_POLICY] = c->ppo_epochs * (3 * pass + (p->has_critic ? 3 * critic_pass : 0));
}

static void phase_seconds(const RolloutStats *rs, const StepStats *ss, double s[N_PHASES]) {
    s[PH_GEN] = rs->t_generate;
    s[PH_VERIFY] = rs->t_verify;
    s[PH_LOGP] = ss->t_logprobs;
    s[PH_PRM] = ss->t_prm;
    s[PH_ADV] = ss->t_adv;
    s[PH_POLICY] = ss->t_policy;
}

static json_t *num(double x) {
    return json_finite(x);
}

typedef struct {
    Backend be;
    const ModelConfig *mc;
    const RunConfig *rc;
    const char *shape;
    double rate, mem_base, mem_peak, mem_total, first_step_at, first_step_s;
    int ranks;    /* GPUs (or processes) the step ran on: MFU is against rate x ranks */
    MemPlan plan; /* what memplan expected the run to hold, on each rank */
    char rate_what[96], device[160];
    PhaseSum ph[N_PHASES], step;
    double step_gen_tokens;
    double row_tokens; /* the last step's rows' tokens (prompt + response) */
    int *resp_len;     /* (N) the last step's response lengths, for a peer to copy */
    int skipped, N, T, logprob_forwards;
} BenchResult;

/* A number in a fixed-width column, or "-" where it is undefined. */
static void cell(double x, int width, int prec, const char *suffix) {
    if (isfinite(x))
        printf(" %*.*f%s", width - (int)strlen(suffix), prec, x, suffix);
    else
        printf(" %*s", width, "-");
}

static void print_table(const BenchResult *r, int steps) {
    printf("\n%-14s %10s %12s %12s %10s %8s\n", "phase", "s/step", "tokens/s", "GFLOP/step",
           "TFLOP/s", "MFU");
    for (int k = 0; k <= N_PHASES; k++) {
        const PhaseSum *p = k < N_PHASES ? &r->ph[k] : &r->step;
        double tps = p->s > 0 && p->tokens > 0 ? p->tokens / p->s : NAN;
        double tf = p->s > 0 && p->flop > 0 ? p->flop / p->s / 1e12 : NAN;
        printf("%-14s", k < N_PHASES ? k_phase[k] : "step (total)");
        cell(p->s / steps, 10, 4, "");
        cell(tps, 12, 1, "");
        cell(p->flop > 0 ? p->flop / steps / 1e9 : NAN, 12, 3, "");
        cell(tf, 10, 4, "");
        cell(100 * tf / (r->rate * r->ranks), 8, 1, "%");
        printf("\n");
    }
    printf("\nmatrix rate %.3f TFLOP/s (%s, measured in this run; MFU against %d x that) | "
           "memory peak %.1f MiB (%.1f MiB before the model; planned %.1f MiB; rank 0's) | first "
           "step began %.2f s after process start and took %.2f s\n",
           r->rate, r->rate_what, r->ranks, r->mem_peak / 1048576.0, r->mem_base / 1048576.0,
           r->plan.total / 1048576.0, r->first_step_at, r->first_step_s);
    printf("tokens/s: generate counts sampled tokens; logprobs the rows' tokens (prompt + "
           "response, no padding) x %d forwards, prm_update and advantages the rows' tokens, "
           "policy_update ppo_epochs x the rows' tokens; step the sampled tokens\n",
           r->logprob_forwards);
}

static json_t *result_json(const BenchResult *r, const BenchArgs *a) {
    const ModelConfig *mc = r->mc;
    const RlConfig *c = &r->rc->rl;
    json_t *j = json_object();
    json_object_set_new(j, "command", json_string("bench"));
    json_object_set_new(j, "config", json_string(a->cfg_path));
    json_object_set_new(j, "shape", json_string(r->shape));
    json_object_set_new(j, "backend", json_string(backend_name(r->be)));
    json_object_set_new(j, "device", json_string(r->device));
    json_object_set_new(j, "precision", json_string(r->rc->precision));
    json_object_set_new(j, "threads", json_integer(omp_get_max_threads()));
    json_t *m = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}", "model_type",
                          mc->model_type, "vocab", mc->vocab, "hidden", mc->d_model, "layers",
                          mc->n_layers, "heads", mc->n_heads, "kv_heads", mc->n_kv_heads,
                          "head_dim", mc->head_dim, "ff", mc->d_ff, "tied", mc->tied);
    json_object_set_new(m, "params", json_integer((json_int_t)model_param_count(mc)));
    json_object_set_new(m, "params_nonembedding", num(nonembedding_params(mc)));
    json_object_set_new(j, "model", m);
    json_object_set_new(
        j, "batch",
        json_pack("{s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:s}", "prompts",
                  c->prompts_per_step, "samples", c->samples_per_prompt, "rows", r->N, "packed_len",
                  r->T, "row_tokens", r->row_tokens, "logprob_forwards", r->logprob_forwards,
                  "max_response_tokens", c->max_response_tokens, "micro_batch_rows",
                  prime_micro_rows(r->rc), "ppo_epochs", c->ppo_epochs, "ppo_minibatches",
                  c->ppo_minibatches, "prm_minibatches", c->prm_minibatches, "prm_update",
                  c->prm_update, "estimator", c->estimator));
    json_t *lens = json_array();
    for (int k = 0; k < r->N && r->resp_len; k++)
        json_array_append_new(lens, json_integer(r->resp_len[k]));
    json_object_set_new(json_object_get(j, "batch"), "response_lengths", lens);
    json_object_set_new(j, "denserl", denserl_build_json());
    json_object_set_new(j, "warmup", json_integer(a->warmup));
    json_object_set_new(j, "steps", json_integer(a->steps));
    json_object_set_new(j, "skipped_updates", json_integer(r->skipped));
    json_object_set_new(j, "ranks", json_integer(r->ranks));
    json_object_set_new(j, "zero_stage", json_integer(r->rc->zero_stage));
    json_object_set_new(j, "gradient_checkpointing", json_boolean(r->rc->gradient_checkpointing));
    json_object_set_new(j, "matrix_rate_tflops", num(r->rate));
    json_object_set_new(j, "matrix_rate_what", json_string(r->rate_what));
    json_object_set_new(j, "time_to_first_step_s", num(r->first_step_at));
    json_object_set_new(j, "first_step_s", num(r->first_step_s));
    json_t *mem = json_object();
    json_object_set_new(mem, "kind",
                        json_string(r->be == BACKEND_CUDA
                                        ? "device used (cudaMemGetInfo total-free)"
                                        : "host peak resident set"));
    json_object_set_new(mem, "before_model_bytes", num(r->mem_base));
    json_object_set_new(mem, "peak_bytes", num(r->mem_peak));
    json_object_set_new(mem, "total_bytes", num(r->mem_total));
    json_t *plan =
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "weights", r->plan.weights, "optimizer",
                  r->plan.optimizer, "activations", r->plan.activations, "generation",
                  r->plan.generation, "scratch", r->plan.scratch, "total", r->plan.total);
    json_object_set_new(mem, "planned_bytes", plan);
    json_object_set_new(j, "memory", mem);
    json_t *ph = json_object();
    for (int k = 0; k <= N_PHASES; k++) {
        const PhaseSum *p = k < N_PHASES ? &r->ph[k] : &r->step;
        double tf = p->s > 0 && p->flop > 0 ? p->flop / p->s / 1e12 : NAN;
        json_t *e = json_object();
        json_object_set_new(e, "s", num(p->s / a->steps));
        json_object_set_new(e, "tokens", num(p->tokens / a->steps));
        json_object_set_new(e, "tokens_per_s",
                            num(p->s > 0 && p->tokens > 0 ? p->tokens / p->s : NAN));
        json_object_set_new(e, "tflop", num(p->flop / a->steps / 1e12));
        json_object_set_new(e, "tflops", num(tf));
        json_object_set_new(e, "mfu", num(tf / (r->rate * r->ranks)));
        json_object_set_new(k < N_PHASES ? ph : j, k < N_PHASES ? k_phase[k] : "step", e);
    }
    json_object_set_new(j, "phases", ph);
    json_object_set_new(
        j, "flop_formula",
        json_string("forward per token = 2*params_nonembedding + 2*d*V (lm_head) + "
                    "4*L*Hq*Dh*ctx (attention); training passes: each row's tokens (prompt + "
                    "response, no padding) at ctx = its length / 2; backward = 2x forward; "
                    "generate: response token j at ctx prompt+j, prefill without lm_head; "
                    "logprobs = logprob_forwards passes (ref unless prm_update off without KL, "
                    "policy, and the PRM unless its update's forwards give its log-probs or it "
                    "is off); prm_update = forward + backward (0 with prm_update none or off); "
                    "policy_update = ppo_epochs x (forward + "
                    "backward)"));
    return j;
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a;
    int rc_code = parse_args(argc, argv, &a);
    if (rc_code) {
        free(a.sets);
        return rc_code < 0 ? 0 : rc_code; /* -1: --help */
    }
    double t_cmd = time_now();
    RunConfig rc;
    ModelConfig mc;
    BenchResult r;
    memset(&r, 0, sizeof r);
    if (prepare(&a, &rc, &mc, &r.be, &r.shape, &r.plan)) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        free(a.sets);
        return 2;
    }
    backend_note_fallback();
    r.mc = &mc;
    r.rc = &rc;
    backend_describe(r.be, r.device, sizeof r.device);
    r.mem_base = bench_memory_used(r.be, &r.mem_total);
    Model m;
    if (model_init_precision(&m, &mc, r.be, prime_micro_rows(&rc), prime_max_len(NULL, &rc),
                             rc.gradient_checkpointing ? MODEL_RECOMPUTE : MODEL_KEEP_ALL,
                             model_bf16_attention(rc.precision, rc.attention))) {
        fprintf(stderr, "error: %s: %s\n", a.cfg_path, dr_last_error());
        free(a.sets);
        return 2;
    }
    model_init_random(&m, (unsigned long long)rc.seed, (float)rc.model.init_std);
    Prime p;
    prime_init(&p, &rc, NULL, &m, NULL);
    printf("denserl bench | %s | shape %s | %zu parameters | %s | %s | %d threads | %d x %d rows, "
           "up to %d response tokens | %d warm-up + %d timed steps\n",
           a.cfg_path, r.shape, m.n_params, r.device, rc.precision, omp_get_max_threads(),
           rc.rl.prompts_per_step, rc.rl.samples_per_prompt, rc.rl.max_response_tokens, a.warmup,
           a.steps);
    memplan_print(&r.plan);
    double age = process_age();
    r.first_step_at = age >= 0 ? age : time_now() - t_cmd;
    r.mem_peak = bench_memory_used(r.be, NULL);
    int st = DR_OK;
    for (int step = 1; step <= a.warmup + a.steps && st == DR_OK; step++) {
        RolloutStats rs;
        StepStats ss;
        double t0 = time_now();
        st = prime_step(&p, step, &rs, &ss);
        be_synchronize(r.be);
        double dt = time_now() - t0;
        if (step == 1) r.first_step_s = dt;
        double mem = bench_memory_used(r.be, NULL);
        if (mem > r.mem_peak) r.mem_peak = mem;
        double sec[N_PHASES], tok[N_PHASES], flop[N_PHASES];
        phase_seconds(&rs, &ss, sec);
        step_work(&p, &rs, tok, flop);
        printf("%s %d/%d | %.3f s | generate %.3f logprobs %.3f prm %.3f adv %.4f policy %.3f s "
               "| %.0f response tokens\n",
               step <= a.warmup ? "warm-up" : "step", step <= a.warmup ? step : step - a.warmup,
               step <= a.warmup ? a.warmup : a.steps, dt, sec[PH_GEN], sec[PH_LOGP], sec[PH_PRM],
               sec[PH_ADV], sec[PH_POLICY], rs.response_tokens);
        if (step <= a.warmup) continue;
        r.skipped += ss.skipped;
        for (int k = 0; k < N_PHASES; k++) {
            r.ph[k].s += sec[k];
            r.ph[k].tokens += k == PH_VERIFY ? 0 : tok[k];
            r.ph[k].flop += flop[k];
            r.step.flop += flop[k];
        }
        r.step.s += dt;
        r.step.tokens += rs.response_tokens;
    }
    /* the last step's batch, for the report and a peer to copy */
    r.N = p.b.N;
    r.T = p.b.T;
    r.row_tokens = prime_batch_tokens(&p);
    r.logprob_forwards = prime_logprob_forwards(&p);
    r.resp_len = xmalloc(sizeof(int) * (size_t)(p.b.N > 0 ? p.b.N : 1));
    memcpy(r.resp_len, p.b.resp_len, sizeof(int) * (size_t)p.b.N);
    prime_free(&p);
    model_free(&m);
    r.rate =
        bench_matrix_rate(r.be, !strcmp(rc.precision, "bf16"), r.rate_what, sizeof r.rate_what);
    r.ranks = dist_size();
    if (st == DR_OK && dist_is_root()) {
        print_table(&r, a.steps);
        if (a.json_path) {
            json_t *j = result_json(&r, &a);
            st = json_write_path(a.json_path, j);
            json_decref(j);
            if (st == DR_OK) printf("wrote %s\n", a.json_path);
        }
    }
    free(r.resp_len);
    free(a.sets);
    dist_finalize();
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
