/* Rollouts for the RL step (PRIME.md section 1): draw prompts, sample K responses each,
 * verify, keep the groups whose mean outcome lies in [acc_lo, acc_hi], oversampling until
 * P groups pass, with surplus groups carried to the next step. */
#pragma once
#include "generate.h"
#include "run_config.h"
#include "task.h"

/* Groups of K rows; each row is a prompt followed by its response, padded to Tcap. */
typedef struct {
    int K, Tcap, cap;     /* rows per group, row capacity, group capacity */
    int n;                /* groups held */
    int *tokens;          /* (cap*K, Tcap) bos prompt response [eos] pad... */
    int *prompt_len;      /* (cap*K) bos + prompt tokens */
    int *resp_len;        /* (cap*K) response tokens, eos included */
    int *truncated;       /* (cap*K) 1 when the response hit the length limit without eos */
    float *outcome;       /* (cap*K) verifier outcome in [0, 1] */
    long long *prompt_id; /* (cap) index of the prompt in the task's stream */
} Groups;

void groups_init(Groups *g, int cap, int K, int Tcap);
void groups_free(Groups *g);
/* Appends group i of src to dst (which must have room). */
void groups_push(Groups *dst, const Groups *src, int i);
/* Moves the first n groups of src into dst (dst cleared first); src keeps the rest in order. */
void groups_take(Groups *dst, Groups *src, int n);

typedef struct {
    int prompts_drawn, groups_kept, attempts, truncated_rows;
    double outcome_sum, samples;       /* before filtering */
    double response_tokens;            /* generated, before filtering */
    double t_generate, t_verify;       /* seconds */
    double decode_steps, rows_decoded; /* this rank's generation: steps, live rows summed */
} RolloutStats;

typedef struct {
    const RunConfig *rc;
    const Task *task;
    Generator *gen;
    Groups scratch; /* one attempt's groups */
    Groups carry;   /* passing groups not used yet */
    long long next_prompt;
    int *prompt_tok, *prompt_len, *resp_len, *hit_eos; /* one attempt's rows */
    unsigned long long *row_ids;
} Rollout;

/* PRIME.md section 1: a group passes when its mean outcome lies in [acc_lo, acc_hi] and,
 * with drop_truncated, none of its K responses was cut at the length limit. */
int group_passes(const float *outcome, const int *truncated, int K, double acc_lo, double acc_hi,
                 int drop_truncated);

/* task must outlive the rollout. */
void rollout_init(Rollout *r, const RunConfig *rc, const Task *task, Generator *gen, int Tcap);
void rollout_free(Rollout *r);
/* Fills batch with up to P passing groups for this step (fewer when the attempts run out). */
void rollout_step(Rollout *r, Groups *batch, RolloutStats *st);
/* Copies up to n groups of the last attempt, whether they passed or not (for the debug dump
 * of a step where nothing passed). */
void rollout_last_attempt(Rollout *r, Groups *dst, int n);
