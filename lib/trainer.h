/* trainer.h - training as sentence-transformers' trainer runs it, as a
 * library: the step (forward -> pooled embeddings -> loss -> backward from
 * the pooled gradient -> clipping -> optimizer), the loop over the sampler's
 * batches with hooks for the log, progress, evaluation and checkpoints, the
 * step counting and the run position.  Nothing here knows about files or
 * options parsing: cmd/mnr-train.c wires them in (checkpoint.h, sts_eval.h).
 */
#ifndef BP_TRAINER_H
#define BP_TRAINER_H

#include <stdint.h>
#include <stdio.h>

#include "comm.h"
#include "encoder.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "sampler.h"

/* What defines a run; kept in every checkpoint. */
typedef struct {
    long batch_size, epochs, max_steps, schedule_steps, max_length;
    long mini_batch; /* sequences per encoder pass with cached losses (GradCache); 0: none */
    long eval_every, checkpoint_every;
    double lr, scale, weight_decay, adam_eps, max_grad_norm;
    const char *warmup;  /* as written, so that it is parsed the same way on resume */
    warmup_spec warm;
    optim_kind optimizer;
    long seed;
    int symmetric, shuffle, drop_last, keep_best;
    const char *eval_sts; /* NULL: no evaluation */
} train_options;

/* sentence-transformers' defaults: batch 32, 1 epoch, lr 2e-5, warmup 0.1,
 * scale 20, AdamW with weight decay 0.01 and eps 1e-8, clipping at 1, seed
 * 42, shuffled. */
train_options train_options_default(void);
/* "adamw" or "adam": 0, or -1 for another name. */
int optimizer_parse(const char *s, optim_kind *k);
const char *optimizer_name(optim_kind k);

/* Where training stands between two steps. */
typedef struct {
    long step;  /* optimizer steps done */
    long epoch; /* 0-based epoch of the next batch */
    long batch; /* index of the next batch in that epoch's plan */
} train_position;

typedef struct trainer trainer;

/* Called by the loop; any may be NULL.  ctx is trainer.hook_ctx. */
typedef struct {
    /* after every step, with its rows, loss, learning rate, gradient norm
     * and seconds */
    void (*step_done)(trainer *t, int rows, double loss, double lr, double grad_norm, double seconds);
    /* an evaluation's score (higher is better), when one is due */
    double (*evaluate)(trainer *t);
    void (*evaluated)(trainer *t, double score);
    /* a checkpoint of the state at t->pos is due */
    void (*checkpoint)(trainer *t);
    /* nonzero: stop before the next step (e.g. a signal arrived) */
    int (*should_stop)(trainer *t);
} trainer_hooks;

struct trainer {
    train_options opt;
    const bert_model *model;
    encoder *enc;
    loss loss;
    const train_data *data;
    adam_config adam;
    uint64_t shuffle_seed, dropout_seed;
    long schedule_steps, warmup;
    long total_steps;       /* where this run stops */
    train_position pos;
    /* with keep_best: the best evaluation so far, its step (0: none) and
     * its weights (encoder_nparams floats) */
    double best_score;
    long best_step;
    float *best_params;
    trainer_hooks hooks;
    void *hook_ctx;
    /* The processes sharing each batch (NULL: this one alone): each takes
     * its slice of the batch's rows (comm_slice), the embeddings are
     * gathered so that every anchor meets every candidate of the batch, and
     * the gradients summed, so that every rank makes the same update. */
    comm *comm;
    /* after trainer_run returns TRAIN_FAILED: what went wrong */
    char failure[160];
    /* private: step buffers */
    int32_t *ids, *lens, *drop_row, *drop_col;
    int64_t *seq, *order;
    float *own_pooled; /* several ranks: this rank's rows on their way (host) */
};

/* Sequences per encoder pass of a batch of o's with columns columns:
 * batch_size * columns, or mini_batch when smaller (cached losses). */
int trainer_pass_sequences(const train_options *o, int columns);

/* A trainer for data on enc (opened with training, max_sequences at least
 * trainer_pass_sequences(), max_pooled at least batch_size * columns
 * (twice that with several ranks: scratch rows), max_len at least data's longest sequence) with
 * options o and loss l, at position pos (zero: a new run) of a schedule of
 * schedule_steps (0: the run's own step count): counts the steps and
 * resolves the warmup.  Dies when there is no batch to train on, or when
 * pos is not a position of the data's batch plan (a checkpoint made on
 * other data or settings, or a damaged one). */
void trainer_init(trainer *t, const train_options *o, const bert_model *m, encoder *enc,
                  const loss *l, const train_data *data, train_position pos, long schedule_steps);
void trainer_free(trainer *t);

/* The number of steps from position (epoch, batch) to the end of the data
 * (the sampler run ahead), at most need. */
long trainer_count_steps(const trainer *t, long epoch, long batch, long need);

/* The step's first part: the gradients of batch rows[0..B) of step k (its
 * dropout masks) in the encoder's zeroed gradient buffer, the gradient of
 * the pooled embeddings (column c's row i at c * B + i) in
 * encoder_pooled_grad(); returns the loss (not finite: no backward pass).
 * With mini_batch, in cached passes of at most mini_batch sequences.  With
 * several ranks (t->comm) this rank computes its slice of the rows
 * (comm_slice), and the loss and the gradients are the whole batch's, the
 * same on every rank. */
double trainer_forward_backward(trainer *t, const int64_t *rows, int B, long k);

/* One training step on rows[0..B) with 1-based step number k: returns the
 * loss (before the update) and the gradient norm in *norm (NaN when the loss
 * was not finite and nothing was updated). */
double trainer_step(trainer *t, const int64_t *rows, int B, long k, double lr, double *norm);

typedef enum { TRAIN_DONE, TRAIN_STOPPED, TRAIN_FAILED } train_result;

/* The loop up to total_steps: TRAIN_DONE; TRAIN_STOPPED when should_stop
 * said so (on any rank: the ranks stop at the same step) (t->pos is then where the next step would start); TRAIN_FAILED on
 * a non-finite loss or gradient norm (nothing updated by that step, t->pos
 * still before it). */
train_result trainer_run(trainer *t);

/* An evaluation now, through the hooks (keep_best bookkeeping included). */
void trainer_evaluate(trainer *t);

#endif
