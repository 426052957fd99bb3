/* The supervised phase: batches of worked solutions, cross-entropy on the solution tokens,
 * AdamW with warm-up and cosine decay, held-out loss, metrics and progress. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "optimizer.h"
#include "lr_schedule.h"
#include "dist.h"
#include "sft.h"
#include "tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/error.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"

void sft_batch_init(SftBatch *b, int B, int T) {
    memset(b, 0, sizeof *b);
    b->B = b->cap_B = B;
    b->T = b->cap_T = T;
    b->tokens = xcalloc((size_t)B * T, sizeof(int));
    b->targets = xcalloc((size_t)B * T, sizeof(int));
    b->prompt_len = xcalloc(B, sizeof(int));
}

void sft_batch_free(SftBatch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->prompt_len);
    memset(b, 0, sizeof *b);
}

int sft_max_len(const ArithParams *ap) {
    /* worst case: every operand max_value with '-' signs growing the magnitude */
    char digits[32];
    long worst = (long)ap->max_value * ap->max_operands;
    int dv = snprintf(digits, sizeof digits, "%d", ap->max_value);
    int da = snprintf(digits, sizeof digits, "-%ld", worst);
    int n = ap->max_operands;
    int prompt = 2 + n * (dv + 1);
    int steps = (n - 1) * (da + 1 + dv + 1 + da + 1);
    return 1 + prompt + steps + 3 + da + 1;
}

int sft_batch_fill(SftBatch *b, const ArithParams *ap, unsigned long long seed,
                   unsigned long long first, int B) {
    char prompt[ARITH_MAX_TEXT], sol[ARITH_MAX_TEXT];
    int T = 0, st = DR_OK, cap = b->cap_T;
    CHECK(B <= b->cap_B);
    b->n_target = 0;
    for (int r = 0; r < B && st == DR_OK; r++) {
        long ans;
        arith_problem(ap, seed, first + r, prompt, sol, &ans);
        int *row = b->tokens + (size_t)r * cap;
        row[0] = CHARTOK_BOS;
        int np = chartok_encode(prompt, row + 1, cap - 1);
        int ns = np < 0 ? -1 : chartok_encode(sol, row + 1 + np, cap - 2 - np);
        if (np < 0 || ns < 0) {
            st = dr_error("problem %llu does not fit in %d tokens", first + r, cap);
            break;
        }
        int len = 1 + np + ns + 1;
        row[len - 1] = CHARTOK_EOS;
        for (int t = len; t < cap; t++) row[t] = CHARTOK_PAD;
        b->prompt_len[r] = 1 + np;
        if (len > T) T = len;
    }
    if (st) return st;
    /* repack rows to the batch's own padded length T */
    for (int r = 0; r < B; r++)
        memmove(b->tokens + (size_t)r * T, b->tokens + (size_t)r * cap, sizeof(int) * T);
    b->B = B;
    b->T = T;
    for (int r = 0; r < B; r++) {
        int *row = b->tokens + (size_t)r * T, *tg = b->targets + (size_t)r * T;
        for (int t = 0; t < T; t++) {
            int next = t + 1 < T ? row[t + 1] : CHARTOK_PAD;
            int valid = t + 1 >= b->prompt_len[r] && next != CHARTOK_PAD;
            tg[t] = valid ? next : -1;
            b->n_target += valid;
        }
    }
    return DR_OK;
}

double sft_loss(Model *m, const SftBatch *b, int train, float *logp, float *dlogp) {
    /* with several ranks each takes its rows; the mean is over the whole batch's targets */
    int lo, hi, T = b->T;
    dist_rows(0, b->B, &lo, &hi);
    size_t o = (size_t)lo * T, N = (size_t)(hi - lo) * T;
    double sum = 0;
    if (hi > lo) {
        model_forward(m, b->tokens + o, b->targets + o, hi - lo, T, logp + o, NULL);
        for (size_t i = o; i < o + N; i++)
            if (b->targets[i] >= 0) sum -= logp[i];
    }
    double n = b->n_target > 0 ? b->n_target : 1;
    if (train && hi > lo) {
        for (size_t i = o; i < o + N; i++) dlogp[i] = b->targets[i] >= 0 ? (float)(-1.0 / n) : 0.0f;
        model_backward(m, b->tokens + o, b->targets + o, hi - lo, T, dlogp + o, NULL);
    }
    dist_sum_f64(&sum, 1);
    return sum / n;
}

static double eval_loss(Model *m, const RunConfig *rc, const ArithParams *ap, SftBatch *b,
                        float *logp) {
    double total = 0, count = 0;
    for (int first = 0; first < rc->task.eval_size; first += b->cap_B) {
        int n = rc->task.eval_size - first < b->cap_B ? rc->task.eval_size - first : b->cap_B;
        CHECK(sft_batch_fill(b, ap, (unsigned long long)rc->task.eval_seed, first, n) == DR_OK);
        total += sft_loss(m, b, 0, logp, NULL) * b->n_target;
        count += b->n_target;
    }
    return total / (count > 0 ? count : 1);
}

static void metrics_line(FILE *f, json_t *j) {
    if (f) {
        json_dumpf(j, f, JSON_COMPACT | JSON_REAL_PRECISION(8));
        fputc('\n', f);
        fflush(f);
    }
    json_decref(j);
}

int sft_run(Model *m, const RunConfig *rc, const char *run_dir, TbLog *tb) {
    const SftConfig *c = &rc->sft;
    ArithParams ap = {rc->task.min_operands, rc->task.max_operands, rc->task.max_value,
                      c->teacher_slip};
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *mf = fopen(path, "a");
    if (!mf) return dr_error("%s: cannot open for writing", path);
    SftBatch b;
    sft_batch_init(&b, c->batch_size, m->act.T);
    float *logp = xmalloc(sizeof(float) * b.cap_B * b.cap_T);
    float *dlogp = xmalloc(sizeof(float) * b.cap_B * b.cap_T);
    model_alloc_grads(m);
    AdamW opt;
    adamw_init(&opt, m->be, m->n_params);
    adamw_overlap_backward(&opt, m);
    Progress pr;
    progress_init(&pr, "sft", c->steps);
    double tokens = 0, loss_acc = 0;
    int loss_n = 0, skipped = 0, st = DR_OK;
    for (int step = 0; step < c->steps; step++) {
        st = sft_batch_fill(&b, &ap, (unsigned long long)rc->seed,
                            (unsigned long long)step * c->batch_size, c->batch_size);
        if (st) break;
        model_zero_grads(m);
        adamw_arm(&opt); /* the step's one backward */
        double loss = sft_loss(m, &b, 1, logp, dlogp);
        double lr = lr_at(LR_COSINE, c->lr, step, c->steps, c->warmup_steps, c->min_lr_ratio);
        AdamWParams hp = {(float)lr, (float)c->beta1, (float)c->beta2, (float)c->eps,
                          (float)c->weight_decay};
        double gn = NAN;
        if (isfinite(loss))
            gn = adamw_step(&opt, m->params, m->grads, hp, c->grad_clip);
        else
            adamw_skip(&opt);
        model_params_changed(m);
        if (!isfinite(gn)) skipped++;
        tokens += (double)b.B * b.T;
        loss_acc += loss;
        loss_n++;
        int last = step + 1 == c->steps;
        if ((step + 1) % c->log_every == 0 || last) {
            double mean = loss_acc / loss_n;
            progress_print(&pr, step + 1, tokens, "tok", "loss %.4f | lr %.2e | gnorm %.3f", mean,
                           lr, gn);
            /* "o" with json_finite: a skipped step's NaN norm becomes null, not a lost line */
            metrics_line(mf, json_pack("{s:s, s:i, s:o, s:f, s:o, s:f, s:i, s:f}", "phase", "sft",
                                       "step", step + 1, "loss", json_finite(mean), "lr", lr,
                                       "grad_norm", json_finite(gn), "tokens_per_s",
                                       tokens / (time_now() - pr.t0), "skipped_steps", skipped,
                                       "elapsed_s", time_now() - pr.t0));
            if (tb) tb_sync(tb);
            loss_acc = 0;
            loss_n = 0;
        }
        if ((c->eval_every > 0 && (step + 1) % c->eval_every == 0) || last) {
            double el = eval_loss(m, rc, &ap, &b, logp);
            printf("sft eval | step %d | held-out loss %.4f\n", step + 1, el);
            metrics_line(mf, json_pack("{s:s, s:i, s:o}", "phase", "sft_eval", "step", step + 1,
                                       "eval_loss", json_finite(el)));
            if (tb) tb_sync(tb);
        }
    }
    adamw_free(&opt);
    free(logp);
    free(dlogp);
    sft_batch_free(&b);
    fclose(mf);
    return st;
}
