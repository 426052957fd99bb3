/* The PRIME step: pack rollouts, log-probs of the three models, implicit process rewards,
 * the PRM update, advantages, PPO (and the critic for gae), metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "dist.h"
#include "dump.h"
#include "lr_schedule.h"
#include "prime.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"
#include "../runtime/ops.h"
#include "../runtime/ops_rl.h"
#include "../runtime/prof.h"

/* The step batch (tokens, masks, log-probs, rewards, advantages) lives in host memory on
 * every backend: the models stage their inputs and outputs through the device, and the
 * RL math over (N, T) arrays, a few MB at most, runs on the CPU kernels. */
#define STEP_BE BACKEND_CPU

int prime_max_len(const Task *task, const RunConfig *rc) {
    Task arith;
    if (!task) {
        /* the prompt length does not depend on the step delimiter */
        (void)task_open_arith(&arith, rc);
        task = &arith;
    }
    return task->max_prompt + rc->rl.max_response_tokens;
}

int prime_gen_rows(const Task *task, const RunConfig *rc) {
    /* each rank decodes its share of a draw's rows and of the held-out problems (dist_rows) */
    const int size = dist_size();
    const int n = rc->rl.oversample * rc->rl.prompts_per_step * rc->rl.samples_per_prompt;
    const int eval_n = task ? task->eval_n : rc->task.eval_size;
    const int share = (n + size - 1) / size, eval_share = (eval_n + size - 1) / size;
    int rows = share >= eval_share ? share : eval_share < 256 ? eval_share : 256;
    if (rc->rl.generation_rows > 0 && rows > rc->rl.generation_rows)
        rows = rc->rl.generation_rows; /* the rest wait for free slots */
    return rows > 0 ? rows : 1;
}

int prime_micro_rows(const RunConfig *rc) {
    int n = rc->rl.prompts_per_step * rc->rl.samples_per_prompt, m = rc->rl.micro_batch_rows;
    return m > 0 && m < n ? m : n;
}

static float *fbuf(size_t n) {
    return xcalloc(n ? n : 1, sizeof(float));
}

static void batch_init(StepBatch *b, int n, int t) {
    size_t nt = (size_t)n * t;
    memset(b, 0, sizeof *b);
    b->tokens = xcalloc(nt, sizeof(int));
    b->targets = xcalloc(nt, sizeof(int));
    b->group = xcalloc(n, sizeof(int));
    b->prompt_len = xcalloc(n, sizeof(int));
    b->resp_len = xcalloc(n, sizeof(int));
    b->len = xcalloc(n, sizeof(int));
    b->mask = fbuf(nt);
    b->outcome = fbuf(n);
    b->score = fbuf(n);
    float **nt_bufs[] = {&b->logp_old,   &b->logp_ref, &b->logp_prm, &b->entropy, &b->reward,
                         &b->advantages, &b->returns,  &b->values,   &b->work,    &b->work2};
    for (size_t i = 0; i < sizeof nt_bufs / sizeof nt_bufs[0]; i++) *nt_bufs[i] = fbuf(nt);
}

static void batch_free(StepBatch *b) {
    void *bufs[] = {b->tokens,   b->targets,  b->group,   b->prompt_len, b->resp_len,
                    b->len,      b->mask,     b->outcome, b->score,      b->logp_old,
                    b->logp_ref, b->logp_prm, b->entropy, b->reward,     b->advantages,
                    b->returns,  b->values,   b->work,    b->work2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(b, 0, sizeof *b);
}

static void stage_init(Stage *s, size_t cap, int rows) {
    s->tokens = xcalloc(cap, sizeof(int));
    s->targets = xcalloc(cap, sizeof(int));
    float **bufs[] = {&s->mask, &s->logp, &s->ent,   &s->old, &s->ref,
                      &s->adv,  &s->vals, &s->dlogp, &s->dent};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) *bufs[i] = fbuf(cap);
    s->score = fbuf((size_t)rows);
    s->outcome = fbuf((size_t)rows);
}

static void stage_free(Stage *s) {
    void *bufs[] = {s->tokens, s->targets, s->mask,  s->logp, s->ent,   s->old,    s->ref,
                    s->adv,    s->vals,    s->dlogp, s->dent, s->score, s->outcome};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    memset(s, 0, sizeof *s);
}

static size_t act_capacity(const Model *m) {
    return (size_t)m->act.B * m->act.T;
}

/* A memory switch of the environment: on unless set to "0" (each gives the same run off). */
static int switch_on(const char *name) {
    const char *e = getenv(name);
    return !(e && !strcmp(e, "0"));
}

int prime_shared_activations(void) {
    return switch_on("DENSERL_SHARED_ACTIVATIONS");
}

int prime_shared_grads(void) {
    return switch_on("DENSERL_SHARED_GRADS");
}

int prime_ref_bf16_only(void) {
    return switch_on("DENSERL_REF_BF16_ONLY");
}

/* A frozen (forward_only: one layer's activations) or trainable copy of the policy with
 * capacity for the packed batch, or with the policy's activations, its parameters from init
 * (the policy's n_params fp32 values on the device; NULL: the policy's sharded master). With
 * w16_level > 0 (bf16 only) its params are compact from the start, so that no whole fp32 copy
 * of it ever exists. */
static void clone_model(Model *dst, Model *src, const float *init, int value_head, int forward_only,
                        int n, int t, int w16_level) {
    ModelConfig c = src->cfg;
    c.value_head = value_head;
    const char *bf16 = src->mx.on ? (src->mx.cudnn_attn ? "cudnn" : "flash") : NULL;
    if (prime_shared_activations()) {
        model_init_shared(dst, &c, src, bf16 ? w16_level : 0);
        if (bf16) CHECK(model_use_bf16(dst, bf16) == DR_OK);
    } else {
        const int keep = forward_only         ? MODEL_FORWARD_ONLY
                         : src->act.recompute ? MODEL_RECOMPUTE
                                              : MODEL_KEEP_ALL;
        const int level = bf16 ? MODEL_W16_LEVEL(w16_level) : 0;
        CHECK(model_init_precision(dst, &c, src->be, n, t, keep + level, bf16) == DR_OK);
    }
    if (!init)
        model_fill_from_master(dst, src);
    else if (dst->w16_only)
        model_params_from_full(dst, init);
    else
        be_copy(src->be, dst->params, init, sizeof(float) * src->n_params);
}

int prime_sharded_master(void) {
    return switch_on("DENSERL_SHARDED_MASTER");
}

/* Whether a trained model's fp32 master weights go to its AdamW's range: under ZeRO-1 in
 * bf16. */
static int shards_master(const Model *m, const AdamW *o) {
    return m->mx.on && o->zero && prime_sharded_master();
}

/* The PRM's and critic's gradients: a whole buffer each (the PRM's maybe the policy's), or
 * under ZeRO-2 windows and ranges (model_shard_grads); after the policy's, whose backward's
 * scratch they may use. */
static void make_grads(Prime *p, int zero2) {
    adamw_overlap_backward(&p->opt_policy, p->policy);
    if (rl_has_prm(&p->rc->rl)) {
        if (prime_shared_grads()) /* the PRM and policy updates take turns */
            model_share_grads(&p->prm, p->policy);
        else if (zero2)
            model_shard_grads(&p->prm, p->opt_prm.lo, p->opt_prm.hi);
        else
            model_alloc_grads(&p->prm);
        adamw_overlap_backward(&p->opt_prm, &p->prm);
    }
    if (!p->has_critic) return;
    if (zero2)
        model_shard_grads(&p->critic, p->opt_critic.lo, p->opt_critic.hi);
    else
        model_alloc_grads(&p->critic);
    adamw_overlap_backward(&p->opt_critic, &p->critic);
}

/* The PRM, critic and reference from the policy, and the optimizers and gradients. The
 * policy's master goes to its range first, and the others take its start from a whole fp32
 * copy in its gradient buffer, which has no sums yet, or under ZeRO-2, which has none, from its
 * master gathered a chunk at a time (init NULL, clone_model); the PRM and the reference are
 * made compact from the start, so that no whole fp32 copy besides that one ever exists. */
static void make_models(Prime *p, Model *policy, int rows) {
    const RlConfig *c = &p->rc->rl;
    const AdamW *op = &p->opt_policy;
    adamw_init(&p->opt_policy, policy->be, policy->n_params);
    const int zero2 = op->zero && dist_zero_stage() >= 2;
    if (zero2) /* first: the others may use its backward's scratch, and gather through it */
        model_shard_grads(policy, op->lo, op->hi);
    else
        model_alloc_grads(policy);
    const float *init = policy->params;
    if (shards_master(policy, op)) {
        init = zero2 ? NULL : policy->grads;
        if (init) be_copy(policy->be, policy->grads, policy->params, sizeof(float) * op->n);
        model_shard_master(policy, policy->params + op->lo, op->lo, op->hi);
    }
    /* ZeRO-3: the reference's and the PRM's bf16 copies in ranges, made so */
    const int sharded = zero2 && dist_zero_stage() == 3 ? MODEL_W16_SHARDED : 0;
    const int ref16 = policy->mx.on && prime_ref_bf16_only();
    clone_model(&p->ref, policy, init, 0, 1, rows, p->t_max, ref16 ? 1 | sharded : 0);
    if (rl_has_prm(c)) { /* "off": no PRM at all */
        adamw_init(&p->opt_prm, policy->be, policy->n_params);
        const int shard = shards_master(policy, &p->opt_prm);
        clone_model(&p->prm, policy, init, 0, 0, rows, p->t_max, shard ? 2 | sharded : 0);
        if (shard) /* the policy's range, the same as the PRM's */
            model_shard_master(&p->prm, init ? init + op->lo : policy->master, op->lo, op->hi);
    }
    p->has_critic = strcmp(c->estimator, "gae") == 0;
    if (p->has_critic) { /* made whole: its value head lies beyond the policy's parameters */
        clone_model(&p->critic, policy, init, 1, 0, rows, p->t_max, 0);
        adamw_init(&p->opt_critic, policy->be, p->critic.n_params);
        const AdamW *oc = &p->opt_critic;
        if (shards_master(&p->critic, oc))
            model_shard_master(&p->critic, p->critic.params + oc->lo, oc->lo, oc->hi);
    }
    make_grads(p, zero2);
}

void prime_init(Prime *p, const RunConfig *rc, const Task *task, Model *policy, FILE *metrics) {
    const RlConfig *c = &rc->rl;
    memset(p, 0, sizeof *p);
    p->rc = rc;
    if (!task) {
        CHECK(task_open_arith(&p->own_task, rc) == DR_OK);
        p->owns_task = 1;
        task = &p->own_task;
    }
    p->task = task;
    p->policy = policy;
    p->metrics = metrics;
    p->n_max = c->prompts_per_step * c->samples_per_prompt;
    p->t_max = prime_max_len(task, rc);
    int rows = prime_micro_rows(rc);
    make_models(p, policy, rows);
    generator_init(&p->gen, policy, prime_gen_rows(task, rc), p->t_max);
    rollout_init(&p->rollout, rc, task, &p->gen, p->t_max);
    groups_init(&p->groups, c->prompts_per_step, c->samples_per_prompt, p->t_max);
    batch_init(&p->b, p->n_max, p->t_max);
    microplan_init(&p->plan, p->n_max);
    size_t cap = (size_t)rows * p->t_max;
    if (act_capacity(policy) > cap) cap = act_capacity(policy);
    stage_init(&p->st, cap, p->n_max);
    p->align = policy->be == BACKEND_CUDA ? 64 : 1;
    p->no_targets = xmalloc(sizeof(int) * p->n_max * p->t_max);
    for (int i = 0; i < p->n_max * p->t_max; i++) p->no_targets[i] = -1;
}

void prime_free(Prime *p) {
    model_free(&p->prm);
    model_free(&p->ref);
    adamw_free(&p->opt_policy);
    adamw_free(&p->opt_prm);
    if (p->has_critic) {
        model_free(&p->critic);
        adamw_free(&p->opt_critic);
    }
    generator_free(&p->gen);
    rollout_free(&p->rollout);
    groups_free(&p->groups);
    batch_free(&p->b);
    microplan_free(&p->plan);
    stage_free(&p->st);
    free(p->no_targets);
    if (p->owns_task) task_close(&p->own_task);
}

/* Rows of the step's groups, trimmed to the longest row, with prediction-aligned targets. */
static void pack(Prime *p) {
    StepBatch *b = &p->b;
    const Groups *g = &p->groups;
    int N = g->n * g->K, T = 2;
    for (int i = 0; i < N; i++)
        if (g->prompt_len[i] + g->resp_len[i] > T) T = g->prompt_len[i] + g->resp_len[i];
    b->N = N;
    b->T = T;
    for (int i = 0; i < N; i++) {
        const int *src = g->tokens + (size_t)i * g->Tcap;
        int *tok = b->tokens + (size_t)i * T, *tg = b->targets + (size_t)i * T;
        float *m = b->mask + (size_t)i * T;
        int pl = g->prompt_len[i], end = pl + g->resp_len[i];
        for (int t = 0; t < T; t++) {
            tok[t] = t < end ? src[t] : p->task->pad_id;
            int resp = t + 1 >= pl && t + 1 < end;
            tg[t] = resp ? src[t + 1] : -1;
            m[t] = resp ? 1.0f : 0.0f;
        }
        b->outcome[i] = g->outcome[i];
        b->group[i] = i / g->K;
        b->prompt_len[i] = pl;
        b->resp_len[i] = g->resp_len[i];
        b->len[i] = end;
    }
}

static int rows_valid(const float *mask, int n, int T, double *tokens) {
    int rows = 0;
    double tok = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int t = 0; t < T; t++) s += mask[(size_t)i * T + t];
        tok += s;
        rows += s > 0;
    }
    *tokens = tok;
    return rows;
}

/* Contiguous row range of mini-batch k out of m over N rows. */
static void mb_range(int N, int m, int k, int *r0, int *r1) {
    *r0 = (int)((long)N * k / m);
    *r1 = (int)((long)N * (k + 1) / m);
}

/* Plans the calls of model m over rows r0 .. r0+n-1: longest rows first, each call at its
 * own length with as many rows as the model's activations hold (rl.micro_batch_rows rows of
 * the longest possible length); without rl.group_by_length, rows in order at the step's T. */
static void plan_rows(Prime *p, const Model *m, int r0, int n) {
    const int *len = p->rc->rl.group_by_length ? p->b.len : NULL;
    /* the policy's activations may hold more (the SFT batch): calls keep to the micro-batch */
    size_t cap = (size_t)prime_micro_rows(p->rc) * p->t_max;
    if (cap > act_capacity(m)) cap = act_capacity(m);
    microplan_build(&p->plan, len, r0, n, p->b.T, cap, p->align);
}

/* The backwards (or with forward set, the forwards) every rank runs of model m's calls planned
 * (p->plan) on each: its own, or under ZeRO-2 (ZeRO-3), whose sums (gathers) need every rank,
 * the most of any rank. */
static int calls_everywhere(const Prime *p, const Model *m, int forward) {
    const int all = forward ? model_forward_collective(m) : model_backward_collective(m);
    return all ? dist_max_int(p->plan.n_mb) : p->plan.n_mb;
}

/* After done backwards: up to calls (calls_everywhere), a forward and a backward that compute
 * nothing (model_forward_skip, model_backward_skip) for each call missing. */
static void pad_calls(Model *m, int done, int calls) {
    for (int j = done; j < calls; j++) {
        model_forward_skip(m);
        model_backward_skip(m);
    }
}

/* This rank's rows of r0 .. r0+n-1: with calls at their own length a rank's work follows its
 * rows' tokens, so the split balances tokens (rows in order otherwise). */
static void rank_rows(const Prime *p, int r0, int n, int *lo, int *hi) {
    dist_rows_balanced(r0, n, p->rc->rl.group_by_length ? p->b.len : NULL, lo, hi);
}

/* Stages a call's tokens and targets (targets: the batch's, or no_targets). */
static void stage_inputs(Prime *p, const MicroBatch *mb, const int *targets) {
    mb_gather_i32(p->st.tokens, p->b.tokens, p->b.T, mb);
    mb_gather_i32(p->st.targets, targets, p->b.T, mb);
}

/* Log-probs (and entropy, values) of rows r0 .. r0+n-1, call by call of the plan. */
static void forward_rows(Prime *p, Model *m, const int *targets, int r0, int n, float *logp,
                         float *ent, float *values) {
    Stage *s = &p->st;
    const int T = p->b.T;
    plan_rows(p, m, r0, n);
    const int calls = calls_everywhere(p, m, 1);
    for (int j = 0; j < p->plan.n_mb; j++) {
        const MicroBatch *mb = &p->plan.mb[j];
        stage_inputs(p, mb, targets);
        model_forward(m, s->tokens, s->targets, mb->n, mb->T, s->logp, ent ? s->ent : NULL);
        mb_scatter_f32(logp, s->logp, T, mb);
        if (ent) mb_scatter_f32(ent, s->ent, T, mb);
        if (values) {
            model_values(m, mb->n, mb->T, s->vals);
            mb_scatter_f32(values, s->vals, T, mb);
        }
    }
    for (int j = p->plan.n_mb; j < calls; j++) model_forward_skip(m); /* ZeRO-3's gathers */
}

/* The same over the whole batch, each rank taking its rows; every rank ends with all. */
static void forward_batch(Prime *p, Model *m, const int *targets, float *logp, float *ent,
                          float *values) {
    const StepBatch *b = &p->b;
    int lo, hi;
    rank_rows(p, 0, b->N, &lo, &hi);
    forward_rows(p, m, targets, lo, hi - lo, logp, ent, values);
    dist_complete_split_f32(logp, 0, b->N, b->T, lo, hi);
    if (ent) dist_complete_split_f32(ent, 0, b->N, b->T, lo, hi);
    if (values) dist_complete_split_f32(values, 0, b->N, b->T, lo, hi);
}

/* Whether the "after" update's forwards are the PRM's only forward of the step. With one
 * mini-batch the optimizer steps after the last of them, so they give the log-probs of the PRM
 * as it was before the update, which the token rewards need: the "single forward" of the
 * after mode, whatever the number of micro-batches. */
static int prm_fused(const Prime *p) {
    const RlConfig *c = &p->rc->rl;
    return c->fuse_forwards && !strcmp(c->prm_update, "after") &&
           (c->prm_minibatches <= 1 || p->b.N <= 1);
}

/* The same for the policy: with one PPO epoch of one mini-batch the update's forwards run
 * the policy before its only optimizer step, so they are the "old" log-probs (and entropy)
 * of the log-prob phase, which then skips the policy. Not with a debug dump, which is
 * written before the update. */
static int policy_fused(const Prime *p) {
    const RlConfig *c = &p->rc->rl;
    return c->fuse_forwards && c->ppo_epochs == 1 && (c->ppo_minibatches <= 1 || p->b.N <= 1) &&
           !p->rc->debug_dump_dir[0];
}

/* prm_update "off": the estimator ignores process rewards (rl_config_check), so the step
 * runs no PRM at all: no forward, no update, zero token rewards, and p->prm is never made. */
static int prm_off(const Prime *p) {
    return !rl_has_prm(&p->rc->rl);
}

/* The reference serves the PRM's rewards and the KL term; with neither it is not run. */
static int ref_needed(const Prime *p) {
    return !prm_off(p) || p->rc->rl.kl_coef > 0;
}

double prime_batch_tokens(const Prime *p) {
    double n = 0;
    for (int i = 0; i < p->b.N; i++) n += p->b.len[i];
    return n;
}

int prime_logprob_forwards(const Prime *p) {
    const int prm_fwd = !prm_off(p) && !(strcmp(p->rc->rl.prm_update, "none") != 0 && prm_fused(p));
    return ref_needed(p) + !policy_fused(p) + prm_fwd;
}

/* PRM cross-entropy on outcomes (PRIME.md section 4). Fused (prm_fused), its forwards fill
 * logp_prm; "none" scores the logp_prm of the log-prob phase without a forward; otherwise
 * ("before", or "after" with several mini-batches) the forwards go to scratch, since logp_prm
 * must keep the PRM's log-probs from before the update. */
static void prm_update(Prime *p, StepStats *ss) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    Stage *st = &p->st;
    int N = b->N, T = b->T, M = c->prm_minibatches > N ? N : c->prm_minibatches, lo, hi;
    AdamWParams hp = {(float)ss->prm_lr, 0.9f, 0.999f, 1e-8f, 0.0f};
    double loss = 0, correct = 0, gn_max = 0;
    int train = strcmp(c->prm_update, "none") != 0;
    int fused = prm_fused(p); /* "after" only, so it trains */
    for (int k = 0; k < M; k++) {
        int r0, r1;
        mb_range(N, M, k, &r0, &r1);
        int n = r1 - r0;
        rank_rows(p, r0, n, &lo, &hi);
        double l = 0;
        if (train) model_zero_grads(&p->prm);
        plan_rows(p, &p->prm, lo, hi - lo);
        const int calls = train ? calls_everywhere(p, &p->prm, 0) : 0;
        for (int j = 0; j < p->plan.n_mb; j++) {
            const MicroBatch *mb = &p->plan.mb[j];
            stage_inputs(p, mb, b->targets);
            mb_gather_f32(st->ref, b->logp_ref, T, mb);
            mb_gather_f32(st->mask, b->mask, T, mb);
            mb_gather_rows_f32(st->outcome, b->outcome, mb);
            if (train)
                model_forward(&p->prm, st->tokens, st->targets, mb->n, mb->T, st->logp, NULL);
            else
                mb_gather_f32(st->logp, b->logp_prm, T, mb);
            l += op_prm_loss(STEP_BE, st->dlogp, st->score, st->logp, st->ref, st->mask,
                             st->outcome, mb->n, mb->T, (float)c->beta, n);
            mb_scatter_rows_f32(b->score, st->score, mb);
            if (fused) mb_scatter_f32(b->logp_prm, st->logp, T, mb);
            if (!train) continue;
            if (j == p->plan.n_mb - 1) adamw_arm(&p->opt_prm); /* the update's last backward */
            model_backward(&p->prm, st->tokens, st->targets, mb->n, mb->T, st->dlogp, NULL);
        }
        pad_calls(&p->prm, train ? p->plan.n_mb : 0, calls);
        dist_sum_f64(&l, 1);
        dist_complete_split_f32(b->score, r0, n, 1, lo, hi);
        if (fused) dist_complete_split_f32(b->logp_prm, r0, n, T, lo, hi);
        loss += l * n;
        for (int i = r0; i < r1; i++) correct += (b->score[i] > 0) == (b->outcome[i] > 0.5f);
        if (!train) continue;
        double gn = NAN;
        if (isfinite(l))
            gn = adamw_step_model(&p->opt_prm, &p->prm, hp, c->prm_grad_clip);
        else
            adamw_skip(&p->opt_prm);
        model_params_changed(&p->prm);
        if (!isfinite(gn)) ss->skipped++;
        if (gn > gn_max || !isfinite(gn)) gn_max = gn;
    }
    ss->prm_loss = loss / N;
    ss->prm_acc = correct / N;
    ss->prm_auc = prime_score_auc(b->score, b->outcome, N);
    ss->prm_grad_norm = gn_max;
}

double prime_score_auc(const float *score, const float *outcome, int n) {
    double above = 0, pairs = 0;
    for (int i = 0; i < n; i++) {
        if (!(outcome[i] > 0.5f)) continue;
        for (int j = 0; j < n; j++) {
            if (outcome[j] > 0.5f) continue;
            above += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
            pairs += 1;
        }
    }
    return pairs > 0 ? above / pairs : NAN;
}

/* PRIME.md section 5: advantages and returns from the process rewards and outcomes. */
static void advantages(Prime *p, StepStats *ss) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    const Backend be = STEP_BE;
    int N = b->N, T = b->T, K = c->samples_per_prompt;
    const char *est = c->estimator;
    float *proc = b->work, *comb = b->work2, *outn = b->score; /* score is free by now */
    float wp = (float)c->w_process, wo = (float)c->w_outcome;
    int whiten = 1;
    if (!strcmp(est, "gae")) {
        op_combine_rewards(be, comb, b->reward, b->outcome, b->mask, N, T, wp, wo);
        op_gae(be, b->advantages, b->returns, comb, b->values, b->mask, N, T, (float)c->gamma,
               (float)c->lam);
    } else {
        const float *pr = b->reward, *oc = b->outcome;
        if (!strcmp(est, "rloo") || !strcmp(est, "rloo_outcome")) {
            op_rloo_outcome(be, outn, b->outcome, N, K);
            oc = outn;
            if (!strcmp(est, "rloo_outcome")) {
                pr = NULL;
                wp = 0;
            } else {
                op_rloo_process(be, proc, b->reward, b->mask, N, T, K,
                                !strcmp(c->rloo_variant, "paper"));
                pr = proc;
            }
        } else if (!strcmp(est, "grpo")) {
            op_grpo_outcome(be, outn, b->outcome, N, K, 1e-6f);
            op_grpo_process(be, proc, b->reward, b->mask, N, T, K, 1e-6f);
            oc = outn;
            pr = proc;
            whiten = 0;
        }
        op_combine_rewards(be, comb, pr, oc, b->mask, N, T, wp, wo);
        op_discounted_returns(be, b->returns, comb, b->mask, N, T, (float)c->gamma);
        be_copy(be, b->advantages, b->returns, sizeof(float) * N * T);
    }
    double s = 0, s2 = 0, n = 0;
    op_masked_moments(be, &s, &s2, &n, b->advantages, b->mask, N, T);
    if (whiten) {
        op_whiten(be, b->advantages, b->advantages, b->mask, N, T, s, s2, n);
        s = s2 = n = 0;
        op_masked_moments(be, &s, &s2, &n, b->advantages, b->mask, N, T);
    }
    ss->adv_mean = n > 0 ? s / n : 0;
    ss->adv_std = n > 1 ? sqrt(fmax(0, (s2 - s * s / n) / (n - 1))) : 0;
}

static PpoParams ppo_params(const RlConfig *c) {
    PpoParams pp = {(float)c->clip_low,
                    (float)c->clip_high,
                    (float)c->dual_clip,
                    !strcmp(c->loss_agg, "seq-mean-token-mean") ? PPO_AGG_SEQ_MEAN_TOKEN_MEAN
                                                                : PPO_AGG_TOKEN_MEAN,
                    (float)c->kl_coef,
                    !strcmp(c->kl_estimator, "k1") ? KL_K1 : KL_K3,
                    (float)c->entropy_coef};
    return pp;
}

/* Gradients of one PPO mini-batch (rows r0 .. r0+n-1, tok valid tokens in seqs rows)
 * summed over micro-batches into the policy's zeroed grads; stats merged over them.
 * Returns the mini-batch loss (non-finite: the backward was stopped). */
static double ppo_minibatch(Prime *p, int r0, int n, double tok, int seqs, PpoStats *st) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    Stage *sg = &p->st;
    Model *m = p->policy;
    int T = b->T, want_ent = c->entropy_coef > 0, fused = policy_fused(p), lo, hi;
    PpoParams pp = ppo_params(c);
    /* loss, pg_loss, kl_ref, entropy, clip_frac x valid, approx_kl_old x valid, valid */
    double acc[7] = {0};
    memset(st, 0, sizeof *st);
    model_zero_grads(m);
    rank_rows(p, r0, n, &lo, &hi);
    plan_rows(p, m, lo, hi - lo);
    const int calls = calls_everywhere(p, m, 0);
    int backs = 0;
    /* fused: every call's forward runs (it gives logp_old), the backwards stop at a non-finite
     * loss; otherwise both stop there */
    for (int j = 0; j < p->plan.n_mb && (fused || isfinite(acc[0])); j++) {
        const MicroBatch *mb = &p->plan.mb[j];
        float *ent = want_ent ? sg->ent : NULL, *dent = want_ent ? sg->dent : NULL;
        stage_inputs(p, mb, b->targets);
        mb_gather_f32(sg->ref, b->logp_ref, T, mb);
        mb_gather_f32(sg->adv, b->advantages, T, mb);
        mb_gather_f32(sg->mask, b->mask, T, mb);
        model_forward(m, sg->tokens, sg->targets, mb->n, mb->T, sg->logp, fused ? sg->ent : ent);
        if (fused) { /* the policy before its step: these are the old log-probs */
            memcpy(sg->old, sg->logp, sizeof(float) * (size_t)mb->n * mb->T);
            mb_scatter_f32(b->logp_old, sg->logp, T, mb);
            mb_scatter_f32(b->entropy, sg->ent, T, mb);
        } else {
            mb_gather_f32(sg->old, b->logp_old, T, mb);
        }
        PpoStats cs;
        double l = op_ppo_loss(STEP_BE, sg->dlogp, dent, &cs, sg->logp, sg->old, sg->ref, ent,
                               sg->adv, sg->mask, mb->n, mb->T, pp, tok, seqs);
        /* pg_loss, kl_ref, entropy are shares of the mini-batch mean; the rest per token */
        double add[7] = {l,
                         cs.pg_loss,
                         cs.kl_ref,
                         cs.entropy,
                         cs.clip_frac * cs.valid,
                         cs.approx_kl_old * cs.valid,
                         cs.valid};
        for (int k = 0; k < 7; k++) acc[k] += add[k];
        if (!isfinite(acc[0])) continue;
        if (j == p->plan.n_mb - 1) adamw_arm(&p->opt_policy); /* the update's last backward */
        model_backward(m, sg->tokens, sg->targets, mb->n, mb->T, sg->dlogp, dent);
        backs++;
    }
    pad_calls(m, backs, calls);
    if (fused) {
        dist_complete_split_f32(b->logp_old, r0, n, T, lo, hi);
        dist_complete_split_f32(b->entropy, r0, n, T, lo, hi);
    }
    dist_sum_f64(acc, 7); /* every rank reaches this, whatever its rows held */
    st->pg_loss = acc[1];
    st->kl_ref = acc[2];
    st->entropy = acc[3];
    st->valid = acc[6];
    if (st->valid > 0) {
        st->clip_frac = acc[4] / st->valid;
        st->approx_kl_old = acc[5] / st->valid;
    }
    return acc[0];
}

/* PRIME.md section 6: ppo_epochs passes over ppo_minibatches contiguous row ranges. */
static void policy_update(Prime *p, StepStats *ss) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    Model *m = p->policy;
    int N = b->N, T = b->T, M = c->ppo_minibatches > N ? N : c->ppo_minibatches;
    AdamWParams hp = {(float)ss->lr, (float)c->beta1, (float)c->beta2, 1e-8f,
                      (float)c->weight_decay};
    double loss = 0, clip = 0, klo = 0, klr = 0, valid = 0, gn_max = 0;
    int updates = 0;
    for (int e = 0; e < c->ppo_epochs; e++) {
        for (int k = 0; k < M; k++) {
            int r0, r1;
            mb_range(N, M, k, &r0, &r1);
            int n = r1 - r0;
            size_t o = (size_t)r0 * T;
            double tok;
            int seqs = rows_valid(b->mask + o, n, T, &tok);
            if (tok == 0) continue;
            PpoStats st;
            double l = ppo_minibatch(p, r0, n, tok, seqs, &st);
            double gn = NAN;
            if (isfinite(l))
                gn = adamw_step_model(&p->opt_policy, m, hp, c->grad_clip);
            else
                adamw_skip(&p->opt_policy);
            model_params_changed(m);
            if (!isfinite(gn)) {
                ss->skipped++;
                continue;
            }
            updates++;
            if (gn > gn_max) gn_max = gn;
            loss += st.pg_loss * st.valid;
            clip += st.clip_frac * st.valid;
            klo += st.approx_kl_old * st.valid;
            klr += (c->kl_coef > 0 ? st.kl_ref : 0) * st.valid;
            valid += st.valid;
        }
    }
    ss->policy_loss = valid > 0 ? loss / valid : NAN;
    ss->clip_frac = valid > 0 ? clip / valid : 0;
    ss->kl_old = valid > 0 ? klo / valid : 0;
    ss->grad_norm = updates ? gn_max : NAN;
    (void)klr;
}

/* The critic's clipped value loss against the returns (gae only). */
static void critic_update(Prime *p, const int *no_targets, StepStats *ss) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    Stage *st = &p->st;
    int N = b->N, T = b->T, M = c->ppo_minibatches > N ? N : c->ppo_minibatches;
    AdamWParams hp = {(float)ss->critic_lr, 0.9f, 0.999f, 1e-8f, 0.0f};
    double loss = 0, gn_max = 0, cf;
    for (int e = 0; e < c->ppo_epochs; e++) {
        for (int k = 0; k < M; k++) {
            int r0, r1;
            mb_range(N, M, k, &r0, &r1);
            int n = r1 - r0;
            size_t o = (size_t)r0 * T;
            double tok;
            rows_valid(b->mask + o, n, T, &tok);
            if (tok == 0) continue;
            double l = 0;
            int lo, hi;
            rank_rows(p, r0, n, &lo, &hi);
            model_zero_grads(&p->critic);
            plan_rows(p, &p->critic, lo, hi - lo);
            const int calls = calls_everywhere(p, &p->critic, 0);
            for (int j = 0; j < p->plan.n_mb; j++) {
                const MicroBatch *mb = &p->plan.mb[j];
                stage_inputs(p, mb, no_targets);
                mb_gather_f32(st->old, b->values, T, mb);
                mb_gather_f32(st->adv, b->returns, T, mb);
                mb_gather_f32(st->mask, b->mask, T, mb);
                model_forward(&p->critic, st->tokens, st->targets, mb->n, mb->T, st->logp, NULL);
                model_values(&p->critic, mb->n, mb->T, st->vals);
                l += op_value_loss(STEP_BE, st->dlogp, &cf, st->vals, st->old, st->adv, st->mask,
                                   mb->n, mb->T, (float)c->value_clip, tok);
                if (j == p->plan.n_mb - 1) adamw_arm(&p->opt_critic); /* last backward */
                model_backward_values(&p->critic, st->tokens, mb->n, mb->T, st->dlogp);
            }
            pad_calls(&p->critic, p->plan.n_mb, calls);
            dist_sum_f64(&l, 1);
            double gn = NAN;
            if (isfinite(l))
                gn = adamw_step_model(&p->opt_critic, &p->critic, hp, c->grad_clip);
            else
                adamw_skip(&p->opt_critic);
            model_params_changed(&p->critic);
            if (!isfinite(gn)) ss->skipped++;
            loss += l;
            if (gn > gn_max) gn_max = gn;
        }
    }
    ss->critic_loss = loss / (M * c->ppo_epochs);
    ss->critic_grad_norm = gn_max;
}

static void reward_stats(const StepBatch *b, StepStats *ss) {
    double s = 0, n = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)b->N * b->T; i++) {
        if (b->mask[i] == 0) continue;
        double r = b->reward[i];
        s += r;
        n++;
        lo = fmin(lo, r);
        hi = fmax(hi, r);
    }
    ss->reward_mean = n > 0 ? s / n : 0;
    ss->reward_min = n > 0 ? lo : 0;
    ss->reward_max = n > 0 ? hi : 0;
}

static double mean_entropy(const StepBatch *b) {
    double s = 0, n = 0;
    for (size_t i = 0; i < (size_t)b->N * b->T; i++)
        if (b->mask[i] != 0) s += b->entropy[i], n++;
    return n > 0 ? s / n : 0;
}

/* Mean k3 estimate of KL(policy || reference) over response tokens, before the update. */
static double kl_to_ref(const StepBatch *b) {
    double s = 0, n = 0;
    for (size_t i = 0; i < (size_t)b->N * b->T; i++) {
        if (b->mask[i] == 0) continue;
        double d = (double)b->logp_ref[i] - b->logp_old[i];
        s += exp(d) - d - 1;
        n++;
    }
    return n > 0 ? s / n : 0;
}

static int granularity_id(const char *g) {
    return !strcmp(g, "step") ? REWARD_STEP : !strcmp(g, "whole") ? REWARD_WHOLE : REWARD_TOKEN;
}

static int transform_id(const char *t) {
    return !strcmp(t, "clip")    ? REWARD_XFORM_CLIP
           : !strcmp(t, "delta") ? REWARD_XFORM_DELTA
                                 : REWARD_XFORM_NONE;
}

/* PRIME.md section 3: token rewards from logp_prm and logp_ref. */
static void token_rewards(Prime *p) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    op_prime_token_rewards(STEP_BE, b->reward, b->logp_prm, b->logp_ref, b->mask, b->targets, b->N,
                           b->T, (float)c->beta, granularity_id(c->granularity), p->task->delim_id,
                           transform_id(c->reward_transform), (float)c->clip_eta);
}

/* Reference, policy (and critic) log-probs, the PRM update in "before" mode, then the PRM's
 * log-probs and the token rewards, except where the "after" update makes them (prm_fused). */
static void logprobs_and_rewards(Prime *p, StepStats *ss, int train_prm) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    double t0 = time_now();
    const size_t nt = sizeof(float) * (size_t)b->N * b->T;
    prof_push("logprobs");
    if (ref_needed(p))
        forward_batch(p, &p->ref, b->targets, b->logp_ref, NULL, NULL);
    else
        memset(b->logp_ref, 0, nt);
    if (!policy_fused(p)) forward_batch(p, p->policy, b->targets, b->logp_old, b->entropy, NULL);
    if (p->has_critic) forward_batch(p, &p->critic, p->no_targets, b->work, NULL, b->values);
    prof_pop();
    ss->t_logprobs = time_now() - t0;
    if (prm_off(p)) {
        memset(b->logp_prm, 0, nt);
        memset(b->reward, 0, nt);
        return;
    }
    if (train_prm && !strcmp(c->prm_update, "before")) {
        t0 = time_now();
        prof_push("prm_update");
        prm_update(p, ss);
        prof_pop();
        ss->t_prm = time_now() - t0;
    }
    if (train_prm && prm_fused(p)) return; /* the update's forwards give logp_prm */
    t0 = time_now();
    prof_push("logprobs");
    forward_batch(p, &p->prm, b->targets, b->logp_prm, NULL, NULL);
    prof_pop();
    ss->t_logprobs += time_now() - t0;
    token_rewards(p);
}

static json_t *phase(double seconds, double tokens) {
    json_t *j = json_object();
    json_object_set_new(j, "s", json_real(seconds));
    if (tokens >= 0)
        json_object_set_new(j, "tokens_per_s", json_finite(seconds > 0 ? tokens / seconds : NAN));
    return j;
}

static void metrics_write(Prime *p, int step, const RolloutStats *rs, const StepStats *ss) {
    if (!p->metrics) return;
    double toks = p->groups.n > 0 ? prime_batch_tokens(p) : 0, n = rs->samples;
    json_t *j = json_object();
    json_object_set_new(j, "phase", json_string("rl"));
    json_object_set_new(j, "step", json_integer(step));
    json_object_set_new(j, "prompts_drawn", json_integer(rs->prompts_drawn));
    json_object_set_new(j, "groups_kept", json_integer(rs->groups_kept));
    /* a step served from the carry buffer samples nothing: those three are null */
    const struct {
        const char *key;
        double value;
    } nums[] = {
        {"accuracy", n > 0 ? rs->outcome_sum / n : NAN},
        {"response_len", n > 0 ? rs->response_tokens / n : NAN},
        {"truncation_rate", n > 0 ? rs->truncated_rows / n : NAN},
        {"prm_loss", ss->prm_loss},
        {"prm_acc", ss->prm_acc},
        {"prm_auc", ss->prm_auc},
        {"reward_mean", ss->reward_mean},
        {"reward_min", ss->reward_min},
        {"reward_max", ss->reward_max},
        {"adv_mean", ss->adv_mean},
        {"adv_std", ss->adv_std},
        {"policy_loss", ss->policy_loss},
        {"clip_frac", ss->clip_frac},
        {"kl_old", ss->kl_old},
        {"kl_ref", ss->kl_ref},
        {"entropy", ss->entropy},
        {"grad_norm", ss->grad_norm},
        {"prm_grad_norm", ss->prm_grad_norm},
        {"critic_loss", p->has_critic ? ss->critic_loss : NAN},
        {"critic_grad_norm", p->has_critic ? ss->critic_grad_norm : NAN},
        {"batch_norm_divisor", ss->batch_norm_div},
        {"lr", ss->lr},
        {"prm_lr", prm_off(p) ? NAN : ss->prm_lr},
        {"critic_lr", p->has_critic ? ss->critic_lr : NAN},
        /* how full generation's slots ran: live rows per decode step over rl.generation_rows */
        {"gen_decode_steps", rs->decode_steps},
        {"gen_slot_use",
         rs->decode_steps > 0 ? rs->rows_decoded / (rs->decode_steps * p->gen.B_cap) : NAN},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        json_object_set_new(j, nums[i].key, json_finite(nums[i].value));
    json_object_set_new(j, "skipped_updates", json_integer(p->skipped_updates));
    json_object_set_new(j, "ranks", json_integer(dist_size()));
    json_object_set_new(j, "comm_bytes_per_rank", json_real(ss->comm_bytes));
    json_t *ph = json_object();
    json_object_set_new(ph, "generate", phase(rs->t_generate, rs->response_tokens));
    json_object_set_new(ph, "verify", phase(rs->t_verify, -1));
    json_object_set_new(ph, "logprobs", phase(ss->t_logprobs, prime_logprob_forwards(p) * toks));
    json_object_set_new(ph, "prm_update", phase(ss->t_prm, toks));
    json_object_set_new(ph, "advantages", phase(ss->t_adv, -1));
    json_object_set_new(ph, "policy_update", phase(ss->t_policy, toks * p->rc->rl.ppo_epochs));
    json_object_set_new(j, "phases", ph);
    json_dumpf(j, p->metrics, JSON_COMPACT | JSON_REAL_PRECISION(7));
    fputc('\n', p->metrics);
    fflush(p->metrics);
    json_decref(j);
}

/* Nothing passed the filter: no update. With a dump directory the last attempt's rollouts
 * are still scored and dumped (advantages zero, marked in the metadata), so a user can see
 * why nothing passed. */
static int skipped_step(Prime *p, int step, RolloutStats *rs, StepStats *ss) {
    int st = DR_OK;
    ss->policy_loss = NAN;
    if (p->rc->debug_dump_dir[0]) {
        StepBatch *b = &p->b;
        rollout_last_attempt(&p->rollout, &p->groups, p->rc->rl.prompts_per_step);
        pack(p);
        StepStats scratch = *ss;
        logprobs_and_rewards(p, &scratch, 0);
        size_t n = sizeof(float) * b->N * b->T;
        memset(b->advantages, 0, n);
        memset(b->returns, 0, n);
        st = dump_step(p->rc->debug_dump_dir, step, b, p->rc, p->has_critic, 1);
        p->groups.n = 0;
    }
    metrics_write(p, step, rs, ss);
    return st;
}

/* The rates of RL step `step` (1-based) by rl.lr_schedule, each from its own peak. */
static void step_rates(const RlConfig *c, int step, StepStats *ss) {
    const LrShape s = (LrShape)lr_shape(c->lr_schedule);
    const int k = step - 1, n = c->steps, w = c->warmup_steps;
    ss->lr = lr_at(s, c->lr, k, n, w, c->min_lr_ratio);
    ss->prm_lr = lr_at(s, c->prm_lr, k, n, w, c->min_lr_ratio);
    ss->critic_lr = lr_at(s, c->critic_lr, k, n, w, c->min_lr_ratio);
}

int prime_step(Prime *p, int step, RolloutStats *rs, StepStats *ss) {
    const RlConfig *c = &p->rc->rl;
    StepBatch *b = &p->b;
    memset(ss, 0, sizeof *ss);
    step_rates(c, step, ss);
    double sent0 = dist_bytes_sent();
    prof_push("rollout");
    rollout_step(&p->rollout, &p->groups, rs);
    prof_pop();
    if (p->groups.n == 0) return skipped_step(p, step, rs, ss);
    pack(p);
    logprobs_and_rewards(p, ss, 1);
    const int fused = policy_fused(p); /* logp_old and entropy come with the update */
    if (!fused) {
        ss->kl_ref = ref_needed(p) ? kl_to_ref(b) : NAN;
        ss->entropy = mean_entropy(b);
    }
    if (prm_off(p)) {
        ss->prm_loss = ss->prm_acc = ss->prm_auc = ss->prm_grad_norm = NAN;
    } else if (strcmp(c->prm_update, "before") != 0) {
        double t0 = time_now();
        prof_push("prm_update");
        prm_update(p, ss); /* "after" trains; "none" only scores */
        prof_pop();
        ss->t_prm = time_now() - t0;
        if (prm_fused(p)) token_rewards(p);
    }
    double t0 = time_now();
    ss->batch_norm_div = 1;
    if (c->batch_norm) {
        ss->batch_norm_div =
            op_reward_suffix_absmax(STEP_BE, b->reward, b->mask, b->N, b->T) + 1e-6;
        op_scale(STEP_BE, b->reward, (long)b->N * b->T, (float)(1.0 / ss->batch_norm_div));
    }
    reward_stats(b, ss);
    advantages(p, ss);
    ss->t_adv = time_now() - t0;
    if (p->rc->debug_dump_dir[0] &&
        dump_step(p->rc->debug_dump_dir, step, b, p->rc, p->has_critic, 0))
        return DR_ERR;
    t0 = time_now();
    prof_push("policy_update");
    policy_update(p, ss);
    if (fused) {
        ss->kl_ref = ref_needed(p) ? kl_to_ref(b) : NAN;
        ss->entropy = mean_entropy(b);
    }
    if (p->has_critic) critic_update(p, p->no_targets, ss);
    prof_pop();
    ss->t_policy = time_now() - t0;
    p->skipped_updates += ss->skipped;
    ss->comm_bytes = dist_bytes_sent() - sent0;
    metrics_write(p, step, rs, ss);
    return DR_OK;
}

double prime_eval(Generator *gen, const Task *task, const RunConfig *rc, double *per_set) {
    int n = task->eval_n, T = gen->T_cap, lo, hi;
    dist_rows(0, n, &lo, &hi); /* this rank's problems; greedy, so the same answers anywhere */
    /* every problem in one call: the generator decodes B_cap at a time and refills slots */
    const int B = hi - lo > 0 ? hi - lo : 1;
    int *prompts = xcalloc((size_t)B * T, sizeof(int)), *plen = xcalloc(B, sizeof(int));
    int *out = xcalloc((size_t)B * T, sizeof(int)), *rlen = xcalloc(B, sizeof(int));
    int *eos = xcalloc(B, sizeof(int));
    unsigned long long *ids = xcalloc(B, sizeof(unsigned long long));
    SampleParams sp = sample_params_default();
    sp.temperature = 0; /* greedy */
    sp.max_new_tokens = rc->rl.max_response_tokens;
    double correct[TASK_MAX_EVAL_SETS] = {0};
    for (int r = 0; r < hi - lo; r++) {
        plen[r] = task_eval_prompt(task, lo + r, prompts + (size_t)r * T, T);
        ids[r] = (unsigned long long)(lo + r);
    }
    generate(gen, prompts, plen, hi - lo, &sp, task->stop, task->n_stop, task->pad_id, 0, ids, out,
             rlen, eos, NULL);
    for (int r = 0, s = 0; r < hi - lo; r++) {
        while (lo + r >= task->eval_sets[s].end) s++;
        correct[s] += task_verify(task, 1, lo + r, out + (size_t)r * T, plen[r], rlen[r]);
    }
    free(prompts);
    free(plen);
    free(out);
    free(rlen);
    free(eos);
    free(ids);
    dist_sum_f64(correct, task->n_eval_sets);
    double mean = 0;
    for (int s = 0; s < task->n_eval_sets; s++) {
        const TaskEvalSet *e = &task->eval_sets[s];
        const double a = correct[s] / (e->end - e->start > 0 ? e->end - e->start : 1);
        if (per_set) per_set[s] = a;
        mean += a / task->n_eval_sets;
    }
    return mean;
}
