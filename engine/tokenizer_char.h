/* The character-level tokenizer of the embedded arithmetic task: three special tokens
 * (pad, bos, eos) and one id per character of a fixed alphabet. */
#pragma once

#define CHARTOK_PAD   0
#define CHARTOK_BOS   1
#define CHARTOK_EOS   2
#define CHARTOK_VOCAB 32 /* ids past the alphabet are unused, rounded for alignment */

/* Encodes text into ids (at most max). Returns the count, or -1 if a character is outside
 * the alphabet or the text does not fit. */
int chartok_encode(const char *text, int *ids, int max);
/* Decodes ids into out (NUL-terminated, at most n-1 chars); specials are skipped and decoding
 * stops at eos. Returns the number of characters written. */
int chartok_decode(const int *ids, int count, char *out, int n);
