/* A PRIME run's memory from its shapes (memplan.h). Each term names the allocation it mirrors;
 * where a buffer's size depends on the calls made (the bf16 scratch slots, the kernels'
 * scratch), the term takes the largest those calls can ask for. */
#include "memplan.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "prime.h"
#include "../runtime/error.h"
#include "../runtime/ops_mixed.h"

/* The run's precision settings, as model_use_bf16 and generator_init will take them. */
typedef struct {
    int bf16, attn_bf16, qkv_bf16, logits16;
} Precision;

static Precision precision_of(const RunConfig *rc, const ModelConfig *c) {
    Precision p = {0, 0, 0, 0};
    if (strcmp(rc->precision, "bf16") != 0) return p;
    const MixedFlags f = model_mixed_flags(c, rc->attention);
    p.bf16 = 1, p.attn_bf16 = f.attn_bf16, p.qkv_bf16 = f.qkv_bf16, p.logits16 = f.logits16;
    return p;
}

static double max3(double a, double b, double c) {
    const double m = a > b ? a : b;
    return m > c ? m : c;
}

/* Rows of the logits chunk (activations_init). */
static double logits_chunk(Backend be, double V, double N) {
    double chunk = (double)(size_t)((be == BACKEND_CPU ? 1 << 22 : 1 << 26) / (size_t)V);
    if (chunk < 1) chunk = 1;
    return chunk > N ? N : chunk;
}

/* One model with activations for B rows of T tokens: kept layers (all, or 1 for a forward-only
 * model; 0 where they are another model's, model_init_shared), with gradients and AdamW state
 * over `shards` ranks if it trains (trains 2: its gradients in another model's buffer,
 * model_share_grads); at ZeRO stage zero 2 or more a trained model's gradients are sharded too
 * (model_shard_grads), at 3 its bf16 weights (MODEL_W16_SHARDED: the callers pass 3 only where
 * the model is made so). */
static void plan_model(MemPlan *p, const ModelConfig *c, Backend be, Precision pr, double B,
                       double T, int kept, int trains, int shards, int zero, int recompute) {
    const double P = (double)model_param_count(c), N = B * T, L = kept > 0 ? kept : 1;
    const double d = c->d_model, F = c->d_ff, V = c->vocab, H = c->n_heads;
    const double qd = H * c->head_dim, kd = (double)c->n_kv_heads * c->head_dim;
    const int gpu = be != BACKEND_CPU;
    /* params, without the layers' matrices for a bf16 reference and, under ZeRO-1 in bf16, for
     * a trained model, whose master is its rank's range (model_shard_master); rope cos, sin */
    const int master = pr.bf16 && trains && shards > 1 && prime_sharded_master();
    const int w16 = master ? 2 : pr.bf16 && !trains && prime_ref_bf16_only() ? 1 : 0;
    p->weights +=
        4 * (w16 ? (double)model_param_count_w16(c, w16) : P) + 4.0 * c->max_pos * c->head_dim;
    if (master) p->optimizer += 4 * P / shards;
    /* the slots' sizes as the model lays them out: fp32, or halved where a bf16 model keeps
     * them in bf16 alone */
    Activations lay;
    const MixedFlags f = {pr.attn_bf16, pr.qkv_bf16, pr.logits16};
    model_act_layout(&lay, c, (size_t)N, pr.bf16 ? &f : NULL);
    const double xn = lay.ld_xn, q = lay.ld_q, kv = lay.ld_kv, at = lay.ld_att, mlp = lay.ld_mlp;
    /* activations_init: x, xn1, rstd1, q, k, v, att, lse, x_mid, xn2, rstd2, gate, up, hmlp,
     * then xf, rstdf, lse_out, pos and the logits chunk; on a GPU the io buffers */
    /* recomputing (gradient checkpointing): every layer's x, k and v, one slot of the rest */
    const double nl = c->n_layers, L1 = recompute ? 1 : L, LX = (recompute ? nl : L) + 1;
    double act = LX * N * d + L1 * (N * (d + H + 2) + 2 * xn + q + at + 3 * mlp) +
                 (recompute ? nl : L) * 2 * kv;
    act += N * (d + 3) + logits_chunk(be, V, N) * V + (gpu ? 4 * N : 0);
    if (gpu) act += N * (d + 4); /* lp_compact's gathered rows: idx, tgt, h, a, b */
    if (trains)                  /* model_alloc_grads: dx, dtmp, dq, dk, dv, datt, dgate, dup, dh */
        act += N * (d + (qd > d ? qd : d) + qd + 2 * kd) + at + 3 * mlp;
    /* gradients: the whole buffer, or ZeRO-2's windows (two layers' slots and the rest) and the
     * rank's range; ZeRO-3's bf16 weights the same */
    const double rest = V * d * (c->tied ? 1 : 2) + d + (c->value_head ? d + 1 : 0);
    const double windows = 2 * (P - rest) / c->n_layers + rest + P / shards;
    const double grads = zero >= 2 ? 4 * windows : 4 * P;
    if (trains) p->optimizer += (trains > 1 ? 0 : grads) + 8 * P / shards;
    if (kept > 0) p->activations += 4 * act;
    if (!pr.bf16) return;
    /* model_use_bf16's weight copies; the scratch slots grow to width x capacity: the product
     * inputs (slot 0, up to the lm_head's 2d-wide rows), output gradients (slot 1), the
     * attention's (slot 2) and the backward's workspace */
    p->weights += 2 * (zero == 3 ? windows : P) + (pr.logits16 ? 2 * V * d : 0);
    const double w = max3(2 * d, qd, F);
    double slots = 2 * N * w * (trains ? 2 : 1);
    if (pr.attn_bf16) {
        slots += 2 * N *
                 (double)op_mixed_attention_scratch(1, 1, c->n_heads, c->n_kv_heads, c->head_dim);
        if (trains)
            slots += (double)op_mixed_attention_workspace((int)B, (int)T, c->n_heads, c->n_kv_heads,
                                                          c->head_dim);
    }
    p->activations += slots;
}

/* generator_init over the policy: KV cache, the prefill's bf16 stage, the decode buffers. */
static void plan_generator(MemPlan *p, const ModelConfig *c, Precision pr, double G, double T,
                           double act_tokens) {
    const double d = c->d_model, F = c->d_ff, V = c->vocab, L = c->n_layers;
    const double qd = (double)c->n_heads * c->head_dim, kd = (double)c->n_kv_heads * c->head_dim;
    const double S = qd + 2 * kd;
    double g = 2.0 * (pr.bf16 ? 2 : 4) * L * G * T * kd;
    if (pr.bf16 && !pr.qkv_bf16) g += 2 * act_tokens * kd;
    g += 4 * G * (3 * d + 1 + 2 * qd + 2 * kd + 3 * F + V) + 4 * 10 * G; /* + io and moves */
    if (pr.bf16) g += 2 * L * S * d + (c->qkv_bias ? 4 * L * S : 0) + 4 * G * S;
    p->generation += g;
}

/* The kernels' scratch slots and the libraries' workspaces (GPU): sampling's two buffers of
 * sort keys (2^24 keys, or DENSERL_SAMPLE_GROUP_KEYS as the kernel reads it, or V where
 * larger) and the sort's temporary (taken as a byte a key); the embedding backward's sort over
 * the largest call; cuBLAS's 32 MiB and, for bf16 products, cuBLASLt's; with
 * DENSERL_LOGPROB_OVERLAP=2 the log-prob's second logits chunk. */
static double plan_scratch(const ModelConfig *c, Backend be, Precision pr, double N) {
    if (be == BACKEND_CPU) return 0;
    const char *e = getenv("DENSERL_SAMPLE_GROUP_KEYS"), *lp = getenv("DENSERL_LOGPROB_OVERLAP");
    double keys = e && atol(e) > 0 ? (double)atol(e) : (double)(1 << 24);
    if (keys < c->vocab) keys = c->vocab;
    /* the reduction slot at its largest: the embedding backward's sort (6 ints a token) or the
     * norms' backward partials (528 row groups, RN_BWD_TARGET_BLOCKS in rmsnorm_cuda.cu, of d
     * floats); and 64 KiB for the other small reductions' partials */
    const double reduce = 24 * N > 4.0 * 528 * c->d_model ? 24 * N : 4.0 * 528 * c->d_model;
    double b = 17 * keys + reduce + 65536 + (pr.bf16 ? 64 << 20 : 32 << 20);
    if (lp && lp[0] == '2') b += 4 * logits_chunk(be, c->vocab, N) * c->vocab;
    return b;
}

void memplan_prime(const RunConfig *rc, const MemShape *s, MemPlan *p) {
    memset(p, 0, sizeof *p);
    const Precision pr = precision_of(rc, &s->mc);
    const int shards = rc->zero_stage >= 1 ? dist_size() : 1;
    /* the stage each model is made at: the policy's and critic's weights stay whole */
    const int zero = shards > 1 ? rc->zero_stage : 0, whole = zero < 2 ? zero : 2;
    /* ZeRO-3: the bf16 weights of the reference, where it keeps its matrices in bf16 alone, and
     * of the PRM, where its master is in ranges (prime.c's make_models) */
    const int ref_zero = zero == 3 && pr.bf16 && prime_ref_bf16_only() ? 3 : 0;
    const int prm_zero = zero == 3 && pr.bf16 && prime_sharded_master() ? 3 : whole;
    const double R = s->rows, T = s->T;
    ModelConfig critic = s->mc;
    critic.value_head = 1;
    /* the PRM, reference and critic: the policy's activations (prime_shared_activations),
     * and bf16 slots at its capacity; or their own at the calls' */
    const int shared = prime_shared_activations(), L = s->mc.n_layers;
    const double B = shared ? s->policy_rows : R, BT = shared ? s->policy_T : T;
    const int recomp = rc->gradient_checkpointing;
    plan_model(p, &s->mc, s->be, pr, s->policy_rows, s->policy_T, L, 1, shards, whole, recomp);
    if (rl_has_prm(&rc->rl)) /* the PRM ("off": none) */
        plan_model(p, &s->mc, s->be, pr, B, BT, shared ? 0 : L, prime_shared_grads() ? 2 : 1,
                   shards, prm_zero, recomp);
    plan_model(p, &s->mc, s->be, pr, B, BT, shared ? 0 : 1, 0, ref_zero ? shards : 1, ref_zero,
               0); /* the reference */
    if (!strcmp(rc->rl.estimator, "gae"))
        plan_model(p, &critic, s->be, pr, B, BT, shared ? 0 : L, 1, shards, whole, recomp);
    plan_generator(p, &s->mc, pr, s->gen_rows, T, (double)s->policy_rows * s->policy_T);
    const double n_max =
        (double)s->policy_rows * s->policy_T > R * T ? (double)s->policy_rows * s->policy_T : R * T;
    p->scratch = plan_scratch(&s->mc, s->be, pr, n_max);
    p->total = p->weights + p->optimizer + p->activations + p->generation + p->scratch;
}

/* bytes as MiB or GiB, for the plan's line and messages */
static const char *size_str(double bytes, char *buf, size_t cap) {
    if (bytes >= 10.0 * (1 << 30))
        snprintf(buf, cap, "%.1f GiB", bytes / (1 << 30));
    else
        snprintf(buf, cap, "%.1f MiB", bytes / (1 << 20));
    return buf;
}

static void plan_rows_at(const RunConfig *rc, MemShape *s, int sft_rows, int rows, MemPlan *p) {
    s->rows = rows;
    s->policy_rows = sft_rows > rows ? sft_rows : rows;
    memplan_prime(rc, s, p);
}

/* The most rows in [1, n] whose plan fits in room bytes, or 0 (the plan grows with the rows). */
static int rows_that_fit(const RunConfig *rc, MemShape *s, int sft_rows, int n, double room) {
    int lo = 0, hi = n;
    MemPlan p;
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        plan_rows_at(rc, s, sft_rows, mid, &p);
        if (p.total <= room)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* The smallest of the ranks' values (every rank gets it). */
static int min_over_ranks(int v) {
    const int size = dist_size();
    if (size <= 1) return v;
    double *all = calloc((size_t)size, sizeof(double));
    if (!all) return v;
    all[dist_rank()] = v;
    dist_sum_f64(all, (size_t)size);
    for (int r = 0; r < size; r++)
        if (all[r] < v) v = (int)all[r];
    free(all);
    return v;
}

int memplan_resolve(RunConfig *rc, MemShape *s, const char *what, MemPlan *plan) {
    const int n = rc->rl.prompts_per_step * rc->rl.samples_per_prompt, sft_rows = s->policy_rows;
    const int automatic = rc->rl.micro_batch_rows == RL_MICRO_AUTO;
    const char *dev = s->be == BACKEND_CPU ? "host" : "GPU";
    double free_b = 0, total_b = 0;
    const int known = be_memory(s->be, &free_b, &total_b);
    /* what the plan leaves out: the CUDA context's and libraries' allocations beyond their
     * workspaces, allocation granularity, NCCL's buffers; on the host the program itself */
    double reserve = (512 << 20) + (s->be == BACKEND_CPU ? 0.10 : 0.03) * total_b;
    if (reserve > 0.25 * total_b) reserve = 0.25 * total_b; /* a small device */
    const int asked = automatic ? n : prime_micro_rows(rc);
    int rows = asked;
    if (known) rows = rows_that_fit(rc, s, sft_rows, asked, free_b - (automatic ? reserve : 0));
    rows = min_over_ranks(rows);
    MemPlan p;
    plan_rows_at(rc, s, sft_rows, rows > 0 ? rows : 1, &p);
    char t[32], w[32], o[32], g[32], a[32], f[32];
    size_str(free_b, f, sizeof f);
    if (rows == 0)
        return dr_error("%s: the RL phase needs %s even at 1 row per model call (weights %s, "
                        "gradients and AdamW %s, generation %s for %d rows at once, activations "
                        "%s) and the %s has %s free: lower rl.generation_rows, use a smaller "
                        "model, shorter rows or fewer prompts per step, or spread the run over "
                        "more GPUs (zero_stage 3)",
                        what, size_str(p.total, t, sizeof t), size_str(p.weights, w, sizeof w),
                        size_str(p.optimizer, o, sizeof o), size_str(p.generation, g, sizeof g),
                        s->gen_rows, size_str(p.activations, a, sizeof a), dev, f);
    if (!automatic && rows < asked) {
        MemPlan q;
        plan_rows_at(rc, s, sft_rows, asked, &q);
        char setting[64];
        if (rc->rl.micro_batch_rows > 0 && rc->rl.micro_batch_rows < n)
            snprintf(setting, sizeof setting, "%d", asked);
        else
            snprintf(setting, sizeof setting, "%d (calls of all %d rows)", rc->rl.micro_batch_rows,
                     n);
        return dr_error("%s: 'rl.micro_batch_rows' %s needs %s (activations %s) but the %s has "
                        "%s free; %d rows fit (or set it to \"auto\")",
                        what, setting, size_str(q.total, t, sizeof t),
                        size_str(q.activations, a, sizeof a), dev, f, rows);
    }
    if (automatic) rc->rl.micro_batch_rows = rows;
    p.rows = rows; /* s's rows are this plan's (plan_rows_at) */
    p.n = n;
    p.automatic = automatic;
    p.be = s->be;
    p.free_b = free_b;
    *plan = p;
    return DR_OK;
}

void memplan_print(const MemPlan *p) {
    char t[32], f[32], w[32], o[32], a[32], g[32], k[32];
    printf("memory plan: %s", size_str(p->total, t, sizeof t));
    if (p->free_b > 0)
        printf(" of the %s's %s free", p->be == BACKEND_CPU ? "host" : "GPU",
               size_str(p->free_b, f, sizeof f));
    printf(", %d of %d rows per model call%s | weights %s, gradients and AdamW %s, activations "
           "%s, generation %s",
           p->rows, p->n,
           p->automatic == 2 ? " (\"auto\": as the run resumed took)"
           : p->automatic    ? " (\"auto\": the most that fit)"
                             : "",
           size_str(p->weights, w, sizeof w), size_str(p->optimizer, o, sizeof o),
           size_str(p->activations, a, sizeof a), size_str(p->generation, g, sizeof g));
    if (p->scratch > 0) printf(", kernel scratch %s", size_str(p->scratch, k, sizeof k));
    printf("\n");
}
