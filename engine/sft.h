/* Supervised fine-tuning on worked solutions: next-token cross-entropy on response tokens. */
#pragma once
#include "model.h"
#include "run_config.h"
#include "tb_log.h"
#include "task_arith.h"

/* A batch of tokenized problems, right-padded to the longest row. */
typedef struct {
    int B, T;         /* rows, padded length of this batch */
    int cap_B, cap_T; /* capacity */
    int *tokens;      /* (B, T) bos prompt solution eos pad... */
    int *targets;     /* (B, T) next token on solution positions, -1 elsewhere */
    int *prompt_len;  /* (B) bos + prompt tokens */
    int n_target;     /* valid targets in the batch */
} SftBatch;

/* Capacity for B rows of up to T tokens. */
void sft_batch_init(SftBatch *b, int B, int T);
void sft_batch_free(SftBatch *b);
/* Fills the batch with problems first..first+B-1 of stream seed. Returns DR_ERR if a
 * problem does not fit in the capacity T. */
int sft_batch_fill(SftBatch *b, const ArithParams *ap, unsigned long long seed,
                   unsigned long long first, int B);
/* Longest sequence (bos + prompt + solution + eos) the task parameters can produce. */
int sft_max_len(const ArithParams *ap);

/* Mean cross-entropy over targets; with train set also its gradient into m->grads. */
double sft_loss(Model *m, const SftBatch *b, int train, float *logp_buf, float *dlogp_buf);

/* Runs the supervised phase of a train config on m, logging into run_dir (and its lines into
 * tb, if not NULL, as they are written). */
int sft_run(Model *m, const RunConfig *rc, const char *run_dir, TbLog *tb);
