/* The built-in chat templates (chat_template.h): prompt strings assembled piece by piece,
 * the stop tokens looked up in the tokenizer, and "auto" read from tokenizer_config.json. */
#include "chat_template.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"

typedef struct {
    char *s;
    size_t n, cap;
} Text;

static void text_put(Text *t, const char *s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (t->n + n + 1 > cap) cap *= 2;
        t->s = realloc(t->s, cap);
        CHECK(t->s);
        t->cap = cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
}

static void text_puts(Text *t, const char *s) {
    text_put(t, s, strlen(s));
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Appends s without its leading and trailing whitespace (Jinja's trim). */
static void text_put_trimmed(Text *t, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    text_put(t, s + a, b - a);
}

static int nonempty(const char *s) {
    return s && *s;
}

const char *chat_kind_name(ChatKind k) {
    return k == CHAT_CHATML ? "chatml" : k == CHAT_LLAMA3 ? "llama3" : "raw";
}

char *chat_format(const ChatTemplate *t, const char *user) {
    /* the user message: the prompt, then the instruction suffix on its own line */
    Text u = {0};
    text_puts(&u, user ? user : "");
    if (nonempty(t->suffix)) {
        text_puts(&u, "\n");
        text_puts(&u, t->suffix);
    }
    Text o = {0};
    text_puts(&o, ""); /* an empty prompt is still an allocated string */
    switch (t->kind) {
    case CHAT_CHATML:
        if (nonempty(t->system)) {
            text_puts(&o, "<|im_start|>system\n");
            text_puts(&o, t->system);
            text_puts(&o, "<|im_end|>\n");
        }
        text_puts(&o, "<|im_start|>user\n");
        text_puts(&o, u.s);
        text_puts(&o, "<|im_end|>\n<|im_start|>assistant\n");
        break;
    case CHAT_LLAMA3:
        text_puts(&o, "<|begin_of_text|>");
        if (nonempty(t->system)) {
            text_puts(&o, "<|start_header_id|>system<|end_header_id|>\n\n");
            text_put_trimmed(&o, t->system);
            text_puts(&o, "<|eot_id|>");
        }
        text_puts(&o, "<|start_header_id|>user<|end_header_id|>\n\n");
        text_put_trimmed(&o, u.s);
        text_puts(&o, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_RAW:
        if (nonempty(t->system)) {
            text_puts(&o, t->system);
            text_puts(&o, "\n\n");
        }
        text_puts(&o, u.s);
        break;
    }
    free(u.s);
    return o.s;
}

/* The template text of a chat_template value: a string, or a list of named templates. */
static const char *template_text(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (!json_is_array(v)) return NULL;
    const char *first = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *text = json_string_value(json_object_get(e, "template"));
        if (!text) continue;
        if (name && !strcmp(name, "default")) return text;
        if (!first) first = text;
    }
    return first;
}

int chat_template_detect(const char *config_path, ChatKind *out) {
    json_t *j;
    if (json_load_path(config_path, &j)) return DR_ERR;
    const json_t *v = json_is_object(j) ? json_object_get(j, "chat_template") : NULL;
    const char *text = v ? template_text(v) : NULL;
    int st = DR_OK;
    if (!text)
        st = dr_error("%s: no 'chat_template' string to detect the template from (pass "
                      "--template chatml, llama3 or raw)",
                      config_path);
    else if (strstr(text, "<|im_start|>"))
        *out = CHAT_CHATML;
    else if (strstr(text, "<|start_header_id|>"))
        *out = CHAT_LLAMA3;
    else
        st = dr_error("%s: 'chat_template' is neither ChatML (<|im_start|>) nor Llama 3 "
                      "(<|start_header_id|>); pass --template chatml, llama3 or raw",
                      config_path);
    json_decref(j);
    return st;
}

int chat_template_kind(const char *name, const char *model_dir, ChatKind *out) {
    if (!strcmp(name, "chatml")) {
        *out = CHAT_CHATML;
    } else if (!strcmp(name, "llama3")) {
        *out = CHAT_LLAMA3;
    } else if (!strcmp(name, "raw")) {
        *out = CHAT_RAW;
    } else if (!strcmp(name, "auto")) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir ? model_dir : ".");
        return chat_template_detect(path, out);
    } else {
        return dr_error("template '%s': expected auto, chatml, llama3 or raw", name);
    }
    return DR_OK;
}

int chat_stop_tokens(ChatKind k, const TokBpe *tok, const char *tok_path, int ids[CHAT_MAX_STOP],
                     int *n) {
    *n = 0;
    const char *primary = NULL, *secondary = NULL;
    if (k == CHAT_CHATML) {
        primary = "<|im_end|>", secondary = "<|endoftext|>";
    } else if (k == CHAT_LLAMA3) {
        primary = "<|eot_id|>", secondary = "<|end_of_text|>";
    } else {
        int eos = tok_bpe_eos_id(tok);
        if (eos >= 0) ids[(*n)++] = eos;
        return DR_OK;
    }
    int p = tok_bpe_token_id(tok, primary);
    if (p < 0)
        return dr_error("%s: the %s template ends replies with %s, which this tokenizer lacks",
                        tok_path, chat_kind_name(k), primary);
    ids[(*n)++] = p;
    int s = tok_bpe_token_id(tok, secondary);
    if (s >= 0 && s != p) ids[(*n)++] = s;
    return DR_OK;
}
