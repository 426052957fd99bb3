/* CPU reference for token sampling. Inverse-CDF sampling only needs the most probable
 * tokens up to the point where the cumulative mass crosses the target, so instead of
 * sorting the vocabulary (152k tokens for Qwen) each row sorts a prefix: the top_k found
 * with a bounded heap, or the tokens above a probability cutoff that is lowered until
 * they hold enough mass. Every such set is a prefix of the full order, so the result is
 * the one a full sort would give. Sums are in double. */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "philox.h"

typedef struct {
    float z; /* logit */
    float w; /* exp((z - max) / temperature), the unnormalised probability */
    int i;   /* token */
} SampleCand;

/* The sampling order: descending logit, equal logits by lower index. */
static inline int sample_before(const SampleCand *a, const SampleCand *b) {
    return a->z > b->z || (a->z == b->z && a->i < b->i);
}

static int sample_cmp(const void *pa, const void *pb) {
    const SampleCand *a = pa, *b = pb;
    return sample_before(a, b) ? -1 : sample_before(b, a) ? 1 : 0;
}

/* Sift the heap's root down; the root is the candidate that comes last in the order. */
static void sample_sift(SampleCand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && sample_before(&h[worst], &h[l])) worst = l;
        if (r < n && sample_before(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        SampleCand t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static int sample_argmax(const float *z, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    return best;
}

/* One row with temperature > 0; c holds V candidates of scratch. */
static int sample_row(const float *z, int V, float temperature, int top_k, float top_p, float u,
                      SampleCand *c) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    int n;
    double zc; /* mass of the top-k candidates (all tokens when there is no top-k) */
    if (top_k > 0 && top_k < V) {
        n = 0;
        for (int v = 0; v < V; v++) {
            SampleCand x = {z[v], 0.0f, v};
            if (n < top_k) {
                /* sift up: parents come later in the order than their children */
                int i = n++;
                while (i > 0 && sample_before(&c[(i - 1) / 2], &x)) {
                    c[i] = c[(i - 1) / 2];
                    i = (i - 1) / 2;
                }
                c[i] = x;
            } else if (sample_before(&x, &c[0])) {
                c[0] = x;
                sample_sift(c, n, 0);
            }
        }
        qsort(c, (size_t)n, sizeof *c, sample_cmp);
        zc = 0.0;
        for (int j = 0; j < n; j++) {
            c[j].w = expf((c[j].z - mx) / temperature);
            zc += c[j].w;
        }
    } else {
        zc = 0.0;
        for (int v = 0; v < V; v++) zc += expf((z[v] - mx) / temperature);
        /* the mass the sorted prefix must hold: the nucleus, or the sampling target */
        const double need = top_p < 1.0f ? (double)top_p * zc : (double)u * zc;
        /* cutoffs exp(-8), exp(-16), ... of the top probability; past exp(-128) every
         * remaining token underflows to zero, so the last round takes them all */
        for (float lr = -8.0f;; lr *= 2.0f) {
            const float cz = lr < -128.0f ? -INFINITY : mx + temperature * lr;
            double mass = 0.0;
            n = 0;
            for (int v = 0; v < V; v++)
                if (z[v] >= cz) {
                    c[n].z = z[v];
                    c[n].w = expf((z[v] - mx) / temperature);
                    c[n].i = v;
                    mass += c[n].w;
                    n++;
                }
            /* the margin covers the different summation order of the walk below */
            if (n == V || mass > need * (1.0 + 1e-9)) break;
        }
        qsort(c, (size_t)n, sizeof *c, sample_cmp);
    }
    double zp = zc; /* mass of the kept tokens */
    if (top_p < 1.0f) {
        const double target = (double)top_p * zc;
        double cum = 0.0;
        for (int j = 0; j < n; j++) {
            cum += c[j].w;
            if (cum >= target) {
                n = j + 1;
                break;
            }
        }
        zp = cum;
    }
    const double target = (double)u * zp;
    double cum = 0.0;
    int last = c[0].i;
    for (int j = 0; j < n; j++) {
        if (c[j].w <= 0.0f) break; /* the rest underflowed: never chosen */
        cum += c[j].w;
        last = c[j].i;
        if (cum > target) return c[j].i;
    }
    return last; /* u * zp rounded above the walk's own sum */
}

/* log softmax(z)[tok] at temperature 1, the sum in double. */
static float sample_token_logp(const float *z, int V, int tok) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += expf(z[v] - mx);
    return (float)((double)(z[tok] - mx) - log(s));
}

void sample_logp_cpu(int *out, float *logp, float *logits, const float *u, int B, int V,
                     float temperature, int top_k, float top_p) {
    const int greedy = !(temperature > 0.0f);
#pragma omp parallel if (B > 1 && (long)B * V > 65536)
    {
        SampleCand *c = NULL;
        if (!greedy) {
            c = malloc((size_t)V * sizeof *c);
            if (!c) {
                fprintf(stderr, "%s:%d: out of memory\n", __FILE__, __LINE__);
                abort();
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < B; b++) {
            const float *z = logits + (size_t)b * V;
            const int tok =
                greedy ? sample_argmax(z, V) : sample_row(z, V, temperature, top_k, top_p, u[b], c);
            out[b] = tok;
            if (logp) logp[b] = sample_token_logp(z, V, tok);
        }
        free(c);
    }
}

void sample_cpu(int *out, float *logits, const float *u, int B, int V, float temperature, int top_k,
                float top_p) {
    sample_logp_cpu(out, NULL, logits, u, B, V, temperature, top_k, top_p);
}

/* The Gumbel-max race of one row: the first token with the highest score. A NaN score never
 * wins; a row of NaN logits gives token 0. */
static int sample_gumbel_row(const float *z, int V, uint64_t key, uint64_t seed, float t) {
    float best = -INFINITY;
    int arg = -1;
    for (int v = 0; v < V; v += 2) {
        const philox4 w = philox_gumbel_draw(seed, key, (uint32_t)(v / 2));
        for (int j = 0; j < 2 && v + j < V; j++) {
            const float s = z[v + j] / t - philox_log_exp(w.v[2 * j], w.v[2 * j + 1]);
            if (s > best || (arg < 0 && s == best)) best = s, arg = v + j;
        }
    }
    return arg < 0 ? 0 : arg;
}

void sample_gumbel_cpu(int *out, float *logp, const float *logits, const uint64_t *keys,
                       uint64_t seed, int B, int V, float temperature) {
#pragma omp parallel for schedule(dynamic, 1) if (B > 1 && (long)B * V > 65536)
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * V;
        out[b] = sample_gumbel_row(z, V, keys[b], seed, temperature);
        if (logp) logp[b] = sample_token_logp(z, V, out[b]);
    }
}
