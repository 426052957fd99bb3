/* Schema, defaults and cross-field checks of the run config. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "run_config.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"

#define F(key, type, field, lo, hi, choices, help)                                                 \
    { key, type, offsetof(RunConfig, field), lo, hi, choices, help }

static const CfgField FIELDS[] = {
    F("run_dir", CFG_STRING, run_dir, 0, 0, NULL, "directory for metrics and checkpoints"),
    F("seed", CFG_INT, seed, 0, 2147483647, NULL, "fixes every random draw of the run"),
    F("device", CFG_STRING, device, 0, 0, "cpu|cuda|auto", "compute backend"),
    F("threads", CFG_INT, threads, 0, 1024, NULL, "CPU threads (0: all cores)"),
    F("checkpoint_dtype", CFG_STRING, checkpoint_dtype, 0, 0, "f32|bf16", "weights on disk"),
    F("model.init", CFG_STRING, model.init, 0, 0, NULL, "\"random\" or a HF model directory"),
    F("model.model_type", CFG_STRING, model.model_type, 0, 0, "llama|qwen2|mistral",
      "architecture for random init"),
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
    F("task.name", CFG_STRING, task.name, 0, 0, "arith", "the training task"),
    F("task.min_operands", CFG_INT, task.min_operands, 2, 8, NULL, ""),
    F("task.max_operands", CFG_INT, task.max_operands, 2, 8, NULL, ""),
    F("task.max_value", CFG_INT, task.max_value, 1, 1000000, NULL, ""),
    F("task.eval_size", CFG_INT, task.eval_size, 1, 100000, NULL, "held-out problems"),
    F("task.eval_seed", CFG_INT, task.eval_seed, 0, 2147483647, NULL, "held-out stream"),
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
    F("sft.log_every", CFG_INT, sft.log_every, 1, 1000000, NULL, "progress line interval"),
    F("sft.eval_every", CFG_INT, sft.eval_every, 0, 1000000, NULL, "held-out eval (0: end)"),
};
#define N_FIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

void run_config_default(RunConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->run_dir, CFG_STR_LEN, "runs/default");
    c->seed = 1234;
    snprintf(c->device, CFG_STR_LEN, "auto");
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
    return DR_OK;
}

json_t *run_config_json(const RunConfig *c) {
    return config_to_json(FIELDS, N_FIELDS, c);
}
