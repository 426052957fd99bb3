/* Schema-driven binding of JSON run configs onto structs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "error.h"

int config_apply_set(json_t *root, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) return dr_error("--set %s: expected key.path=value", assignment);
    char key[512];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key) return dr_error("--set: key too long");
    memcpy(key, assignment, klen);
    key[klen] = 0;
    json_t *val = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (!val) val = json_string(eq + 1);
    json_t *obj = root;
    char *save = NULL, *part = strtok_r(key, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            json_object_set_new(obj, part, val);
            return DR_OK;
        }
        json_t *child = json_object_get(obj, part);
        if (!child) {
            child = json_object();
            json_object_set_new(obj, part, child);
        } else if (!json_is_object(child)) {
            json_decref(val);
            return dr_error("--set %s: '%s' is not a section", assignment, part);
        }
        obj = child;
        part = next;
    }
    json_decref(val);
    return dr_error("--set %s: empty key", assignment);
}

/* 1 if path is a field, 2 if it is a section (a prefix of some field), 0 if unknown. */
static int schema_lookup(const CfgField *f, int n, const char *path) {
    size_t len = strlen(path);
    int section = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(f[i].key, path) == 0) return 1;
        if (strncmp(f[i].key, path, len) == 0 && f[i].key[len] == '.') section = 1;
    }
    return section ? 2 : 0;
}

/* Edit distance (insertions, deletions, substitutions) between a and b, or 99 for keys too
 * long to compare. */
static int edit_distance(const char *a, const char *b) {
    enum { MAXK = 96 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXK || lb >= MAXK) return 99;
    int row[MAXK], prev[MAXK];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]), del = prev[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, row, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

/* The field an unknown key most likely meant: the nearest by edit distance (within a third of
 * the key's length), or else one with the same last part in another section; NULL if none. */
static const char *nearest_key(const CfgField *f, int n, const char *path) {
    const char *best = NULL, *tail = strrchr(path, '.');
    tail = tail ? tail + 1 : path;
    int best_d = (int)strlen(path) / 3 + 1;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(path, f[i].key);
        if (d < best_d) best_d = d, best = f[i].key;
    }
    for (int i = 0; i < n && !best; i++) {
        const char *t = strrchr(f[i].key, '.');
        if (!strcmp(t ? t + 1 : f[i].key, tail)) best = f[i].key;
    }
    return best;
}

static int check_keys(const json_t *obj, const char *prefix, const CfgField *f, int n,
                      const char *file) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k);
        int kind = schema_lookup(f, n, path);
        if (kind == 0) {
            const char *near = nearest_key(f, n, path);
            if (near)
                return dr_error("%s: unknown key '%s' (did you mean '%s'?)", file, path, near);
            return dr_error("%s: unknown key '%s'", file, path);
        }
        if (kind == 2) {
            if (!json_is_object(v)) return dr_error("%s: '%s' must be an object", file, path);
            if (check_keys(v, path, f, n, file)) return DR_ERR;
        }
    }
    return DR_OK;
}

static const json_t *get_path(const json_t *root, const char *key) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", key);
    const json_t *obj = root;
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p && obj; p = strtok_r(NULL, ".", &save))
        obj = json_is_object(obj) ? json_object_get(obj, p) : NULL;
    return obj;
}

/* Index of s among "a|b|c", or -1. */
static int choice_index(const char *s, const char *choices) {
    size_t n = strlen(s);
    int i = 0;
    for (const char *c = choices; c && *c; i++) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return i;
        c = bar ? bar + 1 : NULL;
    }
    return -1;
}

static int in_choices(const char *s, const char *choices) {
    return choice_index(s, choices) >= 0;
}

/* Choice i of "a|b|c" into buf. */
static const char *choice_at(const char *choices, int i, char *buf, size_t cap) {
    const char *c = choices;
    for (; i > 0 && c; i--) c = strchr(c, '|'), c = c ? c + 1 : NULL;
    const char *bar = c ? strchr(c, '|') : NULL;
    snprintf(buf, cap, "%.*s", c ? (int)(bar ? bar - c : (long)strlen(c)) : 0, c ? c : "");
    return buf;
}

static int bind_one(const json_t *v, const CfgField *f, char *base, const char *file) {
    switch (f->type) {
    case CFG_INT: {
        const int word =
            json_is_string(v) && f->choices ? choice_index(json_string_value(v), f->choices) : -1;
        if (word >= 0) { /* a named setting, stored as -1, -2, ... */
            *(int *)(base + f->offset) = -1 - word;
            return DR_OK;
        }
        if (!json_is_integer(v) && f->choices)
            return dr_error("%s: '%s' must be an integer or one of %s", file, f->key, f->choices);
        if (!json_is_integer(v)) return dr_error("%s: '%s' must be an integer", file, f->key);
        json_int_t x = json_integer_value(v);
        if ((double)x < f->lo || (double)x > f->hi)
            return dr_error("%s: '%s' must be in [%.0f, %.0f] (got %lld)", file, f->key, f->lo,
                            f->hi, (long long)x);
        *(int *)(base + f->offset) = (int)x;
        return DR_OK;
    }
    case CFG_FLOAT: {
        if (!json_is_number(v)) return dr_error("%s: '%s' must be a number", file, f->key);
        double x = json_number_value(v);
        if (!isfinite(x) || x < f->lo || x > f->hi)
            return dr_error("%s: '%s' must be in [%g, %g] (got %g)", file, f->key, f->lo, f->hi, x);
        *(double *)(base + f->offset) = x;
        return DR_OK;
    }
    case CFG_BOOL:
        if (!json_is_boolean(v)) return dr_error("%s: '%s' must be true or false", file, f->key);
        *(int *)(base + f->offset) = json_is_true(v);
        return DR_OK;
    case CFG_STRING: {
        if (!json_is_string(v)) return dr_error("%s: '%s' must be a string", file, f->key);
        const char *s = json_string_value(v);
        if (f->choices && !in_choices(s, f->choices))
            return dr_error("%s: '%s' must be one of %s (got '%s')", file, f->key, f->choices, s);
        if (strlen(s) >= CFG_STR_LEN)
            return dr_error("%s: '%s' is longer than %d characters", file, f->key, CFG_STR_LEN - 1);
        snprintf(base + f->offset, CFG_STR_LEN, "%s", s);
        return DR_OK;
    }
    }
    return DR_ERR;
}

int config_bind(const json_t *root, const CfgField *fields, int n, void *target, const char *file) {
    if (!json_is_object(root)) return dr_error("%s: expected a JSON object", file);
    if (check_keys(root, "", fields, n, file)) return DR_ERR;
    for (int i = 0; i < n; i++) {
        const json_t *v = get_path(root, fields[i].key);
        if (v && bind_one(v, &fields[i], target, file)) return DR_ERR;
    }
    return DR_OK;
}

json_t *config_to_json(const CfgField *fields, int n, const void *target) {
    json_t *root = json_object();
    const char *base = target;
    for (int i = 0; i < n; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", fields[i].key);
        json_t *obj = root;
        char *save = NULL, *p = strtok_r(buf, ".", &save);
        for (char *next; (next = strtok_r(NULL, ".", &save)); p = next) {
            json_t *c = json_object_get(obj, p);
            if (!c) json_object_set_new(obj, p, c = json_object());
            obj = c;
        }
        const CfgField *f = &fields[i];
        const int iv = f->type == CFG_INT ? *(const int *)(base + f->offset) : 0;
        char word[CFG_STR_LEN];
        json_t *v = f->type == CFG_INT && iv < 0 && f->choices
                        ? json_string(choice_at(f->choices, -1 - iv, word, sizeof word))
                    : f->type == CFG_INT   ? json_integer(iv)
                    : f->type == CFG_FLOAT ? json_real(*(const double *)(base + f->offset))
                    : f->type == CFG_BOOL  ? json_boolean(*(const int *)(base + f->offset))
                                           : json_string(base + f->offset);
        json_object_set_new(obj, p, v);
    }
    return root;
}

/* What field f takes, as text. */
static void takes(const CfgField *f, char *buf, size_t cap) {
    if (f->type == CFG_BOOL)
        snprintf(buf, cap, "true|false");
    else if (f->type == CFG_STRING)
        snprintf(buf, cap, "%s", f->choices ? f->choices : "text");
    else if (f->type == CFG_INT)
        snprintf(buf, cap, "%.0f..%.0f%s%s", f->lo, f->hi, f->choices ? "|" : "",
                 f->choices ? f->choices : "");
    else
        snprintf(buf, cap, "%g..%g", f->lo, f->hi);
}

void config_print_help(FILE *f, const CfgField *fields, int n, const void *defaults) {
    json_t *all = config_to_json(fields, n, defaults);
    for (int i = 0; i < n; i++) {
        char buf[512], what[600];
        snprintf(buf, sizeof buf, "%s", fields[i].key);
        const json_t *v = all;
        char *save = NULL;
        for (char *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save))
            v = json_object_get(v, p);
        char *val = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(6)) : NULL;
        takes(&fields[i], what, sizeof what);
        fprintf(f, "%-28s %-12s %s%s%s\n", fields[i].key, val ? val : "?", what,
                fields[i].help && fields[i].help[0] ? "  " : "",
                fields[i].help ? fields[i].help : "");
        free(val);
    }
    json_decref(all);
}
