/* The math answer verifier: extraction of the final answer from a response, a chain of
 * string passes that bring LaTeX and plain-text answers to one canonical form, and a small
 * recursive-descent evaluator (exact rationals where it can, doubles otherwise) behind the
 * numeric comparison. The decisions on ambiguous forms are listed in math_verify.h. All
 * work happens in fixed buffers of MATH_ANSWER_MAX bytes, so no input can overrun one. */
#include "math_verify.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CAP       MATH_ANSWER_MAX
#define MAX_DEPTH 48 /* evaluator and shorthand nesting */
#define LIST_MAX  6  /* nesting of lists inside lists */
#define PI_VALUE  3.14159265358979323846

typedef struct {
    char s[CAP];
    size_t n;
} Buf;

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void b_clear(Buf *b) {
    b->n = 0;
    b->s[0] = 0;
}
static void b_putc(Buf *b, char c) {
    if (b->n + 1 < CAP) {
        b->s[b->n++] = c;
        b->s[b->n] = 0;
    }
}
static void b_putn(Buf *b, const char *s, size_t k) {
    for (size_t i = 0; i < k; i++) b_putc(b, s[i]);
}
static void b_puts(Buf *b, const char *s) {
    b_putn(b, s, strlen(s));
}
static void b_set(Buf *b, const char *s, size_t k) {
    b_clear(b);
    b_putn(b, s, k);
}

static void copy_out(const char *s, size_t len, char *out, size_t n) {
    if (!out || n == 0) return;
    if (len > n - 1) len = n - 1;
    memcpy(out, s, len);
    out[len] = 0;
}

/* Index of the '}' matching the '{' at s[a], looking no further than s[end); -1 if none.
 * Escaped braces (\{ \}) are literal characters, not grouping. */
static long match_brace(const char *s, size_t a, size_t end) {
    int depth = 0;
    for (size_t i = a; i < end && s[i]; i++) {
        if (s[i] == '\\' && i + 1 < end && (s[i + 1] == '{' || s[i + 1] == '}')) {
            i++;
        } else if (s[i] == '{') {
            depth++;
        } else if (s[i] == '}') {
            if (--depth == 0) return (long)i;
        }
    }
    return -1;
}

/* ---- extraction ---- */

const char *math_rule_name(int rule) {
    switch (rule) {
    case MATH_RULE_BOXED:
        return "boxed";
    case MATH_RULE_FBOX:
        return "fbox";
    case MATH_RULE_HASH:
        return "hash";
    case MATH_RULE_ANSWER_IS:
        return "answer_is";
    default:
        return "none";
    }
}

static void trim_range(const char *s, size_t *a, size_t *b) {
    while (*a < *b && is_space(s[*a])) (*a)++;
    while (*b > *a && is_space(s[*b - 1])) (*b)--;
}

/* The last outermost \boxed{...} / \fbox{...} (or "\boxed X" without braces). The box
 * that closes last is always an outermost one (a box around it would close later), so one
 * pass with a depth counter finds it, however many unterminated boxes come before. */
static int find_boxed(const char *r, size_t *a, size_t *b) {
    enum { STACK = 64 };
    size_t open_at[STACK]; /* content start of each open box */
    long open_depth[STACK];
    int open_rule[STACK], top = 0, rule = MATH_RULE_NONE;
    long depth = 0;
    for (size_t i = 0; r[i];) {
        char c = r[i];
        if (c == '\\' && (r[i + 1] == '{' || r[i + 1] == '}')) {
            i += 2;
            continue;
        }
        if (c == '{') {
            depth++, i++;
            continue;
        }
        if (c == '}') {
            if (top > 0 && open_depth[top - 1] == depth) {
                top--;
                size_t s0 = open_at[top], s1 = i;
                trim_range(r, &s0, &s1);
                *a = s0, *b = s1, rule = open_rule[top];
            }
            if (depth > 0) depth--;
            i++;
            continue;
        }
        int which = MATH_RULE_NONE;
        size_t k = 0;
        if (c == '\\' && !strncmp(r + i, "\\boxed", 6))
            k = 6, which = MATH_RULE_BOXED;
        else if (c == '\\' && !strncmp(r + i, "\\fbox", 5))
            k = 5, which = MATH_RULE_FBOX;
        if (!which || is_alpha(r[i + k])) { /* not a box, or another command (\boxedfoo) */
            i += which ? k : 1;
            continue;
        }
        size_t q = i + k;
        while (r[q] == ' ') q++;
        if (r[q] == '{') {
            depth++;
            if (top < STACK) {
                open_at[top] = q + 1, open_depth[top] = depth, open_rule[top] = which;
                top++;
            }
            i = q + 1;
        } else if (r[q] && r[q] != '$' && r[q] != '}' && !is_space(r[q])) {
            size_t e = q;
            while (r[e] && !is_space(r[e]) && r[e] != '$' && r[e] != '{' && r[e] != '}') e++;
            *a = q, *b = e, rule = which;
            i = e;
        } else {
            i = q;
        }
    }
    return rule;
}

/* The last "#### X" with something after it on its line. */
static int find_hash(const char *r, size_t *a, size_t *b) {
    size_t len = strlen(r);
    for (size_t i = len >= 4 ? len - 4 + 1 : 0; i-- > 0;) {
        if (strncmp(r + i, "####", 4)) continue;
        size_t s0 = i + 4;
        while (r[s0] == '#') s0++;
        size_t s1 = s0;
        while (r[s1] && r[s1] != '\n') s1++;
        trim_range(r, &s0, &s1);
        if (s1 > s0) {
            *a = s0, *b = s1;
            return MATH_RULE_HASH;
        }
        while (i > 0 && r[i - 1] == '#') i--; /* the rest of this run ends the same way */
    }
    return MATH_RULE_NONE;
}

/* The last "answer is X" (any case), X running to the end of its sentence: a newline, or
 * '.', '!' or '?' followed by a space or the end, outside $...$ and braces. */
static int find_answer_is(const char *r, size_t *a, size_t *b) {
    static const char key[] = "answer is";
    const size_t klen = sizeof key - 1;
    size_t len = strlen(r);
    for (size_t i = len >= klen ? len - klen + 1 : 0; i-- > 0;) {
        if (strncasecmp(r + i, key, klen) || is_alpha(r[i + klen])) continue;
        if (i > 0 && is_alpha(r[i - 1])) continue;
        size_t s0 = i + klen;
        while (r[s0] == ' ' || r[s0] == ':') s0++;
        size_t s1 = s0;
        int depth = 0, math = 0;
        for (; r[s1] && r[s1] != '\n'; s1++) {
            char c = r[s1];
            if (c == '\\' && r[s1 + 1]) {
                s1++;
                continue;
            }
            if (c == '$') math = !math;
            if (c == '{') depth++;
            if (c == '}' && depth > 0) depth--;
            if ((c == '.' || c == '!' || c == '?') && !math && depth == 0 &&
                (r[s1 + 1] == 0 || is_space(r[s1 + 1])))
                break;
        }
        trim_range(r, &s0, &s1);
        if (s1 > s0) {
            *a = s0, *b = s1;
            return MATH_RULE_ANSWER_IS;
        }
    }
    return MATH_RULE_NONE;
}

int math_extract(const char *response, char *out, size_t n) {
    copy_out("", 0, out, n);
    if (!response) return MATH_RULE_NONE;
    size_t a = 0, b = 0;
    int rule = find_boxed(response, &a, &b);
    if (!rule) rule = find_hash(response, &a, &b);
    if (!rule) rule = find_answer_is(response, &a, &b);
    if (rule) copy_out(response + a, b - a, out, n);
    return rule;
}

void math_gold_answer(const char *gold, int prefer_hash, char *out, size_t n) {
    copy_out("", 0, out, n);
    if (!gold) return;
    size_t a = 0, b = 0;
    int rule = prefer_hash ? find_hash(gold, &a, &b) : find_boxed(gold, &a, &b);
    if (!rule) rule = prefer_hash ? find_boxed(gold, &a, &b) : find_hash(gold, &a, &b);
    if (!rule) {
        a = 0, b = strlen(gold);
        trim_range(gold, &a, &b);
    }
    copy_out(gold + a, b - a, out, n);
}

/* ---- normalisation passes (each reads a string and writes a Buf) ---- */

/* Unicode forms models write for LaTeX: minus, degree, times, pi, root, thin spaces. */
static void pass_unicode(const char *in, Buf *out) {
    b_clear(out);
    for (size_t i = 0; in[i]; i++) {
        const char *p = in + i;
        if (!strncmp(p, "\xe2\x88\x92", 3)) { /* U+2212 minus */
            b_putc(out, '-'), i += 2;
        } else if (!strncmp(p, "\xc2\xb0", 2)) { /* degree sign */
            i += 1;
        } else if (!strncmp(p, "\xc3\x97", 2)) { /* multiplication sign */
            b_puts(out, "\\times "), i += 1;
        } else if (!strncmp(p, "\xcf\x80", 2)) { /* pi */
            b_puts(out, "\\pi "), i += 1;
        } else if (!strncmp(p, "\xe2\x88\x9a", 3)) { /* square root */
            b_puts(out, "\\sqrt"), i += 2;
        } else if (!strncmp(p, "\xe2\x80\x89", 3) || !strncmp(p, "\xc2\xa0", 2)) {
            b_putc(out, ' '), i += p[0] == '\xc2' ? 1 : 2;
        } else {
            b_putc(out, is_space(*p) ? ' ' : *p);
        }
    }
}

/* Strips spaces, trailing periods, and wrappers around the whole answer: $...$, $$...$$,
 * \(...\), \[...\], \boxed{...}, \fbox{...}; repeated until nothing changes. */
static void strip_wrappers(Buf *b) {
    for (int changed = 1; changed;) {
        changed = 0;
        size_t a = 0, e = b->n;
        trim_range(b->s, &a, &e);
        while (e > a && b->s[e - 1] == '.' && !(e >= a + 2 && b->s[e - 2] == '\\')) {
            e--;
            trim_range(b->s, &a, &e);
        }
        const char *s = b->s + a;
        size_t len = e - a;
        size_t cut_l = 0, cut_r = 0;
        if (len >= 4 && !strncmp(s, "$$", 2) && !strncmp(s + len - 2, "$$", 2)) {
            cut_l = cut_r = 2;
        } else if (len >= 2 && s[0] == '$' && s[len - 1] == '$') {
            cut_l = cut_r = 1;
        } else if (len >= 4 && (!strncmp(s, "\\(", 2) && !strncmp(s + len - 2, "\\)", 2))) {
            cut_l = cut_r = 2;
        } else if (len >= 4 && (!strncmp(s, "\\[", 2) && !strncmp(s + len - 2, "\\]", 2))) {
            cut_l = cut_r = 2;
        } else {
            static const char *const boxes[] = {"\\boxed", "\\fbox"};
            for (int k = 0; k < 2 && !cut_l; k++) {
                size_t bl = strlen(boxes[k]);
                if (len > bl && !strncmp(s, boxes[k], bl) && s[bl] == '{' &&
                    match_brace(s, bl, len) == (long)len - 1)
                    cut_l = bl + 1, cut_r = 1;
            }
        }
        if (cut_l || a > 0 || e < b->n) {
            char tmp[CAP];
            size_t k = len - cut_l - cut_r;
            memcpy(tmp, s + cut_l, k);
            b_set(b, tmp, k);
            changed = cut_l > 0;
        }
    }
}

static int cmd_is(const char *name, size_t len, const char *const *list) {
    for (; *list; list++)
        if (strlen(*list) == len && !strncmp(name, *list, len)) return 1;
    return 0;
}

/* Whether the group in[q..m] of the wrapper \NAME is a unit at the end of an answer: plain
 * words inside \text{}, \mbox{} or \mathrm{}, after something, and followed at most by a
 * power ("^2") and spaces. */
static int unit_text(const char *in, const char *name, size_t nl, size_t q, size_t m,
                     const Buf *out) {
    static const char *const text[] = {"text", "textrm", "textnormal", "textit",
                                       "mbox", "hbox",   "mathrm",     NULL};
    if (!cmd_is(name, nl, text)) return 0;
    int before = 0, letters = 0;
    for (size_t k = 0; k < out->n; k++) before |= out->s[k] != ' ';
    for (size_t k = q + 1; k < m; k++) {
        if (is_alpha(in[k]))
            letters++;
        else if (in[k] != ' ' && in[k] != '.')
            return 0;
    }
    if (!before || !letters) return 0;
    size_t k = m + 1;
    if (in[k] == '^') {
        k++;
        int brace = in[k] == '{';
        k += brace;
        if (!is_digit(in[k])) return 0;
        while (is_digit(in[k])) k++;
        if (brace && in[k++] != '}') return 0;
    }
    while (in[k] == ' ' || in[k] == '.') k++;
    return in[k] == 0;
}

/* LaTeX commands: \text{X}-like wrappers become X, sizing and spacing commands go,
 * \dfrac/\tfrac become \frac, degree marks, percent and dollar signs go. */
static void pass_commands(const char *in, Buf *out) {
    static const char *const unwrap[] = {
        "text",         "textbf",     "textit", "textrm",  "textnormal", "textsf",    "texttt",
        "mathrm",       "mathbf",     "mathit", "mathsf",  "mathtt",     "mbox",      "hbox",
        "operatorname", "boldsymbol", "mathbb", "mathcal", "emph",       "underline", NULL};
    static const char *const drop[] = {"left",  "right",        "bigl", "bigr",   "big",
                                       "Big",   "bigg",         "Bigg", "Bigl",   "Bigr",
                                       "biggl", "displaystyle", "circ", "degree", NULL};
    static const char *const space[] = {"quad", "qquad", NULL};
    size_t len = strlen(in);
    unsigned char del[CAP]; /* closing braces of unwrapped groups */
    memset(del, 0, len + 1 < CAP ? len + 1 : CAP);
    b_clear(out);
    for (size_t i = 0; i < len;) {
        if (i < CAP && del[i]) {
            i++;
            continue;
        }
        char c = in[i];
        if (c == '^' && (!strncmp(in + i + 1, "\\circ", 5) && !is_alpha(in[i + 6]))) {
            i += 6;
            continue;
        }
        if (c == '^' && !strncmp(in + i + 1, "{\\circ}", 7)) {
            i += 8;
            continue;
        }
        if (c == '%' || c == '$') {
            i++;
            continue;
        }
        if (c == '{' && !strncmp(in + i, "{,}", 3)) {
            b_putc(out, ',');
            i += 3;
            continue;
        }
        if (c != '\\') {
            b_putc(out, c);
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < len && is_alpha(in[j])) j++;
        const char *name = in + i + 1;
        size_t nl = j - i - 1;
        if (nl == 0) {
            char s = in[i + 1];
            if (s == ',' || s == '!' || s == ';' || s == ':' || s == ' ' || s == '\\') {
                b_putc(out, ' ');
            } else if (s == '%' || s == '$') {
                /* dropped */
            } else if (s == '{' || s == '}') {
                b_putc(out, s);
            } else if (s) {
                b_putc(out, '\\'), b_putc(out, s);
            }
            i += s ? 2 : 1;
            continue;
        }
        if (cmd_is(name, nl, unwrap)) {
            size_t q = j;
            while (in[q] == ' ') q++;
            long m = in[q] == '{' ? match_brace(in, q, len) : -1;
            if (m >= 0 && unit_text(in, name, nl, q, (size_t)m, out)) {
                i = len; /* a unit at the end: "16\pi\text{ cm}^2" */
            } else if (m >= 0 && m < CAP) {
                del[m] = 1;
                b_putc(out, ' ');
                i = q + 1;
            } else {
                i = j;
            }
        } else if (cmd_is(name, nl, drop)) {
            i = j;
            if ((nl == 4 || nl == 5) && in[i] == '.' &&
                (!strncmp(name, "left", 4) || !strncmp(name, "right", 5)))
                i++;
        } else if (cmd_is(name, nl, space)) {
            b_putc(out, ' ');
            i = j;
        } else if ((nl == 5 && (!strncmp(name, "dfrac", 5) || !strncmp(name, "tfrac", 5)))) {
            b_puts(out, "\\frac");
            i = j;
        } else if (nl == 6 && (!strncmp(name, "dbinom", 6) || !strncmp(name, "tbinom", 6))) {
            b_puts(out, "\\binom");
            i = j;
        } else {
            b_putn(out, in + i, j - i);
            i = j;
        }
    }
}

/* "x = 5" -> "5" and "x \in [1, 2)" -> "[1, 2)" when the left side is one name (a letter or
 * a command, with an optional subscript) and there is no other '='. */
static void strip_lhs(Buf *b) {
    const char *s = b->s;
    size_t i = 0;
    while (s[i] == ' ') i++;
    if (is_alpha(s[i])) {
        i++;
    } else if (s[i] == '\\' && is_alpha(s[i + 1])) {
        i++;
        while (is_alpha(s[i])) i++;
    } else {
        return;
    }
    if (s[i] == '_') {
        i++;
        if (s[i] == '{') {
            long m = match_brace(s, i, b->n);
            if (m < 0) return;
            i = (size_t)m + 1;
        } else if (is_alpha(s[i]) || is_digit(s[i])) {
            i++;
        } else {
            return;
        }
    }
    while (s[i] == ' ') i++;
    if (!strncmp(s + i, "\\in", 3) && !is_alpha(s[i + 3]) && !strchr(s, '='))
        i += 3; /* "x \in [1, 2)" */
    else if (s[i] == '=' && !strchr(s + i + 1, '='))
        i++;
    else
        return;
    while (s[i] == ' ') i++;
    if (!s[i]) return;
    char tmp[CAP];
    size_t k = b->n - i;
    memcpy(tmp, s + i, k);
    b_set(b, tmp, k);
}

/* Words after a plain number are units: "5 cm", "12 dollars", "3 m^2" -> the number. */
static void strip_units(Buf *b) {
    static const char *const not_units[] = {"and", "or", "to", "pi", "i", "e", NULL};
    const char *s = b->s;
    size_t i = 0;
    while (s[i] == ' ') i++;
    if (s[i] == '-' || s[i] == '+') i++;
    if (!is_digit(s[i]) && !(s[i] == '.' && is_digit(s[i + 1]))) return;
    while (is_digit(s[i]) || s[i] == ',' || (s[i] == '.' && is_digit(s[i + 1]))) i++;
    size_t num_end = i, q = i;
    while (s[q] == ' ') q++;
    size_t gap = q - num_end;
    if (!is_alpha(s[q])) return;
    size_t w = q;
    while (is_alpha(s[w])) w++;
    if (cmd_is(s + q, w - q, not_units)) return;
    if (gap == 0 && w - q < 2) return; /* "2x": a variable */
    for (size_t k = q; s[k]; k++) {
        char c = s[k];
        if (is_alpha(c) || c == ' ' || c == '.' || c == '/' || c == '-') continue;
        if (c == '^') {
            k++;
            if (s[k] == '{') k++;
            if (!is_digit(s[k])) return;
            while (is_digit(s[k + 1])) k++;
            if (s[k + 1] == '}') k++;
            continue;
        }
        return;
    }
    b->n = num_end;
    b->s[num_end] = 0;
}

/* Thousands separators: 1,234,567 -> 1234567 (groups of exactly three digits). */
static void pass_thousands(const char *in, Buf *out) {
    b_clear(out);
    size_t len = strlen(in);
    for (size_t i = 0; i < len;) {
        int starts =
            is_digit(in[i]) && (i == 0 || (!is_digit(in[i - 1]) && in[i - 1] != '.' &&
                                           !(in[i - 1] == ',' && i >= 2 && is_digit(in[i - 2]))));
        if (!starts) {
            b_putc(out, in[i++]);
            continue;
        }
        size_t j = i;
        while (is_digit(in[j])) j++;
        size_t lead = j - i, groups = 0, e = j;
        if (lead <= 3) {
            while (in[e] == ',' && is_digit(in[e + 1]) && is_digit(in[e + 2]) &&
                   is_digit(in[e + 3]) && !is_digit(in[e + 4])) {
                e += 4;
                groups++;
            }
        }
        if (!groups) e = j;
        for (size_t k = i; k < e; k++)
            if (in[k] != ',') b_putc(out, in[k]);
        i = e;
    }
}

/* Spaces go, except one between a command word and a letter ("\pi r") and one between
 * digits that are not a thousands group ("3 1/2" stays a mixed number). */
static void pass_spaces(const char *in, Buf *out) {
    b_clear(out);
    for (size_t i = 0; in[i];) {
        if (in[i] != ' ') {
            b_putc(out, in[i++]);
            continue;
        }
        size_t j = i;
        while (in[j] == ' ') j++;
        char next = in[j];
        char prev = out->n ? out->s[out->n - 1] : 0;
        if (is_alpha(prev) && is_alpha(next)) {
            size_t k = out->n;
            while (k > 0 && is_alpha(out->s[k - 1])) k--;
            if (k > 0 && out->s[k - 1] == '\\') b_putc(out, ' ');
        } else if (is_digit(prev) && is_digit(next)) {
            int group = is_digit(in[j + 1]) && is_digit(in[j + 2]) && !is_digit(in[j + 3]) &&
                        in[j + 3] != '/';
            if (!group) b_putc(out, ' ');
        }
        i = j;
    }
}

static void shorthand_range(const char *s, size_t a, size_t b, Buf *out, int depth);

/* One argument of \frac or \sqrt starting at s[*i]: a braced group (processed
 * recursively), or a single character or command wrapped in braces. 0 if none. */
static int shorthand_arg(const char *s, size_t *i, size_t b, Buf *out, int depth) {
    size_t p = *i;
    if (p < b && s[p] == ' ') p++;
    if (p >= b) return 0;
    if (s[p] == '{') {
        long m = match_brace(s, p, b);
        if (m < 0) return 0;
        b_putc(out, '{');
        shorthand_range(s, p + 1, (size_t)m, out, depth + 1);
        b_putc(out, '}');
        *i = (size_t)m + 1;
        return 1;
    }
    if (is_digit(s[p]) || is_alpha(s[p])) {
        b_putc(out, '{'), b_putc(out, s[p]), b_putc(out, '}');
        *i = p + 1;
        return 1;
    }
    if (s[p] == '\\' && is_alpha(s[p + 1])) {
        size_t q = p + 1;
        while (q < b && is_alpha(s[q])) q++;
        b_putc(out, '{'), b_putn(out, s + p, q - p), b_putc(out, '}');
        *i = q;
        return 1;
    }
    return 0;
}

/* \frac12 -> \frac{1}{2}, \sqrt2 -> \sqrt{2}, applied inside groups too. */
static void shorthand_range(const char *s, size_t a, size_t b, Buf *out, int depth) {
    if (depth > MAX_DEPTH) {
        b_putn(out, s + a, b - a);
        return;
    }
    for (size_t i = a; i < b;) {
        int frac = !strncmp(s + i, "\\frac", 5) && i + 5 <= b && !is_alpha(s[i + 5]);
        int sqrt = !strncmp(s + i, "\\sqrt", 5) && i + 5 <= b && !is_alpha(s[i + 5]);
        if (!frac && !sqrt) {
            b_putc(out, s[i++]);
            continue;
        }
        b_puts(out, frac ? "\\frac" : "\\sqrt");
        i += 5;
        if (sqrt && i < b && s[i] == '[') {
            while (i < b && s[i] != ']') b_putc(out, s[i++]);
            if (i < b) b_putc(out, s[i++]);
        }
        if (shorthand_arg(s, &i, b, out, depth) && frac) shorthand_arg(s, &i, b, out, depth);
    }
}

/* Decimals: trailing zeros go (2.50 -> 2.5, 3.0 -> 3), ".5" -> "0.5"; a leading '+' goes. */
static void pass_numbers(const char *in, Buf *out) {
    b_clear(out);
    size_t i = 0;
    if (in[0] == '+') i++;
    while (in[i]) {
        int dot_start = in[i] == '.' && is_digit(in[i + 1]) && (i == 0 || !is_digit(in[i - 1]));
        if (!is_digit(in[i]) && !dot_start) {
            b_putc(out, in[i++]);
            continue;
        }
        size_t j = i;
        while (is_digit(in[j])) j++;
        if (in[j] == '.' && is_digit(in[j + 1])) {
            size_t f = j + 1, e = f;
            while (is_digit(in[e])) e++;
            size_t last = e;
            while (last > f && in[last - 1] == '0') last--;
            if (j == i) b_putc(out, '0');
            b_putn(out, in + i, j - i);
            if (last > f) b_putc(out, '.'), b_putn(out, in + f, last - f);
            i = e;
        } else {
            b_putn(out, in + i, j - i);
            i = j;
        }
    }
}

static void normalize_buf(const char *in, Buf *out) {
    Buf tmp;
    char cut[CAP];
    size_t len = 0;
    while (len < CAP - 1 && in[len]) len++;
    memcpy(cut, in, len);
    cut[len] = 0;
    pass_unicode(cut, out);
    strip_wrappers(out);
    pass_commands(out->s, &tmp);
    strip_wrappers(&tmp);
    strip_lhs(&tmp);
    strip_units(&tmp);
    pass_thousands(tmp.s, out);
    pass_spaces(out->s, &tmp);
    b_clear(out);
    shorthand_range(tmp.s, 0, tmp.n, out, 0);
    pass_numbers(out->s, &tmp);
    strip_wrappers(&tmp);
    b_set(out, tmp.s, tmp.n);
}

void math_normalize(const char *in, char *out, size_t n) {
    Buf b;
    normalize_buf(in ? in : "", &b);
    copy_out(b.s, b.n, out, n);
}

/* ---- evaluation ---- */

/* A value: an exact rational p/q (q > 0, reduced) when exact, always its double v. */
typedef struct {
    double v;
    long long p, q;
    int exact;
} Num;

typedef struct {
    const char *s;
    size_t i, n;
    int depth, err;
    uint64_t vars;      /* letters used: bit k for a-z (0..25) and A-Z (26..51) */
    const double *vals; /* (52) the value of each letter */
} Ev;

static long long gcd_ll(long long a, long long b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) {
        long long t = a % b;
        a = b, b = t;
    }
    return a;
}

static Num num_real(double v) {
    return (Num){v, 0, 1, 0};
}

static Num num_rat(long long p, long long q) {
    if (q == 0 || p == LLONG_MIN || q == LLONG_MIN) return num_real((double)p / (double)q);
    if (q < 0) p = -p, q = -q;
    long long g = gcd_ll(p, q);
    if (g > 1) p /= g, q /= g;
    return (Num){(double)p / (double)q, p, q, 1};
}

static Num num_add(Num a, Num b, int sign) {
    if (a.exact && b.exact) {
        long long x, y, bp = sign > 0 ? b.p : -b.p, q, p;
        if (!__builtin_mul_overflow(a.p, b.q, &x) && !__builtin_mul_overflow(bp, a.q, &y) &&
            !__builtin_add_overflow(x, y, &p) && !__builtin_mul_overflow(a.q, b.q, &q))
            return num_rat(p, q);
    }
    return num_real(a.v + sign * b.v);
}

static Num num_mul(Num a, Num b) {
    if (a.exact && b.exact) {
        long long p, q;
        if (!__builtin_mul_overflow(a.p, b.p, &p) && !__builtin_mul_overflow(a.q, b.q, &q))
            return num_rat(p, q);
    }
    return num_real(a.v * b.v);
}

static Num num_div(Ev *e, Num a, Num b) {
    if (b.v == 0) {
        e->err = 1;
        return num_real(0);
    }
    if (a.exact && b.exact) {
        long long p, q;
        if (!__builtin_mul_overflow(a.p, b.q, &p) && !__builtin_mul_overflow(a.q, b.p, &q))
            return num_rat(p, q);
    }
    return num_real(a.v / b.v);
}

static Num num_pow(Ev *e, Num a, Num b) {
    if (a.exact && b.exact && b.q == 1 && b.p >= -64 && b.p <= 64) {
        Num r = num_rat(1, 1);
        long long k = b.p < 0 ? -b.p : b.p;
        for (long long t = 0; t < k && r.exact; t++) r = num_mul(r, a);
        if (r.exact) return b.p < 0 ? num_div(e, num_rat(1, 1), r) : r;
    }
    return num_real(pow(a.v, b.v));
}

static void ev_space(Ev *e) {
    while (e->i < e->n && e->s[e->i] == ' ') e->i++;
}
static char ev_peek(Ev *e) {
    return e->i < e->n ? e->s[e->i] : 0;
}

/* Whether the command at the cursor is \NAME (whole word). */
static int ev_at_cmd(Ev *e, const char *name) {
    size_t k = strlen(name);
    if (e->i + 1 + k > e->n || e->s[e->i] != '\\' || strncmp(e->s + e->i + 1, name, k)) return 0;
    return e->i + 1 + k == e->n || !is_alpha(e->s[e->i + 1 + k]);
}

static Num ev_expr(Ev *e);
static Num ev_unary(Ev *e);

/* A plain decimal literal at the cursor: exact when it has at most 18 digits. */
static Num ev_number(Ev *e) {
    size_t a = e->i, j = a;
    long long p = 0, q = 1;
    int digits = 0, exact = 1;
    while (j < e->n && is_digit(e->s[j])) {
        if (++digits > 18) exact = 0;
        if (exact) p = p * 10 + (e->s[j] - '0');
        j++;
    }
    if (j < e->n && e->s[j] == '.' && j + 1 < e->n && is_digit(e->s[j + 1])) {
        j++;
        while (j < e->n && is_digit(e->s[j])) {
            if (++digits > 18) exact = 0;
            if (exact) p = p * 10 + (e->s[j] - '0'), q *= 10;
            j++;
        }
    }
    if (j == a) {
        e->err = 1;
        return num_real(0);
    }
    char tmp[64];
    size_t k = j - a < sizeof tmp - 1 ? j - a : sizeof tmp - 1;
    memcpy(tmp, e->s + a, k);
    tmp[k] = 0;
    e->i = j;
    return exact ? num_rat(p, q) : num_real(strtod(tmp, NULL));
}

/* An integer literal filling the braces at s[a] exactly ("{12}"); its end in *end. */
static int int_group(const Ev *e, size_t a, size_t *end) {
    if (a >= e->n || e->s[a] != '{') return 0;
    size_t j = a + 1;
    while (j < e->n && is_digit(e->s[j])) j++;
    if (j == a + 1 || j >= e->n || e->s[j] != '}') return 0;
    *end = j + 1;
    return 1;
}

/* A braced group {expr}. */
static Num ev_group(Ev *e) {
    ev_space(e);
    if (ev_peek(e) != '{') {
        e->err = 1;
        return num_real(0);
    }
    e->i++;
    Num x = ev_expr(e);
    ev_space(e);
    if (ev_peek(e) != '}') e->err = 1;
    e->i++;
    return x;
}

static Num ev_atom(Ev *e) {
    if (++e->depth > MAX_DEPTH || e->err) {
        e->err = 1;
        return num_real(0);
    }
    Num x = num_real(0);
    ev_space(e);
    char c = ev_peek(e);
    if (is_digit(c) || c == '.') {
        x = ev_number(e);
        /* mixed numbers: 3\frac{1}{2} and "3 1/2" */
        size_t e1, e2;
        if (ev_at_cmd(e, "frac") && int_group(e, e->i + 5, &e1) && int_group(e, e1, &e2)) {
            e->i += 5;
            Num f = ev_group(e);
            Num g = ev_group(e);
            x = num_add(x, num_div(e, f, g), 1);
        } else if (ev_peek(e) == ' ' && x.exact && x.q == 1) {
            size_t j = e->i + 1, k;
            while (j < e->n && is_digit(e->s[j])) j++;
            k = j + 1;
            while (k < e->n && is_digit(e->s[k])) k++;
            if (j > e->i + 1 && j < e->n && e->s[j] == '/' && k > j + 1 &&
                (k == e->n || !is_digit(e->s[k]))) {
                e->i++;
                Num f = ev_number(e);
                e->i++;
                Num g = ev_number(e);
                x = num_add(x, num_div(e, f, g), 1);
            }
        }
    } else if (c == '(' || c == '{') {
        e->i++;
        x = ev_expr(e);
        ev_space(e);
        if (ev_peek(e) != (c == '(' ? ')' : '}')) e->err = 1;
        e->i++;
    } else if (ev_at_cmd(e, "frac")) {
        e->i += 5;
        Num a = ev_group(e);
        Num b = ev_group(e);
        x = num_div(e, a, b);
    } else if (ev_at_cmd(e, "sqrt")) {
        e->i += 5;
        Num index = num_rat(2, 1);
        ev_space(e);
        if (ev_peek(e) == '[') {
            e->i++;
            index = ev_expr(e);
            ev_space(e);
            if (ev_peek(e) != ']') e->err = 1;
            e->i++;
        }
        Num a = ev_group(e);
        if (a.v < 0 || index.v <= 0) {
            e->err = 1;
        } else if (index.exact && index.p == 2 && index.q == 1) {
            long long rp = llround(sqrt((double)a.p)), rq = llround(sqrt((double)a.q));
            long long p2, q2;
            if (a.exact && !__builtin_mul_overflow(rp, rp, &p2) &&
                !__builtin_mul_overflow(rq, rq, &q2) && p2 == a.p && q2 == a.q)
                x = num_rat(rp, rq);
            else
                x = num_real(sqrt(a.v));
        } else {
            x = num_real(pow(a.v, 1.0 / index.v));
        }
    } else if (ev_at_cmd(e, "pi")) {
        e->i += 3;
        x = num_real(PI_VALUE);
    } else if (is_alpha(c) && e->vals) {
        /* a single-letter variable; a longer word is text, not a product of letters */
        if (e->i + 1 < e->n && is_alpha(e->s[e->i + 1])) {
            e->err = 1;
        } else {
            int k = c >= 'a' ? c - 'a' : 26 + (c - 'A');
            e->vars |= 1ull << k;
            x = num_real(e->vals[k]);
            e->i++;
        }
    } else {
        e->err = 1;
    }
    e->depth--;
    return x;
}

/* atom, then '^' exponents and '!' factorials */
static Num ev_power(Ev *e) {
    Num x = ev_atom(e);
    for (int guard = 0; guard < 64 && !e->err; guard++) {
        ev_space(e);
        char c = ev_peek(e);
        if (c == '^') {
            e->i++;
            ev_space(e);
            char d = ev_peek(e);
            Num y = d == '{'      ? ev_group(e)
                    : is_digit(d) ? ev_number(e)
                    : d == '-'    ? ev_unary(e)
                                  : ev_atom(e);
            x = num_pow(e, x, y);
        } else if (c == '!' && !(e->i + 1 < e->n && e->s[e->i + 1] == '=')) {
            e->i++;
            if (!x.exact || x.q != 1 || x.p < 0 || x.p > 20) {
                e->err = 1;
            } else {
                long long f = 1;
                for (long long k = 2; k <= x.p; k++) f *= k;
                x = num_rat(f, 1);
            }
        } else {
            break;
        }
    }
    return x;
}

static Num ev_unary(Ev *e) {
    if (++e->depth > MAX_DEPTH) {
        e->err = 1;
        return num_real(0);
    }
    ev_space(e);
    Num x;
    if (ev_peek(e) == '-') {
        e->i++;
        x = num_mul(num_rat(-1, 1), ev_unary(e));
    } else if (ev_peek(e) == '+') {
        e->i++;
        x = ev_unary(e);
    } else {
        x = ev_power(e);
    }
    e->depth--;
    return x;
}

/* Whether an atom starts at the cursor without an operator before it (2\pi, 3x, 2(x+1));
 * a digit does not, so "2 3" is not a product. */
static int ev_implicit(Ev *e) {
    char c = ev_peek(e);
    return c == '(' || c == '{' || (is_alpha(c) && e->vals) || ev_at_cmd(e, "frac") ||
           ev_at_cmd(e, "sqrt") || ev_at_cmd(e, "pi");
}

static Num ev_term(Ev *e) {
    Num x = ev_unary(e);
    while (!e->err) {
        ev_space(e);
        char c = ev_peek(e);
        if (c == '*' || ev_at_cmd(e, "cdot") || ev_at_cmd(e, "times")) {
            e->i += c == '*' ? 1 : ev_at_cmd(e, "cdot") ? 5 : 6;
            x = num_mul(x, ev_unary(e));
        } else if (c == '/' || ev_at_cmd(e, "div")) {
            e->i += c == '/' ? 1 : 4;
            x = num_div(e, x, ev_unary(e));
        } else if (ev_implicit(e)) {
            x = num_mul(x, ev_power(e));
        } else {
            break;
        }
    }
    return x;
}

static Num ev_expr(Ev *e) {
    if (++e->depth > MAX_DEPTH) {
        e->err = 1;
        return num_real(0);
    }
    Num x = ev_term(e);
    while (!e->err) {
        ev_space(e);
        char c = ev_peek(e);
        if (c != '+' && c != '-') break;
        e->i++;
        x = num_add(x, ev_term(e), c == '+' ? 1 : -1);
    }
    e->depth--;
    return x;
}

/* Evaluates the whole of s; 0 when it is not an expression this evaluator knows. */
static int evaluate(const char *s, size_t n, const double *vals, Num *out, uint64_t *vars) {
    Ev e = {s, 0, n, 0, 0, 0, vals};
    Num x = ev_expr(&e);
    ev_space(&e);
    if (e.err || e.i != n || !isfinite(x.v)) return 0;
    *out = x;
    *vars = e.vars;
    return 1;
}

static int num_same(Num a, Num b) {
    if (a.exact && b.exact) return a.p == b.p && a.q == b.q;
    double d = fabs(a.v - b.v), m = fmax(fabs(a.v), fabs(b.v));
    return d <= 1e-9 * m;
}

/* 1 equal, 0 different, -1 when either side does not evaluate. */
static int numeric_equal(const char *a, size_t na, const char *b, size_t nb) {
    double v1[52], v2[52];
    for (int k = 0; k < 52; k++) {
        v1[k] = 1.0 + sqrt(2.0 + 3 * k) / 7.0;
        v2[k] = 0.5 + log(3.0 + 2 * k) / 3.0;
    }
    Num x, y;
    uint64_t vx, vy;
    if (!evaluate(a, na, v1, &x, &vx) || !evaluate(b, nb, v1, &y, &vy)) return -1;
    if (vx != vy) return 0;
    if (!num_same(x, y)) return 0;
    if (!vx) return 1;
    if (!evaluate(a, na, v2, &x, &vx) || !evaluate(b, nb, v2, &y, &vy)) return -1;
    return num_same(x, y);
}

/* ---- comparison ---- */

static int only_words(const char *s, size_t n) {
    int letters = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_alpha(s[i]))
            letters++;
        else if (s[i] != ' ')
            return 0;
    }
    return letters > 0;
}

/* Splits s[0..n) at top-level commas: returns the number of parts (up to max) and their
 * bounds; *open / *close are the enclosing brackets (0 when the list is bare). */
static int split_list(const char *s, size_t n, char *open, char *close, size_t *starts,
                      size_t *ends, int max) {
    *open = *close = 0;
    size_t a = 0, b = n;
    if (n >= 2 && strchr("([{", s[0]) && strchr(")]}", s[n - 1])) {
        int depth = 0, encloses = 1;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '(' || s[i] == '[' || s[i] == '{') depth++;
            if (s[i] == ')' || s[i] == ']' || s[i] == '}') depth--;
            if (depth == 0 && i < n - 1) encloses = 0;
        }
        if (encloses) *open = s[0], *close = s[n - 1], a = 1, b = n - 1;
    }
    int parts = 0, depth = 0;
    size_t start = a;
    for (size_t i = a; i <= b; i++) {
        char c = i < b ? s[i] : ',';
        if (c == '(' || c == '[' || c == '{') depth++;
        if (c == ')' || c == ']' || c == '}') depth--;
        if (c == ',' && depth == 0) {
            if (parts == max) return -1;
            starts[parts] = start, ends[parts] = i, parts++;
            start = i + 1;
        }
    }
    return parts;
}

static int equal_norm(const char *a, size_t na, const char *b, size_t nb, int depth) {
    if (!na || !nb) return 0;
    if (na == nb && !memcmp(a, b, na)) return 1;
    if (only_words(a, na) && only_words(b, nb)) return na == nb && !strncasecmp(a, b, na);
    enum { PARTS = 64 };
    size_t as[PARTS], ae[PARTS], bs[PARTS], be[PARTS];
    char oa, ca, ob, cb;
    int pa = split_list(a, na, &oa, &ca, as, ae, PARTS);
    int pb = split_list(b, nb, &ob, &cb, bs, be, PARTS);
    if (pa < 0 || pb < 0) return 0;
    if (pa > 1 || pb > 1) {
        if (pa != pb || oa != ob || ca != cb || depth >= LIST_MAX) return 0;
        for (int k = 0; k < pa; k++)
            if (!equal_norm(a + as[k], ae[k] - as[k], b + bs[k], be[k] - bs[k], depth + 1))
                return 0;
        return 1;
    }
    return numeric_equal(a, na, b, nb) == 1;
}

int math_equal(const char *a, const char *b) {
    Buf na, nb;
    normalize_buf(a ? a : "", &na);
    normalize_buf(b ? b : "", &nb);
    return equal_norm(na.s, na.n, nb.s, nb.n, 0);
}

double math_verify(const char *gold, const char *response) {
    char g[CAP], r[CAP];
    math_gold_answer(gold, 0, g, sizeof g);
    if (!math_extract(response, r, sizeof r)) return 0.0;
    return math_equal(g, r) ? 1.0 : 0.0;
}
