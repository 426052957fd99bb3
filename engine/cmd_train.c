/* `denserl train CONFIG.json [--set k=v ...]`: resolve and check the whole config before
 * any work, build or load the model, run the phases, write the run directory. */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "dist.h"
#include <math.h>
#include <stdlib.h>
#include "memplan.h"
#include "model_io.h"
#include "prime.h"
#include "report.h"
#include "resume.h"
#include "run_config.h"
#include "sft.h"
#include "task.h"
#include "tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"

void openblas_set_num_threads(int n);

/* Activation rows of a run with neither SFT nor RL calls (an evaluation alone): enough for
 * one prefill chunk of many short prompts. */
enum { EVAL_ONLY_ROWS = 8 };

static void random_model_config(const RunConfig *rc, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%.31s", rc->model.model_type);
    c->vocab = rc->model.vocab_size > CHARTOK_VOCAB ? rc->model.vocab_size : CHARTOK_VOCAB;
    c->d_model = rc->model.hidden_size;
    c->n_layers = rc->model.num_hidden_layers;
    c->n_heads = rc->model.num_attention_heads;
    c->n_kv_heads = rc->model.num_key_value_heads;
    c->head_dim = c->d_model / c->n_heads;
    c->d_ff = rc->model.intermediate_size;
    c->max_pos = rc->model.max_position_embeddings;
    c->norm_eps = 1e-6f;
    c->rope_theta = (float)rc->model.rope_theta;
    c->tied = rc->model.tie_word_embeddings;
    c->qkv_bias = strcmp(c->model_type, "qwen2") == 0;
    c->bos_id = CHARTOK_BOS;
    c->eos_id = CHARTOK_EOS;
    c->pad_id = CHARTOK_PAD;
}

/* Removes a flat directory of files (a non-root rank's private run directory). */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
    rmdir(dir);
}

/* Ranks other than 0 compute what rank 0 computes but keep nothing: their console goes to
 * /dev/null and their run files (metrics, report) to a private temporary directory under
 * $TMPDIR (removed at the end of a run that finishes); rank 0 alone writes checkpoints and
 * the debug dump. */
static int quiet_rank(RunConfig *rc) {
    char dir[sizeof rc->run_dir];
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, sizeof dir, "%.200s/denserl-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp",
                     dist_rank());
    if (n >= (int)sizeof dir || !mkdtemp(dir))
        return dr_error("rank %d: cannot make a temporary directory", dist_rank());
    memcpy(rc->run_dir, dir, sizeof dir);
    rc->debug_dump_dir[0] = 0;
    if (!freopen("/dev/null", "w", stdout)) return dr_error("cannot silence rank %d", dist_rank());
    return DR_OK;
}

/* The model of rc, checked against the task. */
static int prepare_model(const char *cfg_path, RunConfig *rc, const Task *task, Backend be,
                         Model *m, MemPlan *plan) {
    ArithParams ap = {rc->task.min_operands, rc->task.max_operands, rc->task.max_value, 0.0};
    int need = task->kind == TASK_ARITH ? sft_max_len(&ap) : 0; /* no SFT on datasets */
    ModelConfig mc;
    if (strcmp(rc->model.init, "random") == 0) {
        if (rc->model.vocab_size > 0 && rc->model.vocab_size < task->vocab)
            return dr_error("%s: 'model.vocab_size' (%d) is smaller than the task's %d tokens (0 "
                            "takes the task's)",
                            cfg_path, rc->model.vocab_size, task->vocab);
        random_model_config(rc, &mc);
        if (model_config_validate(&mc, cfg_path)) return DR_ERR;
    } else if (model_config_load(rc->model.init, &mc)) {
        return DR_ERR;
    }
    if (mc.vocab < task->vocab)
        return dr_error("%s: model vocab_size %d is smaller than the task's %d tokens",
                        rc->model.init, mc.vocab, task->vocab);
    if (need > mc.max_pos)
        return dr_error("%s: task problems need up to %d tokens but the model's context is %d "
                        "(raise model.max_position_embeddings or lower task.max_operands / "
                        "task.max_value)",
                        cfg_path, need, mc.max_pos);
    int rl_len = prime_max_len(task, rc);
    if (rl_len > mc.max_pos)
        return dr_error("%s: a prompt (up to %d tokens) plus rl.max_response_tokens (%d) "
                        "exceeds the model's context of %d tokens",
                        cfg_path, rl_len - rc->rl.max_response_tokens, rc->rl.max_response_tokens,
                        mc.max_pos);
    /* one activation capacity serves SFT batches, the RL calls and generation's prefill */
    const int sft_rows = task->kind == TASK_ARITH && rc->sft.steps > 0 ? rc->sft.batch_size : 0;
    if (rl_len > need) need = rl_len;
    MemShape ms = {mc, be, 0, sft_rows, rl_len, need, prime_gen_rows(task, rc)};
    if (rc->rl.steps > 0 && memplan_resolve(rc, &ms, cfg_path, plan)) return DR_ERR;
    /* the policy's calls: SFT batches and the RL phase's; with no RL phase, SFT and the
     * evaluation alone, whose prefill goes in chunks of what the capacity holds */
    int rows = sft_rows;
    if (rc->rl.steps > 0 && prime_micro_rows(rc) > rows) rows = prime_micro_rows(rc);
    if (rows < 1) rows = EVAL_ONLY_ROWS;
    const char *bf16 = model_bf16_attention(rc->precision, rc->attention);
    const int keep = rc->gradient_checkpointing ? MODEL_RECOMPUTE : MODEL_KEEP_ALL;
    if (bf16 && model_bf16_check(&mc, be, bf16))
        return dr_error("%s: %s", cfg_path, dr_last_error());
    if (strcmp(rc->model.init, "random") == 0) {
        if (model_check_runnable(&mc, be, rows, need, cfg_path)) return DR_ERR;
        CHECK(model_init_precision(m, &mc, be, rows, need, keep, bf16) == DR_OK); /* checked */
        model_init_random(m, (unsigned long long)rc->seed, (float)rc->model.init_std);
    } else if (model_load_keep(m, rc->model.init, be, rows, need, keep, bf16)) {
        return DR_ERR;
    }
    return DR_OK;
}

/* On --resume, rl.micro_batch_rows "auto" takes the rows that the interrupted run took (its
 * run_config.json) instead of planning again: the resumed run then makes the same model calls
 * and ends bit for bit where an uninterrupted one would, whatever memory is free now. Returns
 * 1 where it did. */
static int resume_auto_rows(RunConfig *rc) {
    if (rc->rl.micro_batch_rows != RL_MICRO_AUTO) return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/run_config.json", rc->run_dir);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *v = j ? json_object_get(json_object_get(j, "rl"), "micro_batch_rows") : NULL;
    const int took = json_is_integer(v) && json_integer_value(v) > 0;
    if (took) rc->rl.micro_batch_rows = (int)json_integer_value(v);
    if (j) json_decref(j);
    return took;
}

/* Everything that can be wrong with the inputs is found here, before the run directory
 * exists. */
static int prepare(const char *cfg_path, char **sets, int n_sets, RunConfig *rc, Task *task,
                   Model *m, int resume, char *resume_file, size_t cap, MemPlan *plan) {
    if (run_config_load(rc, cfg_path, sets, n_sets)) return DR_ERR;
    Backend be;
    if (backend_from_name(rc->device, &be)) return dr_error("%s: %s", cfg_path, dr_last_error());
    if (dist_init(be)) return dr_error("%s: %s", cfg_path, dr_last_error());
    /* every rank reads the resume point where rank 0 writes it, before quiet_rank moves the
     * run directory of the others */
    resume_path(resume_file, cap, rc->run_dir);
    const int rows_resumed = resume && resume_auto_rows(rc);
    dist_set_zero_stage(rc->zero_stage);
    dist_set_bucket_bytes((size_t)(rc->grad_bucket_mb * 1048576.0));
    if (!dist_is_root() && quiet_rank(rc)) return DR_ERR;
    if (strcmp(rc->precision, "bf16") == 0 && be != BACKEND_CUDA)
        return dr_error("%s: 'precision' \"bf16\" runs on a GPU only, and this run is on the CPU "
                        "(use \"fp32\")",
                        cfg_path);
    if (rc->threads > 0) {
        omp_set_num_threads(rc->threads);
        openblas_set_num_threads(rc->threads);
    }
    if (task_open(task, rc, cfg_path)) return DR_ERR;
    if (prepare_model(cfg_path, rc, task, be, m, plan)) {
        task_close(task);
        return DR_ERR;
    }
    if (rows_resumed) plan->automatic = 2;
    /* resuming: the SFT model (the reference) comes from the resume point */
    int st = DR_OK;
    if (resume && access(resume_file, R_OK) != 0)
        st = dr_error("%s: not found, so there is nothing to resume (runs write it with "
                      "rl.save_every > 0)",
                      resume_file);
    else if (resume)
        st = resume_load_reference(resume_file, m);
    if (st) {
        model_free(m);
        task_close(task);
    }
    return st;
}

/* Reads the last SFT loss back from the metrics, for the report. */
static double last_sft_loss(const char *run_dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    double loss = NAN;
    if (!f) return loss;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *l = j ? json_object_get(j, "loss") : NULL;
        const char *ph = j ? json_string_value(json_object_get(j, "phase")) : NULL;
        if (l && ph && !strcmp(ph, "sft")) loss = json_number_value(l);
        if (j) json_decref(j);
    }
    fclose(f);
    return loss;
}

static void curve_add(double **x, double **y, int *n, double xv, double yv) {
    *x = realloc(*x, sizeof(double) * (*n + 1));
    *y = realloc(*y, sizeof(double) * (*n + 1));
    CHECK(*x && *y);
    (*x)[*n] = xv;
    (*y)[(*n)++] = yv;
}

/* One RL step's curves for the report and its progress line. */
static void step_report(RunReport *rep, Progress *pr, const RlConfig *c, int step, double tokens,
                        const RolloutStats *rs, const StepStats *ss) {
    /* a step served from the carry buffer samples nothing: no accuracy to plot */
    char acc_s[16] = "  - ", len_s[16] = "  - ";
    if (rs->samples > 0) {
        double acc = rs->outcome_sum / rs->samples;
        curve_add(&rep->rl_step, &rep->rl_accuracy, &rep->n_rl, step, acc);
        rep->rl_reward = realloc(rep->rl_reward, sizeof(double) * rep->n_rl);
        CHECK(rep->rl_reward);
        rep->rl_reward[rep->n_rl - 1] = ss->reward_mean;
        snprintf(acc_s, sizeof acc_s, "%.2f", acc);
        snprintf(len_s, sizeof len_s, "%.1f", rs->response_tokens / rs->samples);
    }
    /* no group kept: no update of either model, so no losses to show */
    const int updated = isfinite(ss->policy_loss);
    char auc_s[16] = " - "; /* also: one kind of outcome in the batch, no ranking */
    if (updated && isfinite(ss->prm_auc)) snprintf(auc_s, sizeof auc_s, "%.2f", ss->prm_auc);
    char pg_s[16] = "   -   ", prm_s[40] = "  -   acc  -  ";
    if (updated) {
        snprintf(pg_s, sizeof pg_s, "%+.4f", ss->policy_loss);
        if (rl_has_prm(c))
            snprintf(prm_s, sizeof prm_s, "%.3f acc %.2f", ss->prm_loss, ss->prm_acc);
    }
    if (step % c->log_every == 0 || step == c->steps)
        progress_print(pr, step, tokens, "gen-tok",
                       "acc %s | kept %d/%d | prm loss %s auc %s | r %+.4f | pg %s | len %s", acc_s,
                       rs->groups_kept, rs->prompts_drawn, prm_s, auc_s, ss->reward_mean, pg_s,
                       len_s);
}

/* A held-out evaluation with its console line: "eval | WHEN | held-out accuracy A%" (the mean
 * of the eval files' accuracies), the problem count when count is set, then each file's
 * accuracy when there are several; those into per_set (n_eval_sets) when not NULL. */
static double held_out(Generator *g, const Task *task, const RunConfig *rc, const char *when,
                       int count, double *per_set) {
    double sets[TASK_MAX_EVAL_SETS];
    const double a = prime_eval(g, task, rc, sets);
    printf("eval | %s | held-out accuracy %.1f%%", when, 100 * a);
    if (count) printf(" (greedy, %d problems)", task->eval_n);
    for (int s = 0; task->n_eval_sets > 1 && s < task->n_eval_sets; s++)
        printf("%s%s %.1f%%", s ? ", " : " | ", task->eval_sets[s].name, 100 * sets[s]);
    printf("\n");
    if (per_set) memcpy(per_set, sets, sizeof(double) * (size_t)task->n_eval_sets);
    return a;
}

/* A held-out evaluation during RL: console, report curve and metrics line (with each eval
 * file's accuracy under "eval_sets" when there are several). */
static void eval_point(Prime *p, const RunConfig *rc, const Task *task, int step, RunReport *rep,
                       FILE *metrics) {
    char when[32];
    double sets[TASK_MAX_EVAL_SETS];
    snprintf(when, sizeof when, "rl step %d", step);
    double a = held_out(&p->gen, task, rc, when, 0, sets);
    curve_add(&rep->eval_step, &rep->eval_acc, &rep->n_eval, step, a);
    json_t *j = json_pack("{s:s, s:i, s:f}", "phase", "rl_eval", "step", step, "eval_accuracy", a);
    if (task->n_eval_sets > 1) {
        json_t *o = json_object();
        for (int s = 0; s < task->n_eval_sets; s++)
            json_object_set_new(o, task->eval_sets[s].name, json_real(sets[s]));
        json_object_set_new(j, "eval_sets", o);
    }
    json_dumpf(j, metrics, JSON_COMPACT);
    fputc('\n', metrics);
    json_decref(j);
}

/* RUN_DIR/name in Hugging Face layout (rank 0 writes it). A run that started from a model
 * directory copies its tokenizer, chat template and generation config there first, so that
 * the checkpoint loads with its tokenizer in transformers, vLLM and denserl's own commands;
 * config.json comes last, and marks the directory complete. */
static int save_model(const Model *m, const RunConfig *rc, const char *name) {
    const int root = dist_is_root();
    float *host = root ? xmalloc(sizeof(float) * m->n_params) : NULL;
    model_params_to_host(m, host); /* every rank: a sharded master gathers */
    if (!root) return DR_OK;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", rc->run_dir, name);
    int st = make_dirs(path);
    if (st == DR_OK && strcmp(rc->model.init, "random") != 0)
        st = model_copy_side_files(rc->model.init, path);
    if (st == DR_OK) st = model_save_host(m, host, path, strcmp(rc->checkpoint_dtype, "bf16") == 0);
    free(host);
    return st;
}

/* The final evaluation and the checkpoints of the policy and the PRM (none with the PRM
 * off). */
static int rl_finish(Prime *p, Model *m, const RunConfig *rc, const Task *task, RunReport *rep) {
    rep->rl_eval_accuracy = held_out(&p->gen, task, rc, "after RL", 0, NULL);
    curve_add(&rep->eval_step, &rep->eval_acc, &rep->n_eval, rc->rl.steps, rep->rl_eval_accuracy);
    int st = save_model(m, rc, "policy");
    if (st == DR_OK && rl_has_prm(&rc->rl)) st = save_model(&p->prm, rc, "prm");
    return st;
}

/* SIGTERM (a cloud machine's preemption notice, a scheduler's stop) or SIGINT during the RL
 * phase: the run finishes the step in progress, writes a resume point and stops. A second
 * signal stops at once. */
static volatile sig_atomic_t g_stop_signal;

static void on_stop_signal(int sig) {
    if (g_stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_stop_signal = sig;
}

static void catch_stop_signals(int on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_stop_signal : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* The signal that stops the run after this step, agreed by every rank (a rank that got none
 * stops with the others), or 0. */
static int stop_signal(void) {
    double f = g_stop_signal;
    if (dist_size() > 1) dist_sum_f64(&f, 1);
    return f > 0 ? (g_stop_signal ? (int)g_stop_signal : SIGTERM) : 0;
}

/* A write that rank 0 alone did, agreed by every rank, so that none goes on into the next
 * step's sums alone when it failed. */
static int agree(int st, const char *what) {
    double failed = st != DR_OK;
    dist_sum_f64(&failed, 1);
    if (failed > 0 && st == DR_OK) st = dr_error("%s: rank 0 could not write it", what);
    return st;
}

/* The step numbers of RUN_DIR/checkpoints/step_N entries, newest first; their count. */
static int checkpoint_steps(const char *dir, int *steps, int cap) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && n < cap && (e = readdir(d))) {
        int s, end = 0;
        if (sscanf(e->d_name, "step_%d%n", &s, &end) == 1 && e->d_name[end] == '\0') steps[n++] = s;
    }
    if (d) closedir(d);
    for (int i = 1; i < n; i++) /* few entries: insertion sort, descending */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            int t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return n;
}

/* rl.checkpoint_every: the policy and the PRM after `step` in Hugging Face layout, under
 * RUN_DIR/checkpoints/step_NNNNNN/, and all but the rl.keep_checkpoints newest removed. */
static int checkpoint_point(const Prime *p, const Model *m, const RunConfig *rc, int step) {
    const RlConfig *c = &rc->rl;
    if (c->checkpoint_every <= 0 || (step % c->checkpoint_every != 0 && step != c->steps))
        return DR_OK;
    char name[64], dir[PATH_MAX];
    snprintf(name, sizeof name, "checkpoints/step_%06d/policy", step);
    int st = save_model(m, rc, name);
    snprintf(name, sizeof name, "checkpoints/step_%06d/prm", step);
    if (st == DR_OK && rl_has_prm(c)) st = save_model(&p->prm, rc, name);
    snprintf(dir, sizeof dir, "%s/checkpoints", rc->run_dir);
    enum { CAP = 4096 };
    int steps[CAP];
    const int n = st == DR_OK && dist_is_root() && c->keep_checkpoints > 0
                      ? checkpoint_steps(dir, steps, CAP)
                      : 0;
    for (int i = c->keep_checkpoints; i < n && st == DR_OK; i++) {
        snprintf(name, sizeof name, "/step_%06d", steps[i]);
        char old[PATH_MAX + 64];
        snprintf(old, sizeof old, "%s%s", dir, name);
        st = remove_tree(old);
    }
    st = agree(st, dir);
    if (st == DR_OK) printf("checkpoint | rl step %d | %s/step_%06d\n", step, dir, step);
    return st;
}

/* The resume point after `step`, once the metrics line is out: with rl.save_every on its
 * steps and the last, or whenever forced. */
static int save_point(const Prime *p, const RunConfig *rc, const char *file, int step,
                      RunReport *rep, FILE *metrics, double rl_seconds, int force) {
    const RlConfig *c = &rc->rl;
    if (!force && (c->save_every <= 0 || (step % c->save_every != 0 && step != c->steps)))
        return DR_OK;
    fflush(metrics);
    long bytes = ftell(metrics);
    rep->rl_seconds = rl_seconds;
    int st = agree(resume_save(file, p, step, rep, bytes), file); /* every rank; 0 writes */
    if (st == DR_OK) printf("resume point | rl step %d | %s\n", step, file);
    return st;
}

/* Continues from a resume point: the state into p and rep, metrics.jsonl cut back to where it
 * was then. Returns the steps done, or -1. */
static int resume_from(Prime *p, const RunConfig *rc, const char *file, RunReport *rep) {
    int done = 0;
    long bytes = 0;
    if (resume_load(file, p, rep, &done, &bytes)) return -1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.jsonl", rc->run_dir);
    if (dist_is_root() && truncate(path, bytes) != 0) {
        dr_error("%s: cannot cut back to %ld bytes, the length at the resume point", path, bytes);
        return -1;
    }
    printf("resume | %s | after rl step %d of %d\n", file, done, rc->rl.steps);
    return done;
}

/* The RL phase: greedy eval of the SFT model, rl.steps PRIME steps, periodic and final
 * eval, resume points, checkpoints of the policy and the PRM. resume_file: go on from it
 * when resuming, else where rl.save_every writes. */
static int rl_run(Model *m, const RunConfig *rc, const Task *task, FILE *metrics, TbLog *tb,
                  RunReport *rep, const char *resume_file, int resume, int *stopped) {
    const RlConfig *c = &rc->rl;
    Prime p;
    prime_init(&p, rc, task, m, metrics);
    int first = 1, st = DR_OK;
    if (resume) {
        int done = resume_from(&p, rc, resume_file, rep);
        if (done < 0) st = DR_ERR;
        if (st == DR_OK) st = tb_open(tb, rc->run_dir, tb->on); /* the metrics cut back */
        first = done + 1;
    } else {
        rep->sft_eval_accuracy = held_out(&p.gen, task, rc, "after SFT", 1, NULL);
        curve_add(&rep->eval_step, &rep->eval_acc, &rep->n_eval, 0, rep->sft_eval_accuracy);
    }
    Progress pr;
    progress_init(&pr, "rl", c->steps);
    double t0 = time_now() - (resume ? rep->rl_seconds : 0), tokens = 0;
    catch_stop_signals(1);
    for (int step = first; step <= c->steps && st == DR_OK && !*stopped; step++) {
        RolloutStats rs;
        StepStats ss;
        st = prime_step(&p, step, &rs, &ss);
        tokens += rs.response_tokens;
        step_report(rep, &pr, c, step, tokens, &rs, &ss);
        if (c->eval_every > 0 && step % c->eval_every == 0 && step < c->steps)
            eval_point(&p, rc, task, step, rep, metrics);
        fflush(metrics);
        tb_sync(tb);
        if (st == DR_OK) st = checkpoint_point(&p, m, rc, step);
        *stopped = st == DR_OK ? stop_signal() : 0;
        if (st == DR_OK)
            st = save_point(&p, rc, resume_file, step, rep, metrics, time_now() - t0, *stopped);
        if (st == DR_OK && *stopped)
            printf("stopped by signal %d after rl step %d; `train ... --resume` goes on from %s\n",
                   *stopped, step, resume_file);
    }
    catch_stop_signals(0);
    rep->rl_seconds = time_now() - t0;
    rep->skipped_updates = p.skipped_updates;
    if (st == DR_OK && !*stopped) st = rl_finish(&p, m, rc, task, rep);
    prime_free(&p);
    return st;
}

/* Greedy eval alone, when the run has no RL phase. */
static double eval_only(Model *m, const RunConfig *rc, const Task *task) {
    Generator g;
    int rows = task->eval_n < 256 ? task->eval_n : 256;
    generator_init(&g, m, rows, prime_max_len(task, rc));
    double a = held_out(&g, task, rc, "after SFT", 1, NULL);
    generator_free(&g);
    return a;
}

/* --dry-run: everything the RL phase holds from its start (the models, AdamW's state, the
 * generator), then the plan beside the memory in use; the buffers that calls grow (the bf16
 * scratch slots, the libraries' workspaces, sampling's sort keys) are in the plan alone. */
static int dry_run_report(const char *cfg_path, const RunConfig *rc, Task *task, Model *m,
                          const MemPlan *plan) {
    backend_note_fallback();
    printf("denserl train --dry-run | %s | %zu parameters | %s | %s\n", cfg_path, m->n_params,
           backend_name(m->be), dist_describe());
    Prime p;
    if (rc->rl.steps > 0) {
        memplan_print(plan);
        prime_init(&p, rc, task, m, NULL);
    }
    double free_b = 0, total_b = 0;
    if (be_memory(m->be, &free_b, &total_b) && m->be != BACKEND_CPU)
        printf("dry run: the GPU holds %.1f MiB now (the CUDA context and libraries included) of "
               "%.1f MiB; nothing trained, nothing written\n",
               (total_b - free_b) / 1048576.0, total_b / 1048576.0);
    else
        printf("dry run: nothing trained, nothing written\n");
    if (rc->rl.steps > 0) prime_free(&p);
    model_free(m);
    task_close(task);
    dist_finalize();
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *cfg_path = NULL;
    char **sets = xcalloc(argc + 1, sizeof(char *));
    int n_sets = 0, resume = 0, dry_run = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: denserl train CONFIG.json [--set key.path=value ...] [--resume] "
                   "[--dry-run]\n"
                   "  --dry-run      make the models, optimizer states and generation buffers as "
                   "the run would,\n                 print the memory plan beside what they hold, "
                   "and stop (no training, no run directory)\n"
                   "  --help-config  every config key: its default, what it takes, what it "
                   "does\n");
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--help-config")) {
            run_config_print_help(stdout);
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--set") && i + 1 >= argc) {
            fprintf(stderr, "error: train: --set expects key.path=value after it\n");
            free(sets);
            return 2;
        } else if (!strcmp(argv[i], "--resume")) {
            resume = 1;
        } else if (!strcmp(argv[i], "--dry-run")) {
            dry_run = 1;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else if (argv[i][0] != '-' && !cfg_path) {
            cfg_path = argv[i];
        } else {
            fprintf(stderr,
                    "error: train: unexpected argument '%s' (usage: denserl train "
                    "CONFIG.json [--set key.path=value ...] [--resume] [--dry-run])\n",
                    argv[i]);
            free(sets);
            return 2;
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "error: train: a CONFIG.json is required\n");
        free(sets);
        return 2;
    }
    RunConfig rc;
    Task task;
    Model m;
    char resume_file[PATH_MAX];
    int stopped = 0; /* the signal that stopped the RL phase */
    MemPlan plan = {0};
    int st = prepare(cfg_path, sets, n_sets, &rc, &task, &m, resume, resume_file,
                     sizeof resume_file, &plan);
    free(sets);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    if (dry_run) return dry_run_report(cfg_path, &rc, &task, &m, &plan);
    char path[PATH_MAX];
    double t0 = time_now();
    RunReport rep = {0};
    rep.sft_steps = rc.sft.steps;
    rep.rl_steps = rc.rl.steps;
    rep.sft_eval_accuracy = rep.rl_eval_accuracy = NAN;
    FILE *metrics = NULL;
    TbLog tb = {0};
    /* the dump directory now, not at the first dump after SFT and a rollout */
    if (rc.debug_dump_dir[0] && make_dirs(rc.debug_dump_dir))
        st = dr_error("%s: 'debug_dump_dir': %s", cfg_path, dr_last_error());
    else if (make_dirs(rc.run_dir))
        st = dr_error("%s: 'run_dir': %s", cfg_path, dr_last_error());
    if (st == DR_OK) {
        json_t *j = run_config_json(&rc);
        snprintf(path, sizeof path, "%s/run_config.json", rc.run_dir);
        st = json_write_path(path, j);
        json_decref(j);
    }
    if (st == DR_OK) {
        backend_note_fallback();
        printf("denserl train | %s | %zu parameters | %s | %d threads | %s\n", cfg_path, m.n_params,
               backend_name(m.be), omp_get_max_threads(), dist_describe());
        if (rc.rl.steps > 0) memplan_print(&plan);
        snprintf(path, sizeof path, "%s/metrics.jsonl", rc.run_dir);
        if (!resume) remove(path); /* a rerun into the same directory starts a fresh log */
        tb.on = rc.tensorboard && dist_is_root(); /* a resumed run opens it in rl_run */
        if (!resume) st = tb_open(&tb, rc.run_dir, tb.on);
        if (st == DR_OK && rc.sft.steps > 0 && !resume) st = sft_run(&m, &rc, rc.run_dir, &tb);
        rep.sft_seconds = time_now() - t0;
        rep.final_sft_loss = last_sft_loss(rc.run_dir);
    }
    if (st == DR_OK && !resume) {
        st = save_model(&m, &rc, "sft");
        if (st == DR_OK) printf("checkpoint: %s/sft (Hugging Face layout)\n", rc.run_dir);
    }
    if (st == DR_OK) {
        snprintf(path, sizeof path, "%s/metrics.jsonl", rc.run_dir);
        metrics = fopen(path, "a");
        if (!metrics) st = dr_error("%s: cannot open for appending", path);
    }
    if (st == DR_OK && rc.rl.steps > 0) {
        st = rl_run(&m, &rc, &task, metrics, &tb, &rep, resume_file, resume, &stopped);
        if (st == DR_OK && !stopped)
            printf("checkpoints: %s/policy, %s/prm\n", rc.run_dir, rc.run_dir);
    } else if (st == DR_OK && resume) {
        st = dr_error("train --resume: rl.steps is 0, so there is nothing to go on with");
    } else if (st == DR_OK) {
        rep.sft_eval_accuracy = eval_only(&m, &rc, &task);
    }
    if (metrics) fclose(metrics);
    tb_sync(&tb);
    tb_close(&tb);
    if (st == DR_OK && stopped) { /* the resume point is the run's state; no report yet */
        model_free(&m);
        task_close(&task);
        free(rep.eval_step), free(rep.eval_acc), free(rep.rl_step), free(rep.rl_accuracy);
        free(rep.rl_reward);
        if (!dist_is_root()) remove_flat_dir(rc.run_dir);
        dist_finalize();
        return 128 + stopped;
    }
    rep.wall_seconds = time_now() - t0;
    if (resume) rep.wall_seconds = rep.sft_seconds + rep.rl_seconds; /* both runs' */
    if (st == DR_OK) st = report_write(rc.run_dir, cfg_path, &rep);
    model_free(&m);
    task_close(&task);
    free(rep.eval_step);
    free(rep.eval_acc);
    free(rep.rl_step);
    free(rep.rl_accuracy);
    free(rep.rl_reward);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        if (dist_size() > 1) dist_abort(2, "a rank failed; stopping every rank");
        return 2;
    }
    report_print(&rep);
    printf("run directory: %s (report.md, report.json, curves.svg, metrics.jsonl)\n", rc.run_dir);
    if (!dist_is_root()) remove_flat_dir(rc.run_dir); /* the private temporary directory */
    dist_finalize();
    return 0;
}
