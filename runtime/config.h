/* Run configs: a JSON file bound onto a C struct through a schema of dotted keys, with
 * `--set key.path=value` overrides. Every key in the file must be in the schema (a typo
 * is an error naming the key), and every value is type- and range-checked. */
#pragma once
#include <stddef.h>
#include <stdio.h>
#include <jansson.h>

#define CFG_STR_LEN 256

typedef enum { CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_STRING } CfgType;

typedef struct {
    const char *key;     /* dotted path, e.g. "sft.steps" */
    CfgType type;        /* int -> int, float -> double, bool -> int, string -> char[CFG_STR_LEN] */
    size_t offset;       /* of the field in the target struct */
    double lo, hi;       /* inclusive range for numbers */
    const char *choices; /* "a|b|c" for strings (NULL accepts any string); for an int, the
                          * words it also takes, stored as -1, -2, ... (NULL: numbers only) */
    const char *help;    /* one line for `train --help-config` */
} CfgField;

/* Applies "a.b.c=value" to root: value parsed as JSON when it is JSON, else as a string.
 * Unknown keys are caught by config_bind afterwards. DR_OK or DR_ERR. */
int config_apply_set(json_t *root, const char *assignment);
/* Checks that every key of root is in the schema, then copies each present value into
 * target (which holds the defaults). file names the source in messages. */
int config_bind(const json_t *root, const CfgField *fields, int n, void *target, const char *file);
/* The config as JSON (every schema field with its value), for the run directory. */
json_t *config_to_json(const CfgField *fields, int n, const void *target);
/* One line per field to f: the key, its default (from defaults), what it takes (a range, the
 * choices, true|false) and its help. */
void config_print_help(FILE *f, const CfgField *fields, int n, const void *defaults);
