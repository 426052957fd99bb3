/* JSONL question-answer datasets (dataset.h): every line is read and judged before the
 * caller sees any item, so a file with too many bad lines costs no generation. */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "math_verify.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"

/* bad lines printed as warnings when they are skipped; the rest are only counted */
#define WARN_MAX 5

typedef enum { PRESET_GSM8K, PRESET_MATH, PRESET_CUSTOM, PRESET_VERL } Preset;

static int preset_parse(const char *name, Preset *p) {
    if (!name) return 0;
    if (!strcmp(name, "gsm8k"))
        *p = PRESET_GSM8K;
    else if (!strcmp(name, "math"))
        *p = PRESET_MATH;
    else if (!strcmp(name, "custom"))
        *p = PRESET_CUSTOM;
    else if (!strcmp(name, "verl"))
        *p = PRESET_VERL;
    else
        return 0;
    return 1;
}

int dataset_preset_valid(const char *name) {
    Preset p;
    return preset_parse(name, &p);
}

static char *dup_range(const char *s, size_t a, size_t b) {
    char *o = xmalloc(b - a + 1);
    memcpy(o, s + a, b - a);
    o[b - a] = 0;
    return o;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* GSM8K: the text after the last "####", trimmed, without commas; NULL when absent/empty. */
static char *gsm8k_gold(const char *answer) {
    const char *h = NULL;
    for (const char *p = strstr(answer, "####"); p; p = strstr(p + 1, "####")) h = p;
    if (!h) return NULL;
    h += 4;
    while (*h == '#') h++; /* "#####" is still the marker */
    size_t a = 0, b = strlen(h);
    while (a < b && is_space(h[a])) a++;
    while (b > a && is_space(h[b - 1])) b--;
    char *o = xmalloc(b - a + 1);
    size_t n = 0;
    for (size_t i = a; i < b; i++)
        if (h[i] != ',') o[n++] = h[i];
    o[n] = 0;
    if (n == 0) {
        free(o);
        return NULL;
    }
    return o;
}

/* MATH: the last \boxed{} or \fbox{} of the solution; NULL when there is none. */
static char *math_gold(const char *solution) {
    char buf[MATH_ANSWER_MAX];
    int rule = math_extract(solution, buf, sizeof buf);
    if (rule != MATH_RULE_BOXED && rule != MATH_RULE_FBOX) return NULL;
    math_gold_answer(solution, 0, buf, sizeof buf);
    if (!buf[0]) return NULL;
    return dup_range(buf, 0, strlen(buf));
}

/* custom: "####" part, else last \boxed{}, else the whole answer; NULL when empty. */
static char *custom_gold(const char *answer) {
    char buf[MATH_ANSWER_MAX];
    math_gold_answer(answer, 1, buf, sizeof buf);
    if (!buf[0]) return NULL;
    return dup_range(buf, 0, strlen(buf));
}

/* The answer field as text: strings as they are, numbers printed. */
static const char *answer_text(const json_t *v, char *num, size_t n) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(num, n, "%lld", (long long)json_integer_value(v));
        return num;
    }
    if (json_is_real(v)) {
        snprintf(num, n, "%.17g", json_real_value(v));
        return num;
    }
    return NULL;
}

/* Field NAME of object j: the key itself, else a path of keys through nested objects
 * ("reward_model.ground_truth"); NULL when there is none. */
static const json_t *field_get(const json_t *j, const char *name) {
    const json_t *v = json_object_get(j, name);
    char key[256];
    for (const char *s = name; !v && json_is_object(j);) {
        const char *dot = strchr(s, '.');
        if (!dot || (size_t)(dot - s) >= sizeof key) return json_object_get(j, s);
        memcpy(key, s, (size_t)(dot - s));
        key[dot - s] = 0;
        j = json_object_get(j, key);
        s = dot + 1;
    }
    return v;
}

/* A prompt given as chat messages ([{"role", "content"}, ...], as verl's datasets hold it):
 * at most one system message, then one user message. The user's text in *user and the
 * system's (or NULL) in *system; NULL on success, else why not. */
static const char *messages_parse(const json_t *msgs, const char **user, const char **system) {
    size_t i;
    const json_t *m;
    *user = *system = NULL;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *text = json_string_value(json_object_get(m, "content"));
        if (!role || !text) return "has a message without a string \"role\" and \"content\"";
        if (!strcmp(role, "system") && !*system && !*user)
            *system = text;
        else if (!strcmp(role, "user") && !*user)
            *user = text;
        else
            return "holds other turns than one system message (optional) and one user message";
    }
    return *user ? NULL : "has no user message";
}

/* Judges one line: DR_OK with the item filled, or DR_ERR with why in reason. */
static int parse_line(const char *line, Preset p, const char *pf, const char *af, DatasetItem *it,
                      char *reason, size_t rn) {
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j) {
        snprintf(reason, rn, "not valid JSON (%s)", e.text);
        return DR_ERR;
    }
    int st = DR_ERR;
    char num[64];
    const json_t *q = field_get(j, pf), *a = field_get(j, af);
    const char *qs = json_string_value(q), *as = a ? answer_text(a, num, sizeof num) : NULL;
    const char *sys = NULL, *why = json_is_array(q) ? messages_parse(q, &qs, &sys) : NULL;
    if (!json_is_object(j)) {
        snprintf(reason, rn, "expected a JSON object");
    } else if (!q) {
        snprintf(reason, rn, "no '%s' field", pf);
    } else if (why) {
        snprintf(reason, rn, "'%s' %s", pf, why);
    } else if (!qs) {
        snprintf(reason, rn, "'%s' is not a string or a list of chat messages", pf);
    } else if (!*qs) {
        snprintf(reason, rn, "'%s' is empty", pf);
    } else if (!a) {
        snprintf(reason, rn, "no '%s' field", af);
    } else if (!as) {
        snprintf(reason, rn, "'%s' is not a string or a number", af);
    } else {
        char *gold = p == PRESET_GSM8K  ? gsm8k_gold(as)
                     : p == PRESET_MATH ? math_gold(as)
                                        : custom_gold(as);
        if (!gold) {
            snprintf(reason, rn,
                     p == PRESET_GSM8K  ? "'%s' has no final answer after \"####\""
                     : p == PRESET_MATH ? "'%s' has no \\boxed{} final answer"
                                        : "'%s' is empty",
                     af);
        } else {
            it->prompt = dup_range(qs, 0, strlen(qs));
            it->system = sys ? dup_range(sys, 0, strlen(sys)) : NULL;
            it->gold = gold;
            st = DR_OK;
        }
    }
    json_decref(j);
    return st;
}

void dataset_free(Dataset *ds) {
    for (int i = 0; i < ds->n; i++)
        free(ds->items[i].prompt), free(ds->items[i].system), free(ds->items[i].gold);
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

int dataset_load(const char *path, const char *preset, const DatasetFields *fields, double max_bad,
                 Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    Preset p;
    if (!preset_parse(preset, &p))
        return dr_error("%s: task '%s': expected gsm8k, math, verl or custom", path,
                        preset ? preset : "(none)");
    if (!(max_bad >= 0 && max_bad <= 1))
        return dr_error("%s: the allowed fraction of bad lines must be in [0, 1], got %g", path,
                        max_bad);
    const char *pf = p == PRESET_GSM8K  ? "question"
                     : p == PRESET_MATH ? "problem"
                     : p == PRESET_VERL ? "prompt"
                                        : NULL;
    const char *af = p == PRESET_GSM8K  ? "answer"
                     : p == PRESET_MATH ? "solution"
                     : p == PRESET_VERL ? "reward_model.ground_truth"
                                        : NULL;
    if (fields && fields->prompt_field) pf = fields->prompt_field;
    if (fields && fields->answer_field) af = fields->answer_field;
    if (!pf || !af || !*pf || !*af)
        return dr_error("%s: a custom dataset needs both a prompt field and an answer field", path);
    FILE *f = file_open_read(path, "a JSONL file");
    if (!f) return DR_ERR;
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t got;
    int lineno = 0;
    char reason[512];
    char warn[WARN_MAX][640];
    int first_bad_line = 0;
    char first_bad[512] = "";
    while ((got = getline(&line, &cap, f)) != -1) {
        lineno++;
        char *s = line;
        if (lineno == 1 && !strncmp(s, "\xef\xbb\xbf", 3)) s += 3, got -= 3; /* UTF-8 BOM */
        if (strspn(s, " \t\r\n") == (size_t)got) continue;
        ds->n_lines++;
        DatasetItem it;
        if (parse_line(s, p, pf, af, &it, reason, sizeof reason)) {
            if (ds->n_bad < WARN_MAX)
                snprintf(warn[ds->n_bad], sizeof warn[0], "%s:%d: %s", path, lineno, reason);
            if (!first_bad_line) {
                first_bad_line = lineno;
                snprintf(first_bad, sizeof first_bad, "%s", reason);
            }
            ds->n_bad++;
            continue;
        }
        it.line = lineno;
        if ((size_t)ds->n == alloc) {
            alloc = alloc ? 2 * alloc : 256;
            ds->items = realloc(ds->items, sizeof(DatasetItem) * alloc);
            CHECK(ds->items);
        }
        ds->items[ds->n++] = it;
    }
    free(line);
    int read_err = ferror(f) ? errno : 0;
    fclose(f);
    int st = DR_OK;
    if (read_err)
        st = dr_error("%s: read error: %s", path, strerror(read_err));
    else if (ds->n_bad > max_bad * ds->n_lines)
        st = dr_error("%s: %d of %d lines are bad, more than the allowed fraction %g (first "
                      "%s:%d: %s)",
                      path, ds->n_bad, ds->n_lines, max_bad, path, first_bad_line, first_bad);
    else if (ds->n == 0)
        st = dr_error("%s: no questions in the file", path);
    if (st) {
        dataset_free(ds);
        return st;
    }
    if (ds->n_bad) {
        for (int i = 0; i < ds->n_bad && i < WARN_MAX; i++)
            fprintf(stderr, "warning: %s (line skipped)\n", warn[i]);
        fprintf(stderr, "warning: %s: skipped %d bad line%s of %d\n", path, ds->n_bad,
                ds->n_bad == 1 ? "" : "s", ds->n_lines);
    }
    return DR_OK;
}
