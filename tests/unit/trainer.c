/* The trainer (trainer.h) on the tiny fixture model with dropout: the loop
 * takes the sampler's batches and calls its hooks as documented; a run cut
 * in two (position, weights and moments carried over, as a checkpoint does)
 * ends bit-identical to the run in one go; positions that are not the
 * data's are refused; a non-finite loss stops the run with nothing updated. */
#include "../tap.h"
#include "bert_fixture.h"
#include "child.h"
#include "rng.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

enum { ROWS = 22, BATCH = 4 };

static void make_data(train_data *d)
{
    rng_t r;
    rng_seed(&r, 1);
    train_data_init(d, 2);
    for (int i = 0; i < ROWS; i++) {
        int32_t a[12], p[12], na = 3 + (int)rng_below(&r, 9), np = 3 + (int)rng_below(&r, 9);
        for (int t = 0; t < 12; t++) {
            a[t] = 1000 + (int32_t)rng_below(&r, 500);
            p[t] = 1000 + (int32_t)rng_below(&r, 500);
        }
        a[0] = p[0] = 101;
        a[na - 1] = p[np - 1] = 102;
        train_data_add_row(d, (const int32_t *const[]){a, p}, (const int32_t[]){na, np});
    }
}

typedef struct {
    int steps, evals, checkpoints, stop_at;
    double losses[64];
} counts;

static void on_step(trainer *t, int rows, double loss, double lr, double norm, double s)
{
    counts *c = t->hook_ctx;
    c->losses[c->steps++] = loss;
}

static double on_evaluate(trainer *t)
{
    counts *c = t->hook_ctx;
    return -(double)c->evals++; /* the first evaluation is the best */
}

static void on_checkpoint(trainer *t)
{
    ((counts *)t->hook_ctx)->checkpoints++;
}

static int on_stop(trainer *t)
{
    counts *c = t->hook_ctx;
    return c->stop_at && t->pos.step >= c->stop_at;
}

static train_options options(void);

/* mini_batch 0: one pass of the whole batch; else passes of mini_batch. */
static encoder *open_cached(const bert_model *m, const train_data *d, int mini_batch)
{
    encoder_settings s = {.device = DEVICE_CPU, .doing = "testing", .training = 1,
                          .max_sequences = mini_batch ? mini_batch : BATCH * 2,
                          .max_pooled = BATCH * 2, .max_len = d->max_len};
    return encoder_open(m, &s);
}

static encoder *open_training(const bert_model *m, const train_data *d)
{
    return open_cached(m, d, 0);
}

/* The gradients of batch rows[0..BATCH) into grads, with passes of
 * mini_batch sequences (0: one), and the loss. */
static double batch_gradients(const bert_model *m, const train_data *d, const int64_t *rows,
                              int mini_batch, float *grads)
{
    train_options o = options();
    o.mini_batch = mini_batch;
    encoder *e = open_cached(m, d, mini_batch);
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    trainer t;
    trainer_init(&t, &o, m, e, &l, d, (train_position){0}, 0);
    double loss = trainer_forward_backward(&t, rows, BATCH, 1);
    encoder_get(e, BUF_GRADS, grads);
    trainer_free(&t);
    encoder_close(e);
    return loss;
}

static train_options options(void)
{
    train_options o = train_options_default();
    o.batch_size = BATCH;
    o.epochs = 2;
    o.lr = 1e-3;
    o.warmup = "2";
    warmup_parse(o.warmup, &o.warm);
    return o;
}

static void bad_position(const void *arg)
{
    const void *const *a = arg;
    train_options o = options();
    encoder *e = open_training(a[0], a[1]);
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    trainer t;
    trainer_init(&t, &o, a[0], e, &l, a[1], *(const train_position *)a[2], 0);
}

int main(void)
{
    util_init("test-trainer");
    char *dir = fixture_path("tiny", "model");
    bert_model m;
    model_load(&m, dir);
    m.cfg.hidden_dropout = m.cfg.attn_dropout = 0.1f;
    train_data d;
    make_data(&d);
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    train_options o = options();
    o.eval_every = 3;
    o.checkpoint_every = 4;
    o.keep_best = 1;

    /* One go. */
    encoder *e = open_training(&m, &d);
    trainer t;
    trainer_init(&t, &o, &m, e, &l, &d, (train_position){0}, 0);
    long steps = t.total_steps;
    ok(steps == 12 && t.schedule_steps == 12 && t.warmup == 2,
       "22 rows in batches of 4, 2 epochs: %ld steps, schedule %ld, warmup %ld", steps,
       t.schedule_steps, t.warmup);
    counts c = {0};
    t.hook_ctx = &c;
    t.hooks = (trainer_hooks){.step_done = on_step, .evaluate = on_evaluate,
                              .checkpoint = on_checkpoint, .should_stop = on_stop};
    train_result r = trainer_run(&t);
    ok(r == TRAIN_DONE && c.steps == 12 && c.evals == 4 && c.checkpoints == 3 &&
           t.pos.step == 12 && t.pos.epoch == 1 && t.pos.batch == 6,
       "the loop: %d steps, %d evaluations, %d checkpoints, at step %ld, epoch %ld, batch %ld",
       c.steps, c.evals, c.checkpoints, t.pos.step, t.pos.epoch, t.pos.batch);
    ok(t.best_step == 3, "keep_best: the best evaluation's step, %ld", t.best_step);
    size_t n = encoder_nparams(e);
    float *straight = xmallocarray(n, sizeof *straight);
    encoder_get(e, BUF_PARAMS, straight);
    ok(isfinite(c.losses[11]) && c.losses[11] != c.losses[0], "losses move: %.6f to %.6f",
       c.losses[0], c.losses[11]);
    trainer_free(&t);
    encoder_close(e);

    /* Stopped after step 5, continued from there. */
    e = open_training(&m, &d);
    trainer_init(&t, &o, &m, e, &l, &d, (train_position){0}, 0);
    counts c1 = {.stop_at = 5};
    t.hook_ctx = &c1;
    t.hooks = (trainer_hooks){.step_done = on_step, .should_stop = on_stop};
    r = trainer_run(&t);
    ok(r == TRAIN_STOPPED && t.pos.step == 5 && t.pos.epoch == 0 && t.pos.batch == 5,
       "should_stop: stopped at step %ld (epoch %ld, batch %ld)", t.pos.step, t.pos.epoch,
       t.pos.batch);
    float *params = xmallocarray(n, sizeof *params), *m1 = xmallocarray(n, sizeof *m1),
          *m2 = xmallocarray(n, sizeof *m2);
    encoder_get(e, BUF_PARAMS, params);
    encoder_get(e, BUF_MOMENT1, m1);
    encoder_get(e, BUF_MOMENT2, m2);
    train_position at = t.pos;
    trainer_free(&t);
    encoder_close(e);

    e = open_training(&m, &d);
    encoder_set(e, BUF_PARAMS, params);
    encoder_set(e, BUF_MOMENT1, m1);
    encoder_set(e, BUF_MOMENT2, m2);
    trainer_init(&t, &o, &m, e, &l, &d, at, 12);
    counts c2 = {0};
    t.hook_ctx = &c2;
    t.hooks = (trainer_hooks){.step_done = on_step};
    r = trainer_run(&t);
    ok(r == TRAIN_DONE && c2.steps == 7, "continued: %d more steps", c2.steps);
    encoder_get(e, BUF_PARAMS, params);
    ok(!memcmp(params, straight, n * sizeof *params) &&
           !memcmp(c2.losses, c.losses + 5, 7 * sizeof *c2.losses),
       "5 steps, then 7 from the position: bit-identical to 12 in one go (dropout on)");
    trainer_free(&t);
    encoder_close(e);

    /* Cached passes (--mini-batch): the loss and gradients of the whole
     * batch, with dropout on, up to rounding (the sums are split otherwise):
     * the loss within 1e-6 relative, each parameter kind's gradient within
     * 1e-5 of its largest magnitude. */
    static const int64_t rows[BATCH] = {3, 17, 8, 11};
    float *whole = xmallocarray(n, sizeof *whole), *cached = xmallocarray(n, sizeof *cached);
    double whole_loss = batch_gradients(&m, &d, rows, 0, whole);
    size_t off[P_COUNT + 1];
    bert_param_offsets(&m.cfg, off);
    for (int mini = 1; mini <= 5; mini += 2) {
        double cached_loss = batch_gradients(&m, &d, rows, mini, cached), worst = 0;
        for (int p = 0; p < P_COUNT; p++) {
            size_t len = off[p + 1] - off[p];
            double big = 0;
            for (size_t i = 0; i < len; i++)
                big = fmax(big, fabs(whole[off[p] + i]));
            double diff = max_abs_diff(whole + off[p], cached + off[p], len);
            worst = fmax(worst, big > 0 ? diff / big : diff);
        }
        ok(fabs(cached_loss - whole_loss) <= 1e-6 * fabs(whole_loss) && worst <= 1e-5,
           "mini-batches of %d sequences: loss %.9g (whole batch %.9g), gradients within %.3g of "
           "each kind's largest", mini, cached_loss, whole_loss, worst);
    }
    free(whole);
    free(cached);

    /* Positions that are not the data's. */
    static const train_position bad[] = {{.step = 4, .epoch = 0, .batch = 5},
                                         {.step = 7, .epoch = 1, .batch = 7},
                                         {.step = 30, .epoch = 5, .batch = 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512];
        const void *args[3] = {&m, &d, &bad[i]};
        int status = run_in_child(bad_position, args, err, sizeof err);
        ok(status == 1 && strstr(err, "is not one of this data's batch plan"),
           "step %ld at epoch %ld batch %ld refused: %.*s", bad[i].step, bad[i].epoch + 1,
           bad[i].batch, (int)strcspn(err, "\n"), err);
    }

    /* A non-finite loss: TRAIN_FAILED, weights untouched, position before it. */
    bert_model broken = m;
    broken.params = xmallocarray(m.nparams, sizeof *broken.params);
    memcpy(broken.params, m.params, m.nparams * sizeof *broken.params);
    broken.params[0] = NAN; /* the [PAD] embedding: not used by the data */
    for (size_t i = 0; i < (size_t)m.cfg.hidden; i++)
        broken.params[(size_t)101 * m.cfg.hidden + i] = NAN; /* [CLS]'s */
    e = open_training(&broken, &d);
    trainer_init(&t, &o, &broken, e, &l, &d, (train_position){0}, 0);
    r = trainer_run(&t);
    ok(r == TRAIN_FAILED && t.pos.step == 0 && strstr(t.failure, "step 1: the loss is NaN"),
       "a NaN loss stops the run before step 1: '%s'", t.failure);
    trainer_free(&t);
    encoder_close(e);
    free(broken.params);

    free(straight);
    free(params);
    free(m1);
    free(m2);
    train_data_free(&d);
    model_free(&m);
    free(dir);
    return done_testing();
}
