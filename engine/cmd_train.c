/* `denserl train CONFIG.json [--set k=v ...]`: resolve and check the whole config before
 * any work, build or load the model, run the phases, write the run directory. */
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "model_io.h"
#include "run_config.h"
#include "sft.h"
#include "tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"

void openblas_set_num_threads(int n);

static void random_model_config(const RunConfig *rc, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_type, sizeof c->model_type, "%.31s", rc->model.model_type);
    c->vocab = CHARTOK_VOCAB;
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

/* Everything that can be wrong with the inputs is found here, before the run directory
 * exists. */
static int prepare(const char *cfg_path, char **sets, int n_sets, RunConfig *rc, Model *m) {
    if (run_config_load(rc, cfg_path, sets, n_sets)) return DR_ERR;
    Backend be;
    if (backend_from_name(rc->device, &be)) return dr_error("%s: %s", cfg_path, dr_last_error());
    if (rc->threads > 0) {
        omp_set_num_threads(rc->threads);
        openblas_set_num_threads(rc->threads);
    }
    ArithParams ap = {rc->task.min_operands, rc->task.max_operands, rc->task.max_value};
    int need = sft_max_len(&ap);
    ModelConfig mc;
    if (strcmp(rc->model.init, "random") == 0) {
        random_model_config(rc, &mc);
        if (model_config_validate(&mc, cfg_path)) return DR_ERR;
    } else if (model_config_load(rc->model.init, &mc)) {
        return DR_ERR;
    }
    if (mc.vocab < CHARTOK_VOCAB)
        return dr_error("%s: model vocab_size %d is smaller than the task's %d tokens",
                        rc->model.init, mc.vocab, CHARTOK_VOCAB);
    if (need > mc.max_pos)
        return dr_error("%s: task problems need up to %d tokens but the model's context is %d "
                        "(raise model.max_position_embeddings or lower task.max_operands / "
                        "task.max_value)",
                        cfg_path, need, mc.max_pos);
    if (strcmp(rc->model.init, "random") == 0) {
        model_init(m, &mc, be, rc->sft.batch_size, need);
        model_init_random(m, (unsigned long long)rc->seed, (float)rc->model.init_std);
        return DR_OK;
    }
    return model_load(m, rc->model.init, be, rc->sft.batch_size, need);
}

int cmd_train(int argc, char **argv) {
    const char *cfg_path = NULL;
    char **sets = xcalloc(argc + 1, sizeof(char *));
    int n_sets = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else if (argv[i][0] != '-' && !cfg_path) {
            cfg_path = argv[i];
        } else {
            fprintf(stderr,
                    "error: train: unexpected argument '%s' (usage: denserl train "
                    "CONFIG.json [--set key.path=value ...])\n",
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
    Model m;
    int st = prepare(cfg_path, sets, n_sets, &rc, &m);
    free(sets);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    char path[PATH_MAX];
    double t0 = time_now();
    st = make_dirs(rc.run_dir);
    if (st == DR_OK) {
        json_t *j = run_config_json(&rc);
        snprintf(path, sizeof path, "%s/run_config.json", rc.run_dir);
        st = json_write_path(path, j);
        json_decref(j);
    }
    if (st == DR_OK) {
        printf("denserl train | %s | %zu parameters | %s | %d threads\n", cfg_path, m.n_params,
               backend_name(m.be), omp_get_max_threads());
        snprintf(path, sizeof path, "%s/metrics.jsonl", rc.run_dir);
        remove(path); /* a rerun into the same directory starts a fresh log */
        st = sft_run(&m, &rc, rc.run_dir);
    }
    if (st == DR_OK) {
        snprintf(path, sizeof path, "%s/sft", rc.run_dir);
        st = model_save(&m, path, strcmp(rc.checkpoint_dtype, "bf16") == 0);
        if (st == DR_OK) printf("checkpoint: %s (Hugging Face layout)\n", path);
    }
    model_free(&m);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    char dur[32];
    format_duration(time_now() - t0, dur, sizeof dur);
    printf("done in %s -> %s\n", dur, rc.run_dir);
    return 0;
}
