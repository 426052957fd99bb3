/* What a PRIME run holds in its device's memory (the GPU's, or the host's on the CPU), from the
 * shapes alone and before anything is allocated: so that `rl.micro_batch_rows: "auto"` can
 * take the most rows that fit, and a run that cannot fit stops before it starts instead of at
 * the allocation that fails. The terms follow the allocations of model.c (activations_init,
 * model_alloc_grads, the bf16 state), generate.c (generator_init), optimizer.c and the
 * kernels' scratch; test_memplan holds the total to the emulated GPU's measured peak. */
#pragma once
#include "model.h"
#include "run_config.h"

typedef struct {
    double weights;     /* fp32 parameters of every model, their bf16 copies, rotary tables */
    double optimizer;   /* gradients, AdamW moments, a sharded master (model_shard_master) */
    double activations; /* what the model calls keep, and their scratch: grows with the rows */
    double generation;  /* KV cache, decode buffers, packed q|k|v weights */
    double scratch;     /* the kernels' and libraries' own: logits chunks, sorts, workspaces */
    double total;
    /* memplan_resolve's decision: rows per model call of the step's n, "auto" or not (2:
     * "auto" settled by the run being resumed, cmd_train), and the device's free memory then
     * (0 where unknown) */
    int rows, n, automatic;
    Backend be;
    double free_b;
} MemPlan;

/* The shapes of a run that set its memory. */
typedef struct {
    ModelConfig mc; /* the policy's */
    Backend be;
    int rows;        /* rows per model call (rl.micro_batch_rows, resolved) */
    int policy_rows; /* the policy's activation rows: rows, or the SFT batch if larger */
    int T;           /* the longest RL row (prompt + response) */
    int policy_T;    /* the policy's activation length: T, or the SFT length if longer */
    int gen_rows;    /* rows generation holds at once */
} MemShape;

/* The plan of rc's RL phase over shape s. */
void memplan_prime(const RunConfig *rc, const MemShape *s, MemPlan *p);

/* Settles rc->rl.micro_batch_rows before the models are made: "auto" becomes the most rows
 * (at most the step's batch) whose plan fits the device's free memory less a reserve; a
 * number is kept, and refused (one line naming the field, DR_ERR) where its plan exceeds the
 * free memory outright. With several ranks, every rank takes the smallest rank's answer.
 * s->rows and s->policy_rows are filled in; s->policy_rows must hold the SFT batch (or 0) on
 * entry. what names the config in messages. plan gets the plan of the rows taken. */
int memplan_resolve(RunConfig *rc, MemShape *s, const char *what, MemPlan *plan);
/* One line on stdout: the plan's total against the free memory, the rows per call and how
 * they were chosen, and the plan's parts. */
void memplan_print(const MemPlan *p);
