/* Micro-batches grouped by length. The step's rows are packed to the longest row of the
 * whole step; a model call over them at that length spends most of its work on padding when
 * response lengths vary (math responses run from a hundred tokens to thousands). A plan
 * takes a range of rows longest first and cuts it into model calls that each run at the
 * length of their own longest row, with as many rows as the model's activation capacity
 * holds at that length. Rows keep their place in the (N, T) arrays; a call's rows are
 * gathered into dense (n, Tm) staging arrays and its outputs scattered back. */
#pragma once
#include <stddef.h>

typedef struct {
    int n;           /* rows in the call */
    int T;           /* columns it runs: its longest row, rounded up to the plan's alignment */
    const int *rows; /* the rows, indices into the batch, longest first */
} MicroBatch;

typedef struct {
    int *order;     /* (cap) row indices of the range, longest first, ties by index */
    MicroBatch *mb; /* (cap) the calls */
    int n_mb, cap;
} MicroPlan;

void microplan_init(MicroPlan *pl, int max_rows);
void microplan_free(MicroPlan *pl);
/* Plans rows r0 .. r0+n-1 of a batch of T columns, where row i needs its first len[i]
 * columns (prompt + response). Each call runs Tm = min(T, len of its first row rounded up to
 * a multiple of align) columns and takes at most capacity / Tm rows (at least one); capacity
 * is the model's activation capacity in tokens and must be at least T. len NULL: rows in
 * index order, every call at T (no grouping by length). */
void microplan_build(MicroPlan *pl, const int *len, int r0, int n, int T, size_t capacity,
                     int align);

/* dst (mb->n, mb->T) = the call's rows of src (N, T), their first mb->T columns. */
void mb_gather_i32(int *dst, const int *src, int T, const MicroBatch *mb);
void mb_gather_f32(float *dst, const float *src, int T, const MicroBatch *mb);
/* The call's rows of dst (N, T) = src (mb->n, mb->T), columns past mb->T set to 0 (the value
 * a forward leaves where there is no target). */
void mb_scatter_f32(float *dst, const float *src, int T, const MicroBatch *mb);
/* Per-row values: dst[k] = src[rows[k]], and back. */
void mb_gather_rows_f32(float *dst, const float *src, const MicroBatch *mb);
void mb_scatter_rows_f32(float *dst, const float *src, const MicroBatch *mb);
