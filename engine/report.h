/* The end-of-run report: report.json, report.md and an SVG of held-out accuracy and
 * process reward against step. */
#pragma once

typedef struct {
    int sft_steps, rl_steps, skipped_updates;
    double sft_eval_accuracy, rl_eval_accuracy; /* NaN when not measured */
    double sft_seconds, rl_seconds, wall_seconds;
    double final_sft_loss;
    /* accuracy curve: eval points (step, accuracy), and per-step training signals */
    int n_eval;
    double *eval_step, *eval_acc; /* (n_eval) */
    int n_rl;
    double *rl_step, *rl_accuracy, *rl_reward; /* (n_rl) rollout accuracy, mean token reward */
} RunReport;

/* Writes DIR/report.json, DIR/report.md and DIR/curves.svg. */
int report_write(const char *dir, const char *config_path, const RunReport *r);
/* Prints the summary table to stdout. */
void report_print(const RunReport *r);
