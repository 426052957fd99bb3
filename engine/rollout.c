/* Rollouts: sampling, verification, accuracy filtering and the carry-over buffer. */
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "rollout.h"
#include "../runtime/check.h"
#include "../runtime/log.h"

void groups_init(Groups *g, int cap, int K, int Tcap) {
    memset(g, 0, sizeof *g);
    g->K = K;
    g->Tcap = Tcap;
    g->cap = cap;
    size_t rows = (size_t)cap * K;
    g->tokens = xcalloc(rows * Tcap, sizeof(int));
    g->prompt_len = xcalloc(rows, sizeof(int));
    g->resp_len = xcalloc(rows, sizeof(int));
    g->truncated = xcalloc(rows, sizeof(int));
    g->outcome = xcalloc(rows, sizeof(float));
    g->prompt_id = xcalloc(cap, sizeof(long long));
}

void groups_free(Groups *g) {
    free(g->tokens);
    free(g->prompt_len);
    free(g->resp_len);
    free(g->truncated);
    free(g->outcome);
    free(g->prompt_id);
    memset(g, 0, sizeof *g);
}

/* Copies group si of src into slot di of dst. */
static void group_copy(Groups *dst, int di, const Groups *src, int si) {
    int K = src->K, T = src->Tcap;
    CHECK(dst->K == K && dst->Tcap == T && di < dst->cap);
    size_t d = (size_t)di * K, s = (size_t)si * K;
    memmove(dst->tokens + d * T, src->tokens + s * T, sizeof(int) * K * T);
    memmove(dst->prompt_len + d, src->prompt_len + s, sizeof(int) * K);
    memmove(dst->resp_len + d, src->resp_len + s, sizeof(int) * K);
    memmove(dst->truncated + d, src->truncated + s, sizeof(int) * K);
    memmove(dst->outcome + d, src->outcome + s, sizeof(float) * K);
    dst->prompt_id[di] = src->prompt_id[si];
}

void groups_push(Groups *dst, const Groups *src, int i) {
    CHECK(dst->n < dst->cap);
    group_copy(dst, dst->n++, src, i);
}

void groups_take(Groups *dst, Groups *src, int n) {
    if (n > src->n) n = src->n;
    dst->n = 0;
    for (int i = 0; i < n; i++) groups_push(dst, src, i);
    for (int i = n; i < src->n; i++) group_copy(src, i - n, src, i);
    src->n -= n;
}

void rollout_init(Rollout *r, const RunConfig *rc, const Task *task, Generator *gen, int Tcap) {
    memset(r, 0, sizeof *r);
    const RlConfig *c = &rc->rl;
    r->rc = rc;
    r->task = task;
    r->gen = gen;
    int per_attempt = c->oversample * c->prompts_per_step, K = c->samples_per_prompt;
    groups_init(&r->scratch, per_attempt, K, Tcap);
    /* the carry buffer holds at most one step's worth of draws beyond P */
    groups_init(&r->carry, per_attempt * c->max_attempts + c->prompts_per_step, K, Tcap);
    size_t rows = (size_t)per_attempt * K;
    r->prompt_tok = xcalloc(rows * Tcap, sizeof(int));
    r->prompt_len = xcalloc(rows, sizeof(int));
    r->resp_len = xcalloc(rows, sizeof(int));
    r->hit_eos = xcalloc(rows, sizeof(int));
    r->row_ids = xcalloc(rows, sizeof(unsigned long long));
}

void rollout_free(Rollout *r) {
    groups_free(&r->scratch);
    groups_free(&r->carry);
    free(r->prompt_tok);
    free(r->prompt_len);
    free(r->resp_len);
    free(r->hit_eos);
    free(r->row_ids);
}

/* One attempt: n_prompts new prompts, K samples each, verified, into r->scratch. */
static void attempt(Rollout *r, int n_prompts, RolloutStats *st) {
    const RlConfig *c = &r->rc->rl;
    int K = c->samples_per_prompt, T = r->scratch.Tcap, rows = n_prompts * K;
    for (int p = 0; p < n_prompts; p++) {
        long long id = r->next_prompt++;
        int len = task_train_prompt(r->task, id, r->prompt_tok + (size_t)p * K * T, T);
        for (int k = 0; k < K; k++) {
            size_t row = (size_t)p * K + k;
            if (k)
                memcpy(r->prompt_tok + row * T, r->prompt_tok + (size_t)p * K * T,
                       sizeof(int) * len);
            r->prompt_len[row] = len;
            r->row_ids[row] = (unsigned long long)id * K + k;
        }
        r->scratch.prompt_id[p] = id;
    }
    SampleParams sp = sample_params_default();
    sp.temperature = (float)c->temperature;
    sp.top_k = c->top_k;
    sp.top_p = (float)c->top_p;
    sp.max_new_tokens = c->max_response_tokens;
    double t0 = time_now();
    /* each rank samples its share of the rows (a row's draws depend on its id alone), then
     * every rank gets all of them */
    int lo, hi;
    dist_rows(0, rows, &lo, &hi);
    size_t o = (size_t)lo * T;
    const long long steps0 = r->gen->decode_steps, rows0 = r->gen->rows_decoded;
    generate(r->gen, r->prompt_tok + o, r->prompt_len + lo, hi - lo, &sp, r->task->stop,
             r->task->n_stop, r->task->pad_id, (unsigned long long)r->rc->seed, r->row_ids + lo,
             r->scratch.tokens + o, r->resp_len + lo, r->hit_eos + lo, NULL);
    dist_complete_rows_i32(r->scratch.tokens, 0, rows, T);
    dist_complete_rows_i32(r->resp_len, 0, rows, 1);
    dist_complete_rows_i32(r->hit_eos, 0, rows, 1);
    double t1 = time_now();
    r->scratch.n = n_prompts;
    for (int i = 0; i < rows; i++) {
        const int *row = r->scratch.tokens + (size_t)i * T;
        r->scratch.prompt_len[i] = r->prompt_len[i];
        r->scratch.resp_len[i] = r->resp_len[i];
        r->scratch.truncated[i] = !r->hit_eos[i];
        r->scratch.outcome[i] = (float)task_verify(r->task, 0, r->scratch.prompt_id[i / K], row,
                                                   r->prompt_len[i], r->resp_len[i]);
        st->outcome_sum += r->scratch.outcome[i];
        st->samples += 1;
        st->response_tokens += r->resp_len[i];
        st->truncated_rows += !r->hit_eos[i];
    }
    st->t_generate += t1 - t0;
    st->decode_steps += (double)(r->gen->decode_steps - steps0);
    st->rows_decoded += (double)(r->gen->rows_decoded - rows0);
    st->t_verify += time_now() - t1;
    st->prompts_drawn += n_prompts;
    st->attempts++;
}

int group_passes(const float *outcome, const int *truncated, int K, double acc_lo, double acc_hi,
                 int drop_truncated) {
    double mean = 0;
    int cut = 0;
    for (int k = 0; k < K; k++) {
        mean += outcome[k];
        cut |= truncated[k];
    }
    mean /= K;
    /* a small tolerance so that e.g. 1/5 passes a 0.2 bound despite rounding */
    if (mean < acc_lo - 1e-9 || mean > acc_hi + 1e-9) return 0;
    return !(drop_truncated && cut);
}

void rollout_step(Rollout *r, Groups *batch, RolloutStats *st) {
    const RlConfig *c = &r->rc->rl;
    int P = c->prompts_per_step, K = c->samples_per_prompt;
    memset(st, 0, sizeof *st);
    for (int a = 0; a < c->max_attempts && r->carry.n < P; a++) {
        attempt(r, c->oversample * P, st);
        for (int g = 0; g < r->scratch.n; g++) {
            int pass = group_passes(r->scratch.outcome + g * K, r->scratch.truncated + g * K, K,
                                    c->acc_lo, c->acc_hi, c->drop_truncated);
            if (pass && r->carry.n < r->carry.cap) groups_push(&r->carry, &r->scratch, g);
        }
    }
    groups_take(batch, &r->carry, P);
    st->groups_kept = batch->n;
}

void rollout_last_attempt(Rollout *r, Groups *dst, int n) {
    dst->n = 0;
    for (int g = 0; g < r->scratch.n && g < n; g++) groups_push(dst, &r->scratch, g);
}
