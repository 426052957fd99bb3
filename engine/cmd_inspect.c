/* `denserl inspect`: reads one RL debug dump (PRIME.md §9) and shows each row's prompt and
 * response with the process reward of every response token: on a terminal as background
 * shading (green positive, red negative), otherwise as one line per response token with
 * its reward, advantage and log-ratio, so the output can be read by scripts. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "commands.h"
#include "tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/safetensors.h"

typedef struct {
    StFile st;
    int n, t;           /* rows, columns */
    int32_t *tokens;    /* (n, t) */
    float *mask;        /* (n, t) 1 on response tokens, eos included */
    int32_t *group;     /* (n) */
    float *outcome;     /* (n) */
    float *logp_ref;    /* (n, t) */
    float *logp_prm;    /* (n, t) */
    float *reward;      /* (n, t) token_reward */
    float *adv;         /* (n, t) advantages */
    float *values;      /* (n, t) or NULL when the estimator has no critic */
    int char_tokenizer; /* metadata "tokenizer" is "char": ids decode to characters */
} Dump;

static void dump_free(Dump *d) {
    free(d->tokens);
    free(d->mask);
    free(d->group);
    free(d->outcome);
    free(d->logp_ref);
    free(d->logp_prm);
    free(d->reward);
    free(d->adv);
    free(d->values);
    st_close(&d->st);
    memset(d, 0, sizeof *d);
}

static void shape_str(const StTensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

/* The tensor NAME with shape (n) when t < 0, else (n, t); NULL after recording an error. */
static const StTensor *find_shaped(const Dump *d, const char *path, const char *name, int n,
                                   int t) {
    const StTensor *x = st_find(&d->st, name);
    char want[64], got[200];
    if (t < 0)
        snprintf(want, sizeof want, "(%d)", n);
    else
        snprintf(want, sizeof want, "(%d,%d)", n, t);
    if (!x) {
        dr_error("%s: missing tensor '%s' (a debug dump has it with shape %s)", path, name, want);
        return NULL;
    }
    shape_str(x, got, sizeof got);
    int ok = t < 0 ? x->ndim == 1 && x->shape[0] == n
                   : x->ndim == 2 && x->shape[0] == n && x->shape[1] == t;
    if (!ok) {
        dr_error("%s: tensor '%s' has shape %s, expected %s to match 'tokens'", path, name, got,
                 want);
        return NULL;
    }
    return x;
}

/* The data may sit at any byte offset in the mapping, so it is copied, never cast. */
static int read_i32(const Dump *d, const char *path, const char *name, int n, int t,
                    int32_t **out) {
    const StTensor *x = find_shaped(d, path, name, n, t);
    if (!x) return DR_ERR;
    if (x->dtype != ST_I32)
        return dr_error("%s: tensor '%s' is %s, expected I32", path, name, st_dtype_name(x->dtype));
    *out = xmalloc(x->nbytes);
    memcpy(*out, x->data, x->nbytes);
    return DR_OK;
}

static int read_f32(const Dump *d, const char *path, const char *name, int n, int t, float **out) {
    const StTensor *x = find_shaped(d, path, name, n, t);
    if (!x) return DR_ERR;
    if (x->dtype != ST_F32 && x->dtype != ST_F16 && x->dtype != ST_BF16)
        return dr_error("%s: tensor '%s' is %s, expected F32", path, name, st_dtype_name(x->dtype));
    *out = xmalloc(sizeof(float) * (size_t)st_numel(x));
    if (st_read_f32(x, *out) != DR_OK) return dr_error("%s: %s", path, dr_last_error());
    return DR_OK;
}

static int dump_open(Dump *d, const char *path) {
    memset(d, 0, sizeof *d);
    if (st_open(&d->st, path) != DR_OK) return DR_ERR;
    const StTensor *tok = st_find(&d->st, "tokens");
    if (!tok)
        return dr_error("%s: not a debug dump: expected a tensor 'tokens' (N,T) I32 with "
                        "response_mask, token_reward, advantages, ... beside it",
                        path);
    char got[200];
    shape_str(tok, got, sizeof got);
    if (tok->ndim != 2 || tok->shape[0] > INT_MAX || tok->shape[1] > INT_MAX)
        return dr_error("%s: tensor 'tokens' has shape %s, expected (N,T)", path, got);
    int n = (int)tok->shape[0], t = (int)tok->shape[1];
    d->n = n, d->t = t;
    float *unused = NULL;
    /* logp_old and returns are not shown, but a dump without them is not a complete one */
    static const char *const checked_only[] = {"logp_old", "returns"};
    if (read_i32(d, path, "tokens", n, t, &d->tokens) ||
        read_i32(d, path, "group", n, -1, &d->group) ||
        read_f32(d, path, "response_mask", n, t, &d->mask) ||
        read_f32(d, path, "outcome", n, -1, &d->outcome) ||
        read_f32(d, path, "logp_ref", n, t, &d->logp_ref) ||
        read_f32(d, path, "logp_prm", n, t, &d->logp_prm) ||
        read_f32(d, path, "token_reward", n, t, &d->reward) ||
        read_f32(d, path, "advantages", n, t, &d->adv))
        return DR_ERR;
    for (size_t i = 0; i < sizeof checked_only / sizeof checked_only[0]; i++) {
        int rc = read_f32(d, path, checked_only[i], n, t, &unused);
        free(unused);
        unused = NULL;
        if (rc) return DR_ERR;
    }
    if (st_find(&d->st, "values") && read_f32(d, path, "values", n, t, &d->values)) return DR_ERR;
    if (d->st.metadata_json) {
        json_t *meta = json_loads(d->st.metadata_json, 0, NULL);
        const char *tk = json_string_value(json_object_get(meta, "tokenizer"));
        d->char_tokenizer = tk && !strcmp(tk, "char");
        json_decref(meta);
    }
    return DR_OK;
}

/* One token as text: characters of the char tokenizer, named specials, [id] otherwise. */
static const char *token_text(const Dump *d, int id, char *buf, size_t n) {
    if (d->char_tokenizer) {
        if (id == CHARTOK_EOS) return "<eos>";
        if (id == CHARTOK_BOS) return "<bos>";
        if (id == CHARTOK_PAD) return "<pad>";
        if (chartok_decode(&id, 1, buf, (int)n) == 1) return buf;
    }
    snprintf(buf, n, "[%d]", id);
    return buf;
}

static int is_pad(const Dump *d, int id) {
    return d->char_tokenizer && id == CHARTOK_PAD;
}

static int is_response(const Dump *d, int row, int col) {
    return d->mask[(size_t)row * d->t + col] > 0.5f;
}

static void row_header(const Dump *d, int i, int colour) {
    const float *r = d->reward + (size_t)i * d->t;
    double sum = 0;
    int nresp = 0;
    for (int c = 0; c < d->t; c++)
        if (is_response(d, i, c)) sum += r[c], nresp++;
    printf("%srow %d  group %d  outcome %g  sum(reward) %+.6g  response tokens %d%s\n",
           colour ? "\x1b[1m" : "", i, (int)d->group[i], (double)d->outcome[i], sum, nresp,
           colour ? "\x1b[0m" : "");
}

/* Columns up to the last response token; what follows is padding. */
static int row_end(const Dump *d, int i) {
    int end = 0;
    for (int c = 0; c < d->t; c++)
        if (is_response(d, i, c)) end = c + 1;
    return end;
}

static int first_response(const Dump *d, int i) {
    for (int c = 0; c < d->t; c++)
        if (is_response(d, i, c)) return c;
    return d->t;
}

static void show_plain(const Dump *d, int r0, int r1) {
    char buf[32];
    for (int i = r0; i < r1; i++) {
        const int32_t *tok = d->tokens + (size_t)i * d->t;
        size_t o = (size_t)i * d->t;
        row_header(d, i, 0);
        printf("  prompt  ");
        for (int c = 0; c < first_response(d, i); c++)
            if (!is_pad(d, tok[c])) fputs(token_text(d, tok[c], buf, sizeof buf), stdout);
        printf("\n  %5s  %-8s  %12s  %12s  %17s%s\n", "t", "token", "reward", "advantage",
               "logp_prm-logp_ref", d->values ? "         value" : "");
        for (int c = 0; c < d->t; c++) {
            if (!is_response(d, i, c)) continue;
            const char *txt = token_text(d, tok[c], buf, sizeof buf);
            /* a space token stays visible and keeps the columns aligned */
            printf("  %5d  %-8s  %+12.6g  %+12.6g  %+17.6g", c, !strcmp(txt, " ") ? "' '" : txt,
                   (double)d->reward[o + c], (double)d->adv[o + c],
                   (double)d->logp_prm[o + c] - (double)d->logp_ref[o + c]);
            if (d->values) printf("  %+12.6g", (double)d->values[o + c]);
            putchar('\n');
        }
    }
}

/* White at zero, full green or red at the largest |reward| shown; the text is dark so it
 * reads on every shade whatever the terminal's own colours. */
static void shade(double r, double scale) {
    double a = isfinite(r) && scale > 0 ? fmin(fabs(r) / scale, 1.0) : 0.0;
    static const int pos[3] = {46, 160, 67}, neg[3] = {214, 39, 40};
    const int *to = r >= 0 ? pos : neg;
    int rgb[3];
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(255 + a * (to[k] - 255));
    printf("\x1b[48;2;%d;%d;%dm\x1b[38;2;20;20;20m", rgb[0], rgb[1], rgb[2]);
}

static void show_colour(const Dump *d, int r0, int r1) {
    double scale = 0;
    for (int i = r0; i < r1; i++)
        for (int c = 0; c < d->t; c++) {
            double r = d->reward[(size_t)i * d->t + c];
            if (is_response(d, i, c) && isfinite(r)) scale = fmax(scale, fabs(r));
        }
    printf("token reward: ");
    shade(scale, scale);
    printf(" +%.4g ", scale);
    printf("\x1b[0m ");
    shade(0, scale);
    printf(" 0 ");
    printf("\x1b[0m ");
    shade(-scale, scale);
    printf(" -%.4g ", scale);
    printf("\x1b[0m  \x1b[2mprompt\x1b[0m\n");
    char buf[32];
    for (int i = r0; i < r1; i++) {
        const int32_t *tok = d->tokens + (size_t)i * d->t;
        row_header(d, i, 1);
        fputs("  ", stdout);
        int end = row_end(d, i);
        for (int c = 0; c < end; c++) {
            if (is_pad(d, tok[c])) continue;
            const char *txt = token_text(d, tok[c], buf, sizeof buf);
            if (is_response(d, i, c))
                shade(d->reward[(size_t)i * d->t + c], scale);
            else
                fputs("\x1b[2m", stdout);
            fputs(txt, stdout);
            fputs("\x1b[0m", stdout);
        }
        if (end == 0)
            for (int c = 0; c < d->t; c++)
                if (!is_pad(d, tok[c]))
                    printf("\x1b[2m%s\x1b[0m", token_text(d, tok[c], buf, sizeof buf));
        putchar('\n');
    }
}

static int parse_count(const char *s, long *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > INT_MAX) return 0;
    *out = v;
    return 1;
}

static const char USAGE[] = "denserl inspect DUMP.safetensors [--row I] [--rows N] [--plain]";

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    long row = -1, rows = -1;
    int plain = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: %s\n", USAGE);
            return 0;
        } else if (!strcmp(a, "--plain")) {
            plain = 1;
        } else if (!strcmp(a, "--row") || !strcmp(a, "--rows")) {
            long *slot = !strcmp(a, "--row") ? &row : &rows;
            if (i + 1 >= argc || !parse_count(argv[i + 1], slot) || (slot == &rows && *slot < 1)) {
                fprintf(stderr, "error: inspect: %s expects a %s integer, got '%s'\n", a,
                        slot == &rows ? "positive" : "non-negative",
                        i + 1 < argc ? argv[i + 1] : "");
                return 2;
            }
            i++;
        } else if (a[0] == '-' || path) {
            fprintf(stderr, "error: inspect: unexpected argument '%s' (usage: %s)\n", a, USAGE);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "error: inspect: expected a dump file (usage: %s)\n", USAGE);
        return 2;
    }
    if (row >= 0 && rows >= 0) {
        fprintf(stderr, "error: inspect: --row and --rows cannot be combined\n");
        return 2;
    }
    Dump d;
    if (dump_open(&d, path) != DR_OK) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        dump_free(&d);
        return 2;
    }
    int r0 = 0, r1 = d.n;
    if (row >= 0) {
        if (row >= d.n) {
            if (d.n == 0)
                fprintf(stderr, "error: %s: --row %ld is out of range (the dump has no rows)\n",
                        path, row);
            else
                fprintf(stderr,
                        "error: %s: --row %ld is out of range (the dump has %d rows, 0..%d)\n",
                        path, row, d.n, d.n - 1);
            dump_free(&d);
            return 2;
        }
        r0 = (int)row, r1 = (int)row + 1;
    } else if (rows >= 0 && rows < d.n) {
        r1 = (int)rows;
    }
    /* DENSERL_COLOR forces either way (tests, pagers that keep colour); NO_COLOR is the
     * common convention for turning colour off */
    const char *force = getenv("DENSERL_COLOR"), *no_colour = getenv("NO_COLOR");
    int colour = force && *force ? strcmp(force, "0") != 0
                                 : !(no_colour && *no_colour) && isatty(STDOUT_FILENO);
    if (plain) colour = 0;
    if (colour)
        show_colour(&d, r0, r1);
    else
        show_plain(&d, r0, r1);
    dump_free(&d);
    return fflush(stdout) == 0 ? 0 : 1;
}
