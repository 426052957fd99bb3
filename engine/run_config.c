/* Schema, defaults and cross-field checks of the run config. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "dataset.h"
#include "run_config.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"

#define F(key, type, field, lo, hi, choices, help)                                                 \
    { key, type, offsetof(RunConfig, field), lo, hi, choices, help }

static const CfgField FIELDS[] = {
    F("run_dir", CFG_STRING, run_dir, 0, 0, NULL, "directory for metrics and checkpoints"),
    F("seed", CFG_INT, seed, 0, 2147483647, NULL, "fixes every random draw of the run"),
    F("device", CFG_STRING, device, 0, 0, "cpu|cuda|auto", "compute backend"),
    F("zero_stage", CFG_INT, zero_stage, 0, 3, NULL,
      "1: AdamW moments and updates sharded over the ranks (ZeRO-1); 2: the RL step's "
      "gradients too, summed into their owners as each layer's backward ends (ZeRO-2); 3: in "
      "bf16 also the reference's and the PRM's weights, gathered a layer at a time"),
    F("grad_bucket_mb", CFG_FLOAT, grad_bucket_mb, 0, 1e6, NULL,
      "several ranks, ZeRO-0: gradients summed in buckets of this many MB as the backward "
      "finishes them (0: one sum at the update)"),
    F("gradient_checkpointing", CFG_BOOL, gradient_checkpointing, 0, 1, NULL,
      "trained models keep each layer's input alone and run its forward again in the backward: "
      "about a third more update compute, the same gradients, far less activation memory"),
    F("precision", CFG_STRING, precision, 0, 0, "fp32|bf16",
      "bf16: bf16 copies of weights and activations in the products (GPU only)"),
    F("attention", CFG_STRING, attention, 0, 0, "flash|cudnn",
      "bf16 attention: the hand-written flash kernels or cuDNN's fused attention"),
    F("threads", CFG_INT, threads, 0, 1024, NULL, "CPU threads (0: all cores)"),
    F("checkpoint_dtype", CFG_STRING, checkpoint_dtype, 0, 0, "f32|bf16", "weights on disk"),
    F("model.init", CFG_STRING, model.init, 0, 0, NULL, "\"random\" or a HF model directory"),
    F("model.model_type", CFG_STRING, model.model_type, 0, 0, "llama|qwen2|mistral",
      "architecture for random init"),
    F("model.vocab_size", CFG_INT, model.vocab_size, 0, 1 << 24, NULL,
      "random init: embedding rows (0: the task's tokens; larger for benchmark shapes)"),
    F("model.hidden_size", CFG_INT, model.hidden_size, 8, 65536, NULL, ""),
    F("model.num_hidden_layers", CFG_INT, model.num_hidden_layers, 1, 1024, NULL, ""),
    F("model.num_attention_heads", CFG_INT, model.num_attention_heads, 1, 1024, NULL, ""),
    F("model.num_key_value_heads", CFG_INT, model.num_key_value_heads, 1, 1024, NULL, ""),
    F("model.intermediate_size", CFG_INT, model.intermediate_size, 1, 1 << 20, NULL, ""),
    F("model.max_position_embeddings", CFG_INT, model.max_position_embeddings, 8, 1 << 20, NULL,
      ""),
    F("model.tie_word_embeddings", CFG_BOOL, model.tie_word_embeddings, 0, 1, NULL, ""),
    F("model.init_std", CFG_FLOAT, model.init_std, 1e-6, 10, NULL, "std of random init"),
    F("model.rope_theta", CFG_FLOAT, model.rope_theta, 1, 1e9, NULL, ""),
    F("task.name", CFG_STRING, task.name, 0, 0, "arith|gsm8k|math|verl|custom",
      "the training task: the embedded arithmetic, or a JSONL math dataset (custom: fields "
      "named by task.prompt_field and task.answer_field)"),
    F("task.prompt_field", CFG_STRING, task.prompt_field, 0, 0, NULL,
      "dataset tasks: the JSONL field holding the question (\"\": the preset's)"),
    F("task.answer_field", CFG_STRING, task.answer_field, 0, 0, NULL,
      "dataset tasks: the field holding the answer: its \"####\" part, else its last "
      "\\boxed{}, else the whole of it (\"\": the preset's)"),
    F("task.min_operands", CFG_INT, task.min_operands, 2, 8, NULL, ""),
    F("task.max_operands", CFG_INT, task.max_operands, 2, 8, NULL, ""),
    F("task.max_value", CFG_INT, task.max_value, 1, 1000000, NULL, ""),
    F("task.eval_size", CFG_INT, task.eval_size, 1, 100000, NULL, "held-out problems"),
    F("task.eval_seed", CFG_INT, task.eval_seed, 0, 2147483647, NULL, "held-out stream"),
    F("task.train_data", CFG_STRING, task.train_data, 0, 0, NULL,
      "dataset tasks: JSONL file of training prompts"),
    F("task.eval_data", CFG_STRING, task.eval_data, 0, 0, NULL,
      "dataset tasks: JSONL file of held-out prompts (the first task.eval_size), or several "
      "separated by commas, each scored on its own (the mean is the held-out accuracy)"),
    F("task.template", CFG_STRING, task.template_name, 0, 0, "auto|chatml|llama3|raw",
      "dataset tasks: chat template (auto: from tokenizer_config.json)"),
    F("task.system", CFG_STRING, task.system, 0, 0, NULL,
      "dataset tasks: system prompt (\"\": none)"),
    F("task.suffix", CFG_STRING, task.suffix, 0, 0, NULL,
      "dataset tasks: instruction after each question (\"\": none)"),
    F("task.max_prompt_tokens", CFG_INT, task.max_prompt_tokens, 0, 1 << 16, NULL,
      "dataset tasks: prompts (template included) longer than this are skipped, with a count; "
      "0: no limit"),
    F("task.max_bad_fraction", CFG_FLOAT, task.max_bad_fraction, 0, 1, NULL,
      "dataset tasks: share of bad JSONL lines skipped before loading fails"),
    F("sft.steps", CFG_INT, sft.steps, 0, 10000000, NULL, "supervised steps"),
    F("sft.batch_size", CFG_INT, sft.batch_size, 1, 1 << 16, NULL, "sequences per step"),
    F("sft.lr", CFG_FLOAT, sft.lr, 0, 1, NULL, "peak learning rate"),
    F("sft.warmup_steps", CFG_INT, sft.warmup_steps, 0, 10000000, NULL, "linear warm-up"),
    F("sft.min_lr_ratio", CFG_FLOAT, sft.min_lr_ratio, 0, 1, NULL, "cosine floor / peak"),
    F("sft.weight_decay", CFG_FLOAT, sft.weight_decay, 0, 1, NULL, "decoupled (AdamW)"),
    F("sft.beta1", CFG_FLOAT, sft.beta1, 0, 0.999999, NULL, ""),
    F("sft.beta2", CFG_FLOAT, sft.beta2, 0, 0.999999, NULL, ""),
    F("sft.eps", CFG_FLOAT, sft.eps, 1e-12, 1, NULL, ""),
    F("sft.grad_clip", CFG_FLOAT, sft.grad_clip, 0, 1e9, NULL, "global norm; 0 disables"),
    F("sft.teacher_slip", CFG_FLOAT, sft.teacher_slip, 0, 1, NULL,
      "share of the worked steps with a negative result that the demonstrations write without "
      "the minus sign (a flawed teacher for RL to correct); 0: exact demonstrations"),
    F("sft.log_every", CFG_INT, sft.log_every, 1, 1000000, NULL, "progress line interval"),
    F("sft.eval_every", CFG_INT, sft.eval_every, 0, 1000000, NULL, "held-out eval (0: end)"),
    F("tensorboard", CFG_BOOL, tensorboard, 0, 1, NULL,
      "run_dir/tensorboard: every number of metrics.jsonl as a TensorBoard scalar, written as "
      "the run goes (tensorboard --logdir, wandb sync --sync-tensorboard)"),
    F("debug_dump_dir", CFG_STRING, debug_dump_dir, 0, 0, NULL, "per-step RL tensors (\"\": off)"),
    F("rl.steps", CFG_INT, rl.steps, 0, 10000000, NULL, "RL steps"),
    F("rl.prompts_per_step", CFG_INT, rl.prompts_per_step, 1, 1 << 20, NULL, "P"),
    F("rl.samples_per_prompt", CFG_INT, rl.samples_per_prompt, 1, 1024, NULL, "K"),
    F("rl.max_response_tokens", CFG_INT, rl.max_response_tokens, 1, 1 << 20, NULL, ""),
    F("rl.temperature", CFG_FLOAT, rl.temperature, 0, 100, NULL, "rollout sampling"),
    F("rl.top_p", CFG_FLOAT, rl.top_p, 1e-6, 1, NULL, ""),
    F("rl.top_k", CFG_INT, rl.top_k, 0, 1 << 24, NULL, "0: off"),
    F("rl.acc_lo", CFG_FLOAT, rl.acc_lo, 0, 1, NULL, "keep groups with mean outcome >= acc_lo"),
    F("rl.acc_hi", CFG_FLOAT, rl.acc_hi, 0, 1, NULL, "... and <= acc_hi"),
    F("rl.oversample", CFG_INT, rl.oversample, 1, 64, NULL, "prompts drawn = oversample x P"),
    F("rl.max_attempts", CFG_INT, rl.max_attempts, 1, 1000, NULL, "draws per step"),
    F("rl.drop_truncated", CFG_BOOL, rl.drop_truncated, 0, 1, NULL,
      "drop groups with a cut response"),
    F("rl.beta", CFG_FLOAT, rl.beta, 0, 1e6, NULL, "implicit PRM reward scale"),
    F("rl.granularity", CFG_STRING, rl.granularity, 0, 0, "token|step|whole", ""),
    F("rl.step_delimiter", CFG_STRING, rl.step_delimiter, 0, 0, NULL,
      "text ending a reasoning step"),
    F("rl.reward_transform", CFG_STRING, rl.reward_transform, 0, 0, "none|clip|delta", ""),
    F("rl.clip_eta", CFG_FLOAT, rl.clip_eta, -1e6, 1e6, NULL, ""),
    F("rl.batch_norm", CFG_BOOL, rl.batch_norm, 0, 1, NULL, "normalise process rewards"),
    F("rl.prm_update", CFG_STRING, rl.prm_update, 0, 0, "after|before|none|off",
      "off: no PRM and no reference forward (outcome-only estimators, no KL)"),
    F("rl.prm_lr", CFG_FLOAT, rl.prm_lr, 0, 1, NULL, ""),
    F("rl.prm_grad_clip", CFG_FLOAT, rl.prm_grad_clip, 0, 1e9, NULL, ""),
    F("rl.prm_minibatches", CFG_INT, rl.prm_minibatches, 1, 1 << 16, NULL, ""),
    F("rl.generation_rows", CFG_INT, rl.generation_rows, 0, 1 << 20, NULL,
      "rows decoded at once, which the KV cache holds; the others take the slots of finished "
      "rows (continuous batching), with the same "
      "samples; 0: every row of this rank's share"),
    F("rl.micro_batch_rows", CFG_INT, rl.micro_batch_rows, 0, 1 << 20, "auto",
      "activation memory of a model call, in rows of the longest possible length; 0: whole "
      "mini-batches; \"auto\": the most rows whose run fits the device's free memory"),
    F("rl.group_by_length", CFG_BOOL, rl.group_by_length, 0, 1, NULL,
      "model calls take rows longest first, each at its own longest row; false: rows in order, "
      "every call at the step's longest row"),
    F("rl.estimator", CFG_STRING, rl.estimator, 0, 0, "rloo|rloo_outcome|grpo|reinforce|gae", ""),
    F("rl.rloo_variant", CFG_STRING, rl.rloo_variant, 0, 0, "prime|paper", "process baseline"),
    F("rl.w_process", CFG_FLOAT, rl.w_process, -1e6, 1e6, NULL, ""),
    F("rl.w_outcome", CFG_FLOAT, rl.w_outcome, -1e6, 1e6, NULL, ""),
    F("rl.gamma", CFG_FLOAT, rl.gamma, 0, 1, NULL, ""),
    F("rl.lambda", CFG_FLOAT, rl.lam, 0, 1, NULL, "GAE"),
    F("rl.ppo_epochs", CFG_INT, rl.ppo_epochs, 1, 1000, NULL, ""),
    F("rl.ppo_minibatches", CFG_INT, rl.ppo_minibatches, 1, 1 << 16, NULL, ""),
    F("rl.clip_low", CFG_FLOAT, rl.clip_low, 0, 1, NULL, "ratio >= 1 - clip_low"),
    F("rl.clip_high", CFG_FLOAT, rl.clip_high, 0, 100, NULL, "ratio <= 1 + clip_high"),
    F("rl.dual_clip", CFG_FLOAT, rl.dual_clip, 0, 1e6, NULL, "c > 1 enables; 0 off"),
    F("rl.loss_agg", CFG_STRING, rl.loss_agg, 0, 0, "token-mean|seq-mean-token-mean", ""),
    F("rl.kl_coef", CFG_FLOAT, rl.kl_coef, 0, 1e6, NULL, "KL to reference in the loss"),
    F("rl.kl_estimator", CFG_STRING, rl.kl_estimator, 0, 0, "k1|k3", ""),
    F("rl.entropy_coef", CFG_FLOAT, rl.entropy_coef, 0, 1e6, NULL, ""),
    F("rl.lr", CFG_FLOAT, rl.lr, 0, 1, NULL, "policy learning rate"),
    F("rl.lr_schedule", CFG_STRING, rl.lr_schedule, 0, 0, "constant|cosine|linear",
      "after the warm-up, the policy's, PRM's and critic's rates held, or decayed to "
      "min_lr_ratio x their peak at rl.steps"),
    F("rl.warmup_steps", CFG_INT, rl.warmup_steps, 0, 10000000, NULL,
      "RL steps of linear warm-up to the peak rates"),
    F("rl.min_lr_ratio", CFG_FLOAT, rl.min_lr_ratio, 0, 1, NULL, "decay floor / peak"),
    F("rl.weight_decay", CFG_FLOAT, rl.weight_decay, 0, 1, NULL, ""),
    F("rl.grad_clip", CFG_FLOAT, rl.grad_clip, 0, 1e9, NULL, ""),
    F("rl.beta1", CFG_FLOAT, rl.beta1, 0, 0.999999, NULL, ""),
    F("rl.beta2", CFG_FLOAT, rl.beta2, 0, 0.999999, NULL, ""),
    F("rl.critic", CFG_STRING, rl.critic, 0, 0, "auto|none",
      "auto: a value head on a copy of the SFT model when the estimator needs one"),
    F("rl.critic_lr", CFG_FLOAT, rl.critic_lr, 0, 1, NULL, "gae only"),
    F("rl.value_clip", CFG_FLOAT, rl.value_clip, 0, 1e6, NULL, "gae only"),
    F("rl.eval_every", CFG_INT, rl.eval_every, 0, 1000000, NULL, "greedy held-out eval (0: end)"),
    F("rl.fuse_forwards", CFG_BOOL, rl.fuse_forwards, 0, 1, NULL,
      "the PRM's (one PRM mini-batch, after mode) and the policy's (one PPO epoch of one "
      "mini-batch) update forwards give their log-probs, saving the log-prob phase's forward; "
      "false: separate forwards, the same results"),
    F("rl.checkpoint_every", CFG_INT, rl.checkpoint_every, 0, 10000000, NULL,
      "RL steps between checkpoints of the policy and the PRM in Hugging Face layout, "
      "run_dir/checkpoints/step_NNNNNN/ (also after the last step); 0: none"),
    F("rl.keep_checkpoints", CFG_INT, rl.keep_checkpoints, 0, 10000000, NULL,
      "the newest checkpoints/ kept, older ones removed; 0: all"),
    F("rl.save_every", CFG_INT, rl.save_every, 0, 10000000, NULL,
      "RL steps between resume points (run_dir/resume.safetensors, also after the last step; "
      "train --resume goes on from it); 0: none"),
    F("rl.log_every", CFG_INT, rl.log_every, 1, 1000000, NULL, ""),
};
#define N_FIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

int rl_has_prm(const RlConfig *r) {
    return strcmp(r->prm_update, "off") != 0;
}

/* Cross-field rules of the RL section, caught before any work starts. */
static int rl_config_check(const RlConfig *r, const char *path) {
    int loo = !strcmp(r->estimator, "rloo") || !strcmp(r->estimator, "rloo_outcome");
    if (loo && r->samples_per_prompt < 2)
        return dr_error("%s: 'rl.samples_per_prompt' must be >= 2 for the leave-one-out "
                        "estimator '%s' (got %d)",
                        path, r->estimator, r->samples_per_prompt);
    if (r->acc_lo > r->acc_hi)
        return dr_error("%s: 'rl.acc_lo' (%g) must not exceed 'rl.acc_hi' (%g)", path, r->acc_lo,
                        r->acc_hi);
    if (!strcmp(r->estimator, "gae") && !strcmp(r->critic, "none"))
        return dr_error("%s: 'rl.estimator' \"gae\" needs a critic but 'rl.critic' is \"none\"",
                        path);
    /* row and token counts are ints: refuse a step whose buffers could not be indexed (nor
     * held by any machine) rather than overflow */
    long long rows = (long long)r->prompts_per_step * r->samples_per_prompt *
                     ((long long)r->oversample * r->max_attempts + 1);
    if (rows * (r->max_response_tokens + 1) > INT_MAX)
        return dr_error("%s: 'rl.prompts_per_step' x 'rl.samples_per_prompt' x ('rl.oversample' "
                        "x 'rl.max_attempts' + 1) rows of 'rl.max_response_tokens' tokens make "
                        "%lld tokens, more than %d",
                        path, rows * (r->max_response_tokens + 1), INT_MAX);
    if (!rl_has_prm(r) && strcmp(r->estimator, "rloo_outcome") != 0 && r->w_process != 0)
        return dr_error("%s: 'rl.prm_update' \"off\" runs no PRM, but 'rl.estimator' \"%s\" "
                        "uses process rewards (use \"rloo_outcome\", or 'rl.w_process' 0)",
                        path, r->estimator);
    if (!(r->beta > 0)) return dr_error("%s: 'rl.beta' must be > 0 (got %g)", path, r->beta);
    if (r->dual_clip != 0 && r->dual_clip <= 1)
        return dr_error("%s: 'rl.dual_clip' must be 0 (off) or > 1 (got %g)", path, r->dual_clip);
    return DR_OK;
}

/* Cross-field rules of the task section (the files themselves are read by task_open). */
static int task_config_check(const RunConfig *c, const char *path) {
    const char *name = c->task.name;
    if (!strcmp(name, "arith")) {
        if (strlen(c->rl.step_delimiter) != 1)
            return dr_error("%s: 'rl.step_delimiter' must be a single character for the "
                            "character tokenizer (got \"%s\")",
                            path, c->rl.step_delimiter);
        return DR_OK;
    }
    if (c->sft.steps > 0)
        return dr_error("%s: 'sft.steps' must be 0 for task.name \"%s\" (got %d): SFT runs on "
                        "the arithmetic task only; supervised fine-tuning on a dataset is out of "
                        "scope, so start from a model that already follows the template",
                        path, name, c->sft.steps);
    if (strcmp(c->model.init, "random") == 0)
        return dr_error("%s: task.name \"%s\" needs 'model.init' to be a Hugging Face model "
                        "directory with tokenizer.json, not \"random\"",
                        path, name);
    if (!strcmp(name, "custom") && (!c->task.prompt_field[0] || !c->task.answer_field[0]))
        return dr_error("%s: task.name \"custom\" needs 'task.prompt_field' and "
                        "'task.answer_field' (the JSONL fields of the question and its answer)",
                        path);
    if (!c->task.train_data[0])
        return dr_error("%s: task.name \"%s\" needs 'task.train_data' (a JSONL file)", path, name);
    if (!c->task.eval_data[0])
        return dr_error("%s: task.name \"%s\" needs 'task.eval_data' (a JSONL file; it may be "
                        "the same as task.train_data)",
                        path, name);
    if (!c->rl.step_delimiter[0])
        return dr_error("%s: 'rl.step_delimiter' must not be empty", path);
    return DR_OK;
}

void run_config_default(RunConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->run_dir, CFG_STR_LEN, "runs/default");
    c->seed = 1234;
    snprintf(c->device, CFG_STR_LEN, "auto");
    snprintf(c->precision, CFG_STR_LEN, "fp32");
    snprintf(c->attention, CFG_STR_LEN, "flash");
    c->grad_bucket_mb = 25;
    snprintf(c->checkpoint_dtype, CFG_STR_LEN, "f32");
    snprintf(c->model.init, CFG_STR_LEN, "random");
    snprintf(c->model.model_type, CFG_STR_LEN, "llama");
    c->model.hidden_size = 128;
    c->model.num_hidden_layers = 4;
    c->model.num_attention_heads = 4;
    c->model.num_key_value_heads = 2;
    c->model.intermediate_size = 384;
    c->model.max_position_embeddings = 128;
    c->model.init_std = 0.02;
    c->model.rope_theta = 10000;
    snprintf(c->task.name, CFG_STR_LEN, "arith");
    c->task.min_operands = 2;
    c->task.max_operands = 4;
    c->task.max_value = 99;
    c->task.eval_size = 256;
    c->task.eval_seed = 777;
    snprintf(c->task.template_name, CFG_STR_LEN, "auto");
    c->task.max_bad_fraction = DATASET_MAX_BAD_DEFAULT;
    c->tensorboard = 1;
    c->sft.steps = 200;
    c->sft.batch_size = 32;
    c->sft.lr = 3e-3;
    c->sft.warmup_steps = 20;
    c->sft.min_lr_ratio = 0.1;
    c->sft.beta1 = 0.9;
    c->sft.beta2 = 0.95;
    c->sft.eps = 1e-8;
    c->sft.grad_clip = 1.0;
    c->sft.log_every = 10;
    RlConfig *r = &c->rl;
    r->steps = 0;
    r->prompts_per_step = 16;
    r->samples_per_prompt = 4;
    r->max_response_tokens = 64;
    r->temperature = 1.0;
    r->top_p = 1.0;
    r->acc_lo = 0.2;
    r->acc_hi = 0.8;
    r->oversample = 2;
    r->max_attempts = 4;
    r->beta = 0.05;
    snprintf(r->granularity, CFG_STR_LEN, "token");
    snprintf(r->step_delimiter, CFG_STR_LEN, ",");
    snprintf(r->reward_transform, CFG_STR_LEN, "none");
    r->batch_norm = 1;
    snprintf(r->prm_update, CFG_STR_LEN, "after");
    r->prm_lr = 1e-6;
    r->prm_grad_clip = 10.0;
    r->prm_minibatches = 1;
    r->group_by_length = 1;
    r->fuse_forwards = 1;
    snprintf(r->estimator, CFG_STR_LEN, "rloo");
    snprintf(r->rloo_variant, CFG_STR_LEN, "prime");
    r->w_process = 1.0;
    r->w_outcome = 1.0;
    r->gamma = 1.0;
    r->lam = 1.0;
    r->ppo_epochs = 1;
    r->ppo_minibatches = 4;
    r->clip_low = 0.2;
    r->clip_high = 0.2;
    snprintf(r->loss_agg, CFG_STR_LEN, "token-mean");
    snprintf(r->kl_estimator, CFG_STR_LEN, "k3");
    snprintf(r->lr_schedule, CFG_STR_LEN, "constant");
    r->min_lr_ratio = 0.1;
    r->lr = 5e-7;
    r->weight_decay = 0.01;
    r->grad_clip = 1.0;
    r->beta1 = 0.9;
    r->beta2 = 0.999;
    snprintf(r->critic, CFG_STR_LEN, "auto");
    r->critic_lr = 1e-5;
    r->value_clip = 0.5;
    r->log_every = 1;
}

int run_config_load(RunConfig *c, const char *path, char **sets, int n_sets) {
    json_t *root;
    run_config_default(c);
    if (json_load_path(path, &root)) return DR_ERR;
    if (!json_is_object(root)) {
        json_decref(root);
        return dr_error("%s: expected a JSON object", path);
    }
    int st = DR_OK;
    for (int i = 0; i < n_sets && st == DR_OK; i++) st = config_apply_set(root, sets[i]);
    if (st == DR_OK) st = config_bind(root, FIELDS, N_FIELDS, c, path);
    json_decref(root);
    if (st) return st;
    if (c->task.min_operands > c->task.max_operands)
        return dr_error("%s: 'task.min_operands' (%d) exceeds 'task.max_operands' (%d)", path,
                        c->task.min_operands, c->task.max_operands);
    if (c->model.num_attention_heads % c->model.num_key_value_heads)
        return dr_error("%s: 'model.num_attention_heads' must be a multiple of "
                        "'model.num_key_value_heads'",
                        path);
    if ((c->model.hidden_size / c->model.num_attention_heads) % 2)
        return dr_error("%s: 'model.hidden_size' / 'model.num_attention_heads' must be even", path);
    if (c->run_dir[0] == 0) return dr_error("%s: 'run_dir' must not be empty", path);
    if (!strcmp(c->attention, "cudnn") && strcmp(c->precision, "bf16"))
        return dr_error("%s: 'attention' \"cudnn\" needs 'precision' \"bf16\" (got \"%s\")", path,
                        c->precision);
    if (rl_config_check(&c->rl, path)) return DR_ERR;
    return task_config_check(c, path);
}

json_t *run_config_json(const RunConfig *c) {
    return config_to_json(FIELDS, N_FIELDS, c);
}

void run_config_print_help(FILE *f) {
    RunConfig c;
    run_config_default(&c);
    config_print_help(f, FIELDS, N_FIELDS, &c);
}
