/* AdamW driver over flat buffers. */
#include <math.h>
#include "optimizer.h"
#include "../runtime/ops.h"

void adamw_init(AdamW *o, Backend be, size_t n) {
    o->be = be;
    o->n = n;
    o->m = be_alloc(be, sizeof(float) * n);
    o->v = be_alloc(be, sizeof(float) * n);
    o->t = 0;
}

void adamw_free(AdamW *o) {
    be_free(o->be, o->m);
    be_free(o->be, o->v);
    o->m = o->v = NULL;
}

double grad_norm(Backend be, const float *grads, size_t n) {
    return sqrt(op_sumsq(be, grads, (long)n));
}

double adamw_step(AdamW *o, float *params, float *grads, AdamWParams hp, double max_norm) {
    double norm = grad_norm(o->be, grads, o->n);
    if (!isfinite(norm)) return norm;
    if (max_norm > 0 && norm > max_norm)
        op_scale(o->be, grads, (long)o->n, (float)(max_norm / norm));
    o->t++;
    op_adamw_update(o->be, params, grads, o->m, o->v, (long)o->n, hp, o->t);
    return norm;
}
