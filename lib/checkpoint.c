#include "checkpoint.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "util.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static json_t *options_json(const train_options *o)
{
    return json_pack("{sI sI sI sI sI sI sI sf sf sf sf sf ss ss sI sb sb sb sb so sI}",
                     "batch_size", (json_int_t)o->batch_size, "epochs", (json_int_t)o->epochs,
                     "max_steps", (json_int_t)o->max_steps,
                     "schedule_steps", (json_int_t)o->schedule_steps,
                     "max_length", (json_int_t)o->max_length,
                     "eval_every", (json_int_t)o->eval_every,
                     "checkpoint_every", (json_int_t)o->checkpoint_every, "lr", o->lr,
                     "scale", o->scale, "weight_decay", o->weight_decay, "adam_eps", o->adam_eps,
                     "max_grad_norm", o->max_grad_norm, "warmup", o->warmup,
                     "optimizer", optimizer_name(o->optimizer), "seed", (json_int_t)o->seed,
                     "symmetric", o->symmetric, "shuffle", o->shuffle, "drop_last", o->drop_last,
                     "keep_best", o->keep_best,
                     "eval_sts", o->eval_sts ? json_string(o->eval_sts) : json_null(),
                     "mini_batch", (json_int_t)o->mini_batch);
}

static void options_from_json(train_options *o, json_t *j, const char *path)
{
    json_int_t bs, ep, ms, ss, ml, ee, ce, seed, mb = 0;
    const char *warmup, *optim;
    json_t *sts;
    json_error_t err;
    if (json_unpack_ex(j, &err, JSON_STRICT,
                       "{sI sI sI sI sI sI sI sF sF sF sF sF ss ss sI sb sb sb sb so s?I}",
                       "batch_size", &bs, "epochs", &ep, "max_steps", &ms, "schedule_steps", &ss,
                       "max_length", &ml, "eval_every", &ee, "checkpoint_every", &ce, "lr", &o->lr,
                       "scale", &o->scale, "weight_decay", &o->weight_decay,
                       "adam_eps", &o->adam_eps, "max_grad_norm", &o->max_grad_norm,
                       "warmup", &warmup, "optimizer", &optim, "seed", &seed,
                       "symmetric", &o->symmetric, "shuffle", &o->shuffle,
                       "drop_last", &o->drop_last, "keep_best", &o->keep_best,
                       "eval_sts", &sts, "mini_batch", &mb) != 0)
        die("%s: options: %s", path, err.text);
    if (bs < 1 || bs > 1 << 20 || ep < 1 || ep > 1 << 20 || ms < 0 || ss < 0 || ml < 0 ||
        ml > INT32_MAX || ee < 0 || ce < 0 || seed < 0 || mb < 0 || mb > 1 << 20 ||
        !(o->lr >= 0) || !(o->scale > 0) ||
        !(o->weight_decay >= 0) || !(o->adam_eps >= 0) || !(o->max_grad_norm >= 0) ||
        !isfinite(o->lr) || !isfinite(o->scale))
        die("%s: options: a value is out of range", path);
    o->batch_size = bs, o->epochs = ep, o->max_steps = ms, o->schedule_steps = ss;
    o->max_length = ml, o->eval_every = ee, o->checkpoint_every = ce, o->seed = seed;
    o->mini_batch = mb;
    o->warmup = xstrdup(warmup);
    if (warmup_parse(o->warmup, &o->warm) != 0)
        die("%s: options: warmup '%s' is neither steps nor a share", path, warmup);
    if (optimizer_parse(optim, &o->optimizer) != 0)
        die("%s: options: optimizer '%s' is not adamw or adam", path, optim);
    if (!json_is_null(sts) && !json_is_string(sts))
        die("%s: options: eval_sts is neither a path nor null", path);
    o->eval_sts = json_is_string(sts) ? xstrdup(json_string_value(sts)) : NULL;
}

void checkpoint_merge_options(train_options *o, const train_options *saved, unsigned given)
{
    struct { unsigned flag; const char *name; int differs; } fixed[] = {
        {GIVEN_BATCH, "--batch-size", o->batch_size != saved->batch_size},
        {GIVEN_SEED, "--seed", o->seed != saved->seed},
        {GIVEN_SHUFFLE, "--no-shuffle", o->shuffle != saved->shuffle},
        {GIVEN_DROP_LAST, "--drop-last", o->drop_last != saved->drop_last},
        {GIVEN_MAX_LENGTH, "--max-length", o->max_length != saved->max_length},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if ((given & fixed[i].flag) && fixed[i].differs)
            die_usage("%s differs from the checkpoint's: the batches would not be the same",
                      fixed[i].name);
    train_options merged = *saved;
#define KEEP_GIVEN(flag, field) if (given & (flag)) merged.field = o->field
    KEEP_GIVEN(GIVEN_EPOCHS, epochs);
    KEEP_GIVEN(GIVEN_MAX_STEPS, max_steps);
    KEEP_GIVEN(GIVEN_SCHEDULE, schedule_steps);
    KEEP_GIVEN(GIVEN_EVAL_EVERY, eval_every);
    KEEP_GIVEN(GIVEN_CHECKPOINT_EVERY, checkpoint_every);
    KEEP_GIVEN(GIVEN_LR, lr);
    KEEP_GIVEN(GIVEN_SCALE, scale);
    KEEP_GIVEN(GIVEN_WD, weight_decay);
    KEEP_GIVEN(GIVEN_EPS, adam_eps);
    KEEP_GIVEN(GIVEN_CLIP, max_grad_norm);
    KEEP_GIVEN(GIVEN_OPTIM, optimizer);
    KEEP_GIVEN(GIVEN_SYMMETRIC, symmetric);
    KEEP_GIVEN(GIVEN_KEEP_BEST, keep_best);
    KEEP_GIVEN(GIVEN_EVAL_STS, eval_sts);
    KEEP_GIVEN(GIVEN_MINI_BATCH, mini_batch);
    if (given & GIVEN_WARMUP) {
        merged.warmup = o->warmup;
        merged.warm = o->warm;
    }
#undef KEEP_GIVEN
    *o = merged;
}

static json_int_t state_int(json_t *obj, const char *path, const char *key, json_int_t min,
                            json_int_t max)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        die("%s: %s: missing, or not an integer from %lld to %lld", path, key, (long long)min,
            (long long)max);
    return json_integer_value(v);
}

void checkpoint_read_state(const char *dir, checkpoint_state *st)
{
    char *path = path_join(dir, "state.json");
    json_error_t err;
    json_t *state = json_load_file(path, 0, &err);
    if (!state)
        die("%s:%d: %s", path, err.line, err.text);
    memset(st, 0, sizeof *st);
    const char *format = json_string_value(json_object_get(state, "format"));
    if (!format || strncmp(format, "mnr-train checkpoint ", 21))
        die("%s: not an mnr-train checkpoint (format)", path);
    if (strcmp(format, CHECKPOINT_FORMAT))
        die("%s: checkpoint format '%s' cannot be resumed by this version, which reads '%s' "
            "(dropout masks are now drawn from position); its model files load with -m",
            path, format, CHECKPOINT_FORMAT);
    st->pos.step = state_int(state, path, "step", 0, INT32_MAX);
    st->pos.epoch = state_int(state, path, "epoch", 0, 1 << 20);
    st->pos.batch = state_int(state, path, "batch_in_epoch", 0, INT32_MAX);
    st->schedule_steps = state_int(state, path, "schedule_steps", 1, INT32_MAX);
    options_from_json(&st->opt, json_object_get(state, "options"), path);
    json_t *in = json_object_get(state, "input");
    st->rows = state_int(in, path, "rows", 1, INT64_MAX);
    st->columns = (int)state_int(in, path, "columns", 2, TRAIN_MAX_COLUMNS);
    const char *fp = json_string_value(json_object_get(in, "fingerprint"));
    if (!fp || strlen(fp) != 16)
        die("%s: input: fingerprint: missing or not 16 hexadecimal digits", path);
    strcpy(st->fingerprint, fp);
    json_t *best = json_object_get(state, "best");
    st->best_score = -INFINITY;
    if (best) {
        st->best_step = state_int(best, path, "step", 1, st->pos.step);
        json_t *score = json_object_get(best, "eval_sts_spearman");
        if (!json_is_number(score))
            die("%s: best: eval_sts_spearman: missing or not a number", path);
        st->best_score = json_number_value(score);
    }
    json_decref(state);
    free(path);
}

static void fingerprint_text(char out[17], const train_data *d)
{
    snprintf(out, 17, "%016" PRIx64, train_data_fingerprint(d));
}

void checkpoint_check_input(const char *dir, const checkpoint_state *st, const train_data *d)
{
    char fp[17];
    fingerprint_text(fp, d);
    if (st->rows != d->rows || st->columns != d->columns || strcmp(st->fingerprint, fp))
        die("%s: the input differs from the one this checkpoint was trained on "
            "(%lld rows of %d columns, fingerprint %s; the checkpoint's: %lld rows of %d, %s)",
            dir, (long long)d->rows, d->columns, fp, (long long)st->rows, st->columns,
            st->fingerprint);
}

/* Tensor name of file (in dir) into dst, n floats. */
static void read_flat(const char *dir, const char *file, const char *name, float *dst, size_t n)
{
    char *path = path_join(dir, file);
    safetensors st;
    st_open(&st, path);
    const st_tensor *t = st_find(&st, name);
    if (!t)
        die("%s: no tensor %s", path, name);
    if (t->dtype != ST_F32 || t->numel != n)
        die("%s: tensor %s: %s with %zu values, expected F32 with %zu", path, name,
            st_dtype_name(t->dtype), t->numel, n);
    memcpy(dst, t->data, n * sizeof *dst);
    st_close(&st);
    free(path);
}

void checkpoint_load(const char *dir, const checkpoint_state *st, trainer *t)
{
    size_t n = encoder_nparams(t->enc), model_floats = t->model->nparams;
    float *buf = xmallocarray(n, sizeof *buf);
    read_flat(dir, "optimizer.safetensors", "exp_avg", buf, n);
    encoder_set(t->enc, BUF_MOMENT1, buf);
    read_flat(dir, "optimizer.safetensors", "exp_avg_sq", buf, n);
    encoder_set(t->enc, BUF_MOMENT2, buf);
    if (n > model_floats) {
        encoder_get(t->enc, BUF_PARAMS, buf);
        read_flat(dir, "optimizer.safetensors", "head", buf + model_floats, n - model_floats);
        encoder_set(t->enc, BUF_PARAMS, buf);
    }
    free(buf);
    if (t->opt.keep_best && st->best_step > 0) {
        read_flat(dir, "best.safetensors", "params", t->best_params, n);
        t->best_step = st->best_step;
        t->best_score = st->best_score;
    }
}

static void write_flat(const char *path, const char *const names[], const float *const data[],
                       const size_t numel[], int n)
{
    st_out_tensor t[3];
    for (int i = 0; i < n; i++)
        t[i] = (st_out_tensor){.name = names[i], .dtype = ST_F32, .ndim = 1,
                               .shape = {(int64_t)numel[i]}, .data = data[i]};
    st_write(path, t, n, "{\"format\":\"pt\"}");
}

static void write_text(const char *path, const char *text)
{
    atomic_file f;
    atomic_open(&f, path);
    out_write(f.f, path, text, strlen(text));
    atomic_commit(&f);
}

void checkpoint_write(const char *dir, const trainer *t)
{
    size_t n = encoder_nparams(t->enc), model_floats = t->model->nparams;
    float *params = xmallocarray(n, sizeof *params);
    float *m1 = xmallocarray(n, sizeof *m1), *m2 = xmallocarray(n, sizeof *m2);
    encoder_get(t->enc, BUF_PARAMS, params);
    encoder_get(t->enc, BUF_MOMENT1, m1);
    encoder_get(t->enc, BUF_MOMENT2, m2);

    model_check_replaceable(dir, 1);
    char *tmp = atomic_dir_begin(dir);
    model_write_files(t->model, tmp, params);
    char *path = path_join(tmp, "optimizer.safetensors");
    write_flat(path, (const char *const[]){"exp_avg", "exp_avg_sq", "head"},
               (const float *const[]){m1, m2, params + model_floats},
               (const size_t[]){n, n, n - model_floats}, n > model_floats ? 3 : 2);
    free(path);
    if (t->best_step > 0) {
        path = path_join(tmp, "best.safetensors");
        write_flat(path, (const char *const[]){"params"}, (const float *const[]){t->best_params},
                   (const size_t[]){n}, 1);
        free(path);
    }

    char fingerprint[17];
    fingerprint_text(fingerprint, t->data);
    json_t *state = json_pack(
        "{ss sI sI sI sI so s{sI si ss}}", "format", CHECKPOINT_FORMAT,
        "step", (json_int_t)t->pos.step, "epoch", (json_int_t)t->pos.epoch,
        "batch_in_epoch", (json_int_t)t->pos.batch,
        "schedule_steps", (json_int_t)t->schedule_steps, "options", options_json(&t->opt),
        "input", "rows", (json_int_t)t->data->rows, "columns", t->data->columns,
        "fingerprint", fingerprint);
    if (t->best_step > 0)
        json_object_set_new(state, "best", json_pack("{sI sf}", "step", (json_int_t)t->best_step,
                                                     "eval_sts_spearman", t->best_score));
    char *text = json_dumps(state, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    strcpy(text + len, "\n");
    path = path_join(tmp, "state.json");
    write_text(path, text);
    free(path);
    free(text);
    json_decref(state);

    atomic_dir_commit(tmp, dir);
    free(tmp);
    free(params);
    free(m1);
    free(m2);
}
