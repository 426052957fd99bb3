/* The math answer verifier: every labelled pair of tests/fixtures/verify_pairs.tsv must get
 * its expected outcome (a FAIL line shows the extraction and both normalised forms), the
 * extraction rules must pick the right answer (nested braces, last box wins, rule order,
 * nothing found), a few normalisations are pinned down, and random bytes, deep nesting,
 * unterminated boxes and oversized answers must come back without a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testutil.h"
#include "../engine/math_verify.h"

static const char *PAIRS = "tests/fixtures/verify_pairs.tsv";

static void test_pairs(void) {
    FILE *f = fopen(PAIRS, "r");
    REQUIRE(f, "open %s (run from the repository root)", PAIRS);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, pairs = 0, ok = 0, ones = 0;
    static char x[MATH_ANSWER_MAX], gn[MATH_ANSWER_MAX], rn[MATH_ANSWER_MAX];
    static char g[MATH_ANSWER_MAX];
    while ((got = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0 || line[0] == '#') continue;
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!EXPECT(t1 && t2 && (line[0] == '0' || line[0] == '1') && t1 == line + 1,
                    "%s:%d: expected '0|1 TAB gold TAB response'", PAIRS, lineno))
            continue;
        *t1 = *t2 = 0;
        const char *gold = t1 + 1, *resp = t2 + 1;
        int want = line[0] == '1';
        double out = math_verify(gold, resp);
        int rule = math_extract(resp, x, sizeof x);
        math_gold_answer(gold, 0, g, sizeof g);
        math_normalize(g, gn, sizeof gn);
        math_normalize(x, rn, sizeof rn);
        pairs++, ones += want;
        if ((out == 1.0) == want) {
            ok++;
        } else {
            printf("FAIL %s:%d: expected %d, got %g: gold '%s' -> '%s'; response '%s' -> %s '%s' "
                   "-> '%s'\n",
                   PAIRS, lineno, want, out, gold, gn, resp, math_rule_name(rule), x, rn);
        }
    }
    free(line);
    fclose(f);
    printf("pairs: %d of %d as labelled (%d equal, %d not equal)\n", ok, pairs, ones, pairs - ones);
    EXPECT(pairs >= 150, "the table has at least 150 pairs (%d)", pairs);
    EXPECT(ok == pairs, "every pair as labelled (%d failed)", pairs - ok);
}

static void expect_extract(const char *resp, int want_rule, const char *want) {
    char out[256];
    int rule = math_extract(resp, out, sizeof out);
    EXPECT(rule == want_rule && !strcmp(out, want), "extract '%s' -> %s '%s' (expected %s '%s')",
           resp, math_rule_name(rule), out, math_rule_name(want_rule), want);
}

static void test_extract(void) {
    expect_extract("so $\\boxed{\\frac{1}{2}}$.", MATH_RULE_BOXED, "\\frac{1}{2}");
    expect_extract("\\boxed{\\left\\{ {a}, {b} \\right\\}}", MATH_RULE_BOXED,
                   "\\left\\{ {a}, {b} \\right\\}");
    expect_extract("\\boxed{1} then \\boxed{2} finally \\boxed{3}", MATH_RULE_BOXED, "3");
    expect_extract("\\boxed{\\boxed{7}} and \\boxed{8}", MATH_RULE_BOXED, "8");
    expect_extract("\\boxed{9} and \\boxed{\\boxed{7}}", MATH_RULE_BOXED, "\\boxed{7}");
    expect_extract("\\fbox{12}", MATH_RULE_FBOX, "12");
    expect_extract("\\boxed{1} \\fbox{2}", MATH_RULE_FBOX, "2");
    expect_extract("\\boxed 5$", MATH_RULE_BOXED, "5");
    expect_extract("x \\boxed{5} y \\boxed{6", MATH_RULE_BOXED, "5");
    expect_extract("\\boxed{ \\boxed{5}", MATH_RULE_BOXED, "5");
    expect_extract("\\boxedfoo{3}", MATH_RULE_NONE, "");
    expect_extract("She has 3+4=7.\n#### 7\n", MATH_RULE_HASH, "7");
    expect_extract("#### 5\n#### 1,234", MATH_RULE_HASH, "1,234");
    expect_extract("#### 5\n####\n", MATH_RULE_HASH, "5");
    expect_extract("The answer is 3. Then the answer is 4.", MATH_RULE_ANSWER_IS, "4");
    expect_extract("THE ANSWER IS: $\\frac{1}{2}$. Done.", MATH_RULE_ANSWER_IS, "$\\frac{1}{2}$");
    expect_extract("The final answer is 3.5 cm.\nNext", MATH_RULE_ANSWER_IS, "3.5 cm");
    expect_extract("The answer isn't clear.", MATH_RULE_NONE, "");
    expect_extract("the answer is \\boxed{4}, not #### 5", MATH_RULE_BOXED, "4");
    expect_extract("the answer is 6 #### 5", MATH_RULE_HASH, "5");
    expect_extract("no answer here", MATH_RULE_NONE, "");
    expect_extract("", MATH_RULE_NONE, "");
    expect_extract("\\boxed{", MATH_RULE_NONE, "");
    EXPECT(math_extract(NULL, NULL, 0) == MATH_RULE_NONE, "NULL response, no buffer");
    char small[4];
    int rule = math_extract("\\boxed{123456}", small, sizeof small);
    EXPECT(rule == MATH_RULE_BOXED && !strcmp(small, "123"), "cut to the buffer: '%s'", small);
    EXPECT(math_verify("5", "I do not know") == 0.0, "no answer scores 0");
    EXPECT(math_verify("Step 1 <<2*3=6>>6.\n#### 6", "#### 6") == 1.0, "GSM8K gold solution");
    EXPECT(math_verify("so $\\boxed{\\frac{1}{2}}$", "The answer is 0.5.") == 1.0,
           "MATH gold solution");
}

static void expect_norm(const char *in, const char *want) {
    char out[256];
    math_normalize(in, out, sizeof out);
    EXPECT(!strcmp(out, want), "normalize '%s' -> '%s' (expected '%s')", in, out, want);
}

static void test_normalize(void) {
    expect_norm("$\\dfrac{3}{4}$", "\\frac{3}{4}");
    expect_norm("\\frac12", "\\frac{1}{2}");
    expect_norm("\\frac1{x}", "\\frac{1}{x}");
    expect_norm("\\sqrt 2", "\\sqrt{2}");
    expect_norm("\\(\\left( 1, 2 \\right)\\)", "(1,2)");
    expect_norm("\\text{(C)}", "(C)");
    expect_norm("\\$1,234.50", "1234.5");
    expect_norm("1, 234", "1,234");
    expect_norm("1,23", "1,23");
    expect_norm("3.0", "3");
    expect_norm("2.50", "2.5");
    expect_norm("50\\%", "50");
    expect_norm("30^\\circ", "30");
    expect_norm("30^{\\circ}", "30");
    expect_norm("5 \\text{ cm}", "5");
    expect_norm("12 dollars.", "12");
    expect_norm("x = 5", "5");
    expect_norm("2x", "2x");
    expect_norm("x^2 + 1", "x^2+1");
    expect_norm("\\pi r^2", "\\pi r^2");
    expect_norm("\\!1\\,000\\;", "1000");
    expect_norm("\xe2\x88\x92"
                "7",
                "-7");
    EXPECT(math_equal("1,000", "1000") && !math_equal("1,000", "1.000"),
           "1,000 is a thousand, 1.000 is one");
    EXPECT(math_equal("50\\%", "50") && !math_equal("50\\%", "0.5"), "x%% equals x");
    EXPECT(!math_equal("1, 2", "2, 1"), "lists are ordered");
    EXPECT(math_equal("10000000000000000001/10", "1000000000000000000.1") == 1,
           "huge rationals compare (as doubles past 18 digits)");
    EXPECT(!math_equal("\\frac{1}{0}", "\\frac{2}{0}"), "division by zero is no value");
    EXPECT(!math_equal("", ""), "two empty answers are not a match");
}

/* Random strings over the characters LaTeX answers are made of, and hand-made nasties. */
static void test_robust(void) {
    static const char alphabet[] = "\\{}()[]$^_0123456789.,-+*/ !%#boxedfracsqrtpilefthg\t\n";
    static char buf[3 * MATH_ANSWER_MAX], out[MATH_ANSWER_MAX];
    xorshift_seed(0x9e3779b97f4a7c15ull);
    int n_cases = 0;
    for (int t = 0; t < 4000; t++) {
        size_t len = xorshift_next() % (t < 3000 ? 64 : 2 * MATH_ANSWER_MAX);
        for (size_t k = 0; k < len; k++) {
            uint64_t r = xorshift_next();
            buf[k] = r % 4 == 0 ? (char)(1 + (r >> 8) % 255)
                                : alphabet[(r >> 8) % (sizeof alphabet - 1)];
        }
        buf[len] = 0;
        size_t half = len / 2;
        char save = buf[half];
        math_extract(buf, out, sizeof out);
        math_normalize(buf, out, sizeof out);
        buf[half] = 0;
        double v = math_verify(buf, buf + half + 1 <= buf + len ? buf + half + 1 : "");
        buf[half] = save;
        (void)math_equal(buf, out);
        n_cases += v == 0.0 || v == 1.0;
    }
    EXPECT(n_cases == 4000, "4000 random strings verified without a crash");

    /* deep nesting of every kind the passes and the evaluator recurse on */
    static const char *const units[] = {"{",      "(",      "\\boxed{", "\\frac{", "\\sqrt{", "-",
                                        "\\sqrt", "\\frac", "2^",       "(1,",     "\\text{", "$"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t k = 0, ul = strlen(units[u]);
        while (k + ul < sizeof buf - 1) memcpy(buf + k, units[u], ul), k += ul;
        buf[k] = 0;
        math_extract(buf, out, sizeof out);
        math_normalize(buf, out, sizeof out);
        double v = math_verify(buf, buf);
        math_equal(buf, "1");
        EXPECT(v == 0.0 || v == 1.0, "deep '%s' x %zu", units[u], k / ul);
    }
    /* balanced deep nesting: "((((1))))" and "\boxed{{{...1...}}}" */
    size_t depth = MATH_ANSWER_MAX;
    memset(buf, '(', depth);
    buf[depth] = '1';
    memset(buf + depth + 1, ')', depth);
    buf[2 * depth + 1] = 0;
    EXPECT(!math_equal(buf, "1"), "nesting past the evaluator's depth is no value");
    EXPECT(math_equal("((((((((1))))))))", "1"), "moderate nesting evaluates");
    strcpy(buf, "\\boxed{");
    size_t k = strlen(buf);
    for (size_t d = 0; d < 2000; d++) buf[k++] = '{';
    buf[k++] = '7';
    for (size_t d = 0; d < 2001; d++) buf[k++] = '}';
    buf[k] = 0;
    EXPECT(math_extract(buf, out, sizeof out) == MATH_RULE_BOXED, "deeply braced box found");
    math_normalize(buf, out, sizeof out);
    EXPECT(math_verify("7", buf) == 1.0 || math_verify("7", buf) == 0.0, "deep box verified");
    /* long runs that a naive search would make quadratic */
    size_t big = 2u << 20;
    char *huge = malloc(big + 1);
    REQUIRE(huge, "malloc");
    static const char *const runs[] = {"#", "\\boxed{", "answer is ", "{"};
    for (size_t u = 0; u < sizeof runs / sizeof runs[0]; u++) {
        size_t rl = strlen(runs[u]), m = 0;
        while (m + rl < big) memcpy(huge + m, runs[u], rl), m += rl;
        huge[m] = 0;
        int r = math_extract(huge, out, sizeof out);
        EXPECT(r >= 0, "2 MiB of '%s' -> %s", runs[u], math_rule_name(r));
    }
    free(huge);
}

int main(void) {
    test_quiet = 1;
    test_pairs();
    test_extract();
    test_normalize();
    test_robust();
    return test_summary();
}
