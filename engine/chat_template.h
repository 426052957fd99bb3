/* Built-in chat templates, written out in C instead of running the Jinja template of a
 * tokenizer_config.json: ChatML (Qwen), Llama 3, and raw text. Each turns one user message,
 * an optional system prompt and an optional instruction suffix into the prompt text that
 * ends where the assistant's reply begins, and names the tokens that end that reply.
 *
 *   chatml  [<|im_start|>system\nSYSTEM<|im_end|>\n]<|im_start|>user\nUSER<|im_end|>\n
 *           <|im_start|>assistant\n
 *   llama3  <|begin_of_text|>[<|start_header_id|>system<|end_header_id|>\n\nSYSTEM<|eot_id|>]
 *           <|start_header_id|>user<|end_header_id|>\n\nUSER<|eot_id|>
 *           <|start_header_id|>assistant<|end_header_id|>\n\n
 *   raw     [SYSTEM\n\n]USER
 *
 * USER is the prompt, then "\n" and the suffix when one is given ("Please reason step by
 * step, and put your final answer within \\boxed{}."). No default system prompt is added
 * when none is given (Qwen2.5's own template would add "You are Qwen, ..."; pass it with
 * the system prompt to match it). Llama 3 trims the whitespace around each message, as its
 * template does; ChatML and raw keep the text as it is. */
#pragma once
#include "tokenizer_bpe.h"

typedef enum { CHAT_RAW = 0, CHAT_CHATML = 1, CHAT_LLAMA3 = 2 } ChatKind;

typedef struct {
    ChatKind kind;
    const char *system; /* NULL or "": none */
    const char *suffix; /* NULL or "": none */
} ChatTemplate;

/* The most stop tokens a template names. */
#define CHAT_MAX_STOP 4

/* "chatml", "llama3", "raw", or "auto": the kind detected from MODEL_DIR's
 * tokenizer_config.json (chat_template_detect). DR_OK, or DR_ERR naming the value or file. */
int chat_template_kind(const char *name, const char *model_dir, ChatKind *out);
/* Reads the "chat_template" of a tokenizer_config.json (a string, or a list of {"name",
 * "template"} where the one named "default", else the first, counts): chatml when it holds
 * "<|im_start|>", llama3 when it holds "<|start_header_id|>". DR_ERR names the file when it
 * is missing, has no chat_template, or holds neither marker. */
int chat_template_detect(const char *config_path, ChatKind *out);
const char *chat_kind_name(ChatKind k);

/* The prompt text for one user message; the caller frees it. */
char *chat_format(const ChatTemplate *t, const char *user);

/* The token ids that end the assistant's reply, the primary one first (chatml: <|im_end|>,
 * then <|endoftext|>; llama3: <|eot_id|>, then <|end_of_text|>; raw: the tokenizer's eos
 * token). Secondary tokens the tokenizer lacks are left out; a missing primary token is an
 * error naming TOK_PATH. raw with no eos token gives *n = 0 (replies run to their length
 * limit). */
int chat_stop_tokens(ChatKind k, const TokBpe *tok, const char *tok_path, int ids[CHAT_MAX_STOP],
                     int *n);
