/* Question-answer datasets in JSONL (one JSON object per line), read into prompts and gold
 * final answers for generation and evaluation. Presets name the fields and how the gold
 * answer is taken from the answer field:
 *
 *   gsm8k   prompt "question", answer "answer": the text after the last "####", trimmed,
 *           commas removed ("#### 1,234" gives "1234")
 *   math    prompt "problem", answer "solution": the last \boxed{} (or \fbox{}) of the
 *           solution (math_gold_answer)
 *   verl    prompt "prompt", answer "reward_model.ground_truth" (verl's RL data, PRIME's
 *           Eurus-2-RL-Data among them, written as JSONL): the gold answer as custom's
 *   custom  prompt_field and answer_field must be given: the "####" part of the answer when
 *           it has one, else its last \boxed{}, else the whole answer, trimmed
 *
 * A field name is a key, or a path of keys through nested objects ("reward_model.ground_truth")
 * when no key has that name. A prompt is a string, or a list of chat messages ({"role",
 * "content"}): an optional system message, then one user message; the system message then
 * goes with the item (it takes the place of the template's system prompt).
 *
 * Field names can be overridden for any preset. An answer may be a JSON number (custom
 * datasets with "answer": 42). A line is bad when it is not a JSON object, lacks a field,
 * has an empty prompt, or has no gold answer to be found; blank lines are ignored. When more
 * than max_bad of the non-blank lines are bad, loading fails with an error naming the file,
 * the count and the first bad line (FILE:LINE: why); otherwise the bad lines are skipped,
 * the first few are printed as warnings on stderr with their line numbers, and the count is
 * kept in n_bad. */
#pragma once

#define DATASET_MAX_BAD_DEFAULT 0.01

typedef struct {
    const char *prompt_field; /* NULL: the preset's */
    const char *answer_field; /* NULL: the preset's */
} DatasetFields;

typedef struct {
    char *prompt; /* the question, as in the file */
    char *system; /* the item's own system message, or NULL */
    char *gold;   /* the final answer */
    int line;     /* 1-based line in the file */
} DatasetItem;

typedef struct {
    int n;              /* usable items */
    DatasetItem *items; /* (n) */
    int n_lines;        /* non-blank lines read */
    int n_bad;          /* lines skipped as bad */
} Dataset;

/* 1 when NAME is gsm8k, math, verl or custom. */
int dataset_preset_valid(const char *name);
/* Loads PATH as the PRESET; fields may be NULL. max_bad in [0, 1]. DR_OK with *ds filled,
 * or DR_ERR (message names the file, and the line where one is at fault); *ds is empty
 * after an error. */
int dataset_load(const char *path, const char *preset, const DatasetFields *fields, double max_bad,
                 Dataset *ds);
void dataset_free(Dataset *ds);
