/* The Gumbel-max sampler (sample_gumbel_cpu): its picks against a float64 race over the same
 * Philox words, its frequencies against softmax(z / T) by a chi-square test, its log-probs
 * against float64, its independence from the batch, and its separation of rows by key.
 *
 * Tolerances: the float race and the float64 race choose differently only where the two best
 * scores lie within the float rounding of a score (about 1e-6 here), so a difference is
 * accepted where the float64 scores are within 1e-5 of each other and counted. The
 * chi-square bound (40 for 5 degrees of freedom) has a false-alarm chance under 1e-7 for a
 * correct sampler and fixed seeds; a sampler off by a temperature or an index makes it
 * thousands. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../kernels/philox.h"
#include "../kernels/sample.h"
#include "testutil.h"

/* The race in float64 from the same words: the best token and the runner-up's score. */
static int ref_race(const float *z, int V, uint64_t key, uint64_t seed, double T, double *gap) {
    double best = -INFINITY, second = -INFINITY;
    int arg = 0;
    for (int v = 0; v < V; v++) {
        const philox4 w = philox_gumbel_draw(seed, key, (uint32_t)(v / 2));
        const uint32_t w1 = w.v[2 * (v & 1)], w2 = w.v[2 * (v & 1) + 1];
        const double u = ((double)w1 + ((double)w2 + 0.5) / 4294967296.0) / 4294967296.0;
        const double s = z[v] / T - log(-log1p(-u));
        if (s > best) {
            second = best, best = s, arg = v;
        } else if (s > second) {
            second = s;
        }
    }
    *gap = best - second;
    return arg;
}

static double ref_logp(const float *z, int V, int tok) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    for (int v = 0; v < V; v++) s += exp(z[v] - mx);
    return z[tok] - mx - log(s);
}

/* Row b of kind b % 5: spread, exact ties, one dominant token, all equal, flat and wide. */
static void fill_row(float *z, int V, int b) {
    for (int v = 0; v < V; v++) {
        switch (b % 5) {
        case 0:
            z[v] = rng_sym(4.0);
            break;
        case 1:
            z[v] = (float)((int)(rng_u01() * 5) - 2);
            break;
        case 2:
            z[v] = rng_sym(1.0);
            break;
        case 3:
            z[v] = 1.5f;
            break;
        default:
            z[v] = rng_sym(30.0);
            break;
        }
    }
    if (b % 5 == 2) z[(int)(rng_u01() * V)] = 25.0f;
}

/* Picks and log-probs against float64 on fresh rows of every kind. */
static void test_against_float64(int B, int V, float T) {
    float *z = malloc(sizeof(float) * B * V), *lp = malloc(sizeof(float) * B);
    int *tok = malloc(sizeof(int) * B);
    uint64_t *keys = malloc(sizeof(uint64_t) * B);
    for (int b = 0; b < B; b++) {
        fill_row(z + (size_t)b * V, V, b);
        keys[b] = b == 0 ? 0 : b == 1 ? ~0ull : (uint64_t)(rng_u01() * 9e18);
    }
    const uint64_t seed = 0x5eed0000ull + (uint64_t)V;
    sample_gumbel_cpu(tok, lp, z, keys, seed, B, V, T);
    int same = 0, near = 0;
    double e_lp = 0;
    for (int b = 0; b < B; b++) {
        double gap;
        const int want = ref_race(z + (size_t)b * V, V, keys[b], seed, T, &gap);
        if (tok[b] == want)
            same++;
        else if (gap <= 1e-5)
            near++;
        const double e = fabs(lp[b] - ref_logp(z + (size_t)b * V, V, tok[b]));
        if (!(e <= e_lp)) e_lp = e;
    }
    check(same + near == B && near <= B / 50 + 1 && e_lp <= 1e-5,
          "gumbel B=%d V=%d T=%.1f: %d of %d picks == float64 race (%d near ties), logp err "
          "%.2e",
          B, V, T, same, B, near, e_lp);
    free(z), free(lp), free(tok), free(keys);
}

/* Frequencies over N keys against softmax(z / T). */
static void test_frequencies(float T) {
    enum { V = 6, N = 120000 };
    static const float zr[V] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -3.0f};
    float *z = malloc(sizeof(float) * N * V);
    int *tok = malloc(sizeof(int) * N);
    uint64_t *keys = malloc(sizeof(uint64_t) * N);
    for (int i = 0; i < N; i++) {
        memcpy(z + (size_t)i * V, zr, sizeof zr);
        keys[i] = 4096ull * (uint64_t)i + 17; /* as generation forms them: row * 4096 + k */
    }
    sample_gumbel_cpu(tok, NULL, z, keys, 99, N, V, T);
    double p[V], zs = 0, chi2 = 0;
    long cnt[V] = {0};
    for (int v = 0; v < V; v++) zs += p[v] = exp(zr[v] / T);
    for (int i = 0; i < N; i++) cnt[tok[i]]++;
    for (int v = 0; v < V; v++) {
        const double want = N * p[v] / zs;
        chi2 += (cnt[v] - want) * (cnt[v] - want) / want;
    }
    check(chi2 < 40.0, "gumbel T=%.1f: frequencies of %d draws fit softmax(z/T), chi2 %.1f (5 dof)",
          T, N, chi2);
    free(z), free(tok), free(keys);
}

/* A row's pick depends on its logits and key alone; other keys give other picks. */
static void test_batch_and_keys(void) {
    enum { B = 64, V = 3001 };
    float *z = malloc(sizeof(float) * B * V);
    int tok[B], one, other[B];
    uint64_t keys[B], k2[B];
    for (int b = 0; b < B; b++) {
        for (int v = 0; v < V; v++) z[(size_t)b * V + v] = rng_sym(2.0);
        keys[b] = 1000 + 4096ull * (uint64_t)b;
        k2[b] = keys[b] + 1;
    }
    sample_gumbel_cpu(tok, NULL, z, keys, 5, B, V, 1.0f);
    int alone = 1, differ = 0;
    for (int b = 0; b < B; b++) {
        sample_gumbel_cpu(&one, NULL, z + (size_t)b * V, keys + b, 5, 1, V, 1.0f);
        alone &= one == tok[b];
    }
    sample_gumbel_cpu(other, NULL, z, k2, 5, B, V, 1.0f);
    for (int b = 0; b < B; b++) differ += other[b] != tok[b];
    check(alone && differ > B / 2,
          "gumbel: each row alone picks as in the batch; the next key changes %d of %d picks",
          differ, B);
    free(z);
}

int main(void) {
    rng_seed(11);
    test_against_float64(100, 5, 1.0f);
    test_against_float64(100, 1001, 0.7f);
    test_against_float64(20, 151936, 1.0f);
    test_frequencies(1.0f);
    test_frequencies(0.7f);
    test_batch_and_keys();
    return test_summary();
}
