/* train100 cpu OUT | train100 fp32|bf16 REF: 100 training steps of the
 * head64 fixture model on seeded synthetic pairs, on the CPU (fp32, the
 * reference, written to OUT one loss per line) or on the GPU, compared with
 * REF (TAP): every step's loss within 2% + 0.01 of the CPU's in fp32, 4% +
 * 0.02 in bf16 (see ALLOW_*), and the loss at step 100 below the loss at
 * step 1.
 *
 * Batch 32; an anchor is 5 to 40 random ids in 1000..4095 between [CLS]
 * (101) and [SEP] (102), its positive the same with 20% of those ids
 * replaced at random; MultipleNegativesRankingLoss (scale 20, mean
 * pooling), gradients clipped to norm 1, AdamW (torch defaults) at a
 * constant lr of 1e-4 without warmup. */
#include "gpu_check.h"
#include "optim.h"

enum { STEPS = 100, BATCH = 32, MAX_T = 42, SEED = 2024 };
static const double LR = 1e-4, MAX_NORM = 1.0;

/* How far a step's loss may be from the CPU's fp32: ALLOW_REL * |cpu| +
 * ALLOW_ABS.  head64 has no dropout, so only rounding separates the two.
 * bf16: the review of issue 11 emulated the GPU's bf16 rounding in float64
 * over these 100 steps and found losses using up to 64% of 2% + 0.01; twice
 * that allowance, 4% + 0.02, puts the emulated error at 32% of it (a margin
 * of 3.1x, at least 2x asked).  fp32:
 * 2% + 0.01, as before (fp32 products and sums differ from the CPU's only
 * in their order). */
static const double ALLOW_REL_BF16 = 0.04, ALLOW_ABS_BF16 = 0.02;
static const double ALLOW_REL_FP32 = 0.02, ALLOW_ABS_FP32 = 0.01;

/* The next batch: ids[k] [BATCH, MAX_T] (-1 padding), lens[k] [BATCH]. */
static void make_batch(rng_t *r, int32_t *ids[2], int32_t *lens[2])
{
    for (int b = 0; b < BATCH; b++) {
        int n = 5 + (int)rng_below(r, 36), pick[40];
        int32_t *a = ids[0] + b * MAX_T, *p = ids[1] + b * MAX_T;
        a[0] = 101;
        for (int t = 1; t <= n; t++)
            a[t] = 1000 + (int32_t)rng_below(r, 3096);
        a[n + 1] = 102;
        for (int t = n + 2; t < MAX_T; t++)
            a[t] = -1;
        memcpy(p, a, MAX_T * sizeof *p);
        /* 20% of the n ids (rounded), at distinct random places */
        int k = (n + 2) / 5;
        for (int i = 0; i < n; i++)
            pick[i] = i;
        for (int i = 0; i < k; i++) {
            int j = i + (int)rng_below(r, n - i), tmp = pick[i];
            pick[i] = pick[j];
            pick[j] = tmp;
            p[1 + pick[i]] = 1000 + (int32_t)rng_below(r, 3096);
        }
        lens[0][b] = lens[1][b] = n + 2;
    }
}

typedef struct {
    int32_t *ids[2], *lens[2];
} batch;

static void batch_alloc(batch *bt)
{
    for (int k = 0; k < 2; k++) {
        bt->ids[k] = xmallocarray(BATCH * MAX_T, sizeof *bt->ids[k]);
        bt->lens[k] = xmallocarray(BATCH, sizeof *bt->lens[k]);
    }
}

/* The CPU reference: what mnr-train does for one step, from the library. */
static void run_cpu(const bert_model *m, const char *out_path)
{
    const bert_config *c = &m->cfg;
    int H = c->hidden, nr = optim_bert_ranges(c, NULL);
    optim_range *ranges = xmallocarray(nr, sizeof *ranges);
    optim_bert_ranges(c, ranges);
    float *params = xmallocarray(m->nparams, sizeof *params);
    memcpy(params, m->params, m->nparams * sizeof *params);
    float *grads = xmallocarray(m->nparams, sizeof *grads);
    float *mom1 = xcalloc(m->nparams, sizeof *mom1), *mom2 = xcalloc(m->nparams, sizeof *mom2);
    float *emb[2], *demb[2];
    bert_acts *acts[2];
    for (int k = 0; k < 2; k++) {
        emb[k] = xmallocarray((size_t)BATCH * H, sizeof *emb[k]);
        demb[k] = xmallocarray((size_t)BATCH * H, sizeof *demb[k]);
        acts[k] = bert_acts_new(c, BATCH, MAX_T, 1);
    }
    adam_config adam = adam_defaults();
    batch bt;
    batch_alloc(&bt);
    rng_t r;
    rng_seed(&r, SEED);
    atomic_file out;
    atomic_open(&out, out_path);
    for (int s = 0; s < STEPS; s++) {
        make_batch(&r, bt.ids, bt.lens);
        memset(grads, 0, m->nparams * sizeof *grads);
        for (int k = 0; k < 2; k++) {
            bert_forward(c, params, bt.ids[k], bt.lens[k], BATCH, MAX_T, acts[k], NULL);
            bert_pool(acts[k], POOL_MEAN, emb[k]);
        }
        double loss = mnr_loss_columns((const float *const *)emb, 2, BATCH, H, MNR_DEFAULT_SCALE,
                                       0, demb, NULL);
        for (int k = 0; k < 2; k++) {
            bert_pool_backward(acts[k], POOL_MEAN, demb[k]);
            bert_backward(c, params, grads, acts[k]);
        }
        clip_grad_norm(grads, ranges, nr, MAX_NORM);
        adam_step(&adam, ranges, nr, params, grads, mom1, mom2, s + 1, LR);
        out_printf(out.f, out_path, "%.17g\n", loss);
    }
    atomic_commit(&out);
}

static void run_gpu(const bert_model *m, gpu_precision prec, const char *ref_path)
{
    double want[STEPS], got[STEPS];
    FILE *f = fopen(ref_path, "r");
    if (!f)
        die("%s: cannot open (run 'train100 cpu %s' first)", ref_path, ref_path);
    for (int s = 0; s < STEPS; s++)
        if (fscanf(f, "%lf", &want[s]) != 1)
            die("%s: fewer than %d losses", ref_path, STEPS);
    fclose(f);

    gpu_model *g = gpu_model_create(&m->cfg, m->params, prec, 1);
    adam_config adam = adam_defaults();
    gpu_loss_config lc = {.scale = MNR_DEFAULT_SCALE, .symmetric = 0, .pooling = POOL_MEAN,
                          .dropout_seed = SEED};
    batch bt;
    batch_alloc(&bt);
    rng_t r;
    rng_seed(&r, SEED);
    int T[2] = {MAX_T, MAX_T}, worst = 0;
    double allow_rel = prec == GPU_BF16 ? ALLOW_REL_BF16 : ALLOW_REL_FP32;
    double allow_abs = prec == GPU_BF16 ? ALLOW_ABS_BF16 : ALLOW_ABS_FP32;
    double worst_excess = -INFINITY, t0 = now_seconds();
    for (int s = 0; s < STEPS; s++) {
        make_batch(&r, bt.ids, bt.lens);
        got[s] = gpu_train_step(g, (const int32_t *const *)bt.ids, (const int32_t *const *)bt.lens,
                                2, BATCH, T, &lc, &adam, LR, MAX_NORM, s + 1, NULL);
        double excess = fabs(got[s] - want[s]) - (allow_rel * fabs(want[s]) + allow_abs);
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = s;
        }
        if (s == 0 || s == 9 || s == 49 || s == 99)
            diag("step %d: GPU %s loss %.6f, CPU fp32 %.6f", s + 1, gpu_precision_name(prec),
                 got[s], want[s]);
    }
    diag("%d GPU steps in %.2f s", STEPS, now_seconds() - t0);
    const char *P = gpu_precision_name(prec);
    ok(worst_excess <= 0, "head64 %s: all %d losses within %g%% + %g of the CPU's (closest to "
       "the limit: step %d, %.6f vs %.6f, %.0f%% of its allowance)", P, STEPS, 100 * allow_rel,
       allow_abs, worst + 1, got[worst], want[worst],
       100 * fabs(got[worst] - want[worst]) / (allow_rel * fabs(want[worst]) + allow_abs));
    ok(got[STEPS - 1] < got[0], "head64 %s: loss at step %d (%.6f) below step 1 (%.6f)", P, STEPS,
       got[STEPS - 1], got[0]);
    gpu_model_free(g);
}

int main(int argc, char **argv)
{
    util_init("gpu-train100");
    if (argc != 3)
        die("usage: %s cpu OUT | %s fp32|bf16 REF", argv[0], argv[0]);
    char *dir = fixture_path("head64", "model");
    bert_model m;
    model_load(&m, dir);
    if (!strcmp(argv[1], "cpu")) {
        run_cpu(&m, argv[2]);
    } else {
        gpu_precision prec = precision_arg(argc, argv, 1);
        require_gpu();
        run_gpu(&m, prec, argv[2]);
        done_testing();
    }
    model_free(&m);
    free(dir);
    return tap_failed ? 1 : 0;
}
