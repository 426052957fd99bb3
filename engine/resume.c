/* The RL phase's resume point (resume.h). Tensors: "ref", "policy", "prm", "critic" (fp32
 * parameters), "<model>.adam_m" / ".adam_v" (the AdamW moments, whole: the same file with or
 * without ZeRO-1 and for any number of ranks), "carry.*" (the carried groups' rows); the rest
 * is a JSON object in the metadata's "state" string. */
#include "resume.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "dist.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"
#include "../runtime/safetensors.h"

#define RESUME_FORMAT "denserl-resume-1"

enum { N_TRAINED = 3, MAX_ENTRIES = 16 };
static const char *const k_model[N_TRAINED] = {"policy", "prm", "critic"};

void resume_path(char *buf, size_t cap, const char *run_dir) {
    snprintf(buf, cap, "%s/resume.safetensors", run_dir);
}

/* The trained models and their optimizers; the critic's are NULL without one, the PRM's with
 * the PRM off. */
static void trained(const Prime *p, const Model *m[N_TRAINED], const AdamW *o[N_TRAINED]) {
    m[0] = p->policy, o[0] = &p->opt_policy;
    const int prm = rl_has_prm(&p->rc->rl);
    m[1] = prm ? &p->prm : NULL, o[1] = prm ? &p->opt_prm : NULL;
    m[2] = p->has_critic ? &p->critic : NULL, o[2] = p->has_critic ? &p->opt_critic : NULL;
}

/* ---- writing ---- */

typedef struct {
    StEntry e[MAX_ENTRIES];
    void *own[MAX_ENTRIES]; /* host copies to free */
    int n;
} Entries;

static void add(Entries *es, const char *name, StDtype dt, const void *data, int64_t d0, int64_t d1,
                void *own) {
    CHECK(es->n < MAX_ENTRIES);
    StEntry *e = &es->e[es->n];
    *e = (StEntry){name, dt, dt, d1 > 0 ? 2 : 1, {d0, d1}, data};
    es->own[es->n++] = own;
}

static json_t *array_of(const double *x, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_finite(x[i]));
    return a;
}

static json_t *state_json(const Prime *p, int step, const RunReport *rep, long metrics_bytes) {
    const Model *m[N_TRAINED];
    const AdamW *o[N_TRAINED];
    trained(p, m, o);
    const Groups *g = &p->rollout.carry;
    json_t *j = json_object(), *t = json_object(), *ids = json_array(), *r = json_object();
    json_object_set_new(j, "step", json_integer(step));
    json_object_set_new(j, "metrics_bytes", json_integer(metrics_bytes));
    for (int k = 0; k < N_TRAINED; k++)
        if (m[k]) json_object_set_new(t, k_model[k], json_integer(o[k]->t));
    json_object_set_new(j, "adam_updates", t);
    json_object_set_new(j, "next_prompt", json_integer(p->rollout.next_prompt));
    json_object_set_new(j, "samples_per_prompt", json_integer(g->K));
    json_object_set_new(j, "row_capacity", json_integer(g->Tcap));
    json_object_set_new(j, "carry_groups", json_integer(g->n));
    for (int i = 0; i < g->n; i++) json_array_append_new(ids, json_integer(g->prompt_id[i]));
    json_object_set_new(j, "carry_prompt_ids", ids);
    json_object_set_new(j, "skipped_updates", json_integer(p->skipped_updates));
    json_object_set_new(r, "sft_eval_accuracy", json_finite(rep->sft_eval_accuracy));
    json_object_set_new(r, "sft_seconds", json_finite(rep->sft_seconds));
    json_object_set_new(r, "final_sft_loss", json_finite(rep->final_sft_loss));
    json_object_set_new(r, "rl_seconds", json_finite(rep->rl_seconds));
    json_object_set_new(r, "eval_step", array_of(rep->eval_step, rep->n_eval));
    json_object_set_new(r, "eval_acc", array_of(rep->eval_acc, rep->n_eval));
    json_object_set_new(r, "rl_step", array_of(rep->rl_step, rep->n_rl));
    json_object_set_new(r, "rl_accuracy", array_of(rep->rl_accuracy, rep->n_rl));
    json_object_set_new(r, "rl_reward", array_of(rep->rl_reward, rep->n_rl));
    json_object_set_new(j, "report", r);
    return j;
}

int resume_save(const char *path, const Prime *p, int step, const RunReport *rep,
                long metrics_bytes) {
    const Model *m[N_TRAINED];
    const AdamW *o[N_TRAINED];
    trained(p, m, o);
    const int root = dist_is_root();
    Entries es = {0};
    char names[N_TRAINED][2][32];
    /* a bf16 reference's matrices as its bf16 copy holds them (the same run); under ZeRO-3
     * every rank takes part in their gathers */
    if (root || model_forward_collective(&p->ref)) {
        float *h = root ? xmalloc(sizeof(float) * p->ref.n_params) : NULL;
        model_params_to_host(&p->ref, h);
        if (root) add(&es, "ref", ST_F32, h, (int64_t)p->ref.n_params, 0, h);
    }
    for (int k = 0; k < N_TRAINED; k++) {
        if (!m[k]) continue;
        const size_t n = o[k]->n;
        float *hm = root ? xmalloc(sizeof(float) * (n ? n : 1)) : NULL;
        float *hv = root ? xmalloc(sizeof(float) * (n ? n : 1)) : NULL;
        size_t cap;
        float *scratch = model_gather_scratch(m[k], &cap);
        adamw_moments_to_host(o[k], scratch, cap, hm, hv); /* every rank, under ZeRO */
        float *hp = root ? xmalloc(sizeof(float) * m[k]->n_params) : NULL;
        model_params_to_host(m[k], hp); /* every rank, for a sharded master */
        if (!root) continue;
        add(&es, k_model[k], ST_F32, hp, (int64_t)m[k]->n_params, 0, hp);
        snprintf(names[k][0], sizeof names[k][0], "%s.adam_m", k_model[k]);
        snprintf(names[k][1], sizeof names[k][1], "%s.adam_v", k_model[k]);
        add(&es, names[k][0], ST_F32, hm, (int64_t)n, 0, hm);
        add(&es, names[k][1], ST_F32, hv, (int64_t)n, 0, hv);
    }
    if (!root) return DR_OK;
    const Groups *g = &p->rollout.carry;
    const int64_t rows = (int64_t)g->n * g->K;
    if (rows > 0) {
        add(&es, "carry.tokens", ST_I32, g->tokens, rows, g->Tcap, NULL);
        add(&es, "carry.prompt_len", ST_I32, g->prompt_len, rows, 0, NULL);
        add(&es, "carry.resp_len", ST_I32, g->resp_len, rows, 0, NULL);
        add(&es, "carry.truncated", ST_I32, g->truncated, rows, 0, NULL);
        add(&es, "carry.outcome", ST_F32, g->outcome, rows, 0, NULL);
    }
    json_t *state = state_json(p, step, rep, metrics_bytes);
    char *state_s = json_dumps(state, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_t *meta = json_pack("{s:s, s:s}", "format", RESUME_FORMAT, "state", state_s);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    int st = st_write(path, es.e, es.n, meta_s);
    free(meta_s);
    json_decref(meta);
    free(state_s);
    json_decref(state);
    for (int i = 0; i < es.n; i++) free(es.own[i]);
    return st;
}

/* ---- reading ---- */

/* Tensor name of n values of dtype dt, or DR_ERR naming the file and what was expected. */
static int find(const StFile *f, const char *path, const char *name, StDtype dt, size_t n,
                const StTensor **out) {
    const StTensor *t = st_find(f, name);
    if (!t)
        return dr_error("%s: tensor '%s' is missing (not a resume point of this run?)", path, name);
    if (t->dtype != dt || (size_t)st_numel(t) != n)
        return dr_error("%s: tensor '%s' holds %lld %s values; this run needs %zu %s (the model, "
                        "estimator or rl settings differ from the run that saved it)",
                        path, name, (long long)st_numel(t), st_dtype_name(t->dtype), n,
                        st_dtype_name(dt));
    *out = t;
    return DR_OK;
}

/* The fp32 tensor name of n elements into host h. */
static int load_host_f32(const StFile *f, const char *path, const char *name, float *h, size_t n) {
    const StTensor *t = NULL;
    if (find(f, path, name, ST_F32, n, &t)) return DR_ERR;
    st_read_f32(t, h);
    return DR_OK;
}

/* n fp32 values of tensor name into backend memory dst. */
static int load_f32(const StFile *f, const char *path, const char *name, Backend be, float *dst,
                    size_t n) {
    float *h = xmalloc(sizeof(float) * (n ? n : 1));
    int st = load_host_f32(f, path, name, h, n);
    if (st == DR_OK) be_to_device(be, dst, h, sizeof(float) * n);
    free(h);
    return st;
}

static int load_i32(const StFile *f, const char *path, const char *name, int *dst, size_t n) {
    const StTensor *t = NULL;
    if (find(f, path, name, ST_I32, n, &t)) return DR_ERR;
    memcpy(dst, t->data, sizeof(int) * n);
    return DR_OK;
}

/* The whole AdamW moments (saved as one rank keeps them) into this rank's range of o. */
static int load_moments(const StFile *f, const char *path, const char *nm, const char *nv,
                        AdamW *o) {
    const StTensor *tm = NULL, *tv = NULL;
    if (find(f, path, nm, ST_F32, o->n, &tm) || find(f, path, nv, ST_F32, o->n, &tv)) return DR_ERR;
    float *hm = xmalloc(sizeof(float) * (o->n ? o->n : 1));
    float *hv = xmalloc(sizeof(float) * (o->n ? o->n : 1));
    st_read_f32(tm, hm);
    st_read_f32(tv, hv);
    adamw_moments_from_host(o, hm, hv);
    free(hm);
    free(hv);
    return DR_OK;
}

static json_t *read_state(const StFile *f, const char *path);

int resume_load_reference(const char *path, Model *m) {
    StFile f;
    if (st_open(&f, path)) return DR_ERR;
    int st = load_f32(&f, path, "ref", m->be, m->params, m->n_params);
    /* the state too, so that a broken one stops the run before any work, not after it */
    json_t *state = st == DR_OK ? read_state(&f, path) : NULL;
    if (st == DR_OK && !state) st = DR_ERR;
    if (state) json_decref(state);
    st_close(&f);
    if (st == DR_OK) model_params_changed(m);
    return st;
}

/* The metadata's state object, or NULL with the error set. */
static json_t *read_state(const StFile *f, const char *path) {
    json_t *meta = f->metadata_json ? json_loads(f->metadata_json, 0, NULL) : NULL;
    const char *fmt = meta ? json_string_value(json_object_get(meta, "format")) : NULL;
    const char *s = meta ? json_string_value(json_object_get(meta, "state")) : NULL;
    json_t *state = fmt && s && !strcmp(fmt, RESUME_FORMAT) ? json_loads(s, 0, NULL) : NULL;
    if (meta) json_decref(meta);
    if (!state || !json_is_object(state)) {
        if (state) json_decref(state);
        dr_error("%s: no resume state (__metadata__ 'format' \"%s\" with a 'state' object)", path,
                 RESUME_FORMAT);
        return NULL;
    }
    return state;
}

static long long jint(const json_t *j, const char *key) {
    return json_integer_value(json_object_get(j, key));
}

/* A number, NaN for null or missing. */
static double jnum(const json_t *j) {
    return json_is_number(j) ? json_number_value(j) : NAN;
}

/* Replaces *x (n values) with the JSON array a. */
static void set_curve(double **x, int *n, const json_t *a) {
    *n = (int)json_array_size(a);
    free(*x);
    *x = xmalloc(sizeof(double) * (*n ? *n : 1));
    for (int i = 0; i < *n; i++) (*x)[i] = jnum(json_array_get(a, i));
}

static void load_report(const json_t *r, RunReport *rep) {
    rep->sft_eval_accuracy = jnum(json_object_get(r, "sft_eval_accuracy"));
    rep->sft_seconds = jnum(json_object_get(r, "sft_seconds"));
    rep->final_sft_loss = jnum(json_object_get(r, "final_sft_loss"));
    rep->rl_seconds = jnum(json_object_get(r, "rl_seconds"));
    set_curve(&rep->eval_step, &rep->n_eval, json_object_get(r, "eval_step"));
    set_curve(&rep->eval_acc, &rep->n_eval, json_object_get(r, "eval_acc"));
    set_curve(&rep->rl_step, &rep->n_rl, json_object_get(r, "rl_step"));
    set_curve(&rep->rl_accuracy, &rep->n_rl, json_object_get(r, "rl_accuracy"));
    set_curve(&rep->rl_reward, &rep->n_rl, json_object_get(r, "rl_reward"));
}

/* The carried groups (the state says how many). */
static int load_carry(const StFile *f, const char *path, const json_t *state, Groups *g) {
    long long n = jint(state, "carry_groups");
    if (jint(state, "samples_per_prompt") != g->K || jint(state, "row_capacity") != g->Tcap)
        return dr_error("%s: saved with %lld samples per prompt and rows of %lld tokens; this "
                        "run has %d and %d (rl.samples_per_prompt, rl.max_response_tokens or the "
                        "task differ)",
                        path, jint(state, "samples_per_prompt"), jint(state, "row_capacity"), g->K,
                        g->Tcap);
    if (n < 0 || n > g->cap)
        return dr_error("%s: %lld carried groups; this run holds at most %d (rl.prompts_per_step, "
                        "rl.oversample or rl.max_attempts differ)",
                        path, n, g->cap);
    const size_t rows = (size_t)n * g->K;
    g->n = (int)n;
    if (rows == 0) return DR_OK;
    if (load_i32(f, path, "carry.tokens", g->tokens, rows * g->Tcap) ||
        load_i32(f, path, "carry.prompt_len", g->prompt_len, rows) ||
        load_i32(f, path, "carry.resp_len", g->resp_len, rows) ||
        load_i32(f, path, "carry.truncated", g->truncated, rows))
        return DR_ERR;
    const StTensor *t = NULL;
    if (find(f, path, "carry.outcome", ST_F32, rows, &t)) return DR_ERR;
    st_read_f32(t, g->outcome);
    const json_t *ids = json_object_get(state, "carry_prompt_ids");
    for (long long i = 0; i < n; i++) g->prompt_id[i] = json_integer_value(json_array_get(ids, i));
    return DR_OK;
}

static int load_trained(const StFile *f, const char *path, const json_t *state, Prime *p) {
    const int prm = rl_has_prm(&p->rc->rl);
    Model *m[N_TRAINED] = {p->policy, prm ? &p->prm : NULL, p->has_critic ? &p->critic : NULL};
    AdamW *o[N_TRAINED] = {&p->opt_policy, prm ? &p->opt_prm : NULL,
                           p->has_critic ? &p->opt_critic : NULL};
    const json_t *t = json_object_get(state, "adam_updates");
    if ((st_find(f, "critic") != NULL) != (p->has_critic != 0))
        return dr_error(p->has_critic ? "%s: saved without a critic, and this run's estimator "
                                        "needs one (rl.estimator differs)"
                                      : "%s: saved with a critic, and this run's estimator needs "
                                        "none (rl.estimator differs)",
                        path);
    if ((st_find(f, "prm") != NULL) != (prm != 0))
        return dr_error(prm ? "%s: saved with rl.prm_update \"off\" (no PRM), and this run "
                              "trains one"
                            : "%s: saved with a trained PRM, and this run has rl.prm_update "
                              "\"off\"",
                        path);
    for (int k = 0; k < N_TRAINED; k++) {
        if (!m[k]) continue;
        char nm[32], nv[32];
        snprintf(nm, sizeof nm, "%s.adam_m", k_model[k]);
        snprintf(nv, sizeof nv, "%s.adam_v", k_model[k]);
        float *h = xmalloc(sizeof(float) * m[k]->n_params);
        int st = load_host_f32(f, path, k_model[k], h, m[k]->n_params);
        if (st == DR_OK) model_params_from_host(m[k], h);
        free(h);
        if (st || load_moments(f, path, nm, nv, o[k])) return DR_ERR;
        o[k]->t = (int)json_integer_value(json_object_get(t, k_model[k]));
    }
    return DR_OK;
}

int resume_load(const char *path, Prime *p, RunReport *rep, int *step, long *metrics_bytes) {
    StFile f;
    if (st_open(&f, path)) return DR_ERR;
    json_t *state = read_state(&f, path);
    int st = state ? DR_OK : DR_ERR;
    if (st == DR_OK) st = load_trained(&f, path, state, p);
    if (st == DR_OK) st = load_carry(&f, path, state, &p->rollout.carry);
    if (st == DR_OK) {
        p->rollout.next_prompt = jint(state, "next_prompt");
        p->skipped_updates = (int)jint(state, "skipped_updates");
        load_report(json_object_get(state, "report"), rep);
        *step = (int)jint(state, "step");
        *metrics_bytes = (long)jint(state, "metrics_bytes");
    }
    if (state) json_decref(state);
    st_close(&f);
    return st;
}
