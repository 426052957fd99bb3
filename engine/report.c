/* Run reports for people (markdown, SVG) and for programs (JSON). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "build_info.h"
#include "report.h"
#include "../runtime/error.h"
#include "../runtime/fileio.h"
#include "../runtime/jsonutil.h"
#include "../runtime/log.h"
#include "../runtime/plot.h"

static void pct(char *buf, int n, double x) {
    if (isfinite(x))
        snprintf(buf, n, "%.1f%%", 100 * x);
    else
        snprintf(buf, n, "n/a");
}

int report_write(const char *dir, const char *config_path, const RunReport *r) {
    char path[PATH_MAX];
    json_t *j = json_object();
    json_object_set_new(j, "config", json_string(config_path));
    json_object_set_new(j, "denserl", denserl_build_json());
    json_object_set_new(j, "sft_steps", json_integer(r->sft_steps));
    json_object_set_new(j, "rl_steps", json_integer(r->rl_steps));
    json_object_set_new(j, "sft_eval_accuracy", json_finite(r->sft_eval_accuracy));
    json_object_set_new(j, "rl_eval_accuracy", json_finite(r->rl_eval_accuracy));
    json_object_set_new(j, "final_sft_loss", json_finite(r->final_sft_loss));
    json_object_set_new(j, "skipped_updates", json_integer(r->skipped_updates));
    json_object_set_new(j, "sft_seconds", json_real(r->sft_seconds));
    json_object_set_new(j, "rl_seconds", json_real(r->rl_seconds));
    json_object_set_new(j, "wall_seconds", json_real(r->wall_seconds));
    json_t *curve = json_array();
    for (int i = 0; i < r->n_eval; i++)
        json_array_append_new(
            curve, json_pack("{s:f, s:f}", "step", r->eval_step[i], "accuracy", r->eval_acc[i]));
    json_object_set_new(j, "eval_curve", curve);
    snprintf(path, sizeof path, "%s/report.json", dir);
    int st = json_write_path(path, j);
    json_decref(j);
    if (st) return st;

    char a[32], b[32], w[32];
    pct(a, sizeof a, r->sft_eval_accuracy);
    pct(b, sizeof b, r->rl_eval_accuracy);
    format_duration(r->wall_seconds, w, sizeof w);
    char md[4096];
    int n = snprintf(md, sizeof md,
                     "# denserl run report\n\nConfig: `%s`; denserl %s, commit `%s` (%s)\n\n"
                     "| | value |\n| --- | --- |\n"
                     "| held-out accuracy after SFT (greedy) | %s |\n"
                     "| held-out accuracy after RL (greedy) | %s |\n"
                     "| SFT steps | %d |\n| RL steps | %d |\n| skipped updates | %d |\n"
                     "| wall time | %s |\n\n",
                     config_path, denserl_version(), denserl_commit(), denserl_backends(), a, b,
                     r->sft_steps, r->rl_steps, r->skipped_updates, w);
    if (r->n_eval > 0 || r->n_rl > 0)
        n += snprintf(md + n, sizeof md - n,
                      "![held-out accuracy and process reward](curves.svg)\n\n"
                      "Per-step metrics are in `metrics.jsonl`; checkpoints in `sft/`, "
                      "`policy/` and `prm/` (Hugging Face layout).\n");
    snprintf(path, sizeof path, "%s/report.md", dir);
    if (atomic_write(path, md, (size_t)n)) return DR_ERR;

    PlotSeries s[3] = {
        {"held-out accuracy (greedy)", r->eval_step, r->eval_acc, r->n_eval, NULL, NULL, 0},
        {"rollout accuracy", r->rl_step, r->rl_accuracy, r->n_rl, NULL, NULL, 0},
        {"mean token reward", r->rl_step, r->rl_reward, r->n_rl, NULL, NULL, 1},
    };
    PlotSpec spec = {"Accuracy and implicit process reward during RL",
                     "RL step",
                     "accuracy",
                     "mean token reward",
                     0,
                     1,
                     0,
                     0,
                     0,
                     0};
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    return plot_svg(path, &spec, s, 3);
}

void report_print(const RunReport *r) {
    char a[32], b[32], w[32];
    pct(a, sizeof a, r->sft_eval_accuracy);
    pct(b, sizeof b, r->rl_eval_accuracy);
    format_duration(r->wall_seconds, w, sizeof w);
    printf("\n+--------------------------------+-----------+\n");
    printf("| held-out accuracy after SFT    | %9s |\n", a);
    printf("| held-out accuracy after RL     | %9s |\n", b);
    printf("| SFT steps                      | %9d |\n", r->sft_steps);
    printf("| RL steps                       | %9d |\n", r->rl_steps);
    printf("| wall time                      | %9s |\n", w);
    printf("+--------------------------------+-----------+\n");
}
