/* The whole model on the GPU against the same model on the CPU: identical random weights
 * (Philox on both), then the forward's log-probs and entropies, the backward's gradients,
 * one AdamW step, greedy and sampled generation through the KV cache, and the critic's
 * values; then the bf16 mixed-precision model against the fp32 one. Skipped (77) without
 * CUDA or a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/optimizer.h"
#include "runtime/ops_mixed.h"
#include "testutil.h"
#include "cudatest.h"

static ModelConfig small_config(void) {
    ModelConfig c = {0};
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    c.vocab = 50;
    c.d_model = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.d_ff = 96;
    c.max_pos = 64;
    c.norm_eps = 1e-6f;
    c.rope_theta = 10000;
    c.qkv_bias = 1;
    c.value_head = 1;
    c.bos_id = 1;
    c.eos_id = 2;
    c.pad_id = 0;
    return c;
}

static float *host_params(const Model *m, const float *p) {
    float *h = malloc(sizeof(float) * m->n_params);
    be_to_host(m->be, h, p, sizeof(float) * m->n_params);
    return h;
}

enum { NB = 3, NT = 37 };

/* skip: the share of positions without a target (the GPU's lm_head then takes only the
 * others, gathered: 0 gathers nothing, 1 leaves the lm_head out) */
static void forward_backward(Model *cpu, Model *gpu, double skip) {
    printf("forward and backward, %.0f%% of the positions without a target\n", 100 * skip);
    /* from the CPU's weights: the AdamW steps of earlier cases leave the two models ~1e-6
     * apart, which compounds past this case's 1e-5 bounds by the third step */
    float *w = host_params(cpu, cpu->params);
    be_to_device(gpu->be, gpu->params, w, sizeof(float) * cpu->n_params);
    model_refresh_weights(gpu);
    free(w);
    int tok[NB * NT], tg[NB * NT];
    float dl[NB * NT], de[NB * NT], dv[NB * NT];
    for (int i = 0; i < NB * NT; i++) {
        tok[i] = (int)(rng_u01() * 50);
        tg[i] = rng_u01() < skip ? -1 : (int)(rng_u01() * 50);
        dl[i] = rng_sym(1.0);
        de[i] = rng_sym(0.1);
        dv[i] = rng_sym(1.0);
    }
    float lp[2][NB * NT], ent[2][NB * NT], val[2][NB * NT];
    Model *ms[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        memset(lp[k], 0xff, sizeof lp[k]);
        memset(ent[k], 0xff, sizeof ent[k]);
        model_forward(ms[k], tok, tg, NB, NT, lp[k], ent[k]);
        model_values(ms[k], NB, NT, val[k]);
        model_zero_grads(ms[k]);
        model_backward(ms[k], tok, tg, NB, NT, dl, de);
        model_backward_values(ms[k], tok, NB, NT, dv);
    }
    double e = rel_err(lp[1], lp[0], NB * NT);
    EXPECT(e < 1e-5, "forward log-probs GPU vs CPU: rel_err %.2e", e);
    e = rel_err(ent[1], ent[0], NB * NT);
    EXPECT(e < 1e-5, "forward entropies GPU vs CPU: rel_err %.2e", e);
    e = rel_err(val[1], val[0], NB * NT);
    EXPECT(e < 1e-5, "critic values GPU vs CPU: rel_err %.2e", e);
    float *gc = host_params(cpu, cpu->grads), *gg = host_params(gpu, gpu->grads);
    /* sums over tokens in another order (cuBLAS, the attention backward): 1e-4 */
    e = rel_err(gg, gc, (long)cpu->n_params);
    EXPECT(e < 1e-4, "gradients of log-probs, entropy and values GPU vs CPU: rel_err %.2e", e);
    AdamW oc, og;
    adamw_init(&oc, BACKEND_CPU, cpu->n_params);
    adamw_init(&og, BACKEND_CUDA, gpu->n_params);
    AdamWParams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    double nc = adamw_step(&oc, cpu->params, cpu->grads, hp, 1.0);
    double ng = adamw_step(&og, gpu->params, gpu->grads, hp, 1.0);
    EXPECT(fabs(nc - ng) <= 1e-4 * nc, "gradient norm GPU %.7g vs CPU %.7g", ng, nc);
    float *pc = host_params(cpu, cpu->params), *pg = host_params(gpu, gpu->params);
    /* the gradients differ by ~1e-5 relative (above); one step moves each weight by ~lr */
    e = rel_err(pg, pc, (long)cpu->n_params);
    EXPECT(e < 1e-5, "parameters after one AdamW step GPU vs CPU: rel_err %.2e", e);
    adamw_free(&oc);
    adamw_free(&og);
    free(gc);
    free(gg);
    free(pc);
    free(pg);
}

static void generation(Model *cpu, Model *gpu, float temperature, float top_p) {
    enum { R = 5, TC = 48 };
    int prompts[R * TC] = {0}, plen[R] = {1, 3, 7, 12, 2};
    unsigned long long ids[R];
    for (int r = 0; r < R; r++) {
        ids[r] = 100 + (unsigned long long)r;
        prompts[r * TC] = 1;
        for (int t = 1; t < plen[r]; t++) prompts[r * TC + t] = 3 + (int)(rng_u01() * 47);
    }
    SampleParams sp = sample_params_default();
    sp.temperature = temperature;
    sp.top_p = top_p;
    sp.max_new_tokens = 30;
    /* CPU; GPU as it runs (steps padded to 16 rows, capped at the 4 of B_cap, replayed from
     * CUDA graphs); GPU with the same steps run directly; GPU steps unpadded, from graphs */
    enum { RUNS = 4 };
    int out[RUNS][R * TC], rl[RUNS][R], eos[RUNS][R];
    float lp[RUNS][R * TC];
    long long replayed[RUNS];
    for (int k = 0; k < RUNS; k++) {
        Generator g;
        generator_init(&g, k ? gpu : cpu, 4, TC); /* 5 rows in two waves */
        if (k == 2) g.use_graphs = 0;
        if (k == 3) g.bucket = 1;
        generate(&g, prompts, plen, R, &sp, (const int[]){2}, 1, 0, 42, ids, out[k], rl[k], eos[k],
                 lp[k]);
        replayed[k] = g.graph_steps;
        generator_free(&g);
    }
    for (int k = 1; k < RUNS; k++) {
        EXPECT(memcmp(out[0], out[k], sizeof out[0]) == 0 &&
                   memcmp(rl[0], rl[k], sizeof rl[0]) == 0,
               "generation T=%.1f top-p %.2f, GPU run %d: tokens identical to the CPU's",
               temperature, top_p, k);
        /* logits of a 0.3-std random model reach tens: the fp32 sums of the decode path (KV
         * cache, cuBLAS lm_head) against the CPU's leave ~3e-5 relative on the log-probs
         * (H100) */
        double e = rel_err(lp[k], lp[0], R * TC);
        EXPECT(e < 1e-4, "generation T=%.1f, GPU run %d: sampled tokens' log-probs rel_err %.2e",
               temperature, k, e);
    }
    const char *env = getenv("DENSERL_CUDA_GRAPHS");
    if (env && !strcmp(env, "0"))
        printf("note: DENSERL_CUDA_GRAPHS=0: generation's graph replays not checked\n");
    else
        EXPECT(replayed[1] > 0 && replayed[3] > 0 && replayed[2] == 0,
               "generation T=%.1f: decode steps replayed from CUDA graphs: %lld, %lld, none "
               "without",
               temperature, replayed[1], replayed[3]);
    EXPECT(memcmp(out[1], out[2], sizeof out[1]) == 0 && memcmp(lp[1], lp[2], sizeof lp[1]) == 0,
           "generation T=%.1f: the same steps from CUDA graphs and run directly, bit for bit",
           temperature);
}

/* A call below the models' capacity with another (B, T), as the RL step's length-grouped calls
 * make them: bf16 GPU against fp32 CPU again (log-probs and gradients), and a forward-only
 * bf16 copy of the GPU model (one layer's activations, as the frozen reference has) giving the
 * same log-probs as the full one. */
static void below_capacity(Model *cpu, Model *gpu, const ModelConfig *c, const char *attention,
                           const int *tok, const int *tg, const float *dl) {
    enum { PB = 2, PT = 29 };
    float lp[3][PB * PT];
    Model *ms[2] = {cpu, gpu};
    for (int k = 0; k < 2; k++) {
        model_forward(ms[k], tok, tg, PB, PT, lp[k], NULL);
        model_zero_grads(ms[k]);
        model_backward(ms[k], tok, tg, PB, PT, dl, NULL);
    }
    double e = rel_err(lp[1], lp[0], PB * PT);
    EXPECT(e < 1e-2, "bf16 (%s) at B=%d T=%d: log-probs vs fp32 CPU rel_err %.2e", attention, PB,
           PT, e);
    float *gc = host_params(cpu, cpu->grads), *gg = host_params(gpu, gpu->grads);
    e = rel_err(gg, gc, (long)cpu->n_params);
    EXPECT(e < 3e-2, "bf16 (%s) at B=%d T=%d: gradients vs fp32 CPU rel_err %.2e", attention, PB,
           PT, e);
    free(gc);
    free(gg);
    Model fo;
    model_init_forward_only(&fo, c, BACKEND_CUDA, NB, NT);
    be_copy(BACKEND_CUDA, fo.params, gpu->params, sizeof(float) * gpu->n_params);
    REQUIRE(model_use_bf16(&fo, attention) == 0, "bf16 on a forward-only GPU model");
    model_forward(&fo, tok, tg, PB, PT, lp[2], NULL);
    e = rel_err(lp[2], lp[1], PB * PT);
    EXPECT(e < 1e-6, "bf16 (%s) forward-only model: the full model's log-probs, rel_err %.2e",
           attention, e);
    model_free(&fo);
}

/* Generation by the bf16 model, over its bf16 KV cache: each greedy token's log-prob against
 * the fp32 CPU model's over the same rows (within 1e-2, as the forward's). */
static void generation_bf16(Model *cpu, Model *gpu) {
    enum { R = NB, TC = NT };
    const int vocab = cpu->cfg.vocab;
    int prompts[R * TC] = {0}, plen[R] = {1, 4, 9};
    unsigned long long ids[R] = {7, 8, 9};
    for (int r = 0; r < R; r++) {
        prompts[r * TC] = 1;
        for (int t = 1; t < plen[r]; t++) prompts[r * TC + t] = 3 + (int)(rng_u01() * (vocab - 3));
    }
    SampleParams sp = sample_params_default();
    sp.temperature = 0.0f;
    sp.max_new_tokens = 24;
    Generator g;
    generator_init(&g, gpu, R, TC);
    EXPECT(g.kv_bytes == 2, "a bf16 model's generator keeps its KV cache in bf16");
    /* twice from one generator, the value weights negated on both models in between: the
     * second call must pack the new q, k, v weights for its product */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            const size_t nv = (size_t)cpu->cfg.n_layers * cpu->cfg.n_kv_heads * cpu->cfg.head_dim *
                              cpu->cfg.d_model;
            float *wv = malloc(sizeof(float) * nv);
            be_to_host(BACKEND_CUDA, wv, gpu->w.wv, sizeof(float) * nv);
            for (size_t i = 0; i < nv; i++) wv[i] = -wv[i], cpu->w.wv[i] = -cpu->w.wv[i];
            be_to_device(BACKEND_CUDA, gpu->w.wv, wv, sizeof(float) * nv);
            free(wv);
            model_params_changed(gpu);
            model_params_changed(cpu);
        }
        int out[R * TC], rl[R], eos[R];
        float lp[R * TC];
        generate(&g, prompts, plen, R, &sp, NULL, 0, 0, 5, ids, out, rl, eos, lp);
        /* the CPU's log-probs of the generated tokens: inputs out[t], targets out[t + 1] */
        int tok[R * (TC - 1)], tg[R * (TC - 1)];
        float lc[R * (TC - 1)], want[R * TC], got[R * TC];
        int n = 0;
        for (int r = 0; r < R; r++)
            for (int t = 0; t < TC - 1; t++) {
                const int gen = t + 1 >= plen[r] && t + 1 < plen[r] + rl[r];
                tok[r * (TC - 1) + t] = out[r * TC + t];
                tg[r * (TC - 1) + t] = gen ? out[r * TC + t + 1] : -1;
            }
        model_forward(cpu, tok, tg, R, TC - 1, lc, NULL);
        for (int r = 0; r < R; r++)
            for (int t = 0; t < TC - 1; t++)
                if (tg[r * (TC - 1) + t] >= 0) {
                    want[n] = lc[r * (TC - 1) + t];
                    got[n++] = lp[r * TC + t + 1];
                }
        EXPECT(n == 3 * 24, "bf16 generation: %d tokens generated", n);
        double e = rel_err(got, want, n);
        EXPECT(e < 1e-2,
               "bf16 generation over a bf16 KV cache, call %d: log-probs vs fp32 CPU rel_err %.2e",
               round + 1, e);
    }
    generator_free(&g);
}

/* q, k, v kept in bf16 after rotary (the default) against the earlier path that keeps them
 * in fp32 and casts them per attention call (DENSERL_QKV_BF16=0): the same roundings, so the
 * same bits in log-probs, entropies, every gradient and generated tokens and log-probs. */
static void qkv_bf16_paths(const char *attention) {
    ModelConfig c = small_config();
    c.d_model = 256;
    c.head_dim = 64;
    c.d_ff = 384;
    c.vocab = 304;
    Model ms[2];
    for (int k = 0; k < 2; k++) {
        if (k == 1) setenv("DENSERL_QKV_BF16", "0", 1);
        model_init(&ms[k], &c, BACKEND_CUDA, NB, NT);
        model_init_random(&ms[k], 13, 0.05f);
        REQUIRE(model_use_bf16(&ms[k], attention) == 0, "bf16 on the GPU model");
        unsetenv("DENSERL_QKV_BF16");
        model_alloc_grads(&ms[k]);
    }
    EXPECT(ms[0].mx.qkv_bf16 == 1 && ms[1].mx.qkv_bf16 == 0,
           "bf16 q, k, v by default (%s attention), fp32 under DENSERL_QKV_BF16=0", attention);
    int tok[NB * NT], tg[NB * NT];
    float dl[NB * NT], lp[2][NB * NT], ent[2][NB * NT];
    for (int i = 0; i < NB * NT; i++) {
        tok[i] = (int)(rng_u01() * c.vocab);
        tg[i] = rng_u01() < 0.2 ? -1 : (int)(rng_u01() * c.vocab);
        dl[i] = rng_sym(1.0);
    }
    float *gr[2];
    for (int k = 0; k < 2; k++) {
        model_forward(&ms[k], tok, tg, NB, NT, lp[k], ent[k]);
        model_zero_grads(&ms[k]);
        model_backward(&ms[k], tok, tg, NB, NT, dl, ent[k]);
        gr[k] = host_params(&ms[k], ms[k].grads);
    }
    EXPECT(!memcmp(lp[0], lp[1], sizeof lp[0]) && !memcmp(ent[0], ent[1], sizeof ent[0]),
           "bf16 q, k, v (%s): log-probs and entropies bit for bit as the fp32 path's", attention);
    long diff = 0;
    for (size_t i = 0; i < ms[0].n_params; i++) diff += memcmp(&gr[0][i], &gr[1][i], 4) != 0;
    EXPECT(diff == 0, "bf16 q, k, v (%s): gradients bit for bit (%ld of %zu differ)", attention,
           diff, ms[0].n_params);
    /* generation: the prefill's keys and values go into the cache from the bf16 buffers */
    enum { R = NB };
    int prompts[R * NT] = {0}, plen[R] = {5, 11, 2}, out[2][R * NT], rl[2][R], eos[2][R];
    float glp[2][R * NT];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < plen[r]; t++)
            prompts[r * NT + t] = 3 + (int)(rng_u01() * (c.vocab - 3));
    SampleParams sp = sample_params_default();
    sp.max_new_tokens = 16;
    for (int k = 0; k < 2; k++) {
        unsigned long long ids[R] = {4, 5, 6};
        Generator g;
        generator_init(&g, &ms[k], R, NT);
        generate(&g, prompts, plen, R, &sp, NULL, 0, 0, 21, ids, out[k], rl[k], eos[k], glp[k]);
        generator_free(&g);
    }
    EXPECT(!memcmp(out[0], out[1], sizeof out[0]) && !memcmp(rl[0], rl[1], sizeof rl[0]) &&
               !memcmp(glp[0], glp[1], sizeof glp[0]),
           "bf16 q, k, v (%s): generated tokens and log-probs bit for bit", attention);
    for (int k = 0; k < 2; k++) {
        free(gr[k]);
        model_free(&ms[k]);
    }
}

/* A bf16 model with head dim 128 against the fp32 CPU model (log-probs within 1e-2,
 * gradients 3e-2): through the bf16 flash attention where its kernels fit the GPU's shared
 * memory per block, and through the fp32 attention where they do not (in emulation,
 * DENSERL_EMU_SMEM_KB=99 plays such a GPU). */
static void bf16_head128(void) {
    ModelConfig c = small_config();
    c.d_model = 256;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 128;
    c.d_ff = 384;
    Model cpu, gpu;
    model_init(&cpu, &c, BACKEND_CPU, NB, NT);
    model_init(&gpu, &c, BACKEND_CUDA, NB, NT);
    model_init_random(&cpu, 17, 0.05f);
    model_init_random(&gpu, 17, 0.05f);
    REQUIRE(model_use_bf16(&gpu, "flash") == 0, "bf16 on a head-dim-128 GPU model");
    model_alloc_grads(&cpu);
    model_alloc_grads(&gpu);
    int tok[NB * NT], tg[NB * NT];
    float dl[NB * NT], lp[2][NB * NT];
    for (int i = 0; i < NB * NT; i++) {
        tok[i] = (int)(rng_u01() * c.vocab);
        tg[i] = (int)(rng_u01() * c.vocab);
        dl[i] = rng_sym(1.0);
    }
    Model *ms[2] = {&cpu, &gpu};
    for (int k = 0; k < 2; k++) {
        model_forward(ms[k], tok, tg, NB, NT, lp[k], NULL);
        model_zero_grads(ms[k]);
        model_backward(ms[k], tok, tg, NB, NT, dl, NULL);
    }
    const char *path = gpu.mx.attn_bf16 ? "bf16 flash" : "fp32";
    double e = rel_err(lp[1], lp[0], NB * NT);
    EXPECT(e < 1e-2, "bf16 model, head dim 128, %s attention: log-probs vs fp32 CPU rel_err %.2e",
           path, e);
    float *gc = host_params(&cpu, cpu.grads), *gg = host_params(&gpu, gpu.grads);
    e = rel_err(gg, gc, (long)cpu.n_params);
    EXPECT(e < 3e-2, "bf16 model, head dim 128, %s attention: gradients vs fp32 CPU rel_err %.2e",
           path, e);
    free(gc);
    free(gg);
    model_free(&cpu);
    model_free(&gpu);
}

/* Mixed precision (bf16 copies into products, attention, lm_head) against the fp32 CPU model:
 * log-probs within 1e-2 relative (bf16 keeps 8 bits of mantissa: ~4e-3 per rounding),
 * gradients within 3e-2; then a few AdamW steps on both must track each other. Head dim 64
 * so that the bf16 flash attention is used. The lm_head's logits are fp16 unless
 * DENSERL_LOGITS=f32. */
static void mixed_precision(const char *attention, int vocab, int tied) {
    const char *lg = getenv("DENSERL_LOGITS");
    printf("bf16 model: %s attention, vocab %d%s, %s logits\n", attention, vocab,
           tied ? " (tied embeddings)" : "", lg && *lg ? lg : "f16");
    ModelConfig c = small_config();
    c.vocab = vocab;
    c.tied = tied;
    c.d_model = 256;
    c.head_dim = 64;
    c.d_ff = 384;
    Model cpu, gpu;
    model_init(&cpu, &c, BACKEND_CPU, NB, NT);
    model_init(&gpu, &c, BACKEND_CUDA, NB, NT);
    model_init_random(&cpu, 9, 0.05f);
    model_init_random(&gpu, 9, 0.05f);
    REQUIRE(model_use_bf16(&gpu, attention) == 0, "bf16 on the GPU model, %s attention", attention);
    model_alloc_grads(&cpu);
    model_alloc_grads(&gpu);
    int tok[NB * NT], tg[NB * NT];
    float dl[NB * NT];
    for (int i = 0; i < NB * NT; i++) {
        tok[i] = (int)(rng_u01() * c.vocab);
        tg[i] = rng_u01() < 0.2 ? -1 : (int)(rng_u01() * c.vocab);
        dl[i] = rng_sym(1.0);
    }
    float lp[2][NB * NT], ent[2][NB * NT];
    Model *ms[2] = {&cpu, &gpu};
    AdamW opt[2];
    adamw_init(&opt[0], BACKEND_CPU, cpu.n_params);
    adamw_init(&opt[1], BACKEND_CUDA, gpu.n_params);
    AdamWParams hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
    for (int step = 0; step < 3; step++) {
        for (int k = 0; k < 2; k++) {
            model_forward(ms[k], tok, tg, NB, NT, lp[k], ent[k]);
            model_zero_grads(ms[k]);
            model_backward(ms[k], tok, tg, NB, NT, dl, NULL);
        }
        double e = rel_err(lp[1], lp[0], NB * NT);
        EXPECT(e < 1e-2, "bf16 (%s) step %d: log-probs vs fp32 CPU rel_err %.2e", attention, step,
               e);
        e = rel_err(ent[1], ent[0], NB * NT);
        EXPECT(e < 1e-2, "bf16 (%s) step %d: entropies vs fp32 CPU rel_err %.2e", attention, step,
               e);
        if (step == 0) {
            float *gc = host_params(&cpu, cpu.grads), *gg = host_params(&gpu, gpu.grads);
            e = rel_err(gg, gc, (long)cpu.n_params);
            EXPECT(e < 3e-2, "bf16 (%s) gradients vs fp32 CPU rel_err %.2e", attention, e);
            free(gc);
            free(gg);
        }
        for (int k = 0; k < 2; k++) {
            adamw_step(&opt[k], ms[k]->params, ms[k]->grads, hp, 1.0);
            model_params_changed(ms[k]);
        }
    }
    generation_bf16(&cpu, &gpu);
    below_capacity(&cpu, &gpu, &c, attention, tok, tg, dl);
    adamw_free(&opt[0]);
    adamw_free(&opt[1]);
    model_free(&cpu);
    model_free(&gpu);
}

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(11);
    ModelConfig c = small_config();
    Model cpu, gpu;
    model_init(&cpu, &c, BACKEND_CPU, NB, NT);
    model_init(&gpu, &c, BACKEND_CUDA, NB, NT);
    model_init_random(&cpu, 5, 0.3f);
    model_init_random(&gpu, 5, 0.3f);
    float *a = host_params(&cpu, cpu.params), *b = host_params(&gpu, gpu.params);
    EXPECT(memcmp(a, b, sizeof(float) * cpu.n_params) == 0, "same weights on both backends");
    free(a);
    free(b);
    model_alloc_grads(&cpu);
    model_alloc_grads(&gpu);
    forward_backward(&cpu, &gpu, 0.2);
    generation(&cpu, &gpu, 0.0f, 1.0f);
    generation(&cpu, &gpu, 1.0f, 1.0f);
    generation(&cpu, &gpu, 0.8f, 0.9f);
    /* after generation, whose token-for-token check wants weights one AdamW step apart only */
    forward_backward(&cpu, &gpu, 0.0);
    forward_backward(&cpu, &gpu, 1.0);
    model_free(&cpu);
    model_free(&gpu);
    /* fp16 logits (the default) read one at a time (vocab 300) and 8 at a time (304), then
     * fp32 logits */
    mixed_precision("flash", 300, 0);
    mixed_precision("flash", 304, 1); /* the fp16 lm_head copy made from the embedding */
    setenv("DENSERL_LOGITS", "f32", 1);
    mixed_precision("flash", 300, 0);
    unsetenv("DENSERL_LOGITS");
    qkv_bf16_paths("flash");
    bf16_head128();
    if (op_mixed_attention_cudnn_available()) {
        mixed_precision("cudnn", 300, 0);
        qkv_bf16_paths("cudnn");
    } else {
        printf("SKIP the bf16 model with cuDNN attention: cuDNN's fused attention is not "
               "available (line above)\n");
    }
    return test_summary();
}
