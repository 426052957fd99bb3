/* The Llama-family decoder on the op_* dispatch: parameter layout, initialisation, and the
 * forward/backward over a (B, T) token batch. The forward keeps every activation the
 * backward needs; the backward walks the layers in reverse with one layer of scratch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "dist.h"
#include "../kernels/philox.h"
#include "../kernels/rope.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/ops.h"
#include "../runtime/ops_mixed.h"

int model_config_validate(const ModelConfig *c, const char *what) {
    if (c->vocab <= 0 || c->d_model <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->head_dim <= 0 || c->d_ff <= 0 || c->max_pos <= 0)
        return dr_error("%s: sizes (vocab_size, hidden_size, num_hidden_layers, "
                        "num_attention_heads, num_key_value_heads, head_dim, "
                        "intermediate_size, max_position_embeddings) must be positive",
                        what);
    if (c->n_heads % c->n_kv_heads != 0)
        return dr_error("%s: num_attention_heads (%d) must be a multiple of "
                        "num_key_value_heads (%d)",
                        what, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return dr_error("%s: head_dim (%d) must be even for rotary embeddings", what, c->head_dim);
    if (!(c->norm_eps > 0) || !(c->rope_theta > 0))
        return dr_error("%s: rms_norm_eps and rope_theta must be positive", what);
    if (c->rope_llama3 &&
        (!(c->rs_factor > 0) || !(c->rs_high_freq > c->rs_low_freq) || c->rs_orig_max_pos <= 0))
        return dr_error("%s: rope_scaling (llama3) needs factor > 0, high_freq_factor > "
                        "low_freq_factor and original_max_position_embeddings > 0",
                        what);
    return DR_OK;
}

/* The tensors in layout order, each with the kind that says when a w16_only model keeps it in
 * bf16 alone: 0 never; 1 (the layers' weight matrices) at every level; 2 (the lm_head) at level
 * 2, a sharded master's (a reference keeps its fp32 values, from which the fp16 copy is remade
 * when it is resumed); 3 (the embedding, whose lookup reads the bf16 copy) as 1 when untied and
 * as 2 when tied, where it is the lm_head. */
/* clang-format off */
#define MODEL_TENSORS(X)                                                                           \
    X(embed, 3) X(attn_norm, 0) X(wq, 1) X(bq, 0) X(wk, 1) X(bk, 0) X(wv, 1) X(bv, 0)             \
    X(wo, 1) X(bo, 0) X(mlp_norm, 0) X(w_gate, 1) X(w_up, 1) X(w_down, 1) X(final_norm, 0)        \
    X(lm_head, 2) X(value_w, 0) X(value_b, 0)
/* clang-format on */

/* Whether a tensor of MODEL_TENSORS' kind k is left out at w16_only level `skip` of config c. */
static int skipped(int k, int skip, const ModelConfig *c) {
    if (k == 3) k = c->tied ? 2 : 1;
    return k > 0 && k <= skip;
}

/* Walks the layout once; with buf == NULL it only counts. The views (v), offsets (o) and sizes
 * (sz, in floats) of each tensor; the tensors a w16_only model of level skip leaves out take
 * no room and their views are NULL (its fp32 buffer). */
static size_t layout(const ModelConfig *c, float *buf, ParamViews *v, ParamOffsets *o,
                     ParamOffsets *sz, int skip) {
    size_t off = 0;
    size_t d = c->d_model, L = c->n_layers, V = c->vocab, F = c->d_ff;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    ParamOffsets n = {
        .embed = V * d,
        .attn_norm = L * d,
        .wq = L * qd * d,
        .bq = c->qkv_bias ? L * qd : 0,
        .wk = L * kd * d,
        .bk = c->qkv_bias ? L * kd : 0,
        .wv = L * kd * d,
        .bv = c->qkv_bias ? L * kd : 0,
        .wo = L * d * qd,
        .bo = c->o_bias ? L * d : 0,
        .mlp_norm = L * d,
        .w_gate = L * F * d,
        .w_up = L * F * d,
        .w_down = L * d * F,
        .final_norm = d,
        .lm_head = c->tied ? 0 : V * d,
        .value_w = c->value_head ? d : 0,
        .value_b = c->value_head ? 1 : 0,
    };
#define TAKE(field, matrix)                                                                        \
    do {                                                                                           \
        size_t n_ = skipped(matrix, skip, c) ? 0 : n.field;                                        \
        if (v) v->field = n_ ? buf + off : NULL;                                                   \
        if (o) o->field = off;                                                                     \
        off += n_;                                                                                 \
    } while (0);
    MODEL_TENSORS(TAKE)
#undef TAKE
    if (v && c->tied) v->lm_head = v->embed;
    if (o && c->tied) o->lm_head = o->embed;
    if (sz) *sz = n;
    return off;
}

/* Appends [a, a + n) to the ranges, merged with the last when adjacent. */
static void add_range(size_t a, size_t n, size_t *lo, size_t *hi, int *k) {
    if (!n) return;
    if (*k > 0 && hi[*k - 1] == a) {
        hi[*k - 1] = a + n;
        return;
    }
    CHECK(*k < MODEL_MAX_RANGES);
    lo[*k] = a;
    hi[*k] = a + n;
    ++*k;
}

/* The overlap [*x, *y) of [a, a + n) and [b, b + k); 0 when empty. */
static int overlap(size_t a, size_t n, size_t b, size_t k, size_t *x, size_t *y) {
    *x = a > b ? a : b;
    *y = a + n < b + k ? a + n : b + k;
    return *x < *y;
}

/* The tensors stacked by layer, in layout order, and the others. */
#define LAYER_TENSORS(X)                                                                           \
    X(attn_norm)                                                                                   \
    X(wq) X(bq) X(wk) X(bk) X(wv) X(bv) X(wo) X(bo) X(mlp_norm) X(w_gate) X(w_up) X(w_down)
#define OUTER_TENSORS(X) X(embed) X(final_norm) X(lm_head) X(value_w) X(value_b)

/* Whole sizes of the tensors (an untied lm_head only), whatever the model keeps. */
static ParamOffsets tensor_sizes(const ModelConfig *c) {
    ParamOffsets n;
    layout(c, NULL, NULL, NULL, &n, 0);
    return n;
}

int model_param_ranges(const Model *m, int l, size_t *lo, size_t *hi) {
    const ParamOffsets n = tensor_sizes(&m->cfg);
    const size_t L = (size_t)m->cfg.n_layers;
    int k = 0;
    if (l < 0) {
#define OUTER(f) add_range(m->off.f, n.f, lo, hi, &k);
        OUTER_TENSORS(OUTER)
#undef OUTER
        return k;
    }
    CHECK(l < m->cfg.n_layers);
#define LAYER(f) add_range(m->off.f + (size_t)l * (n.f / L), n.f / L, lo, hi, &k);
    LAYER_TENSORS(LAYER)
#undef LAYER
    return k;
}

void model_set_grad_ready(Model *m, ModelGradReady fn, void *ctx) {
    m->grad_ready = fn;
    m->grad_ready_ctx = ctx;
}

size_t model_param_count(const ModelConfig *c) {
    return layout(c, NULL, NULL, NULL, NULL, 0);
}

size_t model_param_count_w16(const ModelConfig *c, int level) {
    return layout(c, NULL, NULL, NULL, NULL, level);
}

void model_param_views(const ModelConfig *c, float *buf, ParamViews *v) {
    memset(v, 0, sizeof *v);
    layout(c, buf, v, NULL, NULL, 0);
}

/* Elements of layer l's ranges (l >= 0: any layer's), or with l = -1 of the rest. */
static size_t range_floats(const Model *m, int l) {
    size_t lo[MODEL_MAX_RANGES], hi[MODEL_MAX_RANGES], n = 0;
    int k = model_param_ranges(m, l, lo, hi);
    for (int i = 0; i < k; i++) n += hi[i] - lo[i];
    return n;
}

/* ZeRO-2's and ZeRO-3's windows (GradShard, WeightShard), in elements: layer l's slot (layers
 * take two in turn) or with l = -1 that of the tensors outside the layers, after them; where
 * each starts, how long, and the whole. */
static size_t win_at(const Model *m, int l) {
    return l >= 0 ? (size_t)(l & 1) * m->win_slot : 2 * m->win_slot;
}
static size_t win_len(const Model *m, int l) {
    return l >= 0 ? m->win_slot : m->win_rest;
}
static size_t win_total(const Model *m) {
    return 2 * m->win_slot + m->win_rest;
}

/* ZeRO-3: the bf16 of the matrix at offset off in the windows: layer l's slice in its slot
 * (which holds layer l while it runs), or in the rest window. */
static uint16_t *window_weight(const Model *m, size_t off, size_t l, size_t n) {
    const ParamOffsets sz = tensor_sizes(&m->cfg);
    const size_t L = (size_t)m->cfg.n_layers;
    size_t at = win_at(m, (int)l);
#define SLOT(f)                                                                                    \
    if (sz.f && off == m->off.f) return m->ws.win + at;                                            \
    at += sz.f / L;
    LAYER_TENSORS(SLOT)
#undef SLOT
    at = win_at(m, -1);
#define REST(f)                                                                                    \
    if (sz.f && off == m->off.f) return m->ws.win + at + l * n;                                    \
    at += sz.f;
    OUTER_TENSORS(REST)
#undef REST
    CHECK(!"an offset of no tensor");
    return NULL;
}

Weight model_weight(const Model *m, size_t off, size_t l, size_t n) {
    const size_t at = off + l * n;
    Weight w = {m->w16_only ? NULL : m->params + at, m->mx.w ? m->mx.w + at : NULL};
    if (m->ws.win) w.h = window_weight(m, off, l, n);
    return w;
}

static void rope_init(Model *m) {
    const ModelConfig *c = &m->cfg;
    int half = c->head_dim / 2;
    float *inv = xmalloc(sizeof(float) * half);
    for (int j = 0; j < half; j++) {
        double f = 1.0 / pow((double)c->rope_theta, 2.0 * j / c->head_dim);
        if (c->rope_llama3) {
            /* llama3: long wavelengths slowed by factor, short kept, a smooth blend between */
            double low_wl = c->rs_orig_max_pos / c->rs_low_freq;
            double high_wl = c->rs_orig_max_pos / c->rs_high_freq;
            double wl = 2.0 * M_PI / f;
            if (wl > low_wl) {
                f = f / c->rs_factor;
            } else if (wl >= high_wl) {
                double s =
                    (c->rs_orig_max_pos / wl - c->rs_low_freq) / (c->rs_high_freq - c->rs_low_freq);
                f = (1.0 - s) * f / c->rs_factor + s * f;
            }
        }
        inv[j] = (float)f;
    }
    size_t n = (size_t)c->max_pos * half;
    float *cs = xmalloc(sizeof(float) * n), *sn = xmalloc(sizeof(float) * n);
    rope_tables_cpu(cs, sn, inv, c->max_pos, half);
    m->rope_cos = be_alloc(m->be, sizeof(float) * n);
    m->rope_sin = be_alloc(m->be, sizeof(float) * n);
    be_to_device(m->be, m->rope_cos, cs, sizeof(float) * n);
    be_to_device(m->be, m->rope_sin, sn, sizeof(float) * n);
    free(inv);
    free(cs);
    free(sn);
}

int model_bf16_halves(size_t width) {
    return width % 8 == 0;
}

static float *act_alloc(Backend be, size_t n) {
    return be_alloc(be, sizeof(float) * (n ? n : 1));
}

void model_act_layout(Activations *a, const ModelConfig *c, size_t N, const MixedFlags *mx) {
    const size_t d = c->d_model, F = c->d_ff;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    a->ld_xn = N * d, a->ld_q = a->ld_att = N * qd, a->ld_kv = N * kd, a->ld_mlp = N * F;
    if (!mx) return;
    if (model_bf16_halves(d)) a->ld_xn /= 2;
    if (model_bf16_halves(F)) a->ld_mlp /= 2;
    if (mx->attn_bf16 && model_bf16_halves(qd)) a->ld_att /= 2;
    if (mx->qkv_bf16 && model_bf16_halves(qd)) a->ld_q /= 2;
    if (mx->qkv_bf16 && model_bf16_halves(kd)) a->ld_kv /= 2;
}

static void activations_init(Model *m, int B, int T, int keep, const MixedFlags *mx) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    Backend be = m->be;
    a->B = B;
    a->T = T;
    a->recompute = keep == MODEL_RECOMPUTE;
    a->kept = keep == MODEL_KEEP_ALL ? c->n_layers : 1;
    a->kv_kept = a->recompute ? c->n_layers : a->kept;
    a->x_slots = (a->recompute ? c->n_layers : a->kept) + 1;
    size_t N = (size_t)B * T, d = c->d_model, L = a->kept, V = c->vocab;
    model_act_layout(a, c, N, mx);
    a->x = act_alloc(be, (size_t)a->x_slots * N * d);
    a->xn1 = act_alloc(be, L * a->ld_xn);
    a->rstd1 = act_alloc(be, L * N);
    a->q = act_alloc(be, L * a->ld_q);
    a->k = act_alloc(be, (size_t)a->kv_kept * a->ld_kv);
    a->v = act_alloc(be, (size_t)a->kv_kept * a->ld_kv);
    a->att = act_alloc(be, L * a->ld_att);
    a->lse = act_alloc(be, L * N * c->n_heads);
    a->x_mid = act_alloc(be, L * N * d);
    a->xn2 = act_alloc(be, L * a->ld_xn);
    a->rstd2 = act_alloc(be, L * N);
    a->gate = act_alloc(be, L * a->ld_mlp);
    a->up = act_alloc(be, L * a->ld_mlp);
    a->hmlp = act_alloc(be, L * a->ld_mlp);
    a->xf = act_alloc(be, N * d);
    a->rstdf = act_alloc(be, N);
    a->lse_out = act_alloc(be, N);
    a->pos = be_alloc(be, sizeof(int) * N);
    /* the logits chunk, never (tokens x vocab): ~16 MB on the CPU (cache-sized rows), 256 MB
     * on a GPU (enough rows per product to keep the tensor cores busy) */
    size_t chunk = (size_t)(be == BACKEND_CPU ? 1 << 22 : 1 << 26) / V;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    m->logits_chunk = (int)chunk;
    a->scratch = act_alloc(be, chunk * V);
    a->dx = NULL; /* backward scratch is allocated with the gradients */
    if (be != BACKEND_CPU) {
        a->io_tok = be_alloc(be, sizeof(int) * N);
        a->io_tgt = be_alloc(be, sizeof(int) * N);
        a->io_a = act_alloc(be, N);
        a->io_b = act_alloc(be, N);
    }
}

/* m's params: all of them, or at w16_level > 0 the compact buffer of a w16_only model (which
 * model_params_from_full fills), with their views and the layout's offsets. */
static void params_alloc(Model *m, int w16_level) {
    const ModelConfig *c = &m->cfg;
    m->w16_sharded = (w16_level & MODEL_W16_SHARDED) != 0;
    w16_level &= ~MODEL_W16_SHARDED;
    m->n_params = model_param_count(c);
    m->params = be_alloc(m->be, sizeof(float) * layout(c, NULL, NULL, NULL, NULL, w16_level));
    layout(c, m->params, &m->w, NULL, NULL, w16_level);
    m->w16_only = w16_level;
    layout(c, NULL, NULL, &m->off, NULL, 0);
    m->win_slot = range_floats(m, 0);
    m->win_rest = range_floats(m, -1);
}

static void init(Model *m, const ModelConfig *c, Backend be, int B, int T, int keep,
                 const MixedFlags *mx, int w16_level) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->be = be;
    params_alloc(m, w16_level);
    rope_init(m);
    activations_init(m, B, T, keep, mx);
}

void model_init(Model *m, const ModelConfig *c, Backend be, int B, int T) {
    init(m, c, be, B, T, MODEL_KEEP_ALL, NULL, 0);
}

void model_init_forward_only(Model *m, const ModelConfig *c, Backend be, int B, int T) {
    init(m, c, be, B, T, MODEL_FORWARD_ONLY, NULL, 0);
}

const char *model_bf16_attention(const char *precision, const char *attention) {
    if (!precision || strcmp(precision, "bf16")) return NULL;
    return attention ? attention : "flash";
}

int model_init_precision(Model *m, const ModelConfig *c, Backend be, int B, int T, int keep,
                         const char *bf16_attention) {
    const int level = keep / MODEL_W16_LEVEL(1);
    keep %= MODEL_W16_LEVEL(1);
    CHECK(keep == MODEL_KEEP_ALL || keep == MODEL_FORWARD_ONLY || keep == MODEL_RECOMPUTE);
    CHECK(level == 0 || bf16_attention);
    if (!bf16_attention) {
        init(m, c, be, B, T, keep, NULL, 0);
        return DR_OK;
    }
    if (model_bf16_check(c, be, bf16_attention)) return DR_ERR;
    const MixedFlags f = model_mixed_flags(c, bf16_attention);
    init(m, c, be, B, T, keep, &f, level);
    CHECK(model_use_bf16(m, bf16_attention) == DR_OK); /* checked above; nothing to remake */
    return DR_OK;
}

int model_trainable(const Model *m) {
    return m->act.kept == m->cfg.n_layers || m->act.recompute;
}

static void lp_alloc(Model *m);

void model_init_shared(Model *m, const ModelConfig *c, Model *lender, int w16_level) {
    CHECK(model_trainable(lender) && !lender->act_of);
    CHECK(c->d_model == lender->cfg.d_model && c->n_layers == lender->cfg.n_layers &&
          c->d_ff == lender->cfg.d_ff && c->vocab == lender->cfg.vocab &&
          c->n_heads == lender->cfg.n_heads && c->n_kv_heads == lender->cfg.n_kv_heads &&
          c->head_dim == lender->cfg.head_dim);
    if (lender->be != BACKEND_CPU) lp_alloc(lender); /* so that the pointers are the lender's */
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->be = lender->be;
    params_alloc(m, w16_level);
    rope_init(m);
    m->act = lender->act;
    m->logits_chunk = lender->logits_chunk;
    m->act_of = lender;
}

static void backward_scratch(Model *m);
static void rest_views(Model *m);
static void gather_layer(const Model *m, int l);

void model_alloc_grads(Model *m) {
    if (model_has_grads(m)) return;
    CHECK(model_trainable(m)); /* a forward-only model has no backward */
    m->grads = be_alloc(m->be, sizeof(float) * m->n_params);
    model_param_views(&m->cfg, m->grads, &m->g);
    backward_scratch(m);
}

void model_share_grads(Model *m, Model *owner) {
    CHECK(!model_has_grads(m) && model_has_grads(owner) && !owner->grads_of);
    CHECK(owner->be == m->be && model_trainable(m) && owner->n_params >= m->n_params);
    m->grads_of = owner;
    if (owner->gs.acc) { /* the same range: m's AdamW range must be the owner's */
        CHECK(owner->n_params == m->n_params);
        m->gs = owner->gs;
        rest_views(m);
    } else {
        m->grads = owner->grads;
        model_param_views(&m->cfg, m->grads, &m->g);
    }
    backward_scratch(m);
}

int model_has_grads(const Model *m) {
    return m->grads != NULL || m->gs.acc != NULL;
}

/* ZeRO-2: g's views of the tensors outside the layers, in the rest window in layout order
 * (that of model_param_ranges(m, -1)); the layers' views are layer_grads'. */
static void rest_views(Model *m) {
    const ParamOffsets n = tensor_sizes(&m->cfg);
    float *p = m->gs.win + win_at(m, -1);
    memset(&m->g, 0, sizeof m->g);
#define REST(f) m->g.f = n.f ? p : NULL, p += n.f;
    OUTER_TENSORS(REST)
#undef REST
    if (m->cfg.tied) m->g.lm_head = m->g.embed;
}

void model_shard_grads(Model *m, size_t lo, size_t hi) {
    CHECK(!m->gs.acc && !m->grads_of && model_trainable(m) && lo <= hi && hi <= m->n_params);
    const int had = m->grads != NULL;
    if (had) be_free(m->be, m->grads);
    m->grads = NULL;
    m->gs.win = be_alloc(m->be, sizeof(float) * win_total(m));
    m->gs.acc = be_alloc(m->be, sizeof(float) * (hi > lo ? hi - lo : 1));
    m->gs.lo = lo;
    m->gs.hi = hi;
    rest_views(m);
    if (!had) backward_scratch(m);
}

/* The gradients of layer l's tensors: its slices of the whole buffer, or under ZeRO-2 its
 * slot (layers alternate between two) in layout order; the other tensors' as in m->g. */
static ParamViews layer_grads(const Model *m, int l) {
    const ParamOffsets n = tensor_sizes(&m->cfg);
    const size_t L = (size_t)m->cfg.n_layers;
    ParamViews g = m->g;
    if (!m->gs.acc) {
#define WHOLE(f) g.f = n.f ? m->grads + m->off.f + (size_t)l * (n.f / L) : NULL;
        LAYER_TENSORS(WHOLE)
#undef WHOLE
        return g;
    }
    float *p = m->gs.win + win_at(m, l);
#define SLOT(f) g.f = n.f ? p : NULL, p += n.f / L;
    LAYER_TENSORS(SLOT)
#undef SLOT
    return g;
}

/* ZeRO-2: layer l's slot (l = -1: the rest window), final for this backward, summed over ranks
 * into its owners, and this rank's part added to its range. */
static void reduce_window(Model *m, int l) {
    size_t lo[MODEL_MAX_RANGES], hi[MODEL_MAX_RANGES];
    const int k = model_param_ranges(m, l, lo, hi);
    float *w = m->gs.win + win_at(m, l);
    for (int i = 0; i < k; i++) {
        const size_t len = hi[i] - lo[i];
        dist_reduce_scatter_window(w, lo[i], len, m->n_params);
        const size_t a = lo[i] > m->gs.lo ? lo[i] : m->gs.lo;
        const size_t b = hi[i] < m->gs.hi ? hi[i] : m->gs.hi;
        if (a < b) op_add(m->be, m->gs.acc + (a - m->gs.lo), w + (a - lo[i]), (long)(b - a));
        w += len;
    }
}

/* ZeRO-2: a window is zeroed before the backward writes it (l = -1: the rest). */
static void zero_window(Model *m, int l) {
    if (!m->gs.acc) return;
    be_memset0(m->be, m->gs.win + win_at(m, l), sizeof(float) * win_len(m, l));
}

/* The backward's gradients of layer l (l = -1: the rest) are final. */
static void grads_final(Model *m, int l) {
    if (m->gs.acc) reduce_window(m, l);
    if (m->grad_ready) m->grad_ready(m->grad_ready_ctx, l);
}

void model_backward_skip(Model *m) {
    for (int l = m->cfg.n_layers - 1; l >= -1; l--) { /* the backward's order */
        if (m->ws.win && l >= 0) gather_layer(m, l);
        if (!m->gs.acc) continue;
        zero_window(m, l); /* a sum leaves its result in place */
        reduce_window(m, l);
    }
}

/* ZeRO-3: the bf16 copy as this rank's range and the windows, instead of whole. */
static void weights_windows(Model *m) {
    WeightShard *s = &m->ws;
    dist_shard(m->n_params, &s->lo, &s->hi);
    s->win = be_alloc(m->be, sizeof(uint16_t) * win_total(m));
    s->shard = be_alloc(m->be, sizeof(uint16_t) * (s->hi > s->lo ? s->hi - s->lo : 1));
}

/* ZeRO-3: the bf16 of buf (elements [at, at + len) of the layout) where the windows keep it:
 * this rank's range, and the tensors outside the layers. */
static void cast_into_windows(Model *m, const float *buf, size_t at, size_t len) {
    const WeightShard *s = &m->ws;
    size_t a[MODEL_MAX_RANGES], b[MODEL_MAX_RANGES], x, y;
    if (overlap(at, len, s->lo, s->hi - s->lo, &x, &y))
        op_cast_bf16(m->be, s->shard + (x - s->lo), buf + (x - at), (long)(y - x));
    const int k = model_param_ranges(m, -1, a, b);
    uint16_t *w = s->win + win_at(m, -1);
    for (int i = 0; i < k; w += b[i] - a[i], i++)
        if (overlap(at, len, a[i], b[i] - a[i], &x, &y))
            op_cast_bf16(m->be, w + (x - a[i]), buf + (x - at), (long)(y - x));
}

/* ZeRO-3: layer l's bf16 weights gathered from the ranks into its slot. */
static void gather_layer(const Model *m, int l) {
    const WeightShard *s = &m->ws;
    size_t a[MODEL_MAX_RANGES], b[MODEL_MAX_RANGES], x, y;
    const int k = model_param_ranges(m, l, a, b);
    uint16_t *w = s->win + win_at(m, l);
    for (int i = 0; i < k; w += b[i] - a[i], i++) {
        if (overlap(a[i], b[i] - a[i], s->lo, s->hi - s->lo, &x, &y))
            be_copy(m->be, w + (x - a[i]), s->shard + (x - s->lo), sizeof(uint16_t) * (y - x));
        dist_allgather_window_u16(w, a[i], b[i] - a[i], m->n_params);
    }
}

void model_forward_skip(Model *m) {
    if (!m->ws.win) return;
    for (int l = 0; l < m->cfg.n_layers; l++) gather_layer(m, l);
}

int model_backward_collective(const Model *m) {
    return m->gs.acc != NULL || m->ws.win != NULL;
}

int model_forward_collective(const Model *m) {
    return m->ws.win != NULL;
}

float *model_gather_scratch(const Model *m, size_t *len) {
    if (m->gs.acc) {
        *len = win_total(m);
        return m->gs.win;
    }
    CHECK(m->grads != NULL);
    *len = m->n_params;
    return m->grads;
}

/* The backward's scratch: the lender's where the activations are its, else made here. */
static void backward_scratch(Model *m) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    size_t N = (size_t)a->B * a->T, d = c->d_model;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t wide = qd > d ? qd : d;
    if (m->act_of) { /* the lender's backward scratch */
        const Activations *l = &m->act_of->act;
        CHECK(l->dx != NULL);
        a->dx = l->dx, a->dtmp = l->dtmp, a->dq = l->dq, a->dk = l->dk, a->dv = l->dv;
        a->datt = l->datt, a->dgate = l->dgate, a->dup = l->dup, a->dh = l->dh;
        return;
    }
    /* a bf16 model's MLP gradients, and with the bf16 attention datt, are bf16 alone, at the
     * layout's half (model_act_layout) */
    a->dx = act_alloc(m->be, N * d);
    a->dtmp = act_alloc(m->be, N * wide);
    a->dq = act_alloc(m->be, N * qd);
    a->dk = act_alloc(m->be, N * kd);
    a->dv = act_alloc(m->be, N * kd);
    a->datt = act_alloc(m->be, a->ld_att); /* one layer's slot: halved as att's is */
    a->dgate = act_alloc(m->be, a->ld_mlp);
    a->dup = act_alloc(m->be, a->ld_mlp);
    a->dh = act_alloc(m->be, a->ld_mlp);
}

void model_zero_grads(Model *m) {
    CHECK(model_has_grads(m));
    if (m->gs.acc)
        be_memset0(m->be, m->gs.acc, sizeof(float) * (m->gs.hi - m->gs.lo));
    else
        be_memset0(m->be, m->grads, sizeof(float) * m->n_params);
}

void model_free(Model *m) {
    Activations *a = &m->act;
    if (m->act_of) memset(a, 0, sizeof *a); /* the lender's: free the rest alone */
    if (m->grads_of) {                      /* the owner's */
        m->grads = NULL;
        memset(&m->gs, 0, sizeof m->gs);
    }
    if (m->gs.acc) {
        be_free(m->be, m->gs.win);
        be_free(m->be, m->gs.acc);
    }
    if (m->ws.win) {
        be_free(m->be, m->ws.win);
        be_free(m->be, m->ws.shard);
    }
    void *bufs[] = {m->params, m->grads,  m->rope_cos, m->rope_sin, a->x,       a->xn1,
                    a->rstd1,  a->q,      a->k,        a->v,        a->att,     a->lse,
                    a->x_mid,  a->xn2,    a->rstd2,    a->gate,     a->up,      a->hmlp,
                    a->xf,     a->rstdf,  a->lse_out,  a->pos,      a->scratch, a->dx,
                    a->dtmp,   a->dq,     a->dk,       a->dv,       a->datt,    a->dgate,
                    a->dup,    a->dh,     a->io_tok,   a->io_tgt,   a->io_a,    a->io_b,
                    a->lp_idx, a->lp_tgt, a->lp_h,     a->lp_a,     a->lp_b};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be_free(m->be, bufs[i]);
    free(a->lp_hidx);
    free(a->lp_htgt);
    if (m->master) be_free(m->be, m->master);
    void *mx[] = {m->mx.w, m->mx.w16, m->mx.buf[0], m->mx.buf[1], m->mx.buf[2], m->mx.attn_ws};
    for (size_t i = 0; i < sizeof mx / sizeof mx[0]; i++)
        if (mx[i]) be_free(m->be, mx[i]);
    memset(m, 0, sizeof *m);
}

/* Fills n floats from a Philox stream: normal(0, std) when std > 0, else the constant -std. */
static void fill(float *host, size_t n, unsigned long long seed, unsigned long long stream,
                 float std) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (std > 0) {
            philox4 r = philox_draw(seed, stream, i);
            host[i] = std * philox_normal(r.v[0], r.v[1]);
        } else {
            host[i] = -std;
        }
    }
}

void model_init_random(Model *m, unsigned long long seed, float std) {
    const ModelConfig *c = &m->cfg;
    float *host = xcalloc(m->n_params, sizeof(float));
    ParamViews hv;
    model_param_views(c, host, &hv);
    size_t d = c->d_model, L = c->n_layers, V = c->vocab, F = c->d_ff;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    /* each tensor its own stream so adding a tensor never shifts the others' draws */
    fill(hv.embed, V * d, seed, 1, std);
    fill(hv.attn_norm, L * d, seed, 2, -1.0f);
    fill(hv.wq, L * qd * d, seed, 3, std);
    fill(hv.wk, L * kd * d, seed, 4, std);
    fill(hv.wv, L * kd * d, seed, 5, std);
    /* output projections scaled down by depth, as GPT-2 does, to keep the residual stable */
    float std_out = std / sqrtf(2.0f * (float)L);
    fill(hv.wo, L * d * qd, seed, 6, std_out);
    fill(hv.mlp_norm, L * d, seed, 7, -1.0f);
    fill(hv.w_gate, L * F * d, seed, 8, std);
    fill(hv.w_up, L * F * d, seed, 9, std);
    fill(hv.w_down, L * d * F, seed, 10, std_out);
    fill(hv.final_norm, d, seed, 11, -1.0f);
    if (!c->tied) fill(hv.lm_head, V * d, seed, 12, std);
    be_to_device(m->be, m->params, host, sizeof(float) * m->n_params);
    model_params_changed(m);
    free(host);
}

/* ---- precision: every product, attention and lm_head call goes through these ---- */

/* The buffers of one kind (n of them, slots ld floats apart over the kept layers) made again
 * with slots `want` floats apart, where that differs. */
static void act_remake(Model *m, float **bufs[], int n, size_t *ld, size_t want, int slots) {
    if (*ld == want) return;
    *ld = want;
    for (int i = 0; i < n; i++) {
        be_free(m->be, *bufs[i]);
        *bufs[i] = act_alloc(m->be, (size_t)slots * want);
    }
}

/* What a bf16 model keeps in bf16 alone (model.h, MixedState), at half the memory: the norms'
 * outputs before q/k/v and gate/up, gate, up and the MLP's hidden activation, and with the
 * bf16 attention its output (and q, k, v with qkv_bf16), as model_act_layout lays them out; for a
 * model made at fp32 sizes (model_init, then model_use_bf16), nothing for one made at these. */
static void act_halve_bf16(Model *m, const MixedFlags *f) {
    Activations *a = &m->act, want = *a;
    model_act_layout(&want, &m->cfg, (size_t)a->B * a->T, f);
    float **xn[] = {&a->xn1, &a->xn2}, **mlp[] = {&a->gate, &a->up, &a->hmlp};
    float **att[] = {&a->att}, **q[] = {&a->q}, **kv[] = {&a->k, &a->v};
    act_remake(m, xn, 2, &a->ld_xn, want.ld_xn, a->kept);
    act_remake(m, mlp, 3, &a->ld_mlp, want.ld_mlp, a->kept);
    act_remake(m, att, 1, &a->ld_att, want.ld_att, a->kept);
    act_remake(m, q, 1, &a->ld_q, want.ld_q, a->kept);
    act_remake(m, kv, 2, &a->ld_kv, want.ld_kv, a->kv_kept);
}

MixedFlags model_mixed_flags(const ModelConfig *c, const char *attention) {
    const int D = c->head_dim, cudnn = attention && !strcmp(attention, "cudnn");
    const char *qkv = getenv("DENSERL_QKV_BF16"), *lg = getenv("DENSERL_LOGITS");
    MixedFlags f;
    f.attn_bf16 = op_mixed_attention_supported(D) && (cudnn || op_mixed_attention_fits(D));
    f.qkv_bf16 = f.attn_bf16 && !(qkv && !strcmp(qkv, "0"));
    f.logits16 = !(lg && !strcmp(lg, "f32"));
    return f;
}

int model_bf16_check(const ModelConfig *c, Backend be, const char *attention) {
    if (be != BACKEND_CUDA)
        return dr_error("precision \"bf16\" needs the CUDA backend (device \"cuda\")");
    int cudnn = attention && !strcmp(attention, "cudnn");
    if (cudnn && !op_mixed_attention_supported(c->head_dim))
        return dr_error("attention \"cudnn\" needs head_dim 64 or 128 (this model: %d)",
                        c->head_dim);
    if (cudnn && !op_mixed_attention_cudnn_available())
        return dr_error("attention \"cudnn\": cuDNN's fused attention is not available here "
                        "(see the line above); use \"flash\"");
    /* the lm_head's logits in fp16 (logprob_bf16.h) unless DENSERL_LOGITS=f32 */
    const char *lg = getenv("DENSERL_LOGITS");
    if (lg && *lg && strcmp(lg, "f16") && strcmp(lg, "f32"))
        return dr_error("DENSERL_LOGITS=%s: expected f16 or f32", lg);
    const char *qkv = getenv("DENSERL_QKV_BF16");
    if (qkv && *qkv && strcmp(qkv, "0") && strcmp(qkv, "1"))
        return dr_error("DENSERL_QKV_BF16=%s: expected 0 or 1", qkv);
    return DR_OK;
}

int model_use_bf16(Model *m, const char *attention) {
    if (model_bf16_check(&m->cfg, m->be, attention)) return DR_ERR;
    const int cudnn = attention && !strcmp(attention, "cudnn"), D = m->cfg.head_dim;
    const MixedFlags f = model_mixed_flags(&m->cfg, attention);
    m->mx.on = 1;
    m->mx.cudnn_attn = cudnn;
    m->mx.attn_bf16 = f.attn_bf16;
    static int said = 0; /* one line per run, not per model */
    if (op_mixed_attention_supported(D) && !m->mx.attn_bf16 && !said++)
        fprintf(stderr,
                "note: the bf16 flash attention for head dim %d does not fit this GPU's shared "
                "memory per block; attention runs in fp32 (\"attention\": \"cudnn\" keeps it "
                "in bf16)\n",
                D);
    m->mx.qkv_bf16 = f.qkv_bf16;
    if (!m->act_of) act_halve_bf16(m, &f);
    if (m->w16_sharded) {
        CHECK(m->w16_only); /* its products' fp32 matrices are not kept either */
        weights_windows(m);
    } else {
        m->mx.w = be_alloc(m->be, sizeof(uint16_t) * m->n_params);
    }
    if (f.logits16)
        m->mx.w16 = be_alloc(m->be, sizeof(uint16_t) * (size_t)m->cfg.vocab * m->cfg.d_model);
    m->mx.stale = 1;
    return DR_OK;
}

void model_params_changed(Model *m) {
    if (m->master) return; /* its update remade the copies (model_params_from_full) */
    CHECK(!m->w16_only);   /* its matrices exist in bf16 alone: nothing to remake them from */
    m->mx.stale = 1;
}

void model_refresh_weights(Model *m) {
    if (!m->mx.on || !m->mx.stale) return;
    op_cast_bf16(m->be, m->mx.w, m->params, (long)m->n_params);
    if (m->mx.w16) op_cast_f16(m->be, m->mx.w16, m->w.lm_head, (long)m->cfg.vocab * m->cfg.d_model);
    m->mx.stale = 0;
}

/* params made compact at w16_only level `level`: only what the kernels read in fp32, the rest
 * left to the bf16 copy, all remade from the whole params before they go. */
static void compact_params(Model *m, int level) {
    float *full = m->params;
    params_alloc(m, level);
    model_params_from_full(m, full);
    be_free(m->be, full);
}

void model_shard_master(Model *m, const float *range, size_t lo, size_t hi) {
    CHECK(m->mx.on && model_trainable(m) && !m->master && (m->w16_only == 0 || m->w16_only == 2));
    CHECK(lo <= hi && hi <= m->n_params);
    m->master = be_alloc(m->be, sizeof(float) * (hi - lo ? hi - lo : 1));
    be_copy(m->be, m->master, range, sizeof(float) * (hi - lo));
    m->master_lo = lo;
    m->master_hi = hi;
    if (!m->w16_only) compact_params(m, 2); /* the fp16 lm_head copy: from the gathered whole */
}

void model_params_from_range(Model *m, const float *buf, size_t at, size_t len) {
    CHECK(m->mx.on && at + len <= m->n_params);
    const size_t V = (size_t)m->cfg.vocab, d = (size_t)m->cfg.d_model;
    size_t x, y;
    if (m->ws.win)
        cast_into_windows(m, buf, at, len);
    else
        op_cast_bf16(m->be, m->mx.w + at, buf, (long)len);
    if (m->mx.w16 && overlap(at, len, m->off.lm_head, V * d, &x, &y))
        op_cast_f16(m->be, m->mx.w16 + (x - m->off.lm_head), buf + (x - at), (long)(y - x));
    const ParamOffsets n = tensor_sizes(&m->cfg);
#define FILL(field, matrix)                                                                        \
    if (m->w.field && overlap(at, len, m->off.field, n.field, &x, &y) &&                           \
        m->w.field + (x - m->off.field) != buf + (x - at))                                         \
        be_copy(m->be, m->w.field + (x - m->off.field), buf + (x - at), sizeof(float) * (y - x));
    MODEL_TENSORS(FILL)
#undef FILL
}

void model_params_from_full(Model *m, const float *full) {
    model_params_from_range(m, full, 0, m->n_params);
    m->mx.stale = 0;
}

/* Chunk [at, at + len) of a sharded master gathered into buf on every rank. */
static void gather_chunk(const Model *m, float *buf, size_t at, size_t len) {
    size_t x, y;
    if (overlap(at, len, m->master_lo, m->master_hi - m->master_lo, &x, &y))
        be_copy(m->be, buf + (x - at), m->master + (x - m->master_lo), sizeof(float) * (y - x));
    dist_allgather_window(buf, at, len, m->n_params);
}

/* dst's params and copies from src's master, a chunk at a time (dst may be src). */
static void fill_chunks(Model *dst, const Model *src) {
    size_t cap;
    float *buf = model_gather_scratch(src, &cap);
    for (size_t at = 0; at < src->n_params; at += cap) {
        const size_t len = src->n_params - at < cap ? src->n_params - at : cap;
        gather_chunk(src, buf, at, len);
        model_params_from_range(dst, buf, at, len);
    }
    dst->mx.stale = !dst->w16_only; /* a whole model's copies are remade from its params */
}

void model_fill_from_master(Model *dst, const Model *src) {
    CHECK(src->master && dst->mx.on && dst->n_params >= src->n_params && !dst->master);
    fill_chunks(dst, src);
}

void model_gather_master(Model *m) {
    CHECK(m->master && m->w16_only);
    fill_chunks(m, m);
}

/* n bf16 values of device (or host) memory src as fp32 into host dst. */
static void widen_to_host(Backend be, float *dst, const uint16_t *src, size_t n) {
    uint16_t *h = xmalloc(sizeof(uint16_t) * n);
    be_to_host(be, h, src, sizeof(uint16_t) * n);
    for (size_t i = 0; i < n; i++) {
        const uint32_t bits = (uint32_t)h[i] << 16;
        memcpy(dst + i, &bits, sizeof bits);
    }
    free(h);
}

void model_params_to_host(const Model *m, float *host) {
    if (m->master) { /* every rank: the shards gather a chunk at a time */
        size_t cap;
        float *buf = model_gather_scratch(m, &cap);
        for (size_t at = 0; at < m->n_params; at += cap) {
            const size_t len = m->n_params - at < cap ? m->n_params - at : cap;
            gather_chunk(m, buf, at, len);
            if (host) be_to_host(m->be, host + at, buf, sizeof(float) * len);
        }
        return;
    }
    for (int l = 0; m->ws.win && l < m->cfg.n_layers; l++) { /* every rank: ZeRO-3's gathers */
        size_t a[MODEL_MAX_RANGES], b[MODEL_MAX_RANGES];
        const int k = model_param_ranges(m, l, a, b);
        const uint16_t *w = m->ws.win + win_at(m, l);
        gather_layer(m, l);
        for (int i = 0; host && i < k; w += b[i] - a[i], i++)
            widen_to_host(m->be, host + a[i], w, b[i] - a[i]); /* the fp32 ones follow */
    }
    if (!host) return;
    if (!m->w16_only) {
        be_to_host(m->be, host, m->params, sizeof(float) * m->n_params);
        return;
    }
    ParamOffsets n;
    layout(&m->cfg, NULL, NULL, NULL, &n, 0);
    /* what is kept in fp32, then the rest widened from its bf16 (ZeRO-3: the layers' done) */
#define BACK(field, matrix)                                                                        \
    if (n.field && m->w.field)                                                                     \
        be_to_host(m->be, host + m->off.field, m->w.field, sizeof(float) * n.field);               \
    else if (n.field && !m->ws.win)                                                                \
        widen_to_host(m->be, host + m->off.field, m->mx.w + m->off.field, n.field);
    MODEL_TENSORS(BACK)
#undef BACK
#define REST(field)                                                                                \
    if (n.field && !m->w.field && m->ws.win)                                                       \
        widen_to_host(m->be, host + m->off.field, window_weight(m, m->off.field, 0, 0), n.field);
    OUTER_TENSORS(REST)
#undef REST
}

void model_params_from_host(Model *m, const float *host) {
    if (!m->master) {
        CHECK(!m->w16_only);
        be_to_device(m->be, m->params, host, sizeof(float) * m->n_params);
        model_params_changed(m);
        return;
    }
    be_to_device(m->be, m->master, host + m->master_lo,
                 sizeof(float) * (m->master_hi - m->master_lo));
    size_t cap;
    float *buf = model_gather_scratch(m, &cap);
    for (size_t at = 0; at < m->n_params; at += cap) {
        const size_t len = m->n_params - at < cap ? m->n_params - at : cap;
        be_to_device(m->be, buf, host + at, sizeof(float) * len);
        model_params_from_range(m, buf, at, len);
    }
    m->mx.stale = 0;
}

/* Scratch slot k of at least rows x width bf16 elements, grown on demand to the model's token
 * capacity at that width: calls of more rows at a width already seen then need no new
 * buffer (on a GPU a cudaFree may synchronize the device), so the slots stop growing in a run's
 * first step, whatever lengths later steps bring. */
static uint16_t *mx_buf(Model *m, int k, size_t rows, size_t width) {
    const size_t n = rows * width;
    if (n > m->mx.cap[k]) {
        size_t cap = width * (size_t)m->act.B * m->act.T;
        if (cap < n) cap = n;
        if (m->mx.buf[k]) be_free(m->be, m->mx.buf[k]);
        m->mx.buf[k] = be_alloc(m->be, sizeof(uint16_t) * cap);
        m->mx.cap[k] = cap;
        if (k == 0) m->mx.xs_of = NULL;
    }
    return m->mx.buf[k];
}

/* Slot 2 for the bf16 attention's scratch of a (B, T) call (linear in B T). */
static uint16_t *attn_scratch(Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    return mx_buf(m, 2, (size_t)B * T,
                  op_mixed_attention_scratch(1, 1, c->n_heads, c->n_kv_heads, c->head_dim));
}

/* Slot 0 for a product's input x of rows x width elements: *src is x, or NULL where the slot
 * already holds bf16(x) and the caller says x is unchanged since (again); the slot is then
 * x's. */
static uint16_t *mx_input(Model *m, const float *x, size_t rows, size_t width, int again,
                          const float **src) {
    const size_t n = rows * width;
    const int reuse = again && m->mx.xs_of == x && m->mx.n_xs == n;
    uint16_t *xs = mx_buf(m, 0, rows, width);
    *src = reuse ? NULL : x;
    m->mx.xs_of = x;
    m->mx.n_xs = n;
    return xs;
}

static void linear(Model *m, float *y, const float *x, Weight w, const float *b, int n, int in,
                   int out, int again) {
    if (!m->mx.on) {
        op_linear_forward(m->be, y, x, w.f, b, n, in, out);
        return;
    }
    const float *src;
    uint16_t *xs = mx_input(m, x, (size_t)n, (size_t)in, again, &src);
    op_linear_forward_mixed(m->be, y, src, w.h, b, n, in, out, xs);
}

void model_linear(Model *m, float *y, const float *x, Weight w, const float *b, int n, int in,
                  int out) {
    linear(m, y, x, w, b, n, in, out, 0);
}

void model_linear_again(Model *m, float *y, const float *x, Weight w, const float *b, int n, int in,
                        int out) {
    linear(m, y, x, w, b, n, in, out, 1);
}

/* dx += dy W, dw += dy^T x, db += sum dy; again: x is the previous product's input, whose
 * bf16 copy the previous lin_bwd made for its dw (see model_linear_again). dyb (bf16 only,
 * instead of dy, no db): the output gradient already in bf16. */
static void lin_bwd_x(Model *m, float *dx, float *dw, float *db, const float *dy, uint16_t *dyb,
                      const float *x, Weight w, int n, int in, int out, int again) {
    if (!m->mx.on) {
        op_linear_backward(m->be, dx, dw, db, dy, x, w.f, n, in, out);
        return;
    }
    const float *src = x;
    uint16_t *xs = mx_buf(m, 0, (size_t)n, (size_t)in);
    if (dw) xs = mx_input(m, x, (size_t)n, (size_t)in, again, &src); /* only dw reads the copy */
    op_linear_backward_mixed(m->be, dx, dw, db, dyb ? NULL : dy, src, w.h, n, in, out,
                             dyb ? dyb : mx_buf(m, 1, (size_t)n, (size_t)out), xs);
}

static void lin_bwd(Model *m, float *dx, float *dw, float *db, const float *dy, const float *x,
                    Weight w, int n, int in, int out) {
    lin_bwd_x(m, dx, dw, db, dy, NULL, x, w, n, in, out, 0);
}

/* A norm whose output only feeds matrix products (before q/k/v and before gate/up): in bf16
 * it writes bf16 straight into its buffer xn (half size), which is all that the
 * products (norm_proj) and their backward (norm_proj_bwd) read; no fp32 copy, no casts. */
static void norm_fwd(Model *m, float *xn, float *rstd, const float *x, const float *w, int n) {
    const ModelConfig *c = &m->cfg;
    if (m->mx.on)
        op_rmsnorm_forward_bf16(m->be, (uint16_t *)xn, rstd, x, w, n, c->d_model, c->norm_eps);
    else
        op_rmsnorm_forward(m->be, xn, rstd, x, w, n, c->d_model, c->norm_eps);
}

/* y = xn W^T (+ b) for norm_fwd's output xn (n, in). */
static void norm_proj(Model *m, float *y, const float *xn, Weight w, const float *b, int n, int in,
                      int out) {
    if (m->mx.on)
        op_linear_forward_mixed(m->be, y, NULL, w.h, b, n, in, out, (uint16_t *)xn);
    else
        op_linear_forward(m->be, y, xn, w.f, b, n, in, out);
}

/* dx += dy W, dw += dy^T xn, db += sum dy for a norm_proj product; dyb (bf16 only): the
 * output gradient already in bf16, for the products, with dy then read for db alone. */
static void norm_proj_bwd(Model *m, float *dx, float *dw, float *db, const float *dy, uint16_t *dyb,
                          const float *xn, Weight w, int n, int in, int out) {
    if (!m->mx.on) {
        op_linear_backward(m->be, dx, dw, db, dy, xn, w.f, n, in, out);
        return;
    }
    uint16_t *dys = dyb ? dyb : mx_buf(m, 1, (size_t)n, (size_t)out);
    op_linear_backward_mixed(m->be, dx, dw, dyb ? NULL : db, dyb ? NULL : dy, NULL, w.h, n, in, out,
                             dys, (uint16_t *)xn);
    if (dyb && db) op_linear_backward(m->be, NULL, NULL, db, dy, NULL, NULL, n, in, out);
}

static int mixed_attention(const Model *m) {
    return m->mx.on && m->mx.attn_bf16;
}

/* Attention and the o-projection. With the bf16 attention the output exists only in bf16 (out's
 * buffer is half size), which the projection and the backward read as it is, and its
 * gradient comes out of the projection's dx product in bf16 (into dout, also half size): no
 * widening, no casts. */
static void attn_fwd(Model *m, float *out, float *lse, const float *q, const float *k,
                     const float *v, int B, int T) {
    const ModelConfig *c = &m->cfg;
    int H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    if (!mixed_attention(m)) {
        op_attention_forward(m->be, out, lse, q, k, v, B, T, H, Hkv, D);
        return;
    }
    uint16_t *s = attn_scratch(m, B, T);
    op_attention_forward_mixed(m->be, (uint16_t *)out, lse, q, k, v, B, T, H, Hkv, D, s,
                               m->mx.cudnn_attn);
}

/* y = out W_o^T (+ b) + r for attn_fwd's output and the residual stream r (y != r). */
static void attn_proj(Model *m, float *y, const float *out, Weight w, const float *b,
                      const float *r, int n, int in, int o) {
    if (mixed_attention(m)) {
        op_linear_forward_res_mixed(m->be, y, NULL, w.h, b, r, n, in, o, (uint16_t *)out);
    } else {
        model_linear(m, y, out, w, b, n, in, o);
        op_add(m->be, y, r, (long)n * o);
    }
}

/* The projection's backward: dout (overwritten; bf16 with the bf16 attention) from dy, and
 * the weight (and bias) gradients. */
static void attn_proj_bwd(Model *m, float *dout, float *dw, float *db, const float *dy,
                          const float *out, Weight w, int n, int in, int o) {
    if (!mixed_attention(m)) {
        be_memset0(m->be, dout, sizeof(float) * (size_t)n * in);
        lin_bwd(m, dout, dw, db, dy, out, w, n, in, o);
        return;
    }
    uint16_t *dys = mx_buf(m, 1, (size_t)n, (size_t)o);
    op_linear_dx_bf16_mixed(m->be, (uint16_t *)dout, dy, w.h, n, in, o, dys); /* dys=bf16(dy) */
    op_linear_backward_mixed(m->be, NULL, dw, db, db ? dy : NULL, NULL, w.h, n, in, o, dys,
                             (uint16_t *)out);
}

/* The bf16 attention backward's workspace for a (B, T) call, grown on demand. */
static void *attn_workspace(Model *m, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const int H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    if (op_mixed_attention_workspace(B, T, H, Hkv, D) > m->mx.attn_ws_cap) {
        /* at the token capacity, as the scratch slots (the size is linear in B T) */
        const size_t ws = op_mixed_attention_workspace(m->act.B, m->act.T, H, Hkv, D);
        if (m->mx.attn_ws) be_free(m->be, m->mx.attn_ws);
        m->mx.attn_ws = be_alloc(m->be, ws);
        m->mx.attn_ws_cap = ws;
    }
    return m->mx.attn_ws;
}

static void attn_bwd(Model *m, float *dq, float *dk, float *dv, const float *dout, const float *q,
                     const float *k, const float *v, const float *out, const float *lse, int B,
                     int T) {
    const ModelConfig *c = &m->cfg;
    int H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    if (!mixed_attention(m)) {
        op_attention_backward(m->be, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, Hkv, D);
        return;
    }
    uint16_t *s = attn_scratch(m, B, T);
    op_attention_backward_mixed(m->be, dq, dk, dv, (const uint16_t *)dout, q, k, v,
                                (const uint16_t *)out, lse, B, T, H, Hkv, D, s,
                                attn_workspace(m, B, T), m->mx.cudnn_attn);
}

/* Per-layer slices of stacked tensors and activations. */
#define LW(p, l, n) ((p) ? (p) + (size_t)(l) * (n) : NULL)
/* Layer l's slice of a stacked weight matrix (model_weight). */
#define WT(m, field, l, n) MODEL_W(m, field, l, n)

/* The q, k, v products of layer l from the attention norm's output xn1 (N rows). */
static void qkv_proj(Model *m, float *q, float *k, float *v, const float *xn1, int l, int N) {
    const ModelConfig *c = &m->cfg;
    const int d = c->d_model, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    norm_proj(m, q, xn1, WT(m, wq, l, (size_t)qd * d), LW(m->w.bq, l, qd), N, d, qd);
    norm_proj(m, k, xn1, WT(m, wk, l, (size_t)kd * d), LW(m->w.bk, l, kd), N, d, kd);
    norm_proj(m, v, xn1, WT(m, wv, l, (size_t)kd * d), LW(m->w.bv, l, kd), N, d, kd);
}

/* Their backward into act.dtmp (zeroed here) and the weight and bias gradients, from the
 * gradients dq, dk, dv (fp32), or in bf16 dqb, dkb, dvb for the products (bf16 only) with
 * dq, dk, dv then read for the bias gradients alone. */
static void qkv_proj_bwd(Model *m, const float *dq, uint16_t *dqb, const float *dk, uint16_t *dkb,
                         const float *dv, uint16_t *dvb, const float *xn1, int l, int N) {
    const ModelConfig *c = &m->cfg;
    const ParamViews g = layer_grads(m, l);
    const int d = c->d_model, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    float *dx = m->act.dtmp;
    be_memset0(m->be, dx, sizeof(float) * N * d);
    norm_proj_bwd(m, dx, g.wq, g.bq, dq, dqb, xn1, WT(m, wq, l, (size_t)qd * d), N, d, qd);
    norm_proj_bwd(m, dx, g.wk, g.bk, dk, dkb, xn1, WT(m, wk, l, (size_t)kd * d), N, d, kd);
    norm_proj_bwd(m, dx, g.wv, g.bv, dv, dvb, xn1, WT(m, wv, l, (size_t)kd * d), N, d, kd);
}

/* Layer l's q, k, v products, rotary and attention (output att, lse), fp32 q, k, v kept. */
static void qkv_attn_fwd_f32(Model *m, float *q, float *k, float *v, float *att, float *lse,
                             const float *xn1, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const int N = B * T, Dh = c->head_dim;
    qkv_proj(m, q, k, v, xn1, l, N);
    op_rope_forward(m->be, q, m->act.pos, m->rope_cos, m->rope_sin, N, c->n_heads, Dh);
    op_rope_forward(m->be, k, m->act.pos, m->rope_cos, m->rope_sin, N, c->n_kv_heads, Dh);
    attn_fwd(m, att, lse, q, k, v, B, T);
}

/* Its backward, from the attention output's gradient (act.datt) into act.dtmp. */
static void qkv_attn_bwd_f32(Model *m, const float *q, const float *k, const float *v,
                             const float *att, const float *lse, const float *xn1, int l, int B,
                             int T) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    const int N = B * T, Dh = c->head_dim, H = c->n_heads, Hkv = c->n_kv_heads;
    be_memset0(m->be, a->dq, sizeof(float) * N * H * Dh);
    be_memset0(m->be, a->dk, sizeof(float) * N * Hkv * Dh);
    be_memset0(m->be, a->dv, sizeof(float) * N * Hkv * Dh);
    attn_bwd(m, a->dq, a->dk, a->dv, a->datt, q, k, v, att, lse, B, T);
    op_rope_backward(m->be, a->dq, a->pos, m->rope_cos, m->rope_sin, N, H, Dh);
    op_rope_backward(m->be, a->dk, a->pos, m->rope_cos, m->rope_sin, N, Hkv, Dh);
    qkv_proj_bwd(m, a->dq, NULL, a->dk, NULL, a->dv, NULL, xn1, l, N);
}

/* The same with q, k, v in bf16 (mx.qkv_bf16): the products' fp32 outputs land in the
 * attention scratch, rotary writes q and k in bf16 into the first halves of their buffers
 * and v is cast there, and the attention reads them as they are; the backward reads them
 * again with no casts. The same roundings as casting fp32 buffers per call: the same bits. */
static void qkv_attn_fwd(Model *m, float *q, float *k, float *v, float *att, float *lse,
                         const float *xn1, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const int N = B * T, H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    float *q32 = (float *)attn_scratch(m, B, T);
    float *k32 = q32 + (size_t)N * H * D, *v32 = k32 + (size_t)N * Hkv * D;
    qkv_proj(m, q32, k32, v32, xn1, l, N);
    const int *pos = m->act.pos;
    op_rope_bf16(m->be, (uint16_t *)q, q32, pos, m->rope_cos, m->rope_sin, N, H, D);
    op_rope_bf16(m->be, (uint16_t *)k, k32, pos, m->rope_cos, m->rope_sin, N, Hkv, D);
    op_cast_bf16(m->be, (uint16_t *)v, v32, (long)N * Hkv * D);
    op_attention_forward_bf16in(m->be, (uint16_t *)att, lse, (const uint16_t *)q,
                                (const uint16_t *)k, (const uint16_t *)v, B, T, H, Hkv, D,
                                m->mx.cudnn_attn);
}

/* Its backward: the attention's bf16 dq, dk, dv land in the scratch, rotary's backward keeps
 * them in bf16 for the products, and fp32 copies go to act.dq, dk, dv only for the biases. */
static void qkv_attn_bwd(Model *m, const float *q, const float *k, const float *v, const float *att,
                         const float *lse, const float *xn1, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    const int N = B * T, H = c->n_heads, Hkv = c->n_kv_heads, D = c->head_dim;
    uint16_t *dqb = attn_scratch(m, B, T);
    uint16_t *dkb = dqb + (size_t)N * H * D, *dvb = dkb + (size_t)N * Hkv * D;
    op_attention_backward_bf16in(m->be, dqb, dkb, dvb, (const uint16_t *)a->datt,
                                 (const uint16_t *)q, (const uint16_t *)k, (const uint16_t *)v,
                                 (const uint16_t *)att, lse, B, T, H, Hkv, D,
                                 attn_workspace(m, B, T), m->mx.cudnn_attn);
    const int bias = c->qkv_bias;
    op_rope_backward_bf16(m->be, dqb, bias ? a->dq : NULL, dqb, a->pos, m->rope_cos, m->rope_sin, N,
                          H, D);
    op_rope_backward_bf16(m->be, dkb, bias ? a->dk : NULL, dkb, a->pos, m->rope_cos, m->rope_sin, N,
                          Hkv, D);
    if (bias) op_widen_bf16(m->be, a->dv, dvb, (long)N * Hkv * D);
    qkv_proj_bwd(m, a->dq, dqb, a->dk, dkb, a->dv, dvb, xn1, l, N);
}

/* The buffers of the rows that have a target (on a GPU), made on first use. */
static void lp_alloc(Model *m) {
    Activations *a = &m->act;
    if (a->lp_idx) return;
    const size_t cap = (size_t)a->B * a->T;
    a->lp_idx = be_alloc(m->be, sizeof(int) * cap);
    a->lp_tgt = be_alloc(m->be, sizeof(int) * cap);
    a->lp_hidx = xmalloc(sizeof(int) * cap);
    a->lp_htgt = xmalloc(sizeof(int) * cap);
    a->lp_h = act_alloc(m->be, cap * m->cfg.d_model);
    a->lp_a = act_alloc(m->be, cap);
    a->lp_b = act_alloc(m->be, cap);
}

/* On a GPU, gathers the rows of a call that have a target (host targets, N rows): a->lp_n
 * of them, their rows and targets uploaded; lp_n = N (nothing gathered) when every row has
 * one, on the CPU, or without targets. */
static void lp_compact(Model *m, const int *targets, int N) {
    Activations *a = &m->act;
    a->lp_n = N;
    if (m->be == BACKEND_CPU || !targets) return;
    int n = 0;
    for (int i = 0; i < N; i++) n += targets[i] >= 0;
    if (n == N) return;
    lp_alloc(m);
    for (int i = 0, k = 0; i < N; i++)
        if (targets[i] >= 0) a->lp_hidx[k] = i, a->lp_htgt[k++] = targets[i];
    if (n > 0) {
        be_to_device(m->be, a->lp_idx, a->lp_hidx, sizeof(int) * n);
        be_to_device(m->be, a->lp_tgt, a->lp_htgt, sizeof(int) * n);
    }
    a->lp_n = n;
}

/* v (N) = 0, then v[idx[j]] = x[j] for the gathered rows (unique, so the add is a store). */
static void lp_scatter(Model *m, float *v, const float *x, int N) {
    if (!v) return;
    be_memset0(m->be, v, sizeof(float) * N);
    if (m->act.lp_n > 0) op_embedding_backward(m->be, v, x, m->act.lp_idx, m->act.lp_n, 1);
}

static void lp_fwd(Model *m, float *logp, float *entropy, const int *targets, int N) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    const float *h = a->xf;
    float *lp = logp, *ent = entropy;
    const int n = a->lp_n, d = c->d_model;
    if (n < N) { /* the lm_head on the rows with a target only */
        if (n == 0) {
            lp_scatter(m, logp, NULL, N);
            lp_scatter(m, entropy, NULL, N);
            return;
        }
        op_embedding_forward(m->be, a->lp_h, a->lp_idx, a->xf, n, d);
        h = a->lp_h, targets = a->lp_tgt, lp = a->lp_a, ent = entropy ? a->lp_b : NULL;
    }
    if (!m->mx.on) {
        op_logprob_forward(m->be, lp, ent, a->lse_out, h, WT(m, lm_head, 0, 0).f, targets, n, d,
                           c->vocab, m->logits_chunk, a->scratch);
    } else {
        op_logprob_forward_mixed(m->be, lp, ent, a->lse_out, h, WT(m, lm_head, 0, 0).h, m->mx.w16,
                                 targets, n, d, c->vocab, m->logits_chunk, a->scratch,
                                 mx_buf(m, 0, (size_t)n, (size_t)d));
        m->mx.xs_of = NULL; /* slot 0 now holds xf's copy, which no product reuses */
    }
    if (n < N) {
        lp_scatter(m, logp, lp, N);
        lp_scatter(m, entropy, ent, N);
    }
}

/* dtmp (zeroed by the caller) += the lm_head's gradient into xf; dw into g.lm_head. */
static void lp_bwd(Model *m, const float *dlogp, const float *dentropy, const int *targets, int N) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    const float *h = a->xf;
    float *dh = a->dtmp;
    const int n = a->lp_n, d = c->d_model;
    if (n < N) { /* the gathered rows, as in the forward; their dh in dx, which the trunk's
                    backward zeroes before it uses it */
        if (n == 0) return;
        op_embedding_forward(m->be, a->lp_h, a->lp_idx, a->xf, n, d);
        op_embedding_forward(m->be, a->lp_a, a->lp_idx, dlogp, n, 1);
        if (dentropy) op_embedding_forward(m->be, a->lp_b, a->lp_idx, dentropy, n, 1);
        be_memset0(m->be, a->dx, sizeof(float) * n * d);
        h = a->lp_h, dh = a->dx, targets = a->lp_tgt;
        dlogp = a->lp_a, dentropy = dentropy ? a->lp_b : NULL;
    }
    if (!m->mx.on) {
        op_logprob_backward(m->be, dh, m->g.lm_head, dlogp, dentropy, h, WT(m, lm_head, 0, 0).f,
                            targets, a->lse_out, n, d, c->vocab, m->logits_chunk, a->scratch);
    } else {
        const size_t hs = (size_t)d * (m->mx.w16 ? 2 : 1); /* bf16 (and fp16) h, per row */
        op_logprob_backward_mixed(
            m->be, dh, m->g.lm_head, dlogp, dentropy, h, WT(m, lm_head, 0, 0).h, m->mx.w16, targets,
            a->lse_out, n, d, c->vocab, m->logits_chunk, a->scratch, mx_buf(m, 0, (size_t)n, hs));
        m->mx.xs_of = NULL;
    }
    if (n < N) op_embedding_backward(m->be, a->dtmp, a->dx, a->lp_idx, n, d); /* rows back */
}

/* Host arrays into the model: used in place on the CPU, copied to dev on a GPU. */
static const void *io_in(const Model *m, void *dev, const void *host, size_t bytes) {
    if (!host || m->be == BACKEND_CPU) return host;
    be_to_device(m->be, dev, host, bytes);
    return dev;
}

/* Where the model writes an output destined for host: host itself on the CPU. */
static void *io_out(const Model *m, void *dev, void *host) {
    return !host || m->be == BACKEND_CPU ? host : dev;
}

static void io_back(const Model *m, void *host, const void *dev, size_t bytes) {
    if (host && m->be != BACKEND_CPU) be_to_host(m->be, host, dev, bytes);
}

/* The slot of x that layer l reads (l = n_layers: the final norm's input): all of them kept,
 * or two that the layers alternate. */
static size_t x_slot(const Activations *a, int l) {
    return (size_t)(l % a->x_slots);
}

/* Layer l's activations (its slot, and the k, v slot) in LayerActs. */
typedef struct {
    float *x, *xn1, *rstd1, *q, *k, *v, *att, *lse, *xm, *xn2, *rstd2, *gate, *up, *hm, *xo;
} LayerActs;

static LayerActs layer_acts(const Model *m, int l) {
    const Activations *a = &m->act;
    const size_t Ncap = (size_t)a->B * a->T, d = m->cfg.d_model, H = m->cfg.n_heads;
    const size_t s = (size_t)(l % a->kept), skv = (size_t)(l % a->kv_kept);
    LayerActs r = {
        .x = a->x + x_slot(a, l) * Ncap * d,
        .xn1 = a->xn1 + s * a->ld_xn,
        .rstd1 = a->rstd1 + s * Ncap,
        .q = a->q + s * a->ld_q,
        .k = a->k + skv * a->ld_kv,
        .v = a->v + skv * a->ld_kv,
        .att = a->att + s * a->ld_att,
        .lse = a->lse + s * Ncap * H,
        .xm = a->x_mid + s * Ncap * d,
        .xn2 = a->xn2 + s * a->ld_xn,
        .rstd2 = a->rstd2 + s * Ncap,
        .gate = a->gate + s * a->ld_mlp,
        .up = a->up + s * a->ld_mlp,
        .hm = a->hmlp + s * a->ld_mlp,
        .xo = a->x + x_slot(a, l + 1) * Ncap * d,
    };
    return r;
}

/* Layer l's forward for a (B, T) call: from its input x to the next layer's. */
static void layer_fwd(Model *m, int l, int B, int T) {
    if (m->ws.win) gather_layer(m, l);
    const ModelConfig *c = &m->cfg;
    const Backend be = m->be;
    const int N = B * T, d = c->d_model, F = c->d_ff, qd = c->n_heads * c->head_dim;
    const LayerActs t = layer_acts(m, l);
    norm_fwd(m, t.xn1, t.rstd1, t.x, LW(m->w.attn_norm, l, d), N);
    if (m->mx.qkv_bf16)
        qkv_attn_fwd(m, t.q, t.k, t.v, t.att, t.lse, t.xn1, l, B, T);
    else
        qkv_attn_fwd_f32(m, t.q, t.k, t.v, t.att, t.lse, t.xn1, l, B, T);
    attn_proj(m, t.xm, t.att, WT(m, wo, l, (size_t)d * qd), LW(m->w.bo, l, d), t.x, N, qd, d);
    norm_fwd(m, t.xn2, t.rstd2, t.xm, LW(m->w.mlp_norm, l, d), N);
    if (m->mx.on) { /* gate, up and h only meet SwiGLU and products: bf16 in the first half of
                       their buffers */
        uint16_t *gb = (uint16_t *)t.gate, *ub = (uint16_t *)t.up, *xb = (uint16_t *)t.xn2;
        op_linear_forward_bf16_mixed(be, gb, xb, WT(m, w_gate, l, (size_t)F * d).h, N, d, F);
        op_linear_forward_bf16_mixed(be, ub, xb, WT(m, w_up, l, (size_t)F * d).h, N, d, F);
        op_swiglu_forward_bf16in(be, (uint16_t *)t.hm, gb, ub, (long)N * F);
        op_linear_forward_res_mixed(be, t.xo, NULL, WT(m, w_down, l, (size_t)d * F).h, NULL, t.xm,
                                    N, F, d, (uint16_t *)t.hm); /* xo = .. + xm */
    } else {
        norm_proj(m, t.gate, t.xn2, WT(m, w_gate, l, (size_t)F * d), NULL, N, d, F);
        norm_proj(m, t.up, t.xn2, WT(m, w_up, l, (size_t)F * d), NULL, N, d, F);
        op_swiglu_forward(be, t.hm, t.gate, t.up, (long)N * F);
        model_linear(m, t.xo, t.hm, WT(m, w_down, l, (size_t)d * F), NULL, N, F, d);
        op_add(be, t.xo, t.xm, (long)N * d);
    }
}

void model_embed(Model *m, float *x, const int *tokens, int n) {
    if (m->mx.on)
        op_embedding_forward_bf16(m->be, x, tokens, MODEL_W(m, embed, 0, 0).h, n, m->cfg.d_model);
    else
        op_embedding_forward(m->be, x, tokens, m->w.embed, n, m->cfg.d_model);
}

static void forward(Model *m, const int *tokens, const int *targets, int B, int T, float *logp,
                    float *entropy) {
    const ModelConfig *c = &m->cfg;
    model_refresh_weights(m);
    Activations *a = &m->act;
    Backend be = m->be;
    /* any (B, T) that fits the token capacity: per-layer strides use the capacity */
    CHECK((size_t)B * T <= (size_t)a->B * a->T && T <= c->max_pos);
    int N = B * T, d = c->d_model;
    size_t Ncap = (size_t)a->B * a->T;
    int *pos = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) pos[i] = i % T;
    be_to_device(be, a->pos, pos, sizeof(int) * N);
    free(pos);

    model_embed(m, a->x, tokens, N);
    for (int l = 0; l < c->n_layers; l++) layer_fwd(m, l, B, T);
    op_rmsnorm_forward(be, a->xf, a->rstdf, a->x + x_slot(a, c->n_layers) * Ncap * d,
                       m->w.final_norm, N, d, c->norm_eps);
    lp_fwd(m, logp, entropy, targets, N);
}

void model_forward(Model *m, const int *tokens, const int *targets, int B, int T, float *logp,
                   float *entropy) {
    Activations *a = &m->act;
    size_t N = (size_t)B * T;
    CHECK(N <= (size_t)a->B * a->T);
    float *lp = io_out(m, a->io_a, logp), *ent = io_out(m, a->io_b, entropy);
    lp_compact(m, targets, (int)N);
    forward(m, io_in(m, a->io_tok, tokens, sizeof(int) * N),
            io_in(m, a->io_tgt, targets, sizeof(int) * N), B, T, lp, ent);
    io_back(m, logp, lp, sizeof(float) * N);
    io_back(m, entropy, ent, sizeof(float) * N);
}

static void backward_trunk(Model *m, const int *tokens, int B, int T);

void model_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                    const float *dlogp, const float *dentropy) {
    Activations *a = &m->act;
    size_t n = (size_t)B * T;
    lp_compact(m, targets, (int)n);
    tokens = io_in(m, a->io_tok, tokens, sizeof(int) * n);
    targets = io_in(m, a->io_tgt, targets, sizeof(int) * n);
    dlogp = io_in(m, a->io_a, dlogp, sizeof(float) * n);
    dentropy = io_in(m, a->io_b, dentropy, sizeof(float) * n);
    const ModelConfig *c = &m->cfg;
    Backend be = m->be;
    CHECK(model_has_grads(m));
    int N = B * T, d = c->d_model;

    /* head: dtmp = dL/dxf */
    zero_window(m, -1);
    be_memset0(be, a->dtmp, sizeof(float) * N * d);
    lp_bwd(m, dlogp, dentropy, targets, N);
    backward_trunk(m, tokens, B, T);
}

void model_values(Model *m, int B, int T, float *values) {
    CHECK(m->cfg.value_head);
    float *vals = io_out(m, m->act.io_a, values);
    op_linear_forward(m->be, vals, m->act.xf, m->w.value_w, m->w.value_b, B * T, m->cfg.d_model, 1);
    io_back(m, values, vals, sizeof(float) * B * T);
}

void model_backward_values(Model *m, const int *tokens, int B, int T, const float *dvalues) {
    CHECK(m->cfg.value_head && model_has_grads(m));
    int N = B * T, d = m->cfg.d_model;
    tokens = io_in(m, m->act.io_tok, tokens, sizeof(int) * N);
    dvalues = io_in(m, m->act.io_a, dvalues, sizeof(float) * N);
    zero_window(m, -1);
    be_memset0(m->be, m->act.dtmp, sizeof(float) * N * d);
    op_linear_backward(m->be, m->act.dtmp, m->g.value_w, m->g.value_b, dvalues, m->act.xf,
                       m->w.value_w, N, d, 1);
    backward_trunk(m, tokens, B, T);
}

/* The MLP's backward in fp32: dtmp = dL/dxn2 from dx, with the weight gradients. */
static void mlp_backward(Model *m, int l, const float *gate, const float *up, const float *hm,
                         const float *xn2, int N) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    Backend be = m->be;
    const ParamViews g = layer_grads(m, l);
    const int d = c->d_model, F = c->d_ff;
    be_memset0(be, a->dh, sizeof(float) * N * F);
    lin_bwd(m, a->dh, g.w_down, NULL, a->dx, hm, WT(m, w_down, l, (size_t)d * F), N, F, d);
    be_memset0(be, a->dgate, sizeof(float) * N * F);
    be_memset0(be, a->dup, sizeof(float) * N * F);
    op_swiglu_backward(be, a->dgate, a->dup, a->dh, gate, up, (long)N * F);
    be_memset0(be, a->dtmp, sizeof(float) * N * d);
    norm_proj_bwd(m, a->dtmp, g.w_gate, NULL, a->dgate, NULL, xn2, WT(m, w_gate, l, (size_t)F * d),
                  N, d, F);
    norm_proj_bwd(m, a->dtmp, g.w_up, NULL, a->dup, NULL, xn2, WT(m, w_up, l, (size_t)F * d), N, d,
                  F);
}

/* The same in bf16: dh comes out of its product in bf16, SwiGLU's backward reads the forward's
 * bf16 gate and up and writes dgate and dup in bf16 (their buffers half size),
 * and the products take them and the forward's bf16 h as they are: no fp32 dh, dgate, dup, no
 * zeroing, no casts. */
static void mlp_backward_bf16(Model *m, int l, const float *gate, const float *up, float *hm,
                              const float *xn2, int N) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    const ParamViews g = layer_grads(m, l);
    const int d = c->d_model, F = c->d_ff;
    uint16_t *dhb = (uint16_t *)a->dh, *dgb = (uint16_t *)a->dgate, *dub = (uint16_t *)a->dup;
    uint16_t *dys = mx_buf(m, 1, (size_t)N, (size_t)d);
    const uint16_t *wd = WT(m, w_down, l, (size_t)d * F).h;
    op_linear_dx_bf16_mixed(m->be, dhb, a->dx, wd, N, F, d, dys); /* dys = bf16(dx) */
    op_linear_backward_mixed(m->be, NULL, g.w_down, NULL, NULL, NULL, wd, N, F, d, dys,
                             (uint16_t *)hm);
    op_swiglu_backward_bf16in(m->be, dgb, dub, dhb, (const uint16_t *)gate, (const uint16_t *)up,
                              (long)N * F);
    be_memset0(m->be, a->dtmp, sizeof(float) * N * d);
    norm_proj_bwd(m, a->dtmp, g.w_gate, NULL, NULL, dgb, xn2, WT(m, w_gate, l, (size_t)F * d), N, d,
                  F);
    norm_proj_bwd(m, a->dtmp, g.w_up, NULL, NULL, dub, xn2, WT(m, w_up, l, (size_t)F * d), N, d, F);
}

/* From dL/dxf (in act.dtmp) down through the final norm, the layers and the embedding. */
static void backward_trunk(Model *m, const int *tokens, int B, int T) {
    const ModelConfig *c = &m->cfg;
    Activations *a = &m->act;
    Backend be = m->be;
    int N = B * T, d = c->d_model, qd = c->n_heads * c->head_dim;
    size_t Ncap = (size_t)a->B * a->T;
    const ParamViews *w = &m->w;
    be_memset0(be, a->dx, sizeof(float) * N * d);
    op_rmsnorm_backward(be, a->dx, m->g.final_norm, a->dtmp,
                        a->x + x_slot(a, c->n_layers) * Ncap * d, w->final_norm, a->rstdf, N, d);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        if (a->recompute)
            layer_fwd(m, l, B, T); /* its slot again, from its input x (and weights) */
        else if (m->ws.win)
            gather_layer(m, l); /* ZeRO-3: its weights again */
        const LayerActs t = layer_acts(m, l);
        const ParamViews g = layer_grads(m, l);
        zero_window(m, l);
        /* MLP: x_{l+1} = x_mid + W_down swiglu(W_gate xn2, W_up xn2); dx flows through the
         * residual unchanged and gains the norm's contribution */
        if (m->mx.on)
            mlp_backward_bf16(m, l, t.gate, t.up, t.hm, t.xn2, N);
        else
            mlp_backward(m, l, t.gate, t.up, t.hm, t.xn2, N);
        op_rmsnorm_backward(be, a->dx, g.mlp_norm, a->dtmp, t.xm, LW(w->mlp_norm, l, d), t.rstd2, N,
                            d);
        /* attention: x_mid = x + W_o attn(rope(W_q xn1), rope(W_k xn1), W_v xn1) */
        attn_proj_bwd(m, a->datt, g.wo, g.bo, a->dx, t.att, WT(m, wo, l, (size_t)d * qd), N, qd, d);
        if (m->mx.qkv_bf16)
            qkv_attn_bwd(m, t.q, t.k, t.v, t.att, t.lse, t.xn1, l, B, T);
        else
            qkv_attn_bwd_f32(m, t.q, t.k, t.v, t.att, t.lse, t.xn1, l, B, T);
        op_rmsnorm_backward(be, a->dx, g.attn_norm, a->dtmp, t.x, LW(w->attn_norm, l, d), t.rstd1,
                            N, d);
        grads_final(m, l);
    }
    op_embedding_backward(be, m->g.embed, a->dx, tokens, N, d);
    grads_final(m, -1);
}
