/* `denserl plot SPEC.json OUT.svg`: draws a line chart from a JSON description, so scripts
 * (the benchmark comparisons) get the same SVG charts as run reports without a plotting
 * library. SPEC: {"title", "xlabel", "ylabel", "ylabel_right", "ymin", "ymax",
 * "series": [{"label", "x": [...], "y": [...], "lo": [...], "hi": [...], "right_axis"}]}. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "commands.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"
#include "../runtime/plot.h"

/* Reads an optional numeric array of length n (null entries become NaN). */
static int num_array(const json_t *s, const char *key, int n, const char *file, int idx,
                     double **out) {
    const json_t *a = json_object_get(s, key);
    *out = NULL;
    if (!a || json_is_null(a)) return DR_OK;
    if (!json_is_array(a)) return dr_error("%s: series %d: '%s' must be an array", file, idx, key);
    if (n >= 0 && (int)json_array_size(a) != n)
        return dr_error("%s: series %d: '%s' must have %d entries like 'y'", file, idx, key, n);
    int len = (int)json_array_size(a);
    *out = xcalloc(len ? len : 1, sizeof(double));
    for (int i = 0; i < len; i++) {
        const json_t *v = json_array_get(a, i);
        if (json_is_null(v)) {
            (*out)[i] = NAN;
        } else if (json_is_number(v)) {
            (*out)[i] = json_number_value(v);
        } else {
            free(*out);
            *out = NULL;
            return dr_error("%s: series %d: '%s'[%d] must be a number or null", file, idx, key, i);
        }
    }
    return DR_OK;
}

/* Every key of obj must be one of keys (NULL-terminated): a misspelt key would otherwise be
 * dropped without a word. where: "" for the top level, else "series N: ". */
static int known_keys(const json_t *obj, const char *const *keys, const char *file,
                      const char *where) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        int found = 0;
        for (int i = 0; keys[i] && !found; i++) found = !strcmp(k, keys[i]);
        if (!found) return dr_error("%s: %sunknown key '%s'", file, where, k);
    }
    return DR_OK;
}

static int run(const char *spec_path, const char *out) {
    json_t *root;
    if (json_load_path(spec_path, &root)) return DR_ERR;
    const json_t *ser = json_object_get(root, "series");
    if (!json_is_object(root) || !json_is_array(ser)) {
        json_decref(root);
        return dr_error("%s: expected an object with a 'series' array", spec_path);
    }
    static const char *const top[] = {"title", "xlabel", "ylabel", "ylabel_right",
                                      "ymin",  "ymax",   "series", NULL};
    static const char *const per[] = {"label", "x", "y", "lo", "hi", "right_axis", NULL};
    PlotSpec spec = {0};
    double ymin = 0, ymax = 0;
    int st = known_keys(root, top, spec_path, "") ||
             json_get_str(root, "title", 0, spec_path, &spec.title) ||
             json_get_str(root, "xlabel", 0, spec_path, &spec.xlabel) ||
             json_get_str(root, "ylabel", 0, spec_path, &spec.ylabel) ||
             json_get_str(root, "ylabel_right", 0, spec_path, &spec.ylabel_right) ||
             json_get_num(root, "ymin", 0, spec_path, &ymin) ||
             json_get_num(root, "ymax", 0, spec_path, &ymax);
    spec.ymin = ymin;
    spec.ymax = ymax;
    int n = (int)json_array_size(ser);
    PlotSeries *s = xcalloc(n ? n : 1, sizeof(PlotSeries));
    for (int i = 0; i < n && !st; i++) {
        const json_t *e = json_array_get(ser, i);
        double *y = NULL;
        char where[32];
        snprintf(where, sizeof where, "series %d: ", i);
        if (!json_is_object(e)) {
            st = dr_error("%s: series %d must be an object with a 'y' array", spec_path, i);
            break;
        }
        st = known_keys(e, per, spec_path, where) ||
             json_get_str(e, "label", 0, spec_path, &s[i].label) ||
             json_get_bool(e, "right_axis", 0, spec_path, &s[i].right_axis) ||
             num_array(e, "y", -1, spec_path, i, &y);
        if (!st && !y) st = dr_error("%s: series %d: 'y' is required", spec_path, i);
        if (st) break;
        s[i].y = y;
        s[i].n = (int)json_array_size(json_object_get(e, "y"));
        double *x = NULL, *lo = NULL, *hi = NULL;
        st = num_array(e, "x", s[i].n, spec_path, i, &x) ||
             num_array(e, "lo", s[i].n, spec_path, i, &lo) ||
             num_array(e, "hi", s[i].n, spec_path, i, &hi);
        s[i].x = x;
        s[i].lo = lo;
        s[i].hi = hi;
    }
    if (!st) st = plot_svg(out, &spec, s, n);
    for (int i = 0; i < n; i++) {
        free((void *)s[i].x);
        free((void *)s[i].y);
        free((void *)s[i].lo);
        free((void *)s[i].hi);
    }
    free(s);
    json_decref(root);
    return st;
}

int cmd_plot(int argc, char **argv) {
    if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        printf("usage: denserl plot SPEC.json OUT.svg\n");
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "error: plot: usage: denserl plot SPEC.json OUT.svg\n");
        return 2;
    }
    if (run(argv[0], argv[1])) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    return 0;
}
