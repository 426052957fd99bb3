/* The task interface: the arithmetic task and the JSONL math datasets (task.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dataset.h"
#include "math_verify.h"
#include "task.h"
#include "tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/error.h"

/* Longest prompt encoded for a dataset task, in tokens. */
#define TASK_MAX_PROMPT (1 << 16)

int task_prompt_tokens(const ArithParams *ap, unsigned long long seed, long long index, int *ids,
                       int max) {
    char prompt[ARITH_MAX_TEXT], sol[ARITH_MAX_TEXT];
    long ans;
    arith_problem(ap, seed, (unsigned long long)index, prompt, sol, &ans);
    ids[0] = CHARTOK_BOS;
    int n = chartok_encode(prompt, ids + 1, max - 1);
    CHECK(n > 0);
    return n + 1;
}

double rollout_verify(const int *row, int prompt_len, int resp_len) {
    char prompt[2 * ARITH_MAX_TEXT], resp[4096];
    chartok_decode(row, prompt_len, prompt, sizeof prompt);
    chartok_decode(row + prompt_len, resp_len, resp, sizeof resp);
    return arith_verify(prompt, resp);
}

int task_is_dataset(const char *name) {
    return dataset_preset_valid(name);
}

int task_open_arith(Task *t, const RunConfig *rc) {
    memset(t, 0, sizeof *t);
    t->kind = TASK_ARITH;
    /* prompts and the verifier only: the teacher's slips touch SFT demonstrations alone */
    t->ap = (ArithParams){rc->task.min_operands, rc->task.max_operands, rc->task.max_value, 0.0};
    t->seed = (unsigned long long)rc->seed;
    t->eval_seed = (unsigned long long)rc->task.eval_seed;
    t->eval_n = rc->task.eval_size;
    t->n_eval_sets = 1;
    t->eval_sets[0] = (TaskEvalSet){"arith", 0, t->eval_n};
    t->vocab = CHARTOK_VOCAB;
    t->stop[0] = CHARTOK_EOS;
    t->n_stop = 1;
    t->pad_id = CHARTOK_PAD;
    char digits[32];
    int dv = snprintf(digits, sizeof digits, "%d", rc->task.max_value);
    t->max_prompt = 1 + 2 + rc->task.max_operands * (dv + 1);
    int delim[2];
    if (chartok_encode(rc->rl.step_delimiter, delim, 2) != 1)
        return dr_error("'rl.step_delimiter' \"%s\" is not one of the arithmetic task's "
                        "characters",
                        rc->rl.step_delimiter);
    t->delim_id = delim[0];
    return DR_OK;
}

static void prompts_free(TaskPrompts *p) {
    for (int i = 0; i < p->n; i++) {
        free(p->ids ? p->ids[i] : NULL);
        free(p->gold ? p->gold[i] : NULL);
    }
    free(p->ids);
    free(p->len);
    free(p->gold);
    memset(p, 0, sizeof *p);
}

/* Encodes text (bos first when bos >= 0) into a malloc'd array; DR_ERR names WHERE. */
static int encode_text(TokBpe *tok, const char *text, int bos, const char *where, int **ids,
                       int *n) {
    int off = bos >= 0 ? 1 : 0;
    int *buf = xmalloc(sizeof(int) * (TASK_MAX_PROMPT + 1));
    buf[0] = bos;
    int got = tok_bpe_encode(tok, text, strlen(text), buf + off, TASK_MAX_PROMPT);
    int st = DR_OK;
    if (got == -1)
        st = dr_error("%s: the prompt needs more than %d tokens", where, TASK_MAX_PROMPT);
    else if (got == -2)
        st = dr_error("%s: the prompt is not valid UTF-8", where);
    else if (got < 0)
        st = dr_error("%s: the tokenizer could not encode the prompt", where);
    else if (got + off == 0)
        st = dr_error("%s: the prompt encodes to no tokens", where);
    if (st) {
        free(buf);
        return st;
    }
    int *fit = realloc(buf, sizeof(int) * (size_t)(got + off)); /* not 256 KiB a prompt */
    *ids = fit ? fit : buf;
    *n = got + off;
    return DR_OK;
}

/* Loads and encodes one dataset file (at most max_items items; all when max_items < 0). */
static int load_prompts(Task *t, const RunConfig *rc, const char *key, const char *path,
                        int max_items, TaskPrompts *p) {
    memset(p, 0, sizeof *p);
    if (access(path, R_OK) != 0) return dr_error("'%s': %s: no such readable file", key, path);
    Dataset ds;
    const DatasetFields fields = {rc->task.prompt_field[0] ? rc->task.prompt_field : NULL,
                                  rc->task.answer_field[0] ? rc->task.answer_field : NULL};
    if (dataset_load(path, rc->task.name, &fields, rc->task.max_bad_fraction, &ds)) return DR_ERR;
    if (ds.n == 0) {
        dataset_free(&ds);
        return dr_error("'%s': %s: no usable items", key, path);
    }
    int n = max_items >= 0 && max_items < ds.n ? max_items : ds.n;
    p->ids = xcalloc(n, sizeof(int *));
    p->len = xcalloc(n, sizeof(int));
    p->gold = xcalloc(n, sizeof(char *));
    int bos = t->tpl.kind == CHAT_RAW ? tok_bpe_bos_id(t->tok) : -1;
    const int limit = rc->task.max_prompt_tokens;
    int st = DR_OK, skipped = 0;
    char where[PATH_MAX + 32];
    for (int i = 0; i < ds.n && p->n < n && st == DR_OK; i++) {
        const DatasetItem *it = &ds.items[i];
        snprintf(where, sizeof where, "%s:%d", path, it->line);
        ChatTemplate tpl = t->tpl; /* the item's own system message in place of task.system */
        if (it->system) tpl.system = it->system;
        char *text = chat_format(&tpl, it->prompt);
        const int k = p->n;
        st = encode_text(t->tok, text, bos, where, &p->ids[k], &p->len[k]);
        free(text);
        if (st) break;
        if (limit > 0 && p->len[k] > limit) { /* the next item takes its place */
            free(p->ids[k]);
            p->ids[k] = NULL;
            skipped++;
            continue;
        }
        p->n = k + 1;
        p->gold[k] = xmalloc(strlen(it->gold) + 1);
        strcpy(p->gold[k], it->gold);
        if (p->len[k] > t->max_prompt) t->max_prompt = p->len[k];
    }
    dataset_free(&ds);
    if (st == DR_OK && skipped > 0)
        fprintf(stderr,
                "warning: '%s': %s: skipped %d prompt%s longer than %d tokens "
                "(task.max_prompt_tokens)\n",
                key, path, skipped, skipped == 1 ? "" : "s", limit);
    if (st == DR_OK && p->n == 0)
        st = dr_error("'%s': %s: every prompt is longer than task.max_prompt_tokens (%d)", key,
                      path, limit);
    if (st) prompts_free(p);
    return st;
}

/* Moves src's prompts onto the end of dst (src is left empty). */
static void prompts_append(TaskPrompts *dst, TaskPrompts *src) {
    const size_t n = (size_t)dst->n + (size_t)src->n;
    dst->ids = realloc(dst->ids, sizeof(int *) * (n ? n : 1));
    dst->len = realloc(dst->len, sizeof(int) * (n ? n : 1));
    dst->gold = realloc(dst->gold, sizeof(char *) * (n ? n : 1));
    CHECK(dst->ids && dst->len && dst->gold);
    memcpy(dst->ids + dst->n, src->ids, sizeof(int *) * (size_t)src->n);
    memcpy(dst->len + dst->n, src->len, sizeof(int) * (size_t)src->n);
    memcpy(dst->gold + dst->n, src->gold, sizeof(char *) * (size_t)src->n);
    dst->n = (int)n;
    free(src->ids), free(src->len), free(src->gold);
    memset(src, 0, sizeof *src);
}

/* Whether a set before the one being added is called name. */
static int eval_name_taken(const Task *t, const char *name) {
    for (int s = 0; s < t->n_eval_sets; s++)
        if (!strcmp(t->eval_sets[s].name, name)) return 1;
    return 0;
}

/* The name of eval file PATH: its base name without its extension, made unique among the sets
 * before it with "#2", "#3", ... */
static void eval_set_name(const Task *t, const char *path, char *name, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    const size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    char stem[48];
    snprintf(stem, sizeof stem, "%.*s", (int)(n < sizeof stem - 1 ? n : sizeof stem - 1), base);
    snprintf(name, cap, "%s", stem);
    for (int k = 2; eval_name_taken(t, name); k++) snprintf(name, cap, "%s#%d", stem, k);
}

/* The eval set: task.eval_data's files (separated by commas) one after the other. */
static int load_eval_sets(Task *t, const RunConfig *rc) {
    const char *list = rc->task.eval_data;
    char path[CFG_STR_LEN];
    for (const char *s = list;; s++) {
        const size_t n = strcspn(s, ",");
        if (n == 0) return dr_error("'task.eval_data': \"%s\": an empty file name", list);
        if (t->n_eval_sets == TASK_MAX_EVAL_SETS)
            return dr_error("'task.eval_data': more than %d files", TASK_MAX_EVAL_SETS);
        snprintf(path, sizeof path, "%.*s", (int)n, s);
        TaskPrompts p;
        if (load_prompts(t, rc, "task.eval_data", path, rc->task.eval_size, &p)) return DR_ERR;
        TaskEvalSet *set = &t->eval_sets[t->n_eval_sets];
        eval_set_name(t, path, set->name, sizeof set->name);
        set->start = t->eval.n;
        prompts_append(&t->eval, &p);
        set->end = t->eval.n;
        t->n_eval_sets++;
        s += n;
        if (!*s) return DR_OK;
    }
}

static unsigned long long splitmix64(unsigned long long *s) {
    unsigned long long z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int open_dataset(Task *t, const RunConfig *rc, const char *cfg_path) {
    const char *dir = rc->model.init;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!strcmp(dir, "random") || access(path, R_OK) != 0)
        return dr_error("%s: task.name \"%s\" needs 'model.init' to be a Hugging Face model "
                        "directory with tokenizer.json (got \"%s\")",
                        cfg_path, rc->task.name, dir);
    if (tok_bpe_load(dir, &t->tok)) return DR_ERR;
    ChatKind kind;
    if (chat_template_kind(rc->task.template_name, dir, &kind)) return DR_ERR;
    t->tpl.kind = kind;
    t->tpl.system = rc->task.system[0] ? rc->task.system : NULL;
    t->tpl.suffix = rc->task.suffix[0] ? rc->task.suffix : NULL;
    if (chat_stop_tokens(kind, t->tok, path, t->stop, &t->n_stop)) return DR_ERR;
    if (t->n_stop == 0)
        return dr_error("%s: the template \"%s\" needs the tokenizer's eos token to end a "
                        "response, and %s names none",
                        cfg_path, chat_kind_name(kind), dir);
    t->vocab = tok_bpe_vocab_size(t->tok);
    t->pad_id = tok_bpe_eos_id(t->tok) >= 0 ? tok_bpe_eos_id(t->tok) : t->stop[0];
    t->eval_n = rc->task.eval_size;
    int d[8];
    const char *delim = rc->rl.step_delimiter;
    int nd = tok_bpe_encode(t->tok, delim, strlen(delim), d, 8);
    if (nd == 0 || nd == -2 || nd < -2)
        return dr_error("%s: 'rl.step_delimiter' \"%s\" does not encode to a token", cfg_path,
                        delim);
    if (nd != 1 && !strcmp(rc->rl.granularity, "step"))
        fprintf(stderr,
                "warning: 'rl.step_delimiter' \"%s\" is %s tokens; steps end at its first "
                "token (%d)\n",
                delim, nd < 0 ? "more than 8" : "several", d[0]);
    t->delim_id = d[0];
    if (load_prompts(t, rc, "task.train_data", rc->task.train_data, -1, &t->train)) return DR_ERR;
    if (load_eval_sets(t, rc)) return DR_ERR;
    t->eval_n = t->eval.n;
    /* a Fisher-Yates permutation of the training items, fixed by the seed */
    t->perm = xcalloc(t->train.n, sizeof(long long));
    for (int i = 0; i < t->train.n; i++) t->perm[i] = i;
    unsigned long long s = (unsigned long long)rc->seed ^ 0x7461736b5f6f7264ULL;
    for (int i = t->train.n - 1; i > 0; i--) {
        int j = (int)(splitmix64(&s) % (unsigned long long)(i + 1));
        long long tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
    return DR_OK;
}

int task_open(Task *t, const RunConfig *rc, const char *cfg_path) {
    if (!task_is_dataset(rc->task.name)) {
        if (task_open_arith(t, rc)) return dr_error("%s: %s", cfg_path, dr_last_error());
        return DR_OK;
    }
    memset(t, 0, sizeof *t);
    t->kind = TASK_DATASET;
    if (open_dataset(t, rc, cfg_path)) {
        task_close(t);
        return DR_ERR;
    }
    return DR_OK;
}

void task_close(Task *t) {
    if (t->tok) tok_bpe_free(t->tok);
    prompts_free(&t->train);
    prompts_free(&t->eval);
    free(t->perm);
    memset(t, 0, sizeof *t);
}

static int copy_prompt(const int *src, int n, int *ids, int max) {
    CHECK(n <= max);
    memcpy(ids, src, sizeof(int) * n);
    return n;
}

int task_train_prompt(const Task *t, long long index, int *ids, int max) {
    if (t->kind == TASK_ARITH) return task_prompt_tokens(&t->ap, t->seed, index, ids, max);
    long long i = t->perm[index % t->train.n];
    return copy_prompt(t->train.ids[i], t->train.len[i], ids, max);
}

int task_eval_prompt(const Task *t, int index, int *ids, int max) {
    if (t->kind == TASK_ARITH) return task_prompt_tokens(&t->ap, t->eval_seed, index, ids, max);
    CHECK(index >= 0 && index < t->eval.n);
    return copy_prompt(t->eval.ids[index], t->eval.len[index], ids, max);
}

double task_verify(const Task *t, int eval, long long index, const int *row, int prompt_len,
                   int resp_len) {
    if (t->kind == TASK_ARITH) return rollout_verify(row, prompt_len, resp_len);
    const char *gold = eval ? t->eval.gold[index] : t->train.gold[t->perm[index % t->train.n]];
    const int *resp = row + prompt_len;
    int n = 0; /* up to the first stop token of any kind */
    for (int stop = 0; n < resp_len && !stop; n += !stop)
        for (int s = 0; s < t->n_stop; s++) stop |= resp[n] == t->stop[s];
    /* token by token (byte-level BPE: the bytes concatenate), skipping ids the tokenizer
     * lacks (a model's embedding may have more rows than the tokenizer has tokens) */
    size_t cap = (size_t)n * 16 + 64, len = 0;
    char *text = xmalloc(cap);
    text[0] = 0;
    for (int i = 0; i < n; i++) {
        for (;;) {
            int got = resp[i] >= 0 && resp[i] < t->vocab
                          ? tok_bpe_decode(t->tok, resp + i, 1, text + len, cap - len)
                          : 0;
            if (got >= 0) {
                len += (size_t)got;
                break;
            }
            if (cap - len > 4096) break; /* no token behind this id */
            cap *= 2;
            text = realloc(text, cap);
            CHECK(text != NULL);
        }
        text[len] = 0;
    }
    char answer[MATH_ANSWER_MAX];
    int rule = math_extract(text, answer, sizeof answer);
    double ok = rule != MATH_RULE_NONE && math_equal(gold, answer);
    free(text);
    return ok;
}
