/* The outcome verifier for math answers (GSM8K, MATH; issue 6): pulls the final answer out
 * of a model response, normalises LaTeX and plain-text forms of it, and decides whether it
 * equals the gold answer, numerically where both sides evaluate and as normalised strings
 * otherwise.
 *
 * Decisions on ambiguous forms (each one checked by tests/fixtures/verify_pairs.tsv):
 * - Extraction order: the last \boxed{} or \fbox{} (the outermost one, nested braces kept);
 *   else the last "#### X" line (GSM8K); else the last "answer is X" (any case, so "The
 *   final answer is" counts too) up to the end of its sentence. An unterminated \boxed{ is
 *   skipped. No rule matching means no answer, and the outcome is 0.
 * - "x%" equals x, not x/100 (GSM8K convention): "50%" = 50, "50%" != 0.5.
 * - A comma followed by exactly three digits inside a number separates thousands:
 *   "1,234" = 1234, "1,000" = 1000; a dot is always a decimal point, so "1.000" = 1 and
 *   "1,000" != "1.000". "1, 2" and "1,23" stay lists.
 * - Lists and tuples ("1, 2", "(3, -2)", "\{1,2\}") are compared element by element, in
 *   order ("1, 2" != "2, 1"); intervals likewise, with the bracket types compared too
 *   ("(1, 2]" != "(1, 2)").
 * - Words after a plain number are units and dropped ("5 cm", "12 dollars", "5\text{ m}"),
 *   as are "$", "\$", degrees ("^\circ") and "\text{}"-like wrappers. A lone letter glued
 *   to a number ("2x") is a variable, not a unit.
 * - A number directly followed by \frac of two integers is a mixed number:
 *   "3\frac{1}{2}" = 3.5 (and "3 1/2" likewise); any other juxtaposition multiplies.
 * - "x = 5" compares as "5", and "x \in [1, 2)" as "[1, 2)", when the left side is one name.
 * - Two rationals (integers, decimals, fractions) compare exactly; anything involving \pi,
 *   roots or non-integer powers compares as doubles within 1e-9 relative, so "\pi" != 3.14
 *   and \frac{1}{3} != 0.3333 (rounded answers do not count).
 * - Expressions in single-letter variables are compared by evaluating both at two fixed
 *   points ("x^2+2x+1" = "(x+1)^2"); both sides must use the same variables.
 * - Answers made only of words compare without regard to case ("Yes" = "yes").
 * - Degrees and radians are not converted ("30^\circ" = 30, != \frac{\pi}{6}).
 * Every function takes any byte string: inputs past MATH_ANSWER_MAX bytes are cut, and
 * nesting deeper than a fixed limit fails the evaluation rather than the stack. */
#pragma once

#include <stddef.h>

/* The extraction rules, as returned by math_extract. */
enum {
    MATH_RULE_NONE = 0,
    MATH_RULE_BOXED = 1,
    MATH_RULE_FBOX = 2,
    MATH_RULE_HASH = 3,
    MATH_RULE_ANSWER_IS = 4
};

/* The longest answer that is normalised or compared; longer ones are cut. */
#define MATH_ANSWER_MAX 4096

/* Writes the final answer of RESPONSE to out (n bytes, always terminated; cut if longer)
 * and returns the rule that found it, or MATH_RULE_NONE with out = "". */
int math_extract(const char *response, char *out, size_t n);
/* "boxed", "fbox", "hash", "answer_is" or "none". */
const char *math_rule_name(int rule);
/* The final answer of a gold field: the "####" part of a GSM8K solution, the last \boxed{}
 * of a MATH solution (prefer_hash picks which is looked for first), else GOLD itself. */
void math_gold_answer(const char *gold, int prefer_hash, char *out, size_t n);
/* The canonical string form of one answer (see the decisions above). */
void math_normalize(const char *in, char *out, size_t n);
/* 1 when the two answers are equal, else 0. */
int math_equal(const char *a, const char *b);
/* 1.0 when RESPONSE's extracted answer equals GOLD's final answer, else 0.0. */
double math_verify(const char *gold, const char *response);
