/* The gradient all-reduce of data parallelism in buckets that overlap the backward pass.
 * Layers are grouped, from the last to the first, into buckets of about bucket_bytes of
 * gradients, followed by one bucket of everything outside the layers (embedding, final
 * norm, lm_head, value head). Armed before the last backward that feeds an update, the
 * sync starts each bucket's sum over ranks as soon as the backward has finished its layers
 * -- over NCCL on a stream of its own, so the sum runs while the backward goes on through
 * the earlier layers; the host transports defer the sums to grad_sync_finish. finish starts
 * what is left, in the same order on every rank (a rank without rows starts every bucket
 * there), and waits. Each element is summed exactly once, so the result equals one sum of
 * the whole buffer. With one rank every call is a no-op. */
#pragma once
#include <stddef.h>
#include "model.h"

typedef struct GradSync {
    Model *m;
    int n_buckets;
    int *last_layer; /* (n_buckets) the lowest layer of each bucket; -1: the rest */
    int next;        /* the next bucket to start */
} GradSync;

/* bucket_bytes 0: one bucket for the layers. */
void grad_sync_init(GradSync *s, Model *m, size_t bucket_bytes);
void grad_sync_free(GradSync *s);
/* Before the last backward into m->grads ahead of an update. */
void grad_sync_arm(GradSync *s);
/* m->grads becomes the sum over ranks; every rank calls it, armed or not. */
void grad_sync_finish(GradSync *s);
