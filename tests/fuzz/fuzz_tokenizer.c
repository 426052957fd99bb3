/* libFuzzer harness for the byte-level BPE tokenizer, which encodes every prompt and decodes
 * every reply: the first input byte picks one of the fixture tokenizers (gpt2, llama3, qwen2;
 * their real pre-tokenizer regexes and special tokens), the rest is encoded. Properties
 * besides "no crash, no sanitizer report": valid UTF-8 encodes (-2 exactly when it is not),
 * every id is in the vocabulary, and decoding gives back the very bytes. Run from the
 * repository root (the fixtures are read from tests/fixtures/bpe). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/tokenizer_bpe.h"

static int valid_utf8(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n) return 0;
        uint32_t cp = k == 1 ? c : c & (0x7f >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static TokBpe *tok[3];
    static const char *names[3] = {"tests/fixtures/bpe/gpt2", "tests/fixtures/bpe/llama3",
                                   "tests/fixtures/bpe/qwen2"};
    if (size < 1) return 0;
    const int which = data[0] % 3;
    if (!tok[which] && tok_bpe_load(names[which], &tok[which])) {
        fprintf(stderr, "cannot load %s (run from the repository root)\n", names[which]);
        abort();
    }
    const char *text = (const char *)data + 1;
    const size_t n = size - 1;
    int *ids = malloc(sizeof(int) * (n + 1));
    const int got = tok_bpe_encode(tok[which], text, n, ids, (int)n + 1);
    if (!valid_utf8(data + 1, n)) {
        if (got != -2) abort(); /* invalid text must be refused */
    } else {
        if (got < 0) abort(); /* n + 1 ids always suffice: a token is at least one byte */
        for (int i = 0; i < got; i++)
            if (ids[i] < 0 || ids[i] >= tok_bpe_vocab_size(tok[which])) abort();
        char *back = malloc(n + 1);
        const int m = tok_bpe_decode(tok[which], ids, got, back, n + 1);
        if (m != (int)n || memcmp(back, text, n) != 0) abort();
        free(back);
    }
    free(ids);
    return 0;
}
