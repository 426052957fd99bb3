/* The arithmetic task: worked solutions are right, the verifier accepts exactly the right
 * final answer, the tokenizer round-trips, and the length bound holds. */
#include <stdio.h>
#include <string.h>
#include "../engine/sft.h"
#include "../engine/task_arith.h"
#include "../engine/tokenizer_char.h"
#include "testutil.h"

int main(void) {
    ArithParams ap = {2, 6, 999};
    char prompt[ARITH_MAX_TEXT], sol[ARITH_MAX_TEXT], text[2 * ARITH_MAX_TEXT];
    int ids[2 * ARITH_MAX_TEXT], all_right = 1, roundtrip = 1, bound = 1, wrong_rejected = 1;
    int maxlen = sft_max_len(&ap);
    for (int i = 0; i < 5000; i++) {
        long ans;
        arith_problem(&ap, 42, i, prompt, sol, &ans);
        all_right &= arith_verify(prompt, sol) == 1.0;
        char bad[ARITH_MAX_TEXT];
        const char *a = strrchr(sol, ':');
        snprintf(bad, sizeof bad, "%.*s%ld", (int)(a - sol + 1), sol, ans + 1);
        wrong_rejected &= arith_verify(prompt, bad) == 0.0;
        snprintf(text, sizeof text, "%s%s", prompt, sol);
        int n = chartok_encode(text, ids, (int)(sizeof ids / sizeof ids[0]));
        char back[2 * ARITH_MAX_TEXT];
        chartok_decode(ids, n, back, sizeof back);
        roundtrip &= n > 0 && strcmp(back, text) == 0;
        bound &= 2 + n <= maxlen;
    }
    check(all_right, "worked solutions of 5000 problems verify as correct");
    check(wrong_rejected, "an off-by-one final answer is rejected");
    check(roundtrip, "tokenizer encode/decode round-trips");
    check(bound, "sft_max_len bounds every problem's length");
    const char *p = "Q:47+38-19+6=";
    check(arith_verify(p, "47+38=85,85-19=66,66+6=72 A:72") == 1.0, "the README example verifies");
    check(arith_verify(p, "A:72") == 1.0, "only the final answer is judged");
    check(arith_verify(p, "A:72 A:71") == 0.0, "the last A: counts");
    check(arith_verify(p, "A:72,") == 0.0, "trailing text after the answer is rejected");
    check(arith_verify(p, "72") == 0.0, "no A: marker is rejected");
    check(arith_verify(p, "A:") == 0.0 && arith_verify(p, "A:-") == 0.0, "empty answers rejected");
    check(arith_verify("Q:5-9=", "A:-4") == 1.0, "negative answers");
    check(arith_verify("Q:5-9", "A:-4") == 0.0 && arith_verify("garbage", "A:1") == 0.0,
          "malformed prompts score 0");
    check(chartok_encode("Q:1?", ids, 10) == -1, "characters outside the alphabet are refused");
    int a1[4] = {CHARTOK_BOS, 4, CHARTOK_EOS, 5};
    chartok_decode(a1, 4, text, sizeof text);
    check(strcmp(text, "1") == 0, "decode skips bos and stops at eos");
    return test_summary();
}
