/* Chain arithmetic, the embedded verifiable reasoning task: "Q:47+38-19+6=" answered with
 * worked steps "47+38=85,85-19=66,66+6=72 A:72". Difficulty: operand count and size.
 * Problems are a pure function of (seed, index), so train and held-out sets never drift. */
#pragma once
#include <stdint.h>

typedef struct {
    int min_operands, max_operands; /* 2 .. 8 */
    int max_value;                  /* operands drawn from [1, max_value] */
    double slip; /* solutions only: chance that a negative step result loses its sign */
} ArithParams;

#define ARITH_MAX_TEXT 256

/* Problem `index` of stream `seed`: the prompt, the worked solution and the answer. */
void arith_problem(const ArithParams *p, uint64_t seed, uint64_t index, char *prompt,
                   char *solution, long *answer);
/* Outcome in {0, 1}: recomputes the answer from the prompt and compares it with the integer
 * after the response's last "A:" (nothing else in the response is trusted). 0 if the prompt
 * does not parse or the response has no well-formed final answer. */
double arith_verify(const char *prompt, const char *response);
