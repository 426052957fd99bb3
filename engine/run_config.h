/* The run config of `denserl train`: every key, its default and its range. */
#pragma once
#include "../runtime/config.h"

typedef struct {
    int steps, batch_size, warmup_steps, log_every, eval_every;
    double lr, min_lr_ratio, weight_decay, beta1, beta2, eps, grad_clip;
    double teacher_slip; /* arith: share of negative step results shown without their sign */
} SftConfig;

enum { RL_MICRO_AUTO = -1 }; /* rl.micro_batch_rows "auto" */

/* The RL phase (PRIME.md): rollouts, filtering, implicit PRM, estimator, PPO. */
typedef struct {
    int steps, prompts_per_step, samples_per_prompt, max_response_tokens, top_k;
    double temperature, top_p;
    double acc_lo, acc_hi;
    int oversample, max_attempts, drop_truncated;
    double beta;
    char granularity[CFG_STR_LEN], step_delimiter[CFG_STR_LEN], reward_transform[CFG_STR_LEN];
    double clip_eta;
    int batch_norm;
    char prm_update[CFG_STR_LEN];
    double prm_lr, prm_grad_clip;
    int prm_minibatches;
    int micro_batch_rows; /* rows per model call, 0: a whole mini-batch, RL_MICRO_AUTO: the
                           * most that fit (memplan_resolve sets the number) */
    int group_by_length;  /* model calls at their own longest row (microbatch.h) */
    int generation_rows;  /* rows decoded at once (the KV cache's); 0: the rank's share */
    int save_every;       /* RL steps between resume points (resume.h); 0: none */
    int checkpoint_every; /* RL steps between HF checkpoints under checkpoints/; 0: none */
    int keep_checkpoints; /* the newest of those kept; 0: all */
    int fuse_forwards;    /* update forwards stand in for log-prob forwards where they can */
    char estimator[CFG_STR_LEN], rloo_variant[CFG_STR_LEN];
    double w_process, w_outcome, gamma, lam;
    int ppo_epochs, ppo_minibatches;
    double clip_low, clip_high, dual_clip;
    char loss_agg[CFG_STR_LEN], kl_estimator[CFG_STR_LEN];
    double kl_coef, entropy_coef;
    double lr, weight_decay, grad_clip, beta1, beta2;
    char lr_schedule[CFG_STR_LEN]; /* constant|cosine|linear, over rl.steps (lr_schedule.h) */
    int warmup_steps;
    double min_lr_ratio;
    char critic[CFG_STR_LEN];
    double critic_lr, value_clip;
    int eval_every, log_every;
} RlConfig;

typedef struct {
    char run_dir[CFG_STR_LEN];
    char debug_dump_dir[CFG_STR_LEN];
    int seed;
    char device[CFG_STR_LEN];
    char precision[CFG_STR_LEN]; /* "fp32" or "bf16" (mixed, GPU only) */
    char attention[CFG_STR_LEN]; /* "flash" or "cudnn" (bf16 only) */
    int zero_stage; /* 0: optimizer state on every rank; 1: sharded; 2: grads too; 3: ref weights
                       too */
    double grad_bucket_mb;      /* gradient all-reduce buckets overlapping the backward */
    int gradient_checkpointing; /* trained models recompute their layers (MODEL_RECOMPUTE) */
    int threads;
    int tensorboard; /* RUN_DIR/tensorboard mirrors metrics.jsonl (tb_log.h) */
    char checkpoint_dtype[CFG_STR_LEN];
    struct {
        char init[CFG_STR_LEN]; /* "random" or a Hugging Face model directory */
        char model_type[CFG_STR_LEN];
        int vocab_size; /* 0: the task tokenizer's */
        int hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
        int intermediate_size, max_position_embeddings, tie_word_embeddings;
        double init_std, rope_theta;
    } model;
    struct {
        char name[CFG_STR_LEN]; /* "arith", "gsm8k" or "math" (task.h) */
        int min_operands, max_operands, max_value, eval_size, eval_seed;
        char train_data[CFG_STR_LEN], eval_data[CFG_STR_LEN];      /* JSONL, dataset tasks */
        char prompt_field[CFG_STR_LEN], answer_field[CFG_STR_LEN]; /* "": the preset's */
        char template_name[CFG_STR_LEN];                           /* auto|chatml|llama3|raw */
        char system[CFG_STR_LEN], suffix[CFG_STR_LEN];             /* "": none */
        double max_bad_fraction; /* bad dataset lines tolerated before loading fails */
        int max_prompt_tokens;   /* longer prompts are skipped; 0: no limit */
    } task;
    SftConfig sft;
    RlConfig rl;
} RunConfig;

void run_config_default(RunConfig *c);
/* Loads PATH, applies the --set assignments, binds and cross-checks. DR_OK or DR_ERR. */
int run_config_load(RunConfig *c, const char *path, char **sets, int n_sets);
/* Whether the RL step has an implicit PRM: every rl.prm_update but "off" (outcome-only
 * estimators, no PRM model at all). */
int rl_has_prm(const RlConfig *r);
/* Every key with its default, what it takes and its help, one line each (train --help-config). */
void run_config_print_help(FILE *f);
/* The resolved config as JSON (written to the run directory). */
json_t *run_config_json(const RunConfig *c);
