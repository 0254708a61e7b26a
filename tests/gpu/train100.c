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
#include "rng.h"

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

/* The STEPS batches one after the other as training rows. */
static void make_data(train_data *d)
{
    int32_t *ids[2], *lens[2];
    for (int k = 0; k < 2; k++) {
        ids[k] = xmallocarray(BATCH * MAX_T, sizeof *ids[k]);
        lens[k] = xmallocarray(BATCH, sizeof *lens[k]);
    }
    rng_t r;
    rng_seed(&r, SEED);
    train_data_init(d, 2);
    int T[2] = {MAX_T, MAX_T};
    for (int s = 0; s < STEPS; s++) {
        make_batch(&r, ids, lens);
        add_columns(d, (const int32_t *const *)ids, (const int32_t *const *)lens, 2, BATCH, T);
    }
    for (int k = 0; k < 2; k++) {
        free(ids[k]);
        free(lens[k]);
    }
}

/* The STEPS steps on device, as mnr-train takes them (the trainer's step):
 * the losses into got. */
static void train(const bert_model *m, device_kind device, precision prec, double *got)
{
    train_data data;
    make_data(&data);
    encoder *e = open_encoder(m, device, prec, 1, 2 * BATCH, MAX_T);
    adam_config adam = adam_defaults();
    loss l = loss_mnr(MNR_DEFAULT_SCALE, 0);
    trainer t;
    step_trainer(&t, m, e, &data, BATCH, &l, &adam, MAX_NORM);
    int64_t rows[BATCH];
    double norm;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < BATCH; i++)
            rows[i] = (int64_t)s * BATCH + i;
        got[s] = trainer_step(&t, rows, BATCH, s + 1, LR, &norm);
    }
    trainer_free(&t);
    encoder_close(e);
    train_data_free(&data);
}

/* The CPU reference, one loss per line. */
static void run_cpu(const bert_model *m, const char *out_path)
{
    double loss[STEPS];
    train(m, DEVICE_CPU, PRECISION_FP32, loss);
    atomic_file out;
    atomic_open(&out, out_path);
    for (int s = 0; s < STEPS; s++)
        out_printf(out.f, out_path, "%.17g\n", loss[s]);
    atomic_commit(&out);
}

static void run_gpu(const bert_model *m, precision prec, const char *ref_path)
{
    double want[STEPS], got[STEPS];
    FILE *f = fopen(ref_path, "r");
    if (!f)
        die("%s: cannot open (run 'train100 cpu %s' first)", ref_path, ref_path);
    for (int s = 0; s < STEPS; s++)
        if (fscanf(f, "%lf", &want[s]) != 1)
            die("%s: fewer than %d losses", ref_path, STEPS);
    fclose(f);

    double t0 = now_seconds();
    train(m, DEVICE_CUDA, prec, got);
    diag("%d GPU steps in %.2f s", STEPS, now_seconds() - t0);
    int worst = 0;
    double worst_excess = -INFINITY;
    double allow_rel = prec == PRECISION_BF16 ? ALLOW_REL_BF16 : ALLOW_REL_FP32;
    double allow_abs = prec == PRECISION_BF16 ? ALLOW_ABS_BF16 : ALLOW_ABS_FP32;
    for (int s = 0; s < STEPS; s++) {
        double excess = fabs(got[s] - want[s]) - (allow_rel * fabs(want[s]) + allow_abs);
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = s;
        }
        if (s == 0 || s == 9 || s == 49 || s == 99)
            diag("step %d: GPU %s loss %.6f, CPU fp32 %.6f", s + 1, precision_name(prec),
                 got[s], want[s]);
    }
    const char *P = precision_name(prec);
    ok(worst_excess <= 0, "head64 %s: all %d losses within %g%% + %g of the CPU's (closest to "
       "the limit: step %d, %.6f vs %.6f, %.0f%% of its allowance)", P, STEPS, 100 * allow_rel,
       allow_abs, worst + 1, got[worst], want[worst],
       100 * fabs(got[worst] - want[worst]) / (allow_rel * fabs(want[worst]) + allow_abs));
    ok(got[STEPS - 1] < got[0], "head64 %s: loss at step %d (%.6f) below step 1 (%.6f)", P, STEPS,
       got[STEPS - 1], got[0]);
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
        precision prec = precision_arg(argc, argv, 1);
        require_gpu();
        run_gpu(&m, prec, argv[2]);
        done_testing();
    }
    model_free(&m);
    free(dir);
    return tap_failed ? 1 : 0;
}
