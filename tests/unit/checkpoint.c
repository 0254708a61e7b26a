/* Checkpoints (checkpoint.h): what a trainer writes reads back as the same
 * state (position, schedule, options, input, best score, weights, moments);
 * damaged or foreign states are refused with one line naming the file;
 * option merging on resume. */
#include "../tap.h"
#include "bert_fixture.h"
#include "checkpoint.h"
#include "child.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void make_data(train_data *d)
{
    train_data_init(d, 2);
    for (int i = 0; i < 10; i++) {
        int32_t a[4] = {101, 1000 + i, 2000 + i, 102}, p[3] = {101, 3000 + i, 102};
        train_data_add_row(d, (const int32_t *const[]){a, p}, (const int32_t[]){4, 3});
    }
}

static char *dir;

/* Write state.json with `from` replaced by `to` in the one the test wrote. */
static void rewrite_state(const char *ckpt, const char *from, const char *to)
{
    char *path = path_join(ckpt, "state.json");
    size_t len;
    char *text = read_file(path, &len);
    char *at = strstr(text, from);
    if (!at)
        die("%s: no '%s'", path, from);
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fclose(f);
    free(text);
    free(path);
}

static void read_state(const void *ckpt)
{
    checkpoint_state st;
    checkpoint_read_state(ckpt, &st);
}

static void refused(const char *ckpt, const char *from, const char *to, const char *why)
{
    char *copy = path_join(dir, "damaged");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r %s %s", copy, ckpt, copy);
    if (system(cmd) != 0)
        die("cp failed");
    rewrite_state(copy, from, to);
    char err[1024];
    int status = run_in_child(read_state, copy, err, sizeof err);
    ok(status == 1 && strstr(err, why) && strchr(err, '\n') == err + strlen(err) - 1,
       "%s -> %s: refused, '%.*s'", from, to, (int)strcspn(err, "\n"), err);
    free(copy);
}

int main(void)
{
    util_init("test-checkpoint");
    dir = tap_temp_dir("checkpoint");
    char *mdir = fixture_path("tiny", "model"), *ckpt = path_join(dir, "out.checkpoint");
    bert_model m;
    model_load(&m, mdir);
    train_data d;
    make_data(&d);
    encoder_settings s = {.device = DEVICE_CPU, .doing = "testing", .training = 1,
                          .max_sequences = 8, .max_len = d.max_len};
    encoder *e = encoder_open(&m, &s);
    train_options o = train_options_default();
    o.batch_size = 4;
    o.lr = 1e-3;
    o.keep_best = 1;
    o.eval_sts = "sts.csv";
    o.checkpoint_every = 7;
    loss l = loss_mnr(MNR_DEFAULT_SCALE, o.symmetric);
    trainer t;
    trainer_init(&t, &o, &m, e, &l, &d, (train_position){0}, 0);
    int64_t rows[4] = {0, 1, 2, 3};
    double norm;
    trainer_step(&t, rows, 4, 1, 1e-3, &norm);
    t.pos = (train_position){.step = 2, .epoch = 0, .batch = 2};
    t.best_step = 1;
    t.best_score = 0.25;
    encoder_get(e, BUF_PARAMS, t.best_params);
    checkpoint_write(ckpt, &t);

    checkpoint_state st;
    checkpoint_read_state(ckpt, &st);
    ok(st.pos.step == 2 && st.pos.epoch == 0 && st.pos.batch == 2 && st.schedule_steps == 3 &&
           st.best_step == 1 && st.best_score == 0.25 && st.rows == 10 && st.columns == 2,
       "state: step %ld, epoch %ld, batch %ld, schedule %ld, best %ld (%g), %lld rows of %d",
       st.pos.step, st.pos.epoch, st.pos.batch, st.schedule_steps, st.best_step, st.best_score,
       (long long)st.rows, st.columns);
    ok(st.opt.batch_size == 4 && st.opt.lr == 1e-3 && st.opt.symmetric == 0 &&
           st.opt.keep_best && !strcmp(st.opt.eval_sts, "sts.csv") &&
           st.opt.checkpoint_every == 7 && !strcmp(st.opt.warmup, "0.1") &&
           st.opt.optimizer == OPTIM_ADAMW && st.opt.seed == 42,
       "options read back, --checkpoint-every included");
    checkpoint_check_input(ckpt, &st, &d);
    ok(1, "the input it was made on is accepted");

    size_t n = encoder_nparams(e);
    float *want = xmallocarray(n, sizeof *want), *got = xmallocarray(n, sizeof *got);
    encoder *e2 = encoder_open(&m, &s);
    trainer t2;
    trainer_init(&t2, &st.opt, &m, e2, &l, &d, st.pos, st.schedule_steps);
    checkpoint_load(ckpt, &st, &t2);
    int same = 1;
    for (encoder_buffer b = BUF_MOMENT1; b <= BUF_MOMENT2; b++) {
        encoder_get(e, b, want);
        encoder_get(e2, b, got);
        same &= !memcmp(want, got, n * sizeof *got);
    }
    ok(same && t2.best_step == 1 && !memcmp(t.best_params, t2.best_params, n * sizeof *got),
       "moments and the best weights read back bit for bit");
    bert_model saved;
    model_load(&saved, ckpt);
    encoder_get(e, BUF_PARAMS, want);
    ok(saved.nparams == m.nparams && !memcmp(saved.params, want, m.nparams * sizeof *want),
       "the checkpoint's model files hold the current weights");

    refused(ckpt, "mnr-train checkpoint 2", "mnr-train checkpoint 1",
            "checkpoint format 'mnr-train checkpoint 1' cannot be resumed by this version");
    refused(ckpt, "mnr-train checkpoint 2", "something else", "not an mnr-train checkpoint");
    refused(ckpt, "\"adamw\"", "\"sgd\"", "optimizer 'sgd' is not adamw or adam");
    refused(ckpt, "\"step\": 2", "\"step\": -2", "step: missing, or not an integer");
    refused(ckpt, "\"batch_size\": 4", "\"batch_size\": 0", "options: a value is out of range");
    refused(ckpt, "\"epochs\": 1,", "\"epochs\": 1, \"extra\": 1,", "options:");
    refused(ckpt, "\"columns\": 2", "\"columns\": 1000000", "columns: missing, or not an integer");

    train_options cur = train_options_default(), old = st.opt;
    cur.lr = 5e-5;
    cur.epochs = 3;
    checkpoint_merge_options(&cur, &old, GIVEN_LR);
    ok(cur.lr == 5e-5 && cur.epochs == 1 && cur.batch_size == 4 && cur.keep_best,
       "merge: given options win, the rest are the checkpoint's");

    trainer_free(&t);
    trainer_free(&t2);
    encoder_close(e);
    encoder_close(e2);
    model_free(&m);
    model_free(&saved);
    train_data_free(&d);
    free(want);
    free(got);
    remove_tree(dir);
    free(ckpt);
    free(mdir);
    return done_testing();
}
