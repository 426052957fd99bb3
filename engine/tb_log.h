/* TensorBoard's view of a run: RUN_DIR/tensorboard/ holds one event file (tfevents.h) that
 * mirrors RUN_DIR/metrics.jsonl, every number of every line a scalar tagged with the line's
 * phase and the key's path ("rl/accuracy", "rl/phases/generate/tokens_per_s", "sft/loss") at
 * the line's step. metrics.jsonl stays the record; the event file follows it line for line,
 * and is made again from it when a run resumes (which cuts the metrics back). */
#pragma once
#include <stdio.h>
#include "../runtime/tfevents.h"

typedef struct {
    int on;
    char metrics[4096]; /* RUN_DIR/metrics.jsonl */
    char path[4200];    /* the event file */
    FILE *fp;
    TfEvents ev;
    long done; /* bytes of the metrics mirrored */
} TbLog;

/* Starts the mirror (nothing when on is 0): removes RUN_DIR/tensorboard's event files and
 * writes a new one with the metrics' lines so far (under a temporary name, renamed once
 * whole). DR_OK, or DR_ERR naming the path. */
int tb_open(TbLog *t, const char *run_dir, int on);
/* Mirrors the whole lines written to the metrics since the last call. When the event file
 * cannot be written, says so once on stderr and mirrors nothing more: the run goes on. */
void tb_sync(TbLog *t);
void tb_close(TbLog *t);
