/* AdamW over a model's flat parameter buffer, with global grad-norm clipping and the
 * non-finite guard: a step whose gradient norm is not finite is not applied. */
#pragma once
#include <stddef.h>
#include "../kernels/optim.h"
#include "../runtime/backend.h"

typedef struct {
    Backend be;
    size_t n;
    float *m, *v; /* (n) first and second moments, same layout as the parameters */
    int t;        /* updates applied so far */
} AdamW;

void adamw_init(AdamW *o, Backend be, size_t n);
void adamw_free(AdamW *o);
/* L2 norm of the whole gradient buffer. */
double grad_norm(Backend be, const float *grads, size_t n);
/* Clips grads to max_norm (if > 0) and applies one update; returns the norm before
 * clipping. If that norm is not finite nothing is changed and the caller counts a skip. */
double adamw_step(AdamW *o, float *params, float *grads, AdamWParams hp, double max_norm);
