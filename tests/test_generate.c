/* Generation with a KV cache, and the kernels under it. The decode path is checked against
 * the full forward (model_forward over each finished sequence gives the same log-prob for
 * every generated token, and the greedy token is the forward's argmax); results must not
 * depend on the batch a row shares or its place in it; eos, max_new_tokens and T_cap stop
 * rows and stopped rows cost nothing; the sampler against a float64 reference of the
 * truncated, renormalised distribution (exact inverse-CDF picks, and frequencies); the
 * decode attention against the prefill attention and a float64 formula.
 *
 * Tolerances: log-probs of a 2-layer fp32 model agree between two fp32 evaluation orders to
 * ~1e-6, so 1e-4 (the brief's bound) keeps two orders of margin, while a wrong position,
 * cache row or head mapping moves them by 1e-1 or more. Attention outputs are O(1) and fp32,
 * 1e-5 as in test_kernels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../engine/generate.h"
#include "../engine/model.h"
#include "../kernels/attention.h"
#include "../kernels/philox.h"
#include "../kernels/sample.h"
#include "../runtime/check.h"
#include "testutil.h"

static float normal(unsigned long long seed, unsigned long long stream, unsigned long long i) {
    philox4 r = philox_draw(seed, stream, i);
    return philox_normal(r.v[0], r.v[1]);
}

/* ------------------------------------------------------------------ the model under test */

#define VOCAB 29
#define BCAP  5
#define TCAP  24
#define NROWS 5

static ModelConfig tiny(void) {
    ModelConfig c = {0};
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab = VOCAB;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 6; /* differs from d_model / n_heads */
    c.d_ff = 20;
    c.max_pos = 48;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000;
    c.qkv_bias = 1;
    c.o_bias = 1;
    c.rope_llama3 = 1;
    c.rs_factor = 4;
    c.rs_low_freq = 1;
    c.rs_high_freq = 4;
    c.rs_orig_max_pos = 8;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

/* Every parameter random (biases and norms too), so no path is trivial. */
static void randomise(Model *m, unsigned long long seed) {
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = 0.5f * normal(seed, 99, i);
}

/* Ragged prompts: one-token, short, longer than a prefill chunk's share, near T_cap. */
static const int plen_base[NROWS] = {1, 3, 9, 14, 6};

static void make_prompts(int *prompts, int *plen, unsigned long long *ids, int n) {
    for (int b = 0; b < n; b++) {
        plen[b] = plen_base[b % NROWS];
        ids[b] = 1000 + 7 * (unsigned long long)b;
        for (int t = 0; t < TCAP; t++) {
            philox4 r = philox_draw(5, 6, (unsigned long long)b * TCAP + t);
            prompts[b * TCAP + t] = t < plen[b] ? (int)(r.v[0] % VOCAB) : -7; /* junk past */
        }
    }
}

typedef struct {
    int tok[NROWS * 2 * TCAP], len[NROWS * 2], eos[NROWS * 2];
    float logp[NROWS * 2 * TCAP];
} Out;

static void run_stops(Generator *g, const int *prompts, const int *plen, int n, SampleParams sp,
                      const int *stop, int n_stop, unsigned long long seed,
                      const unsigned long long *ids, Out *o) {
    generate(g, prompts, plen, n, &sp, stop, n_stop, 3, seed, ids, o->tok, o->len, o->eos, o->logp);
}

static void run(Generator *g, const int *prompts, const int *plen, int n, SampleParams sp,
                int eos_id, unsigned long long seed, const unsigned long long *ids, Out *o) {
    const int stop[1] = {eos_id};
    run_stops(g, prompts, plen, n, sp, stop, eos_id >= 0, seed, ids, o);
}

/* Whether each row of o is ref's row cut after its first token among stop (n_stop of them),
 * flagged, and padded after; *n_hit counts the rows cut. */
static int cut_at_stops(const Out *o, const Out *ref, const int *plen, const int *stop, int n_stop,
                        int *n_hit) {
    int ok = 1;
    *n_hit = 0;
    for (int b = 0; b < NROWS; b++) {
        const int *r = ref->tok + b * TCAP;
        int first = -1;
        for (int k = 0; k < ref->len[b] && first < 0; k++)
            for (int s = 0; s < n_stop; s++)
                if (r[plen[b] + k] == stop[s]) first = k;
        const int want_len = first >= 0 ? first + 1 : ref->len[b];
        ok &= o->len[b] == want_len && o->eos[b] == (first >= 0);
        for (int t = 0; t < TCAP; t++)
            ok &= o->tok[b * TCAP + t] == (t < plen[b] + want_len ? r[t] : 3);
        *n_hit += o->eos[b];
    }
    return ok;
}

static SampleParams params(float temp, int top_k, float top_p, int max_new) {
    SampleParams sp = sample_params_default();
    sp.temperature = temp;
    sp.top_k = top_k;
    sp.top_p = top_p;
    sp.max_new_tokens = max_new;
    return sp;
}

/* (a) Each generated token's log-prob from the decode step equals the full forward's over
 * the finished sequence; for greedy runs the token is also the forward's argmax. */
static void check_against_forward(Model *m, const char *name, const int *plen, const Out *o, int n,
                                  int greedy) {
    double worst = 0;
    int bad_fmt = 0, bad_argmax = 0, tokens = 0;
    int tok[TCAP], tg[TCAP];
    float lp[TCAP], lpv[TCAP];
    for (int b = 0; b < n; b++) {
        const int *row = o->tok + b * TCAP;
        const float *rl = o->logp + b * TCAP;
        int L = plen[b] + o->len[b];
        for (int t = 0; t < TCAP; t++) {
            if (t >= L && row[t] != 3) bad_fmt++;        /* pad after the response */
            if (t < plen[b] && rl[t] != 0.0f) bad_fmt++; /* 0 on the prompt */
            if (t >= L && rl[t] != 0.0f) bad_fmt++;      /* and on padding */
            if (t < plen[b] && row[t] < 0) bad_fmt++;
        }
        if (L < 2 || o->len[b] == 0) continue;
        int T = L - 1;
        for (int t = 0; t < T; t++) {
            tok[t] = row[t];
            tg[t] = t + 1 >= plen[b] ? row[t + 1] : -1;
        }
        model_forward(m, tok, tg, 1, T, lp, NULL);
        for (int t = plen[b] - 1; t < T; t++) {
            double e = fabs((double)lp[t] - rl[t + 1]);
            if (!(e <= worst)) worst = e; /* NaN sticks */
            tokens++;
        }
        if (greedy) {
            for (int v = 0; v < VOCAB; v++) {
                int tv[TCAP];
                for (int t = 0; t < T; t++) tv[t] = t + 1 >= plen[b] ? v : -1;
                model_forward(m, tok, tv, 1, T, lpv, NULL);
                for (int t = plen[b] - 1; t < T; t++)
                    if (lpv[t] > lp[t] + 1e-6f || (lpv[t] == lp[t] && v < row[t + 1])) bad_argmax++;
            }
        }
    }
    char msg[256];
    snprintf(msg, sizeof msg,
             "%s: decode log-probs == full forward over %d generated tokens (max err %.2e), "
             "layout ok%s",
             name, tokens, worst, greedy ? ", every token the forward's argmax" : "");
    check(worst <= 1e-4 && tokens > 20 && bad_fmt == 0 && bad_argmax == 0, "%s", msg);
}

static int rows_equal(const Out *a, int ia, const Out *b, int ib, double logp_tol) {
    if (a->len[ia] != b->len[ib] || a->eos[ia] != b->eos[ib]) return 0;
    if (memcmp(a->tok + ia * TCAP, b->tok + ib * TCAP, sizeof(int) * TCAP) != 0) return 0;
    for (int t = 0; t < TCAP; t++)
        if (!(fabs(a->logp[ia * TCAP + t] - b->logp[ib * TCAP + t]) <= logp_tol)) return 0;
    return 1;
}

static void test_generate(void) {
    ModelConfig c = tiny();
    Model m;
    /* token capacity 32: the 13-token prefill fits 2 rows, so 5 rows take 3 chunks */
    model_init(&m, &c, BACKEND_CPU, 2, 16);
    randomise(&m, 17);
    Generator g;
    generator_init(&g, &m, BCAP, TCAP);
    int prompts[NROWS * 2 * TCAP], plen[NROWS * 2];
    unsigned long long ids[NROWS * 2];
    make_prompts(prompts, plen, ids, NROWS * 2);
    static Out o1, o2, o3;

    /* (a) decode == full forward, for greedy and for sampling with truncation */
    run(&g, prompts, plen, NROWS, params(0, 0, 1, 12), -1, 1, ids, &o1);
    check_against_forward(&m, "greedy", plen, &o1, NROWS, 1);
    run(&g, prompts, plen, NROWS, params(1, 0, 1, 12), -1, 1, ids, &o1);
    check_against_forward(&m, "temperature 1", plen, &o1, NROWS, 0);
    run(&g, prompts, plen, NROWS, params(0.8f, 5, 0.9f, 12), -1, 1, ids, &o1);
    check_against_forward(&m, "temperature 0.8, top-k 5, top-p 0.9", plen, &o1, NROWS, 0);

    /* (b) batch independence: all rows together == each alone == reversed == in waves */
    const SampleParams cfgs[2] = {params(0, 0, 1, 12), params(1, 0, 0.95f, 12)};
    const char *names[2] = {"greedy", "sampled"};
    for (int k = 0; k < 2; k++) {
        run(&g, prompts, plen, NROWS, cfgs[k], -1, 42, ids, &o1);
        int ok = 1;
        for (int b = 0; b < NROWS; b++) {
            run(&g, prompts + b * TCAP, plen + b, 1, cfgs[k], -1, 42, ids + b, &o2);
            ok &= rows_equal(&o1, b, &o2, 0, 1e-5);
        }
        int rp[NROWS * TCAP], rl[NROWS];
        unsigned long long rid[NROWS];
        for (int b = 0; b < NROWS; b++) {
            int s = NROWS - 1 - b;
            memcpy(rp + b * TCAP, prompts + s * TCAP, sizeof(int) * TCAP);
            rl[b] = plen[s];
            rid[b] = ids[s];
        }
        run(&g, rp, rl, NROWS, cfgs[k], -1, 42, rid, &o2);
        for (int b = 0; b < NROWS; b++) ok &= rows_equal(&o1, NROWS - 1 - b, &o2, b, 1e-5);
        /* 10 rows through B_cap 5: two waves; rows 5..9 repeat 0..4's prompts */
        run(&g, prompts, plen, 2 * NROWS, cfgs[k], -1, 42, ids, &o3);
        for (int b = 0; b < NROWS; b++) ok &= rows_equal(&o1, b, &o3, b, 1e-5);
        for (int b = NROWS; b < 2 * NROWS; b++) {
            run(&g, prompts + b * TCAP, plen + b, 1, cfgs[k], -1, 42, ids + b, &o2);
            ok &= rows_equal(&o3, b, &o2, 0, 1e-5);
        }
        char msg[200];
        snprintf(msg, sizeof msg,
                 "%s: a row's output is the same alone, in a batch of %d, reversed, and in "
                 "waves of B_cap",
                 names[k], NROWS);
        check(ok, "%s", msg);
    }

    /* (c) the same seed and row ids repeat exactly; another seed, or another row id for the
     * same prompt, gives other samples */
    {
        SampleParams sp = params(1, 0, 1, 12);
        run(&g, prompts, plen, 2 * NROWS, sp, -1, 7, ids, &o1);
        run(&g, prompts, plen, 2 * NROWS, sp, -1, 7, ids, &o2);
        int same = memcmp(&o1, &o2, sizeof o1) == 0;
        run(&g, prompts, plen, 2 * NROWS, sp, -1, 8, ids, &o3);
        int differ_seed = memcmp(o1.tok, o3.tok, sizeof o1.tok) != 0;
        int differ_id = 0; /* row b + 5 has row b's prompt and its own id */
        for (int b = 0; b < NROWS; b++)
            differ_id +=
                memcmp(o1.tok + b * TCAP, o1.tok + (b + NROWS) * TCAP, sizeof(int) * TCAP) != 0;
        check(same && differ_seed && differ_id >= NROWS - 1,
              "sampling: same seed identical, other seed differs, same prompt with another "
              "row id differs");
    }

    /* (d) eos and length limits, and stopped rows are not computed */
    {
        SampleParams sp = params(0, 0, 1, 12);
        run(&g, prompts, plen, NROWS, sp, -1, 1, ids, &o1); /* unconstrained reference */
        int b3 = 0;
        while (b3 < NROWS && o1.len[b3] < 4) b3++;
        CHECK(b3 < NROWS);
        const int eos = o1.tok[b3 * TCAP + plen[b3] + 3];
        long long before = g.rows_decoded;
        run(&g, prompts, plen, NROWS, sp, eos, 1, ids, &o2);
        long long computed = g.rows_decoded - before, generated = 0;
        int n_eos = 0, ok = cut_at_stops(&o2, &o1, plen, &eos, 1, &n_eos);
        for (int b = 0; b < NROWS; b++) generated += o2.len[b];
        ok &= o2.len[b3] <= 4 && o2.eos[b3] == 1;
        char msg[200];
        snprintf(msg, sizeof msg,
                 "eos (token %d) stops %d rows at their first eos, eos kept, pad after; %lld "
                 "row-steps for %lld tokens",
                 eos, n_eos, computed, generated);
        check(ok && computed == generated, "%s", msg);

        /* two stop tokens (an end of turn and an end of text): each row ends at the first of
         * either; the second is a token that some row samples before the first stop */
        int stops[2] = {eos, -1}, n_two = 0, n_one = n_eos;
        for (int b = 0; b < NROWS && stops[1] < 0; b++)
            for (int k = 0; k < o2.len[b] - 1 && stops[1] < 0; k++)
                if (o1.tok[b * TCAP + plen[b] + k] != eos)
                    stops[1] = o1.tok[b * TCAP + plen[b] + k];
        CHECK(stops[1] >= 0);
        run_stops(&g, prompts, plen, NROWS, sp, stops, 2, 1, ids, &o2);
        ok = cut_at_stops(&o2, &o1, plen, stops, 2, &n_two);
        check(ok && n_two > n_one,
              "stop tokens %d and %d: each row ends at the first of either (%d rows, against %d "
              "with the first alone)",
              stops[0], stops[1], n_two, n_one);

        /* max_new_tokens 4, and T_cap: a 14-token prompt has room for 10 of 12 */
        run(&g, prompts, plen, NROWS, params(0, 0, 1, 4), -1, 1, ids, &o2);
        ok = 1;
        for (int b = 0; b < NROWS; b++) {
            ok &= o2.len[b] == 4 && o2.eos[b] == 0;
            ok &= memcmp(o2.tok + b * TCAP, o1.tok + b * TCAP, sizeof(int) * (plen[b] + 4)) == 0;
        }
        ok &= o1.len[3] == TCAP - 14 && o1.eos[3] == 0 && o1.len[0] == 12;
        /* prompts of T_cap - 1 and T_cap tokens: one token, and none */
        int lp2[2] = {TCAP - 1, TCAP}, pr2[2 * TCAP];
        unsigned long long id2[2] = {1, 2};
        for (int t = 0; t < 2 * TCAP; t++) pr2[t] = t % VOCAB;
        run(&g, pr2, lp2, 2, params(1, 0, 1, 12), -1, 1, id2, &o3);
        ok &= o3.len[0] == 1 && o3.len[1] == 0 && o3.eos[0] == 0 && o3.eos[1] == 0;
        ok &= memcmp(o3.tok + TCAP, pr2 + TCAP, sizeof(int) * TCAP) == 0;
        ok &= memcmp(o3.tok, pr2, sizeof(int) * (TCAP - 1)) == 0;
        /* max_new_tokens 0 generates nothing */
        run(&g, prompts, plen, NROWS, params(1, 0, 1, 0), -1, 1, ids, &o3);
        for (int b = 0; b < NROWS; b++) ok &= o3.len[b] == 0;
        check(ok, "max_new_tokens and T_cap stop rows (no eos flag); full prompts generate "
                  "nothing");
    }

    /* (e) continuous batching: 10 rows through B_cap 5, some ending early at a stop token;
     * each row is the row run alone, and freed slots take the waiting rows, so the run takes
     * fewer decode steps than two waves of 5 (each as long as its longest row) would */
    {
        SampleParams sp = params(1, 0, 1, 12);
        run(&g, prompts, plen, 2 * NROWS, sp, -1, 7, ids, &o1);
        const int eos = o1.tok[1 * TCAP + plen[1] + 1]; /* row 1 stops after 2 tokens */
        const long long s0 = g.decode_steps;
        run(&g, prompts, plen, 2 * NROWS, sp, eos, 7, ids, &o3);
        const long long steps = g.decode_steps - s0;
        int ok = 1, waves = 0, wave_max = 0;
        for (int b = 0; b < 2 * NROWS; b++) {
            run(&g, prompts + b * TCAP, plen + b, 1, sp, eos, 7, ids + b, &o2);
            ok &= rows_equal(&o3, b, &o2, 0, 1e-5);
            if (o3.len[b] > wave_max) wave_max = o3.len[b];
            if (b % BCAP == BCAP - 1) waves += wave_max, wave_max = 0;
        }
        check(ok && steps < waves,
              "continuous batching: 10 rows through 5 slots equal each row alone, in %lld "
              "decode steps (two waves: %d)",
              steps, waves);
    }
    generator_free(&g);
    model_free(&m);
}

/* ------------------------------------------------------------------ sampler */

/* Float64 reference: the kept tokens in sampling order and their renormalised
 * probabilities. Returns how many are kept. */
static int ref_dist(const float *z, int V, double temp, int top_k, double top_p, int *order,
                    double *p) {
    for (int v = 0; v < V; v++) order[v] = v;
    /* insertion sort by (logit desc, index asc) */
    for (int i = 1; i < V; i++) {
        int x = order[i], j = i;
        while (j > 0 && (z[order[j - 1]] < z[x] || (z[order[j - 1]] == z[x] && order[j - 1] > x))) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = x;
    }
    double mx = z[order[0]], s = 0;
    int n = top_k > 0 && top_k < V ? top_k : V;
    for (int j = 0; j < n; j++) s += (p[j] = exp((z[order[j]] - mx) / temp));
    for (int j = 0; j < n; j++) p[j] /= s;
    if (top_p < 1) {
        double cum = 0;
        int k = 0;
        while (k < n) {
            cum += p[k++];
            if (cum >= top_p) break;
        }
        n = k;
        for (int j = 0; j < n; j++) p[j] /= cum;
    }
    return n;
}

/* Inverse CDF on the reference; *margin gets u's distance to the nearest CDF boundary. */
static int ref_pick(const int *order, const double *p, int n, double u, double *margin) {
    double cum = 0;
    *margin = 1;
    int pick = -1;
    for (int j = 0; j < n; j++) {
        double next = cum + p[j];
        if (fabs(u - next) < *margin) *margin = fabs(u - next);
        if (pick < 0 && u < next) pick = order[j];
        cum = next;
    }
    return pick < 0 ? order[n - 1] : pick;
}

static int argmax_lowest(const float *z, int V) {
    int b = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[b]) b = v;
    return b;
}

static void test_sampler_limits(void) {
    enum { B = 16, V = 1000 };
    static float z[B * V], zc[B * V], u[B];
    int want[B], got[B];
    for (int i = 0; i < B * V; i++) z[i] = 3.0f * normal(21, 1, i);
    z[5 * V + 17] = z[5 * V + 600] = 50.0f; /* a tie for the max: the lower index wins */
    for (int b = 0; b < B; b++) {
        want[b] = argmax_lowest(z + b * V, V);
        u[b] = philox_u01(philox_draw(21, 2, b).v[0]);
    }
    u[0] = 0.0f;
    u[1] = 1.0f - 1e-7f;
    int ok[4] = {1, 1, 1, 1};
    memcpy(zc, z, sizeof z);
    sample_cpu(got, zc, u, B, V, 0.0f, 0, 1.0f);
    for (int b = 0; b < B; b++) ok[0] &= got[b] == want[b];
    memcpy(zc, z, sizeof z);
    sample_cpu(got, zc, u, B, V, 1.0f, 1, 1.0f);
    for (int b = 0; b < B; b++) ok[1] &= got[b] == want[b];
    memcpy(zc, z, sizeof z);
    sample_cpu(got, zc, u, B, V, 1.0f, 0, 1e-6f);
    for (int b = 0; b < B; b++) ok[2] &= got[b] == want[b];
    memcpy(zc, z, sizeof z);
    sample_cpu(got, zc, u, B, V, 1e-5f, 0, 1.0f);
    for (int b = 0; b < B; b++) ok[3] &= got[b] == want[b];
    check(ok[0], "sample: temperature 0 is the argmax, lowest index on ties");
    check(ok[1], "sample: top_k 1 == greedy for any u");
    check(ok[2], "sample: top_p 1e-6 == greedy for any u");
    check(ok[3], "sample: temperature 1e-5 == greedy (the temperature -> 0 limit)");
}

/* On V = 5 with known logits: each u's pick equals the float64 inverse CDF (away from
 * boundaries), frequencies over 20000 draws match the truncated distribution within 4
 * standard errors, excluded tokens never come up, and u = 1 - 1e-7 picks the last kept. */
static void test_sampler_small(void) {
    enum { V = 5, N = 20000 };
    static const float zs[V] = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f}; /* 1 and 3 tie */
    static const struct {
        float temp;
        int top_k;
        float top_p;
    } cfg[] = {{1, 0, 1},       {0.7f, 3, 1},  {1.3f, 0, 0.7f},
               {0.7f, 3, 0.8f}, {2, 4, 0.95f}, {1, 0, 0.5f}};
    static float z[N * V], u[N], lp[N];
    static int got[N];
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        int order[V], n;
        double p[V];
        n = ref_dist(zs, V, cfg[c].temp, cfg[c].top_k, cfg[c].top_p, order, p);
        for (int i = 0; i < N; i++) {
            memcpy(z + i * V, zs, sizeof zs);
            u[i] = philox_u01(philox_draw(31, 100 + c, i).v[0]);
        }
        u[0] = 1.0f - 1e-7f;
        u[1] = 0.0f;
        sample_logp_cpu(got, lp, z, u, N, V, cfg[c].temp, cfg[c].top_k, cfg[c].top_p);
        int count[V] = {0}, mismatch = 0, excluded = 0, bad_lp = 0;
        double lse = 0;
        for (int v = 0; v < V; v++) lse += exp(zs[v]);
        lse = log(lse);
        for (int i = 0; i < N; i++) {
            double margin;
            int want = ref_pick(order, p, n, u[i], &margin);
            if (got[i] < 0 || got[i] >= V) {
                excluded++;
                continue;
            }
            if (margin > 1e-6 && got[i] != want) mismatch++;
            count[got[i]]++;
            if (fabs(lp[i] - (zs[got[i]] - lse)) > 1e-6) bad_lp++;
        }
        double worst_z = 0;
        for (int j = 0; j < V; j++) {
            int v = order[j];
            if (j >= n) {
                excluded += count[v];
                continue;
            }
            double f = (double)count[v] / N, se = sqrt(p[j] * (1 - p[j]) / N);
            double zz = se > 0 ? fabs(f - p[j]) / se : (f == p[j] ? 0 : INFINITY);
            if (zz > worst_z) worst_z = zz;
        }
        int last_ok = got[0] == order[n - 1] && got[1] == order[0];
        char msg[256];
        snprintf(msg, sizeof msg,
                 "sample V=5 T=%.1f top_k=%d top_p=%.2f: %d kept, picks == float64 inverse CDF "
                 "(%d off), freq within %.1f SE, %d excluded, u=1-1e-7 -> last kept, logp ok",
                 cfg[c].temp, cfg[c].top_k, cfg[c].top_p, n, mismatch, worst_z, excluded);
        check(mismatch == 0 && worst_z <= 4 && excluded == 0 && last_ok && bad_lp == 0, "%s", msg);
    }
}

/* Vocabulary of Qwen's size: picks equal the float64 reference that sorts everything,
 * for flat and peaked rows, with and without truncation. */
static void test_sampler_large(void) {
    enum { V = 152000, ROWS = 4, US = 6, B = ROWS * US };
    float *base = malloc(sizeof(float) * ROWS * V), *z = malloc(sizeof(float) * B * V);
    int *order = malloc(sizeof(int) * V);
    double *p = malloc(sizeof(double) * V);
    const float scale[ROWS] = {0.5f, 2.0f, 6.0f, 12.0f};
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < V; v++) base[r * V + v] = scale[r] * normal(41, r, v);
    /* discrete logits: many exact ties, which the order breaks by index */
    for (int v = 0; v < V; v++) base[0 * V + v] = roundf(base[0 * V + v] * 4) / 4;
    static const struct {
        float temp;
        int top_k;
        float top_p;
    } cfg[] = {{1, 0, 1}, {0.8f, 40, 1}, {1, 0, 0.9f}, {0.7f, 50, 0.8f}, {1.5f, 0, 1}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        float u[B];
        int got[B];
        for (int i = 0; i < B; i++) {
            memcpy(z + (size_t)i * V, base + (size_t)(i / US) * V, sizeof(float) * V);
            u[i] = philox_u01(philox_draw(43, c, i).v[0]);
        }
        u[0] = 1.0f - 1e-7f;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sample_cpu(got, z, u, B, V, cfg[c].temp, cfg[c].top_k, cfg[c].top_p);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) * 1e-6;
        int mismatch = 0, checked = 0;
        for (int r = 0; r < ROWS; r++) {
            /* the reference sorts the whole row, by a merge sort on (logit desc, index asc) */
            const float *zr = base + (size_t)r * V;
            for (int v = 0; v < V; v++) order[v] = v;
            int *tmp = malloc(sizeof(int) * V);
            for (int w = 1; w < V; w *= 2)
                for (int lo = 0; lo < V; lo += 2 * w) {
                    int mid = lo + w < V ? lo + w : V, hi = lo + 2 * w < V ? lo + 2 * w : V;
                    int i = lo, j = mid, k = lo;
                    while (i < mid && j < hi) {
                        int a = order[i], b = order[j];
                        int a_first = zr[a] > zr[b] || (zr[a] == zr[b] && a < b);
                        tmp[k++] = a_first ? order[i++] : order[j++];
                    }
                    while (i < mid) tmp[k++] = order[i++];
                    while (j < hi) tmp[k++] = order[j++];
                    memcpy(order + lo, tmp + lo, sizeof(int) * (hi - lo));
                }
            free(tmp);
            double mx = zr[order[0]], s = 0;
            int n = cfg[c].top_k > 0 && cfg[c].top_k < V ? cfg[c].top_k : V;
            for (int j = 0; j < n; j++) s += (p[j] = exp((zr[order[j]] - mx) / cfg[c].temp));
            for (int j = 0; j < n; j++) p[j] /= s;
            if (cfg[c].top_p < 1) {
                double cum = 0;
                int k = 0;
                while (k < n) {
                    cum += p[k++];
                    if (cum >= cfg[c].top_p) break;
                }
                n = k;
                for (int j = 0; j < n; j++) p[j] /= cum;
            }
            for (int i = r * US; i < (r + 1) * US; i++) {
                double margin;
                int want = ref_pick(order, p, n, u[i], &margin);
                /* float w against double exp: each CDF value is off by <~ 3e-7 */
                if (margin > 3e-7) {
                    checked++;
                    mismatch += got[i] != want;
                }
            }
        }
        char msg[256];
        snprintf(msg, sizeof msg,
                 "sample V=152000 T=%.1f top_k=%d top_p=%.2f: %d of %d picks (u off CDF edges) == "
                 "float64 full sort (%.1f ms for %d rows)",
                 cfg[c].temp, cfg[c].top_k, cfg[c].top_p, checked - mismatch, checked, ms, B);
        check(mismatch == 0 && checked >= B * 3 / 4, "%s", msg);
    }
    free(base);
    free(z);
    free(order);
    free(p);
}

/* ------------------------------------------------------------------ attention decode */

static void test_attention_decode(void) {
    enum { B = 3, T = 11, H = 6, Hkv = 2, D = 20, Tc = 13 };
    static float q[B * T * H * D], k[B * T * Hkv * D], v[B * T * Hkv * D], out[B * T * H * D],
        lse[B * H * T];
    static float qd[B * H * D], kc[B * Tc * Hkv * D], vc[B * Tc * Hkv * D], od[B * H * D];
    const int pos[B] = {T - 1, 4, 0};
    for (int i = 0; i < B * T * H * D; i++) q[i] = normal(51, 1, i);
    for (int i = 0; i < B * T * Hkv * D; i++) k[i] = normal(51, 2, i), v[i] = normal(51, 3, i);
    attention_forward_cpu(out, lse, q, k, v, B, T, H, Hkv, D);
    /* cache rows hold positions 0..pos[b]; NaN past them so any read shows */
    for (int i = 0; i < B * Tc * Hkv * D; i++) kc[i] = vc[i] = NAN;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t <= pos[b]; t++) {
            memcpy(kc + (b * Tc + t) * Hkv * D, k + (b * T + t) * Hkv * D, sizeof(float) * Hkv * D);
            memcpy(vc + (b * Tc + t) * Hkv * D, v + (b * T + t) * Hkv * D, sizeof(float) * Hkv * D);
        }
        memcpy(qd + b * H * D, q + (b * T + pos[b]) * H * D, sizeof(float) * H * D);
    }
    attention_decode_cpu(od, qd, kc, vc, pos, B, Tc, H, Hkv, D);
    double e_fwd = 0, e_ref = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int kh = h / (H / Hkv);
            const float *qq = qd + (b * H + h) * D;
            double s[T], mx = -INFINITY, sum = 0;
            for (int t = 0; t <= pos[b]; t++) {
                double d = 0;
                for (int i = 0; i < D; i++)
                    d += (double)qq[i] * k[((b * T + t) * Hkv + kh) * D + i];
                s[t] = d / sqrt((double)D);
                mx = s[t] > mx ? s[t] : mx;
            }
            for (int t = 0; t <= pos[b]; t++) sum += (s[t] = exp(s[t] - mx));
            for (int i = 0; i < D; i++) {
                double o = 0;
                for (int t = 0; t <= pos[b]; t++)
                    o += s[t] / sum * v[((b * T + t) * Hkv + kh) * D + i];
                double got = od[(b * H + h) * D + i];
                double fwd = out[((b * T + pos[b]) * H + h) * D + i];
                double e1 = fabs(got - fwd), e2 = fabs(got - o);
                if (!(e1 <= e_fwd)) e_fwd = e1;
                if (!(e2 <= e_ref)) e_ref = e2;
            }
        }
    char msg[200];
    snprintf(msg, sizeof msg,
             "attention_decode (GQA 3:1, ragged pos, NaN past pos) == prefill attention's row "
             "(%.1e) and float64 (%.1e)",
             e_fwd, e_ref);
    check(e_fwd <= 1e-5 && e_ref <= 1e-5, "%s", msg);

    /* kv_cache_store writes exactly row b, position pos[b] */
    enum { W = 7 };
    static float cache[B * Tc * W], before[B * Tc * W], x[B * W];
    for (int i = 0; i < B * Tc * W; i++) cache[i] = before[i] = normal(53, 1, i);
    for (int i = 0; i < B * W; i++) x[i] = normal(53, 2, i);
    const int sp[B] = {Tc - 1, 0, 5};
    kv_cache_store_cpu(cache, x, sp, B, Tc, W);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tc; t++)
            for (int i = 0; i < W; i++) {
                float want = t == sp[b] ? x[b * W + i] : before[(b * Tc + t) * W + i];
                ok &= cache[(b * Tc + t) * W + i] == want;
            }
    check(ok, "kv_cache_store writes row b at pos[b] and nothing else");
}

int main(void) {
    test_attention_decode();
    test_sampler_limits();
    test_sampler_small();
    test_sampler_large();
    test_generate();
    return test_summary();
}
