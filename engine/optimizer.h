/* AdamW over a model's flat parameter buffer, with global grad-norm clipping and the
 * non-finite guard: a step whose gradient norm is not finite is not applied. With several
 * ranks (engine/dist.h) a step first sums the gradients over ranks; with ZeRO (stage 1 or 2)
 * each rank keeps the moments of its range of the buffer only, updates that range and gathers
 * the parameters from the others. Under ZeRO-2 a model's gradients arrive summed
 * (model_shard_grads). */
#pragma once
#include <stddef.h>
#include "../kernels/optim.h"
#include "../runtime/backend.h"

typedef struct {
    Backend be;
    size_t n;
    size_t lo, hi;         /* the range of the buffer this rank updates (all of it without ZeRO) */
    int zero;              /* ZeRO (stage 1 or 2) over several ranks */
    float *m, *v;          /* (hi - lo) first and second moments, the parameters' layout */
    int t;                 /* updates applied so far */
    struct GradSync *sync; /* bucketed all-reduce overlapping the backward, or NULL */
} AdamW;

struct Model;
void adamw_init(AdamW *o, Backend be, size_t n);
/* For an AdamW over model m's parameters with several ranks and ZeRO stage 0: the
 * gradient sum in buckets of dist_bucket_bytes() (grad_sync.h). adamw_arm(o) before the
 * last backward ahead of each adamw_step lets the sums start during that backward. */
void adamw_overlap_backward(AdamW *o, struct Model *m);
void adamw_arm(AdamW *o);
/* Instead of adamw_step when the update is skipped (a non-finite loss, the same on every
 * rank): finishes the sums an armed backward started, so that every rank stays in step. */
void adamw_skip(AdamW *o);
void adamw_free(AdamW *o);
/* L2 norm of the whole gradient buffer. */
double grad_norm(Backend be, const float *grads, size_t n);
/* Sums grads over ranks, clips them to max_norm (if > 0) and applies one update; returns
 * the norm before clipping, the same on every rank. If that norm is not finite nothing is
 * changed and the caller counts a skip. Every rank must call it together. */
double adamw_step(AdamW *o, float *params, float *grads, AdamWParams hp, double max_norm);
/* The same over model m's parameters and gradients, the model's copies remade after (also for
 * a sharded master, model_shard_master, whose range must be o's). */
double adamw_step_model(AdamW *o, struct Model *m, AdamWParams hp, double max_norm);
/* The whole moments (o->n each, the layout a single rank keeps) into host buffers hm and hv,
 * which rank 0 passes and the others pass as NULL. With ZeRO every rank must call it: the
 * shards gather through scratch (cap floats of backend memory, left unspecified; the model's
 * model_gather_scratch between updates), a chunk at a time. The file a run saves is then the
 * same with or without ZeRO and for any number of ranks. */
void adamw_moments_to_host(const AdamW *o, float *scratch, size_t cap, float *hm, float *hv);
/* The inverse: this rank's range of whole host moments (o->n each) into its state. */
void adamw_moments_from_host(AdamW *o, const float *hm, const float *hv);
