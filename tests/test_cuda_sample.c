/* Checks sample_cuda / sample_logp_cuda against sample_logp_cpu: the same token for every
 * row (greedy; temperature 0.7 and 1.0 with top_k 0, 1, 50 and top_p 1.0, 0.9, 0.5), on
 * rows of several kinds (spread, exact ties including -0 and +0, one dominant logit, all
 * equal, a range so wide that the tail underflows, a tie at the top, flat), with random u
 * plus u = 0 and u just below 1; and the sampled token's log-prob within 1e-5. Every GPU
 * path: sorted prefixes, and for plain sampling (no top-k or top-p) sorted bands (the
 * default), the same with groups of at most V keys so that the rows spread over many sorts
 * (DENSERL_SAMPLE_GROUP_KEYS=1), whole rows sorted (DENSERL_SAMPLE_SORT=full), and prefixes
 * for plain sampling too (DENSERL_SAMPLE_SORT=prefix). Then generation's plain sampling, the
 * Gumbel race (sample_gumbel_cuda), against sample_gumbel_cpu on the same rows, and on
 * vocabularies of one token and of one chunk plus one. */
#include "kernels/kernels_cuda.h"
#include "kernels/philox.h"
#include "kernels/sample.h"

#include <string.h>
#include "testutil.h"
#include "cudatest.h"

/* Row b of kind b % 7. */
static void fill_row(float *z, int V, int b) {
    switch (b % 7) {
    case 0: /* spread */
        for (int v = 0; v < V; v++) z[v] = rng_sym(4.0);
        break;
    case 1: /* exact ties among five values, zeros of both signs */
        for (int v = 0; v < V; v++) {
            z[v] = (float)((int)(rng_u01() * 5) - 2);
            if (z[v] == 0.0f && (v & 1)) z[v] = -0.0f;
        }
        break;
    case 2: /* one dominant token */
        for (int v = 0; v < V; v++) z[v] = rng_sym(1.0);
        z[(int)(rng_u01() * V)] = 25.0f;
        break;
    case 3: /* all equal */
        for (int v = 0; v < V; v++) z[v] = 1.5f;
        break;
    case 4: /* the tail underflows to zero weight */
        for (int v = 0; v < V; v++) z[v] = rng_sym(150.0);
        break;
    case 5: /* a tie at the top */
        for (int v = 0; v < V; v++) z[v] = rng_sym(3.0);
        z[(int)(rng_u01() * V)] = 3.0f;
        z[(int)(rng_u01() * V)] = 3.0f;
        break;
    default: /* flat, as a random model's logits are: every token matters to the walk */
        for (int v = 0; v < V; v++) z[v] = rng_sym(8.0);
        break;
    }
}

/* |got - want| <= 1e-5 max(1, |want|) for every element; returns the largest ratio. */
static double logp_err(const float *got, const float *want, int n) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        double s = fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0;
        double r = fabs((double)got[i] - want[i]) / s;
        if (!(r <= e)) e = isnan(r) ? INFINITY : r;
    }
    return e;
}

static void run_case(const float *logits, const float *u, int B, int V, float T, int top_k,
                     float top_p, int with_logp) {
    float *z = malloc(sizeof(float) * B * V), *logp = malloc(sizeof(float) * B);
    int *tok = malloc(sizeof(int) * B);
    memcpy(z, logits, sizeof(float) * B * V); /* an implementation may overwrite it */
    sample_logp_cpu(tok, logp, z, u, B, V, T, top_k, top_p);

    float *g_z = DEV_F(logits, (long)B * V), *g_u = DEV_F(u, B), *g_logp = DEV_POISON_F(B);
    int *g_tok = DEV_POISON_I(B);
    if (with_logp)
        sample_logp_cuda(g_tok, g_logp, g_z, g_u, B, V, T, top_k, top_p);
    else
        sample_cuda(g_tok, g_z, g_u, B, V, T, top_k, top_p);
    int *r_tok = HOST_I(g_tok, B);
    float *r_logp = HOST_F(g_logp, B);
    int bad = 0, first = -1;
    for (int b = 0; b < B; b++)
        if (r_tok[b] != tok[b]) {
            if (first < 0) first = b;
            bad++;
        }
    char name[128];
    snprintf(name, sizeof name, "%s: B=%d V=%d T=%.1f top_k=%d top_p=%.1f",
             getenv("DENSERL_SAMPLE_SORT")         ? getenv("DENSERL_SAMPLE_SORT")
             : getenv("DENSERL_SAMPLE_GROUP_KEYS") ? "sorted prefixes or bands, small groups"
                                                   : "sorted prefixes or bands",
             B, V, T, top_k, top_p);
    if (first >= 0)
        printf("  row %d: cuda %d, cpu %d, u %.9g\n", first, r_tok[first], tok[first], u[first]);
    check(bad == 0, "%s: %d of %d tokens differ", name, bad, B);
    if (with_logp) {
        double e = logp_err(r_logp, logp, B);
        check(e < 1e-5, "%s: logp err %.3g", name, e);
    }
    dev_free(g_z);
    dev_free(g_u);
    dev_free(g_logp);
    dev_free(g_tok);
    free(z);
    free(logp);
    free(tok);
    free(r_tok);
    free(r_logp);
}

/* The Gumbel-max race (sample_gumbel_cuda) against sample_gumbel_cpu: the same token, or one
 * whose score (in float64, from the same Philox words) is within 1e-5 of the CPU pick's; the
 * log-prob within 1e-5. */
static double gumbel_score(const float *z, int v, uint64_t key, uint64_t seed, double T) {
    const philox4 w = philox_gumbel_draw(seed, key, (uint32_t)(v / 2));
    const uint32_t w1 = w.v[2 * (v & 1)], w2 = w.v[2 * (v & 1) + 1];
    const double u = ((double)w1 + ((double)w2 + 0.5) / 4294967296.0) / 4294967296.0;
    return z[v] / T - log(-log1p(-u));
}

static void run_gumbel(const float *logits, int B, int V, float T) {
    uint64_t *keys = malloc(sizeof(uint64_t) * B);
    for (int b = 0; b < B; b++)
        keys[b] = b == 0 ? 0 : b == 1 ? ~0ull : (uint64_t)(rng_u01() * 9e18);
    const uint64_t seed = 1234567 + (uint64_t)V;
    float *logp = malloc(sizeof(float) * B);
    int *tok = malloc(sizeof(int) * B);
    sample_gumbel_cpu(tok, logp, logits, keys, seed, B, V, T);
    float *g_z = DEV_F(logits, (long)B * V), *g_logp = DEV_POISON_F(B);
    uint64_t *g_keys = (uint64_t *)dev_copy_of(keys, (size_t)B, sizeof(uint64_t));
    int *g_tok = DEV_POISON_I(B);
    sample_gumbel_cuda(g_tok, g_logp, g_z, g_keys, seed, B, V, T);
    int *r_tok = HOST_I(g_tok, B);
    float *r_logp = HOST_F(g_logp, B);
    int bad = 0, near = 0;
    for (int b = 0; b < B; b++) {
        if (r_tok[b] == tok[b]) continue;
        const float *z = logits + (size_t)b * V;
        const int ok = r_tok[b] >= 0 && r_tok[b] < V &&
                       fabs(gumbel_score(z, r_tok[b], keys[b], seed, T) -
                            gumbel_score(z, tok[b], keys[b], seed, T)) <= 1e-5;
        near += ok;
        bad += !ok;
    }
    const double e = logp_err(r_logp, logp, B);
    check(bad == 0 && e < 1e-5,
          "gumbel race: B=%d V=%d T=%.1f: %d of %d tokens differ (%d more at near ties), logp "
          "err %.3g",
          B, V, T, bad, B, near, e);
    dev_free(g_z), dev_free(g_logp), dev_free(g_keys), dev_free(g_tok);
    free(keys), free(logp), free(tok), free(r_tok), free(r_logp);
}

int main(void) {
    CUDA_TEST_BEGIN();
    rng_seed(7);
    const int Vs[] = {5, 1000, 32003, 151936}, Bs[] = {96, 96, 48, 40};
    const float temps[] = {0.7f, 1.0f}, top_ps[] = {1.0f, 0.9f, 0.5f};
    const int top_ks[] = {0, 1, 50};
    for (int iv = 0; iv < 4; iv++) {
        const int V = Vs[iv], B = Bs[iv];
        float *logits = malloc(sizeof(float) * B * V), *u = malloc(sizeof(float) * B);
        for (int b = 0; b < B; b++) {
            fill_row(logits + (size_t)b * V, V, b);
            u[b] = b % 11 == 0 ? 0.0f : b % 11 == 1 ? 0.99999994f : (float)rng_u01();
        }
        run_case(logits, u, B, V, 0.0f, 0, 1.0f, 1); /* greedy */
        /* every GPU path: sorted prefixes and bands (the default) in one group where they
         * fit, in groups of at most V keys, whole rows sorted, and prefixes where the
         * default takes bands (plain sampling only: the others are path 0's) */
        for (int path = 0; path < 4; path++) {
            if (path == 1) setenv("DENSERL_SAMPLE_GROUP_KEYS", "1", 1);
            if (path == 2) setenv("DENSERL_SAMPLE_SORT", "full", 1);
            if (path == 3) setenv("DENSERL_SAMPLE_SORT", "prefix", 1);
            for (int it = 0; it < 2; it++)
                for (int ik = 0; ik < (path == 3 ? 1 : 3); ik++)
                    for (int ip = 0; ip < (path == 3 ? 1 : 3); ip++)
                        run_case(logits, u, B, V, temps[it], top_ks[ik], top_ps[ip], (ik + ip) & 1);
            unsetenv("DENSERL_SAMPLE_GROUP_KEYS");
            unsetenv("DENSERL_SAMPLE_SORT");
        }
        for (int it = 0; it < 2; it++) run_gumbel(logits, B, V, temps[it]);
        free(logits);
        free(u);
    }
    /* a vocabulary of one chunk and one more token, and one token */
    for (int iv = 0; iv < 2; iv++) {
        const int V = iv ? 4097 : 1, B = 33;
        float *logits = malloc(sizeof(float) * B * V);
        for (int b = 0; b < B; b++) fill_row(logits + (size_t)b * V, V, b);
        run_gumbel(logits, B, V, 1.0f);
        free(logits);
    }
    return test_summary();
}
