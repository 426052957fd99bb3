/* The Llama-family decoder (llama, qwen2, mistral): its configuration, its parameters in
 * one flat buffer (gradients and optimizer state share the layout), the activations sized
 * once for the largest batch, and the forward to per-token log-probs and its backward. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../runtime/backend.h"

typedef struct {
    char model_type[32]; /* "llama", "qwen2" or "mistral" */
    int vocab, d_model, n_layers, n_heads, n_kv_heads, head_dim, d_ff, max_pos;
    float norm_eps, rope_theta;
    int qkv_bias;    /* bias on q/k/v projections (qwen2 always, llama with attention_bias) */
    int o_bias;      /* bias on o_proj (llama with attention_bias) */
    int tied;        /* lm_head shares the embedding matrix */
    int rope_llama3; /* llama3 frequency scaling, with the four values below */
    float rs_factor, rs_low_freq, rs_high_freq;
    int rs_orig_max_pos;
    int sliding_window;         /* 0 when attention sees the whole sequence */
    int value_head;             /* a critic: scalar head (value_w, value_b) after the LM layout */
    int bos_id, eos_id, pad_id; /* -1 when absent */
} ModelConfig;

/* Views into the flat parameter buffer (or a gradient / optimizer buffer of the same layout).
 * Stacked per-layer tensors carry the layer as the first dimension. Bias pointers are NULL
 * when the config has no such bias. */
typedef struct {
    float *embed;      /* (V, d) */
    float *attn_norm;  /* (L, d) */
    float *wq, *bq;    /* (L, Hq*Dh, d), (L, Hq*Dh) */
    float *wk, *bk;    /* (L, Hkv*Dh, d), (L, Hkv*Dh) */
    float *wv, *bv;    /* (L, Hkv*Dh, d), (L, Hkv*Dh) */
    float *wo, *bo;    /* (L, d, Hq*Dh), (L, d) */
    float *mlp_norm;   /* (L, d) */
    float *w_gate;     /* (L, F, d) */
    float *w_up;       /* (L, F, d) */
    float *w_down;     /* (L, d, F) */
    float *final_norm; /* (d) */
    float *lm_head;    /* (V, d); equals embed when tied */
    float *value_w;    /* (1, d), critics only */
    float *value_b;    /* (1), critics only */
} ParamViews;

/* Where each tensor starts in the flat layout, in floats (0 for an absent bias). */
typedef struct {
    size_t embed, attn_norm, wq, bq, wk, bk, wv, bv, wo, bo, mlp_norm, w_gate, w_up, w_down,
        final_norm, lm_head, value_w, value_b;
} ParamOffsets;

/* A weight matrix (or one layer's slice of a stacked one) as the products take it: its fp32
 * values (NULL where the model keeps its matrices in bf16 alone, w16_only) and, once the model
 * is bf16, its bf16 copy (NULL before). */
typedef struct {
    const float *f;
    const uint16_t *h;
} Weight;

/* Activations for a batch of up to B x T tokens, kept for the backward. A forward-only model
 * (model_init_forward_only) keeps one layer's: the (L, ...) arrays have one slot that every
 * layer reuses, and x two that the layers alternate. A recomputing model (MODEL_RECOMPUTE,
 * gradient checkpointing) keeps every layer's input x, and k and v (generation's prefill
 * copies them into its cache), and one slot of the rest, which its backward fills again by
 * running each layer's forward once more: the same values, so the same gradients, bit for
 * bit. */
typedef struct {
    int B, T;                /* capacity */
    int kept;                /* layers whose activations are kept: n_layers, or 1 */
    int kv_kept;             /* layers whose k and v are kept: as kept, or n_layers (recompute) */
    int x_slots;             /* slots of x: kept + 1, or n_layers + 1 (recompute) */
    int recompute;           /* a backward reruns each layer's forward from its input x */
    float *x;                /* (L+1, B*T, d) residual stream entering each layer, then the final */
    float *xn1, *rstd1;      /* (L, B*T, d), (L, B*T) attention-norm output and 1/rms */
    float *q, *k, *v;        /* (L, B*T, Hq*Dh), (L, B*T, Hkv*Dh) x2, after rotary */
    float *att, *lse;        /* (L, B*T, Hq*Dh), (L, B, Hq, T) */
    float *x_mid;            /* (L, B*T, d) residual after attention */
    float *xn2, *rstd2;      /* (L, B*T, d), (L, B*T) */
    float *gate, *up, *hmlp; /* (L, B*T, F) each */
    float *xf, *rstdf;       /* (B*T, d), (B*T) final norm */
    float *lse_out;          /* (B*T) lm_head log-sum-exp (on a GPU, of the gathered rows) */
    /* on a GPU, the rows that have a target, gathered for the lm_head (the CPU kernels skip the
     * others themselves): the product then leaves out prompts, padding and target-less calls */
    int lp_n;                  /* rows with a target; B*T for no gathering */
    int *lp_idx, *lp_tgt;      /* (B*T) device: those rows and their targets */
    int *lp_hidx, *lp_htgt;    /* (B*T) the same on the host */
    float *lp_h, *lp_a, *lp_b; /* (B*T, d), (B*T) x 2 device, made on demand */
    int *pos;                  /* (B*T) positions */
    float *scratch;            /* (chunk, V) logits chunk, reused */
    /* on a GPU, the host arrays of the model's interface pass through these (B*T each) */
    int *io_tok, *io_tgt;
    float *io_a, *io_b;
    /* backward scratch */
    float *dx, *dtmp, *dq, *dk, *dv, *datt, *dgate, *dup, *dh; /* sized for one layer */
    /* floats from one layer's slot to the next in xn1 and xn2, q, k and v, att, and gate, up
     * and hmlp: the capacity B*T times the width, or half that where a bf16 model keeps the
     * slot in bf16 alone (model_use_bf16) */
    size_t ld_xn, ld_q, ld_kv, ld_att, ld_mlp;
} Activations;

/* Mixed precision (model_use_bf16): bf16 copies of the weights and of the activations go
 * into the matrix products and attention, everything else stays fp32, except what only feeds
 * products and so exists only in bf16 (in a buffer of half the fp32 size): the outputs of
 * the norms before q/k/v and before gate/up (xn1, xn2), the gate and up products, the MLP's
 * hidden activation and its gradients, and, with the bf16 attention (head dim 64 or 128), the
 * attention's output and its gradient (att, datt) and its inputs q, k, v after rotary (the
 * products' fp32 outputs pass through the attention scratch, buf[2], and rotary writes bf16;
 * DENSERL_QKV_BF16=0 keeps them in fp32 and casts them for each attention call instead). */
typedef struct {
    int on;
    int cudnn_attn;     /* attention through cuDNN's fused kernels instead of the hand-written */
    int attn_bf16;      /* the bf16 attention (head dim 64 or 128, and for the hand-written
                         * kernels enough shared memory per block), else the fp32 one */
    int qkv_bf16;       /* with the bf16 attention: q, k, v kept in bf16 after rotary (below) */
    uint16_t *w;        /* (n_params) bf16 copy of params, remade when stale */
    uint16_t *w16;      /* (vocab, d) fp16 copy of the lm_head for fp16 logits, or NULL */
    int stale;          /* params changed since w was made */
    uint16_t *buf[3];   /* activation copies: product input, product output gradient, attention */
    size_t cap[3];      /* their sizes in elements */
    const float *xs_of; /* the input whose copy buf[0] holds (n_xs elements), or NULL */
    size_t n_xs;
    void *attn_ws; /* attention backward workspace */
    size_t attn_ws_cap;
} MixedState;

/* ZeRO-2's gradients (model_shard_grads): no whole buffer. The backward writes a layer's
 * gradients into one of two slots, which the layers take in turn, and those of the tensors
 * outside the layers into a third window; as each is final it is summed over ranks into its
 * owners (dist_reduce_scatter_window), and each rank adds its part to acc, its range [lo, hi)
 * of the flat layout, which gathers the calls' sums until the update. */
typedef struct {
    float *win; /* slot 0, slot 1 (Model.win_slot floats each), then Model.win_rest floats */
    float *acc; /* (hi - lo) */
    size_t lo, hi;
} GradShard;

/* ZeRO-3 for a bf16 model (MODEL_W16_SHARDED): no whole bf16 copy. Each rank keeps its range
 * [lo, hi) of the flat layout in bf16; a forward or backward gathers each layer's matrices
 * from the ranks into one of two slots just before the layer runs; the tensors outside the
 * layers stay whole, in a third window. */
typedef struct {
    uint16_t *win;   /* slot 0, slot 1 (Model.win_slot elements each), then Model.win_rest */
    uint16_t *shard; /* (hi - lo) */
    size_t lo, hi;
} WeightShard;

/* Called by the backward as gradients become final (model_set_grad_ready). */
typedef void (*ModelGradReady)(void *ctx, int layer);

typedef struct Model {
    ModelConfig cfg;
    Backend be;
    MixedState mx;
    size_t n_params;
    float *params; /* (n_params) */
    float *grads;  /* (n_params), allocated by model_alloc_grads; NULL under ZeRO-2 (gs) */
    GradShard gs;  /* ZeRO-2's windows and range (gs.acc NULL: none) */
    size_t win_slot, win_rest; /* windows' (gs, ws) slot, rest: a layer's elements; the others' */
    WeightShard ws;            /* ZeRO-3's bf16 weights (ws.win NULL: none; mx.w then NULL) */
    int w16_sharded;           /* made with MODEL_W16_SHARDED: model_use_bf16 makes ws, not mx.w */
    ParamViews w, g;
    ParamOffsets off; /* the matrices' places, for their bf16 copies (model_weight) */
    int w16_only;  /* params holds no matrices, only what the kernels read in fp32: 1, or 2 without
                    * an untied lm_head too (model_param_count_w16) */
    float *master; /* with a sharded master: fp32 of [master_lo, master_hi) of the layout */
    size_t master_lo, master_hi;
    float *rope_cos, *rope_sin; /* (max_pos, Dh/2) */
    Activations act;
    int logits_chunk;
    ModelGradReady grad_ready; /* NULL unless a gradient all-reduce overlaps the backward */
    void *grad_ready_ctx;
    const struct Model *act_of; /* the model whose activations this one uses (model_init_shared) */
    const struct Model *grads_of; /* the model whose gradient buffer this one uses */
} Model;

/* Checks a config for internal consistency (positive sizes, heads divide, ...). */
int model_config_validate(const ModelConfig *c, const char *what);
/* Number of parameters the config implies, and pointers into buf laid out in order. */
size_t model_param_count(const ModelConfig *c);
/* The fp32 parameters a w16_only model of this level keeps: 1 for a bf16 reference (its layers'
 * weight matrices in bf16 alone), 2 for model_shard_master (an untied lm_head too). */
size_t model_param_count_w16(const ModelConfig *c, int level);
void model_param_views(const ModelConfig *c, float *buf, ParamViews *v);

/* The flat-buffer ranges [lo[i], hi[i]) holding layer l's parameters, or with l = -1 every
 * parameter outside the layers (embedding, final norm, lm_head, value head); returns how
 * many (at most MODEL_MAX_RANGES). Over l = -1 .. n_layers-1 they cover the buffer exactly
 * once. */
enum { MODEL_MAX_RANGES = 16 };
int model_param_ranges(const Model *m, int layer, size_t *lo, size_t *hi);
/* While fn is set, model_backward and model_backward_values call fn(ctx, l) as soon as
 * layer l's gradients are final for the backward in progress (l = n_layers-1 down to 0),
 * then fn(ctx, -1) when the rest are. NULL clears it. */
void model_set_grad_ready(Model *m, ModelGradReady fn, void *ctx);

/* Allocates parameters (zeroed) and activations for up to B x T tokens. */
void model_init(Model *m, const ModelConfig *c, Backend be, int B, int T);
/* The same for a model that only runs forwards (a frozen reference): activations of one
 * layer instead of all, the same results; model_backward and gradients are refused. */
void model_init_forward_only(Model *m, const ModelConfig *c, Backend be, int B, int T);
/* model_init (keep, below: model_init_forward_only for MODEL_FORWARD_ONLY) and, with
 * bf16_attention set ("flash" or
 * "cudnn"), model_use_bf16 with that attention, the activations made at once at the sizes a bf16
 * model keeps (model_use_bf16 after a plain model_init makes them at fp32 sizes first, which at
 * large calls holds twice their memory for a moment). DR_ERR, nothing allocated, where bf16
 * cannot run (model_use_bf16's errors). */
int model_init_precision(Model *m, const ModelConfig *c, Backend be, int B, int T, int keep,
                         const char *bf16_attention);
/* model_init_precision's keep: every layer's activations, one layer's (forward only), or the
 * recomputing layout (above). */
enum { MODEL_KEEP_ALL = 0, MODEL_FORWARD_ONLY = 1, MODEL_RECOMPUTE = 2 };
/* Added to keep (bf16 only): params compact from the start, as a w16_only model of that level
 * keeps them (see model_init_shared). */
#define MODEL_W16_LEVEL(level) ((level)*16)
/* Or-ed into a w16 level (bf16, several ranks): ZeRO-3, the bf16 copy made as this rank's range
 * and the windows (WeightShard) instead of whole. */
#define MODEL_W16_SHARDED 4
/* Whether a model of config c on be can run in bf16 with this attention: DR_ERR with
 * model_use_bf16's error if not. */
int model_bf16_check(const ModelConfig *c, Backend be, const char *attention);
/* The bf16_attention argument for a run's precision ("fp32" or "bf16") and attention (NULL
 * meaning "flash"): NULL for fp32. */
const char *model_bf16_attention(const char *precision, const char *attention);
/* The same as model_init, with the activations of lender (and, once this model has gradients,
 * its backward's scratch) instead of its own: for models whose calls never come between the
 * lender's forward and its backward, nor the lender's between theirs (the RL step runs each
 * model's forward and backward back to back), so that one model's activations serve all. The
 * lender's capacity bounds this model's calls; the lender must have its gradients first if
 * this model will, and must outlive it. w16_level > 0 makes params compact at once, as a
 * w16_only model of that level keeps them (model_param_count_w16): the model then needs
 * model_use_bf16 and model_params_from_full before its first call, and never holds a whole
 * fp32 copy. */
void model_init_shared(Model *m, const ModelConfig *c, Model *lender, int w16_level);
/* Whether m's activations serve a backward (every layer's kept, or recomputed). */
int model_trainable(const Model *m);
void model_free(Model *m);
void model_alloc_grads(Model *m);
/* Gives m owner's gradient buffer (owner has at least m's parameters) instead of one of its
 * own, and the backward's scratch as model_alloc_grads does: for models whose updates never
 * overlap (each zeroes the buffer, fills it and takes its optimizer step before the other
 * starts; the RL step's PRM and policy updates are such). owner must outlive m. */
void model_share_grads(Model *m, Model *owner);
void model_zero_grads(Model *m);
/* ZeRO-2: instead of a whole gradient buffer (freed if m has one), the windows and this rank's
 * range [lo, hi) of the summed gradients (GradShard); lo, hi must be m's AdamW range. Every
 * backward then takes part in one window sum per layer range and one for the rest, so every
 * rank must run the same number of backwards between updates: a rank with fewer calls runs
 * model_backward_skip for each missing one. model_zero_grads zeroes the range. */
void model_shard_grads(Model *m, size_t lo, size_t hi);
/* A model made at a w16 level with MODEL_W16_SHARDED (ZeRO-3) keeps its bf16 copy as its
 * range [lo, hi) of the flat layout (dist_shard) and the windows (WeightShard); every forward
 * and backward gathers each layer from the ranks, so every rank must run the same number of
 * them: a rank with fewer calls runs model_forward_skip (and model_backward_skip) for each
 * missing one. A forward that computes nothing: under ZeRO-3 the layers' gathers; otherwise
 * nothing. */
void model_forward_skip(Model *m);
/* Whether m's backwards (ZeRO-2) or forwards (ZeRO-3) take part in collectives. */
int model_backward_collective(const Model *m);
int model_forward_collective(const Model *m);
/* Whether m has gradients: a whole buffer or ZeRO-2's. */
int model_has_grads(const Model *m);
/* A backward that adds nothing: under ZeRO-2 the window sums of a backward with zero
 * gradients, under ZeRO-3 its layers' gathers (the other ranks' calls go on); otherwise
 * nothing. */
void model_backward_skip(Model *m);
/* Device scratch for gathering a sharded master or optimizer state a chunk at a time: the
 * whole gradient buffer (n_params floats) or ZeRO-2's windows; its length in *len. Its contents
 * are left unspecified, so only between an update and the next backward. */
float *model_gather_scratch(const Model *m, size_t *len);
/* Switches the model to mixed precision (CUDA only; DR_ERR otherwise): fp32 master weights,
 * bf16 copies in the products, attention (head dim 64 or 128; others stay fp32) and lm_head.
 * attention: "flash" (or NULL) the hand-written kernels, "cudnn" cuDNN's fused attention
 * (DR_ERR where cuDNN cannot run it or the head dim is not 64 or 128). */
int model_use_bf16(Model *m, const char *attention);
/* The choices model_use_bf16 makes for config c and attention ("flash", "cudnn" or NULL),
 * DENSERL_QKV_BF16 and DENSERL_LOGITS included: the bf16 attention, q, k, v kept in bf16, and
 * fp16 logits; for plans made before the model exists (memplan.c). */
typedef struct {
    int attn_bf16, qkv_bf16, logits16;
} MixedFlags;
MixedFlags model_mixed_flags(const ModelConfig *c, const char *attention);
/* Whether a bf16 model keeps an activation slot of this width, where it holds bf16 alone, at
 * half its fp32 size: when the width keeps every layer's slot 16-byte aligned for the bf16
 * kernels' vector accesses (a multiple of 8). */
int model_bf16_halves(size_t width);
/* Sets a's slot strides (ld_*) for N tokens: fp32-sized, or with mx those a bf16 model with
 * these flags keeps in bf16 alone at half, where model_bf16_halves allows; what the model's
 * activations and backward scratch are made with (and the memory plan counts). */
void model_act_layout(Activations *a, const ModelConfig *c, size_t N, const MixedFlags *mx);
/* Must follow every change of m->params made outside the model (optimizer steps, copies)
 * so that the bf16 copy is remade before the next forward. */
void model_params_changed(Model *m);
/* x (n, d_model) = the embedding's rows of the tokens (device memory on a GPU): in bf16 they
 * are read from the bf16 copy, so a bf16 model needs no fp32 embedding to run. */
void model_embed(Model *m, float *x, const int *tokens, int n);
/* y (n, out) = x (n, in) W^T + b with W, b pointers into this model's parameters, in the
 * model's precision; for generation's steps. model_linear_again is the same for a product
 * that takes the input of the model_linear (or model_linear_again) call just before, unchanged
 * since: in bf16 it reuses that call's copy of x instead of casting it again. */
void model_linear(Model *m, float *y, const float *x, Weight w, const float *b, int n, int in,
                  int out);
void model_linear_again(Model *m, float *y, const float *x, Weight w, const float *b, int n, int in,
                        int out);
/* Remakes the bf16 weight copy if it is stale (done by every forward; generation calls it
 * before its steps). */
void model_refresh_weights(Model *m);
/* Makes the fp32 master weights this rank's range [lo, hi) of the flat layout (ZeRO's shard,
 * which this rank's AdamW updates), from range (those hi - lo fp32 values on the device), and
 * params compact (w16_only 2; a whole model's copies are remade from its params first): a
 * bf16 model that trains keeps 4 bytes a parameter of the weight matrices less, less the
 * shard. Its optimizer step then updates the shard, gathers the whole a chunk at a time and
 * remakes the copies from it (model_gather_master). */
void model_shard_master(Model *m, const float *range, size_t lo, size_t hi);
/* dst's parameters and copies (bf16 dst, whole or compact, at least src's parameters; those
 * beyond left as they are) from src's sharded master, gathered a chunk at a time through src's
 * model_gather_scratch: src's values without a whole fp32 copy of them. Every rank calls it. */
void model_fill_from_master(Model *dst, const Model *src);
/* The bf16 copies and params' tensors from full, a device buffer of all n_params fp32 values. */
void model_params_from_full(Model *m, const float *full);
/* The same for elements [at, at + len) of the layout, which buf holds. */
void model_params_from_range(Model *m, const float *buf, size_t at, size_t len);
/* After an update of a sharded master: every rank's range gathered a chunk at a time through
 * model_gather_scratch, and the copies remade from it. Every rank calls it. */
void model_gather_master(Model *m);
/* All n_params parameters into host memory in the flat layout; for a w16_only model the
 * layers' matrices come from their bf16 copy, so that a model made from them casts to the
 * same bf16 and computes the same. With a sharded master every rank must call it (the shards
 * gather in the gradient buffer, whose contents it leaves unspecified); host may then be NULL
 * on all but rank 0. */
void model_params_to_host(const Model *m, float *host);
/* The inverse, on every rank: all n_params from host (the gradient buffer again as scratch
 * for a sharded master). */
void model_params_from_host(Model *m, const float *host);
/* Layer l's slice (n elements a layer; l = 0 and n = 0 for a whole tensor) of the weight
 * matrix at offset off of the flat layout (ParamOffsets). */
Weight model_weight(const Model *m, size_t off, size_t l, size_t n);
#define MODEL_W(m, field, l, n) model_weight((m), (m)->off.field, (size_t)(l), (size_t)(n))

/* Random init as for training from scratch: normal(0, std) matrices, ones for norms,
 * zero biases; drawn with Philox from seed so every backend gets the same weights. */
void model_init_random(Model *m, unsigned long long seed, float std);

/* The arrays of this interface (tokens, targets, logp, entropy, dlogp, dentropy, values,
 * dvalues) are host memory on every backend; on a GPU they are copied through device
 * buffers of the activations.
 *
 * Forward over tokens (B, T) (row-major, right-padded; padding is harmless since attention
 * is causal). targets (B, T): the token whose log-prob to return at each position, < 0 to
 * skip. Writes logp (B, T) and, if entropy is not NULL, entropy (B, T). B * T must fit the
 * capacity given to model_init and T the context. Column t of logp is log p(targets[t] |
 * tokens[..t]). */
void model_forward(Model *m, const int *tokens, const int *targets, int B, int T, float *logp,
                   float *entropy);
/* Backward of the last forward, given dL/dlogp (B, T) (and dL/dentropy or NULL);
 * accumulates into m->grads. */
void model_backward(Model *m, const int *tokens, const int *targets, int B, int T,
                    const float *dlogp, const float *dentropy);
/* Critics (cfg.value_head): values (B, T) from the last forward's final hidden states, and
 * the backward of a loss given dL/dvalues (B, T). */
void model_values(Model *m, int B, int T, float *values);
void model_backward_values(Model *m, const int *tokens, int B, int T, const float *dvalues);
