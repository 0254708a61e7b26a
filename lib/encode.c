#include "encode.h"
#include "threads.h"
#include "util.h"

#include <omp.h>
#include <stdlib.h>

struct encoder {
    const bert_model *m;
    int batch_size, workers;
    bert_acts **acts; /* [workers] */
    float **norms;    /* [workers][batch_size], l2_normalize's divisors */
};

encoder *encoder_new(const bert_model *m, int batch_size)
{
    encoder *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->batch_size = batch_size;
    e->workers = threads_count();
    e->acts = xmallocarray(e->workers, sizeof *e->acts);
    e->norms = xmallocarray(e->workers, sizeof *e->norms);
    for (int w = 0; w < e->workers; w++) {
        /* Activations grow to the tokens they are given: unused workers
         * cost next to nothing. */
        e->acts[w] = bert_acts_new(&m->cfg, batch_size, m->cfg.max_positions, 0);
        e->norms[w] = xmallocarray(batch_size, sizeof *e->norms[w]);
    }
    return e;
}

void encoder_free(encoder *e)
{
    if (!e)
        return;
    for (int w = 0; w < e->workers; w++) {
        bert_acts_free(e->acts[w]);
        free(e->norms[w]);
    }
    free(e->acts);
    free(e->norms);
    free(e);
}

/* Batch k of the run, on worker w. */
static void run_batch(encoder *e, int w, const int32_t *ids, const int32_t *lens, int64_t n,
                      int T, int normalize, float *out, int64_t k)
{
    int64_t first = k * e->batch_size;
    int B = n - first < e->batch_size ? (int)(n - first) : e->batch_size, H = e->m->cfg.hidden;
    float *o = out + first * H;
    bert_forward(&e->m->cfg, e->m->params, ids + first * T, lens + first, B, T, e->acts[w], NULL);
    bert_pool(e->acts[w], e->m->pooling, o);
    if (normalize)
        l2_normalize(o, e->norms[w], o, B, H);
}

void encoder_run(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                 int normalize, float *out)
{
    int64_t batches = (n + e->batch_size - 1) / e->batch_size;
    if (e->workers > 1 && batches > 1) {
        int team = batches < e->workers ? (int)batches : e->workers;
        /* Inside this region the layers' own loops and OpenBLAS run on the
         * calling thread (threads_set allows one level of parallelism). */
#pragma omp parallel for schedule(dynamic) num_threads(team)
        for (int64_t k = 0; k < batches; k++)
            run_batch(e, omp_get_thread_num(), ids, lens, n, T, normalize, out, k);
    } else {
        for (int64_t k = 0; k < batches; k++)
            run_batch(e, 0, ids, lens, n, T, normalize, out, k);
    }
}
