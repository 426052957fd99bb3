/* `denserl logprobs`: per-token log-probs of JSONL token sequences under a HF model. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "model_io.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"

typedef struct {
    int n;
    int *len;
    int **tokens;
} Sequences;

static void seqs_free(Sequences *s) {
    for (int i = 0; i < s->n; i++) free(s->tokens[i]);
    free(s->tokens);
    free(s->len);
}

/* One line {"tokens": [ids...]} into the sequences (jsonl_each's callback). */
typedef struct {
    Sequences *s;
    int vocab;
    size_t alloc;
} SeqReader;

static int seq_line(json_t *j, const char *path, int lineno, void *ctx) {
    SeqReader *r = ctx;
    Sequences *s = r->s;
    json_t *arr = json_object_get(j, "tokens");
    if (!json_is_array(arr))
        return dr_error("%s:%d: expected {\"tokens\": [ids...]}", path, lineno);
    if (json_array_size(arr) < 2)
        return dr_error("%s:%d: expected at least 2 tokens, got %zu", path, lineno,
                        json_array_size(arr));
    int n = (int)json_array_size(arr), st = DR_OK;
    int *ids = xmalloc(sizeof(int) * n);
    for (int k = 0; k < n && st == DR_OK; k++) {
        json_t *v = json_array_get(arr, k);
        if (!json_is_integer(v))
            st = dr_error("%s:%d: token %d is not an integer", path, lineno, k);
        else if (json_integer_value(v) < 0 || json_integer_value(v) >= r->vocab)
            st = dr_error("%s:%d: token %lld is outside the vocabulary [0, %d)", path, lineno,
                          (long long)json_integer_value(v), r->vocab);
        else
            ids[k] = (int)json_integer_value(v);
    }
    if (st) {
        free(ids);
        return st;
    }
    if ((size_t)s->n == r->alloc) {
        r->alloc = r->alloc ? 2 * r->alloc : 64;
        s->len = realloc(s->len, sizeof(int) * r->alloc);
        s->tokens = realloc(s->tokens, sizeof(int *) * r->alloc);
        CHECK(s->len && s->tokens);
    }
    s->len[s->n] = n;
    s->tokens[s->n++] = ids;
    return DR_OK;
}

/* Reads every line before any work, so a bad line costs nothing and writes nothing. */
static int read_jsonl(const char *path, int vocab, Sequences *s) {
    memset(s, 0, sizeof *s);
    SeqReader r = {s, vocab, 0};
    int st = jsonl_each(path, seq_line, &r, NULL);
    if (st == DR_OK && s->n == 0) st = dr_error("%s: no sequences", path);
    if (st) seqs_free(s);
    return st;
}

static int run(const char *model_dir, const char *data, const char *out) {
    ModelConfig cfg;
    if (model_config_load(model_dir, &cfg)) return DR_ERR;
    Sequences s;
    if (read_jsonl(data, cfg.vocab, &s)) return DR_ERR;
    int maxlen = 0, st = DR_OK;
    char where[PATH_MAX + 32];
    for (int i = 0; i < s.n && st == DR_OK; i++) {
        snprintf(where, sizeof where, "%s:%d", data, i + 1);
        st = model_check_seq_len(&cfg, s.len[i], where);
        if (s.len[i] > maxlen) maxlen = s.len[i];
    }
    Model m;
    if (st == DR_OK) st = model_load(&m, model_dir, BACKEND_CPU, 1, maxlen, NULL);
    if (st) {
        seqs_free(&s);
        return st;
    }
    AtomicFile af;
    st = atomic_open(&af, out);
    int *targets = xmalloc(sizeof(int) * maxlen);
    float *logp = xmalloc(sizeof(float) * maxlen);
    for (int i = 0; i < s.n && st == DR_OK; i++) {
        int n = s.len[i];
        for (int t = 0; t < n; t++) targets[t] = t + 1 < n ? s.tokens[i][t + 1] : -1;
        model_forward(&m, s.tokens[i], targets, 1, n, logp, NULL);
        fputs("{\"logprobs\": [", af.fp);
        for (int t = 0; t + 1 < n; t++) fprintf(af.fp, "%s%.9g", t ? ", " : "", logp[t]);
        fputs("]}\n", af.fp);
    }
    if (st == DR_OK) st = atomic_commit(&af);
    free(targets);
    free(logp);
    model_free(&m);
    seqs_free(&s);
    return st;
}

int cmd_logprobs(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--model")  ? &model
                            : !strcmp(argv[i], "--data") ? &data
                            : !strcmp(argv[i], "--out")  ? &out
                                                         : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: denserl logprobs --model DIR --data IN.jsonl --out OUT.jsonl\n");
            return 0;
        }
        if (slot && i + 1 >= argc) {
            fprintf(stderr, "error: logprobs: %s expects a value after it\n", argv[i]);
            return 2;
        }
        if (!slot) {
            fprintf(stderr,
                    "error: logprobs: unexpected argument '%s' (usage: denserl logprobs "
                    "--model DIR --data IN.jsonl --out OUT.jsonl)\n",
                    argv[i]);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!model || !data || !out) {
        fprintf(stderr, "error: logprobs: --model, --data and --out are all required\n");
        return 2;
    }
    if (run(model, data, out)) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
