/* Whole-model checks on tiny configs: the backward against central finite differences of
 * the forward, and a checkpoint written and read back giving bit-identical log-probs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../engine/model.h"
#include "../engine/model_io.h"
#include "../kernels/philox.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "testutil.h"

static ModelConfig tiny(int tied, int qkv_bias, int o_bias, int llama3) {
    ModelConfig c = {0};
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab = 13;
    c.d_model = 12;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 4; /* differs from d_model / n_heads = 3 */
    c.d_ff = 10;
    c.max_pos = 16;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000;
    c.tied = tied;
    c.qkv_bias = qkv_bias;
    c.o_bias = o_bias;
    c.rope_llama3 = llama3;
    c.rs_factor = 4;
    c.rs_low_freq = 1;
    c.rs_high_freq = 4;
    c.rs_orig_max_pos = 8;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

/* Randomises every parameter (biases and norms included) so no gradient path is trivial. */
static void randomise(Model *m, unsigned long long seed) {
    for (size_t i = 0; i < m->n_params; i++) {
        philox4 r = philox_draw(seed, 99, i);
        m->params[i] = 0.5f * philox_normal(r.v[0], r.v[1]);
    }
}

#define B 2
#define T 6

static double loss_of(Model *m, const int *tok, const int *tg, const float *a, const float *b,
                      float *logp, float *ent) {
    model_forward(m, tok, tg, B, T, logp, ent);
    double L = 0;
    for (int i = 0; i < B * T; i++) L += (double)a[i] * logp[i] + (double)b[i] * ent[i];
    return L;
}

static void grad_check(const char *name, ModelConfig c) {
    Model m;
    model_init(&m, &c, BACKEND_CPU, B, T);
    randomise(&m, 7);
    model_alloc_grads(&m);
    model_zero_grads(&m);
    int tok[B * T], tg[B * T];
    float a[B * T], b[B * T], logp[B * T], ent[B * T];
    for (int i = 0; i < B * T; i++) {
        philox4 r = philox_draw(3, 5, i);
        tok[i] = (int)(r.v[0] % c.vocab);
        tg[i] = (r.v[1] % 5 == 0) ? -1 : (int)(r.v[2] % c.vocab);
        a[i] = philox_u01(r.v[3]) - 0.5f;
        b[i] = tg[i] < 0 ? 0.0f : 0.3f * (philox_u01(r.v[0] ^ r.v[1]) - 0.5f);
    }
    loss_of(&m, tok, tg, a, b, logp, ent);
    model_backward(&m, tok, tg, B, T, a, b);
    /* every coordinate for these sizes; float32 forward, so eps trades truncation for rounding */
    const double eps = 3e-3;
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        float keep = m.params[i];
        m.params[i] = keep + (float)eps;
        double lp = loss_of(&m, tok, tg, a, b, logp, ent);
        m.params[i] = keep - (float)eps;
        double lm = loss_of(&m, tok, tg, a, b, logp, ent);
        m.params[i] = keep;
        double fd = (lp - lm) / (2 * eps), an = m.grads[i];
        double err = fabs(fd - an) / (1e-3 + fabs(fd));
        if (err > worst) worst = err;
        if (fabs(fd - an) > 2e-3 + 2e-2 * fabs(fd)) bad++;
    }
    char msg[200];
    snprintf(msg, sizeof msg,
             "%s: backward vs finite differences over %zu params (worst rel %.2e, %d off)", name,
             m.n_params, worst, bad);
    check(bad == 0, "%s", msg);
    model_free(&m);
}

/* The critic: L = sum a * values through the scalar head and the whole trunk. */
static void value_grad_check(void) {
    ModelConfig c = tiny(0, 1, 0, 0);
    c.value_head = 1;
    Model m;
    model_init(&m, &c, BACKEND_CPU, B, T);
    randomise(&m, 13);
    model_alloc_grads(&m);
    model_zero_grads(&m);
    int tok[B * T], none[B * T];
    float a[B * T], logp[B * T], val[B * T];
    for (int i = 0; i < B * T; i++) {
        philox4 r = philox_draw(4, 6, i);
        tok[i] = (int)(r.v[0] % c.vocab);
        none[i] = -1;
        a[i] = philox_u01(r.v[1]) - 0.5f;
    }
    model_forward(&m, tok, none, B, T, logp, NULL);
    model_values(&m, B, T, val);
    model_backward_values(&m, tok, B, T, a);
    const double eps = 3e-3;
    int bad = 0;
    for (size_t i = 0; i < m.n_params; i++) {
        float keep = m.params[i];
        double L[2];
        for (int s = 0; s < 2; s++) {
            m.params[i] = keep + (s ? -1 : 1) * (float)eps;
            model_forward(&m, tok, none, B, T, logp, NULL);
            model_values(&m, B, T, val);
            L[s] = 0;
            for (int k = 0; k < B * T; k++) L[s] += (double)a[k] * val[k];
        }
        m.params[i] = keep;
        double fd = (L[0] - L[1]) / (2 * eps);
        if (fabs(fd - m.grads[i]) > 2e-3 + 2e-2 * fabs(fd)) bad++;
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "critic value head: backward vs finite differences over %zu params (%d off)",
             m.n_params, bad);
    check(bad == 0 && m.w.value_w != NULL, "%s", msg);
    model_free(&m);
}

static void checkpoint_roundtrip(void) {
    ModelConfig c = tiny(0, 1, 1, 1);
    Model m, r;
    model_init(&m, &c, BACKEND_CPU, B, T);
    randomise(&m, 11);
    char dir[] = "/tmp/denserl_ckpt_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int ok = model_save(&m, dir, 0) == 0 && model_load(&r, dir, BACKEND_CPU, B, T, NULL) == 0;
    if (ok) {
        int tok[B * T], tg[B * T];
        float l1[B * T], l2[B * T], e1[B * T], e2[B * T];
        for (int i = 0; i < B * T; i++) tok[i] = (i * 5 + 1) % c.vocab, tg[i] = (i * 3) % c.vocab;
        model_forward(&m, tok, tg, B, T, l1, e1);
        model_forward(&r, tok, tg, B, T, l2, e2);
        ok = memcmp(l1, l2, sizeof l1) == 0 && memcmp(e1, e2, sizeof e1) == 0 &&
             memcmp(m.params, r.params, sizeof(float) * m.n_params) == 0;
        model_free(&r);
    }
    check(ok, "checkpoint written (F32) and read back gives identical parameters and log-probs");
    CHECK(test_rmtree(dir) == 0);
    model_free(&m);
}

/* The ranges the bucketed gradient sum starts (model_param_ranges over layer -1 and every
 * layer) cover the flat buffer exactly once; and the backward reports the layers in order,
 * last to first, then -1. */
static int g_seen[8], g_n_seen;
static void record_ready(void *ctx, int layer) {
    (void)ctx;
    if (g_n_seen < 8) g_seen[g_n_seen] = layer;
    g_n_seen++;
}

static void ranges_partition(const char *name, ModelConfig c) {
    Model m;
    model_init(&m, &c, BACKEND_CPU, B, T);
    unsigned char *hit = calloc(m.n_params, 1);
    int ok = 1;
    for (int l = -1; l < c.n_layers; l++) {
        size_t lo[MODEL_MAX_RANGES], hi[MODEL_MAX_RANGES];
        int k = model_param_ranges(&m, l, lo, hi);
        for (int i = 0; i < k; i++) {
            ok &= lo[i] < hi[i] && hi[i] <= m.n_params;
            for (size_t j = lo[i]; j < hi[i] && j < m.n_params; j++) hit[j]++;
        }
    }
    int once = 1;
    for (size_t j = 0; j < m.n_params; j++) once &= hit[j] == 1;
    check(ok && once, "%s: the layers' parameter ranges cover all %zu parameters exactly once",
          name, m.n_params);
    model_alloc_grads(&m);
    model_zero_grads(&m);
    int tok[B * T], tg[B * T];
    float lp[B * T], dl[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = i % c.vocab, tg[i] = (i + 1) % c.vocab, dl[i] = 1;
    model_forward(&m, tok, tg, B, T, lp, NULL);
    g_n_seen = 0;
    model_set_grad_ready(&m, record_ready, NULL);
    model_backward(&m, tok, tg, B, T, dl, NULL);
    model_set_grad_ready(&m, NULL, NULL);
    int order = g_n_seen == c.n_layers + 1 && g_seen[c.n_layers] == -1;
    for (int l = 0; l < c.n_layers && order; l++) order = g_seen[l] == c.n_layers - 1 - l;
    check(order, "%s: the backward reports layers %d..0, then -1 (%d calls)", name, c.n_layers - 1,
          g_n_seen);
    free(hit);
    model_free(&m);
}

/* A forward-only model (one layer's activations, x alternating between two slots) gives the
 * full model's log-probs and entropies bit for bit, for odd and even layer counts and at a
 * smaller (B, T) than its capacity; its activations take less memory. */
static void forward_only_matches(int layers) {
    ModelConfig c = tiny(0, 1, 1, 0);
    c.n_layers = layers;
    Model full, fo;
    model_init(&full, &c, BACKEND_CPU, B, T);
    model_init_forward_only(&fo, &c, BACKEND_CPU, B, T);
    randomise(&full, 11);
    memcpy(fo.params, full.params, sizeof(float) * full.n_params);
    int tok[B * T], tg[B * T], same = 1;
    float lp1[B * T], lp2[B * T], e1[B * T], e2[B * T];
    for (int i = 0; i < B * T; i++) {
        philox4 r = philox_draw(4, 6, i);
        tok[i] = (int)(r.v[0] % c.vocab);
        tg[i] = (r.v[1] % 4 == 0) ? -1 : (int)(r.v[2] % c.vocab);
    }
    for (int pass = 0; pass < 2; pass++) { /* the whole capacity, then 1 row of T - 1 */
        int b = pass ? 1 : B, t = pass ? T - 1 : T;
        model_forward(&full, tok, tg, b, t, lp1, e1);
        model_forward(&fo, tok, tg, b, t, lp2, e2);
        same &= !memcmp(lp1, lp2, sizeof(float) * b * t) && !memcmp(e1, e2, sizeof(float) * b * t);
    }
    check(same && fo.act.kept == 1 && full.act.kept == layers,
          "forward-only model, %d layers: the same log-probs and entropies bit for bit", layers);
    model_free(&full);
    model_free(&fo);
}

/* A recomputing model (gradient checkpointing) gives the full model's log-probs and, from a
 * backward with an entropy term, its gradients bit for bit, at the capacity and below it, with
 * one layer's slot of the activations besides x, k and v; its value backward too. */
static void recompute_matches(int layers) {
    ModelConfig c = tiny(0, 1, 1, 0);
    c.n_layers = layers;
    c.value_head = 1;
    Model full, rc;
    model_init(&full, &c, BACKEND_CPU, B, T);
    CHECK(model_init_precision(&rc, &c, BACKEND_CPU, B, T, MODEL_RECOMPUTE, NULL) == DR_OK);
    randomise(&full, 13);
    memcpy(rc.params, full.params, sizeof(float) * full.n_params);
    model_alloc_grads(&full);
    model_alloc_grads(&rc);
    int tok[B * T], tg[B * T], same = 1;
    float lp1[B * T], lp2[B * T], dl[B * T], de[B * T], v1[B * T], v2[B * T];
    for (int i = 0; i < B * T; i++) {
        philox4 r = philox_draw(5, 7, i);
        tok[i] = (int)(r.v[0] % c.vocab);
        tg[i] = (r.v[1] % 4 == 0) ? -1 : (int)(r.v[2] % c.vocab);
        dl[i] = (float)(r.v[3] % 1000) / 500.0f - 1.0f;
        de[i] = 0.01f * (float)(i % 7);
    }
    for (int pass = 0; pass < 3; pass++) { /* the capacity, 1 row of T - 1, values */
        int b = pass == 1 ? 1 : B, t = pass == 1 ? T - 1 : T;
        Model *ms[2] = {&full, &rc};
        float *lp[2] = {lp1, lp2}, *v[2] = {v1, v2};
        for (int k = 0; k < 2; k++) {
            model_zero_grads(ms[k]);
            model_forward(ms[k], tok, tg, b, t, lp[k], NULL);
            if (pass < 2) {
                model_backward(ms[k], tok, tg, b, t, dl, de);
            } else {
                model_values(ms[k], b, t, v[k]);
                model_backward_values(ms[k], tok, b, t, dl);
            }
        }
        same &= !memcmp(lp1, lp2, sizeof(float) * b * t);
        same &= !memcmp(full.grads, rc.grads, sizeof(float) * full.n_params);
        if (pass == 2) same &= !memcmp(v1, v2, sizeof(float) * b * t);
    }
    check(same && rc.act.kept == 1 && rc.act.kv_kept == layers && rc.act.x_slots == layers + 1,
          "recomputing model, %d layers: the same log-probs, values and gradients bit for bit",
          layers);
    model_free(&full);
    model_free(&rc);
}

int main(void) {
    recompute_matches(1);
    recompute_matches(3);
    forward_only_matches(1);
    forward_only_matches(3);
    forward_only_matches(4);
    ranges_partition("untied, biases", tiny(0, 1, 1, 0));
    ModelConfig critic = tiny(1, 0, 0, 0);
    critic.value_head = 1;
    ranges_partition("tied, value head", critic);
    grad_check("untied, q/k/v/o biases, llama3 rope", tiny(0, 1, 1, 1));
    grad_check("tied embeddings, no biases", tiny(1, 0, 0, 0));
    value_grad_check();
    checkpoint_roundtrip();
    return test_summary();
}
