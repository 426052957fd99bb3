/* Loading and saving Hugging Face model directories (config.json + safetensors). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include "model_io.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"
#include "../runtime/safetensors.h"

/* rope_scaling (older configs) or rope_parameters (transformers v5): none, default or llama3 */
static int parse_rope(const json_t *root, const char *file, ModelConfig *c) {
    const json_t *rs = json_object_get(root, "rope_scaling");
    const json_t *rp = json_object_get(root, "rope_parameters");
    const char *key = "rope_scaling";
    if ((!rs || json_is_null(rs)) && rp && !json_is_null(rp)) {
        rs = rp;
        key = "rope_parameters";
    }
    if (!rs || json_is_null(rs)) return DR_OK;
    if (!json_is_object(rs)) return dr_error("%s: field '%s' must be an object or null", file, key);
    double theta = c->rope_theta;
    if (json_get_num(rs, "rope_theta", 0, file, &theta)) return DR_ERR;
    c->rope_theta = (float)theta;
    const char *type = NULL;
    if (json_get_str(rs, "rope_type", 0, file, &type)) return DR_ERR;
    if (!type && json_get_str(rs, "type", 0, file, &type)) return DR_ERR;
    if (!type || strcmp(type, "default") == 0) return DR_OK;
    if (strcmp(type, "llama3") != 0)
        return dr_error("%s: %s type '%s' is not supported (expected none, 'default' or "
                        "'llama3')",
                        file, key, type);
    double f = 0, lo = 0, hi = 0;
    int orig = 0;
    if (json_get_num(rs, "factor", 1, file, &f) ||
        json_get_num(rs, "low_freq_factor", 1, file, &lo) ||
        json_get_num(rs, "high_freq_factor", 1, file, &hi) ||
        json_get_int(rs, "original_max_position_embeddings", 1, file, &orig))
        return DR_ERR;
    c->rope_llama3 = 1;
    c->rs_factor = (float)f;
    c->rs_low_freq = (float)lo;
    c->rs_high_freq = (float)hi;
    c->rs_orig_max_pos = orig;
    return DR_OK;
}

/* A token id field may be an integer, a list of integers (first used) or null. */
static int parse_token_id(const json_t *root, const char *key, const char *file, int *out) {
    const json_t *v = json_object_get(root, key);
    *out = -1;
    if (!v || json_is_null(v)) return DR_OK;
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!json_is_integer(v)) return dr_error("%s: field '%s' must be an integer", file, key);
    *out = (int)json_integer_value(v);
    return DR_OK;
}

static int parse_config(const json_t *root, const char *file, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) return dr_error("%s: expected a JSON object", file);
    const char *mt = NULL;
    if (json_get_str(root, "model_type", 1, file, &mt)) return DR_ERR;
    if (strcmp(mt, "llama") && strcmp(mt, "qwen2") && strcmp(mt, "mistral"))
        return dr_error("%s: model_type '%s' is not supported (expected 'llama', 'qwen2' or "
                        "'mistral')",
                        file, mt);
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if (json_get_int(root, "vocab_size", 1, file, &c->vocab) ||
        json_get_int(root, "hidden_size", 1, file, &c->d_model) ||
        json_get_int(root, "intermediate_size", 1, file, &c->d_ff) ||
        json_get_int(root, "num_hidden_layers", 1, file, &c->n_layers) ||
        json_get_int(root, "num_attention_heads", 1, file, &c->n_heads))
        return DR_ERR;
    c->n_kv_heads = c->n_heads;
    c->max_pos = 2048;
    if (json_get_int(root, "num_key_value_heads", 0, file, &c->n_kv_heads) ||
        json_get_int(root, "max_position_embeddings", 0, file, &c->max_pos))
        return DR_ERR;
    c->head_dim = c->n_heads > 0 ? c->d_model / c->n_heads : 0;
    if (json_get_int(root, "head_dim", 0, file, &c->head_dim)) return DR_ERR;
    double eps = 1e-6, theta = 10000.0;
    if (json_get_num(root, "rms_norm_eps", 0, file, &eps) ||
        json_get_num(root, "rope_theta", 0, file, &theta))
        return DR_ERR;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (parse_rope(root, file, c)) return DR_ERR;
    const char *act = "silu";
    if (json_get_str(root, "hidden_act", 0, file, &act)) return DR_ERR;
    if (strcmp(act, "silu") != 0)
        return dr_error("%s: hidden_act '%s' is not supported (expected 'silu')", file, act);
    if (json_get_bool(root, "tie_word_embeddings", 0, file, &c->tied)) return DR_ERR;
    int ab = 0, mlp_bias = 0;
    if (json_get_bool(root, "attention_bias", 0, file, &ab) ||
        json_get_bool(root, "mlp_bias", 0, file, &mlp_bias))
        return DR_ERR;
    if (mlp_bias) return dr_error("%s: mlp_bias true is not supported (expected false)", file);
    if (strcmp(mt, "qwen2") == 0) {
        c->qkv_bias = 1;
        int use_sw = 0;
        if (json_get_bool(root, "use_sliding_window", 0, file, &use_sw)) return DR_ERR;
        if (use_sw && json_get_int(root, "sliding_window", 0, file, &c->sliding_window))
            return DR_ERR;
    } else if (strcmp(mt, "llama") == 0) {
        c->qkv_bias = c->o_bias = ab;
    } else if (json_get_int(root, "sliding_window", 0, file, &c->sliding_window)) {
        return DR_ERR;
    }
    if (parse_token_id(root, "bos_token_id", file, &c->bos_id) ||
        parse_token_id(root, "eos_token_id", file, &c->eos_id) ||
        parse_token_id(root, "pad_token_id", file, &c->pad_id))
        return DR_ERR;
    return model_config_validate(c, file);
}

int model_config_load(const char *dir, ModelConfig *c) {
    char path[PATH_MAX];
    if (!dir_exists(dir)) return dr_error("%s: model directory not found", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root;
    if (json_load_path(path, &root)) return DR_ERR;
    int st = parse_config(root, path, c);
    json_decref(root);
    return st;
}

int model_check_seq_len(const ModelConfig *c, int T, const char *what) {
    if (T > c->max_pos)
        return dr_error("%s: sequence of %d tokens exceeds max_position_embeddings (%d)", what, T,
                        c->max_pos);
    if (c->sliding_window > 0 && T > c->sliding_window)
        return dr_error("%s: sequence of %d tokens is longer than the model's sliding window "
                        "(%d), which denserl does not implement",
                        what, T, c->sliding_window);
    return DR_OK;
}

int model_check_runnable(const ModelConfig *c, Backend be, int B, int T, const char *what) {
    if (be == BACKEND_CUDA && (c->head_dim % 4 != 0 || c->head_dim > 256))
        return dr_error("%s: head_dim %d cannot run on the GPU, whose attention kernels take a "
                        "multiple of 4 up to 256 (use \"device\": \"cpu\", or another "
                        "hidden_size / num_attention_heads)",
                        what, c->head_dim);
    struct sysinfo si;
    if (be != BACKEND_CPU || sysinfo(&si) != 0) return DR_OK;
    /* the weights, the residual stream of every layer and the MLP's three activations */
    double N = (double)B * T, L = c->n_layers;
    double need =
        4.0 * ((double)model_param_count(c) + N * c->d_model * (L + 1) + 3 * N * L * c->d_ff);
    double have = ((double)si.totalram + (double)si.totalswap) * si.mem_unit;
    if (need > have)
        return dr_error("%s: a model of %.3g parameters with activations for %d rows of %d tokens "
                        "needs at least %.1f GB, more than this machine's %.1f GB of memory and "
                        "swap",
                        what, (double)model_param_count(c), B, T, need / 1e9, have / 1e9);
    return DR_OK;
}

/* One named tensor of the HF layout and where it lives in the flat buffer. */
typedef struct {
    char name[96];
    float *data;
    int ndim;
    int64_t shape[2];
} NamedTensor;

static int add(NamedTensor *t, int n, const char *name, float *data, int64_t r, int64_t cols) {
    if (!data) return n;
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].data = data;
    t[n].ndim = cols ? 2 : 1;
    t[n].shape[0] = r;
    t[n].shape[1] = cols;
    return n + 1;
}

/* All tensors of the HF layout in file order; returns the count (at most 13 per layer + 3). */
static int named_tensors(const ModelConfig *c, const ParamViews *v, NamedTensor *t) {
    int n = 0;
    int64_t d = c->d_model, F = c->d_ff, V = c->vocab;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim;
    char nm[96];
    n = add(t, n, "model.embed_tokens.weight", v->embed, V, d);
    for (int l = 0; l < c->n_layers; l++) {
#define L(p, sz) ((p) ? (p) + (size_t)l * (sz) : NULL)
#define NM(s)    (snprintf(nm, sizeof nm, "model.layers.%d.%s", l, s), nm)
        n = add(t, n, NM("input_layernorm.weight"), L(v->attn_norm, d), d, 0);
        n = add(t, n, NM("self_attn.q_proj.weight"), L(v->wq, qd * d), qd, d);
        n = add(t, n, NM("self_attn.q_proj.bias"), L(v->bq, qd), qd, 0);
        n = add(t, n, NM("self_attn.k_proj.weight"), L(v->wk, kd * d), kd, d);
        n = add(t, n, NM("self_attn.k_proj.bias"), L(v->bk, kd), kd, 0);
        n = add(t, n, NM("self_attn.v_proj.weight"), L(v->wv, kd * d), kd, d);
        n = add(t, n, NM("self_attn.v_proj.bias"), L(v->bv, kd), kd, 0);
        n = add(t, n, NM("self_attn.o_proj.weight"), L(v->wo, d * qd), d, qd);
        n = add(t, n, NM("self_attn.o_proj.bias"), L(v->bo, d), d, 0);
        n = add(t, n, NM("post_attention_layernorm.weight"), L(v->mlp_norm, d), d, 0);
        n = add(t, n, NM("mlp.gate_proj.weight"), L(v->w_gate, F * d), F, d);
        n = add(t, n, NM("mlp.up_proj.weight"), L(v->w_up, F * d), F, d);
        n = add(t, n, NM("mlp.down_proj.weight"), L(v->w_down, d * F), d, F);
#undef L
#undef NM
    }
    n = add(t, n, "model.norm.weight", v->final_norm, d, 0);
    if (!c->tied) n = add(t, n, "lm_head.weight", v->lm_head, V, d);
    return n;
}

/* The shard files of DIR: model.safetensors, or the files named by the index. */
typedef struct {
    int n;
    StFile *files;
    json_t *weight_map; /* NULL for a single file */
    char index_path[PATH_MAX];
} Shards;

static void shards_close(Shards *s) {
    for (int i = 0; i < s->n; i++) st_close(&s->files[i]);
    free(s->files);
    if (s->weight_map) json_decref(s->weight_map);
    memset(s, 0, sizeof *s);
}

static int shards_open(Shards *s, const char *dir) {
    char path[PATH_MAX];
    memset(s, 0, sizeof *s);
    snprintf(s->index_path, sizeof s->index_path, "%s/model.safetensors.index.json", dir);
    if (!file_exists(s->index_path)) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!file_exists(path))
            return dr_error("%s: neither model.safetensors nor model.safetensors.index.json "
                            "found",
                            dir);
        s->files = xcalloc(1, sizeof(StFile));
        if (st_open(&s->files[0], path)) {
            free(s->files);
            s->files = NULL;
            return DR_ERR;
        }
        s->n = 1;
        return DR_OK;
    }
    json_t *root;
    if (json_load_path(s->index_path, &root)) return DR_ERR;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        json_decref(root);
        return dr_error("%s: field 'weight_map' must be an object", s->index_path);
    }
    s->weight_map = json_incref(wm);
    json_decref(root);
    const char *key;
    json_t *val;
    size_t cap = json_object_size(wm) + 1;
    s->files = xcalloc(cap, sizeof(StFile));
    json_object_foreach(s->weight_map, key, val) {
        if (!json_is_string(val) || strchr(json_string_value(val), '/')) {
            shards_close(s);
            return dr_error("%s: weight_map['%s'] must be a file name in the model directory",
                            s->index_path, key);
        }
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(val));
        int seen = 0;
        for (int i = 0; i < s->n && !seen; i++) seen = strcmp(s->files[i].path, path) == 0;
        if (seen) continue;
        if (st_open(&s->files[s->n], path)) {
            shards_close(s);
            return DR_ERR;
        }
        s->n++;
    }
    return DR_OK;
}

/* Finds NAME in the shard the index assigns it to (or the single file); *file gets its path. */
static const StTensor *shards_find(const Shards *s, const char *name, const char **file) {
    if (!s->weight_map) {
        *file = s->files[0].path;
        return st_find(&s->files[0], name);
    }
    *file = s->index_path;
    const json_t *v = json_object_get(s->weight_map, name);
    if (!json_is_string(v)) return NULL;
    for (int i = 0; i < s->n; i++) {
        const char *base = strrchr(s->files[i].path, '/');
        if (strcmp(base ? base + 1 : s->files[i].path, json_string_value(v)) == 0) {
            *file = s->files[i].path;
            return st_find(&s->files[i], name);
        }
    }
    return NULL;
}

int model_weights_load(Model *m, const char *dir) {
    Shards s;
    if (shards_open(&s, dir)) return DR_ERR;
    float *host = xcalloc(m->n_params, sizeof(float));
    ParamViews hv;
    model_param_views(&m->cfg, (float *)host, &hv);
    NamedTensor *t = xcalloc((size_t)m->cfg.n_layers * 13 + 4, sizeof(NamedTensor));
    int n = named_tensors(&m->cfg, &hv, t), st = DR_OK;
    for (int i = 0; i < n && st == DR_OK; i++) {
        const char *file = dir;
        const StTensor *x = shards_find(&s, t[i].name, &file);
        if (!x) {
            st = dr_error("%s: tensor '%s' is missing", file, t[i].name);
            break;
        }
        int ok = x->ndim == t[i].ndim;
        for (int k = 0; ok && k < t[i].ndim; k++) ok = x->shape[k] == t[i].shape[k];
        if (!ok) {
            char want[64], got[96];
            int p = snprintf(got, sizeof got, "[");
            for (int k = 0; k < x->ndim && p < 80; k++)
                p += snprintf(got + p, sizeof got - p, "%s%lld", k ? ", " : "",
                              (long long)x->shape[k]);
            snprintf(got + p, sizeof got - p, "]");
            if (t[i].ndim == 2)
                snprintf(want, sizeof want, "[%lld, %lld]", (long long)t[i].shape[0],
                         (long long)t[i].shape[1]);
            else
                snprintf(want, sizeof want, "[%lld]", (long long)t[i].shape[0]);
            st = dr_error("%s: tensor '%s' has shape %s but config.json implies %s", file,
                          t[i].name, got, want);
            break;
        }
        if (st_read_f32(x, t[i].data)) {
            st = dr_error("%s: tensor '%s' has dtype %s (expected F32, BF16 or F16)", file,
                          t[i].name, st_dtype_name(x->dtype));
            break;
        }
        /* a NaN or Inf weight (a diverged or corrupt checkpoint) would only show up as NaN
         * log-probs, losses or replies later */
        size_t cnt = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        for (size_t k = 0; k < cnt; k++)
            if (!isfinite(t[i].data[k])) {
                st = dr_error("%s: tensor '%s' holds a non-finite value (%g) at element %zu", file,
                              t[i].name, (double)t[i].data[k], k);
                break;
            }
    }
    if (st == DR_OK) {
        be_to_device(m->be, m->params, host, sizeof(float) * m->n_params);
        model_params_changed(m);
    }
    free(t);
    free(host);
    shards_close(&s);
    return st;
}

int model_load(Model *m, const char *dir, Backend be, int B, int T, const char *bf16_attention) {
    return model_load_keep(m, dir, be, B, T, MODEL_KEEP_ALL, bf16_attention);
}

int model_load_keep(Model *m, const char *dir, Backend be, int B, int T, int keep,
                    const char *bf16_attention) {
    ModelConfig c;
    if (model_config_load(dir, &c)) return DR_ERR;
    if (T > c.max_pos) T = c.max_pos;
    if (model_check_runnable(&c, be, B, T, dir)) return DR_ERR;
    if (model_init_precision(m, &c, be, B, T, keep, bf16_attention)) return DR_ERR;
    if (model_weights_load(m, dir)) {
        model_free(m);
        return DR_ERR;
    }
    return DR_OK;
}

static const char *architecture(const char *model_type) {
    if (strcmp(model_type, "qwen2") == 0) return "Qwen2ForCausalLM";
    if (strcmp(model_type, "mistral") == 0) return "MistralForCausalLM";
    return "LlamaForCausalLM";
}

static json_t *config_json(const ModelConfig *c, int bf16) {
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", architecture(c->model_type)));
    json_object_set_new(j, "model_type", json_string(c->model_type));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab));
    json_object_set_new(j, "hidden_size", json_integer(c->d_model));
    json_object_set_new(j, "intermediate_size", json_integer(c->d_ff));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_pos));
    json_object_set_new(j, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    if (c->rope_llama3)
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor",
                                      (double)c->rs_factor, "low_freq_factor",
                                      (double)c->rs_low_freq, "high_freq_factor",
                                      (double)c->rs_high_freq, "original_max_position_embeddings",
                                      c->rs_orig_max_pos));
    else
        json_object_set_new(j, "rope_scaling", json_null());
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tied));
    if (strcmp(c->model_type, "llama") == 0)
        json_object_set_new(j, "attention_bias", json_boolean(c->qkv_bias));
    if (strcmp(c->model_type, "qwen2") == 0)
        json_object_set_new(j, "use_sliding_window", json_boolean(c->sliding_window > 0));
    if (strcmp(c->model_type, "llama") != 0)
        json_object_set_new(j, "sliding_window",
                            c->sliding_window > 0 ? json_integer(c->sliding_window) : json_null());
    if (c->bos_id >= 0) json_object_set_new(j, "bos_token_id", json_integer(c->bos_id));
    if (c->eos_id >= 0) json_object_set_new(j, "eos_token_id", json_integer(c->eos_id));
    if (c->pad_id >= 0) json_object_set_new(j, "pad_token_id", json_integer(c->pad_id));
    json_object_set_new(j, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    return j;
}

int model_save(const Model *m, const char *dir, int bf16) {
    float *host = xmalloc(sizeof(float) * m->n_params);
    model_params_to_host(m, host);
    int st = model_save_host(m, host, dir, bf16);
    free(host);
    return st;
}

int model_save_host(const Model *m, const float *host, const char *dir, int bf16) {
    char path[PATH_MAX];
    if (make_dirs(dir)) return DR_ERR;
    ParamViews hv;
    model_param_views(&m->cfg, (float *)host, &hv);
    NamedTensor *t = xcalloc((size_t)m->cfg.n_layers * 13 + 4, sizeof(NamedTensor));
    int n = named_tensors(&m->cfg, &hv, t);
    StEntry *e = xcalloc(n, sizeof(StEntry));
    for (int i = 0; i < n; i++) {
        e[i].name = t[i].name;
        e[i].src_dtype = ST_F32;
        e[i].store_dtype = bf16 ? ST_BF16 : ST_F32;
        e[i].ndim = t[i].ndim;
        e[i].shape[0] = t[i].shape[0];
        e[i].shape[1] = t[i].shape[1];
        e[i].data = t[i].data;
    }
    /* weights first, config last: a directory with a config.json is a complete checkpoint */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int st = st_write(path, e, n, "{\"format\": \"pt\"}");
    if (st == DR_OK) {
        json_t *cj = config_json(&m->cfg, bf16);
        snprintf(path, sizeof path, "%s/config.json", dir);
        st = json_write_path(path, cj);
        json_decref(cj);
    }
    free(e);
    free(t);
    return st;
}

int model_copy_side_files(const char *src, const char *dst) {
    static const char *const names[] = {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "tokenizer.model",
        "generation_config.json",
        "chat_template.jinja",
        "chat_template.json",
    };
    char from[PATH_MAX], to[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", src, names[i]);
        snprintf(to, sizeof to, "%s/%s", dst, names[i]);
        if (file_exists(from) && file_copy(from, to)) return DR_ERR;
    }
    return DR_OK;
}
