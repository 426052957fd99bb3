/* libFuzzer harness for the math verifier, which reads whatever text a policy writes: the
 * input is split at its first NUL into a response and a gold answer, and every entry point
 * runs on them. Properties besides "no crash, no sanitizer report": math_extract's output is
 * terminated within its buffer, math_equal is symmetric, and an answer that normalises to something
 * equals itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "engine/math_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 2);
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    const char *resp = buf, *gold = buf + strlen(buf) + 1; /* "" when there is no NUL */
    char ans[256], g[MATH_ANSWER_MAX], norm[MATH_ANSWER_MAX];
    memset(ans, 'x', sizeof ans);
    math_extract(resp, ans, sizeof ans);
    if (!memchr(ans, 0, sizeof ans)) abort();
    math_gold_answer(gold, resp[0] & 1, g, sizeof g);
    if (math_equal(ans, g) != math_equal(g, ans)) abort();
    /* reflexive: an answer with anything left after normalising equals itself (one that
     * normalises to nothing, "$" say, equals nothing, by design) */
    math_normalize(ans, norm, sizeof norm);
    if (norm[0] && !math_equal(ans, ans)) abort();
    math_normalize(resp, norm, sizeof norm);
    (void)math_verify(gold, resp);
    free(buf);
    return 0;
}
