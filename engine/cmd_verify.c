/* `denserl verify`: runs the math answer verifier (math_verify.h) on one gold answer and
 * one response given as flags, or on every line of a JSONL file with "answer" and
 * "response", and prints one JSON object per case with the extracted answer, the rule that
 * found it, both normalised forms and the outcome, so a verifier decision can be checked by
 * hand or by script. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "math_verify.h"
#include "../runtime/check.h"
#include "../runtime/jsonutil.h"
#include "../runtime/error.h"

static const char USAGE[] = "denserl verify --task gsm8k|math (--answer GOLD --response TEXT | "
                            "--data FILE.jsonl)";

/* A JSON string of s; bytes that are not valid UTF-8 (a response cut mid-character, or
 * binary input) are shown as '?' rather than failing the whole line. */
static json_t *json_text(const char *s) {
    json_t *j = json_string(s);
    if (j) return j;
    size_t n = strlen(s);
    char *t = xmalloc(n + 1);
    for (size_t i = 0; i <= n; i++) t[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(t);
    free(t);
    return j ? j : json_string("");
}

/* Verifies one case and prints its JSON line; returns the outcome. */
static int verify_case(int prefer_hash, const char *gold, const char *response) {
    char g[MATH_ANSWER_MAX], x[MATH_ANSWER_MAX], gn[MATH_ANSWER_MAX], rn[MATH_ANSWER_MAX];
    math_gold_answer(gold, prefer_hash, g, sizeof g);
    int rule = math_extract(response, x, sizeof x);
    math_normalize(g, gn, sizeof gn);
    int outcome = 0;
    rn[0] = 0;
    if (rule) {
        math_normalize(x, rn, sizeof rn);
        outcome = math_equal(g, x);
    }
    json_t *o = json_object();
    json_object_set_new(o, "extracted", rule ? json_text(x) : json_null());
    json_object_set_new(o, "rule", json_string(math_rule_name(rule)));
    json_object_set_new(o, "gold_normalized", json_text(gn));
    json_object_set_new(o, "response_normalized", json_text(rn));
    json_object_set_new(o, "outcome", json_integer(outcome));
    char *s = json_dumps(o, JSON_COMPACT);
    CHECK(s);
    puts(s);
    free(s);
    json_decref(o);
    return outcome;
}

typedef struct {
    int n;
    char **gold, **response;
} Cases;

static void cases_free(Cases *c) {
    for (int i = 0; i < c->n; i++) free(c->gold[i]), free(c->response[i]);
    free(c->gold);
    free(c->response);
    memset(c, 0, sizeof *c);
}

/* One line {"answer": ..., "response": ...} into the cases (jsonl_each's callback). */
typedef struct {
    Cases *c;
    size_t alloc;
} CaseReader;

static int case_line(json_t *j, const char *path, int lineno, void *ctx) {
    CaseReader *rd = ctx;
    Cases *c = rd->c;
    json_t *a = json_object_get(j, "answer"), *r = json_object_get(j, "response");
    if (!json_is_object(j))
        return dr_error("%s:%d: expected an object {\"answer\": ..., \"response\": ...}", path,
                        lineno);
    if (!json_is_string(a) && !json_is_number(a))
        return dr_error("%s:%d: \"answer\" is missing or not a string or number", path, lineno);
    if (!json_is_string(r))
        return dr_error("%s:%d: \"response\" is missing or not a string", path, lineno);
    if ((size_t)c->n == rd->alloc) {
        rd->alloc = rd->alloc ? 2 * rd->alloc : 64;
        c->gold = realloc(c->gold, sizeof(char *) * rd->alloc);
        c->response = realloc(c->response, sizeof(char *) * rd->alloc);
        CHECK(c->gold && c->response);
    }
    char num[64];
    const char *gs = json_string_value(a);
    if (!gs) { /* a bare number, as GSM8K exports sometimes have */
        if (json_is_integer(a))
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(a));
        else
            snprintf(num, sizeof num, "%.17g", json_real_value(a));
        gs = num;
    }
    c->gold[c->n] = strdup(gs);
    c->response[c->n] = strdup(json_string_value(r));
    CHECK(c->gold[c->n] && c->response[c->n]);
    c->n++;
    return DR_OK;
}

/* Reads every line before printing anything, so a bad line leaves no partial output. */
static int read_cases(const char *path, Cases *c) {
    memset(c, 0, sizeof *c);
    CaseReader rd = {c, 0};
    int st = jsonl_each(path, case_line, &rd, NULL);
    if (st == DR_OK && c->n == 0)
        st = dr_error("%s: no cases (expected JSONL lines with \"answer\" and \"response\")", path);
    if (st) cases_free(c);
    return st;
}

int cmd_verify(int argc, char **argv) {
    const char *task = NULL, *answer = NULL, *response = NULL, *data = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--task")       ? &task
                            : !strcmp(a, "--answer")   ? &answer
                            : !strcmp(a, "--response") ? &response
                            : !strcmp(a, "--data")     ? &data
                                                       : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s\n", USAGE);
            return 0;
        }
        if (!slot) {
            fprintf(stderr, "error: verify: unexpected argument '%s' (usage: %s)\n", a, USAGE);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: verify: %s expects a value (usage: %s)\n", a, USAGE);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!task || (strcmp(task, "gsm8k") && strcmp(task, "math"))) {
        fprintf(stderr, "error: verify: --task must be gsm8k or math, got '%s' (usage: %s)\n",
                task ? task : "", USAGE);
        return 2;
    }
    int one = answer || response;
    if ((one && (!answer || !response)) || (one && data) || (!one && !data)) {
        fprintf(stderr,
                "error: verify: give either --answer and --response, or --data (usage: %s)\n",
                USAGE);
        return 2;
    }
    /* GSM8K gold fields are whole solutions ending in "#### N"; MATH ones box the answer */
    int prefer_hash = !strcmp(task, "gsm8k");
    if (one) {
        verify_case(prefer_hash, answer, response);
        return 0;
    }
    Cases c;
    if (read_cases(data, &c) != DR_OK) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    for (int i = 0; i < c.n; i++) verify_case(prefer_hash, c.gold[i], c.response[i]);
    cases_free(&c);
    return 0;
}
