/* The arithmetic task: worked solutions are right, the verifier accepts exactly the right
 * final answer, the tokenizer round-trips, and the length bound holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../engine/sft.h"
#include "../engine/task_arith.h"
#include "../engine/tokenizer_char.h"
#include "testutil.h"

/* Step results "x<op>y=z" of a worked solution, in order; returns how many. */
static int step_results(const char *sol, long *z, int cap) {
    int n = 0;
    for (const char *s = strchr(sol, '='); s && n < cap; s = strchr(s + 1, '='))
        z[n++] = strtol(s + 1, NULL, 10);
    return n;
}

/* The flawed teacher (slip > 0) changes only solutions: the same prompts, every step with a
 * negative result loses its sign at slip 1 and none does at slip 0, the chain goes on from the
 * written value, and about a share `slip` of the negative steps slip. */
static void check_slips(void) {
    ArithParams exact = {2, 4, 9, 0.0}, always = {2, 4, 9, 1.0}, half = {2, 4, 9, 0.5};
    int same_prompt = 1, none_neg = 1, chain_ok = 1, exact_neg = 0, slipped = 0, half_neg = 0;
    for (int i = 0; i < 4000; i++) {
        char p0[ARITH_MAX_TEXT], s0[ARITH_MAX_TEXT], p1[ARITH_MAX_TEXT], s1[ARITH_MAX_TEXT];
        long a0, a1, z0[8], z1[8];
        arith_problem(&exact, 7, i, p0, s0, &a0);
        arith_problem(&always, 7, i, p1, s1, &a1);
        same_prompt &= strcmp(p0, p1) == 0;
        int n0 = step_results(s0, z0, 8), n1 = step_results(s1, z1, 8);
        for (int k = 0; k < n0; k++) exact_neg += z0[k] < 0;
        for (int k = 0; k < n1; k++) none_neg &= z1[k] >= 0;
        chain_ok &= n1 > 0 && a1 == z1[n1 - 1] && strtol(strrchr(s1, ':') + 1, NULL, 10) == a1;
        arith_problem(&half, 7, i, p1, s1, &a1);
        n1 = step_results(s1, z1, 8);
        /* up to the first slip both chains agree; count slips at the first negative step */
        for (int k = 0; k < n0 && k < n1; k++) {
            if (z0[k] >= 0) continue;
            half_neg++;
            slipped += z1[k] == -z0[k];
            break;
        }
    }
    check(same_prompt, "the teacher's slips leave the prompts unchanged");
    check(exact_neg > 500, "slip 0 writes negative step results (%d)", exact_neg);
    check(none_neg && chain_ok, "slip 1 drops every minus sign and the chain follows it");
    double share = (double)slipped / half_neg;
    check(share > 0.45 && share < 0.55, "slip 0.5 drops %.3f of the first negative signs", share);
}

int main(void) {
    ArithParams ap = {2, 6, 999, 0.0};
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
    check_slips();
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
