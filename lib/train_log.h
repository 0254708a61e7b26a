/* train_log.h - mnr-train's --log: JSON Lines, one object per optimizer
 * step ({"step", "epoch", "loss", "lr", "grad_norm", "examples_per_s",
 * "ranks"}: the processes that computed it, 1 without mpirun; the last key,
 * so that readers of the older keys keep working) and
 * per evaluation ({"step", "eval_sts_spearman"}), numbers with 17
 * significant digits (CONVENTIONS.md), each line flushed when written. */
#ifndef BP_TRAIN_LOG_H
#define BP_TRAIN_LOG_H

#include <stdio.h>

#include "trainer.h"

/* The log at path: a new run (resumed_step < 0) starts it anew; a resumed
 * run keeps the lines of steps up to resumed_step (a run that went on past
 * its last checkpoint wrote more: they are cut, so that no step appears
 * twice) and appends.  Errors name the file (and line). */
FILE *train_log_open(const char *path, long resumed_step);

void train_log_step(FILE *f, const char *path, const trainer *t, double loss, double lr,
                    double grad_norm, double examples_per_s);
void train_log_eval(FILE *f, const char *path, const trainer *t, double spearman);

#endif
