/* encoder_cpu.c - encoder.h on the CPU: the reference encoder of bert.c, the
 * optimizer of optim.c, and batch-parallel embedding.
 *
 * Embedding with several threads gives each thread whole groups of
 * sequences (the groups whose layers bert_forward computes together, within
 * the batches), each thread with its own activations and running its layers
 * on its own core: no thread waits for another between layers, which is
 * where small batches lose most of their time when every layer is split
 * among threads, and none waits long at the end.  A single group uses all
 * threads inside its layers.
 *
 * In bf16 the model's parameters are also kept rounded to bf16, converted
 * once when the encoder opens and after every change (optimizer step,
 * encoder_set), for the dense layers' products; the fp32 ones stay the
 * master copy that the optimizer updates.  Embedding keeps the dense
 * layers' weights in oneDNN's layout too (gemm_packs), made again after a
 * change once enough tokens were embedded to pay for it; training's
 * forward passes, whose weights change every step, read them as they are. */
#include "encoder.h"
#include "gemm.h"
#include "threads.h"
#include "util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    encoder base;
    bert_acts *train_acts; /* training forward passes */
    float *moment1, *moment2;
    int batch_size, workers;
    bert_acts **embed_acts; /* [workers], made on first use */
    float **norms;          /* [workers][batch_size], l2_normalize's divisors */
    int bf16;               /* the products run in bf16 */
    bf16 *params16;         /* the model's parameters in bf16 (bf16 only) */
    int params16_owned;     /* params16 made here, not the model's (model_load_bf16) */
    gemm_packs *packs;      /* their dense weights in the products' layout, for embedding */
    int64_t tokens_embedded; /* since the parameters last changed */
} cpu_encoder;

/* The tokens embedded since the parameters changed from which embedding
 * makes the packs and uses them: about what pays for making them
 * (all-MiniLM-L6-v2, fp32 and bf16 alike: 13 ms against 1.7 us saved per
 * token; both grow with the weights), so that short inputs do not pay. */
enum { PACK_MIN_TOKENS = 8192 };

static const bert_config *config(const encoder *e)
{
    return &e->model->cfg;
}

/* The copies of the model's parameters, after they changed: in bf16 the
 * layers' matrices only (bert_matrix_kinds), the products' operands, not
 * the embeddings, whose pages are read only for the tokens used
 * (model_load). */
static void params_changed(cpu_encoder *c)
{
    if (c->bf16) {
        int fresh = !c->params16_owned;
        if (fresh) {
            c->params16 = xcalloc(c->base.model->nparams, sizeof *c->params16);
            c->params16_owned = 1;
        }
        size_t off[P_COUNT + 1];
        bert_param_offsets(config(&c->base), off);
        for (int k = 0; k < BERT_MATRIX_KINDS; k++) {
            size_t first = off[bert_matrix_kinds[k]], count = off[bert_matrix_kinds[k] + 1] - first;
            if (fresh)
                prefault(c->params16 + first, count * sizeof *c->params16);
            bf16_from_float(c->params16 + first, c->base.params + first, count);
        }
    }
    gemm_packs_clear(c->packs);
    c->tokens_embedded = 0;
}

static bert_acts *acts_new(const cpu_encoder *c, int max_sequences, int max_len, int training)
{
    bert_acts *a = bert_acts_new(config(&c->base), max_sequences, max_len, training);
    bert_acts_set_precision(a, c->bf16, c->params16, NULL);
    return a;
}

static void cpu_close(encoder *e)
{
    cpu_encoder *c = (cpu_encoder *)e;
    if (c->params16_owned)
        free(c->params16);
    gemm_packs_free(c->packs);
    bert_acts_free(c->train_acts);
    for (int w = 0; c->embed_acts && w < c->workers; w++) {
        bert_acts_free(c->embed_acts[w]);
        free(c->norms[w]);
    }
    free(c->embed_acts);
    free(c->norms);
    if (c->train_acts)
        free(e->params);
    free(e->grads);
    free(e->pooled);
    free(e->pooled_grad);
    free(c->moment1);
    free(c->moment2);
    free(c);
}

/* Sequences first .. first + count - 1 of an embedding run: one of the
 * groups whose layers bert_forward computes together (bert_group_end),
 * within a batch. */
typedef struct {
    int64_t first;
    int count;
} embed_unit;

/* The units of sequences [0, n) in batches of batch_size, into units
 * (n entries); returns their count.  start: batch_size + 1 ints. */
static int64_t embed_units(embed_unit *units, int *start, const int32_t *lens, int64_t n,
                           int batch_size)
{
    int64_t count = 0;
    for (int64_t first = 0; first < n; first += batch_size) {
        int B = n - first < batch_size ? (int)(n - first) : batch_size;
        start[0] = 0;
        for (int b = 0; b < B; b++)
            start[b + 1] = start[b] + lens[first + b];
        for (int b0 = 0, b1; b0 < B; b0 = b1) {
            b1 = bert_group_end(start, B, b0);
            units[count++] = (embed_unit){first + b0, b1 - b0};
        }
    }
    return count;
}

/* Unit u of an embedding run, on worker w. */
static void embed_unit_run(cpu_encoder *c, int w, const int32_t *ids, const int32_t *lens,
                           int T, int normalize, float *out, embed_unit u)
{
    const bert_model *m = c->base.model;
    int H = m->cfg.hidden;
    float *o = out + u.first * H;
    bert_forward(&m->cfg, c->base.params, ids + u.first * T, lens + u.first, u.count, T,
                 c->embed_acts[w], NULL);
    bert_pool(c->embed_acts[w], m->pooling, o);
    if (normalize)
        l2_normalize(o, c->norms[w], o, u.count, H);
}

/* Unit by unit, the same bits as batch by batch (bert_group_end): whole
 * batches to the threads left one idle for up to a batch's time at the end
 * (0.15 of 2.5 s for 256 sentences of 64 tokens). */
static void cpu_embed(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                      int normalize, float *out)
{
    cpu_encoder *c = (cpu_encoder *)e;
    if (!c->embed_acts) {
        c->embed_acts = xmallocarray(c->workers, sizeof *c->embed_acts);
        c->norms = xmallocarray(c->workers, sizeof *c->norms);
        for (int w = 0; w < c->workers; w++) {
            /* Activations grow to the tokens they are given: unused workers
             * cost next to nothing. */
            c->embed_acts[w] = acts_new(c, c->batch_size, config(e)->max_positions, 0);
            c->norms[w] = xmallocarray(c->batch_size, sizeof *c->norms[w]);
        }
    }
    for (int64_t s = 0; s < n && c->tokens_embedded < PACK_MIN_TOKENS; s++)
        c->tokens_embedded += lens[s];
    for (int w = 0; w < c->workers; w++)
        bert_acts_set_precision(c->embed_acts[w], c->bf16, c->params16,
                                c->tokens_embedded >= PACK_MIN_TOKENS ? c->packs : NULL);
    embed_unit *units = xmallocarray(n, sizeof *units);
    int *start = xmallocarray((size_t)c->batch_size + 1, sizeof *start);
    int64_t count = embed_units(units, start, lens, n, c->batch_size);
    if (c->workers > 1 && count > 1) {
        int team = count < c->workers ? (int)count : c->workers;
        /* Inside this region the layers' own loops and OpenBLAS run on the
         * calling thread (threads_set allows one level of parallelism). */
#pragma omp parallel for schedule(dynamic) num_threads(team)
        for (int64_t k = 0; k < count; k++)
            embed_unit_run(c, omp_get_thread_num(), ids, lens, T, normalize, out, units[k]);
    } else {
        for (int64_t k = 0; k < count; k++)
            embed_unit_run(c, 0, ids, lens, T, normalize, out, units[k]);
    }
    free(start);
    free(units);
}

static void cpu_forward(encoder *e, const int32_t *ids, const int32_t *lens, int B, int T,
                        const dropout_keys *keys, float *pooled)
{
    cpu_encoder *c = (cpu_encoder *)e;
    bert_forward(config(e), e->params, ids, lens, B, T, c->train_acts, keys);
    bert_pool(c->train_acts, e->model->pooling, pooled);
}

static void cpu_backward(encoder *e, const float *dpooled)
{
    cpu_encoder *c = (cpu_encoder *)e;
    bert_pool_backward(c->train_acts, e->model->pooling, dpooled);
    bert_backward(config(e), e->params, e->grads, c->train_acts);
}

static void cpu_download(const encoder *e, float *host, const float *dev, size_t n)
{
    memcpy(host, dev, n * sizeof *host);
}

static void cpu_upload(encoder *e, float *dev, const float *host, size_t n)
{
    memcpy(dev, host, n * sizeof *dev);
}

/* In chunks over the threads: one thread's stores do not reach the
 * memory bandwidth that a model's gradients (440 MB for bert-base) need. */
static void cpu_zero_grads(encoder *e)
{
    enum { CHUNK = 1 << 18 };
    size_t n = e->nparams, chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++)
        memset(e->grads + c * CHUNK, 0, (n - c * CHUNK < CHUNK ? n - c * CHUNK : CHUNK) *
                                            sizeof *e->grads);
}

static double cpu_optimizer_step(encoder *e, const adam_config *adam, double lr, double max_norm,
                                 long step)
{
    cpu_encoder *c = (cpu_encoder *)e;
    double norm = grad_norm(e->grads, e->ranges, e->nranges);
    if (isfinite(norm)) {
        adam_step(adam, e->ranges, e->nranges, e->params, e->grads, c->moment1, c->moment2, step,
                  lr, grad_clip(norm, max_norm));
        params_changed(c);
    }
    return norm;
}

static float *buffer(const encoder *e, encoder_buffer which)
{
    const cpu_encoder *c = (const cpu_encoder *)e;
    float *b = which == BUF_PARAMS ? e->params : which == BUF_GRADS ? e->grads
             : which == BUF_MOMENT1 ? c->moment1 : c->moment2;
    if (!b || (which != BUF_PARAMS && !c->train_acts))
        die("encoder: the encoder was opened without training");
    return b;
}

static void cpu_get(const encoder *e, encoder_buffer which, float *out)
{
    memcpy(out, buffer(e, which), e->nparams * sizeof *out);
}

static void cpu_set(encoder *e, encoder_buffer which, const float *in)
{
    memcpy(buffer(e, which), in, e->nparams * sizeof *in);
    if (which == BUF_PARAMS)
        params_changed((cpu_encoder *)e);
}

static const encoder_ops cpu_ops = {
    .close = cpu_close, .embed = cpu_embed, .forward = cpu_forward, .backward = cpu_backward,
    .download = cpu_download, .upload = cpu_upload,
    .zero_grads = cpu_zero_grads, .optimizer_step = cpu_optimizer_step, .get = cpu_get,
    .set = cpu_set,
};

encoder *encoder_cpu_open(const bert_model *m, const encoder_settings *s)
{
    cpu_encoder *c = xcalloc(1, sizeof *c);
    encoder *e = &c->base;
    e->ops = &cpu_ops;
    e->model = m;
    encoder_init_settings(e, s);
    c->batch_size = s->batch_size > 0 ? s->batch_size : 32;
    c->workers = threads_count();
    /* fp32 unless asked: the default bf16 is the GPU's. */
    c->bf16 = s->precision_given && s->precision == PRECISION_BF16 && gemm_bf16_available(NULL);
    c->packs = gemm_packs_new();
    if (!s->training) {
        e->params = m->params; /* read only */
        if (c->bf16 && m->params16) /* its matrices' floats are 0 */
            c->params16 = m->params16;
        else
            params_changed(c);
        return e;
    }
    if (s->max_sequences < 1 || s->max_len < 1)
        die("encoder: training needs max_sequences and max_len");
    size_t n = e->nparams, H = m->cfg.hidden;
    e->params = xcalloc_prefaulted(n, sizeof *e->params);
    memcpy(e->params, m->params, m->nparams * sizeof *e->params);
    e->grads = xcalloc_prefaulted(n, sizeof *e->grads);
    c->moment1 = xcalloc_prefaulted(n, sizeof *c->moment1);
    c->moment2 = xcalloc_prefaulted(n, sizeof *c->moment2);
    e->pooled = xmallocarray((size_t)e->max_pooled * H, sizeof *e->pooled);
    e->pooled_grad = xmallocarray((size_t)e->max_pooled * H, sizeof *e->pooled_grad);
    c->train_acts = acts_new(c, s->max_sequences, s->max_len, 1);
    params_changed(c);
    return e;
}
