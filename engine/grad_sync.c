/* Bucketed gradient all-reduce overlapping the backward (grad_sync.h). */
#include "grad_sync.h"

#include <stdlib.h>
#include "dist.h"
#include "../runtime/check.h"

static size_t layer_floats(const Model *m, int l) {
    size_t lo[MODEL_MAX_RANGES], hi[MODEL_MAX_RANGES], n = 0;
    int k = model_param_ranges(m, l, lo, hi);
    for (int i = 0; i < k; i++) n += hi[i] - lo[i];
    return n;
}

void grad_sync_init(GradSync *s, Model *m, size_t bucket_bytes) {
    int L = m->cfg.n_layers;
    s->m = m;
    s->last_layer = xmalloc(sizeof(int) * (size_t)(L + 1));
    s->n_buckets = 0;
    size_t bytes = 0;
    for (int l = L - 1; l >= 0; l--) {
        bytes += sizeof(float) * layer_floats(m, l);
        if (l == 0 || (bucket_bytes > 0 && bytes >= bucket_bytes)) {
            s->last_layer[s->n_buckets++] = l;
            bytes = 0;
        }
    }
    s->last_layer[s->n_buckets++] = -1;
    s->next = 0;
}

void grad_sync_free(GradSync *s) {
    free(s->last_layer);
    s->last_layer = NULL;
}

/* Starts the sum of bucket k: its layers, from the one above the previous bucket's last. */
static void start_bucket(GradSync *s, int k) {
    int top = k == 0 ? s->m->cfg.n_layers - 1 : s->last_layer[k - 1] - 1;
    if (s->last_layer[k] < 0) top = -1;
    for (int l = top; l >= s->last_layer[k]; l--) {
        size_t lo[MODEL_MAX_RANGES], hi[MODEL_MAX_RANGES];
        int n = model_param_ranges(s->m, l, lo, hi);
        for (int i = 0; i < n; i++) dist_sum_grads_start(s->m->grads + lo[i], hi[i] - lo[i]);
    }
}

/* The backward's callback: layer's gradients are final; start every bucket now complete. */
static void on_ready(void *ctx, int layer) {
    GradSync *s = ctx;
    while (s->next < s->n_buckets &&
           (layer < 0 || (s->last_layer[s->next] >= 0 && layer <= s->last_layer[s->next])))
        start_bucket(s, s->next++);
}

void grad_sync_arm(GradSync *s) {
    if (dist_size() == 1) return;
    model_set_grad_ready(s->m, on_ready, s);
}

void grad_sync_finish(GradSync *s) {
    if (dist_size() == 1) return;
    model_set_grad_ready(s->m, NULL, NULL);
    while (s->next < s->n_buckets) start_bucket(s, s->next++);
    dist_wait_grads();
    s->next = 0;
}
