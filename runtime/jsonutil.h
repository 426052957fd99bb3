/* Typed field access on jansson objects with user-facing errors: each getter names the
 * file and the field and says what was expected. */
#pragma once
#include <jansson.h>

/* Loads PATH as JSON. DR_ERR with "<path>: not valid JSON (line L: ...)" or "cannot open". */
int json_load_path(const char *path, json_t **out);
/* Each getter: a missing field is an error when required, otherwise leaves *out unchanged;
 * null counts as missing. DR_OK or DR_ERR. */
int json_get_int(const json_t *obj, const char *key, int required, const char *file, int *out);
int json_get_num(const json_t *obj, const char *key, int required, const char *file, double *out);
int json_get_bool(const json_t *obj, const char *key, int required, const char *file, int *out);
int json_get_str(const json_t *obj, const char *key, int required, const char *file,
                 const char **out);
/* A JSON real, or null where x is NaN or infinite (JSON has no such numbers). */
json_t *json_finite(double x);
/* Reads the JSONL file PATH line by line: every non-blank line is parsed and handed to
 * fn(j, path, lineno, ctx) (lineno from 1; j is freed after fn returns). Stops at the first
 * error: "<path>:<line>: not valid JSON (...)", "<path>: cannot open", or fn's. *lines (if
 * not NULL) gets the number of non-blank lines handed to fn. DR_OK or DR_ERR. */
typedef int (*JsonlLineFn)(json_t *j, const char *path, int lineno, void *ctx);
int jsonl_each(const char *path, JsonlLineFn fn, void *ctx, int *lines);
/* Writes a JSON value atomically with 2-space indentation. */
int json_write_path(const char *path, const json_t *value);
