/* Text in, text out, for the generate and eval commands: a Hugging Face model directory
 * (config.json, weights, tokenizer.json, tokenizer_config.json), a chat template, prompts
 * formatted and encoded up front (so a prompt that does not fit fails before the model is
 * loaded), then batched sampling with the KV-cache generator and decoding of the replies.
 *
 * Stopping: a row ends at the template's stop tokens, the primary (<|im_end|>, <|eot_id|>,
 * the tokenizer's eos for raw) and the secondary (<|endoftext|>, <|end_of_text|>) alike, and
 * the reply is decoded up to that token. The raw template puts the tokenizer's bos token in front
 * of the prompt when tokenizer_config.json names one (as the Hugging Face tokenizer's
 * post-processor does); chatml and llama3 spell out what they need in the text. */
#pragma once
#include <stddef.h>
#include <jansson.h>
#include "chat_template.h"
#include "dataset.h"
#include "generate.h"
#include "model.h"
#include "tokenizer_bpe.h"

typedef struct {
    const char *model_dir;
    const char *template_name; /* auto, chatml, llama3, raw */
    const char *system;        /* NULL: none */
    const char *suffix;        /* NULL: none */
    const char *device;        /* auto, cpu, cuda */
    const char *precision;     /* fp32, bf16 (GPU only) */
    const char *attention;     /* flash, cudnn (bf16 only) */
    SampleParams sp;
    int temperature_set; /* --temperature was given (eval picks its default otherwise) */
    unsigned long long seed;
    int batch; /* rows per generate() call */
} TextGenOptions;

/* auto template, auto device, fp32, temperature 1 (top-p 1, top-k 0), 512 new tokens,
 * seed 1234, 64 rows per call. */
void textgen_options_default(TextGenOptions *o);
/* Parses argv[*i] if it is one of the shared flags (--model --template --system --suffix
 * --temperature --top-p --top-k --max-new-tokens --seed --device --precision --attention --batch),
 * moving *i past its value. 1 when consumed, 0 when the flag is not a shared one, DR_ERR
 * (message names the flag) on a missing or bad value. */
int textgen_parse_flag(TextGenOptions *o, int argc, char **argv, int *i);
/* A flag's value as a number / an integer in [lo, hi]; DR_ERR names the flag. */
int textgen_flag_num(const char *flag, const char *s, double *out);
int textgen_flag_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
/* The usage text of the shared flags. */
extern const char TEXTGEN_FLAGS_USAGE[];

/* The input and output flags of generate and eval: --prompt (generate only), --data, --task,
 * --out, --prompt-field, --answer-field, --samples, --limit, --max-bad-fraction. */
typedef struct {
    const char *prompt, *data, *task, *out;
    DatasetFields fields;
    double max_bad;
    int samples, limit;
} TextGenData;

/* Parses argv[*i] if it is one of those flags (--prompt only when allow_prompt), moving *i
 * past its value: 1 when consumed, 0 when it is not one of them, DR_ERR (message names the
 * flag) on a missing or bad value. */
int textgen_parse_data_flag(TextGenData *d, int allow_prompt, int argc, char **argv, int *i);
/* A whole command line of cmd ("generate" or "eval"): the shared and data flags, --help
 * printing usage then the shared flags' usage. DR_OK, 1 when help was printed, or DR_ERR
 * (message names the argument). */
int textgen_parse_args(TextGenOptions *o, TextGenData *d, int allow_prompt, const char *cmd,
                       const char *usage, int argc, char **argv);

typedef struct {
    char *text;  /* the reply, decoded up to its stop token (excluded); invalid UTF-8 kept */
    size_t len;  /* bytes in text (it may hold NUL bytes) */
    int tokens;  /* tokens generated, the stop token included */
    int stopped; /* 1: ended at a stop token; 0: at the length limit */
} TextGenResult;

typedef struct {
    TextGenOptions o;
    ModelConfig cfg;
    TokBpe *tok;
    ChatTemplate tpl;
    int stop[CHAT_MAX_STOP], n_stop;
    Backend be;
    Model m;
    Generator g;
    int loaded;      /* model and generator exist */
    int T_cap;       /* prompt + reply tokens per row */
    int B_cap;       /* rows per generate() call */
    int *prompts;    /* (B_cap, T_cap) */
    int *plen;       /* (B_cap) */
    int *out;        /* (B_cap, T_cap) */
    int *rlen, *hit; /* (B_cap) */
    long long tokens_generated;
} TextGen;

/* Validates the options, reads config.json and the tokenizer, resolves the template and its
 * stop tokens and picks the backend; the weights are not read yet. DR_OK or DR_ERR. */
int textgen_open(TextGen *tg, const TextGenOptions *o);
/* Formats USER with the template (SYSTEM, when not NULL, in place of its system prompt) and
 * encodes it: *ids (malloc'd, *n of them). WHERE names the prompt in errors ("--prompt",
 * "FILE:LINE"): a prompt with no tokens, one that leaves no room for a reply in the model's
 * context, or an id outside the model's vocabulary. */
int textgen_encode(TextGen *tg, const char *user, const char *system, const char *where, int **ids,
                   int *n);
/* n encoded prompts, from textgen_encode_all. */
typedef struct {
    int n;
    int **ids;   /* (n) each (len[i]) */
    int *len;    /* (n) */
    int max_len; /* the longest */
} TextGenPrompts;

/* textgen_encode for each of texts (n), with systems[i] (systems may be NULL); errors name
 * "FILE:LINE" with lines[i] when file is given, else "--prompt". *p is empty after an error. */
int textgen_encode_all(TextGen *tg, int n, const char *const *texts, const char *const *systems,
                       const char *file, const int *lines, TextGenPrompts *p);
void textgen_prompts_free(TextGenPrompts *p);
/* Rows per generate() call for n prompts of k samples each: whole prompts, about batch rows
 * (at least k). */
int textgen_rows_per_call(int batch, int n, int k);
/* Loads the weights and sizes the generator for prompts of up to max_prompt_len tokens and
 * up to rows rows per textgen_run call. */
int textgen_start(TextGen *tg, int max_prompt_len, int rows);
/* Generates one reply for each of n <= B_cap prompts; row_ids[r] picks row r's random
 * stream (the same id gives the same reply whatever the batch). res (n) is filled; free
 * each with textgen_result_free. */
void textgen_run(TextGen *tg, int n, int *const *ids, const int *lens,
                 const unsigned long long *row_ids, TextGenResult *res);
void textgen_result_free(TextGenResult *r);
/* k replies to each of the prompts p, rows per call (textgen_rows_per_call): after each
 * call fn(ctx, i0, np, res) gets the np * k replies to prompts i0 .. i0+np-1, reply s of
 * prompt i at res[(i - i0) * k + s], and they are freed when it returns. Reply s of prompt i
 * draws the same random stream whatever k and rows. */
typedef void (*TextGenRepliesFn)(void *ctx, int i0, int np, TextGenResult *res);
void textgen_run_all(TextGen *tg, const TextGenPrompts *p, int k, int rows, TextGenRepliesFn fn,
                     void *ctx);
void textgen_close(TextGen *tg);

/* A JSON string of len bytes; each maximal run of bytes that is not valid UTF-8 becomes one
 * U+FFFD, as the tokenizers library shows it (String::from_utf8_lossy). */
json_t *json_text_lossy(const char *s, size_t len);
