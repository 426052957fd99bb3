/* Batched generation with a KV cache: the prompts are prefilled through model_forward,
 * then each step feeds every unfinished row's newest token through the layers at that
 * row's own position and samples the next one. Finished rows leave the batch, so a step
 * costs only as much as the rows still generating. */
#pragma once
#include "model.h"

/* Row b's k-th token is drawn with index i = row_ids[b] * 4096 + k: plain sampling
 * (temperature > 0, no top-k, no top-p) races the tokens with Gumbel noise under noise key i
 * (sample_gumbel_cpu), truncated sampling walks the CDF to the uniform
 * philox_draw(seed, GEN_STREAM, i). Either way a row's sample depends only on
 * (seed, row_ids[b], k), never on the batch it shares or its place in it. */
#define GEN_STREAM 0x47454E45ull /* "GENE" */

typedef struct {
    float temperature;  /* <= 0: greedy */
    int top_k;          /* <= 0: no top-k */
    float top_p;        /* >= 1: no top-p */
    int max_new_tokens; /* per row, eos included */
} SampleParams;

SampleParams sample_params_default(void); /* 1.0, 0, 1.0, 64 */

/* Slot i of the batch being decoded is row slot_row[i] of the call; slots stay packed at
 * 0 .. n_live-1 so every kernel sees a dense batch. */
typedef struct {
    Model *m;
    int B_cap, T_cap;
    /* backend memory */
    void *kcache, *vcache; /* (L, B_cap, T_cap, Hkv*Dh) each, after rotary: fp32, or bf16
                            * (kv_bytes 2) for a bf16 model, as PyTorch's bf16 caches are */
    int kv_bytes;
    uint16_t *stage;     /* (act.B*act.T, Hkv*Dh) a bf16 cache's prefill staging (of fp32
                          * keys and values), else NULL */
    float *x, *xn, *tmp; /* (B_cap, d) residual, normed input (bf16 in a bf16 model),
                          * projection output (a bf16 model's x and tmp trade places) */
    float *rstd;         /* (B_cap) */
    float *q, *att;      /* (B_cap, Hq*Dh) */
    /* a bf16 model's q, k, v weights packed per layer for one product, (L, (Hq + 2 Hkv) Dh,
     * d) bf16, their biases (L, (Hq + 2 Hkv) Dh) or NULL, the product (B_cap, (Hq + 2 Hkv) Dh);
     * packed from the model's bf16 copy at each generate() */
    uint16_t *wqkv;
    float *bqkv, *qkv;
    float *k, *v;          /* (B_cap, Hkv*Dh) */
    float *gate, *up, *h;  /* (B_cap, F) */
    float *logits;         /* (B_cap, V) */
    int *io;               /* (7, B_cap) the six below, side by side (keys take two) */
    uint64_t *key;         /* (B_cap) noise keys of plain sampling */
    float *u, *logp;       /* (B_cap) uniforms, log-probs of the sampled tokens */
    int *tok, *pos, *next; /* (B_cap) fed tokens, their positions, sampled tokens */
    int *moves;            /* (B_cap, 3) a step's slot moves (dst, src, positions) */
    /* host memory */
    int *h_io;                                     /* (7, B_cap) as io, on the host: */
    uint64_t *h_key;                               /* (B_cap) */
    int *h_tok, *h_pos, *h_next, *slot_row, *done; /* (B_cap) */
    int *h_moves;                                  /* (B_cap, 3) */
    float *h_u, *h_logp;                           /* (B_cap) */
    int *pf_tokens, *pf_targets;                   /* (act.B*act.T) one prefill chunk */
    float *pf_logp;                                /* (act.B*act.T) */
    long long rows_decoded; /* row-steps computed over the generator's life, for accounting */
    /* A decode step runs its n live rows padded to a multiple of bucket (at most B_cap):
     * 16 on a GPU, so that a handful of step sizes recur, 1 on the CPU. With use_graphs
     * (on a GPU; the backend declines with DENSERL_CUDA_GRAPHS=0), a size's second step
     * records the step's launches as a CUDA graph and later steps of that size replay it:
     * one launch instead of about 20 per layer. The recordings last until pending rows are
     * admitted (their prefill may grow what the recordings point into), or the call ends. */
    int bucket, use_graphs;
    long long graph_steps;  /* decode steps replayed from a recording */
    long long decode_steps; /* decode steps run over the generator's life */
    void **graph;           /* (B_cap + 1) by padded size, NULL until recorded */
    unsigned char *ran;     /* (B_cap + 1) the size has run directly once (warm before a capture) */
} Generator;

/* Allocates caches and step buffers for up to B_cap rows of T_cap tokens (prompt and
 * response). T_cap must fit the model's context, and T_cap - 1 tokens its activation
 * capacity, which the prefill goes through. */
void generator_init(Generator *g, Model *m, int B_cap, int T_cap);
void generator_free(Generator *g);

/* prompts (B, T_cap) row-major, row b holding prompt_len[b] >= 1 tokens (at most T_cap).
 * Writes out_tokens (B, T_cap): the prompt, the generated tokens (the stop token included
 * when sampled), then pad_id; resp_len (B) the number generated; hit_eos (B) 1 when the row
 * stopped at a stop token; out_logp (B, T_cap), unless NULL, each generated token's log-prob
 * under the model at temperature 1 before top-k/top-p, 0 on prompt and padding. A row
 * stops at any of the n_stop ids of stop (a template's end of turn and the tokenizer's end
 * of text alike), after max_new_tokens, or when it fills T_cap. B may exceed B_cap: B_cap
 * rows decode at once, and once a quarter of the slots are free (or none is live) the next
 * rows in order are prefilled into them (continuous batching), which changes no result.
 * Overwrites the model's activations (the prefill runs model_forward). */
void generate(Generator *g, const int *prompts, const int *prompt_len, int B,
              const SampleParams *sp, const int *stop, int n_stop, int pad_id,
              unsigned long long seed, const unsigned long long *row_ids, int *out_tokens,
              int *resp_len, int *hit_eos, float *out_logp);
