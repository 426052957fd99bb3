/* Length-grouped micro-batches (engine/microbatch.c) on random row lengths: every row of the
 * range lands in exactly one call, calls go longest first with ties in index order, no call
 * holds more tokens than the capacity unless it is a single row, each call runs at its
 * longest row's length rounded up to the alignment and capped at T, a call is as full as the
 * capacity allows; gather then scatter round-trips the needed columns and zeroes the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/dist.h"
#include "../engine/microbatch.h"
#include "testutil.h"

/* The checks of one plan of rows r0 .. r0+n-1; returns the number of violations. */
static int plan_errors(const MicroPlan *pl, const int *len, int r0, int n, int T, size_t cap,
                       int align) {
    int bad = 0, seen_total = 0, prev_len = 1 << 30, prev_row = -1;
    char *seen = calloc((size_t)(r0 + n) + 1, 1);
    for (int j = 0; j < pl->n_mb; j++) {
        const MicroBatch *mb = &pl->mb[j];
        int longest = 0;
        for (int k = 0; k < mb->n; k++) {
            int r = mb->rows[k];
            if (r < r0 || r >= r0 + n || seen[r]++) bad++;
            if (len[r] > prev_len || (len[r] == prev_len && r < prev_row)) bad++; /* order */
            prev_len = len[r], prev_row = r;
            if (len[r] > longest) longest = len[r];
        }
        seen_total += mb->n;
        int want = (longest + align - 1) / align * align;
        if (want < 1) want = 1;
        if (want > T) want = T;
        if (mb->T != want || mb->n < 1) bad++;
        if (mb->n > 1 && (size_t)mb->n * mb->T > cap) bad++;
        /* full: one more row would not fit, unless the range ran out */
        if (j < pl->n_mb - 1 && (size_t)(mb->n + 1) * mb->T <= cap) bad++;
    }
    if (seen_total != n) bad++;
    free(seen);
    return bad;
}

static void test_plans(void) {
    int errors = 0, plans = 0;
    for (int it = 0; it < 300; it++) {
        int N = 1 + (int)(rng_u01() * 70), T = 2 + (int)(rng_u01() * 300);
        int align = it % 3 == 0 ? 1 : it % 3 == 1 ? 8 : 64;
        int *len = malloc(sizeof(int) * N);
        for (int i = 0; i < N; i++) /* many ties: lengths from a few values */
            len[i] = it % 2 ? 1 + (int)(rng_u01() * T) : T - (int)(rng_u01() * 4) * (T / 4);
        size_t cap = (size_t)T * (1 + (int)(rng_u01() * 9));
        int r0 = (int)(rng_u01() * N), n = (int)(rng_u01() * (N - r0 + 1));
        MicroPlan pl;
        microplan_init(&pl, N);
        microplan_build(&pl, len, r0, n, T, cap, align);
        errors += plan_errors(&pl, len, r0, n, T, cap, align);
        plans++;
        microplan_free(&pl);
        free(len);
    }
    check(errors == 0,
          "%d random plans: rows once each, longest first, within capacity, full "
          "(%d violations)",
          plans, errors);
}

/* Rows of lengths 5, 9, 9, 3 at T = 10, capacity 20 tokens, align 1: calls {1, 2} at 9 and
 * {0, 3} at 5 (ties in index order). */
static void test_small_case(void) {
    const int len[] = {5, 9, 9, 3};
    MicroPlan pl;
    microplan_init(&pl, 4);
    microplan_build(&pl, len, 0, 4, 10, 20, 1);
    int ok = pl.n_mb == 2 && pl.mb[0].n == 2 && pl.mb[0].T == 9 && pl.mb[0].rows[0] == 1 &&
             pl.mb[0].rows[1] == 2 && pl.mb[1].n == 2 && pl.mb[1].T == 5 && pl.mb[1].rows[0] == 0 &&
             pl.mb[1].rows[1] == 3;
    check(ok, "hand-made plan: {1, 2} at 9 then {0, 3} at 5");
    microplan_build(&pl, len, 0, 4, 10, 20, 4); /* 9 -> 12 > 10: capped at T */
    check(pl.mb[0].T == 10 && pl.mb[0].n == 2 && pl.mb[1].T == 8 && pl.mb[1].n == 2,
          "alignment 4: lengths 10 (capped at T) and 8");
    microplan_build(&pl, NULL, 1, 3, 10, 25, 8); /* no grouping: rows 1, 2 then 3, at T */
    check(pl.n_mb == 2 && pl.mb[0].n == 2 && pl.mb[0].T == 10 && pl.mb[0].rows[0] == 1 &&
              pl.mb[0].rows[1] == 2 && pl.mb[1].n == 1 && pl.mb[1].rows[0] == 3 && pl.mb[1].T == 10,
          "without lengths: rows in order, every call at T");
    microplan_free(&pl);
}

static void test_gather_scatter(void) {
    enum { N = 6, T = 7 };
    const int len[N] = {3, 7, 1, 5, 5, 2};
    float src[N * T], back[N * T], stage[N * T];
    int isrc[N * T], istage[N * T], bad = 0;
    for (int k = 0; k < N * T; k++) src[k] = rng_sym(1.0), isrc[k] = k;
    for (int k = 0; k < N * T; k++) back[k] = NAN;
    MicroPlan pl;
    microplan_init(&pl, N);
    microplan_build(&pl, len, 1, 5, T, 12, 1);
    for (int j = 0; j < pl.n_mb; j++) {
        const MicroBatch *mb = &pl.mb[j];
        mb_gather_f32(stage, src, T, mb);
        mb_gather_i32(istage, isrc, T, mb);
        for (int k = 0; k < mb->n; k++)
            for (int t = 0; t < mb->T; t++) bad += istage[k * mb->T + t] != mb->rows[k] * T + t;
        mb_scatter_f32(back, stage, T, mb);
        float rs[N], rb[N];
        mb_gather_rows_f32(rs, src, mb); /* per-row: the first column stands in */
        for (int k = 0; k < mb->n; k++) rb[k] = -rs[k];
        float col[N] = {0};
        mb_scatter_rows_f32(col, rb, mb);
        for (int k = 0; k < mb->n; k++) bad += col[mb->rows[k]] != -src[mb->rows[k]];
        for (int k = 0; k < mb->n; k++) {
            int r = mb->rows[k];
            for (int t = 0; t < T; t++) {
                float want = t < mb->T ? src[r * T + t] : 0.0f;
                bad += back[r * T + t] != want;
            }
        }
    }
    for (int t = 0; t < T; t++) bad += !isnan(back[t]); /* row 0 is outside the range */
    check(bad == 0, "gather/scatter round-trip, zeros past each call's length (%d bad)", bad);
    microplan_free(&pl);
}

/* The token-balanced rank split: the ranks' ranges are contiguous and cover the rows in rank
 * order, and each rank's tokens are within one row's length of an even share. */
static void test_balanced_split(void) {
    int bad = 0, cases = 0, worst_even = 0, worst_bal = 0;
    for (int it = 0; it < 400; it++) {
        int n = (int)(rng_u01() * 80), size = 1 + (int)(rng_u01() * 9), maxlen = 0;
        int *len = malloc(sizeof(int) * (n ? n : 1));
        long long total = 0;
        for (int i = 0; i < n; i++) {
            len[i] = it % 5 == 0 ? 0 : 1 + (int)(rng_u01() * rng_u01() * 3000);
            total += len[i];
            if (len[i] > maxlen) maxlen = len[i];
        }
        int lo, hi, next = 0;
        if (!dist_split_balanced(n, len, size, 0, &lo, &hi)) {
            bad += total != 0;
            free(len);
            continue;
        }
        for (int r = 0; r < size; r++) {
            dist_split_balanced(n, len, size, r, &lo, &hi);
            long long tok = 0;
            for (int i = lo; i < hi; i++) tok += len[i];
            bad += lo != next || hi < lo;
            next = hi;
            double off = fabs((double)tok - (double)total / size);
            bad += off > maxlen;
            if (off > worst_bal) worst_bal = (int)off;
            long long even = 0; /* the row-count split, for the message */
            for (int i = (int)((long long)n * r / size); i < (int)((long long)n * (r + 1) / size);
                 i++)
                even += len[i];
            if (fabs((double)even - (double)total / size) > worst_even)
                worst_even = (int)fabs((double)even - (double)total / size);
        }
        bad += next != n;
        cases++;
        free(len);
    }
    check(bad == 0,
          "%d balanced rank splits: contiguous, covering, each rank within one row of an even "
          "token share (worst %d tokens off; the row-count split: %d)",
          cases, worst_bal, worst_even);
}

int main(void) {
    test_balanced_split();
    rng_seed(20261127);
    test_small_case();
    test_plans();
    test_gather_scatter();
    return test_summary();
}
