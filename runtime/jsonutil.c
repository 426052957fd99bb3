/* jansson helpers with errors that name file and field. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "fileio.h"
#include "jsonutil.h"

int json_load_path(const char *path, json_t **out) {
    json_error_t e;
    if (dir_exists(path)) return dr_error("%s: is a directory, expected a JSON file", path);
    if (!file_exists(path)) return dr_error("%s: file not found", path);
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) return dr_error("%s: not valid JSON (line %d: %s)", path, e.line, e.text);
    *out = j;
    return DR_OK;
}

static const json_t *field(const json_t *obj, const char *key, int required, const char *file,
                           int *status) {
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    *status = DR_OK;
    if (!v || json_is_null(v)) {
        if (required) *status = dr_error("%s: missing field '%s'", file, key);
        return NULL;
    }
    return v;
}

int json_get_int(const json_t *obj, const char *key, int required, const char *file, int *out) {
    int st;
    const json_t *v = field(obj, key, required, file, &st);
    if (!v) return st;
    if (!json_is_integer(v)) return dr_error("%s: field '%s' must be an integer", file, key);
    json_int_t x = json_integer_value(v);
    if (x < -2147483647LL || x > 2147483647LL)
        return dr_error("%s: field '%s' is out of range (%lld)", file, key, (long long)x);
    *out = (int)x;
    return DR_OK;
}

int json_get_num(const json_t *obj, const char *key, int required, const char *file, double *out) {
    int st;
    const json_t *v = field(obj, key, required, file, &st);
    if (!v) return st;
    if (!json_is_number(v)) return dr_error("%s: field '%s' must be a number", file, key);
    *out = json_number_value(v);
    return DR_OK;
}

int json_get_bool(const json_t *obj, const char *key, int required, const char *file, int *out) {
    int st;
    const json_t *v = field(obj, key, required, file, &st);
    if (!v) return st;
    if (!json_is_boolean(v)) return dr_error("%s: field '%s' must be true or false", file, key);
    *out = json_is_true(v);
    return DR_OK;
}

int json_get_str(const json_t *obj, const char *key, int required, const char *file,
                 const char **out) {
    int st;
    const json_t *v = field(obj, key, required, file, &st);
    if (!v) return st;
    if (!json_is_string(v)) return dr_error("%s: field '%s' must be a string", file, key);
    *out = json_string_value(v);
    return DR_OK;
}

int jsonl_each(const char *path, JsonlLineFn fn, void *ctx, int *lines) {
    if (lines) *lines = 0;
    FILE *f = file_open_read(path, "a JSONL file");
    if (!f) return DR_ERR;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, st = DR_OK;
    while (st == DR_OK && (got = getline(&line, &cap, f)) != -1) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)got) continue;
        json_error_t e;
        json_t *j = json_loadb(line, (size_t)got, 0, &e);
        if (!j) {
            st = dr_error("%s:%d: not valid JSON (%s)", path, lineno, e.text);
            break;
        }
        if (lines) ++*lines;
        st = fn(j, path, lineno, ctx);
        json_decref(j);
    }
    free(line);
    if (st == DR_OK && ferror(f)) st = dr_error("%s: read error: %s", path, strerror(errno));
    fclose(f);
    return st;
}

int json_write_path(const char *path, const json_t *value) {
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    if (!text) return dr_error("%s: could not serialise JSON", path);
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int st = atomic_write(path, text, n + 1);
    free(text);
    return st;
}

json_t *json_finite(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}
