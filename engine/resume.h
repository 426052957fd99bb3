/* The RL phase's resume point (rl.save_every, `train --resume`): everything a PRIME run needs
 * to go on after a step exactly as if it had not stopped, in one safetensors file written
 * atomically: the reference, policy, PRM and critic parameters in fp32, the AdamW moments and
 * update counts, the rollout's prompt counter and carried groups, the skipped-update count,
 * the report so far and the length of metrics.jsonl at the save. */
#pragma once
#include "prime.h"
#include "report.h"

/* RUN_DIR/resume.safetensors into buf (cap bytes). */
void resume_path(char *buf, size_t cap, const char *run_dir);

/* Writes the state after RL step `step`. Every rank calls it (under ZeRO-1 the AdamW moments
 * gather through the models' gradient buffers, which it leaves unspecified); rank 0 writes
 * the file, the others return DR_OK. */
int resume_save(const char *path, const Prime *p, int step, const RunReport *rep,
                long metrics_bytes);

/* The reference parameters into m, which prime_init then copies into the reference and the
 * PRM; checks that the file fits m (parameter count). DR_ERR names the file and the field. */
int resume_load_reference(const char *path, Model *m);

/* The rest into an initialised p and into rep (its curves are replaced); *step: RL steps
 * done; *metrics_bytes: metrics.jsonl's length at the save. */
int resume_load(const char *path, Prime *p, RunReport *rep, int *step, long *metrics_bytes);
