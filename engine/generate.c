/* Batched generation with a KV cache. The prefill runs the prompts (all but their last
 * token) through model_forward and copies each layer's rotated keys and values into the
 * caches; each decode step then runs the live rows' newest tokens through the same layers
 * one position at a time, with the per-row positions driving rotary, the cache write and
 * the causal extent of attention. Finished rows are swapped out for the last live row, so
 * the live rows stay packed at the front of the caches and each step's kernels see a dense
 * batch that shrinks as rows finish, and grows again as waiting rows take the freed slots. */
#include "generate.h"

#include <stdlib.h>
#include <string.h>
#include "../kernels/philox.h"
#include "../runtime/check.h"
#include "../runtime/ops.h"
#include "../runtime/ops_mixed.h"

/* Per-layer slice of a stacked tensor, NULL for an absent bias. */
#define LW(p, l, n) ((p) ? (p) + (size_t)(l) * (n) : NULL)

SampleParams sample_params_default(void) {
    return (SampleParams){1.0f, 0, 1.0f, 64};
}

static float *gen_falloc(Backend be, size_t n) {
    return be_alloc(be, sizeof(float) * (n ? n : 1));
}

void generator_init(Generator *g, Model *m, int B_cap, int T_cap) {
    const ModelConfig *c = &m->cfg;
    memset(g, 0, sizeof *g);
    CHECK(B_cap >= 1 && T_cap >= 1 && T_cap <= c->max_pos);
    /* the longest prefill is T_cap - 1 tokens of one row */
    CHECK((size_t)T_cap - 1 <= (size_t)m->act.B * m->act.T);
    CHECK(m->act.kv_kept == c->n_layers); /* the prefill's keys and values come from every layer */
    g->m = m;
    g->B_cap = B_cap;
    g->T_cap = T_cap;
    Backend be = m->be;
    size_t B = B_cap, d = c->d_model, F = c->d_ff, V = c->vocab, L = c->n_layers;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    g->kv_bytes = m->mx.on ? 2 : 4;
    const size_t ncache = L * B * T_cap * kd;
    g->kcache = be_alloc(be, g->kv_bytes * (ncache ? ncache : 1));
    g->vcache = be_alloc(be, g->kv_bytes * (ncache ? ncache : 1));
    /* a prefill chunk's keys or values of one layer in bf16, on their way into the cache
     * (a model that keeps them in bf16 needs none) */
    if (g->kv_bytes == 2 && !m->mx.qkv_bf16)
        g->stage = be_alloc(be, sizeof(uint16_t) * (size_t)m->act.B * m->act.T * kd);
    g->x = gen_falloc(be, B * d);
    g->xn = gen_falloc(be, B * d);
    g->tmp = gen_falloc(be, B * d);
    g->rstd = gen_falloc(be, B);
    if (m->mx.on) {
        const size_t S = qd + 2 * kd;
        g->wqkv = be_alloc(be, sizeof(uint16_t) * L * S * d);
        if (c->qkv_bias) g->bqkv = gen_falloc(be, L * S);
        g->qkv = gen_falloc(be, B * S);
    }
    g->q = gen_falloc(be, B * qd);
    g->att = gen_falloc(be, B * qd);
    g->k = gen_falloc(be, B * kd);
    g->v = gen_falloc(be, B * kd);
    g->gate = gen_falloc(be, B * F);
    g->up = gen_falloc(be, B * F);
    g->h = gen_falloc(be, B * F);
    g->logits = gen_falloc(be, B * V);
    /* a step's inputs (key, tok, pos, u) and outputs (next, logp) side by side, so that each
     * way is one copy: B ints or floats each, 2 B for the 64-bit keys (first, so aligned) */
    g->io = be_alloc(be, sizeof(int) * 7 * B);
    g->h_io = xcalloc(7 * B, sizeof(int));
    g->key = (uint64_t *)g->io, g->h_key = (uint64_t *)g->h_io;
    int *io = g->io + 2 * B, *h_io = g->h_io + 2 * B;
    g->tok = io, g->pos = io + B, g->u = (float *)(io + 2 * B);
    g->next = io + 3 * B, g->logp = (float *)(io + 4 * B);
    g->h_tok = h_io, g->h_pos = h_io + B, g->h_u = (float *)(h_io + 2 * B);
    g->h_next = h_io + 3 * B, g->h_logp = (float *)(h_io + 4 * B);
    g->moves = be_alloc(be, sizeof(int) * 3 * B);
    g->h_moves = xcalloc(3 * B, sizeof(int));
    g->slot_row = xcalloc(B, sizeof(int));
    g->done = xcalloc(B, sizeof(int));
    size_t Ncap = (size_t)m->act.B * m->act.T;
    g->pf_tokens = xcalloc(Ncap, sizeof(int));
    g->pf_targets = xcalloc(Ncap, sizeof(int));
    g->pf_logp = xcalloc(Ncap, sizeof(float));
    g->bucket = be == BACKEND_CUDA ? 16 : 1;
    g->use_graphs = be == BACKEND_CUDA; /* be_graph_begin says no where they are off */
    g->graph = xcalloc(B + 1, sizeof(void *));
    g->ran = xcalloc(B + 1, 1);
}

/* Drops the step recordings at the end of a wave: the next wave's prefill, and the calls
 * between generate()s, may grow the scratch buffers a recording points into. Within a wave
 * the step sizes only shrink, so a recording is never replayed after a smaller size's first
 * step has grown them. */
static void gen_drop_graphs(Generator *g) {
    for (int i = 0; i <= g->B_cap; i++) {
        be_graph_free(g->m->be, g->graph[i]);
        g->graph[i] = NULL;
        g->ran[i] = 0;
    }
}

void generator_free(Generator *g) {
    if (!g->m) return;
    gen_drop_graphs(g);
    Backend be = g->m->be;
    void *dev[] = {g->kcache, g->vcache, g->x,    g->xn, g->tmp, g->rstd, g->q,     g->att,
                   g->k,      g->v,      g->gate, g->up, g->h,   g->io,   g->moves, g->logits};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) be_free(be, dev[i]);
    void *opt[] = {g->stage, g->wqkv, g->bqkv, g->qkv};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
        if (opt[i]) be_free(be, opt[i]);
    void *host[] = {g->h_io,    g->slot_row, g->done, g->pf_tokens, g->pf_targets,
                    g->pf_logp, g->graph,    g->ran,  g->h_moves};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    memset(g, 0, sizeof *g);
}

/* Element i of a cache. */
static void *gen_at(const Generator *g, void *cache, size_t i) {
    return (char *)cache + i * (size_t)g->kv_bytes;
}

/* A prefill chunk's keys or values (act: every layer's rows x Tp positions, fp32, or bf16
 * where the model keeps them so, mx.qkv_bf16; layers act.ld_kv floats apart) into
 * the cache slots s0 .. s0 + rows - 1: per layer one strided copy of Tp positions per row
 * (through a bf16 copy of fp32 keys for a bf16 cache). Positions past a row's prompt get the
 * padding's values, which the row's decode steps overwrite before its attention reads them. */
static void gen_fill(Generator *g, void *cache, const float *act, int s0, int rows, int Tp) {
    const ModelConfig *c = &g->m->cfg;
    const Backend be = g->m->be;
    const size_t kd = (size_t)c->n_kv_heads * c->head_dim, es = (size_t)g->kv_bytes;
    const int act_bf16 = g->m->mx.qkv_bf16; /* only with mx.on, hence a bf16 cache */
    for (int l = 0; l < c->n_layers; l++) {
        const float *src = act + (size_t)l * g->m->act.ld_kv;
        const void *from = src;
        if (g->kv_bytes == 2 && !act_bf16) {
            op_cast_bf16(be, g->stage, src, (long)((size_t)rows * Tp * kd));
            from = g->stage;
        }
        void *to = gen_at(g, cache, ((size_t)l * g->B_cap + s0) * g->T_cap * kd);
        be_copy_2d(be, to, es * g->T_cap * kd, from, es * Tp * kd, es * Tp * kd, (size_t)rows);
    }
}

/* Fills the caches of slots first .. first+n-1 with positions 0 .. prompt_len - 2 of their
 * rows, in chunks of rows that fit the model's activation capacity. */
static void gen_prefill(Generator *g, const int *prompts, const int *prompt_len, int first, int n) {
    Model *m = g->m;
    const int *slot_row = g->slot_row + first;
    int Tp = 0;
    for (int i = 0; i < n; i++) {
        int len = prompt_len[slot_row[i]] - 1;
        if (len > Tp) Tp = len;
    }
    if (Tp == 0) return; /* one-token prompts: the first decode step is the whole prompt */
    size_t Ncap = (size_t)m->act.B * m->act.T;
    int per = (int)(Ncap / (size_t)Tp);
    for (int s0 = 0; s0 < n; s0 += per) {
        int rows = n - s0 < per ? n - s0 : per;
        for (int i = 0; i < rows; i++) {
            int row = slot_row[s0 + i], len = prompt_len[row] - 1;
            const int *p = prompts + (size_t)row * g->T_cap;
            /* padding past a short prompt is never attended to by its valid positions */
            for (int t = 0; t < Tp; t++) g->pf_tokens[i * Tp + t] = t < len ? p[t] : p[0];
            for (int t = 0; t < Tp; t++) g->pf_targets[i * Tp + t] = -1; /* no lm_head */
        }
        model_forward(m, g->pf_tokens, g->pf_targets, rows, Tp, g->pf_logp, NULL);
        gen_fill(g, g->kcache, m->act.k, first + s0, rows, Tp);
        gen_fill(g, g->vcache, m->act.v, first + s0, rows, Tp);
    }
}

/* Rotary on q and k at each row's position, k and v into layer l's caches, and attention
 * over each row's cached positions into att (one kernel on a GPU; over a bf16 cache, a bf16
 * model's, att holds it in bf16 for the o projection). Rows of q start ldq apart, of k and
 * v ldkv apart (the packed product's rows, or g->q, g->k, g->v); g->q takes the rotated q
 * where the backend keeps it (the CPU, and the GPU's block-tile decode). */
static void gen_attend(Generator *g, int l, int n, const float *q, const float *k, const float *v,
                       int ldq, int ldkv) {
    Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const Backend be = m->be;
    const int Dh = c->head_dim, H = c->n_heads, Hkv = c->n_kv_heads, kd = Hkv * Dh;
    const size_t lstride = (size_t)g->B_cap * g->T_cap * kd;
    void *kc = gen_at(g, g->kcache, l * lstride), *vc = gen_at(g, g->vcache, l * lstride);
    const float *cs = m->rope_cos, *sn = m->rope_sin;
    if (g->kv_bytes == 2) {
        op_attention_decode_prep_bf16(be, (uint16_t *)g->att, g->q, q, k, v, ldq, ldkv, kc, vc,
                                      g->pos, cs, sn, n, g->T_cap, H, Hkv, Dh);
    } else {
        op_attention_decode_prep(be, g->att, g->q, q, k, v, ldq, ldkv, kc, vc, g->pos, cs, sn, n,
                                 g->T_cap, H, Hkv, Dh);
    }
}

/* Layer l in the model's fp32 ops (model_linear). */
static void gen_layer_f32(Generator *g, int l, int n) {
    Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const ParamViews *w = &m->w;
    const Backend be = m->be;
    const int d = c->d_model, F = c->d_ff, qd = c->n_heads * c->head_dim;
    const int kd = c->n_kv_heads * c->head_dim;
    op_rmsnorm_forward(be, g->xn, g->rstd, g->x, LW(w->attn_norm, l, d), n, d, c->norm_eps);
    model_linear(m, g->q, g->xn, MODEL_W(m, wq, l, (size_t)qd * d), LW(w->bq, l, qd), n, d, qd);
    model_linear_again(m, g->k, g->xn, MODEL_W(m, wk, l, (size_t)kd * d), LW(w->bk, l, kd), n, d,
                       kd);
    model_linear_again(m, g->v, g->xn, MODEL_W(m, wv, l, (size_t)kd * d), LW(w->bv, l, kd), n, d,
                       kd);
    gen_attend(g, l, n, g->q, g->k, g->v, qd, kd);
    model_linear(m, g->tmp, g->att, MODEL_W(m, wo, l, (size_t)d * qd), LW(w->bo, l, d), n, qd, d);
    op_add(be, g->x, g->tmp, (long)n * d);
    op_rmsnorm_forward(be, g->xn, g->rstd, g->x, LW(w->mlp_norm, l, d), n, d, c->norm_eps);
    model_linear(m, g->gate, g->xn, MODEL_W(m, w_gate, l, (size_t)F * d), NULL, n, d, F);
    model_linear_again(m, g->up, g->xn, MODEL_W(m, w_up, l, (size_t)F * d), NULL, n, d, F);
    op_swiglu_forward(be, g->h, g->gate, g->up, (long)n * F);
    model_linear(m, g->tmp, g->h, MODEL_W(m, w_down, l, (size_t)d * F), NULL, n, F, d);
    op_add(be, g->x, g->tmp, (long)n * d);
}

/* Layer l of a bf16 model, as its forward runs it (model.c): the norms write bf16 (the
 * first half of xn), the gate and up products bf16 for SwiGLU, whose bf16 output feeds the
 * down product, and the o and down products add the residual stream *x in their epilogue
 * into *y, after which the two trade places. att holds the attention's output in bf16. */
static void gen_layer_bf16(Generator *g, int l, int n, float **x, float **y) {
    Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const ParamViews *w = &m->w;
    const Backend be = m->be;
    const int d = c->d_model, F = c->d_ff, qd = c->n_heads * c->head_dim;
    const int kd = c->n_kv_heads * c->head_dim;
    uint16_t *xb = (uint16_t *)g->xn, *gb = (uint16_t *)g->gate, *ub = (uint16_t *)g->up;
    uint16_t *hb = (uint16_t *)g->h;
    float *t;
    op_rmsnorm_forward_bf16(be, xb, g->rstd, *x, LW(w->attn_norm, l, d), n, d, c->norm_eps);
    const int S = qd + 2 * kd; /* q, k and v in one product over the packed weights */
    op_linear_forward_mixed(be, g->qkv, NULL, g->wqkv + (size_t)l * S * d,
                            g->bqkv ? g->bqkv + (size_t)l * S : NULL, n, d, S, xb);
    gen_attend(g, l, n, g->qkv, g->qkv + qd, g->qkv + qd + kd, S, S);
    op_linear_forward_res_mixed(be, *y, NULL, MODEL_W(m, wo, l, (size_t)d * qd).h, LW(w->bo, l, d),
                                *x, n, qd, d, (uint16_t *)g->att);
    t = *x, *x = *y, *y = t;
    op_rmsnorm_forward_bf16(be, xb, g->rstd, *x, LW(w->mlp_norm, l, d), n, d, c->norm_eps);
    op_linear_forward_bf16_mixed(be, gb, xb, MODEL_W(m, w_gate, l, (size_t)F * d).h, n, d, F);
    op_linear_forward_bf16_mixed(be, ub, xb, MODEL_W(m, w_up, l, (size_t)F * d).h, n, d, F);
    op_swiglu_forward_bf16in(be, hb, gb, ub, (long)n * F);
    op_linear_forward_res_mixed(be, *y, NULL, MODEL_W(m, w_down, l, (size_t)d * F).h, NULL, *x, n,
                                F, d, hb);
    t = *x, *x = *y, *y = t;
}

/* The layers for slots 0..n-1: tok at pos in, logits (n, V) out; device work only, with
 * the same pointers and sizes every time for one n (a CUDA graph records it). */
static void gen_layers(Generator *g, int n) {
    Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const ParamViews *w = &m->w;
    const Backend be = m->be;
    const int d = c->d_model;
    model_embed(m, g->x, g->tok, n);
    if (!m->mx.on) {
        for (int l = 0; l < c->n_layers; l++) gen_layer_f32(g, l, n);
        op_rmsnorm_forward(be, g->xn, g->rstd, g->x, w->final_norm, n, d, c->norm_eps);
        model_linear(m, g->logits, g->xn, MODEL_W(m, lm_head, 0, 0), NULL, n, d, c->vocab);
        return;
    }
    float *x = g->x, *y = g->tmp;
    for (int l = 0; l < c->n_layers; l++) gen_layer_bf16(g, l, n, &x, &y);
    op_rmsnorm_forward_bf16(be, (uint16_t *)g->xn, g->rstd, x, w->final_norm, n, d, c->norm_eps);
    op_linear_forward_mixed(be, g->logits, NULL, MODEL_W(m, lm_head, 0, 0).h, NULL, n, d, c->vocab,
                            (uint16_t *)g->xn);
}

/* One position for slots 0..n-1: h_tok at h_pos in, logits (n, V) out. The step runs
 * np >= n rows (the bucket's multiple); slots n..np-1 are finished or never used, and feed
 * token 0 at position 0 of their own cache rows, which no live slot reads. */
static void gen_step(Generator *g, int n) {
    Backend be = g->m->be;
    int np = (n + g->bucket - 1) / g->bucket * g->bucket;
    if (np > g->B_cap) np = g->B_cap;
    for (int i = n; i < np; i++) g->h_tok[i] = g->h_pos[i] = 0;
    model_refresh_weights(g->m);
    be_to_device(be, g->io, g->h_io, sizeof(int) * 5 * g->B_cap); /* key, tok, pos and u */
    if (!g->graph[np] && g->use_graphs && g->ran[np] && be_graph_begin(be)) {
        gen_layers(g, np);
        g->graph[np] = be_graph_end(be);
        if (!g->graph[np]) g->use_graphs = 0; /* nothing ran: run it directly below */
    }
    if (g->graph[np]) {
        be_graph_launch(be, g->graph[np]);
        g->graph_steps++;
    } else
        gen_layers(g, np);
    g->ran[np] = 1;
}

/* Moves slot j's state into slot i, and records the move of its cached positions
 * 0 .. h_pos[j] - 1 as move k of gen_moves. */
static void gen_move_slot(Generator *g, int i, int j, int k) {
    g->h_moves[3 * k] = i;
    g->h_moves[3 * k + 1] = j;
    g->h_moves[3 * k + 2] = g->h_pos[j];
    g->h_tok[i] = g->h_tok[j];
    g->h_pos[i] = g->h_pos[j];
    g->slot_row[i] = g->slot_row[j];
    g->done[i] = g->done[j];
}

/* The caches' side of a step's k slot moves, in one launch (no slot is both a source and a
 * destination: sources come from the live tail, destinations below it). */
static void gen_moves(Generator *g, int k) {
    if (k == 0) return;
    const ModelConfig *c = &g->m->cfg;
    be_to_device(g->m->be, g->moves, g->h_moves, sizeof(int) * 3 * k);
    op_kv_move_slots(g->m->be, g->kcache, g->vcache, g->moves, k, c->n_layers, g->B_cap, g->T_cap,
                     c->n_kv_heads * c->head_dim, g->kv_bytes);
}

/* Admits up to B_cap - *n of the pending rows pend[*next ..] into slots *n .. : their
 * prompts' caches by a prefill, their last prompt token as the next step's input. */
static void gen_admit(Generator *g, const int *prompts, const int *prompt_len, const int *pend,
                      int n_pend, int *next, int *n) {
    const int T = g->T_cap, k = g->B_cap - *n < n_pend - *next ? g->B_cap - *n : n_pend - *next;
    if (k <= 0) return;
    for (int i = 0; i < k; i++) {
        g->slot_row[*n + i] = pend[*next + i];
        g->done[*n + i] = 0;
    }
    gen_prefill(g, prompts, prompt_len, *n, k);
    for (int i = *n; i < *n + k; i++) {
        const int row = g->slot_row[i];
        g->h_tok[i] = prompts[(size_t)row * T + prompt_len[row] - 1];
        g->h_pos[i] = prompt_len[row] - 1;
    }
    *n += k;
    *next += k;
}

/* Slots to free before pending rows are admitted mid-run: a prefill then serves several rows,
 * and the step recordings it drops (gen_drop_graphs) are not made again for every row. */
static int gen_refill_min(const Generator *g) {
    return g->B_cap / 4 > 1 ? g->B_cap / 4 : 1;
}

/* generate() for any B: up to B_cap rows decode at once, and as rows finish, the pending ones
 * take the freed slots (continuous batching), so a long row holds one slot, not a wave. */
static void gen_run(Generator *g, const int *prompts, const int *prompt_len, int B,
                    const SampleParams *sp, const int *stop, int n_stop, int pad_id,
                    unsigned long long seed, const unsigned long long *row_ids, int *out_tokens,
                    int *resp_len, int *hit_eos, float *out_logp) {
    Model *m = g->m;
    Backend be = m->be;
    const int T = g->T_cap, V = m->cfg.vocab;
    /* plain sampling races the tokens (sample_gumbel_cpu); truncated sampling walks a CDF */
    const int race =
        sp->temperature > 0.0f && (sp->top_k <= 0 || sp->top_k >= V) && sp->top_p >= 1.0f;
    int *pend = xcalloc(B > 0 ? B : 1, sizeof(int)), n_pend = 0;
    for (int b = 0; b < B; b++) {
        const int len = prompt_len[b];
        const int *p = prompts + (size_t)b * T;
        CHECK(len >= 1 && len <= T);
        for (int t = 0; t < len; t++) CHECK(p[t] >= 0 && p[t] < V);
        int *o = out_tokens + (size_t)b * T;
        memcpy(o, p, sizeof(int) * len);
        for (int t = len; t < T; t++) o[t] = pad_id;
        if (out_logp) memset(out_logp + (size_t)b * T, 0, sizeof(float) * T);
        resp_len[b] = 0;
        hit_eos[b] = 0;
        if (len < T && sp->max_new_tokens > 0) pend[n_pend++] = b;
    }
    int n = 0, next = 0;
    gen_admit(g, prompts, prompt_len, pend, n_pend, &next, &n);
    while (n > 0) {
        for (int i = 0; i < n; i++) { /* the draws go up with the step's tokens */
            const int row = g->slot_row[i];
            const unsigned long long idx =
                row_ids[row] * 4096ull + (unsigned long long)resp_len[row];
            if (race)
                g->h_key[i] = idx;
            else
                g->h_u[i] = philox_u01(philox_draw(seed, GEN_STREAM, idx).v[0]);
        }
        gen_step(g, n);
        g->rows_decoded += n;
        g->decode_steps++;
        if (race)
            op_sample_gumbel(be, g->next, out_logp ? g->logp : NULL, g->logits, g->key, seed, n, V,
                             sp->temperature);
        else
            op_sample_logp(be, g->next, out_logp ? g->logp : NULL, g->logits, g->u, n, V,
                           sp->temperature, sp->top_k, sp->top_p);
        /* next, and the log-probs B_cap further on: one copy */
        be_to_host(be, g->h_next, g->next, sizeof(int) * (out_logp ? g->B_cap + n : n));
        for (int i = 0; i < n; i++) {
            const int row = g->slot_row[i], tok = g->h_next[i];
            const int p = prompt_len[row] + resp_len[row]; /* where the new token goes */
            out_tokens[(size_t)row * T + p] = tok;
            if (out_logp) out_logp[(size_t)row * T + p] = g->h_logp[i];
            resp_len[row]++;
            int eos = 0;
            for (int s = 0; s < n_stop; s++) eos |= tok == stop[s];
            hit_eos[row] = eos;
            g->done[i] = eos || resp_len[row] >= sp->max_new_tokens || p + 1 >= T;
            g->h_tok[i] = tok;
            g->h_pos[i] = p;
        }
        /* Swap each finished slot for the last live one; order is free since a row's
         * result depends on its row id, not its slot. */
        int moved = 0;
        for (int i = 0; i < n;) {
            if (!g->done[i]) {
                i++;
                continue;
            }
            while (n - 1 > i && g->done[n - 1]) n--;
            if (n - 1 > i) gen_move_slot(g, i, n - 1, moved++);
            n--;
            i++;
        }
        gen_moves(g, moved);
        if (next < n_pend && (g->B_cap - n >= gen_refill_min(g) || n == 0)) {
            /* the prefill may grow scratch buffers that the recordings point into */
            gen_drop_graphs(g);
            gen_admit(g, prompts, prompt_len, pend, n_pend, &next, &n);
        }
    }
    gen_drop_graphs(g);
    free(pend);
}

/* Packs each layer's bf16 q, k, v weights (and fp32 biases) into one (q | k | v) matrix for
 * the decode step's single product: three strided copies per tensor kind over all layers. */
static void gen_pack_qkv(Generator *g) {
    Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const size_t d = c->d_model, L = c->n_layers, qd = (size_t)c->n_heads * c->head_dim;
    const size_t kd = (size_t)c->n_kv_heads * c->head_dim, S = qd + 2 * kd;
    model_refresh_weights(m);
    const uint16_t *w[3] = {MODEL_W(m, wq, 0, 0).h, MODEL_W(m, wk, 0, 0).h, MODEL_W(m, wv, 0, 0).h};
    const float *b[3] = {m->w.bq, m->w.bk, m->w.bv};
    const size_t rows[3] = {qd, kd, kd}, at[3] = {0, qd, qd + kd};
    for (int t = 0; t < 3; t++) {
        const size_t e = sizeof(uint16_t), n = rows[t] * d;
        be_copy_2d(m->be, g->wqkv + at[t] * d, e * S * d, w[t], e * n, e * n, L);
        if (g->bqkv)
            be_copy_2d(m->be, g->bqkv + at[t], sizeof(float) * S, b[t], sizeof(float) * rows[t],
                       sizeof(float) * rows[t], L);
    }
}

void generate(Generator *g, const int *prompts, const int *prompt_len, int B,
              const SampleParams *sp, const int *stop, int n_stop, int pad_id,
              unsigned long long seed, const unsigned long long *row_ids, int *out_tokens,
              int *resp_len, int *hit_eos, float *out_logp) {
    CHECK(g->m != NULL && B >= 0);
    if (g->wqkv && B > 0) gen_pack_qkv(g);
    gen_run(g, prompts, prompt_len, B, sp, stop, n_stop, pad_id, seed, row_ids, out_tokens,
            resp_len, hit_eos, out_logp);
}
