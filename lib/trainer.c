#include "trainer.h"
#include "util.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Sub-seeds of --seed for the shuffle and dropout (the initial weights use
 * --seed itself), so that the streams are unrelated. */
#define SHUFFLE_STREAM 0x53485546464c45ull /* "SHUFFLE" */
#define DROPOUT_STREAM 0x44524f504f5554ull /* "DROPOUT" */

train_options train_options_default(void)
{
    train_options o = {
        .batch_size = 32, .epochs = 1, .lr = 2e-5, .warmup = "0.1",
        .scale = MNR_DEFAULT_SCALE, .optimizer = OPTIM_ADAMW, .weight_decay = 0.01,
        .adam_eps = 1e-8, .max_grad_norm = 1.0, .seed = 42, .shuffle = 1,
    };
    warmup_parse(o.warmup, &o.warm);
    return o;
}

static const char *const optimizer_names[] = {"adamw", "adam", NULL}; /* as optim_kind */

int optimizer_parse(const char *s, optim_kind *k)
{
    int i = parse_choice(s, optimizer_names);
    if (i >= 0)
        *k = (optim_kind)i;
    return i < 0 ? -1 : 0;
}

const char *optimizer_name(optim_kind k)
{
    return optimizer_names[k];
}

/* The number of batches the sampler makes of epoch e. */
static long epoch_batches(const trainer *t, long e)
{
    batch_plan p;
    epoch_order(t->order, t->data->rows, t->shuffle_seed, e, t->opt.shuffle);
    sampler_plan(t->data, t->order, (int)t->opt.batch_size, t->opt.drop_last, &p);
    long n = p.batches;
    batch_plan_free(&p);
    return n;
}

long trainer_count_steps(const trainer *t, long from, long first_batch, long need)
{
    long steps = 0;
    for (long e = from; e < t->opt.epochs && steps < need; e++) {
        long n = epoch_batches(t, e), b = e == from ? first_batch : 0;
        steps += n > b ? n - b : 0;
    }
    return steps;
}

/* Steps before position (epoch, batch), or -1 when the plan has no such
 * position. */
static long steps_before(const trainer *t, long epoch, long batch)
{
    if (epoch < 0 || batch < 0 || epoch > t->opt.epochs || (epoch == t->opt.epochs && batch))
        return -1;
    long steps = 0;
    for (long e = 0; e <= epoch && e < t->opt.epochs; e++) {
        long n = epoch_batches(t, e);
        if (e < epoch)
            steps += n;
        else if (batch > n)
            return -1;
        else
            steps += batch;
    }
    return steps;
}

void trainer_init(trainer *t, const train_options *o, const bert_model *m, encoder *enc,
                  const loss *l, const train_data *data, train_position pos, long schedule_steps)
{
    memset(t, 0, sizeof *t);
    t->opt = *o;
    t->model = m;
    t->enc = enc;
    t->loss = *l;
    t->data = data;
    t->pos = pos;
    t->adam = adam_defaults();
    t->adam.kind = o->optimizer;
    t->adam.eps = o->adam_eps;
    t->adam.weight_decay = o->weight_decay;
    t->shuffle_seed = (uint64_t)o->seed ^ SHUFFLE_STREAM;
    t->dropout_seed = (uint64_t)o->seed ^ DROPOUT_STREAM;
    t->best_score = -INFINITY;

    int n = trainer_pass_sequences(o, data->columns);
    t->ids = xmallocarray((size_t)n * data->max_len, sizeof *t->ids);
    t->lens = xmallocarray(n, sizeof *t->lens);
    t->drop_row = xmallocarray(n, sizeof *t->drop_row);
    t->drop_col = xmallocarray(n, sizeof *t->drop_col);
    t->seq = xmallocarray(n, sizeof *t->seq);
    t->order = xmallocarray(data->rows, sizeof *t->order);
    if (o->keep_best)
        t->best_params = xmallocarray(encoder_nparams(enc), sizeof *t->best_params);

    if (pos.step > 0 && steps_before(t, pos.epoch, pos.batch) != pos.step)
        die("the position to resume from (step %ld: epoch %ld, batch %ld) is not one of this "
            "data's batch plan", pos.step, pos.epoch + 1, pos.batch);
    long data_steps = pos.step + trainer_count_steps(t, pos.epoch, pos.batch, LONG_MAX);
    t->total_steps = o->max_steps > 0 && o->max_steps < data_steps ? o->max_steps : data_steps;
    if (t->total_steps == 0)
        die("no batch to train on: %lld rows, batch size %ld%s", (long long)data->rows,
            o->batch_size, o->drop_last ? " and --drop-last" : "");
    t->schedule_steps = schedule_steps > 0 ? schedule_steps : t->total_steps;
    t->warmup = warmup_steps(&o->warm, t->schedule_steps);
}

void trainer_free(trainer *t)
{
    free(t->ids);
    free(t->lens);
    free(t->drop_row);
    free(t->drop_col);
    free(t->seq);
    free(t->order);
    free(t->best_params);
    free(t->own_pooled);
}

int trainer_pass_sequences(const train_options *o, int columns)
{
    long all = o->batch_size * columns;
    return (int)(o->mini_batch > 0 && o->mini_batch < all ? o->mini_batch : all);
}

/* One encoder pass over rows [i0, i1) of columns [c0, c1) of the batch
 * rows[0..B) of step k, pooled from row `at` of the batch-wide block, pass
 * row after pass row (column after column): at c0 * B + i0 for every column
 * of the whole batch, or for a span of one column, the pass's rows then
 * being where the batch has them (column c's row i at c * B + i). */
static void encode_pass(trainer *t, const int64_t *rows, int B, long k, int c0, int c1, int i0,
                        int i1, int at)
{
    const train_data *d = t->data;
    int C = d->columns, n = 0;
    for (int c = c0; c < c1; c++)
        for (int i = i0; i < i1; i++, n++) {
            t->seq[n] = rows[i] * C + c;
            t->drop_row[n] = i;
            t->drop_col[n] = c;
        }
    int T = train_data_pack(d, t->seq, n, t->ids, t->lens);
    dropout_keys keys = {.seed = t->dropout_seed, .step = (uint64_t)k, .row = t->drop_row,
                         .column = t->drop_col};
    encoder_forward(t->enc, t->ids, t->lens, n, T, &keys, at);
}

/* Several ranks, one pass over this rank's rows first .. first + b - 1 of
 * every column, pooled into the scratch rows C * B ..: to_batch moves the
 * embeddings to their rows of the batch (column c's row i at c * B + i);
 * otherwise the gradients of those rows go to the scratch rows, where the
 * backward pass reads them.  Through the host (a few rows; the encoder's
 * memory may be the GPU's). */
static void move_rows(trainer *t, int B, int first, int b, int to_batch)
{
    encoder *e = t->enc;
    size_t H = t->model->cfg.hidden, C = t->data->columns, block = (size_t)b * H;
    float *pooled = (float *)encoder_pooled(e), *grad = encoder_pooled_grad(e);
    float *scratch = (to_batch ? pooled : grad) + C * B * H;
    if (to_batch)
        encoder_download(e, t->own_pooled, scratch, C * block);
    for (size_t c = 0; c < C; c++) {
        size_t at = (c * B + first) * H;
        if (to_batch)
            encoder_upload(e, pooled + at, t->own_pooled + c * block, block);
        else
            encoder_download(e, t->own_pooled + c * block, grad + at, block);
    }
    if (!to_batch)
        encoder_upload(e, scratch, t->own_pooled, C * block);
}

/* Several ranks: every rank's rows of each column to every rank, in the
 * encoder's memory (through NCCL on GPUs). */
static void gather_pooled(trainer *t, int B)
{
    comm *cm = t->comm;
    int C = t->data->columns, H = t->model->cfg.hidden, N = comm_size(cm);
    size_t *counts = xmallocarray(N, sizeof *counts), *displs = xmallocarray(N, sizeof *displs);
    for (int r = 0; r < N; r++) {
        int f, n;
        comm_slice(B, N, r, &f, &n);
        counts[r] = (size_t)n * H;
        displs[r] = (size_t)f * H;
    }
    float *pooled = (float *)encoder_pooled(t->enc);
    for (int c = 0; c < C; c++)
        comm_allgatherv(cm, pooled + (size_t)c * B * H, counts, displs, encoder_on_gpu(t->enc));
    free(counts);
    free(displs);
}

double trainer_forward_backward(trainer *t, const int64_t *rows, int B, long k)
{
    int C = t->data->columns, H = t->model->cfg.hidden, N = comm_size(t->comm), first, b;
    /* Several ranks: this one computes rows first .. last - 1 of the batch
     * (the dropout keys name rows by their place in the whole batch, so the
     * masks are those of one process). */
    comm_slice(B, N, comm_rank(t->comm), &first, &b);
    int last = first + b;
    /* Cached (GradCache, as sentence-transformers' Cached* losses): each
     * column in spans of mini_batch sequences, embedded once for the loss
     * and again, with the same dropout masks (they depend on the position
     * only), for the backward pass from the span's share of the embeddings'
     * gradient.  The gradients add up to those of the whole batch. */
    int span = t->opt.mini_batch > 0 && t->opt.mini_batch < (long)b * C ? (int)t->opt.mini_batch
                                                                         : 0;
    /* Several ranks without spans: one pass (large matrix products) into
     * scratch rows after the batch's, moved into place. */
    int scratch = N > 1 && !span;
    encoder *e = t->enc;
    encoder_zero_grads(e);
    if (N > 1 && !t->own_pooled)
        t->own_pooled = xmallocarray((size_t)B * C * H, sizeof *t->own_pooled);
    if (b > 0 && span)
        for (int c = 0; c < C; c++)
            for (int i = first; i < last; i += span)
                encode_pass(t, rows, B, k, c, c + 1, i, i + span < last ? i + span : last,
                            c * B + i);
    else if (b > 0)
        encode_pass(t, rows, B, k, 0, C, first, last, scratch ? C * B : 0);
    if (scratch && b > 0)
        move_rows(t, B, first, b, 1);
    if (N > 1)
        gather_pooled(t, B);

    const float **cols = xmallocarray(C, sizeof *cols);
    float **dcols = xmallocarray(C, sizeof *dcols);
    for (int c = 0; c < C; c++) {
        cols[c] = encoder_pooled(e) + (size_t)c * B * H;
        dcols[c] = encoder_pooled_grad(e) + (size_t)c * B * H;
    }
    /* A Normalize module after pooling changes nothing here: the losses are
     * computed on cosines, which normalisation leaves as they are. */
    loss_batch lb = {.H = H, .columns = C, .total_rows = B, .row_offset = first, .rows = b,
                     .col = cols};
    size_t model_floats = t->model->nparams;
    float *head = t->loss.head_size ? encoder_params(e) + model_floats : NULL;
    float *dhead = t->loss.head_size ? encoder_grads(e) + model_floats : NULL;
    double loss = 0;
    if (b > 0) {
        loss = loss_compute(&t->loss, &lb, encoder_on_gpu(e), head, dcols, dhead);
    } else { /* a rank without rows in a last, short batch adds nothing */
        float *zero = xcalloc((size_t)C * B * H, sizeof *zero);
        encoder_upload(e, encoder_pooled_grad(e), zero, (size_t)C * B * H);
        free(zero);
    }
    free(cols);
    free(dcols);
    loss = comm_sum(t->comm, loss);
    if (!isfinite(loss))
        return loss;
    /* Every rank's gradient of every embedding, summed: this rank's rows of
     * it are the gradient of its own embeddings. */
    if (N > 1)
        comm_allreduce(t->comm, encoder_pooled_grad(e), (size_t)C * B * H, encoder_on_gpu(e));
    if (scratch && b > 0)
        move_rows(t, B, first, b, 0);
    if (b > 0 && span)
        for (int c = 0; c < C; c++)
            for (int i = first; i < last; i += span) {
                encode_pass(t, rows, B, k, c, c + 1, i, i + span < last ? i + span : last,
                            c * B + i);
                encoder_backward(e);
            }
    else if (b > 0)
        encoder_backward(e);
    comm_allreduce(t->comm, encoder_grads(e), encoder_nparams(e), encoder_on_gpu(e));
    return loss;
}

double trainer_step(trainer *t, const int64_t *rows, int B, long k, double lr, double *norm)
{
    double loss = trainer_forward_backward(t, rows, B, k);
    *norm = isfinite(loss) ? encoder_optimizer_step(t->enc, &t->adam, lr, t->opt.max_grad_norm, k)
                           : NAN;
    return loss;
}

void trainer_evaluate(trainer *t)
{
    if (!t->hooks.evaluate)
        return;
    double score = t->hooks.evaluate(t);
    if (t->opt.keep_best && score > t->best_score) {
        t->best_score = score;
        t->best_step = t->pos.step;
        encoder_get(t->enc, BUF_PARAMS, t->best_params);
    }
    if (t->hooks.evaluated)
        t->hooks.evaluated(t, score);
}

static const char *nonfinite_name(double x)
{
    return isnan(x) ? "NaN" : x > 0 ? "infinite" : "-infinite";
}

train_result trainer_run(trainer *t)
{
    batch_plan plan = {0};
    long plan_epoch = -1;
    train_result result = TRAIN_DONE;
    while (t->pos.step < t->total_steps && t->pos.epoch < t->opt.epochs) {
        if (plan_epoch != t->pos.epoch) {
            batch_plan_free(&plan);
            epoch_order(t->order, t->data->rows, t->shuffle_seed, t->pos.epoch, t->opt.shuffle);
            sampler_plan(t->data, t->order, (int)t->opt.batch_size, t->opt.drop_last, &plan);
            plan_epoch = t->pos.epoch;
        }
        if (t->pos.batch >= plan.batches) {
            t->pos.epoch++;
            t->pos.batch = 0;
            continue;
        }
        if (comm_any(t->comm, t->hooks.should_stop && t->hooks.should_stop(t))) {
            result = TRAIN_STOPPED;
            break;
        }
        double t0 = now_seconds();
        const int64_t *rows = plan.rows + plan.start[t->pos.batch];
        int B = (int)(plan.start[t->pos.batch + 1] - plan.start[t->pos.batch]);
        long k = t->pos.step + 1;
        double lr = lr_linear_warmup(t->opt.lr, t->warmup, t->schedule_steps, k - 1), norm;
        double loss = trainer_step(t, rows, B, k, lr, &norm);
        if (!isfinite(loss) || !isfinite(norm)) {
            int bad_loss = !isfinite(loss);
            snprintf(t->failure, sizeof t->failure, "step %ld: %s is %s; training stopped", k,
                     bad_loss ? "the loss" : "the gradient norm",
                     nonfinite_name(bad_loss ? loss : norm));
            result = TRAIN_FAILED;
            break;
        }
        t->pos.step = k;
        t->pos.batch++;
        if (t->hooks.step_done)
            t->hooks.step_done(t, B, loss, lr, norm, now_seconds() - t0);
        if (t->opt.eval_every > 0 && k % t->opt.eval_every == 0)
            trainer_evaluate(t);
        if (t->hooks.checkpoint && t->opt.checkpoint_every > 0 && k % t->opt.checkpoint_every == 0)
            t->hooks.checkpoint(t);
    }
    /* A signal during the last step still stops the run. */
    if (result == TRAIN_DONE && comm_any(t->comm, t->hooks.should_stop && t->hooks.should_stop(t)))
        result = TRAIN_STOPPED;
    batch_plan_free(&plan);
    return result;
}
