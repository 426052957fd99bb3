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
    o->zero = dist_size() > 1 && dist_zero_stage() >= 1;
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

/* grads (o->n) summed over ranks: this rank's range at least (ZeRO), else all of it. */
static void sum_grads(AdamW *o, float *grads) {
    CHECK(!o->sync || o->sync->m->grads == grads);
    if (o->zero)
        dist_reduce_scatter_grads(grads, o->n);
    else if (o->sync)
        grad_sync_finish(o->sync); /* the sums of o->sync's model: grads must be its buffer */
    else
        dist_sum_grads(grads, o->n);
}

/* The step over this rank's range: shard holds its parameters and g their summed gradients
 * (hi - lo floats each). */
static double step_range(AdamW *o, float *shard, float *g, AdamWParams hp, double max_norm) {
    long k = (long)(o->hi - o->lo);
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
    sum_grads(o, grads);
    double norm = step_range(o, params + o->lo, grads + o->lo, hp, max_norm);
    if (isfinite(norm) && o->zero) dist_allgather_params(params, o->n);
    return norm;
}

double adamw_step_model(AdamW *o, Model *m, AdamWParams hp, double max_norm) {
    CHECK(o->n == m->n_params);
    float *g = m->gs.acc; /* ZeRO-2: summed during the backwards */
    if (g) {
        CHECK(o->zero && m->gs.lo == o->lo && m->gs.hi == o->hi);
    } else {
        sum_grads(o, m->grads);
        g = m->grads + o->lo;
    }
    if (!m->master) {
        double norm = step_range(o, m->params + o->lo, g, hp, max_norm);
        if (isfinite(norm) && o->zero) dist_allgather_params(m->params, o->n);
        model_params_changed(m);
        return norm;
    }
    CHECK(o->zero && m->master_lo == o->lo && m->master_hi == o->hi);
    double norm = step_range(o, m->master, g, hp, max_norm);
    if (isfinite(norm)) model_gather_master(m);
    return norm;
}

/* One moment buffer (this rank's range) whole into host (NULL: only take part), a chunk of
 * scratch (cap floats) at a time. */
static void moment_to_host(const AdamW *o, const float *mom, float *scratch, size_t cap,
                           float *host) {
    if (!o->zero) {
        if (host) be_to_host(o->be, host, mom, sizeof(float) * o->n);
        return;
    }
    for (size_t at = 0; at < o->n; at += cap) {
        const size_t len = o->n - at < cap ? o->n - at : cap;
        const size_t x = o->lo > at ? o->lo : at, y = o->hi < at + len ? o->hi : at + len;
        if (x < y) be_copy(o->be, scratch + (x - at), mom + (x - o->lo), sizeof(float) * (y - x));
        dist_allgather_window(scratch, at, len, o->n);
        if (host) be_to_host(o->be, host + at, scratch, sizeof(float) * len);
    }
}

void adamw_moments_to_host(const AdamW *o, float *scratch, size_t cap, float *hm, float *hv) {
    moment_to_host(o, o->m, scratch, cap, hm);
    moment_to_host(o, o->v, scratch, cap, hv);
}

void adamw_moments_from_host(AdamW *o, const float *hm, const float *hv) {
    const size_t k = o->hi - o->lo;
    be_to_device(o->be, o->m, hm + o->lo, sizeof(float) * k);
    be_to_device(o->be, o->v, hv + o->lo, sizeof(float) * k);
}
