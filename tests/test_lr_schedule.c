/* Checks the learning-rate schedules (engine/lr_schedule.h) against the same curves written
 * another way (the cosine as a squared cosine of half the angle), over random peaks, lengths,
 * warm-ups and floors, and their shape: the warm-up's ramp, the hold, the fall to the floor. */
#include "engine/lr_schedule.h"

#include <math.h>
#include <stdlib.h>
#include "testutil.h"

/* The rate after warm-up, as a fraction of the way from the floor (min_ratio x peak) to peak. */
static double ref_left(LrShape s, double p) {
    if (s == LR_CONSTANT) return 1;
    if (p > 1) p = 1;
    if (s == LR_LINEAR) return 1 - p;
    double c = cos(M_PI * p / 2);
    return c * c;
}

static void test_against_reference(LrShape s, const char *name) {
    double worst = 0;
    int shape_ok = 1;
    for (int trial = 0; trial < 200; trial++) {
        const int total = 1 + (int)(rng_u01() * 300), warmup = (int)(rng_u01() * 40);
        const double peak = 1e-7 * (1 + 1e4 * rng_u01()), min_ratio = rng_u01();
        double prev = INFINITY;
        for (int k = 0; k < total + 5; k++) {
            const double got = lr_at(s, peak, k, total, warmup, min_ratio);
            double want;
            if (k < warmup) {
                want = peak * (k + 1) / warmup;
            } else {
                const double p = total > warmup ? (double)(k - warmup) / (total - warmup) : 1;
                want = peak * (min_ratio + (1 - min_ratio) * ref_left(s, p));
                /* after the warm-up: never rising, never under the floor, never over the peak
                 */
                if (got > prev * (1 + 1e-12) || got < peak * min_ratio * (1 - 1e-12) ||
                    got > peak * (1 + 1e-12))
                    shape_ok = 0;
                prev = got;
            }
            const double e = fabs(got - want) / peak;
            if (e > worst) worst = e;
        }
    }
    check(worst < 1e-12, "%s: 200 random schedules against the reference, worst %.2g of peak", name,
          worst);
    check(shape_ok, "%s: after the warm-up, non-increasing between floor and peak", name);
}

static void test_fixed_points(void) {
    const double peak = 3e-6;
    check(lr_at(LR_COSINE, peak, 0, 10, 4, 0.1) == peak / 4 &&
              lr_at(LR_COSINE, peak, 3, 10, 4, 0.1) == peak,
          "warm-up: a quarter of the peak at the first of 4 steps, the peak at the fourth");
    check(lr_at(LR_CONSTANT, peak, 9, 10, 0, 0.1) == peak &&
              lr_at(LR_CONSTANT, peak, 1000, 10, 0, 0.1) == peak,
          "constant: the peak throughout, past the planned steps too");
    check(lr_at(LR_COSINE, peak, 4, 10, 4, 0.1) == peak &&
              lr_at(LR_LINEAR, peak, 4, 10, 4, 0.1) == peak,
          "decays: the peak at the first step after the warm-up");
    check(fabs(lr_at(LR_COSINE, peak, 5, 10, 0, 0.2) - peak * 0.6) < 1e-18,
          "cosine: halfway between floor and peak at the middle");
    check(fabs(lr_at(LR_LINEAR, peak, 20, 10, 0, 0.2) - peak * 0.2) < 1e-18 &&
              fabs(lr_at(LR_COSINE, peak, 20, 10, 0, 0.2) - peak * 0.2) < 1e-18,
          "past the planned steps: the floor");
    check(lr_shape("constant") == LR_CONSTANT && lr_shape("cosine") == LR_COSINE &&
              lr_shape("linear") == LR_LINEAR && lr_shape("step") == -1,
          "names: constant, cosine, linear; others -1");
}

int main(int argc, char **argv) {
    rng_seed(argc > 1 ? strtoull(argv[1], NULL, 0) : 20261128);
    test_against_reference(LR_CONSTANT, "constant");
    test_against_reference(LR_COSINE, "cosine");
    test_against_reference(LR_LINEAR, "linear");
    test_fixed_points();
    return test_summary();
}
