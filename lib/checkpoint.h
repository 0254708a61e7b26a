/* checkpoint.h - a training run's state on disk, to resume it bit for bit.
 *
 * A checkpoint is a directory (CONVENTIONS.md): the model directory's files
 * (the current weights), optimizer.safetensors (the AdamW moments exp_avg
 * and exp_avg_sq over the whole parameter buffer, and `head`, a loss's own
 * parameters, when it has any), best.safetensors (with --keep-best, the
 * best weights so far) and state.json:
 *
 *   {"format": "mnr-train checkpoint 2", "step", "epoch", "batch_in_epoch",
 *    "schedule_steps", "options": {every option that defines the run},
 *    "input": {"rows", "columns", "fingerprint"}, "best": {"step", "eval_sts_spearman"}}
 *
 * Format 2 draws dropout masks from position (dropout.h), so the state needs
 * no generator.  Format 1 (a "dropout_rng" generator state) cannot continue
 * the same run and is refused, naming the format; its model files still load
 * with -m.  Written under a temporary name and renamed into place. */
#ifndef BP_CHECKPOINT_H
#define BP_CHECKPOINT_H

#include "trainer.h"

#define CHECKPOINT_FORMAT "mnr-train checkpoint 2"

/* Options given on the command line, as bits: a resumed run keeps the
 * checkpoint's value of every option not given again. */
enum {
    GIVEN_BATCH = 1 << 0, GIVEN_EPOCHS = 1 << 1, GIVEN_MAX_STEPS = 1 << 2,
    GIVEN_SCHEDULE = 1 << 3, GIVEN_MAX_LENGTH = 1 << 4, GIVEN_EVAL_EVERY = 1 << 5,
    GIVEN_LR = 1 << 6, GIVEN_SCALE = 1 << 7, GIVEN_WD = 1 << 8, GIVEN_EPS = 1 << 9,
    GIVEN_CLIP = 1 << 10, GIVEN_WARMUP = 1 << 11, GIVEN_OPTIM = 1 << 12, GIVEN_SEED = 1 << 13,
    GIVEN_SYMMETRIC = 1 << 14, GIVEN_SHUFFLE = 1 << 15, GIVEN_DROP_LAST = 1 << 16,
    GIVEN_KEEP_BEST = 1 << 17, GIVEN_EVAL_STS = 1 << 18, GIVEN_CHECKPOINT_EVERY = 1 << 19,
    GIVEN_MINI_BATCH = 1 << 20,
};

/* state.json, read. */
typedef struct {
    train_options opt;
    train_position pos;
    long schedule_steps;
    long best_step;        /* 0: none */
    double best_score;
    int64_t rows;
    int columns;
    char fingerprint[17];
} checkpoint_state;

/* Read DIR/state.json (dies with one line on anything but a valid format 2
 * state). */
void checkpoint_read_state(const char *dir, checkpoint_state *st);

/* *o becomes the checkpoint's options, except those given again (the bits
 * of given); one that decides the batches and differs is a usage error. */
void checkpoint_merge_options(train_options *o, const train_options *saved, unsigned given);

/* The input must be the one the checkpoint was made on. */
void checkpoint_check_input(const char *dir, const checkpoint_state *st, const train_data *d);

/* The optimizer moments, a loss head and (with keep_best and a best step)
 * the best weights of DIR into the trainer and its encoder. */
void checkpoint_load(const char *dir, const checkpoint_state *st, trainer *t);

/* A checkpoint of trainer t at t->pos in dir, replacing the one there. */
void checkpoint_write(const char *dir, const trainer *t);

#endif
