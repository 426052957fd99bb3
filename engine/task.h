/* The RL task behind `denserl train` (issue 6): where prompts come from, which tokens end and
 * pad a response, how a response is scored, and the held-out set. Two kinds:
 *
 *   arith        the embedded chain-arithmetic task (task_arith.h) with the character
 *                tokenizer; the functions below wrap task_prompt_tokens / rollout_verify
 *                exactly, so arithmetic runs are bit-identical to what they were.
 *   gsm8k, math, a JSONL dataset (dataset.h presets; custom names its fields in
 *   verl, custom task.prompt_field / task.answer_field, which may also override a preset's)
 *                with the Hugging Face tokenizer of model.init, a chat template
 *                (chat_template.h, task.template / task.system / task.suffix) and the math
 *                verifier (math_verify.h).
 *
 * Dataset tasks: every prompt of task.train_data and task.eval_data is formatted and encoded
 * once, when the task is opened (a prompt that cannot be encoded is an error naming
 * FILE:LINE). Stream index i of the training stream is item perm[i mod n] of the train file,
 * perm a permutation of the items fixed by the run's seed; the eval set is the first
 * task.eval_size items of the eval file (fewer when the file is shorter). task.eval_data may
 * name several files, separated by commas (benchmarks: "math500.jsonl,aime24.jsonl"): the eval
 * set is then their first task.eval_size items each, one after the other, and each file is a
 * named part of it (eval_sets), scored on its own. A response ends at
 * any of the template's stop tokens (<|im_end|>, <|eot_id|>, the tokenizer's eos for raw, and
 * the end-of-text tokens <|endoftext|>, <|end_of_text|>); rows are padded with the tokenizer's eos
 * token (the primary stop token when there is none); pad positions are masked out anyway. A
 * response is decoded up to its first stop token of any kind and scores 1 when math_extract finds
 * an answer in it that math_equal deems equal to the item's gold answer (as `denserl eval` scores
 * it). The step delimiter (rl.step_delimiter, for rl.granularity "step") is the single token the
 * delimiter encodes to; a delimiter that encodes to several tokens uses the first of them (a
 * warning says so). */
#pragma once
#include "chat_template.h"
#include "run_config.h"
#include "task_arith.h"
#include "tokenizer_bpe.h"

typedef enum { TASK_ARITH = 0, TASK_DATASET = 1 } TaskKind;

#define TASK_MAX_EVAL_SETS 16

/* A named part of the held-out set: items [start, end). */
typedef struct {
    char name[64]; /* the file's name without folder and extension ("arith" for arith) */
    int start, end;
} TaskEvalSet;

/* Encoded prompts of one dataset file. */
typedef struct {
    int n;
    int **ids;   /* (n) each (len[i]) */
    int *len;    /* (n) */
    char **gold; /* (n) the final answers */
} TaskPrompts;

typedef struct {
    TaskKind kind;
    int eval_n; /* held-out problems */
    TaskEvalSet eval_sets[TASK_MAX_EVAL_SETS];
    int n_eval_sets;                 /* one per eval file (at least one) */
    int vocab;                       /* tokens the model must have (ids below vocab) */
    int pad_id;                      /* fills rows past their end */
    int delim_id;                    /* the step delimiter token */
    int max_prompt;                  /* longest prompt in tokens (bos/template included) */
    int stop[CHAT_MAX_STOP], n_stop; /* any of them ends a response (the first: the primary) */
    /* arith */
    ArithParams ap;
    unsigned long long seed, eval_seed;
    /* datasets */
    TokBpe *tok;
    ChatTemplate tpl;
    TaskPrompts train, eval;
    long long *perm; /* (train.n) the training order */
} Task;

/* 1 when NAME is a dataset task (gsm8k, math, verl, custom). */
int task_is_dataset(const char *name);
/* The arithmetic task of rc (task.min_operands ...). DR_ERR when rl.step_delimiter is not one
 * of the character tokenizer's tokens. */
int task_open_arith(Task *t, const RunConfig *rc);
/* The task rc names: for a dataset task, reads the tokenizer of model.init, the template and
 * both files. DR_OK, or DR_ERR naming the config key, file and line at fault (nothing kept). */
int task_open(Task *t, const RunConfig *rc, const char *cfg_path);
void task_close(Task *t);

/* Prompt of training-stream index (>= 0) / of held-out item index (< eval_n) into ids
 * (at most max). Returns the token count. */
int task_train_prompt(const Task *t, long long index, int *ids, int max);
int task_eval_prompt(const Task *t, int index, int *ids, int max);
/* Outcome in [0, 1] of one row (prompt_len prompt tokens, then resp_len response tokens, the
 * stop token included when there is one); eval selects the held-out set, index the item
 * (the training-stream index, or the held-out index). */
double task_verify(const Task *t, int eval, long long index, const int *row, int prompt_len,
                   int resp_len);

/* The arithmetic task's building blocks. */
/* Encodes "Q:...=" for problem index of the task stream seed: bos + characters. Returns the
 * token count. */
int task_prompt_tokens(const ArithParams *ap, unsigned long long seed, long long index, int *ids,
                       int max);
/* The arithmetic verifier's outcome for one row (prompt and response decoded from the
 * tokens). */
double rollout_verify(const int *row, int prompt_len, int resp_len);
