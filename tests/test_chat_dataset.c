/* Tests for engine/chat_template.c and engine/dataset.c: each template's exact prompt string
 * (with and without a system prompt and an instruction suffix), "auto" detection from a
 * tokenizer_config.json and its errors, the stop tokens on the Qwen2 and Llama 3 fixture
 * tokenizers, the gsm8k, math and custom presets on tests/fixtures/data (gold answers, line
 * numbers, a bad line skipped or fatal by the allowed fraction), and the lossy JSON text of
 * engine/textgen.c.
 *
 * `test_chat_dataset --make-model DIR` writes a tiny random Qwen2 model directory with the
 * fixture Qwen2 tokenizer instead (tests/test_eval_cmd.sh runs generate and eval on it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "engine/chat_template.h"
#include "engine/dataset.h"
#include "engine/model_io.h"
#include "engine/textgen.h"
#include "engine/tokenizer_bpe.h"
#include "runtime/error.h"
#include "testutil.h"

#define BPE_DIR  "tests/fixtures/bpe"
#define DATA_DIR "tests/fixtures/data"

static char g_tmp[256];

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b)) ok = 0;
    return ok ? 0 : -1;
}

/* ---- templates ---- */

static void expect_format(ChatKind k, const char *sys, const char *suf, const char *user,
                          const char *want, const char *what) {
    ChatTemplate t = {k, sys, suf};
    char *got = chat_format(&t, user);
    if (!EXPECT(!strcmp(got, want), "%s", what))
        printf("    got:  [%s]\n    want: [%s]\n", got, want);
    free(got);
}

static void test_formats(void) {
    const char *bx = "Please reason step by step, and put your final answer within \\boxed{}.";
    expect_format(CHAT_CHATML, NULL, NULL, "What is 2+2?",
                  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
                  "chatml, no system, no suffix");
    expect_format(CHAT_CHATML, "You are a helpful assistant.", bx, "What is 2+2?",
                  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                  "<|im_start|>user\nWhat is 2+2?\nPlease reason step by step, and put your "
                  "final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n",
                  "chatml, system and suffix");
    expect_format(CHAT_CHATML, "", "", " x ",
                  "<|im_start|>user\n x <|im_end|>\n<|im_start|>assistant\n",
                  "chatml: empty system/suffix are none, text kept as is");
    expect_format(CHAT_LLAMA3, NULL, NULL, "What is 2+2?",
                  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
                  "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                  "llama3, no system");
    expect_format(CHAT_LLAMA3, "  Be brief.\n", bx, "\nWhat is 2+2?  ",
                  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
                  "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?  "
                  "\nPlease reason step by step, and put your final answer within "
                  "\\boxed{}.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                  "llama3, system and suffix, messages trimmed");
    expect_format(CHAT_RAW, NULL, NULL, "Q: 1+1=?\nA:", "Q: 1+1=?\nA:", "raw: the prompt as is");
    expect_format(CHAT_RAW, "Sys", "Suf", "Q", "Sys\n\nQ\nSuf", "raw with system and suffix");
    EXPECT(!strcmp(chat_kind_name(CHAT_CHATML), "chatml") &&
               !strcmp(chat_kind_name(CHAT_LLAMA3), "llama3") &&
               !strcmp(chat_kind_name(CHAT_RAW), "raw"),
           "kind names");
}

static void test_kind_names(void) {
    ChatKind k = CHAT_RAW;
    EXPECT(chat_template_kind("chatml", NULL, &k) == DR_OK && k == CHAT_CHATML, "chatml");
    EXPECT(chat_template_kind("llama3", NULL, &k) == DR_OK && k == CHAT_LLAMA3, "llama3");
    EXPECT(chat_template_kind("raw", NULL, &k) == DR_OK && k == CHAT_RAW, "raw");
    EXPECT(chat_template_kind("jinja", NULL, &k) == DR_ERR && strstr(dr_last_error(), "'jinja'"),
           "unknown template name is an error naming it: %s", dr_last_error());
}

/* Writes DIR/tokenizer_config.json with the given body and detects it. */
static int detect_body(const char *body, ChatKind *k) {
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", g_tmp);
    if (write_text(path, body)) return -2;
    return chat_template_kind("auto", g_tmp, k);
}

static void test_auto(void) {
    ChatKind k = CHAT_RAW;
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", g_tmp);
    remove(path);
    EXPECT(chat_template_kind("auto", g_tmp, &k) == DR_ERR && strstr(dr_last_error(), path),
           "auto without tokenizer_config.json names the file: %s", dr_last_error());
    EXPECT(detect_body("{\"chat_template\": \"{% for message in messages %}{{'<|im_start|>' + "
                       "message['role'] + '\\n' + message['content'] + '<|im_end|>'}}{% endfor "
                       "%}\"}",
                       &k) == DR_OK &&
               k == CHAT_CHATML,
           "auto: <|im_start|> gives chatml");
    EXPECT(detect_body("{\"chat_template\": \"{{ bos_token }}{% for m in messages %}"
                       "<|start_header_id|>{{ m['role'] }}<|end_header_id|>{% endfor %}\"}",
                       &k) == DR_OK &&
               k == CHAT_LLAMA3,
           "auto: <|start_header_id|> gives llama3");
    EXPECT(detect_body("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, "
                       "{\"name\": \"default\", \"template\": \"<|im_start|>\"}]}",
                       &k) == DR_OK &&
               k == CHAT_CHATML,
           "auto: list of templates uses the one named default");
    EXPECT(detect_body("{\"chat_template\": \"[INST] {{ m }} [/INST]\"}", &k) == DR_ERR &&
               strstr(dr_last_error(), path) && strstr(dr_last_error(), "chat_template"),
           "auto: an unknown template names the file: %s", dr_last_error());
    EXPECT(detect_body("{\"eos_token\": \"</s>\"}", &k) == DR_ERR &&
               strstr(dr_last_error(), path) && strstr(dr_last_error(), "chat_template"),
           "auto: no chat_template names the file and field: %s", dr_last_error());
    EXPECT(detect_body("{\"chat_template\": ", &k) == DR_ERR && strstr(dr_last_error(), path),
           "auto: broken JSON names the file: %s", dr_last_error());
}

static void test_stop_tokens(void) {
    TokBpe *q = NULL, *l = NULL;
    REQUIRE(tok_bpe_load(BPE_DIR "/qwen2/tokenizer.json", &q) == DR_OK, "load qwen2");
    REQUIRE(tok_bpe_load(BPE_DIR "/llama3/tokenizer.json", &l) == DR_OK, "load llama3");
    int ids[CHAT_MAX_STOP], n = -1;
    int st = chat_stop_tokens(CHAT_CHATML, q, "q.json", ids, &n);
    EXPECT(st == DR_OK && n == 2 && ids[0] == tok_bpe_token_id(q, "<|im_end|>") &&
               ids[1] == tok_bpe_token_id(q, "<|endoftext|>"),
           "chatml stops at <|im_end|> then <|endoftext|> (n=%d)", n);
    EXPECT(chat_stop_tokens(CHAT_RAW, q, "q.json", ids, &n) == DR_OK && n == 1 &&
               ids[0] == tok_bpe_eos_id(q),
           "raw stops at the tokenizer's eos");
    EXPECT(chat_stop_tokens(CHAT_LLAMA3, q, "q.json", ids, &n) == DR_ERR &&
               strstr(dr_last_error(), "q.json") && strstr(dr_last_error(), "<|eot_id|>"),
           "llama3 on a tokenizer without <|eot_id|> names it: %s", dr_last_error());
    EXPECT(chat_stop_tokens(CHAT_LLAMA3, l, "l.json", ids, &n) == DR_OK && n == 1 &&
               ids[0] == tok_bpe_token_id(l, "<|eot_id|>"),
           "llama3 stops at <|eot_id|>");
    EXPECT(chat_stop_tokens(CHAT_CHATML, l, "l.json", ids, &n) == DR_ERR &&
               strstr(dr_last_error(), "<|im_end|>"),
           "chatml on a tokenizer without <|im_end|> is an error");

    /* the special tokens in a formatted prompt encode as single ids */
    ChatTemplate t = {CHAT_CHATML, "S", NULL};
    char *text = chat_format(&t, "Hi");
    int enc[256];
    int m = tok_bpe_encode(q, text, strlen(text), enc, 256);
    int start = tok_bpe_token_id(q, "<|im_start|>"), end = tok_bpe_token_id(q, "<|im_end|>");
    int n_start = 0, n_end = 0;
    for (int i = 0; i < m; i++) n_start += enc[i] == start, n_end += enc[i] == end;
    EXPECT(m > 0 && enc[0] == start && n_start == 3 && n_end == 2,
           "chatml prompt: 3 <|im_start|> and 2 <|im_end|> ids, first id <|im_start|>");
    free(text);
    tok_bpe_free(q);
    tok_bpe_free(l);
}

/* ---- datasets ---- */

static void test_gsm8k(void) {
    Dataset ds;
    const char *path = DATA_DIR "/gsm8k_mini.jsonl";
    REQUIRE(dataset_load(path, "gsm8k", NULL, 0.2, &ds) == DR_OK,
            "gsm8k loads with 1 bad line "
            "of 8 allowed: %s",
            dr_last_error());
    EXPECT(ds.n == 7 && ds.n_bad == 1 && ds.n_lines == 8,
           "gsm8k: 7 items, 1 bad of 8 lines "
           "(n=%d bad=%d lines=%d)",
           ds.n, ds.n_bad, ds.n_lines);
    const char *gold[] = {"7", "60", "2400", "180", "10", "46", "45"};
    const int line[] = {1, 2, 3, 5, 7, 8, 9};
    int ok = ds.n == 7;
    for (int i = 0; ok && i < 7; i++) {
        ok = !strcmp(ds.items[i].gold, gold[i]) && ds.items[i].line == line[i];
        if (!ok) printf("    item %d: gold '%s' line %d\n", i, ds.items[i].gold, ds.items[i].line);
    }
    EXPECT(ok, "gsm8k golds (after ####, commas removed, trimmed) and line numbers");
    EXPECT(ds.n > 0 && !strcmp(ds.items[0].prompt,
                               "Tom has 3 apples and buys 4 more. How many apples does he have?"),
           "gsm8k prompt is the question");
    dataset_free(&ds);
    EXPECT(dataset_load(path, "gsm8k", NULL, DATASET_MAX_BAD_DEFAULT, &ds) == DR_ERR &&
               strstr(dr_last_error(), DATA_DIR "/gsm8k_mini.jsonl:6:") &&
               strstr(dr_last_error(), "1 of 8"),
           "default fraction: 1 bad line of 8 is an error naming file:line: %s", dr_last_error());
    EXPECT(ds.n == 0 && ds.items == NULL, "dataset empty after an error");
}

static void test_math(void) {
    Dataset ds;
    const char *path = DATA_DIR "/math_mini.jsonl";
    REQUIRE(dataset_load(path, "math", NULL, 0.2, &ds) == DR_OK, "math loads: %s", dr_last_error());
    EXPECT(ds.n == 7 && ds.n_bad == 1, "math: 7 items, 1 bad (n=%d bad=%d)", ds.n, ds.n_bad);
    const char *gold[] = {"\\frac{3}{4}", "4", "5\\sqrt{2}",  "(-2, 2)",
                          "\\frac{1}{9}", "3", "\\frac{3}{4}"};
    int ok = ds.n == 7;
    for (int i = 0; ok && i < 7; i++) {
        ok = !strcmp(ds.items[i].gold, gold[i]);
        if (!ok) printf("    item %d: gold '%s'\n", i, ds.items[i].gold);
    }
    EXPECT(ok, "math golds: the last \\boxed{} (or \\fbox{}) of the solution");
    dataset_free(&ds);
    EXPECT(dataset_load(path, "math", NULL, 0.1, &ds) == DR_ERR &&
               strstr(dr_last_error(), DATA_DIR "/math_mini.jsonl:5:") &&
               strstr(dr_last_error(), "boxed"),
           "math: a solution without \\boxed{} is a bad line: %s", dr_last_error());
    /* the gsm8k file read as math: every line lacks the fields */
    EXPECT(dataset_load(DATA_DIR "/gsm8k_mini.jsonl", "math", NULL, 0.5, &ds) == DR_ERR &&
               strstr(dr_last_error(), "8 of 8"),
           "wrong preset: every line bad: %s", dr_last_error());
}

static void test_custom(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/custom.jsonl", g_tmp);
    write_text(path, "{\"q\": \"one\", \"a\": 42}\n"
                     "{\"q\": \"two\", \"a\": \"work... #### 1,000\"}\n"
                     "{\"q\": \"three\", \"a\": \"so \\\\boxed{\\\\frac{1}{2}}\"}\n"
                     "{\"q\": \"four\", \"a\": \"  -3 \"}\n"
                     "{\"q\": \"five\", \"a\": 2.5}\n");
    Dataset ds;
    DatasetFields f = {"q", "a"};
    REQUIRE(dataset_load(path, "custom", &f, 0, &ds) == DR_OK, "custom loads: %s", dr_last_error());
    const char *gold[] = {"42", "1,000", "\\frac{1}{2}", "-3", "2.5"};
    int ok = ds.n == 5;
    for (int i = 0; ok && i < 5; i++) {
        ok = !strcmp(ds.items[i].gold, gold[i]);
        if (!ok) printf("    item %d: gold '%s'\n", i, ds.items[i].gold);
    }
    EXPECT(ok, "custom golds: numbers printed, #### part, last boxed, else trimmed text");
    dataset_free(&ds);
    EXPECT(dataset_load(path, "custom", NULL, 0, &ds) == DR_ERR &&
               strstr(dr_last_error(), "prompt field"),
           "custom without fields is an error: %s", dr_last_error());
    DatasetFields g = {"q", NULL};
    EXPECT(dataset_load(path, "gsm8k", &g, 0, &ds) == DR_ERR &&
               strstr(dr_last_error(), "custom.jsonl:1:") && strstr(dr_last_error(), "'answer'"),
           "gsm8k with the prompt field renamed still wants 'answer': %s", dr_last_error());
    EXPECT(dataset_load(path, "squad", NULL, 0, &ds) == DR_ERR &&
               strstr(dr_last_error(), "'squad'"),
           "unknown preset: %s", dr_last_error());
    EXPECT(dataset_load(path, "custom", &f, 1.5, &ds) == DR_ERR, "max_bad above 1 refused");
    EXPECT(dataset_load(DATA_DIR "/missing.jsonl", "gsm8k", NULL, 0, &ds) == DR_ERR &&
               strstr(dr_last_error(), "missing.jsonl: cannot open"),
           "missing file: %s", dr_last_error());
    write_text(path, "\n  \n");
    EXPECT(dataset_load(path, "custom", &f, 0, &ds) == DR_ERR &&
               strstr(dr_last_error(), "no questions"),
           "blank file: %s", dr_last_error());
    write_text(path, "[1, 2]\n{\"q\": 5, \"a\": \"1\"}\n{\"q\": \"\", \"a\": \"1\"}\n"
                     "{\"q\": \"x\", \"a\": [1]}\n{\"q\": \"x\", \"a\": \"  \"}\n");
    EXPECT(dataset_load(path, "custom", &f, 1, &ds) == DR_ERR &&
               strstr(dr_last_error(), "no questions"),
           "every kind of bad line skipped, none left: %s", dr_last_error());
}

/* The error of loading TEXT, one bad line, as PRESET with fields f (NULL: the preset's). */
static const char *one_bad_line(const char *text, const char *preset, const DatasetFields *f) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.jsonl", g_tmp);
    write_text(path, text);
    Dataset ds;
    if (dataset_load(path, preset, f, 0, &ds) == DR_OK) {
        dataset_free(&ds);
        return "(loaded)";
    }
    return dr_last_error();
}

/* verl's RL data: the prompt a list of chat messages, the answer at reward_model.ground_truth;
 * field paths through nested objects for any preset. */
static void test_verl(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/verl.jsonl", g_tmp);
    write_text(
        path,
        "{\"data_source\": \"x\", \"prompt\": [{\"content\": \"Be exact.\", \"role\": "
        "\"system\"}, {\"content\": \"What is 1/2?\", \"role\": \"user\"}], "
        "\"reward_model\": {\"ground_truth\": \"\\\\frac{1}{2}\", \"style\": \"rule\"}}\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Six times seven?\"}], "
        "\"reward_model\": {\"ground_truth\": 42}}\n"
        "{\"prompt\": \"A plain prompt\", \"reward_model\": {\"ground_truth\": \"#### 7\"}}\n");
    Dataset ds;
    REQUIRE(dataset_load(path, "verl", NULL, 0, &ds) == DR_OK, "verl loads: %s", dr_last_error());
    EXPECT(ds.n == 3 && !strcmp(ds.items[0].prompt, "What is 1/2?") &&
               !strcmp(ds.items[0].system, "Be exact.") &&
               !strcmp(ds.items[0].gold, "\\frac{1}{2}") &&
               !strcmp(ds.items[1].prompt, "Six times seven?") && !ds.items[1].system &&
               !strcmp(ds.items[1].gold, "42") && !strcmp(ds.items[2].prompt, "A plain prompt") &&
               !ds.items[2].system && !strcmp(ds.items[2].gold, "7"),
           "verl items: the user's text, the system message, the ground truth (number, ####)");
    dataset_free(&ds);
    /* one bad line each: the prompt's messages, then the rest of the line after them */
    static const char *const bad[][3] = {
        {"[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": "
         "\"b\"}]",
         "", "bad.jsonl:1: 'prompt' holds other turns"},
        {"[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]", "",
         "'prompt' holds other turns"},
        {"[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": \"b\"}]",
         "", "'prompt' holds other turns"},
        {"[{\"role\": \"user\"}]", "", "without a string \"role\" and \"content\""},
        {"[{\"role\": \"system\", \"content\": \"s\"}]", "", "'prompt' has no user message"},
        {"[]", "", "'prompt' has no user message"},
        {"[{\"role\": \"user\", \"content\": \"a\"}]", "{\"style\": \"rule\"}",
         "no 'reward_model.ground_truth' field"},
        {"{\"text\": \"a\"}", "", "'prompt' is not a string or a list of chat messages"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char line[512];
        snprintf(line, sizeof line, "{\"prompt\": %s, \"reward_model\": %s}\n", bad[k][0],
                 *bad[k][1] ? bad[k][1] : "{\"ground_truth\": \"1\"}");
        const char *e = one_bad_line(line, "verl", NULL);
        EXPECT(strstr(e, bad[k][2]), "verl bad line %zu: %s", k, e);
    }
    DatasetFields paths = {"data.q", "a.b"}; /* a key with a dot in it is taken first */
    write_text(path,
               "{\"data\": {\"q\": \"nested\"}, \"a.b\": \"#### 5\", \"a\": {\"b\": \"9\"}}\n");
    REQUIRE(dataset_load(path, "custom", &paths, 0, &ds) == DR_OK, "paths load: %s",
            dr_last_error());
    EXPECT(ds.n == 1 && !strcmp(ds.items[0].prompt, "nested") && !strcmp(ds.items[0].gold, "5"),
           "custom fields: a path into nested objects, a key with a dot before a path");
    dataset_free(&ds);
    DatasetFields deep = {"data.q.r", "a.b"};
    const char *e =
        one_bad_line("{\"data\": {\"q\": \"nested\"}, \"a.b\": \"#### 5\"}\n", "custom", &deep);
    EXPECT(strstr(e, "no 'data.q.r' field"), "a path through a string: %s", e);
}

/* The default fraction allows 1 bad line in 100 and not 2. */
static void test_fraction(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/hundred.jsonl", g_tmp);
    for (int bad = 1; bad <= 2; bad++) {
        FILE *f = fopen(path, "w");
        REQUIRE(f, "open %s", path);
        for (int i = 0; i < 100; i++)
            fprintf(f,
                    i < bad ? "{\"question\": \"q%d\"}\n"
                            : "{\"question\": \"q%d\", "
                              "\"answer\": \"#### %d\"}\n",
                    i, i);
        fclose(f);
        Dataset ds;
        int st = dataset_load(path, "gsm8k", NULL, DATASET_MAX_BAD_DEFAULT, &ds);
        if (bad == 1)
            EXPECT(st == DR_OK && ds.n == 99 && ds.n_bad == 1, "1 bad line of 100 is skipped");
        else
            EXPECT(st == DR_ERR && strstr(dr_last_error(), "2 of 100") &&
                       strstr(dr_last_error(), "hundred.jsonl:1:"),
                   "2 bad lines of 100 fail: %s", dr_last_error());
        dataset_free(&ds);
    }
}

static void test_lossy(void) {
    /* a bad byte, a cut 3-byte sequence, a lead byte with a wrong second byte */
    json_t *j = json_text_lossy("a\xff"
                                "b\xe2\x82"
                                "c\xe0\x80"
                                "d",
                                9);
    EXPECT(j && !strcmp(json_string_value(j), "a\xef\xbf\xbd"
                                              "b\xef\xbf\xbd"
                                              "c\xef\xbf\xbd\xef\xbf\xbd"
                                              "d"),
           "invalid UTF-8 becomes one U+FFFD per maximal invalid part");
    json_decref(j);
    j = json_text_lossy("\xe2\x82\xac ok", 6);
    EXPECT(j && !strcmp(json_string_value(j), "\xe2\x82\xac ok"), "valid UTF-8 kept");
    json_decref(j);
}

/* ---- the tiny model for tests/test_eval_cmd.sh ---- */

static int make_model(const char *dir, const char *tok_dir) {
    char from[1024], to[1024];
    TokBpe *tok = NULL;
    snprintf(from, sizeof from, "%s/tokenizer.json", tok_dir);
    if (tok_bpe_load(from, &tok)) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 1;
    }
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    c.vocab = tok_bpe_vocab_size(tok);
    tok_bpe_free(tok);
    c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8;
    c.d_ff = 64, c.max_pos = 512, c.norm_eps = 1e-6f, c.rope_theta = 1e6f;
    c.qkv_bias = 1, c.tied = 1, c.bos_id = c.eos_id = c.pad_id = -1;
    if (model_config_validate(&c, "tiny model")) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 1;
    }
    mkdir(dir, 0755);
    Model m;
    model_init(&m, &c, BACKEND_CPU, 1, 8);
    model_init_random(&m, 7, 0.02f);
    int st = model_save(&m, dir, 0);
    model_free(&m);
    snprintf(to, sizeof to, "%s/tokenizer.json", dir);
    if (st == DR_OK && copy_file(from, to)) st = dr_error("%s: cannot copy to %s", from, to);
    snprintf(to, sizeof to, "%s/tokenizer_config.json", dir);
    if (st == DR_OK &&
        write_text(to, "{\"bos_token\": null, \"eos_token\": \"<|im_end|>\", \"pad_token\": "
                       "\"<|endoftext|>\", \"chat_template\": \"{% for message in messages "
                       "%}{{'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + "
                       "'<|im_end|>' + '\\\\n'}}{% endfor %}\"}\n"))
        st = dr_error("%s: cannot write", to);
    if (st) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--make-model")) return make_model(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "--make-model")) return make_model(argv[2], BPE_DIR "/qwen2");
    if (test_mkdtemp(g_tmp, sizeof g_tmp, "/tmp/denserl_chat_XXXXXX")) return 1;
    test_formats();
    test_kind_names();
    test_auto();
    test_stop_tokens();
    test_gsm8k();
    test_math();
    test_custom();
    test_verl();
    test_fraction();
    test_lossy();
    test_rmtree(g_tmp);
    return test_summary();
}
