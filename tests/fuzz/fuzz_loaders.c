/* libFuzzer harness for the loaders of user files: the first input byte picks one, the rest
 * is written to a file it then reads. Each must accept the file or refuse it with a message
 * (DR_ERR and a non-empty dr_last_error()); a crash, a hang or a sanitizer report is a bug.
 *   0-2  a JSONL dataset (dataset_load; gsm8k, math, custom presets: custom's answer at "a.b")
 *   3    a safetensors file (st_open, then reading every tensor as fp32)
 *   4    a tokenizer.json (tok_bpe_load, then encoding a sample)
 *   5    a run config (run_config_load)
 *   6    a tokenizer_config.json (chat_template_kind "auto": which chat template it holds)
 *   7    a JSONL dataset of the verl preset (chat-message prompts, a nested answer) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "engine/chat_template.h"
#include "engine/dataset.h"
#include "engine/run_config.h"
#include "engine/tokenizer_bpe.h"
#include "runtime/error.h"
#include "runtime/safetensors.h"

static char g_path[64], g_dir[32];

static void write_input(const uint8_t *data, size_t size, const char *name) {
    if (!g_dir[0]) snprintf(g_dir, sizeof g_dir, "/tmp/denserl_fuzz_%d", (int)getpid());
    mkdir(g_dir, 0700);
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, name);
    FILE *f = fopen(g_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

static void refused_with_message(int st) {
    if (st != DR_OK && !dr_last_error()[0]) abort();
}

static void dataset(const char *preset) {
    Dataset ds;
    DatasetFields fields = {"q", "a.b"}; /* "a.b": a key, else a path */
    int st = dataset_load(g_path, preset, strcmp(preset, "custom") ? NULL : &fields, 0.5, &ds);
    refused_with_message(st);
    if (st == DR_OK) {
        for (int i = 0; i < ds.n; i++)
            if (!ds.items[i].prompt || !ds.items[i].gold) abort();
        dataset_free(&ds);
    }
}

static void safetensors(void) {
    StFile f;
    int st = st_open(&f, g_path);
    refused_with_message(st);
    if (st != DR_OK) return;
    for (int i = 0; i < f.n; i++) {
        const int64_t n = st_numel(&f.tensors[i]);
        if (n > (1 << 20)) continue;
        float *out = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        (void)st_read_f32(&f.tensors[i], out);
        free(out);
    }
    st_close(&f);
}

static void tokenizer(void) {
    TokBpe *tok = NULL;
    int st = tok_bpe_load(g_path, &tok);
    refused_with_message(st);
    if (st != DR_OK) return;
    int ids[64];
    (void)tok_bpe_encode(tok, "Hello world, 12 + 30 = 42.", 26, ids, 64);
    tok_bpe_free(tok);
}

static void run_config(void) {
    RunConfig c;
    refused_with_message(run_config_load(&c, g_path, NULL, 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int which = data[0] % 8;
    static const char *names[8] = {"d.jsonl",
                                   "d.jsonl",
                                   "d.jsonl",
                                   "m.safetensors",
                                   "tokenizer.json",
                                   "c.json",
                                   "tokenizer_config.json",
                                   "d.jsonl"};
    write_input(data + 1, size - 1, names[which]);
    static const char *presets[3] = {"gsm8k", "math", "custom"};
    if (which < 3)
        dataset(presets[which]);
    else if (which == 7)
        dataset("verl");
    else if (which == 3)
        safetensors();
    else if (which == 4)
        tokenizer();
    else if (which == 5)
        run_config();
    else {
        ChatKind k;
        refused_with_message(chat_template_kind("auto", g_dir, &k));
    }
    return 0;
}
