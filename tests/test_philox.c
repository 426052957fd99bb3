/* Checks kernels/philox.h against the Philox4x32-10 known-answer vectors of the Random123
 * distribution (tests/kat_vectors), and the uniform and normal transforms against their
 * distributions' moments. */
#include "kernels/philox.h"

#include <math.h>
#include <stdio.h>
#include "testutil.h"

typedef struct {
    uint32_t ctr[4], key[2], out[4];
} Kat;

/* Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, expected. */
static const Kat kats[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void test_kat(void) {
    for (int k = 0; k < 3; k++) {
        philox4 c = {{kats[k].ctr[0], kats[k].ctr[1], kats[k].ctr[2], kats[k].ctr[3]}};
        uint64_t key = (uint64_t)kats[k].key[0] | (uint64_t)kats[k].key[1] << 32;
        philox4 r = philox4x32(c, key);
        int ok = 1;
        for (int i = 0; i < 4; i++) ok &= r.v[i] == kats[k].out[i];
        if (!ok) printf("  kat %d: got %08x %08x %08x %08x\n", k, r.v[0], r.v[1], r.v[2], r.v[3]);
        check(ok, "philox4x32-10 known-answer vector");
    }
    /* philox_draw puts index in words 0-1 and stream in words 2-3 of the counter. */
    philox4 c = {{0x03707344, 0x13198a2e, 0x85a308d3, 0x243f6a88}};
    philox4 a = philox4x32(c, 0x0123456789abcdefull);
    philox4 b = philox_draw(0x0123456789abcdefull, 0x243f6a8885a308d3ull, 0x13198a2e03707344ull);
    check(a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2] && a.v[3] == b.v[3],
          "philox_draw counter layout");
    philox4 s0 = philox_draw(7, 0, 5), s1 = philox_draw(7, 1, 5), s2 = philox_draw(8, 0, 5);
    check(s0.v[0] != s1.v[0] && s0.v[0] != s2.v[0], "streams and seeds give different words");
}

static void test_u01(void) {
    check(philox_u01(0) == 0.0f, "u01(0) == 0");
    check(philox_u01(0xffffffffu) < 1.0f, "u01(max) < 1");
    check(philox_u01(0xffffffffu) == 1.0f - 1.0f / 16777216.0f, "u01(max) == 1 - 2^-24");
    const long N = 100000;
    double s = 0, s2 = 0;
    int in_range = 1;
    for (long i = 0; i < N / 4; i++) {
        philox4 r = philox_draw(42, 3, (uint64_t)i);
        for (int k = 0; k < 4; k++) {
            double u = philox_u01(r.v[k]);
            in_range &= u >= 0.0 && u < 1.0;
            s += u;
            s2 += u * u;
        }
    }
    double mean = s / N, var = s2 / N - mean * mean;
    /* Standard errors for U(0,1) over 1e5 draws: mean sqrt(1/12/N) = 9.1e-4, variance
     * sqrt((1/80 - 1/144)/N) = 2.4e-4; the bounds are 5 of those. */
    printf("u01: mean %.5f var %.5f\n", mean, var);
    check(in_range, "u01 in [0, 1)");
    check(fabs(mean - 0.5) < 5 * 9.2e-4, "u01 mean 1/2");
    check(fabs(var - 1.0 / 12) < 5 * 2.4e-4, "u01 variance 1/12");
}

static void test_normal(void) {
    check(isfinite(philox_normal(0, 0)) && isfinite(philox_normal(0xffffffffu, 0xffffffffu)),
          "normal finite at the extreme words");
    const long N = 100000;
    double s = 0, s2 = 0, s4 = 0;
    int finite = 1;
    for (long i = 0; i < N / 2; i++) {
        philox4 r = philox_draw(1234, 9, (uint64_t)i);
        for (int k = 0; k < 2; k++) {
            double x = philox_normal(r.v[2 * k], r.v[2 * k + 1]);
            finite &= isfinite(x);
            s += x;
            s2 += x * x;
            s4 += x * x * x * x;
        }
    }
    double mean = s / N, var = s2 / N - mean * mean, kurt = s4 / N;
    /* Standard errors over 1e5 draws: mean 1/sqrt(N) = 3.2e-3, variance sqrt(2/N) = 4.5e-3,
     * fourth moment sqrt((105 - 9)/N) = 3.1e-2; bounds at 5 of those. */
    printf("normal: mean %.5f var %.5f E[x^4] %.4f\n", mean, var, kurt);
    check(finite, "normal draws finite");
    check(fabs(mean) < 5 * 3.2e-3, "normal mean 0");
    check(fabs(var - 1.0) < 5 * 4.5e-3, "normal variance 1");
    check(fabs(kurt - 3.0) < 5 * 3.1e-2, "normal fourth moment 3");
}

int main(void) {
    test_quiet = 1;
    test_kat();
    test_u01();
    test_normal();
    return test_summary();
}
