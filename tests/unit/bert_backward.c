/* The encoder's backward pass: parameter gradients of the fixtures' pairs
 * loss against PyTorch's (upstream gradients of the anchor and positive
 * embeddings given), central finite differences with and without dropout,
 * and the determinism of dropout masks. */
#include "bert_fixture.h"
#include "rng.h"
#include "threads.h"

/* One training batch: the anchor and positive columns of the fixture and the
 * gradients of some loss with respect to their mean-pooled embeddings. */
typedef struct {
    ref_column col[2];
    float *d_emb[2];
    bert_acts *acts[2];
} batch;

static void batch_read(batch *bt, const bert_config *c, const safetensors *st)
{
    static const char *names[2] = {"anchor", "positive"};
    for (int k = 0; k < 2; k++) {
        char tname[64];
        bt->col[k] = ref_column_read(st, names[k]);
        snprintf(tname, sizeof tname, "grad_embedding.pairs.%s", names[k]);
        bt->d_emb[k] = ref_f32(st, tname);
        bt->acts[k] = bert_acts_new(c, bt->col[k].B, bt->col[k].T, 1);
    }
}

/* The batch repeated copies times in each column: enough tokens that the
 * loops run on all threads (the fixture's own batches are too small). */
static void batch_repeat(batch *bt, const bert_config *c, int copies)
{
    for (int k = 0; k < 2; k++) {
        ref_column *col = &bt->col[k];
        int B = col->B * copies, H = c->hidden;
        int32_t *ids = xmallocarray((size_t)B * col->T, sizeof *ids);
        int32_t *lens = xmallocarray(B, sizeof *lens);
        float *d = xmallocarray((size_t)B * H, sizeof *d);
        for (int i = 0; i < copies; i++) {
            memcpy(ids + (size_t)i * col->B * col->T, col->ids, (size_t)col->B * col->T * sizeof *ids);
            memcpy(lens + (size_t)i * col->B, col->lens, col->B * sizeof *lens);
            memcpy(d + (size_t)i * col->B * H, bt->d_emb[k], (size_t)col->B * H * sizeof *d);
        }
        free(col->ids);
        free(col->lens);
        free(bt->d_emb[k]);
        col->ids = ids;
        col->lens = lens;
        bt->d_emb[k] = d;
        col->B = B;
        bert_acts_free(bt->acts[k]);
        bt->acts[k] = bert_acts_new(c, B, col->T, 1);
    }
}

static void batch_free(batch *bt)
{
    for (int k = 0; k < 2; k++) {
        ref_column_free(&bt->col[k]);
        free(bt->d_emb[k]);
        bert_acts_free(bt->acts[k]);
    }
}

/* Dropout keys of column k of a batch: seed, step 1, rows 0, 1, ... */
static dropout_keys column_keys(uint64_t seed, int k, int32_t *row, int32_t *column, int B)
{
    for (int i = 0; i < B; i++) {
        row[i] = i;
        column[i] = k;
    }
    return (dropout_keys){.seed = seed, .step = 1, .row = row, .column = column};
}

/* The scalar loss sum(d_emb . embedding) over both columns, whose gradient
 * is what the fixture's grad.* tensors hold for the real loss; with dropout
 * when dropout is nonzero, its masks keyed by seed. */
static double batch_loss(batch *bt, const bert_config *c, const float *params, int dropout,
                         uint64_t seed)
{
    double loss = 0;
    for (int k = 0; k < 2; k++) {
        ref_column *col = &bt->col[k];
        size_t n = (size_t)col->B * c->hidden;
        float *emb = xmallocarray(n, sizeof *emb);
        int32_t *row = xmallocarray(col->B, sizeof *row), *column = xmallocarray(col->B, sizeof *column);
        dropout_keys keys = column_keys(seed, k, row, column, col->B);
        bert_forward(c, params, col->ids, col->lens, col->B, col->T, bt->acts[k],
                     dropout ? &keys : NULL);
        free(row);
        free(column);
        bert_pool(bt->acts[k], POOL_MEAN, emb);
        loss += dot_f(emb, bt->d_emb[k], (int)n);
        free(emb);
    }
    return loss;
}

/* Gradients of batch_loss added into grads: each column forward, then back. */
static void batch_grads(batch *bt, const bert_config *c, const float *params, float *grads,
                        int dropout, uint64_t seed)
{
    batch_loss(bt, c, params, dropout, seed);
    for (int k = 0; k < 2; k++) {
        bert_pool_backward(bt->acts[k], POOL_MEAN, bt->d_emb[k]);
        bert_backward(c, params, grads, bt->acts[k]);
    }
}

static void check_chunked_dropout(const char *name, batch *bt, const bert_config *c,
                                  const float *params);

/* Every trainable tensor's gradient against grad.<name> (times copies, for a
 * batch holding that many copies of the fixture's); the pooler's stays 0. */
static void check_reference_grads(const char *name, const bert_config *c, const float *grads,
                                  int copies, const safetensors *st)
{
    int n = bert_tensors(c, NULL);
    bert_tensor *t = xcalloc(n, sizeof *t);
    bert_tensors(c, t);
    for (int i = 0; i < n; i++) {
        const float *g = grads + t[i].offset;
        if (!t[i].trainable) {
            ok(max_abs(g, t[i].numel) == 0, "%s: %s gets no gradient", name, t[i].name);
            continue;
        }
        char tname[128];
        snprintf(tname, sizeof tname, "grad.%s", t[i].name);
        float *ref = ref_f32(st, tname);
        for (size_t j = 0; j < t[i].numel; j++)
            ref[j] *= copies;
        double scale = max_abs(ref, t[i].numel), e = max_abs_diff(g, ref, t[i].numel);
        ok(e <= 1e-4 * scale + 1e-6, "%s: %s, max error %.3g (largest %.3g)", name, tname, e,
           scale);
        free(ref);
    }
    free(t);
}

/* Central differences of batch_loss at a few parameters of several tensors:
 * the one with the largest analytic gradient and one chosen at random. */
static void check_finite_differences(const char *what, batch *bt, const bert_config *c,
                                     float *params, const float *grads, int dropout,
                                     uint64_t seed)
{
    static const enum bert_param checked[] = {P_WORD_EMB,   P_POS_EMB,   P_EMB_LN_W, P_QKV_W,
                                              P_QKV_B,      P_ATTN_OUT_W, P_ATTN_LN_B, P_FFN_IN_W,
                                              P_FFN_OUT_B,  P_FFN_LN_W,   P_REL_BIAS};
    size_t off[P_COUNT + 1];
    bert_param_offsets(c, off);
    rng_t pick;
    rng_seed(&pick, 1);
    const float eps = 1e-2f;
    double worst = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof checked / sizeof *checked; i++) {
        size_t o = off[checked[i]], size = off[checked[i] + 1] - o, best = o;
        if (!size) /* BERT has no relative position bias */
            continue;
        double scale = max_abs(grads + o, size);
        for (size_t j = o; j < o + size; j++)
            if (fabsf(grads[j]) > fabsf(grads[best]))
                best = j;
        size_t at[2] = {best, o + rng_below(&pick, size)};
        for (int k = 0; k < 2; k++) {
            float saved = params[at[k]];
            params[at[k]] = saved + eps;
            double up = batch_loss(bt, c, params, dropout, seed);
            params[at[k]] = saved - eps;
            double down = batch_loss(bt, c, params, dropout, seed);
            params[at[k]] = saved;
            double fd = (up - down) / (2.0 * eps), e = fabs(fd - grads[at[k]]) / (scale + 1e-6);
            worst = fmax(worst, e);
            if (e > 1e-2)
                diag("%s: parameter %d[%zu]: finite difference %.6g, backward %.6g", what,
                     (int)checked[i], at[k] - o, fd, grads[at[k]]);
            n++;
        }
    }
    ok(worst <= 1e-2, "%s: %d finite differences agree, largest error %.3g of the tensor's "
       "largest gradient", what, n, worst);
}

/* CLS and max pooling route each gradient to the one row it came from;
 * mean pooling spreads it evenly. */
static void check_pool_backward(const char *name, batch *bt, const bert_config *c,
                                const float *params)
{
    ref_column *col = &bt->col[0];
    bert_acts *a = bt->acts[0];
    int H = c->hidden, B = col->B;
    bert_forward(c, params, col->ids, col->lens, B, col->T, a, NULL);
    const float *h = bert_hidden(a, c->layers), *d = bt->d_emb[0];
    const int *start = bert_acts_starts(a);
    static const pooling_mode modes[3] = {POOL_MEAN, POOL_CLS, POOL_MAX};
    static const char *names[3] = {"mean", "cls", "max"};
    for (int m = 0; m < 3; m++) {
        bert_pool_backward(a, modes[m], d);
        const float *dh = bert_acts_dhidden(a);
        double e = 0;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++) {
                int best = start[b];
                for (int r = start[b]; r < start[b + 1]; r++)
                    if (h[(size_t)r * H + j] > h[(size_t)best * H + j])
                        best = r;
                for (int r = start[b]; r < start[b + 1]; r++) {
                    double want = modes[m] == POOL_MEAN  ? d[(size_t)b * H + j] / col->lens[b]
                                  : modes[m] == POOL_CLS ? (r == start[b]) * d[(size_t)b * H + j]
                                                         : (r == best) * d[(size_t)b * H + j];
                    e = fmax(e, fabs(dh[(size_t)r * H + j] - want));
                }
            }
        ok(e <= 1e-7, "%s: %s pooling backward, max error %.3g", name, names[m], e);
    }
}

/* l2_normalize_backward against central differences of sum(g . normalize(x)). */
static void check_normalize_backward(void)
{
    enum { N = 4, D = 9 };
    float x[N * D], g[N * D], y[N * D], dx[N * D], norms[N];
    rng_t r;
    rng_seed(&r, 5);
    for (int i = 0; i < N * D; i++) {
        x[i] = (float)rng_normal(&r);
        g[i] = (float)rng_normal(&r);
    }
    l2_normalize(y, norms, x, N, D);
    l2_normalize_backward(dx, g, y, norms, N, D);
    double e = 0;
    for (int i = 0; i < N * D; i++) {
        double f[2];
        float saved = x[i];
        for (int s = 0; s < 2; s++) {
            x[i] = saved + (s ? -1e-2f : 1e-2f);
            float yy[N * D], nn[N];
            l2_normalize(yy, nn, x, N, D);
            f[s] = dot_f(yy, g, N * D);
        }
        x[i] = saved;
        e = fmax(e, fabs((f[0] - f[1]) / (2 * (double)1e-2f) - dx[i]));
    }
    ok(e <= 1e-4, "l2_normalize_backward against finite differences, max error %.3g", e);
}

static void check_fixture(const char *name)
{
    bert_model m;
    fixture_model(name, &m);
    bert_config *c = &m.cfg;
    char *path = fixture_path(name, "reference.safetensors");
    safetensors st;
    st_open(&st, path);
    float *grads = xcalloc(m.nparams, sizeof *grads);

    batch bt;
    batch_read(&bt, c, &st);
    batch_grads(&bt, c, m.params, grads, 0, 0);
    check_reference_grads(name, c, grads, 1, &st);
    /* The same through the multi-threaded paths: copies of the batch give
     * copies times the gradients. */
    {
        batch big;
        batch_read(&big, c, &st);
        int tokens = 0;
        for (int b = 0; b < big.col[1].B; b++)
            tokens += big.col[1].lens[b];
        int copies = (1 << 18) / (tokens * c->hidden) + 1;
        batch_repeat(&big, c, copies);
        memset(grads, 0, m.nparams * sizeof *grads);
        batch_grads(&big, c, m.params, grads, 0, 0);
        char what[64];
        snprintf(what, sizeof what, "%s x %d", name, copies);
        check_reference_grads(what, c, grads, copies, &st);
        batch_free(&big);
        memset(grads, 0, m.nparams * sizeof *grads);
        batch_grads(&bt, c, m.params, grads, 0, 0);
    }
    char what[64];
    snprintf(what, sizeof what, "%s without dropout", name);
    check_finite_differences(what, &bt, c, m.params, grads, 0, 0);
    check_pool_backward(name, &bt, c, m.params);
    batch_free(&bt);

    /* With dropout: masks follow the keys, whatever the thread count, and
     * the backward pass goes through the same masks. */
    c->hidden_dropout = 0.1f;
    c->attn_dropout = 0.1f;
    batch_read(&bt, c, &st);
    double plain = batch_loss(&bt, c, m.params, 0, 0);
    double l7 = batch_loss(&bt, c, m.params, 1, 7);
    int threads = threads_count();
    threads_set(1);
    double again = batch_loss(&bt, c, m.params, 1, 7);
    threads_set(threads);
    double l8 = batch_loss(&bt, c, m.params, 1, 8);
    ok(l7 == again && l7 != l8 && l7 != plain,
       "%s: dropout is deterministic in the seed and thread count (seed 7: %.9g on all "
       "threads, %.9g on one; seed 8: %.9g; none: %.9g)", name, l7, again, l8, plain);
    memset(grads, 0, m.nparams * sizeof *grads);
    batch_grads(&bt, c, m.params, grads, 1, 7);
    snprintf(what, sizeof what, "%s with dropout 0.1", name);
    check_finite_differences(what, &bt, c, m.params, grads, 1, 7);
    check_chunked_dropout(name, &bt, c, m.params);
    batch_free(&bt);

    free(grads);
    st_close(&st);
    free(path);
    model_free(&m);
}

/* The same sequences in chunks of other sizes, with their rows in the batch
 * as keys, draw the same masks: embeddings agree to rounding, and a chunk
 * keyed as other rows does not. */
static void check_chunked_dropout(const char *name, batch *bt, const bert_config *c,
                                  const float *params)
{
    ref_column *col = &bt->col[0];
    int B = col->B, H = c->hidden;
    float *whole = xmallocarray((size_t)B * H, sizeof *whole);
    float *parts = xmallocarray((size_t)B * H, sizeof *parts);
    int32_t *row = xmallocarray(B, sizeof *row), *column = xmallocarray(B, sizeof *column);
    dropout_keys keys = column_keys(11, 1, row, column, B);
    bert_acts *a = bert_acts_new(c, B, col->T, 1);
    bert_forward(c, params, col->ids, col->lens, B, col->T, a, &keys);
    bert_pool(a, POOL_MEAN, whole);
    for (int chunk = 1; chunk <= 3; chunk += 2) {
        for (int first = 0; first < B; first += chunk) {
            int n = B - first < chunk ? B - first : chunk;
            dropout_keys part = {.seed = 11, .step = 1, .row = row + first,
                                 .column = column + first};
            bert_forward(c, params, col->ids + (size_t)first * col->T, col->lens + first, n,
                         col->T, a, &part);
            bert_pool(a, POOL_MEAN, parts + (size_t)first * H);
        }
        double e = max_abs_diff(whole, parts, (size_t)B * H);
        ok(e <= 1e-6, "%s: dropout in chunks of %d rows = the whole batch's, max difference %.3g",
           name, chunk, e);
    }
    /* Shifted rows: other masks. */
    for (int i = 0; i < B; i++)
        row[i] = i + 1;
    bert_forward(c, params, col->ids, col->lens, B, col->T, a, &keys);
    bert_pool(a, POOL_MEAN, parts);
    ok(max_abs_diff(whole, parts, (size_t)B * H) > 1e-3,
       "%s: other rows in the batch draw other masks", name);
    bert_acts_free(a);
    free(row);
    free(column);
    free(whole);
    free(parts);
}

int main(void)
{
    util_init("test-bert-backward");
    check_fixture("tiny");
    check_fixture("head64");
    for_each_mpnet_fixture(check_fixture);
    check_normalize_backward();
    return done_testing();
}
