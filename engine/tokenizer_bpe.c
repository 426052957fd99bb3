/* Byte-level BPE from a Hugging Face tokenizer.json; see tokenizer_bpe.h for what is read and
 * what is refused. Encoding is a pipeline over pieces of the text, each stage calling the next
 * on every piece it produces (no piece lists beyond one per stage):
 *   added-token split (2 passes) -> pre-tokenizer steps (regex splits, ByteLevel) -> BPE word */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "runtime/error.h"
#include "runtime/jsonutil.h"
#include "tokenizer_bpe.h"

#define MAX_STEPS       8      /* pre-tokenizer steps */
#define CACHE_MAX_WORD  256    /* longer pieces are not cached */
#define CACHE_MAX_WORDS 200000 /* the cache is emptied when it holds this many */
#define MAX_ID          (1 << 26)

/* ---- hashing and maps ---- */

static uint64_t hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ k) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, n);
    h = (h ^ k) * 0x94D049BB133111EBull;
    return h ^ (h >> 32);
}

/* byte string -> int, open addressing; keys are copied into one arena */
typedef struct {
    uint64_t h;
    uint32_t off, len;
    int32_t val;
    int32_t used;
} StrSlot;

typedef struct {
    StrSlot *slot;
    size_t cap, n; /* cap: a power of two */
    char *keys;
    size_t klen, kcap;
} StrMap;

static void strmap_free(StrMap *m) {
    free(m->slot);
    free(m->keys);
    memset(m, 0, sizeof *m);
}

static void strmap_clear(StrMap *m) {
    if (m->slot) memset(m->slot, 0, m->cap * sizeof *m->slot);
    m->n = 0;
    m->klen = 0;
}

static StrSlot *strmap_find(const StrMap *m, const void *key, size_t len, uint64_t h) {
    if (!m->cap) return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        StrSlot *s = &m->slot[i];
        if (!s->used) return s;
        if (s->h == h && s->len == len && !memcmp(m->keys + s->off, key, len)) return s;
    }
}

static int strmap_get(const StrMap *m, const void *key, size_t len) {
    StrSlot *s = strmap_find(m, key, len, hash_bytes(key, len));
    return s && s->used ? s->val : -1;
}

/* Sets key -> val (overwriting); 0, or -1 when out of memory. */
static int strmap_put(StrMap *m, const void *key, size_t len, int val) {
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        StrSlot *old = m->slot;
        size_t ocap = m->cap;
        m->slot = calloc(cap, sizeof *m->slot);
        if (!m->slot) {
            m->slot = old;
            return -1;
        }
        m->cap = cap;
        for (size_t i = 0; i < ocap; i++) {
            if (!old[i].used) continue;
            size_t j = old[i].h & (cap - 1);
            while (m->slot[j].used) j = (j + 1) & (cap - 1);
            m->slot[j] = old[i];
        }
        free(old);
    }
    uint64_t h = hash_bytes(key, len);
    StrSlot *s = strmap_find(m, key, len, h);
    if (s->used) {
        s->val = val;
        return 0;
    }
    if (m->klen + len + 1 > m->kcap) {
        size_t kcap = m->kcap ? m->kcap : 4096;
        while (kcap < m->klen + len + 1) kcap *= 2;
        char *k = realloc(m->keys, kcap);
        if (!k) return -1;
        m->keys = k;
        m->kcap = kcap;
    }
    memcpy(m->keys + m->klen, key, len);
    m->keys[m->klen + len] = 0;
    *s = (StrSlot){.h = h, .off = (uint32_t)m->klen, .len = (uint32_t)len, .val = val, .used = 1};
    m->klen += len + 1;
    m->n++;
    return 0;
}

/* (left id, right id) -> (rank, merged id) */
typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
} MergeSlot;

typedef struct {
    MergeSlot *slot;
    size_t cap, n;
} MergeMap;

static uint64_t mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int mergemap_init(MergeMap *m, size_t n) {
    m->cap = 64;
    while (m->cap < 2 * n + 2) m->cap *= 2;
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++) m->slot[i].key = UINT64_MAX;
    m->n = 0;
    return 0;
}

static MergeSlot *mergemap_find(const MergeMap *m, int a, int b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = mix64(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
        if (m->slot[i].key == key || m->slot[i].key == UINT64_MAX) return &m->slot[i];
}

/* ---- the tokenizer ---- */

enum { STEP_SPLIT, STEP_BYTELEVEL };
enum { B_ISOLATED, B_REMOVED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

typedef struct {
    size_t s, e;
    int m;
} Seg;

typedef struct {
    int kind;
    pcre2_code *re; /* Split, or ByteLevel with use_regex */
    pcre2_match_data *md;
    int behavior, invert;
    int add_prefix_space;
    Seg *segs; /* scratch for this step's pieces */
    size_t nseg, capseg;
} PreStep;

typedef struct {
    uint32_t off, len; /* content in tok->text */
    int id;
} Added;

typedef struct {
    int id, prev, next;
} Sym;

typedef struct {
    int rank, pos, id;
} HeapItem;

struct TokBpe {
    int n_ids;
    uint32_t *dec_off, *dec_len; /* per id: decoded bytes in dec; len UINT32_MAX = no token */
    char *dec;
    char *text; /* added-token contents */
    StrMap vocab;
    MergeMap merges;
    int byte_id[256];     /* id of the one-byte token, -1 if absent */
    char byte_ch[256][3]; /* UTF-8 of the char standing for the byte */
    int byte_chlen[256];
    int unk_id, fuse_unk, ignore_merges;
    int bos_id, eos_id;
    /* added tokens by pass (0: normalized false, 1: normalized true), longest first */
    Added *added[2];
    int n_added[2];
    uint8_t first[2][256]; /* a token of the pass starts with this byte */
    PreStep steps[MAX_STEPS];
    int n_steps;
    pcre2_jit_stack *jit_stack;
    pcre2_match_context *mctx;
    /* encode state */
    StrMap cache; /* piece bytes -> offset into cpool (count, ids...) */
    int *cpool;
    size_t cn, ccap;
    Sym *sym;
    HeapItem *heap;
    size_t symcap, heapcap;
    char *tmp; /* prefix-space copies and byte-level spellings */
    size_t tmpcap;
    int *out;
    int nout, maxout, status;
};

/* The GPT-2 byte -> char table: printable Latin-1 bytes stand for themselves, the other 68
 * take the code points 256, 257, ... in byte order. */
static void byte_table(int cp_of[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of[b] = printable ? b : 256 + n++;
    }
}

static int utf8_put(char *o, int cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2; /* the table's code points are all < 0x800 */
}

/* Length of the valid UTF-8 text (strict: no overlongs, surrogates or code points past
 * U+10FFFF); equals len when all of it is valid. */
static size_t utf8_valid_prefix(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return i;
        if (i + (size_t)n >= len) return i; /* cut short */
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += (size_t)n + 1;
    }
    return len;
}

/* Decoded bytes of a token spelling, as the ByteLevel decoder does it: each char mapped back
 * to its byte when every char is in the table, the spelling's own bytes otherwise. */
static size_t decode_spelling(const char *sp, size_t len, const int byte_of_cp[324], char *o) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)sp[i];
        int cp = -1, w = 1;
        if (c < 0x80)
            cp = c;
        else if ((c & 0xE0) == 0xC0 && i + 1 < len)
            cp = ((c & 0x1F) << 6) | (sp[i + 1] & 0x3F), w = 2;
        if (cp < 0 || cp >= 324 || byte_of_cp[cp] < 0) {
            memcpy(o, sp, len);
            return len;
        }
        o[n++] = (char)byte_of_cp[cp];
        i += (size_t)w;
    }
    return n;
}

void tok_bpe_free(TokBpe *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_steps; i++) {
        pcre2_match_data_free(tok->steps[i].md);
        pcre2_code_free(tok->steps[i].re);
        free(tok->steps[i].segs);
    }
    pcre2_match_context_free(tok->mctx);
    pcre2_jit_stack_free(tok->jit_stack);
    free(tok->dec_off);
    free(tok->dec_len);
    free(tok->dec);
    free(tok->text);
    strmap_free(&tok->vocab);
    strmap_free(&tok->cache);
    free(tok->merges.slot);
    free(tok->added[0]);
    free(tok->added[1]);
    free(tok->cpool);
    free(tok->sym);
    free(tok->heap);
    free(tok->tmp);
    free(tok);
}

/* ---- loading ---- */

static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
    "|\\s+(?!\\S)|\\s+";

static int compile_re(TokBpe *tok, PreStep *st, const char *pat, size_t len, int literal,
                      const char *file, const char *field) {
    int err;
    PCRE2_SIZE at;
    /* PCRE2 refuses UCP together with LITERAL, where it would mean nothing anyway */
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    st->re = pcre2_compile((PCRE2_SPTR)pat, len, opt, &err, &at, NULL);
    if (!st->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return dr_error("%s: %s does not compile at offset %zu: %s", file, field, (size_t)at,
                        (const char *)msg);
    }
    if (pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE) == 0 && !tok->jit_stack) {
        tok->jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
        tok->mctx = pcre2_match_context_create(NULL);
        if (tok->jit_stack && tok->mctx) pcre2_jit_stack_assign(tok->mctx, NULL, tok->jit_stack);
    }
    st->md = pcre2_match_data_create_from_pattern(st->re, NULL);
    if (!st->md) return dr_error("%s: out of memory", file);
    return DR_OK;
}

static int is_type(const json_t *obj, const char *type) {
    const char *t = json_string_value(json_object_get(obj, "type"));
    return t && !strcmp(t, type);
}

static const char *type_of(const json_t *obj) {
    const char *t = json_string_value(json_object_get(obj, "type"));
    return t ? t : "(no type)";
}

static int load_bytelevel(TokBpe *tok, const json_t *pt, const char *file, const char *field) {
    if (tok->n_steps == MAX_STEPS) return dr_error("%s: %s: too many steps", file, field);
    PreStep *st = &tok->steps[tok->n_steps++];
    st->kind = STEP_BYTELEVEL;
    int use_regex = 1;
    char f[96];
    snprintf(f, sizeof f, "%s.add_prefix_space", field);
    if (json_get_bool(pt, "add_prefix_space", 0, file, &st->add_prefix_space)) return DR_ERR;
    if (json_get_bool(pt, "use_regex", 0, file, &use_regex)) return DR_ERR;
    if (use_regex) {
        snprintf(f, sizeof f, "%s (ByteLevel regex)", field);
        if (compile_re(tok, st, GPT2_PATTERN, PCRE2_ZERO_TERMINATED, 0, file, f)) return DR_ERR;
    }
    return DR_OK;
}

static int load_split(TokBpe *tok, const json_t *pt, const char *file, const char *field) {
    if (tok->n_steps == MAX_STEPS) return dr_error("%s: %s: too many steps", file, field);
    PreStep *st = &tok->steps[tok->n_steps++];
    st->kind = STEP_SPLIT;
    const json_t *pat = json_object_get(pt, "pattern");
    const json_t *rx = json_object_get(pat, "Regex");
    const json_t *lit = json_object_get(pat, "String");
    const json_t *p = json_is_string(rx) ? rx : lit;
    if (!json_is_string(p))
        return dr_error("%s: %s.pattern must be {\"Regex\": ...} or {\"String\": ...}", file,
                        field);
    char f[96];
    snprintf(f, sizeof f, "%s.pattern", field);
    if (compile_re(tok, st, json_string_value(p), json_string_length(p), p == lit, file, f))
        return DR_ERR;
    const char *beh = "Isolated";
    if (json_get_str(pt, "behavior", 0, file, &beh)) return DR_ERR;
    static const char *names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    st->behavior = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(beh, names[i])) st->behavior = i;
    if (st->behavior < 0) return dr_error("%s: %s.behavior '%s' is not known", file, field, beh);
    if (json_get_bool(pt, "invert", 0, file, &st->invert)) return DR_ERR;
    return DR_OK;
}

static int load_pretokenizer(TokBpe *tok, const json_t *pt, const char *file) {
    if (!pt || json_is_null(pt))
        return dr_error("%s: pre_tokenizer is null; only byte-level BPE is supported", file);
    if (is_type(pt, "ByteLevel")) return load_bytelevel(tok, pt, file, "pre_tokenizer");
    if (!is_type(pt, "Sequence"))
        return dr_error("%s: pre_tokenizer.type '%s' is not supported (ByteLevel, or a Sequence "
                        "of Split steps ending in ByteLevel)",
                        file, type_of(pt));
    const json_t *arr = json_object_get(pt, "pretokenizers");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return dr_error("%s: pre_tokenizer.pretokenizers must be a non-empty array", file);
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(arr, i);
        char f[64];
        snprintf(f, sizeof f, "pre_tokenizer.pretokenizers[%zu]", i);
        if (is_type(s, "Split")) {
            if (i == n - 1) return dr_error("%s: %s: the Sequence must end in ByteLevel", file, f);
            if (load_split(tok, s, file, f)) return DR_ERR;
        } else if (is_type(s, "ByteLevel")) {
            if (i != n - 1) return dr_error("%s: %s: ByteLevel must be the last step", file, f);
            if (load_bytelevel(tok, s, file, f)) return DR_ERR;
        } else {
            return dr_error("%s: %s.type '%s' is not supported (Split or ByteLevel)", file, f,
                            type_of(s));
        }
    }
    return DR_OK;
}

/* Checks the model's options that change encoding and are not implemented. */
static int check_model_options(TokBpe *tok, const json_t *model, const char *file) {
    const json_t *v;
    if (!is_type(model, "BPE"))
        return dr_error("%s: model.type '%s' is not supported (BPE only)", file, type_of(model));
    if (json_is_true(json_object_get(model, "byte_fallback")))
        return dr_error("%s: model.byte_fallback true is not supported (byte-level BPE only)",
                        file);
    v = json_object_get(model, "dropout");
    if (v && !json_is_null(v) && !(json_is_number(v) && json_number_value(v) <= 0))
        return dr_error("%s: model.dropout must be null (BPE dropout is not supported)", file);
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(model, keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return dr_error("%s: model.%s must be null or \"\" (not supported)", file, keys[i]);
    }
    if (json_get_bool(model, "ignore_merges", 0, file, &tok->ignore_merges)) return DR_ERR;
    if (json_get_bool(model, "fuse_unk", 0, file, &tok->fuse_unk)) return DR_ERR;
    return DR_OK;
}

static int load_vocab(TokBpe *tok, const json_t *model, const json_t *added, const char *file) {
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return dr_error("%s: model.vocab must be an object", file);
    int max_id = -1;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_ID)
            return dr_error("%s: model.vocab['%s'] must be an id in [0, %d)", file, key, MAX_ID);
        if (id > max_id) max_id = (int)id;
    }
    size_t na = json_array_size(added);
    for (size_t i = 0; i < na; i++) {
        json_int_t id = json_integer_value(json_object_get(json_array_get(added, i), "id"));
        if (id > max_id && id < MAX_ID) max_id = (int)id;
    }
    tok->n_ids = max_id + 1;
    tok->dec_off = calloc((size_t)tok->n_ids + 1, sizeof *tok->dec_off);
    tok->dec_len = malloc(((size_t)tok->n_ids + 1) * sizeof *tok->dec_len);
    if (!tok->dec_off || !tok->dec_len) return dr_error("%s: out of memory", file);
    for (int i = 0; i < tok->n_ids; i++) tok->dec_len[i] = UINT32_MAX;
    json_object_foreach((json_t *)vocab, key, val) {
        if (strmap_put(&tok->vocab, key, strlen(key), (int)json_integer_value(val)))
            return dr_error("%s: out of memory", file);
    }
    return DR_OK;
}

static int merge_side(const TokBpe *tok, const char *s, size_t len, size_t i, const char *file) {
    int id = strmap_get(&tok->vocab, s, len);
    if (id < 0)
        dr_error("%s: model.merges[%zu]: '%.*s' is not in model.vocab", file, i, (int)len, s);
    return id;
}

static int load_merges(TokBpe *tok, const json_t *model, const char *file) {
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges)) return dr_error("%s: model.merges must be an array", file);
    size_t n = json_array_size(merges);
    if (mergemap_init(&tok->merges, n)) return dr_error("%s: out of memory", file);
    char *buf = NULL;
    size_t cap = 0;
    int rc = DR_OK;
    for (size_t i = 0; i < n && rc == DR_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = dr_error("%s: model.merges[%zu] '%s' must be two tokens split by one space",
                              file, i, a);
                break;
            }
            la = (size_t)(sp - a);
            b = sp + 1;
            lb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            la = json_string_length(json_array_get(m, 0));
            lb = json_string_length(json_array_get(m, 1));
        } else {
            rc = dr_error("%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", file, i);
            break;
        }
        int ia = merge_side(tok, a, la, i, file), ib = merge_side(tok, b, lb, i, file);
        if (ia < 0 || ib < 0) {
            rc = DR_ERR;
            break;
        }
        if (la + lb > cap) {
            cap = 2 * (la + lb) + 64;
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = dr_error("%s: out of memory", file);
                break;
            }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int id = strmap_get(&tok->vocab, buf, la + lb);
        if (id < 0) {
            rc = dr_error("%s: model.merges[%zu]: the merged token '%.*s' is not in model.vocab",
                          file, i, (int)(la + lb), buf);
            break;
        }
        MergeSlot *s = mergemap_find(&tok->merges, ia, ib);
        if (s->key == UINT64_MAX) tok->merges.n++;
        /* a repeated pair keeps its last rank, as tokenizers does */
        *s = (MergeSlot){((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, (int32_t)i, id};
    }
    free(buf);
    return rc;
}

static int cmp_added_len(const void *x, const void *y) {
    const Added *a = x, *b = y;
    return a->len < b->len ? 1 : a->len > b->len ? -1 : 0;
}

static int load_added(TokBpe *tok, const json_t *added, const char *file) {
    if (added && !json_is_null(added) && !json_is_array(added))
        return dr_error("%s: added_tokens must be an array", file);
    size_t n = json_array_size(added), total = 1;
    for (size_t i = 0; i < n; i++)
        total += json_string_length(json_object_get(json_array_get(added, i), "content")) + 1;
    tok->text = malloc(total);
    tok->added[0] = calloc(n + 1, sizeof(Added));
    tok->added[1] = calloc(n + 1, sizeof(Added));
    if (!tok->text || !tok->added[0] || !tok->added[1]) return dr_error("%s: out of memory", file);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(added, i);
        char f[48];
        snprintf(f, sizeof f, "added_tokens[%zu]", i);
        int id = -1, special = 0, normalized, sw = 0, ls = 0, rs = 0;
        const json_t *c = json_object_get(t, "content");
        if (!json_is_string(c) || json_string_length(c) == 0)
            return dr_error("%s: %s.content must be a non-empty string", file, f);
        if (json_get_int(t, "id", 1, file, &id)) return dr_error("%s: %s.id is missing", file, f);
        if (id < 0 || id >= tok->n_ids)
            return dr_error("%s: %s.id %d is out of range", file, f, id);
        if (json_get_bool(t, "special", 0, file, &special)) return DR_ERR;
        normalized = !special;
        if (json_get_bool(t, "normalized", 0, file, &normalized) ||
            json_get_bool(t, "single_word", 0, file, &sw) ||
            json_get_bool(t, "lstrip", 0, file, &ls) || json_get_bool(t, "rstrip", 0, file, &rs))
            return DR_ERR;
        if (sw || ls || rs)
            return dr_error("%s: %s ('%s'): single_word, lstrip and rstrip are not supported", file,
                            f, json_string_value(c));
        size_t len = json_string_length(c);
        memcpy(tok->text + used, json_string_value(c), len);
        tok->text[used + len] = 0;
        int p = normalized ? 1 : 0;
        tok->added[p][tok->n_added[p]++] = (Added){(uint32_t)used, (uint32_t)len, id};
        tok->first[p][(uint8_t)json_string_value(c)[0]] = 1;
        used += len + 1;
    }
    for (int p = 0; p < 2; p++)
        qsort(tok->added[p], (size_t)tok->n_added[p], sizeof(Added), cmp_added_len);
    return DR_OK;
}

/* Decoded bytes for every id: the added token's content when the id is one (as tokenizers
 * prefers it), else the vocab spelling; both through the ByteLevel decoder rule. */
static int build_decode_table(TokBpe *tok, const int byte_of_cp[324], const char *file) {
    const char **sp = calloc((size_t)tok->n_ids, sizeof *sp);
    size_t *len = calloc((size_t)tok->n_ids, sizeof *len);
    if (!sp || !len) {
        free(sp);
        free(len);
        return dr_error("%s: out of memory", file);
    }
    for (size_t i = 0; i < tok->vocab.cap; i++) {
        const StrSlot *s = &tok->vocab.slot[i];
        if (!s->used) continue;
        sp[s->val] = tok->vocab.keys + s->off;
        len[s->val] = s->len;
    }
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < tok->n_added[p]; k++) {
            const Added *a = &tok->added[p][k];
            sp[a->id] = tok->text + a->off;
            len[a->id] = a->len;
        }
    size_t total = 1;
    for (int i = 0; i < tok->n_ids; i++) total += len[i];
    tok->dec = malloc(total);
    if (!tok->dec) {
        free(sp);
        free(len);
        return dr_error("%s: out of memory", file);
    }
    size_t used = 0;
    for (int i = 0; i < tok->n_ids; i++) {
        if (!sp[i]) continue;
        tok->dec_off[i] = (uint32_t)used;
        tok->dec_len[i] = (uint32_t)decode_spelling(sp[i], len[i], byte_of_cp, tok->dec + used);
        used += tok->dec_len[i];
    }
    free(sp);
    free(len);
    return DR_OK;
}

static int config_token(TokBpe *tok, const json_t *cfg, const char *key, const char *file,
                        int *out) {
    const json_t *v = json_object_get(cfg, key);
    *out = -1;
    if (!v || json_is_null(v)) return DR_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return dr_error("%s: %s must be a string, {\"content\": ...} or null", file, key);
    *out = tok_bpe_token_id(tok, json_string_value(v));
    if (*out < 0)
        return dr_error("%s: %s '%s' is not a token of the tokenizer", file, key,
                        json_string_value(v));
    return DR_OK;
}

static int load_json(TokBpe *tok, const json_t *root, const char *file) {
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return dr_error("%s: missing field 'model'", file);
    if (check_model_options(tok, model, file)) return DR_ERR;
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm) && !is_type(norm, "NFC"))
        return dr_error("%s: normalizer.type '%s' is not supported (null or NFC)", file,
                        type_of(norm));
    const json_t *decoder = json_object_get(root, "decoder");
    if (!is_type(decoder, "ByteLevel"))
        return dr_error("%s: decoder must be ByteLevel (found %s)", file,
                        decoder && !json_is_null(decoder) ? type_of(decoder) : "null");
    const json_t *added = json_object_get(root, "added_tokens");
    if (load_vocab(tok, model, added, file) || load_merges(tok, model, file) ||
        load_added(tok, added, file) ||
        load_pretokenizer(tok, json_object_get(root, "pre_tokenizer"), file))
        return DR_ERR;
    const char *unk = NULL;
    if (json_get_str(model, "unk_token", 0, file, &unk)) return DR_ERR;
    tok->unk_id = unk ? strmap_get(&tok->vocab, unk, strlen(unk)) : -1;
    if (unk && tok->unk_id < 0)
        return dr_error("%s: model.unk_token '%s' is not in model.vocab", file, unk);

    int cp_of[256], byte_of_cp[324];
    byte_table(cp_of);
    for (int i = 0; i < 324; i++) byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) {
        byte_of_cp[cp_of[b]] = b;
        tok->byte_chlen[b] = utf8_put(tok->byte_ch[b], cp_of[b]);
        tok->byte_id[b] = strmap_get(&tok->vocab, tok->byte_ch[b], (size_t)tok->byte_chlen[b]);
    }
    return build_decode_table(tok, byte_of_cp, file);
}

int tok_bpe_load(const char *path, TokBpe **out) {
    char file[4096], cfgpath[4096];
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0) return dr_error("%s: file not found", path);
    if (S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/tokenizer.json", path);
    else
        snprintf(file, sizeof file, "%s", path);
    json_t *root;
    if (json_load_path(file, &root)) return DR_ERR;
    TokBpe *tok = calloc(1, sizeof *tok);
    if (!tok) {
        json_decref(root);
        return dr_error("%s: out of memory", file);
    }
    tok->bos_id = tok->eos_id = -1;
    int rc = json_is_object(root)
                 ? load_json(tok, root, file)
                 : dr_error("%s: not a tokenizer.json (no top-level object)", file);
    json_decref(root);
    if (rc == DR_OK) {
        const char *slash = strrchr(file, '/');
        int dirlen = slash ? (int)(slash - file) : 1;
        snprintf(cfgpath, sizeof cfgpath, "%.*s/tokenizer_config.json", dirlen, slash ? file : ".");
        if (stat(cfgpath, &st) == 0) {
            json_t *cfg;
            rc = json_load_path(cfgpath, &cfg);
            if (rc == DR_OK) {
                rc = config_token(tok, cfg, "bos_token", cfgpath, &tok->bos_id);
                if (rc == DR_OK) rc = config_token(tok, cfg, "eos_token", cfgpath, &tok->eos_id);
                json_decref(cfg);
            }
        }
    }
    if (rc != DR_OK) {
        tok_bpe_free(tok);
        return DR_ERR;
    }
    *out = tok;
    return DR_OK;
}

/* ---- encoding ---- */

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void emit(TokBpe *tok, const int *ids, int n) {
    if (tok->status) return;
    if (tok->nout + n > tok->maxout) {
        tok->status = -1;
        return;
    }
    memcpy(tok->out + tok->nout, ids, (size_t)n * sizeof *ids);
    tok->nout += n;
}

static void heap_push(HeapItem *h, size_t *n, HeapItem x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].rank < x.rank || (h[p].rank == x.rank && h[p].pos < x.pos)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static HeapItem heap_pop(HeapItem *h, size_t *n) {
    HeapItem top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n &&
            (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos)))
            c++;
        if (x.rank < h[c].rank || (x.rank == h[c].rank && x.pos < h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static void push_pair(TokBpe *tok, size_t *nh, int pos, int a, int b) {
    const MergeSlot *m = mergemap_find(&tok->merges, a, b);
    if (m->key != UINT64_MAX) heap_push(tok->heap, nh, (HeapItem){m->rank, pos, m->id});
}

/* BPE over one pre-token; emits its ids. */
static void bpe_word(TokBpe *tok, const uint8_t *s, size_t len) {
    int cacheable = len <= CACHE_MAX_WORD;
    if (cacheable) {
        int off = strmap_get(&tok->cache, s, len);
        if (off >= 0) {
            emit(tok, tok->cpool + off + 1, tok->cpool[off]);
            return;
        }
    }
    if (tok->ignore_merges) {
        if (grow((void **)&tok->tmp, &tok->tmpcap, 2 * len, 1)) goto oom;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            memcpy(tok->tmp + n, tok->byte_ch[s[i]], (size_t)tok->byte_chlen[s[i]]);
            n += (size_t)tok->byte_chlen[s[i]];
        }
        int id = strmap_get(&tok->vocab, tok->tmp, n);
        if (id >= 0) {
            emit(tok, &id, 1);
            return;
        }
    }
    if (grow((void **)&tok->sym, &tok->symcap, len + 1, sizeof(Sym)) ||
        grow((void **)&tok->heap, &tok->heapcap, 3 * len + 4, sizeof(HeapItem)))
        goto oom;
    Sym *sym = tok->sym;
    int n = 0, last_unk = 0;
    for (size_t i = 0; i < len; i++) {
        int id = tok->byte_id[s[i]];
        if (id < 0) {
            if (tok->unk_id < 0) continue; /* no unk: the byte is dropped, as tokenizers does */
            if (tok->fuse_unk && last_unk) continue;
            id = tok->unk_id;
            last_unk = 1;
        } else {
            last_unk = 0;
        }
        sym[n] = (Sym){id, n - 1, n + 1};
        n++;
    }
    if (n > 0) sym[n - 1].next = -1;
    size_t nh = 0;
    for (int i = 0; i + 1 < n; i++) push_pair(tok, &nh, i, sym[i].id, sym[i + 1].id);
    while (nh > 0) {
        HeapItem top = heap_pop(tok->heap, &nh);
        Sym *a = &sym[top.pos];
        if (a->id < 0 || a->next < 0) continue;
        Sym *b = &sym[a->next];
        const MergeSlot *m = mergemap_find(&tok->merges, a->id, b->id);
        if (m->key == UINT64_MAX || m->id != top.id) continue; /* stale entry */
        a->id = top.id;
        b->id = -1;
        a->next = b->next;
        if (a->next >= 0) sym[a->next].prev = top.pos;
        if (grow((void **)&tok->heap, &tok->heapcap, nh + 2, sizeof(HeapItem))) goto oom;
        if (a->prev >= 0) push_pair(tok, &nh, a->prev, sym[a->prev].id, a->id);
        if (a->next >= 0) push_pair(tok, &nh, top.pos, a->id, sym[a->next].id);
    }
    /* gather the ids in place: live symbols in order */
    int k = 0;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) sym[k++].prev = sym[i].id;
    int *ids = tok->out + tok->nout;
    int fits = !tok->status && tok->nout + k <= tok->maxout;
    if (fits) {
        for (int i = 0; i < k; i++) ids[i] = sym[i].prev;
        tok->nout += k;
    } else if (!tok->status) {
        tok->status = -1;
    }
    if (cacheable && fits) {
        if (tok->cache.n >= CACHE_MAX_WORDS) {
            strmap_clear(&tok->cache);
            tok->cn = 0;
        }
        if (grow((void **)&tok->cpool, &tok->ccap, tok->cn + (size_t)k + 1, sizeof(int)) ||
            strmap_put(&tok->cache, s, len, (int)tok->cn))
            goto oom;
        tok->cpool[tok->cn] = k;
        memcpy(tok->cpool + tok->cn + 1, ids, (size_t)k * sizeof(int));
        tok->cn += (size_t)k + 1;
    }
    return;
oom:
    tok->status = -4;
}

static int add_seg(PreStep *st, size_t s, size_t e, int m) {
    if (grow((void **)&st->segs, &st->capseg, st->nseg + 1, sizeof(Seg))) return -1;
    st->segs[st->nseg++] = (Seg){s, e, m};
    return 0;
}

static void pretok(TokBpe *tok, int step, const char *s, size_t len);

/* Splits a piece with the step's regex into pieces by its behavior and passes them on. */
static void split_piece(TokBpe *tok, int step, const char *s, size_t len) {
    PreStep *st = &tok->steps[step];
    st->nseg = 0;
    size_t off = 0, prev = 0;
    while (off <= len) {
        int rc =
            pcre2_match(st->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, st->md, tok->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            tok->status = -3;
            return;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev && add_seg(st, prev, ms, 0)) goto oom;
        if (add_seg(st, ms, me, 1)) goto oom;
        prev = me;
        if (me > ms) {
            off = me;
        } else { /* empty match: step over one character */
            if (me >= len) break;
            off = me + 1;
            while (off < len && ((uint8_t)s[off] & 0xC0) == 0x80) off++;
        }
    }
    if (prev < len && add_seg(st, prev, len, 0)) goto oom;
    /* the behavior fold, over (offsets, is_match) with invert applied */
    size_t n = st->nseg, k = 0;
    Seg *g = st->segs;
    for (size_t i = 0; i < n; i++) g[i].m ^= st->invert;
    if (st->behavior == B_MERGED_NEXT) { /* folds from the end */
        int pm = 0;
        for (size_t i = n; i-- > 0;) {
            Seg x = g[i];
            if (x.m && !pm && k > 0)
                g[n - k].s = x.s;
            else
                g[n - ++k] = x;
            pm = x.m;
        }
        memmove(g, g + n - k, k * sizeof *g);
    } else if (st->behavior != B_ISOLATED) {
        int pm = 0;
        for (size_t i = 0; i < n; i++) {
            Seg x = g[i];
            if (st->behavior == B_REMOVED) {
                if (!x.m) g[k++] = x;
            } else if (st->behavior == B_MERGED_PREV && x.m && !pm && k > 0) {
                g[k - 1].e = x.e;
            } else if (st->behavior == B_CONTIGUOUS && x.m == pm && k > 0) {
                g[k - 1].e = x.e;
            } else {
                g[k++] = x;
            }
            pm = x.m;
        }
    } else {
        k = n;
    }
    /* each step has its own list, so the deeper steps leave this one intact */
    for (size_t i = 0; i < k && !tok->status; i++)
        pretok(tok, step + 1, s + st->segs[i].s, st->segs[i].e - st->segs[i].s);
    return;
oom:
    tok->status = -4;
}

static void pretok(TokBpe *tok, int step, const char *s, size_t len) {
    if (len == 0 || tok->status) return;
    if (step == tok->n_steps) {
        bpe_word(tok, (const uint8_t *)s, len);
        return;
    }
    PreStep *st = &tok->steps[step];
    if (st->kind == STEP_BYTELEVEL && st->add_prefix_space && s[0] != ' ') {
        /* ByteLevel is the last step, so only the split below reads this copy */
        char *buf = malloc(len + 1);
        if (!buf) {
            tok->status = -4;
            return;
        }
        buf[0] = ' ';
        memcpy(buf + 1, s, len);
        if (st->re)
            split_piece(tok, step, buf, len + 1);
        else
            pretok(tok, step + 1, buf, len + 1);
        free(buf);
        return;
    }
    if (st->re)
        split_piece(tok, step, s, len);
    else
        pretok(tok, step + 1, s, len);
}

/* Splits on the added tokens of pass p (leftmost-longest); the rest goes to pass p+1, then to
 * the pre-tokenizer. */
static void split_added(TokBpe *tok, int p, const char *s, size_t len) {
    if (p == 2) {
        pretok(tok, 0, s, len);
        return;
    }
    if (tok->n_added[p] == 0) {
        split_added(tok, p + 1, s, len);
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < len && !tok->status;) {
        if (!tok->first[p][(uint8_t)s[i]]) {
            i++;
            continue;
        }
        const Added *hit = NULL;
        for (int k = 0; k < tok->n_added[p]; k++) {
            const Added *a = &tok->added[p][k];
            if (a->len <= len - i && !memcmp(s + i, tok->text + a->off, a->len)) {
                hit = a;
                break; /* longest first */
            }
        }
        if (!hit) {
            i++;
            continue;
        }
        if (i > start) split_added(tok, p + 1, s + start, i - start);
        emit(tok, &hit->id, 1);
        i += hit->len;
        start = i;
    }
    if (start < len && !tok->status) split_added(tok, p + 1, s + start, len - start);
}

int tok_bpe_encode(TokBpe *tok, const char *text, size_t len, int *ids, int max_ids) {
    if (utf8_valid_prefix((const uint8_t *)text, len) != len) return -2;
    tok->out = ids;
    tok->nout = 0;
    tok->maxout = max_ids < 0 ? 0 : max_ids;
    tok->status = 0;
    split_added(tok, 0, text, len);
    if (tok->status == -4) { /* out of memory in the cache or scratch: start afresh */
        strmap_clear(&tok->cache);
        tok->cn = 0;
        return -3;
    }
    return tok->status ? tok->status : tok->nout;
}

/* ---- decoding and lookups ---- */

int tok_bpe_decode(const TokBpe *tok, const int *ids, int n, char *out, size_t cap) {
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= tok->n_ids || tok->dec_len[id] == UINT32_MAX) return -1;
        size_t l = tok->dec_len[id];
        if (used + l + 1 > cap) return -1;
        memcpy(out + used, tok->dec + tok->dec_off[id], l);
        used += l;
    }
    if (used + 1 > cap) return -1;
    out[used] = 0;
    return (int)used;
}

int tok_bpe_token_id(const TokBpe *tok, const char *token) {
    size_t len = strlen(token);
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < tok->n_added[p]; k++) {
            const Added *a = &tok->added[p][k];
            if (a->len == len && !memcmp(tok->text + a->off, token, len)) return a->id;
        }
    return strmap_get(&tok->vocab, token, len);
}

int tok_bpe_vocab_size(const TokBpe *tok) {
    return tok->n_ids;
}
int tok_bpe_bos_id(const TokBpe *tok) {
    return tok->bos_id;
}
int tok_bpe_eos_id(const TokBpe *tok) {
    return tok->eos_id;
}
