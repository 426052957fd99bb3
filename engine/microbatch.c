/* Length-grouped micro-batches (microbatch.h). */
#include "microbatch.h"

#include <stdlib.h>
#include <string.h>
#include "../runtime/check.h"

void microplan_init(MicroPlan *pl, int max_rows) {
    memset(pl, 0, sizeof *pl);
    pl->cap = max_rows > 0 ? max_rows : 1;
    pl->order = xcalloc((size_t)pl->cap, sizeof(int));
    pl->mb = xcalloc((size_t)pl->cap, sizeof(MicroBatch));
}

void microplan_free(MicroPlan *pl) {
    free(pl->order);
    free(pl->mb);
    memset(pl, 0, sizeof *pl);
}

/* Insertion sort by length, longest first, keeping index order among equal lengths: the
 * ranges are a few hundred rows, and the result must not depend on the C library's qsort. */
static void sort_longest_first(int *order, int n, const int *len) {
    for (int a = 1; a < n; a++) {
        int r = order[a], b = a;
        for (; b > 0 && len[order[b - 1]] < len[r]; b--) order[b] = order[b - 1];
        order[b] = r;
    }
}

void microplan_build(MicroPlan *pl, const int *len, int r0, int n, int T, size_t capacity,
                     int align) {
    CHECK(n >= 0 && n <= pl->cap && T >= 1 && capacity >= (size_t)T && align >= 1);
    for (int k = 0; k < n; k++) pl->order[k] = r0 + k;
    if (len) sort_longest_first(pl->order, n, len);
    pl->n_mb = 0;
    for (int k = 0; k < n;) {
        int Tm = len ? len[pl->order[k]] : T;
        Tm = Tm < 1 ? 1 : (Tm + align - 1) / align * align;
        if (Tm > T) Tm = T;
        size_t fit = capacity / (size_t)Tm;
        int take = fit < (size_t)(n - k) ? (int)fit : n - k;
        MicroBatch *mb = &pl->mb[pl->n_mb++];
        mb->n = take;
        mb->T = Tm;
        mb->rows = pl->order + k;
        k += take;
    }
}

void mb_gather_i32(int *dst, const int *src, int T, const MicroBatch *mb) {
    for (int k = 0; k < mb->n; k++)
        memcpy(dst + (size_t)k * mb->T, src + (size_t)mb->rows[k] * T, sizeof(int) * mb->T);
}

void mb_gather_f32(float *dst, const float *src, int T, const MicroBatch *mb) {
    for (int k = 0; k < mb->n; k++)
        memcpy(dst + (size_t)k * mb->T, src + (size_t)mb->rows[k] * T, sizeof(float) * mb->T);
}

void mb_scatter_f32(float *dst, const float *src, int T, const MicroBatch *mb) {
    for (int k = 0; k < mb->n; k++) {
        float *row = dst + (size_t)mb->rows[k] * T;
        memcpy(row, src + (size_t)k * mb->T, sizeof(float) * mb->T);
        memset(row + mb->T, 0, sizeof(float) * (T - mb->T));
    }
}

void mb_gather_rows_f32(float *dst, const float *src, const MicroBatch *mb) {
    for (int k = 0; k < mb->n; k++) dst[k] = src[mb->rows[k]];
}

void mb_scatter_rows_f32(float *dst, const float *src, const MicroBatch *mb) {
    for (int k = 0; k < mb->n; k++) dst[mb->rows[k]] = src[k];
}
