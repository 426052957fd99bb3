/* Tests for engine/tokenizer_bpe.c against the tokenizers library: every tokenizer and case in
 * tests/fixtures/bpe/expected.json (written by make_bpe_fixtures.py) must give the same ids
 * and decode them to the same bytes, on a cold and on a warm word cache. Then the lookups
 * (added tokens, bos/eos from tokenizer_config.json), the encode/decode limits, load errors
 * that must name the file and field, and an informational throughput line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "engine/tokenizer_bpe.h"
#include "runtime/error.h"
#include "testutil.h"

#define FIX_DIR "tests/fixtures/bpe"

static char g_tmp[256];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prints text with non-printable bytes escaped, at most 120 bytes. */
static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7F && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    if (n > 120) printf("...");
}

static void print_ids(const char *label, const int *ids, int n) {
    printf("    %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* Runs every case of one fixture tokenizer; returns the number of failing cases. */
static int run_cases(TokBpe *tok, const char *name, const json_t *cases, int pass) {
    int bad = 0, ids[4096];
    char out[16384];
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c) {
        const json_t *jt = json_object_get(c, "text"), *jids = json_object_get(c, "ids");
        const json_t *jdec = json_object_get(c, "decoded");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        int want_n = (int)json_array_size(jids), want[4096];
        for (int k = 0; k < want_n && k < 4096; k++)
            want[k] = (int)json_integer_value(json_array_get(jids, (size_t)k));
        int n = tok_bpe_encode(tok, text, len, ids, 4096);
        int ok = n == want_n && !memcmp(ids, want, (size_t)n * sizeof(int));
        int dn = tok_bpe_decode(tok, want, want_n, out, sizeof out);
        int dok = dn >= 0 && (size_t)dn == json_string_length(jdec) &&
                  !memcmp(out, json_string_value(jdec), (size_t)dn);
        if (!ok || !dok) {
            if (++bad <= 3) {
                printf("  %s pass %d case %zu: \"", name, pass, i);
                print_escaped(text, len);
                printf("\"%s%s\n", ok ? "" : " ids differ", dok ? "" : " decode differs");
                print_ids("want", want, want_n);
                if (n >= 0)
                    print_ids("got ", ids, n);
                else
                    printf("    got error %d\n", n);
            }
        }
    }
    return bad;
}

static void test_parity(void) {
    json_error_t e;
    json_t *root = json_load_file(FIX_DIR "/expected.json", JSON_ALLOW_NUL, &e);
    REQUIRE(root, "expected.json loads (%s)", root ? "" : e.text);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(root, "tokenizers"), i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        char path[512];
        snprintf(path, sizeof path, FIX_DIR "/%s", json_string_value(json_object_get(t, "file")));
        TokBpe *tok = NULL;
        int rc = tok_bpe_load(path, &tok);
        if (!EXPECT(rc == DR_OK, "%s loads: %s", name, rc ? dr_last_error() : "ok")) continue;
        const json_t *cases = json_object_get(t, "cases");
        for (int pass = 0; pass < 2; pass++) { /* cold, then warm cache */
            int bad = run_cases(tok, name, cases, pass);
            EXPECT(bad == 0, "%s (%s cache): %zu cases, %d differ from tokenizers", name,
                   pass ? "warm" : "cold", json_array_size(cases), bad);
        }
        tok_bpe_free(tok);
    }
    json_decref(root);
}

static void test_lookups(void) {
    TokBpe *q = NULL, *l = NULL, *g = NULL;
    REQUIRE(tok_bpe_load(FIX_DIR "/qwen2", &q) == DR_OK, "load by directory");
    REQUIRE(tok_bpe_load(FIX_DIR "/llama3/tokenizer.json", &l) == DR_OK, "load llama3");
    REQUIRE(tok_bpe_load(FIX_DIR "/gpt2", &g) == DR_OK, "load gpt2");
    EXPECT(tok_bpe_token_id(q, "<|im_end|>") == 2, "qwen2 <|im_end|> id 2");
    EXPECT(tok_bpe_token_id(q, "<tool_call>") == 1324, "qwen2 non-special added token");
    EXPECT(tok_bpe_token_id(q, "a") >= 0, "plain vocab entry");
    EXPECT(tok_bpe_token_id(q, "no such token") == -1, "unknown token -> -1");
    EXPECT(tok_bpe_bos_id(q) == -1, "qwen2 bos_token null -> -1");
    EXPECT(tok_bpe_eos_id(q) == 2, "qwen2 eos from a string");
    EXPECT(tok_bpe_bos_id(l) == tok_bpe_token_id(l, "<|begin_of_text|>") && tok_bpe_bos_id(l) >= 0,
           "llama3 bos from {\"content\": ...}");
    EXPECT(tok_bpe_eos_id(l) == tok_bpe_token_id(l, "<|eot_id|>"), "llama3 eos");
    EXPECT(tok_bpe_bos_id(g) == -1 && tok_bpe_eos_id(g) == -1, "no tokenizer_config.json");
    EXPECT(tok_bpe_vocab_size(q) == 1326, "qwen2 vocab size %d", tok_bpe_vocab_size(q));

    int ids[64];
    char out[64];
    const char *text = "Hello world<|im_end|>";
    int n = tok_bpe_encode(q, text, strlen(text), ids, 64);
    EXPECT(n >= 2 && ids[n - 1] == 2, "special token inside text");
    EXPECT(tok_bpe_encode(q, text, strlen(text), ids, n - 1) == -1, "too few ids -> -1");
    EXPECT(tok_bpe_encode(q, "ab\xff", 3, ids, 64) == -2, "invalid UTF-8 -> -2");
    EXPECT(tok_bpe_encode(q, "\xed\xa0\x80", 3, ids, 64) == -2, "surrogate -> -2");
    EXPECT(tok_bpe_encode(q, "\xe4\xb8", 2, ids, 64) == -2, "cut character -> -2");
    EXPECT(tok_bpe_decode(q, ids, n, out, sizeof out) == (int)strlen(text) && !strcmp(out, text),
           "round trip");
    EXPECT(tok_bpe_decode(q, ids, n, out, strlen(text)) == -1, "no room for the NUL -> -1");
    int badid[2] = {ids[0], 99999};
    EXPECT(tok_bpe_decode(q, badid, 2, out, sizeof out) == -1, "unknown id -> -1");
    /* a character split across tokens decodes to its partial bytes */
    n = tok_bpe_encode(g, "\xf0\x9f\xa6\x80", 4, ids, 64); /* U+1F980, not in the corpus */
    EXPECT(n >= 2 && tok_bpe_decode(g, ids, 1, out, sizeof out) < 4, "partial bytes (%d ids)", n);
    tok_bpe_free(q);
    tok_bpe_free(l);
    tok_bpe_free(g);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* Writes a tokenizer.json from pieces and expects DR_ERR with NEEDLE in the message. */
static void expect_load_error(const char *what, const char *json, const char *config,
                              const char *needle) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, what);
    snprintf(path, sizeof path, "mkdir -p '%s'", dir);
    if (system(path) != 0) return;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, json);
    if (config) {
        char cp[600];
        snprintf(cp, sizeof cp, "%s/tokenizer_config.json", dir);
        write_file(cp, config);
    }
    TokBpe *tok = NULL;
    int rc = tok_bpe_load(dir, &tok);
    const char *msg = dr_last_error();
    EXPECT(rc == DR_ERR && !tok && strstr(msg, needle) && strstr(msg, what), "%s: %s", what,
           rc == DR_ERR ? msg : "loaded");
    tok_bpe_free(tok);
}

#define BL    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}"
#define VOCAB "{\"a\": 0, \"b\": 1, \"ab\": 2}"

static void test_errors(void) {
    TokBpe *tok = NULL;
    EXPECT(tok_bpe_load("/nonexistent/tokenizer.json", &tok) == DR_ERR &&
               strstr(dr_last_error(), "/nonexistent/tokenizer.json"),
           "missing file: %s", dr_last_error());
    char buf[2048];
    expect_load_error("broken_json", "{\"model\": {", NULL, "not valid JSON");
    expect_load_error("wordpiece", "{\"model\": {\"type\": \"WordPiece\"}}", NULL, "model.type");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB ", \"merges\": [\"a c\"]},"
             " \"pre_tokenizer\": " BL ", \"decoder\": " BL "}");
    expect_load_error("merge_unknown", buf, NULL, "model.merges[0]");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": " VOCAB
             ", \"merges\": []}, \"pre_tokenizer\": " BL ", \"decoder\": " BL "}");
    expect_load_error("byte_fallback", buf, NULL, "byte_fallback");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB ", \"merges\": [[\"a\", \"b\"]]},"
             " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"Split\", \"pattern\": {\"Regex\": \"(?<bad\"}, \"behavior\": \"Isolated\"}, " BL
             "]}, \"decoder\": " BL "}");
    expect_load_error("bad_regex", buf, NULL, "pre_tokenizer.pretokenizers[0].pattern");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB ", \"merges\": []},"
             " \"normalizer\": {\"type\": \"Lowercase\"}, \"pre_tokenizer\": " BL
             ", \"decoder\": " BL "}");
    expect_load_error("lowercase", buf, NULL, "normalizer");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB ", \"merges\": []},"
             " \"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"lstrip\": true}],"
             " \"pre_tokenizer\": " BL ", \"decoder\": " BL "}");
    expect_load_error("lstrip", buf, NULL, "added_tokens[0]");
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB ", \"merges\": []},"
             " \"pre_tokenizer\": " BL ", \"decoder\": " BL "}");
    expect_load_error("bad_eos", buf, "{\"eos_token\": \"<|nope|>\"}", "eos_token");
    expect_load_error("no_decoder",
                      "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},"
                      " \"pre_tokenizer\": " BL "}",
                      NULL, "decoder");
}

/* Informational: MB/s over a few MB of the fixture texts, repeated. */
static void test_throughput(void) {
    json_error_t e;
    json_t *root = json_load_file(FIX_DIR "/expected.json", JSON_ALLOW_NUL, &e);
    if (!root) return;
    size_t cap = 4u << 20, len = 0;
    char *text = malloc(cap + 65536);
    const json_t *cases =
        json_object_get(json_array_get(json_object_get(root, "tokenizers"), 0), "cases");
    while (text && len < cap) {
        size_t i;
        const json_t *c;
        json_array_foreach(cases, i, c) {
            const json_t *jt = json_object_get(c, "text");
            size_t l = json_string_length(jt);
            if (memchr(json_string_value(jt), 0, l)) continue;
            memcpy(text + len, json_string_value(jt), l);
            len += l;
            text[len++] = '\n';
        }
    }
    json_decref(root);
    int *ids = malloc((len + 1) * sizeof *ids);
    char *back = malloc(len + 1);
    const char *names[] = {"qwen2", "llama3", "gpt2"};
    for (int k = 0; k < 3 && text && ids && back; k++) {
        char path[256];
        snprintf(path, sizeof path, FIX_DIR "/%s", names[k]);
        TokBpe *tok = NULL;
        if (tok_bpe_load(path, &tok) != DR_OK) continue;
        double t0 = now_s();
        int n = tok_bpe_encode(tok, text, len, ids, (int)len + 1);
        double dt = now_s() - t0;
        int dn = tok_bpe_decode(tok, ids, n, back, len + 1);
        EXPECT(n > 0 && dn == (int)len && !memcmp(back, text, len), "%s: %.1f MB round trip",
               names[k], (double)len / 1e6);
        printf("throughput %s: %.1f MB/s, %.2f M tokens/s (%d tokens, one thread)\n", names[k],
               (double)len / dt / 1e6, n / dt / 1e6, n);
        tok_bpe_free(tok);
    }
    free(text);
    free(ids);
    free(back);
}

int main(void) {
    test_quiet = 0;
    if (test_mkdtemp(g_tmp, sizeof g_tmp, "/tmp/denserl_bpe_XXXXXX")) return 1;
    test_parity();
    test_lookups();
    test_errors();
    test_throughput();
    test_rmtree(g_tmp);
    return test_summary();
}
