/* `denserl generate`: replies of a Hugging Face model to one prompt or to the questions of a
 * JSONL dataset, formatted with a chat template and sampled in batches with the KV-cache
 * generator; one JSON line per reply, on stdout or in a file written atomically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "dataset.h"
#include "textgen.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/log.h"

static const char USAGE[] =
    "usage: denserl generate --model DIR (--prompt TEXT | --data FILE [--task "
    "gsm8k|math|verl|custom])\n"
    "                        [options]\n"
    "  --prompt TEXT          one prompt\n"
    "  --data FILE            a JSONL dataset; --task picks its fields (gsm8k by default)\n"
    "  --prompt-field F, --answer-field F   field names (required for --task custom)\n"
    "  --max-bad-fraction X   fail when more of the data lines are bad (0.01)\n"
    "  --limit N              only the first N questions\n"
    "  --samples K            replies per prompt (1)\n"
    "  --out FILE             write the JSONL there instead of stdout\n";

typedef TextGenData GenArgs;

/* One JSON line per reply. */
static void write_reply(FILE *f, int index, int sample, const char *prompt, const char *gold,
                        const TextGenResult *r) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(index));
    json_object_set_new(o, "sample", json_integer(sample));
    json_object_set_new(o, "prompt", json_text_lossy(prompt, strlen(prompt)));
    if (gold) json_object_set_new(o, "gold", json_text_lossy(gold, strlen(gold)));
    json_object_set_new(o, "response", json_text_lossy(r->text, r->len));
    json_object_set_new(o, "tokens", json_integer(r->tokens));
    json_object_set_new(o, "finish", json_string(r->stopped ? "stop" : "length"));
    char *s = json_dumps(o, JSON_COMPACT);
    CHECK(s);
    fputs(s, f);
    fputc('\n', f);
    free(s);
    json_decref(o);
}

/* Where the replies go (textgen_run_all's callback): one JSON line each, then a progress
 * line while prompts remain. */
typedef struct {
    TextGen *tg;
    FILE *f;
    const char **texts;
    const Dataset *ds; /* NULL with --prompt */
    int n, k;
    double t0;
} GenWriter;

static void write_replies(void *ctx, int i0, int np, TextGenResult *res) {
    GenWriter *w = ctx;
    for (int r = 0; r < np * w->k; r++) {
        const int i = i0 + r / w->k;
        write_reply(w->f, i, r % w->k, w->texts[i], w->ds ? w->ds->items[i].gold : NULL, &res[r]);
    }
    if (np < w->n) {
        const int done = (i0 + np) * w->k, total = w->n * w->k;
        const double el = time_now() - w->t0;
        char eta[32];
        format_duration(el / done * (total - done), eta, sizeof eta);
        fprintf(stderr, "generate %d/%d replies | %.0f tokens/s | ETA %s\n", done, total,
                el > 0 ? w->tg->tokens_generated / el : 0.0, eta);
    }
}

static int run(const TextGenOptions *opt, const GenArgs *a) {
    TextGen tg;
    if (textgen_open(&tg, opt)) return DR_ERR;
    Dataset ds = {0};
    int n = 1;
    const char **texts = NULL, **systems = NULL;
    int *lines = NULL;
    if (a->data) {
        if (dataset_load(a->data, a->task, &a->fields, a->max_bad, &ds)) {
            textgen_close(&tg);
            return DR_ERR;
        }
        n = a->limit > 0 && a->limit < ds.n ? a->limit : ds.n;
        texts = xmalloc(sizeof(char *) * n);
        systems = xmalloc(sizeof(char *) * n);
        lines = xmalloc(sizeof(int) * n);
        for (int i = 0; i < n; i++)
            texts[i] = ds.items[i].prompt, systems[i] = ds.items[i].system,
            lines[i] = ds.items[i].line;
    } else {
        texts = xmalloc(sizeof(char *));
        texts[0] = a->prompt;
    }
    TextGenPrompts p;
    int st = textgen_encode_all(&tg, n, texts, systems, a->data, lines, &p);
    free(systems);
    const int K = a->samples;
    const int rows = textgen_rows_per_call(opt->batch, n, K);
    if (st == DR_OK) st = textgen_start(&tg, p.max_len, rows);
    AtomicFile af = {0};
    FILE *f = stdout;
    if (st == DR_OK && a->out) {
        st = atomic_open(&af, a->out);
        f = af.fp;
    }
    if (st == DR_OK) {
        GenWriter w = {&tg, f, texts, a->data ? &ds : NULL, n, K, time_now()};
        textgen_run_all(&tg, &p, K, rows, write_replies, &w);
        if (a->out) st = atomic_commit(&af);
    }
    textgen_prompts_free(&p);
    free(texts);
    free(lines);
    dataset_free(&ds);
    textgen_close(&tg);
    return st;
}

int cmd_generate(int argc, char **argv) {
    TextGenOptions opt;
    textgen_options_default(&opt);
    GenArgs a = {0};
    a.task = "gsm8k";
    a.samples = 1;
    a.max_bad = DATASET_MAX_BAD_DEFAULT;
    int st = textgen_parse_args(&opt, &a, 1, "generate", USAGE, argc, argv);
    if (st == 1) return 0; /* --help */
    if (st == DR_OK && !opt.model_dir) st = dr_error("generate: --model DIR is required");
    if (st == DR_OK && !a.prompt == !a.data)
        st = dr_error("generate: give exactly one of --prompt TEXT and --data FILE");
    if (st == DR_OK && a.data && !dataset_preset_valid(a.task))
        st = dr_error("--task: expected gsm8k, math, verl or custom, got '%s'", a.task);
    if (st == DR_OK) st = run(&opt, &a);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
