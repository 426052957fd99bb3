/* AdamW driver over flat buffers. */
#include <math.h>
#include <stdlib.h>
#include "dist.h"
#include "grad_sync.h"
#include "model.h"
#include "optimizer.h"
#include "../runtime/check.h"
#include "../runtime/ops.h"

void adamw_init(AdamW *o, Backend be, size_t n) {
    o->be = be;
    o->n = n;
    o->zero = dist_size() > 1 && dist_zero_stage() == 1;
    o->lo = 0;
    o->hi = n;
    if (o->zero) dist_shard(n, &o->lo, &o->hi);
    o->m = be_alloc(be, sizeof(float) * (o->hi - o->lo));
    o->v = be_alloc(be, sizeof(float) * (o->hi - o->lo));
    o->t = 0;
    o->sync = NULL;
}

void adamw_overlap_backward(AdamW *o, Model *m) {
    if (o->zero || dist_size() == 1 || dist_bucket_bytes() == 0 || o->sync) return;
    o->sync = malloc(sizeof *o->sync);
    CHECK(o->sync != NULL);
    grad_sync_init(o->sync, m, dist_bucket_bytes());
}

void adamw_arm(AdamW *o) {
    if (o->sync) grad_sync_arm(o->sync);
}

void adamw_skip(AdamW *o) {
    if (o->sync) grad_sync_finish(o->sync);
}

void adamw_free(AdamW *o) {
    if (o->sync) grad_sync_free(o->sync);
    free(o->sync);
    o->sync = NULL;
    be_free(o->be, o->m);
    be_free(o->be, o->v);
    o->m = o->v = NULL;
}

double grad_norm(Backend be, const float *grads, size_t n) {
    return sqrt(op_sumsq(be, grads, (long)n));
}

/* The step over this rank's range: shard holds its parameters (hi - lo floats). */
static double step_range(AdamW *o, float *shard, float *grads, AdamWParams hp, double max_norm) {
    long k = (long)(o->hi - o->lo);
    float *g = grads + o->lo;
    CHECK(!o->sync || o->sync->m->grads == grads);
    if (o->zero)
        dist_reduce_scatter_grads(grads, o->n);
    else if (o->sync)
        grad_sync_finish(o->sync); /* the sums of o->sync's model: grads must be its buffer */
    else
        dist_sum_grads(grads, o->n);
    double ss = op_sumsq(o->be, g, k);
    if (o->zero) dist_sum_f64(&ss, 1);
    double norm = sqrt(ss);
    if (!isfinite(norm)) return norm;
    if (max_norm > 0 && norm > max_norm) op_scale(o->be, g, k, (float)(max_norm / norm));
    o->t++;
    op_adamw_update(o->be, shard, g, o->m, o->v, k, hp, o->t);
    return norm;
}

double adamw_step(AdamW *o, float *params, float *grads, AdamWParams hp, double max_norm) {
    double norm = step_range(o, params + o->lo, grads, hp, max_norm);
    if (isfinite(norm) && o->zero) dist_allgather_params(params, o->n);
    return norm;
}

double adamw_step_model(AdamW *o, Model *m, AdamWParams hp, double max_norm) {
    if (!m->master) {
        double norm = adamw_step(o, m->params, m->grads, hp, max_norm);
        model_params_changed(m);
        return norm;
    }
    CHECK(o->zero && m->master_lo == o->lo && m->master_hi == o->hi && o->n == m->n_params);
    double norm = step_range(o, m->master, m->grads, hp, max_norm);
    if (!isfinite(norm)) return norm;
    /* the whole in the gradient buffer, whose sums are spent: as adamw_step gathers params */
    be_copy(o->be, m->grads + o->lo, m->master, sizeof(float) * (o->hi - o->lo));
    dist_allgather_params(m->grads, o->n);
    model_params_from_full(m, m->grads);
    return norm;
}

/* One moment buffer (this rank's range) whole into host (NULL: only take part). */
static void moment_to_host(const AdamW *o, const float *mom, float *scratch, float *host) {
    if (!o->zero) {
        if (host) be_to_host(o->be, host, mom, sizeof(float) * o->n);
        return;
    }
    be_copy(o->be, scratch + o->lo, mom, sizeof(float) * (o->hi - o->lo));
    dist_allgather_params(scratch, o->n);
    if (host) be_to_host(o->be, host, scratch, sizeof(float) * o->n);
}

void adamw_moments_to_host(const AdamW *o, float *scratch, float *hm, float *hv) {
    moment_to_host(o, o->m, scratch, hm);
    moment_to_host(o, o->v, scratch, hv);
}

void adamw_moments_from_host(AdamW *o, const float *hm, const float *hv) {
    const size_t k = o->hi - o->lo;
    be_to_device(o->be, o->m, hm + o->lo, sizeof(float) * k);
    be_to_device(o->be, o->v, hv + o->lo, sizeof(float) * k);
}
