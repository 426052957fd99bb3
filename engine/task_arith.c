/* Chain-arithmetic problems and their verifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "task_arith.h"
#include "../kernels/philox.h"

/* Whether the flawed teacher drops the sign of step i's result (one draw per step). */
static int slips(const ArithParams *p, uint64_t seed, uint64_t index, int i) {
    if (p->slip <= 0) return 0;
    philox4 r = philox_draw(seed, 0x534c4950ull /* "SLIP" */, index * 2 + (uint64_t)i / 4);
    return r.v[i % 4] < p->slip * 4294967296.0;
}

void arith_problem(const ArithParams *p, uint64_t seed, uint64_t index, char *prompt,
                   char *solution, long *answer) {
    philox4 r = philox_draw(seed, 0x41524954ull /* "ARIT" */, index * 8);
    int span = p->max_operands - p->min_operands + 1;
    int n = p->min_operands + (int)(r.v[0] % (uint32_t)span);
    long vals[8] = {0};
    char ops[8];
    for (int i = 0; i < n; i++) {
        philox4 s = philox_draw(seed, 0x41524954ull, index * 8 + 1 + (uint64_t)i / 2);
        uint32_t w = s.v[(i % 2) * 2], o = s.v[(i % 2) * 2 + 1];
        vals[i] = 1 + (long)(w % (uint32_t)p->max_value);
        ops[i] = (o & 1) ? '+' : '-';
    }
    int k = snprintf(prompt, ARITH_MAX_TEXT, "Q:%ld", vals[0]);
    for (int i = 1; i < n; i++)
        k += snprintf(prompt + k, ARITH_MAX_TEXT - k, "%c%ld", ops[i], vals[i]);
    snprintf(prompt + k, ARITH_MAX_TEXT - k, "=");
    long acc = vals[0];
    k = 0;
    for (int i = 1; i < n; i++) {
        long next = ops[i] == '+' ? acc + vals[i] : acc - vals[i];
        if (next < 0 && slips(p, seed, index, i)) next = -next;
        k += snprintf(solution + k, ARITH_MAX_TEXT - k, "%s%ld%c%ld=%ld", i > 1 ? "," : "", acc,
                      ops[i], vals[i], next);
        acc = next;
    }
    snprintf(solution + k, ARITH_MAX_TEXT - k, " A:%ld", acc);
    *answer = acc;
}

/* Parses "Q:a(+|-)b...=" and evaluates left to right. */
static int eval_prompt(const char *prompt, long *out) {
    if (strncmp(prompt, "Q:", 2) != 0) return 0;
    const char *c = prompt + 2;
    char *end;
    long acc = strtol(c, &end, 10);
    if (end == c) return 0;
    c = end;
    while (*c == '+' || *c == '-') {
        char op = *c++;
        if (*c < '0' || *c > '9') return 0;
        long v = strtol(c, &end, 10);
        acc = op == '+' ? acc + v : acc - v;
        c = end;
    }
    if (c[0] != '=' || c[1] != 0) return 0;
    *out = acc;
    return 1;
}

double arith_verify(const char *prompt, const char *response) {
    long truth, got;
    if (!eval_prompt(prompt, &truth)) return 0.0;
    const char *a = NULL;
    for (const char *s = strstr(response, "A:"); s; s = strstr(s + 1, "A:")) a = s;
    if (!a) return 0.0;
    a += 2;
    const char *d = a + (*a == '-');
    if (*d < '0' || *d > '9') return 0.0;
    char *end;
    got = strtol(a, &end, 10);
    if (*end != 0) return 0.0; /* the answer must end the response */
    return got == truth ? 1.0 : 0.0;
}
