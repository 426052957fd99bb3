/* `denserl score`: the implicit process reward model's rewards for given responses, and
 * best-of-N selection with them. Each JSONL line holds a "prompt" and a "response" (and
 * optionally a "group" and a gold "answer"); the prompt is formatted with the chat template,
 * the response's tokens are appended, and both models (the PRM and the reference) give the
 * log-probs of the response tokens. Then, as in training (PRIME.md section 3):
 *
 *   r_t = beta * (log pi_prm(y_t | ...) - log pi_ref(y_t | ...))
 *
 * token_rewards are r at token granularity; at step granularity each step's sum sits on its
 * last token and 0 elsewhere (prime_token_rewards_cpu). Steps end at every token that
 * completes an occurrence of the step delimiter in the response text (non-overlapping, left
 * to right; for a delimiter that is one token, exactly the tokens whose id is the delimiter,
 * as the kernel's step_delim) and at the last token. step_rewards holds each step's sum, and
 * score the sum of all r: the implicit PRM's outcome logit. Within a group the line with the
 * highest score is marked best (ties: the first). Every line is read, encoded and checked
 * before a model is loaded, and nothing is written unless every line scores. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "math_verify.h"
#include "model_io.h"
#include "textgen.h"
#include "../kernels/reward.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"

static const char USAGE[] =
    "usage: denserl score --prm DIR --ref DIR --data FILE [options]\n"
    "  FILE is JSONL: {\"prompt\": ..., \"response\": ...} with an optional \"group\" (lines of\n"
    "  one group are best-of-N candidates) and an optional gold \"answer\"\n"
    "  --beta B               reward scale (0.05)\n"
    "  --granularity G        token or step (token): at step granularity each step's sum\n"
    "                         sits on the step's last token in token_rewards\n"
    "  --step-delimiter S     text that ends a step (\"\\n\\n\")\n"
    "  --template T           auto, chatml, llama3 or raw (auto: from the PRM's\n"
    "                         tokenizer_config.json)\n"
    "  --system S             system prompt\n"
    "  --suffix S             instruction appended to each prompt\n"
    "  --out FILE             the JSONL output (default: stdout, the summary then goes to\n"
    "                         stderr)\n"
    "  --device D             auto, cpu or cuda\n";

typedef struct {
    int line;
    char *response; /* owned copy */
    char *answer;   /* NULL: none */
    json_t *group;  /* NULL: none */
    char *gkey;     /* the group's canonical JSON, NULL: none */
    int *ids;       /* prompt then response */
    int plen, n;
    int grp; /* index into the groups */
} ScoreItem;

typedef struct {
    const char *gkey; /* NULL: a line without a group */
    int first, best, count;
    const char *gold; /* the first answer among its lines */
} ScoreGroup;

typedef struct {
    const char *prm, *ref, *data, *out, *delim;
    double beta;
    int granularity;
} ScoreArgs;

static void items_free(ScoreItem *it, int n) {
    for (int i = 0; i < n; i++) {
        free(it[i].response);
        free(it[i].answer);
        free(it[i].gkey);
        free(it[i].ids);
        if (it[i].group) json_decref(it[i].group);
    }
    free(it);
}

/* Checks and encodes one parsed line into *it. */
static int parse_item(TextGen *tg, json_t *j, const char *path, int lineno, ScoreItem *it) {
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    memset(it, 0, sizeof *it);
    it->line = lineno;
    if (!json_is_object(j)) return dr_error("%s: expected a JSON object", where);
    json_t *p = json_object_get(j, "prompt"), *r = json_object_get(j, "response");
    json_t *g = json_object_get(j, "group"), *a = json_object_get(j, "answer");
    if (!json_is_string(p)) return dr_error("%s: expected a string \"prompt\"", where);
    if (!json_is_string(r)) return dr_error("%s: expected a string \"response\"", where);
    if (g && !json_is_null(g)) {
        if (!json_is_string(g) && !json_is_number(g))
            return dr_error("%s: \"group\" must be a string or a number", where);
        it->group = json_incref(g);
        it->gkey = json_dumps(g, JSON_ENCODE_ANY | JSON_COMPACT);
        CHECK(it->gkey);
    }
    if (a && !json_is_null(a)) {
        if (json_is_string(a)) {
            it->answer = strdup(json_string_value(a));
        } else if (json_is_number(a)) {
            it->answer = json_dumps(a, JSON_ENCODE_ANY);
        } else {
            return dr_error("%s: \"answer\" must be a string or a number", where);
        }
        CHECK(it->answer);
    }
    const char *resp = json_string_value(r);
    const size_t rlen = json_string_length(r);
    if (memchr(resp, 0, rlen)) return dr_error("%s: the response holds a NUL character", where);
    it->response = strdup(resp);
    CHECK(it->response);
    int *pids, plen;
    if (textgen_encode(tg, json_string_value(p), NULL, where, &pids, &plen)) return DR_ERR;
    const int ctx = tg->cfg.max_pos;
    /* textgen_encode's buffer holds ctx + 1 ids; it is cut to size below */
    it->ids = pids;
    it->plen = plen;
    int got = tok_bpe_encode(tg->tok, resp, rlen, it->ids + plen, ctx - plen);
    if (got == -1)
        return dr_error("%s: the prompt (%d tokens) and the response need more than the "
                        "model's context of %d tokens",
                        where, plen, ctx);
    if (got == -2) return dr_error("%s: the response is not valid UTF-8", where);
    if (got < 0) return dr_error("%s: the tokenizer could not encode the response", where);
    if (got == 0) return dr_error("%s: the response encodes to no tokens", where);
    for (int t = plen; t < plen + got; t++)
        if (it->ids[t] < 0 || it->ids[t] >= tg->cfg.vocab)
            return dr_error("%s: token id %d is outside the model's vocabulary of %d", where,
                            it->ids[t], tg->cfg.vocab);
    it->n = plen + got;
    it->ids = realloc(it->ids, sizeof(int) * (size_t)it->n);
    CHECK(it->ids);
    return model_check_seq_len(&tg->cfg, it->n, where);
}

/* One line into the items (jsonl_each's callback); a failed item is kept, to be freed with
 * the rest. */
typedef struct {
    TextGen *tg;
    ScoreItem *items;
    int n, alloc;
} ItemReader;

static int item_line(json_t *j, const char *path, int lineno, void *ctx) {
    ItemReader *r = ctx;
    if (r->n == r->alloc) {
        r->alloc = r->alloc ? 2 * r->alloc : 64;
        r->items = realloc(r->items, sizeof(ScoreItem) * (size_t)r->alloc);
        CHECK(r->items);
    }
    return parse_item(r->tg, j, path, lineno, &r->items[r->n++]);
}

/* Reads every line of PATH before any work, so a bad line costs nothing. */
static int read_items(TextGen *tg, const char *path, ScoreItem **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    ItemReader r = {tg, NULL, 0, 0};
    int st = jsonl_each(path, item_line, &r, NULL);
    if (st == DR_OK && r.n == 0) st = dr_error("%s: no lines to score", path);
    if (st) {
        items_free(r.items, r.n);
        return st;
    }
    *out = r.items;
    *n_out = r.n;
    return DR_OK;
}

/* Each distinct group in order of first appearance; a line without one is its own group. */
static ScoreGroup *make_groups(ScoreItem *it, int n, int *n_groups) {
    ScoreGroup *g = xcalloc((size_t)n, sizeof(ScoreGroup));
    int ng = 0;
    for (int i = 0; i < n; i++) {
        int k = -1;
        if (it[i].gkey)
            for (int q = 0; q < ng && k < 0; q++)
                if (g[q].gkey && !strcmp(g[q].gkey, it[i].gkey)) k = q;
        if (k < 0) {
            k = ng++;
            g[k].gkey = it[i].gkey;
            g[k].first = g[k].best = i;
        }
        g[k].count++;
        if (!g[k].gold && it[i].answer) g[k].gold = it[i].answer;
        it[i].grp = k;
    }
    *n_groups = ng;
    return g;
}

/* The bytes of token id (malloc'd, *len of them). */
static char *token_bytes(const TokBpe *tok, int id, int *len) {
    size_t cap = 64;
    for (;;) {
        char *b = xmalloc(cap);
        int got = tok_bpe_decode(tok, &id, 1, b, cap);
        if (got >= 0) {
            *len = got;
            return b;
        }
        free(b);
        CHECK(cap < ((size_t)1 << 24));
        cap *= 4;
    }
}

static json_t *num(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

/* Scores one item: its output object, and *score. */
static json_t *score_item(TextGen *tg, Model *prm, Model *ref, const ScoreItem *it,
                          const ScoreArgs *a, int *targets, float *lp_prm, float *lp_ref,
                          double *score) {
    const int n = it->n, P = it->plen, R = n - P;
    for (int t = 0; t < n; t++) targets[t] = t >= P - 1 && t + 1 < n ? it->ids[t + 1] : -1;
    model_forward(prm, it->ids, targets, 1, n, lp_prm, NULL);
    model_forward(ref, it->ids, targets, 1, n, lp_ref, NULL);
    const float *qp = lp_prm + P - 1, *qr = lp_ref + P - 1; /* the R response tokens */

    /* the tokens' text, and where each step ends */
    json_t *toks = json_array();
    char *text = NULL;
    size_t tlen = 0;
    int *end = xmalloc(sizeof(int) * (size_t)R); /* byte end of each token in text */
    for (int k = 0; k < R; k++) {
        int len;
        char *b = token_bytes(tg->tok, it->ids[P + k], &len);
        json_array_append_new(toks, json_text_lossy(b, (size_t)len));
        text = realloc(text, tlen + (size_t)len + 1);
        CHECK(text);
        memcpy(text + tlen, b, (size_t)len);
        tlen += (size_t)len;
        end[k] = (int)tlen;
        free(b);
    }
    int *stop = xcalloc((size_t)R, sizeof(int)); /* 1 where a step ends */
    const size_t dlen = strlen(a->delim);
    if (dlen > 0) {
        int k = 0;
        for (size_t s = 0; s + dlen <= tlen;) {
            if (memcmp(text + s, a->delim, dlen)) {
                s++;
                continue;
            }
            const int last = (int)(s + dlen - 1); /* the occurrence's last byte */
            while (k < R && end[k] <= last) k++;
            if (k < R) stop[k] = 1;
            s += dlen;
        }
    }
    stop[R - 1] = 1;

    float *mask = xmalloc(sizeof(float) * (size_t)R), *r = xmalloc(sizeof(float) * (size_t)R);
    for (int k = 0; k < R; k++) mask[k] = 1.0f;
    prime_token_rewards_cpu(r, qp, qr, mask, NULL, 1, R, (float)a->beta, REWARD_TOKEN, 0,
                            REWARD_XFORM_NONE, 0.0f);
    json_t *steps = json_array();
    double sum = 0, step = 0;
    for (int k = 0; k < R; k++) {
        sum += r[k];
        step += r[k];
        if (stop[k]) {
            json_array_append_new(steps, num(step));
            step = 0;
        }
    }
    if (a->granularity == REWARD_STEP) /* the delimiter's "id" is 1 in these targets */
        prime_token_rewards_cpu(r, qp, qr, mask, stop, 1, R, (float)a->beta, REWARD_STEP, 1,
                                REWARD_XFORM_NONE, 0.0f);
    json_t *tr = json_array();
    for (int k = 0; k < R; k++) json_array_append_new(tr, num(r[k]));
    *score = sum;

    json_t *o = json_object();
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "token_rewards", tr);
    json_object_set_new(o, "step_rewards", steps);
    json_object_set_new(o, "score", num(sum));
    json_object_set_new(o, "group", it->group ? json_incref(it->group) : json_null());
    json_object_set_new(o, "line", json_integer(it->line));
    free(text);
    free(end);
    free(stop);
    free(mask);
    free(r);
    return o;
}

static void print_summary(FILE *f, const ScoreArgs *a, const TextGen *tg, const ScoreItem *it,
                          int n, const ScoreGroup *g, int ng, const double *score) {
    double lo = score[0], hi = score[0], mean = 0;
    for (int i = 0; i < n; i++) {
        mean += score[i] / n;
        if (score[i] < lo) lo = score[i];
        if (score[i] > hi) hi = score[i];
    }
    int largest = 0;
    for (int q = 0; q < ng; q++)
        if (g[q].count > largest) largest = g[q].count;
    fprintf(f, "\n%-12s %s (%d responses in %d groups, up to %d per group)\n", "data", a->data, n,
            ng, largest);
    fprintf(f, "%-12s %s\n%-12s %s\n", "prm", a->prm, "ref", a->ref);
    fprintf(f, "%-12s beta %g, %s granularity, template %s\n", "rewards", a->beta,
            a->granularity == REWARD_STEP ? "step" : "token", chat_kind_name(tg->tpl.kind));
    fprintf(f, "%-12s mean %.6g, min %.6g, max %.6g\n", "score", mean, lo, hi);
    int graded = 0, best_ok = 0, first_ok = 0, any_ok = 0;
    for (int q = 0; q < ng; q++) {
        if (!g[q].gold) continue;
        graded++;
        best_ok += math_verify(g[q].gold, it[g[q].best].response) > 0.5;
        first_ok += math_verify(g[q].gold, it[g[q].first].response) > 0.5;
        int any = 0;
        for (int i = 0; i < n && !any; i++)
            any = it[i].grp == q && math_verify(g[q].gold, it[i].response) > 0.5;
        any_ok += any;
    }
    if (graded) {
        fprintf(f, "%-12s %.4f (%d of %d groups with an answer)\n", "best-of-N",
                best_ok * 1.0 / graded, best_ok, graded);
        fprintf(f, "%-12s %.4f (%d of %d)\n", "first", first_ok * 1.0 / graded, first_ok, graded);
        fprintf(f, "%-12s %.4f (%d of %d; any response correct)\n", "oracle", any_ok * 1.0 / graded,
                any_ok, graded);
    }
}

static int run(const TextGenOptions *opt, const ScoreArgs *a) {
    /* the backend is picked once the input is known good, so that an error is the only line
     * a bad input prints (auto announces a missing GPU) */
    TextGenOptions o = *opt;
    o.device = "cpu";
    TextGen tg;
    if (textgen_open(&tg, &o)) return DR_ERR;
    ModelConfig rc;
    int st = model_config_load(a->ref, &rc);
    if (st == DR_OK && rc.vocab != tg.cfg.vocab)
        st = dr_error("%s: the reference's vocabulary of %d tokens differs from the PRM's (%s) "
                      "of %d",
                      a->ref, rc.vocab, a->prm, tg.cfg.vocab);
    ScoreItem *it = NULL;
    int n = 0;
    if (st == DR_OK) st = read_items(&tg, a->data, &it, &n);
    int maxlen = 0;
    for (int i = 0; st == DR_OK && i < n; i++) {
        if (it[i].n > maxlen) maxlen = it[i].n;
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d", a->data, it[i].line);
        if (it[i].n > rc.max_pos)
            st = dr_error("%s: %d tokens exceed the reference's context of %d", where, it[i].n,
                          rc.max_pos);
        else
            st = model_check_seq_len(&rc, it[i].n, where);
    }
    if (st == DR_OK && a->out) st = atomic_check(a->out); /* before the scoring, not after */
    Model prm, ref;
    int have_prm = 0;
    Backend be = BACKEND_CPU;
    if (st == DR_OK && backend_from_name(opt->device, &be))
        st = dr_error("--device: %s", dr_last_error());
    if (st == DR_OK) {
        st = model_load(&prm, a->prm, be, 1, maxlen, NULL);
        have_prm = st == DR_OK;
    }
    if (st == DR_OK) st = model_load(&ref, a->ref, be, 1, maxlen, NULL);
    if (st) {
        if (have_prm) model_free(&prm);
        items_free(it, n);
        textgen_close(&tg);
        return st;
    }

    backend_note_fallback();
    int ng;
    ScoreGroup *g = make_groups(it, n, &ng);
    json_t **objs = xmalloc(sizeof(json_t *) * (size_t)n);
    double *score = xmalloc(sizeof(double) * (size_t)n);
    int *targets = xmalloc(sizeof(int) * (size_t)maxlen);
    float *lp_prm = xmalloc(sizeof(float) * (size_t)maxlen);
    float *lp_ref = xmalloc(sizeof(float) * (size_t)maxlen);
    for (int i = 0; i < n; i++) {
        objs[i] = score_item(&tg, &prm, &ref, &it[i], a, targets, lp_prm, lp_ref, &score[i]);
        ScoreGroup *q = &g[it[i].grp];
        if (score[i] > score[q->best]) q->best = i; /* strict: ties keep the first */
        if (n > 1 && (i + 1) % 100 == 0) fprintf(stderr, "score %d/%d responses\n", i + 1, n);
    }
    free(targets);
    free(lp_prm);
    free(lp_ref);
    model_free(&prm);
    model_free(&ref);

    AtomicFile af = {0};
    FILE *f = stdout;
    if (a->out) {
        st = atomic_open(&af, a->out);
        f = af.fp;
    }
    for (int i = 0; i < n; i++) {
        const ScoreGroup *q = &g[it[i].grp];
        json_object_set_new(objs[i], "best", json_boolean(q->best == i));
        if (q->gold)
            json_object_set_new(objs[i], "correct",
                                json_boolean(math_verify(q->gold, it[i].response) > 0.5));
        if (st == DR_OK) {
            char *s = json_dumps(objs[i], JSON_COMPACT | JSON_REAL_PRECISION(9));
            CHECK(s);
            fputs(s, f);
            fputc('\n', f);
            free(s);
        }
        json_decref(objs[i]);
    }
    if (st == DR_OK && a->out) st = atomic_commit(&af);
    if (st == DR_OK) print_summary(a->out ? stdout : stderr, a, &tg, it, n, g, ng, score);
    free(objs);
    free(score);
    free(g);
    items_free(it, n);
    textgen_close(&tg);
    return st;
}

int cmd_score(int argc, char **argv) {
    TextGenOptions opt;
    textgen_options_default(&opt);
    ScoreArgs a = {0};
    a.beta = 0.05;
    a.granularity = REWARD_TOKEN;
    a.delim = "\n\n";
    int st = DR_OK;
    for (int i = 0; i < argc && st == DR_OK; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            printf("%s", USAGE);
            return 0;
        }
        const char **slot = !strcmp(f, "--prm")              ? &a.prm
                            : !strcmp(f, "--ref")            ? &a.ref
                            : !strcmp(f, "--data")           ? &a.data
                            : !strcmp(f, "--out")            ? &a.out
                            : !strcmp(f, "--step-delimiter") ? &a.delim
                            : !strcmp(f, "--template")       ? &opt.template_name
                            : !strcmp(f, "--system")         ? &opt.system
                            : !strcmp(f, "--suffix")         ? &opt.suffix
                            : !strcmp(f, "--device")         ? &opt.device
                                                             : NULL;
        const int other = !strcmp(f, "--beta") || !strcmp(f, "--granularity");
        if (!slot && !other) {
            st = dr_error("score: unexpected argument '%s' (denserl score --help lists the "
                          "options)",
                          f);
        } else if (i + 1 >= argc) {
            st = dr_error("%s: expected a value after it", f);
        } else if (slot) {
            *slot = argv[++i];
        } else if (!strcmp(f, "--beta")) {
            const char *v = argv[++i];
            st = textgen_flag_num(f, v, &a.beta);
            if (st == DR_OK && !(isfinite(a.beta) && a.beta > 0))
                st = dr_error("%s: expected a positive number, got '%s'", f, v);
        } else {
            const char *v = argv[++i];
            if (!strcmp(v, "token"))
                a.granularity = REWARD_TOKEN;
            else if (!strcmp(v, "step"))
                a.granularity = REWARD_STEP;
            else
                st = dr_error("%s: expected token or step, got '%s'", f, v);
        }
    }
    if (st == DR_OK && (!a.prm || !a.ref || !a.data))
        st = dr_error("score: --prm DIR, --ref DIR and --data FILE are required");
    if (st == DR_OK && strcmp(opt.device, "auto") && strcmp(opt.device, "cpu") &&
        strcmp(opt.device, "cuda"))
        st = dr_error("--device: expected auto, cpu or cuda, got '%s'", opt.device);
    if (st == DR_OK && !a.delim[0]) st = dr_error("--step-delimiter: expected a non-empty text");
    opt.model_dir = a.prm;
    if (st == DR_OK) st = run(&opt, &a);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
