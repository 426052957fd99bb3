/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json, as Qwen2/Qwen2.5,
 * Llama 3 and GPT-2 ship it. Encoding follows the tokenizers library step by step:
 *
 *   added tokens   matched first, leftmost-longest: those with "normalized": false on the
 *                  raw text, then those with "normalized": true on what is left
 *   normalizer     null, or NFC: the text is assumed to be NFC already (it is not
 *                  normalised here; NFC text, which nearly all text is, encodes the same)
 *   pre-tokenizer  ByteLevel (add_prefix_space, use_regex with the GPT-2 pattern), or a
 *                  Sequence of Split steps (pattern Regex or String; behavior Isolated,
 *                  Removed, MergedWithPrevious, MergedWithNext or Contiguous; invert) ending
 *                  in ByteLevel; regexes run in PCRE2 with Unicode properties (UTF|UCP), JIT
 *                  compiled when available
 *   model          BPE: vocab, merges ("a b" strings or [a, b] pairs) applied lowest rank
 *                  first, ignore_merges, unk_token; words are cached
 *   decoder        ByteLevel
 *
 * Refused at load with an error naming the file and field: other model, normalizer,
 * pre-tokenizer or decoder types, byte_fallback, dropout, a subword prefix or suffix, and
 * added tokens with single_word, lstrip or rstrip. The post-processor is ignored: encode
 * never adds BOS/EOS; callers that want them use tok_bpe_bos_id/tok_bpe_eos_id. */
#pragma once
#include <stddef.h>

typedef struct TokBpe TokBpe;

/* Loads PATH: a tokenizer.json, or a model directory holding one. A tokenizer_config.json
 * beside it, when present, gives bos_token and eos_token (strings or {"content": ...}).
 * DR_OK with *out set, or DR_ERR (message names the file and field). */
int tok_bpe_load(const char *path, TokBpe **out);
void tok_bpe_free(TokBpe *tok);

/* Encodes LEN bytes of UTF-8 text into ids (at most max_ids), special tokens in the text
 * included, no BOS/EOS added. Returns the count; -1 if more than max_ids ids are needed,
 * -2 if the text is not valid UTF-8, -3 if a pre-tokenizer regex fails to run (a PCRE2
 * resource limit) or memory runs out. Not thread-safe: a tokenizer keeps a word cache and
 * scratch buffers (use one TokBpe per thread). */
int tok_bpe_encode(TokBpe *tok, const char *text, size_t len, int *ids, int max_ids);

/* Decodes ids into out, the exact bytes the tokens stand for (special tokens included; a
 * sequence cut inside a UTF-8 character gives the partial bytes, where tokenizers would
 * print U+FFFD), NUL-terminated. Returns the byte count (without the NUL), or -1 if an id
 * names no token or the bytes and the NUL do not fit in cap. */
int tok_bpe_decode(const TokBpe *tok, const int *ids, int n, char *out, size_t cap);

/* The id of a token given by its text: an added token's content ("<|im_end|>") or a vocab
 * entry in its byte-level spelling ("Ġthe"); -1 if there is none. */
int tok_bpe_token_id(const TokBpe *tok, const char *token);

/* One more than the largest id (vocab and added tokens). */
int tok_bpe_vocab_size(const TokBpe *tok);
/* From tokenizer_config.json; -1 when absent or null. */
int tok_bpe_bos_id(const TokBpe *tok);
int tok_bpe_eos_id(const TokBpe *tok);
