/* Learning-rate schedules: a linear warm-up to the peak, then the peak held (constant) or a
 * decay to the floor, min_ratio x peak (cosine or linear). SFT schedules by optimizer step; the RL
 * phase by RL step, the same rate for every mini-batch of a step and for the policy, the PRM and
 * the critic alike (each from its own peak). */
#pragma once

typedef enum { LR_CONSTANT, LR_COSINE, LR_LINEAR } LrShape;

/* "constant", "cosine" or "linear"; -1 for anything else. */
int lr_shape(const char *name);

/* The rate of update k (0-based) of total: peak x (k + 1) / warmup for k < warmup; after
 * that, with p = (k - warmup) / (total - warmup) (at most 1: updates past total stay at the floor),
 * peak (constant), peak x (min_ratio + (1 - min_ratio)(1 + cos(pi p)) / 2) (cosine) or
 * peak x (min_ratio + (1 - min_ratio)(1 - p)) (linear). */
double lr_at(LrShape shape, double peak, int k, int total, int warmup, double min_ratio);
