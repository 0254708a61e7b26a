/* fixtures PRECISION: the GPU encoder, loss and optimiser (through the
 * trainer, as mnr-train runs them) against the
 * tiny/head64 fixtures (TAP).
 *
 * fp32, at the CPU's tolerances: hidden states and embeddings within 1e-5
 * (absolute), the three losses within 1e-6 (relative), embedding and
 * parameter gradients within 1e-4 x the tensor's largest + 1e-6, and the
 * three AdamW steps: losses, gradient norms and learning rates within 1e-5
 * (relative), the weights after them within 3e-5.
 * bf16: embeddings within 1e-2 of the reference's norm on every row, losses
 * (and the three training steps' losses) within 1e-2 (relative). */
#include "gpu_check.h"
#include "optim.h"

static const char *column_names[3] = {"anchor", "positive", "negative"};

/* The hidden states of the last forward (one column, packed) against the
 * fixture's [B, T, H] ones at the real positions. */
static void check_hidden(encoder *e, const char *name, precision prec, const bert_config *c,
                         const safetensors *st, const ref_column *col)
{
    int H = c->hidden;
    int N = 0;
    for (int b = 0; b < col->B; b++)
        N += col->lens[b];
    float *got = xmallocarray((size_t)N * H, sizeof *got);
    float *want = xmallocarray((size_t)N * H, sizeof *want);
    for (int l = 0; l <= c->layers; l++) {
        char tname[64];
        snprintf(tname, sizeof tname, "anchor.hidden_states.%d", l);
        float *ref = ref_f32(st, tname);
        for (int b = 0, r = 0; b < col->B; b++)
            for (int t = 0; t < col->lens[b]; t++, r++)
                memcpy(want + (size_t)r * H, ref + ((size_t)b * col->T + t) * H, H * sizeof *want);
        gpu_encoder_hidden(e, l, got);
        double err = max_abs_diff(got, want, (size_t)N * H), rr = max_row_rel(got, want, N, H);
        if (prec == PRECISION_FP32)
            ok(err <= 1e-5, "%s fp32: %s, max error %.3g", name, tname, err);
        else
            diag("%s bf16: %s, max error %.3g, worst row %.3g of its norm (not judged)", name,
                 tname, err, rr);
        free(ref);
    }
    free(got);
    free(want);
}

static void check_embeddings(encoder *e, const char *name, precision prec,
                             const bert_config *c, const safetensors *st, const ref_column *col)
{
    int H = c->hidden;
    for (int k = 0; k < 3; k++) {
        float *got = xmallocarray((size_t)col[k].B * H, sizeof *got);
        encoder_embed(e, col[k].ids, col[k].lens, col[k].B, col[k].T, 0, got);
        if (k == 0)
            check_hidden(e, name, prec, c, st, &col[0]);
        char tname[64];
        snprintf(tname, sizeof tname, "%s.embedding", column_names[k]);
        float *want = ref_f32(st, tname);
        double err = max_abs_diff(got, want, (size_t)col[k].B * H);
        double rr = max_row_rel(got, want, col[k].B, H);
        if (prec == PRECISION_FP32)
            ok(err <= 1e-5, "%s fp32: %s, max error %.3g", name, tname, err);
        else
            ok(rr <= 1e-2, "%s bf16: %s, worst row %.3g of its norm", name, tname, rr);
        free(want);
        free(got);
    }
}

/* The loss variants: columns used and whether symmetric. */
static const struct {
    const char *name;
    int C, symmetric;
} variants[3] = {{"pairs", 2, 0}, {"triplets", 3, 0}, {"symmetric", 2, 1}};

/* d loss / d embedding of variant v (C columns of [B, H]) against
 * grad_embedding.<variant>.<column>. */
static void check_emb_grads(const char *what, const safetensors *st, int v, const float *d, int B,
                            int H)
{
    for (int k = 0; k < variants[v].C; k++) {
        char tname[96];
        snprintf(tname, sizeof tname, "grad_embedding.%s.%s", variants[v].name, column_names[k]);
        float *want = ref_f32(st, tname);
        const float *got = d + (size_t)k * B * H;
        double scale = max_abs(want, (size_t)B * H), e = max_abs_diff(got, want, (size_t)B * H);
        ok(e <= 1e-4 * scale + 1e-6, "%s: %s, max error %.3g (largest %.3g)", what, tname, e,
           scale);
        free(want);
    }
}

static double ref_scalar(const safetensors *st, const char *name, int i)
{
    const st_tensor *t = ref_find(st, name);
    double *x = xmallocarray(t->numel, sizeof *x);
    st_to_f64(t, x);
    double v = x[i];
    free(x);
    return v;
}

/* The MNR loss kernels alone, on the fixture's reference embeddings. */
static void check_loss_kernels(const char *name, const bert_config *c, const safetensors *st, int B)
{
    int H = c->hidden;
    float *emb[3], *d[3];
    float *dall = xmallocarray((size_t)3 * B * H, sizeof *dall);
    for (int k = 0; k < 3; k++) {
        char tname[64];
        snprintf(tname, sizeof tname, "%s.embedding", column_names[k]);
        emb[k] = ref_f32(st, tname);
        d[k] = dall + (size_t)k * B * H;
    }
    for (int v = 0; v < 3; v++) {
        char what[96], lname[64];
        loss l = loss_mnr(MNR_DEFAULT_SCALE, variants[v].symmetric);
        loss_batch b = {.H = H, .columns = variants[v].C, .total_rows = B, .rows = B,
                        .col = (const float *const *)emb};
        double loss = gpu_loss_on_host_data(&l, &b, d);
        snprintf(lname, sizeof lname, "loss.%s", variants[v].name);
        double want = ref_scalar(st, lname, 0);
        ok(rel_err(loss, want) <= 1e-6, "%s loss kernels on the reference embeddings: %s %.12g, "
           "reference %.12g", name, lname, loss, want);
        snprintf(what, sizeof what, "%s loss kernels", name);
        check_emb_grads(what, st, v, dall, B, H);
    }
    for (int k = 0; k < 3; k++)
        free(emb[k]);
    free(dall);
}

/* Forward, loss (on the GPU) and backward of each variant through the
 * trainer's first half; for the pairs loss also every parameter gradient
 * (fp32). */
static void check_losses(encoder *e, const bert_model *m, const char *name, precision prec,
                         const safetensors *st, const ref_column *col)
{
    const bert_config *c = &m->cfg;
    int H = c->hidden, B = col[0].B;
    const int32_t *ids[3] = {col[0].ids, col[1].ids, col[2].ids};
    const int32_t *lens[3] = {col[0].lens, col[1].lens, col[2].lens};
    int T[3] = {col[0].T, col[1].T, col[2].T};
    int64_t *rows = xmallocarray(B, sizeof *rows);
    for (int i = 0; i < B; i++)
        rows[i] = i;
    float *d = xmallocarray((size_t)3 * B * H, sizeof *d);
    adam_config adam = adam_defaults();
    for (int v = 2; v >= 0; v--) { /* pairs last: its gradients stay in the encoder */
        train_data data;
        train_data_init(&data, variants[v].C);
        add_columns(&data, ids, lens, variants[v].C, B, T);
        loss l = loss_mnr(MNR_DEFAULT_SCALE, variants[v].symmetric);
        trainer t;
        step_trainer(&t, m, e, &data, B, &l, &adam, 1.0);
        double loss = trainer_forward_backward(&t, rows, B, 1);
        gpu_download(d, encoder_pooled_grad(e), (size_t)variants[v].C * B * H);
        trainer_free(&t);
        train_data_free(&data);
        char lname[64], what[96];
        snprintf(lname, sizeof lname, "loss.%s", variants[v].name);
        double want = ref_scalar(st, lname, 0), err = rel_err(loss, want);
        ok(err <= (prec == PRECISION_FP32 ? 1e-6 : 1e-2), "%s %s: %s %.12g, reference %.12g "
           "(relative error %.3g)", name, precision_name(prec), lname, loss, want, err);
        if (prec == PRECISION_FP32) {
            snprintf(what, sizeof what, "%s fp32 encoder", name);
            check_emb_grads(what, st, v, d, B, H);
        }
    }
    free(d);
    free(rows);
    if (prec != PRECISION_FP32)
        return;

    float *grads = xmallocarray(encoder_nparams(e), sizeof *grads);
    encoder_get(e, BUF_GRADS, grads);
    int n = bert_tensors(c, NULL);
    bert_tensor *t = xcalloc(n, sizeof *t);
    bert_tensors(c, t);
    for (int i = 0; i < n; i++) {
        const float *gi = grads + t[i].offset;
        if (!t[i].trainable) {
            ok(max_abs(gi, t[i].numel) == 0, "%s fp32: %s gets no gradient", name, t[i].name);
            continue;
        }
        char tname[128];
        snprintf(tname, sizeof tname, "grad.%s", t[i].name);
        float *ref = ref_f32(st, tname);
        double scale = max_abs(ref, t[i].numel), err = max_abs_diff(gi, ref, t[i].numel);
        ok(err <= 1e-4 * scale + 1e-6, "%s fp32: %s, max error %.3g (largest %.3g)", name, tname,
           err, scale);
        free(ref);
    }
    free(t);
    free(grads);
}

static double metadata_number(const safetensors *st, const char *key)
{
    char *s = st_metadata(st, key);
    double x;
    if (!s || parse_double(s, &x))
        die("%s: no number '%s' in the metadata", st->path, key);
    free(s);
    return x;
}

/* The fixture's three AdamW steps from the initial weights. */
static void check_training(const char *name, precision prec, const bert_model *m,
                           const safetensors *st)
{
    const bert_config *c = &m->cfg;
    adam_config adam = adam_defaults();
    char *betas = st_metadata(st, "betas");
    if (!betas || sscanf(betas, "%lf,%lf", &adam.beta1, &adam.beta2) != 2)
        die("%s: no betas in the metadata", st->path);
    free(betas);
    adam.eps = metadata_number(st, "adam_eps");
    adam.weight_decay = metadata_number(st, "weight_decay");
    double peak = metadata_number(st, "lr"), max_norm = metadata_number(st, "max_grad_norm");
    long warmup = (long)metadata_number(st, "warmup_steps");
    long total = (long)metadata_number(st, "total_steps");
    int steps = (int)metadata_number(st, "steps");
    const char *P = precision_name(prec);
    /* Every batch's rows, one after the other, stepped through in order. */
    train_data data;
    train_data_init(&data, 2);
    int B = 0;
    for (int k = 0; k < steps; k++) {
        char col_name[64];
        ref_column col[2];
        for (int j = 0; j < 2; j++) {
            snprintf(col_name, sizeof col_name, "train.batch%d.%s", k, column_names[j]);
            col[j] = ref_column_read(st, col_name);
        }
        const int32_t *ids[2] = {col[0].ids, col[1].ids}, *lens[2] = {col[0].lens, col[1].lens};
        int T[2] = {col[0].T, col[1].T};
        add_columns(&data, ids, lens, 2, col[0].B, T);
        B = col[0].B;
        for (int j = 0; j < 2; j++)
            ref_column_free(&col[j]);
    }
    if ((int64_t)B * steps != data.rows)
        die("%s: the training batches differ in size", st->path);
    encoder *e = open_encoder(m, DEVICE_CUDA, prec, 1, 2 * B, data.max_len);
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    trainer t;
    step_trainer(&t, m, e, &data, B, &l, &adam, max_norm);
    int64_t *rows = xmallocarray(B, sizeof *rows);
    for (int k = 0; k < steps; k++) {
        for (int i = 0; i < B; i++)
            rows[i] = (int64_t)k * B + i;
        double lr = lr_linear_warmup(peak, warmup, total, k), norm;
        double loss = trainer_step(&t, rows, B, k + 1, lr, &norm);
        double want_loss = ref_scalar(st, "train.losses", k);
        double want_norm = ref_scalar(st, "train.grad_norms", k);
        double want_lr = ref_scalar(st, "train.lrs", k);
        if (prec == PRECISION_FP32) {
            ok(rel_err(loss, want_loss) <= 1e-5 && rel_err(norm, want_norm) <= 1e-5 &&
               rel_err(lr, want_lr) <= 1e-5,
               "%s fp32: training step %d: loss %.10g (reference %.10g), grad norm %.10g "
               "(%.10g), lr %.6g (%.6g)", name, k + 1, loss, want_loss, norm, want_norm, lr,
               want_lr);
        } else {
            ok(rel_err(loss, want_loss) <= 1e-2, "%s %s: training step %d: loss %.10g "
               "(reference %.10g); grad norm %.6g (%.6g, not judged)", name, P, k + 1, loss,
               want_loss, norm, want_norm);
        }
    }
    free(rows);
    if (prec == PRECISION_FP32) {
        float *params = xmallocarray(encoder_nparams(e), sizeof *params);
        encoder_get(e, BUF_PARAMS, params);
        int n = bert_tensors(c, NULL);
        bert_tensor *t = xcalloc(n, sizeof *t);
        bert_tensors(c, t);
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < n; i++) {
            char tname[128];
            snprintf(tname, sizeof tname, "after.%s", t[i].name);
            float *ref = ref_f32(st, tname);
            double e = max_abs_diff(params + t[i].offset, ref, t[i].numel);
            if (e > worst) {
                worst = e;
                worst_name = t[i].name;
            }
            if (e > 3e-5)
                diag("%s fp32: %s after %d steps: max error %.3g", name, tname, steps, e);
            free(ref);
        }
        ok(worst <= 3e-5, "%s fp32: weights after %d AdamW steps, max error %.3g (%s)", name,
           steps, worst, worst_name);
        free(t);
        free(params);
    }
    trainer_free(&t);
    train_data_free(&data);
    encoder_close(e);
}

static void check_fixture(const char *name, precision prec)
{
    char *dir = fixture_path(name, "model"), *path = fixture_path(name, "reference.safetensors");
    bert_model m;
    model_load(&m, dir);
    safetensors st;
    st_open(&st, path);
    ref_column col[3];
    for (int k = 0; k < 3; k++)
        col[k] = ref_column_read(&st, column_names[k]);

    int T = col[0].T > col[1].T ? col[0].T : col[1].T;
    T = T > col[2].T ? T : col[2].T;
    encoder *e = open_encoder(&m, DEVICE_CUDA, prec, 1, 3 * col[0].B, T);
    check_embeddings(e, name, prec, &m.cfg, &st, col);
    if (prec == PRECISION_FP32)
        check_loss_kernels(name, &m.cfg, &st, col[0].B);
    check_losses(e, &m, name, prec, &st, col);
    encoder_close(e);
    check_training(name, prec, &m, &st);

    for (int k = 0; k < 3; k++)
        ref_column_free(&col[k]);
    st_close(&st);
    model_free(&m);
    free(dir);
    free(path);
}

/* fixtures fp32|bf16 [NAME...]: the fixtures named (default tiny and
 * head64; prepare.sh adds mpnet-tiny and mpnet-head64 beside them). */
int main(int argc, char **argv)
{
    util_init("gpu-fixtures");
    precision prec = precision_arg(argc, argv, 1);
    require_gpu();
    if (argc > 2) {
        for (int i = 2; i < argc; i++)
            check_fixture(argv[i], prec);
    } else {
        check_fixture("tiny", prec);
        check_fixture("head64", prec);
    }
    return done_testing();
}
