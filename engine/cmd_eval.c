/* `denserl eval`: accuracy of a Hugging Face model on a GSM8K- or MATH-style JSONL dataset.
 * K replies per question are sampled in batches, each reply's final answer is extracted and
 * checked against the gold answer with the math verifier, and the run reports pass@1 (the
 * mean over questions of the fraction of correct replies) and pass@K (the fraction of
 * questions with at least one correct reply), with one JSON line per question when asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "dataset.h"
#include "math_verify.h"
#include "textgen.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/log.h"

static const char USAGE[] =
    "usage: denserl eval --model DIR --data FILE --task gsm8k|math|verl|custom [options]\n"
    "  --samples K            replies per question (1); pass@1 and pass@K are reported\n"
    "  --temperature T        default 0 (greedy) for K = 1, 0.6 otherwise\n"
    "  --limit N              only the first N questions\n"
    "  --out FILE             one JSON line per question: index, line, gold, extracted\n"
    "                         answers, outcomes, token counts, replies\n"
    "  --prompt-field F, --answer-field F   field names (required for --task custom)\n"
    "  --max-bad-fraction X   fail when more of the data lines are bad (0.01)\n";

typedef TextGenData EvalArgs;

typedef struct {
    int problems, samples;
    double pass1_sum;   /* sum over problems of the fraction correct */
    int passk;          /* problems with a correct reply */
    long long answered; /* replies with an extracted answer */
    long long tokens;   /* tokens generated */
    long long cut;      /* replies cut at the length limit */
} EvalTotals;

/* Scores question i's K replies, adds them to the totals and writes its line when f. */
static void score_problem(FILE *f, int index, const DatasetItem *it, const TextGenResult *r, int K,
                          EvalTotals *t) {
    json_t *ex = json_array(), *oc = json_array(), *tk = json_array(), *rs = json_array();
    char x[MATH_ANSWER_MAX];
    int correct = 0;
    for (int s = 0; s < K; s++) {
        int rule = math_extract(r[s].text, x, sizeof x);
        int ok = rule != MATH_RULE_NONE && math_equal(it->gold, x);
        correct += ok;
        t->answered += rule != MATH_RULE_NONE;
        t->tokens += r[s].tokens;
        t->cut += !r[s].stopped;
        json_array_append_new(ex, rule ? json_text_lossy(x, strlen(x)) : json_null());
        json_array_append_new(oc, json_integer(ok));
        json_array_append_new(tk, json_integer(r[s].tokens));
        json_array_append_new(rs, json_text_lossy(r[s].text, r[s].len));
    }
    t->problems++;
    t->samples += K;
    t->pass1_sum += (double)correct / K;
    t->passk += correct > 0;
    if (f) {
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(index));
        json_object_set_new(o, "line", json_integer(it->line));
        json_object_set_new(o, "gold", json_text_lossy(it->gold, strlen(it->gold)));
        json_object_set_new(o, "extracted", ex);
        json_object_set_new(o, "outcomes", oc);
        json_object_set_new(o, "pass1", json_real((double)correct / K));
        json_object_set_new(o, "passk", json_integer(correct > 0));
        json_object_set_new(o, "tokens", tk);
        json_object_set_new(o, "responses", rs);
        char *s = json_dumps(o, JSON_COMPACT);
        CHECK(s);
        fputs(s, f);
        fputc('\n', f);
        free(s);
        json_decref(o);
    } else {
        json_decref(ex), json_decref(oc), json_decref(tk), json_decref(rs);
    }
}

static void print_summary(const EvalArgs *a, const TextGenOptions *o, const TextGen *tg,
                          const Dataset *ds, const EvalTotals *t, double seconds) {
    const int K = a->samples;
    char dur[32];
    format_duration(seconds, dur, sizeof dur);
    printf("\n%-12s %s (%s)\n", "task", a->task, a->data);
    printf("%-12s %s (template %s)\n", "model", o->model_dir, chat_kind_name(tg->tpl.kind));
    printf("%-12s %d", "problems", t->problems);
    if (ds->n_bad) printf(" (skipped %d bad line%s)", ds->n_bad, ds->n_bad == 1 ? "" : "s");
    printf("\n%-12s %d per problem, temperature %g, top-p %g, top-k %d, max %d new tokens\n",
           "samples", K, o->sp.temperature, o->sp.top_p, o->sp.top_k, o->sp.max_new_tokens);
    const double P = t->problems > 0 ? t->problems : 1, S = t->samples > 0 ? t->samples : 1;
    printf("%-12s %.4f\n", "pass@1", t->pass1_sum / P);
    char label[32];
    snprintf(label, sizeof label, "pass@%d", K);
    printf("%-12s %.4f (%d of %d problems)\n", label, t->passk / P, t->passk, t->problems);
    printf("%-12s %.1f%% of replies had a final answer\n", "answered", 100.0 * t->answered / S);
    printf("%-12s %.1f mean per reply, %.1f%% cut at the length limit\n", "tokens", t->tokens / S,
           100.0 * t->cut / S);
    printf("%-12s %s, %.0f tokens/s\n", "time", dur, seconds > 0 ? t->tokens / seconds : 0.0);
}

/* textgen_run_all's callback: scores each problem's replies, then a progress line while
 * problems remain. */
typedef struct {
    FILE *out; /* --out, or NULL */
    const Dataset *ds;
    int n, k;
    double t0;
    EvalTotals t;
} EvalScorer;

static void score_replies(void *ctx, int i0, int np, TextGenResult *res) {
    EvalScorer *sc = ctx;
    EvalTotals *t = &sc->t;
    for (int q = 0; q < np; q++)
        score_problem(sc->out, i0 + q, &sc->ds->items[i0 + q], res + q * sc->k, sc->k, t);
    if (np < sc->n) {
        const int done = i0 + np;
        const double el = time_now() - sc->t0;
        char eta[32];
        format_duration(el / done * (sc->n - done), eta, sizeof eta);
        fprintf(stderr,
                "eval %d/%d problems | pass@1 %.4f | %.2f replies/s, %.0f tokens/s | ETA %s\n",
                done, sc->n, t->pass1_sum / t->problems, el > 0 ? t->samples / el : 0.0,
                el > 0 ? t->tokens / el : 0.0, eta);
    }
}

static int run(TextGenOptions *opt, const EvalArgs *a) {
    TextGen tg;
    if (textgen_open(&tg, opt)) return DR_ERR;
    Dataset ds;
    if (dataset_load(a->data, a->task, &a->fields, a->max_bad, &ds)) {
        textgen_close(&tg);
        return DR_ERR;
    }
    const int n = a->limit > 0 && a->limit < ds.n ? a->limit : ds.n, K = a->samples;
    const char **texts = xmalloc(sizeof(char *) * n), **systems = xmalloc(sizeof(char *) * n);
    int *lines = xmalloc(sizeof(int) * n);
    for (int i = 0; i < n; i++)
        texts[i] = ds.items[i].prompt, systems[i] = ds.items[i].system, lines[i] = ds.items[i].line;
    TextGenPrompts p;
    int st = textgen_encode_all(&tg, n, texts, systems, a->data, lines, &p);
    free(systems);
    const int rows = textgen_rows_per_call(opt->batch, n, K);
    if (st == DR_OK) st = textgen_start(&tg, p.max_len, rows);
    AtomicFile af = {0};
    if (st == DR_OK && a->out) st = atomic_open(&af, a->out);
    if (st == DR_OK) {
        EvalScorer sc = {a->out ? af.fp : NULL, &ds, n, K, time_now(), {0}};
        textgen_run_all(&tg, &p, K, rows, score_replies, &sc);
        const double seconds = time_now() - sc.t0;
        if (a->out) st = atomic_commit(&af);
        if (st == DR_OK) print_summary(a, &tg.o, &tg, &ds, &sc.t, seconds);
    }
    textgen_prompts_free(&p);
    free(texts);
    free(lines);
    dataset_free(&ds);
    textgen_close(&tg);
    return st;
}

int cmd_eval(int argc, char **argv) {
    TextGenOptions opt;
    textgen_options_default(&opt);
    EvalArgs a = {0};
    a.samples = 1;
    a.max_bad = DATASET_MAX_BAD_DEFAULT;
    int st = textgen_parse_args(&opt, &a, 0, "eval", USAGE, argc, argv);
    if (st == 1) return 0; /* --help */
    if (st == DR_OK && (!opt.model_dir || !a.data || !a.task))
        st = dr_error(
            "eval: --model DIR, --data FILE and --task gsm8k|math|verl|custom are required");
    if (st == DR_OK && !dataset_preset_valid(a.task))
        st = dr_error("--task: expected gsm8k, math, verl or custom, got '%s'", a.task);
    if (st == DR_OK && !opt.temperature_set) opt.sp.temperature = a.samples == 1 ? 0.0f : 0.6f;
    if (st == DR_OK) st = run(&opt, &a);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
