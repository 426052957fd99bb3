/* Encode throughput of the byte-level BPE tokenizer (engine/tokenizer_bpe.c), one thread.
 *
 *   bench_tokenizer TOKENIZER_JSON_OR_DIR TEXT_FILE [REPEATS] [IDS_OUT]
 *
 * Encodes the whole file REPEATS times (default 5; the first run fills the word cache and is
 * reported apart as "cold"), checks that decoding gives the file back, and prints MB/s and
 * tokens/s of the best warm run. IDS_OUT, when given, receives the ids as little-endian
 * int32 (benchmarks/tokenizer_bench.py compares them with the tokenizers library). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine/tokenizer_bpe.h"
#include "runtime/error.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON_OR_DIR TEXT_FILE [REPEATS] [IDS_OUT]\n", argv[0]);
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (repeats < 1) repeats = 1;
    TokBpe *tok;
    double t0 = now_s();
    if (tok_bpe_load(argv[1], &tok) != DR_OK) {
        fprintf(stderr, "error: %s\n", dr_last_error());
        return 2;
    }
    double t_load = now_s() - t0;
    size_t len;
    char *text = read_file(argv[2], &len);
    if (!text) {
        fprintf(stderr, "error: %s: cannot read\n", argv[2]);
        return 2;
    }
    int max_ids = (int)(len < 0x7FFFFFF0 ? len + 16 : 0x7FFFFFF0);
    int *ids = malloc((size_t)max_ids * sizeof *ids);
    char *back = malloc(len + 1);
    if (!ids || !back) return 2;
    double cold = 0, best = 1e30;
    int n = 0;
    for (int r = 0; r <= repeats; r++) {
        t0 = now_s();
        n = tok_bpe_encode(tok, text, len, ids, max_ids);
        double dt = now_s() - t0;
        if (n < 0) {
            fprintf(stderr, "error: %s: encode failed (%d)\n", argv[2], n);
            return 1;
        }
        if (r == 0)
            cold = dt;
        else if (dt < best)
            best = dt;
    }
    int dn = tok_bpe_decode(tok, ids, n, back, len + 1);
    int same = dn == (int)len && !memcmp(back, text, len);
    double mb = (double)len / 1e6;
    printf("load %.3f s; %.2f MB -> %d tokens (%.2f bytes/token); decode round trip %s\n", t_load,
           mb, n, (double)len / n, same ? "exact" : "DIFFERS");
    printf("cold: %.2f MB/s, %.3f M tokens/s\n", mb / cold, n / cold / 1e6);
    printf("warm: %.2f MB/s, %.3f M tokens/s (best of %d)\n", mb / best, n / best / 1e6, repeats);
    if (argc > 4) {
        FILE *f = fopen(argv[4], "wb");
        if (!f || fwrite(ids, sizeof *ids, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "error: %s: cannot write\n", argv[4]);
            return 2;
        }
        fclose(f);
    }
    tok_bpe_free(tok);
    free(ids);
    free(back);
    free(text);
    return same ? 0 : 1;
}
