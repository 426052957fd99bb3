/* The RL debug dump (PRIME.md section 9): one safetensors file per step with the batch's
 * tensors, written before the policy update. */
#pragma once
#include "prime.h"

/* Writes DIR/step_NNNNNN.safetensors. Every (N, T) tensor is aligned with `tokens`: column t
 * belongs to token tokens[i, t] (the model's prediction alignment shifted by one). skipped
 * marks a step where no group passed the filter (the rows are the last attempt's, unused). */
int dump_step(const char *dir, int step, const StepBatch *b, const RunConfig *rc, int values,
              int skipped);
