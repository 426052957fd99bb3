/* Checks the CPU AdamW update against a float64 reference over several steps, and the
 * sum of squares and scale helpers. */
#include "kernels/optim.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"

/* The textbook AdamW step in double: p <- p - lr (mhat / (sqrt(vhat) + eps) + wd p).
 * menv tracks the same average of |g|: the size of the terms m was summed from, which is
 * what float rounding of m is proportional to when the terms cancel. */
static void adamw_ref(double *p, const float *g, double *m, double *v, double *menv, long n,
                      AdamWParams hp, int t) {
    double b1 = hp.beta1, b2 = hp.beta2;
    for (long i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        menv[i] = b1 * menv[i] + (1 - b1) * fabs(g[i]);
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
        p[i] -= (double)hp.lr * (mh / (sqrt(vh) + hp.eps) + (double)hp.weight_decay * p[i]);
    }
}

/* max_i |a_i - ref_i| / env_i (env_i = 0 needs an exact match). */
static double max_err(const float *a, const double *ref, const double *env, long n) {
    double e = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d == 0) continue;
        e = fmax(e, env[i] > 0 ? d / env[i] : INFINITY);
    }
    return e;
}

static void test_adamw(float wd) {
    const long n = 10007; /* odd, so no thread gets an even share */
    const int steps = 5;
    AdamWParams hp = {
        .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = wd};
    float *p = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    double *pr = malloc(n * sizeof(double)), *mr = calloc(n, sizeof(double));
    double *vr = calloc(n, sizeof(double)), *menv = calloc(n, sizeof(double));
    double *penv = malloc(n * sizeof(double));
    /* The same run without decay, to show the tolerance below can tell decay from none. */
    double *pnd = malloc(n * sizeof(double)), *mnd = calloc(n, sizeof(double));
    double *vnd = calloc(n, sizeof(double)), *scratch = calloc(n, sizeof(double));
    for (long i = 0; i < n; i++) pr[i] = pnd[i] = p[i] = rng_sym(1.0);
    /* p moves by at most about lr per step, so |p0| + lr t bounds the values it held. */
    for (long i = 0; i < n; i++) penv[i] = fabs(pr[i]) + hp.lr * steps;
    for (int t = 1; t <= steps; t++) {
        /* Gradients span four decades, with some exact zeros, so eps and the ratio
         * m / sqrt(v) are exercised at both ends. */
        for (long i = 0; i < n; i++)
            g[i] = i % 97 == 0 ? 0.0f : rng_sym(1.0) * powf(10.0f, -(float)(i % 4));
        adamw_update_cpu(p, g, m, v, n, hp, t);
        adamw_ref(pr, g, mr, vr, menv, n, hp, t);
        AdamWParams nd = hp;
        nd.weight_decay = 0;
        adamw_ref(pnd, g, mnd, vnd, scratch, n, nd, t);
    }
    /* Each step rounds m and v about twice (6e-8 each) relative to the terms they are
     * built from, so five steps stay under 6e-7 of menv and of v (v has no cancellation:
     * it is its own envelope); 2e-6 is 3x that. p is rounded to float twice a step (decay,
     * then update: half an ulp each, 6e-8 for |p| <= 1.05) and the update adds a few ulps of
     * lr, so five steps stay under 7e-7 of penv; the tolerance 1e-6 sits above that, while
     * decay moves p by lr wd = 1e-4 of itself each step and a missing bias correction
     * changes the first step by a factor of 3. */
    double ep = max_err(p, pr, penv, n), em = max_err(m, mr, menv, n), ev = max_err(v, vr, vr, n);
    printf("adamw wd=%g: max err p %.2e m %.2e v %.2e (of their envelopes)\n", wd, ep, em, ev);
    check(ep < 1e-6, "adamw p vs float64 reference");
    check(em < 2e-6, "adamw m vs float64 reference");
    check(ev < 2e-6, "adamw v vs float64 reference");
    if (wd != 0) check(max_err(p, pnd, penv, n) > 1e-4, "weight decay visible above tolerance");
    free(p), free(g), free(m), free(v), free(pr), free(mr), free(vr), free(menv), free(penv);
    free(pnd), free(mnd), free(vnd), free(scratch);
}

static void test_sumsq(void) {
    check(sumsq_cpu(NULL, 0) == 0.0, "sumsq of nothing is 0");
    float small[5] = {1, -2, 3, 0.5f, -0.25f};
    check(sumsq_cpu(small, 5) == 1 + 4 + 9 + 0.25 + 0.0625, "sumsq small exact");
    /* Longer than one group of 256 x 4096 blocks, and not a multiple of the block. */
    const long n = 2500003;
    float *g = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) g[i] = rng_sym(3.0);
    long double ref = 0;
    for (long i = 0; i < n; i++) ref += (long double)g[i] * g[i];
    double s = sumsq_cpu(g, n);
    double rel = fabs(s - (double)ref) / (double)ref;
    /* Each square is exact in double; 2.5e6 positive double additions err by at most
     * n eps = 2.5e6 x 1.1e-16 = 3e-10, usually far less. A float accumulator would be off
     * by ~1e-3 or more. */
    printf("sumsq: rel err %.2e\n", rel);
    check(rel < 1e-10, "sumsq vs long double");
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    double s1 = sumsq_cpu(g, n);
    omp_set_num_threads(3);
    double s3 = sumsq_cpu(g, n);
    omp_set_num_threads(nt);
    check(memcmp(&s, &s1, sizeof s) == 0 && memcmp(&s, &s3, sizeof s) == 0,
          "sumsq bit-identical across thread counts");
    free(g);
}

static void test_scale(void) {
    const long n = 10007;
    float *x = malloc(n * sizeof(float)), *x0 = malloc(n * sizeof(float));
    for (long i = 0; i < n; i++) x0[i] = x[i] = rng_sym(5.0);
    const float s = -0.37f;
    scale_cpu(x, n, s);
    int ok = 1;
    for (long i = 0; i < n; i++) ok &= x[i] == x0[i] * s; /* one float product: exact match */
    check(ok, "scale");
    scale_cpu(x, 0, 0.0f);
    check(x[0] == x0[0] * s, "scale n=0 leaves x alone");
    free(x), free(x0);
}

int main(int argc, char **argv) {
    test_quiet = 1;
    /* A seed on the command line reruns the test on other random inputs. */
    rng_seed(argc > 1 ? strtoull(argv[1], NULL, 0) : 20240607);
    test_adamw(0.01f);
    test_adamw(0.0f);
    test_sumsq();
    test_scale();
    return test_summary();
}
