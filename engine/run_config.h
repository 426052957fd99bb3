/* The run config of `denserl train`: every key, its default and its range. */
#pragma once
#include "../runtime/config.h"

typedef struct {
    int steps, batch_size, warmup_steps, log_every, eval_every;
    double lr, min_lr_ratio, weight_decay, beta1, beta2, eps, grad_clip;
} SftConfig;

typedef struct {
    char run_dir[CFG_STR_LEN];
    int seed;
    char device[CFG_STR_LEN];
    int threads;
    char checkpoint_dtype[CFG_STR_LEN];
    struct {
        char init[CFG_STR_LEN]; /* "random" or a Hugging Face model directory */
        char model_type[CFG_STR_LEN];
        int hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
        int intermediate_size, max_position_embeddings, tie_word_embeddings;
        double init_std, rope_theta;
    } model;
    struct {
        char name[CFG_STR_LEN];
        int min_operands, max_operands, max_value, eval_size, eval_seed;
    } task;
    SftConfig sft;
} RunConfig;

void run_config_default(RunConfig *c);
/* Loads PATH, applies the --set assignments, binds and cross-checks. DR_OK or DR_ERR. */
int run_config_load(RunConfig *c, const char *path, char **sets, int n_sets);
/* The resolved config as JSON (written to the run directory). */
json_t *run_config_json(const RunConfig *c);
