/* The PRIME RL phase (PRIME.md): per step, rollouts, reference / PRM / policy log-probs,
 * implicit process rewards, the online PRM update, advantages, PPO, metrics and the debug
 * dump. The policy, PRM, reference and (for gae) critic are separate models. */
#pragma once
#include <stdio.h>
#include "generate.h"
#include "microbatch.h"
#include "model.h"
#include "optimizer.h"
#include "rollout.h"
#include "run_config.h"

/* One step's packed batch; (N, T) arrays use the model's prediction alignment: column t
 * holds the log-prob of targets[i, t] = tokens[i, t + 1]. */
typedef struct {
    int N, T;
    int *tokens;                /* (N, T) */
    int *targets;               /* (N, T), -1 off the response */
    float *mask;                /* (N, T) 1 where targets is a response token */
    float *outcome;             /* (N) */
    int *group;                 /* (N) group index within the step */
    int *prompt_len, *resp_len; /* (N) */
    int *len;                   /* (N) prompt + response: the columns row i needs */
    float *logp_old, *logp_ref, *logp_prm, *entropy; /* (N, T) */
    float *reward, *advantages, *returns, *values;   /* (N, T) */
    float *work, *work2;                             /* (N, T) scratch */
    float *score;                                    /* (N) PRM sequence score s_i */
} StepBatch;

/* One model call's rows, dense at the call's own length (microbatch.h): cap tokens each,
 * rows arrays one entry per row. The critic's calls use old, adv and vals for its old
 * values, returns and new values. */
typedef struct {
    int *tokens, *targets;
    float *mask, *logp, *ent, *old, *ref, *adv, *vals, *dlogp, *dent;
    float *score, *outcome;
} Stage;

typedef struct {
    double prm_loss, prm_acc, prm_auc, policy_loss, clip_frac, kl_old, kl_ref, entropy;
    double grad_norm, prm_grad_norm, critic_loss, critic_grad_norm;
    double reward_mean, reward_min, reward_max, adv_mean, adv_std, batch_norm_div;
    double lr, prm_lr, critic_lr; /* this step's rates (rl.lr_schedule) */
    double t_logprobs, t_prm, t_adv, t_policy;
    double comm_bytes; /* sent by this rank during the step (0 with one rank) */
    int skipped;
} StepStats;

typedef struct {
    const RunConfig *rc;
    const Task *task; /* the caller's, or own_task */
    Task own_task;
    int owns_task;
    Model *policy;
    Model prm, ref, critic;
    int has_critic;
    AdamW opt_policy, opt_prm, opt_critic;
    Generator gen;
    Rollout rollout;
    Groups groups;
    StepBatch b;
    MicroPlan plan; /* the model calls of the current row range */
    Stage st;
    int align;       /* call lengths are multiples of it (tile-friendly on a GPU) */
    int *no_targets; /* (n_max, t_max) all -1: forwards that need no log-probs */
    int n_max, t_max, skipped_updates;
    FILE *metrics;
} Prime;

/* Copies the policy into the PRM, the reference and (if the estimator needs it) a critic;
 * sizes every buffer once. task (which must outlive p) gives the prompts and the verifier;
 * NULL: the arithmetic task of rc, owned by p. */
void prime_init(Prime *p, const RunConfig *rc, const Task *task, Model *policy, FILE *metrics);
void prime_free(Prime *p);
/* One RL step; fills stats and writes a metrics line. step is 1-based. Returns DR_OK, or
 * DR_ERR if the debug dump could not be written. */
int prime_step(Prime *p, int step, RolloutStats *rs, StepStats *ss);
/* Greedy accuracy of a model on the task's fixed held-out set (task->eval_n problems): the
 * mean of its parts' accuracies (task->eval_sets), each into per_set[s] when per_set is not
 * NULL. */
double prime_eval(Generator *gen, const Task *task, const RunConfig *rc, double *per_set);
/* Tokens of the packed step's rows (prompt + response each), the tokens a model call over
 * them computes; padding is not counted. */
double prime_batch_tokens(const Prime *p);
/* Policy-sized forwards over the batch in the log-prob phase: the reference and the policy,
 * and the PRM unless the "after" update's forwards give its log-probs (prm_fused). */
int prime_logprob_forwards(const Prime *p);
/* Whether the PRM, the reference and the critic use the policy's activations: each model's
 * forward and backward run back to back in the step, so one set serves all of them
 * (DENSERL_SHARED_ACTIVATIONS=0: each its own, the same results bit for bit). */
int prime_shared_activations(void);
/* Whether the PRM's gradients use the policy's buffer: the PRM update ends with its optimizer
 * step before the policy's begins, so one buffer serves both (DENSERL_SHARED_GRADS=0: each its
 * own, the same results bit for bit). */
int prime_shared_grads(void);
/* Whether a bf16 run's reference keeps its layers' weight matrices in bf16 alone (it never
 * trains, and its products read only the bf16 copy): 4 bytes a parameter of them less
 * (DENSERL_REF_BF16_ONLY=0: an fp32 copy too, the same results bit for bit). */
int prime_ref_bf16_only(void);
/* Whether, under zero_stage 1 with several ranks in bf16, the trained models keep only their
 * rank's range of the fp32 master weights (model_shard_master): 4 bytes a parameter of the
 * layers' matrices less, less the range (DENSERL_SHARDED_MASTER=0: all of them on every rank,
 * the same results bit for bit). */
int prime_sharded_master(void);
/* Rows generation holds at once: this rank's share of the oversampled draw, or of the
 * held-out set (at most 256 at a time) where that is more, and at most rl.generation_rows;
 * task NULL: the arithmetic task of rc. */
int prime_gen_rows(const Task *task, const RunConfig *rc);
/* Rows per model call in the RL step: rl.micro_batch_rows, at most the step's batch ("auto"
 * must have been settled by memplan_resolve; unsettled it counts as the whole batch). */
int prime_micro_rows(const RunConfig *rc);
/* Longest row (prompt + response) the RL phase produces; task NULL: the arithmetic task of
 * rc. */
int prime_max_len(const Task *task, const RunConfig *rc);
/* How well PRM scores rank the rows: the chance that a row with outcome > 0.5 scores above
 * one without (ties count half), over all such pairs; NaN when either kind is missing. Unlike
 * the sign accuracy it does not move when every score shifts by the same amount. */
double prime_score_auc(const float *score, const float *outcome, int n);
