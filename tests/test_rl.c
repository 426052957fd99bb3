/* The RL step on a tiny model: the accuracy filter and the carry-over buffer, and a few
 * PRIME steps with every estimator and PRM mode that change the policy (and the PRM when it
 * trains), stay finite, and write the debug dump with PRIME.md's tensor names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../engine/prime.h"
#include "../engine/sft.h"
#include "../engine/tokenizer_char.h"
#include "../runtime/check.h"
#include "../runtime/safetensors.h"
#include "testutil.h"

static void filter_and_buffer(void) {
    float o4[] = {1, 0, 0, 0}, o_all[] = {1, 1, 1, 1}, o_none[] = {0, 0, 0, 0};
    float o_half[] = {1, 0, 1, 0}, o5[] = {1, 0, 0, 0, 0};
    int cut0[5] = {0}, cut1[] = {0, 1, 0, 0};
    check(group_passes(o4, cut0, 4, 0.2, 0.8, 0) && group_passes(o_half, cut0, 4, 0.2, 0.8, 0),
          "groups with mean outcome inside [0.2, 0.8] pass");
    check(!group_passes(o_all, cut0, 4, 0.2, 0.8, 0) && !group_passes(o_none, cut0, 4, 0.2, 0.8, 0),
          "all-right and all-wrong groups are dropped");
    check(group_passes(o5, cut0, 5, 0.2, 0.8, 0), "the bound is inclusive (1/5 at acc_lo 0.2)");
    check(!group_passes(o_half, cut1, 4, 0.2, 0.8, 1) && group_passes(o_half, cut1, 4, 0.2, 0.8, 0),
          "drop_truncated drops a group with a cut response");

    Groups src, carry, batch;
    groups_init(&src, 5, 2, 3);
    groups_init(&carry, 8, 2, 3);
    groups_init(&batch, 3, 2, 3);
    src.n = 5;
    for (int g = 0; g < 5; g++) {
        src.prompt_id[g] = 100 + g;
        for (int k = 0; k < 2; k++) {
            src.outcome[g * 2 + k] = (float)(g * 10 + k);
            src.tokens[(g * 2 + k) * 3] = g;
        }
    }
    for (int g = 0; g < 5; g++) groups_push(&carry, &src, g);
    groups_take(&batch, &carry, 3);
    int ok = batch.n == 3 && carry.n == 2 && batch.prompt_id[0] == 100 &&
             batch.prompt_id[2] == 102 && carry.prompt_id[0] == 103 && carry.prompt_id[1] == 104 &&
             carry.outcome[1] == 31 && carry.tokens[2 * 3] == 4;
    groups_take(&batch, &carry, 3);
    ok &= batch.n == 2 && carry.n == 0 && batch.prompt_id[1] == 104;
    check(ok, "the carry buffer hands out groups first-in first-out and keeps the surplus");
    groups_free(&src);
    groups_free(&carry);
    groups_free(&batch);
}

static RunConfig tiny_config(const char *estimator, const char *prm_update) {
    RunConfig rc;
    run_config_default(&rc);
    rc.task.max_operands = 2;
    rc.task.max_value = 5;
    rc.task.eval_size = 8;
    rc.rl.prompts_per_step = 4;
    rc.rl.samples_per_prompt = 3;
    rc.rl.max_response_tokens = 12;
    rc.rl.acc_lo = 0; /* a random model is never right: keep every group */
    rc.rl.acc_hi = 1;
    rc.rl.oversample = 1;
    rc.rl.max_attempts = 1;
    rc.rl.ppo_minibatches = 2;
    rc.rl.lr = 1e-3;
    rc.rl.prm_lr = 1e-3;
    rc.rl.critic_lr = 1e-3;
    rc.rl.weight_decay = 0; /* so that only the losses move the policy */
    rc.sft.steps = 150;
    rc.sft.batch_size = 16;
    rc.sft.log_every = 1000;
    snprintf(rc.rl.estimator, CFG_STR_LEN, "%s", estimator);
    snprintf(rc.rl.prm_update, CFG_STR_LEN, "%s", prm_update);
    return rc;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static int any_nonzero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 1;
    return 0;
}

/* The tiny model of these tests after a little SFT, so that some answers are right and
 * outcome advantages are not all zero. */
static void sft_model(Model *m, const RunConfig *rc) {
    ModelConfig c = {0};
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab = CHARTOK_VOCAB;
    c.d_model = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    c.d_ff = 24;
    c.max_pos = 64;
    c.norm_eps = 1e-6f;
    c.rope_theta = 10000;
    c.bos_id = CHARTOK_BOS;
    c.eos_id = CHARTOK_EOS;
    c.pad_id = CHARTOK_PAD;
    model_init(m, &c, BACKEND_CPU, 16, prime_max_len(NULL, rc));
    model_init_random(m, 3, 0.1f);
    char sft_dir[] = "/tmp/denserl_rl_sft_XXXXXX";
    CHECK(mkdtemp(sft_dir) != NULL);
    CHECK(sft_run(m, rc, sft_dir, NULL) == 0);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", sft_dir);
    CHECK(system(rm) == 0);
}

static void rl_steps(const char *estimator, const char *prm_update, const char *gran,
                     const char *xform, const char *dump_dir) {
    RunConfig rc = tiny_config(estimator, prm_update);
    snprintf(rc.rl.granularity, CFG_STR_LEN, "%s", gran);
    snprintf(rc.rl.reward_transform, CFG_STR_LEN, "%s", xform);
    if (dump_dir) snprintf(rc.debug_dump_dir, CFG_STR_LEN, "%s", dump_dir);
    Model m;
    sft_model(&m, &rc);
    Prime p;
    prime_init(&p, &rc, NULL, &m, NULL);
    float *before = xmalloc(sizeof(float) * m.n_params);
    memcpy(before, m.params, sizeof(float) * m.n_params);
    int ok = 1, steps = 0;
    double right = 0;
    StepBatch *b = &p.b;
    /* three steps, and more (up to eight) while the last one's advantages are all zero (every
     * group all right or all wrong), which would leave the check below nothing to see */
    while (ok && (steps < 3 || (!any_nonzero(b->advantages, (size_t)b->N * b->T) && steps < 8))) {
        RolloutStats rs;
        StepStats ss;
        ok &= prime_step(&p, ++steps, &rs, &ss) == 0 && p.groups.n == 4 && ss.skipped == 0;
        right += rs.outcome_sum;
        ok &= isfinite(ss.policy_loss) && isfinite(ss.prm_loss) && isfinite(ss.grad_norm);
    }
    /* the update must raise the log-probs of tokens with positive advantage: re-score the
     * last batch with the updated policy */
    model_forward(&m, b->tokens, b->targets, b->N, b->T, b->work, NULL);
    double dot = 0;
    for (size_t i = 0; i < (size_t)b->N * b->T; i++)
        if (b->mask[i] != 0) dot += (double)b->advantages[i] * (b->work[i] - b->logp_old[i]);
    ok &= dot > 0;
    int policy_moved = memcmp(p.ref.params, m.params, sizeof(float) * m.n_params) != 0;
    int prm_moved = memcmp(p.ref.params, p.prm.params, sizeof(float) * m.n_params) != 0;
    int ref_frozen = memcmp(before, p.ref.params, sizeof(float) * m.n_params) == 0;
    ok &= all_finite(m.params, m.n_params) && all_finite(p.prm.params, m.n_params);
    char msg[200];
    snprintf(msg, sizeof msg,
             "%d steps of %s / prm %s / %s / %s: finite, policy %s, PRM %s, reference frozen "
             "(%.0f right of %d), sum A dlogp %+.3g",
             steps, estimator, prm_update, gran, xform, policy_moved ? "moved" : "STILL",
             prm_moved ? "moved" : "unchanged", right, 12 * steps, dot);
    int want_prm = strcmp(prm_update, "none") != 0;
    check(ok && policy_moved && prm_moved == want_prm && ref_frozen, "%s", msg);
    prime_free(&p);
    model_free(&m);
    free(before);
}

static void check_dump(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/step_000001.safetensors", dir);
    StFile f;
    int ok = st_open(&f, path) == 0;
    const char *names[] = {"tokens",     "response_mask", "group",    "outcome",
                           "logp_old",   "logp_ref",      "logp_prm", "token_reward",
                           "advantages", "returns",       "values"};
    for (int i = 0; ok && i < 11; i++) ok &= st_find(&f, names[i]) != NULL;
    if (ok) {
        const StTensor *t = st_find(&f, "tokens"), *a = st_find(&f, "advantages");
        ok = t->dtype == ST_I32 && t->ndim == 2 && t->shape[0] == 12 && a->dtype == ST_F32 &&
             a->shape[0] == t->shape[0] && a->shape[1] == t->shape[1] && f.metadata_json &&
             strstr(f.metadata_json, "\"estimator\"") && strstr(f.metadata_json, "gae");
        st_close(&f);
    }
    check(ok, "debug dump has every PRIME.md tensor with the batch's shapes and the settings");
}

/* prime_score_auc on hand-computed cases */
static void score_auc(void) {
    const float s[] = {0.3f, -1.0f, 0.3f, 2.0f, -0.5f}, o[] = {1, 0, 0, 1, 0};
    /* correct rows score 0.3 and 2.0 against 0.3, -1.0, -0.5: 2.5 + 3 of 6 pairs */
    check(fabs(prime_score_auc(s, o, 5) - 5.5 / 6) < 1e-12, "PRM AUC counts ties as half");
    const float shifted[] = {-9.7f, -11.0f, -9.7f, -8.0f, -10.5f};
    check(prime_score_auc(shifted, o, 5) == prime_score_auc(s, o, 5),
          "PRM AUC ignores a common shift of the scores");
    const float flipped[] = {0, 1, 1, 0, 1};
    check(fabs(prime_score_auc(s, flipped, 5) - 0.5 / 6) < 1e-12, "PRM AUC of swapped labels");
    check(isnan(prime_score_auc(s, (const float[]){1, 1, 1, 1, 1}, 5)),
          "PRM AUC is NaN with one kind of outcome");
}

/* prm_update "off" with the outcome-only estimator: the policy takes the same steps, bit for
 * bit, as with a PRM trained beside it ("after"), whose rewards it ignores; the off run runs
 * no reference or PRM forward (one log-prob forward, the policy's, against two), makes no
 * PRM and reports no PRM loss. */
static void prm_off_matches(void) {
    const char *modes[2] = {"after", "off"};
    Model m[2];
    int fwd[2] = {0}, ok = 1;
    for (int k = 0; k < 2; k++) {
        RunConfig rc = tiny_config("rloo_outcome", modes[k]);
        sft_model(&m[k], &rc);
        Prime p;
        prime_init(&p, &rc, NULL, &m[k], NULL);
        ok &= (p.prm.params != NULL) == (k == 0); /* "off" makes no PRM */
        for (int s = 1; s <= 3; s++) {
            RolloutStats rs;
            StepStats ss;
            ok &= prime_step(&p, s, &rs, &ss) == 0 && p.groups.n == 4;
            ok &= k == 0 ? isfinite(ss.prm_loss) : isnan(ss.prm_loss) && isnan(ss.kl_ref);
        }
        fwd[k] = prime_logprob_forwards(&p);
        prime_free(&p);
    }
    const int same = memcmp(m[0].params, m[1].params, sizeof(float) * m[0].n_params) == 0;
    check(ok && same && fwd[0] == 2 && fwd[1] == 1,
          "rloo_outcome, prm_update off: the policy after 3 steps == with the PRM trained (%s), "
          "%d log-prob forwards a step against %d, no PRM made, no PRM loss or KL to the "
          "reference",
          same ? "bit for bit" : "DIFFERS", fwd[1], fwd[0]);
    model_free(&m[0]);
    model_free(&m[1]);
}

int main(void) {
    score_auc();
    filter_and_buffer();
    char dir[] = "/tmp/denserl_rl_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    rl_steps("rloo", "after", "token", "none", NULL);
    rl_steps("rloo", "before", "step", "delta", NULL);
    rl_steps("rloo_outcome", "none", "whole", "clip", NULL);
    rl_steps("grpo", "after", "token", "clip", NULL);
    rl_steps("reinforce", "after", "step", "none", NULL);
    rl_steps("gae", "after", "token", "none", dir);
    prm_off_matches();
    check_dump(dir);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return test_summary();
}
