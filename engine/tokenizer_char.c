/* Character tokenizer for the arithmetic task. */
#include <string.h>
#include "tokenizer_char.h"

static const char ALPHABET[] = "0123456789+-*=,:;QA ";

int chartok_encode(const char *text, int *ids, int max) {
    int n = 0;
    for (const char *c = text; *c; c++) {
        const char *hit = strchr(ALPHABET, *c);
        if (!hit || n >= max) return -1;
        ids[n++] = 3 + (int)(hit - ALPHABET);
    }
    return n;
}

int chartok_decode(const int *ids, int count, char *out, int n) {
    int k = 0;
    int alpha = (int)sizeof ALPHABET - 1;
    for (int i = 0; i < count && k < n - 1; i++) {
        if (ids[i] == CHARTOK_EOS) break;
        if (ids[i] >= 3 && ids[i] < 3 + alpha) out[k++] = ALPHABET[ids[i] - 3];
    }
    out[k] = 0;
    return k;
}
