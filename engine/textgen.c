/* Prompts to replies through a Hugging Face model directory (textgen.h): the shared flags of
 * the generate and eval commands, prompt encoding with its checks, batched generation and
 * decoding. */
#include "textgen.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_io.h"
#include "../runtime/check.h"
#include "../runtime/error.h"

/* Tokens of activations the prefill may use at once (at least one row of T_cap): enough for
 * a batch of short prompts, small enough for a 7B model's activations to fit beside it. */
#define PREFILL_TOKENS 1024

const char TEXTGEN_FLAGS_USAGE[] =
    "  --model DIR            Hugging Face model directory with tokenizer.json (required)\n"
    "  --template NAME        auto (from tokenizer_config.json), chatml, llama3 or raw\n"
    "  --system TEXT          system prompt (none by default)\n"
    "  --suffix TEXT          appended to each prompt on a new line, e.g. \"Please reason step\n"
    "                         by step, and put your final answer within \\boxed{}.\"\n"
    "  --temperature T        0 for greedy\n"
    "  --top-p P, --top-k K   nucleus / top-k sampling (1 and 0: off)\n"
    "  --max-new-tokens N     reply length limit, stop token included (512)\n"
    "  --seed S               random seed (1234)\n"
    "  --device D             auto, cpu or cuda\n"
    "  --precision P          fp32, or bf16 on a GPU\n"
    "  --attention A          flash (default) or cudnn, with bf16\n"
    "  --batch N              rows per generation call (64)\n";

void textgen_options_default(TextGenOptions *o) {
    memset(o, 0, sizeof *o);
    o->template_name = "auto";
    o->device = "auto";
    o->precision = "fp32";
    o->attention = "flash";
    o->sp = sample_params_default();
    o->sp.max_new_tokens = 512;
    o->seed = 1234;
    o->batch = 64;
}

int textgen_flag_num(const char *flag, const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno) return dr_error("%s: expected a number, got '%s'", flag, s);
    *out = v;
    return DR_OK;
}

int textgen_flag_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return dr_error("%s: expected an integer in [%lld, %lld], got '%s'", flag, lo, hi, s);
    *out = v;
    return DR_OK;
}

int textgen_parse_flag(TextGenOptions *o, int argc, char **argv, int *i) {
    static const char *const flags[] = {
        "--model",     "--template",  "--system",         "--suffix", "--temperature",
        "--top-p",     "--top-k",     "--max-new-tokens", "--seed",   "--device",
        "--precision", "--attention", "--batch"};
    const char *f = argv[*i];
    int known = 0;
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) known |= !strcmp(f, flags[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) return dr_error("%s: expected a value after it", f);
    const char *v = argv[++*i];
    double d = 0;
    long long n;
    if (!strcmp(f, "--model")) {
        o->model_dir = v;
    } else if (!strcmp(f, "--template")) {
        o->template_name = v;
    } else if (!strcmp(f, "--system")) {
        o->system = v;
    } else if (!strcmp(f, "--suffix")) {
        o->suffix = v;
    } else if (!strcmp(f, "--device")) {
        o->device = v;
    } else if (!strcmp(f, "--precision")) {
        if (strcmp(v, "fp32") && strcmp(v, "bf16"))
            return dr_error("--precision: expected fp32 or bf16, got '%s'", v);
        o->precision = v;
    } else if (!strcmp(f, "--attention")) {
        if (strcmp(v, "flash") && strcmp(v, "cudnn"))
            return dr_error("--attention: expected flash or cudnn, got '%s'", v);
        o->attention = v;
    } else if (!strcmp(f, "--temperature")) {
        if (textgen_flag_num(f, v, &d)) return DR_ERR;
        if (!(d >= 0 && d <= 100)) return dr_error("%s: expected a number >= 0, got '%s'", f, v);
        o->sp.temperature = (float)d;
        o->temperature_set = 1;
    } else if (!strcmp(f, "--top-p")) {
        if (textgen_flag_num(f, v, &d)) return DR_ERR;
        if (!(d > 0 && d <= 1)) return dr_error("%s: expected a number in (0, 1], got '%s'", f, v);
        o->sp.top_p = (float)d;
    } else if (!strcmp(f, "--top-k")) {
        if (textgen_flag_int(f, v, 0, INT_MAX, &n)) return DR_ERR;
        o->sp.top_k = (int)n;
    } else if (!strcmp(f, "--max-new-tokens")) {
        if (textgen_flag_int(f, v, 1, 1 << 20, &n)) return DR_ERR;
        o->sp.max_new_tokens = (int)n;
    } else if (!strcmp(f, "--seed")) {
        if (textgen_flag_int(f, v, 0, LLONG_MAX, &n)) return DR_ERR;
        o->seed = (unsigned long long)n;
    } else if (!strcmp(f, "--batch")) {
        if (textgen_flag_int(f, v, 1, 1 << 16, &n)) return DR_ERR;
        o->batch = (int)n;
    }
    return 1;
}

int textgen_open(TextGen *tg, const TextGenOptions *o) {
    memset(tg, 0, sizeof *tg);
    tg->o = *o;
    if (!o->model_dir) return dr_error("--model DIR is required");
    if (model_config_load(o->model_dir, &tg->cfg)) return DR_ERR;
    ChatKind kind;
    if (chat_template_kind(o->template_name, o->model_dir, &kind)) return DR_ERR;
    tg->tpl = (ChatTemplate){kind, o->system, o->suffix};
    if (backend_from_name(o->device, &tg->be)) return dr_error("--device: %s", dr_last_error());
    if (!strcmp(o->precision, "bf16") && tg->be != BACKEND_CUDA)
        return dr_error("--precision bf16 runs on a GPU only, and this run is on the CPU");
    char tok_path[PATH_MAX];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", o->model_dir);
    if (tok_bpe_load(tok_path, &tg->tok)) return DR_ERR;
    if (chat_stop_tokens(kind, tg->tok, tok_path, tg->stop, &tg->n_stop)) {
        textgen_close(tg);
        return DR_ERR;
    }
    return DR_OK;
}

int textgen_encode(TextGen *tg, const char *user, const char *system, const char *where, int **ids,
                   int *n) {
    *ids = NULL;
    *n = 0;
    const int ctx = tg->cfg.max_pos;
    ChatTemplate tpl = tg->tpl;
    if (system) tpl.system = system;
    char *text = chat_format(&tpl, user);
    int bos = tg->tpl.kind == CHAT_RAW ? tok_bpe_bos_id(tg->tok) : -1;
    int *buf = xmalloc(sizeof(int) * ((size_t)ctx + 1));
    int off = bos >= 0 ? 1 : 0;
    buf[0] = bos;
    int got = tok_bpe_encode(tg->tok, text, strlen(text), buf + off, ctx);
    free(text);
    int st = DR_OK;
    if (got == -1)
        st =
            dr_error("%s: the prompt needs more than the model's context of %d tokens", where, ctx);
    else if (got == -2)
        st = dr_error("%s: the prompt is not valid UTF-8", where);
    else if (got < 0)
        st = dr_error("%s: the tokenizer could not encode the prompt", where);
    else if (got + off == 0)
        st = dr_error("%s: the prompt encodes to no tokens", where);
    else if (got + off >= ctx)
        st = dr_error("%s: the prompt has %d tokens, leaving no room for a reply in the model's "
                      "context of %d",
                      where, got + off, ctx);
    for (int t = 0; st == DR_OK && t < got + off; t++)
        if (buf[t] < 0 || buf[t] >= tg->cfg.vocab)
            st = dr_error("%s: token id %d is outside the model's vocabulary of %d (does "
                          "tokenizer.json belong to this model?)",
                          where, buf[t], tg->cfg.vocab);
    if (st) {
        free(buf);
        return st;
    }
    *ids = buf;
    *n = got + off;
    return DR_OK;
}

int textgen_encode_all(TextGen *tg, int n, const char *const *texts, const char *const *systems,
                       const char *file, const int *lines, TextGenPrompts *p) {
    memset(p, 0, sizeof *p);
    p->ids = xcalloc(n > 0 ? n : 1, sizeof(int *));
    p->len = xcalloc(n > 0 ? n : 1, sizeof(int));
    char where[PATH_MAX + 32];
    for (int i = 0; i < n; i++) {
        if (file)
            snprintf(where, sizeof where, "%s:%d", file, lines[i]);
        else
            snprintf(where, sizeof where, "--prompt");
        if (textgen_encode(tg, texts[i], systems ? systems[i] : NULL, where, &p->ids[i],
                           &p->len[i])) {
            textgen_prompts_free(p);
            return DR_ERR;
        }
        p->n = i + 1;
        if (p->len[i] > p->max_len) p->max_len = p->len[i];
    }
    return DR_OK;
}

void textgen_prompts_free(TextGenPrompts *p) {
    for (int i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
    memset(p, 0, sizeof *p);
}

int textgen_rows_per_call(int batch, int n, int k) {
    long long per = batch / k;
    if (per < 1) per = 1;
    if (per > n) per = n;
    return (int)(per * k);
}

int textgen_start(TextGen *tg, int max_prompt_len, int rows) {
    const ModelConfig *c = &tg->cfg;
    CHECK(max_prompt_len >= 1 && max_prompt_len < c->max_pos && rows >= 1);
    long long T = (long long)max_prompt_len + tg->o.sp.max_new_tokens;
    tg->T_cap = T > c->max_pos ? c->max_pos : (int)T;
    if (model_check_seq_len(c, tg->T_cap, tg->o.model_dir)) return DR_ERR;
    tg->B_cap = rows;
    int act_rows = PREFILL_TOKENS / tg->T_cap;
    if (act_rows < 1) act_rows = 1;
    if (act_rows > rows) act_rows = rows;
    if (model_load(&tg->m, tg->o.model_dir, tg->be, act_rows, tg->T_cap,
                   model_bf16_attention(tg->o.precision, tg->o.attention)))
        return DR_ERR;
    generator_init(&tg->g, &tg->m, rows, tg->T_cap);
    size_t cells = (size_t)rows * tg->T_cap;
    tg->prompts = xcalloc(cells, sizeof(int));
    tg->out = xcalloc(cells, sizeof(int));
    tg->plen = xcalloc(rows, sizeof(int));
    tg->rlen = xcalloc(rows, sizeof(int));
    tg->hit = xcalloc(rows, sizeof(int));
    tg->loaded = 1;
    return DR_OK;
}

static int is_stop(const TextGen *tg, int id) {
    for (int i = 0; i < tg->n_stop; i++)
        if (tg->stop[i] == id) return 1;
    return 0;
}

/* Appends the bytes of token id to a growing buffer; ids the tokenizer does not know (a
 * model's vocabulary padded past the tokenizer's) add nothing. */
static void append_token(const TokBpe *tok, int id, char **s, size_t *len, size_t *cap) {
    char small[256];
    int got = tok_bpe_decode(tok, &id, 1, small, sizeof small);
    char *big = NULL;
    const char *bytes = small;
    if (got < 0 && id >= 0 && id < tok_bpe_vocab_size(tok)) {
        size_t bcap = 1 << 16; /* long added tokens */
        big = xmalloc(bcap);
        got = tok_bpe_decode(tok, &id, 1, big, bcap);
        bytes = big;
    }
    if (got > 0) {
        if (*len + (size_t)got + 1 > *cap) {
            while (*len + (size_t)got + 1 > *cap) *cap = *cap ? 2 * *cap : 256;
            *s = realloc(*s, *cap);
            CHECK(*s);
        }
        memcpy(*s + *len, bytes, (size_t)got);
        *len += (size_t)got;
    }
    free(big);
}

void textgen_run(TextGen *tg, int n, int *const *ids, const int *lens,
                 const unsigned long long *row_ids, TextGenResult *res) {
    CHECK(tg->loaded && n >= 0 && n <= tg->B_cap);
    const int T = tg->T_cap;
    for (int r = 0; r < n; r++) {
        CHECK(lens[r] >= 1 && lens[r] < T);
        memcpy(tg->prompts + (size_t)r * T, ids[r], sizeof(int) * lens[r]);
        tg->plen[r] = lens[r];
    }
    generate(&tg->g, tg->prompts, tg->plen, n, &tg->o.sp, tg->stop, tg->n_stop, 0, tg->o.seed,
             row_ids, tg->out, tg->rlen, tg->hit, NULL);
    for (int r = 0; r < n; r++) {
        const int *resp = tg->out + (size_t)r * T + tg->plen[r];
        TextGenResult *o = &res[r];
        memset(o, 0, sizeof *o);
        int k = 0;
        while (k < tg->rlen[r] && !is_stop(tg, resp[k])) k++;
        o->stopped = k < tg->rlen[r];
        o->tokens = o->stopped ? k + 1 : tg->rlen[r];
        size_t cap = 0;
        for (int t = 0; t < k; t++) append_token(tg->tok, resp[t], &o->text, &o->len, &cap);
        if (!o->text) o->text = xcalloc(1, 1);
        o->text[o->len] = 0;
        tg->tokens_generated += o->tokens;
    }
}

void textgen_result_free(TextGenResult *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

void textgen_run_all(TextGen *tg, const TextGenPrompts *p, int k, int rows, TextGenRepliesFn fn,
                     void *ctx) {
    const int per = rows / k, n = p->n;
    backend_note_fallback();
    int **ids = xmalloc(sizeof(int *) * rows);
    int *lens = xmalloc(sizeof(int) * rows);
    unsigned long long *rid = xmalloc(sizeof(unsigned long long) * rows);
    TextGenResult *res = xmalloc(sizeof(TextGenResult) * rows);
    for (int i0 = 0; i0 < n; i0 += per) {
        const int np = n - i0 < per ? n - i0 : per;
        for (int r = 0; r < np * k; r++) {
            const int i = i0 + r / k, s = r % k;
            ids[r] = p->ids[i];
            lens[r] = p->len[i];
            rid[r] = ((unsigned long long)i << 16) + (unsigned long long)s;
        }
        textgen_run(tg, np * k, ids, lens, rid, res);
        fn(ctx, i0, np, res);
        for (int r = 0; r < np * k; r++) textgen_result_free(&res[r]);
    }
    free(ids);
    free(lens);
    free(rid);
    free(res);
}

void textgen_close(TextGen *tg) {
    if (tg->loaded) {
        generator_free(&tg->g);
        model_free(&tg->m);
    }
    free(tg->prompts);
    free(tg->out);
    free(tg->plen);
    free(tg->rlen);
    free(tg->hit);
    if (tg->tok) tok_bpe_free(tg->tok);
    memset(tg, 0, sizeof *tg);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or minus the length of the
 * maximal invalid subpart there (a lead byte and the continuation bytes that still fit it),
 * which becomes one U+FFFD as in String::from_utf8_lossy. */
static int utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return -1;
    if (n < 2 || s[1] < lo || s[1] > hi) return -1;
    for (int i = 2; i < len; i++)
        if ((size_t)i >= n || s[i] < 0x80 || s[i] > 0xBF) return -i;
    return len;
}

json_t *json_text_lossy(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    char *buf = xmalloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int k = utf8_seq(u + i, len - i);
        if (k > 0) {
            memcpy(buf + o, s + i, (size_t)k);
            o += (size_t)k, i += (size_t)k;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3, i += (size_t)-k;
        }
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    CHECK(j);
    return j;
}

int textgen_parse_data_flag(TextGenData *d, int allow_prompt, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    const char **slot = allow_prompt && !strcmp(f, "--prompt") ? &d->prompt
                        : !strcmp(f, "--data")                 ? &d->data
                        : !strcmp(f, "--task")                 ? &d->task
                        : !strcmp(f, "--out")                  ? &d->out
                        : !strcmp(f, "--prompt-field")         ? &d->fields.prompt_field
                        : !strcmp(f, "--answer-field")         ? &d->fields.answer_field
                                                               : NULL;
    int is_num =
        !strcmp(f, "--samples") || !strcmp(f, "--limit") || !strcmp(f, "--max-bad-fraction");
    if (!slot && !is_num) return 0;
    if (*i + 1 >= argc) return dr_error("%s: expected a value after it", f);
    const char *v = argv[++*i];
    long long n = 0;
    if (slot) {
        *slot = v;
    } else if (!strcmp(f, "--max-bad-fraction")) {
        if (textgen_flag_num(f, v, &d->max_bad)) return DR_ERR;
        if (!(d->max_bad >= 0 && d->max_bad <= 1))
            return dr_error("%s: expected a number in [0, 1], got '%s'", f, v);
    } else if (!strcmp(f, "--samples")) {
        if (textgen_flag_int(f, v, 1, 65535, &n)) return DR_ERR;
        d->samples = (int)n;
    } else {
        if (textgen_flag_int(f, v, 0, 1 << 30, &n)) return DR_ERR;
        d->limit = (int)n;
    }
    return 1;
}

int textgen_parse_args(TextGenOptions *o, TextGenData *d, int allow_prompt, const char *cmd,
                       const char *usage, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s%s", usage, TEXTGEN_FLAGS_USAGE);
            return 1;
        }
        int used = textgen_parse_flag(o, argc, argv, &i);
        if (!used) used = textgen_parse_data_flag(d, allow_prompt, argc, argv, &i);
        if (used < 0) return DR_ERR;
        if (!used)
            return dr_error("%s: unexpected argument '%s' (denserl %s --help lists the options)",
                            cmd, argv[i], cmd);
    }
    return DR_OK;
}
