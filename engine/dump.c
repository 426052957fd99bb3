/* Writing the per-step debug dump. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "dump.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/safetensors.h"

/* Token alignment: out[i, t] = x[i, t - 1], out[i, 0] = 0. */
static float *shift(const float *x, int N, int T) {
    float *o = xcalloc((size_t)N * T, sizeof(float));
    for (int i = 0; i < N; i++)
        memcpy(o + (size_t)i * T + 1, x + (size_t)i * T, sizeof(float) * (T - 1));
    return o;
}

static json_t *metadata(const RunConfig *rc, int skipped) {
    const RlConfig *c = &rc->rl;
    char buf[64];
    json_t *m = json_object();
#define PUT_S(k, v) json_object_set_new(m, k, json_string(v))
#define PUT_F(k, v) (snprintf(buf, sizeof buf, "%.9g", (double)(v)), PUT_S(k, buf))
    PUT_S("tokenizer", "char");
    PUT_S("alignment", "tokens");
    PUT_S("skipped",
          skipped ? "true: no group passed the accuracy filter; not trained on" : "false");
    PUT_S("estimator", c->estimator);
    PUT_S("rloo_variant", c->rloo_variant);
    PUT_S("granularity", c->granularity);
    PUT_S("reward_transform", c->reward_transform);
    PUT_S("prm_update", c->prm_update);
    PUT_S("batch_norm", c->batch_norm ? "true" : "false");
    PUT_F("beta", c->beta);
    PUT_F("clip_eta", c->clip_eta);
    PUT_F("w_process", c->w_process);
    PUT_F("w_outcome", c->w_outcome);
    PUT_F("gamma", c->gamma);
    PUT_F("lambda", c->lam);
    PUT_F("samples_per_prompt", c->samples_per_prompt);
#undef PUT_S
#undef PUT_F
    return m;
}

int dump_step(const char *dir, int step, const StepBatch *b, const RunConfig *rc, int values,
              int skipped) {
    if (make_dirs(dir)) return DR_ERR;
    int N = b->N, T = b->T;
    const char *names[] = {"response_mask", "logp_old",   "logp_ref", "logp_prm",
                           "token_reward",  "advantages", "returns",  "values"};
    const float *src[] = {b->mask,   b->logp_old,   b->logp_ref, b->logp_prm,
                          b->reward, b->advantages, b->returns,  b->values};
    int n_f = values ? 8 : 7;
    StEntry e[11];
    float *shifted[8];
    int n = 0;
    e[n++] = (StEntry){"tokens", ST_I32, ST_I32, 2, {N, T}, b->tokens};
    e[n++] = (StEntry){"group", ST_I32, ST_I32, 1, {N}, b->group};
    e[n++] = (StEntry){"outcome", ST_F32, ST_F32, 1, {N}, b->outcome};
    for (int k = 0; k < n_f; k++) {
        shifted[k] = shift(src[k], N, T);
        e[n++] = (StEntry){names[k], ST_F32, ST_F32, 2, {N, T}, shifted[k]};
    }
    json_t *meta = metadata(rc, skipped);
    char *meta_s = json_dumps(meta, JSON_COMPACT);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/step_%06d.safetensors", dir, step);
    int st = st_write(path, e, n, meta_s);
    free(meta_s);
    json_decref(meta);
    for (int k = 0; k < n_f; k++) free(shifted[k]);
    return st;
}
