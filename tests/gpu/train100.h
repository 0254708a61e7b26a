/* train100.h - the 100 training steps of head64 on seeded synthetic pairs
 * that tests/gpu/train100.c runs on the GPU and tests/unit/cpu_bf16.c on the
 * CPU in bf16, each against the CPU's fp32 losses (see train100.c for the
 * task and the allowances).  Include after gpu_check.h. */
#ifndef BP_TRAIN100_H
#define BP_TRAIN100_H

#include "optim.h"
#include "rng.h"

#include <math.h>

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
__attribute__((unused)) static void make_batch(rng_t *r, int32_t *ids[2], int32_t *lens[2])
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
__attribute__((unused)) static void make_data(train_data *d)
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
__attribute__((unused)) static void train(const bert_model *m, device_kind device, precision prec,
                                          double *got)
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

__attribute__((unused)) static double allow_rel(precision p)
{
    return p == PRECISION_BF16 ? ALLOW_REL_BF16 : ALLOW_REL_FP32;
}

__attribute__((unused)) static double allow_abs(precision p)
{
    return p == PRECISION_BF16 ? ALLOW_ABS_BF16 : ALLOW_ABS_FP32;
}

/* TAP: every loss in got within rel * |want| + abs of want, and the last
 * below the first; what names the run (e.g. "GPU", P its precision). */
__attribute__((unused)) static void compare_losses(const double *got, const double *want,
                                                   double rel, double abs_, const char *what,
                                                   const char *P)
{
    int worst = 0;
    double worst_excess = -INFINITY;
    for (int s = 0; s < STEPS; s++) {
        double excess = fabs(got[s] - want[s]) - (rel * fabs(want[s]) + abs_);
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = s;
        }
        if (s == 0 || s == 9 || s == 49 || s == 99)
            diag("step %d: %s %s loss %.6f, CPU fp32 %.6f", s + 1, what, P, got[s], want[s]);
    }
    ok(worst_excess <= 0, "head64 %s %s: all %d losses within %g%% + %g of the CPU's fp32 (closest "
       "to the limit: step %d, %.6f vs %.6f, %.0f%% of its allowance)", what, P, STEPS, 100 * rel,
       abs_, worst + 1, got[worst], want[worst],
       100 * fabs(got[worst] - want[worst]) / (rel * fabs(want[worst]) + abs_));
    ok(got[STEPS - 1] < got[0], "head64 %s %s: loss at step %d (%.6f) below step 1 (%.6f)", what,
       P, STEPS, got[STEPS - 1], got[0]);
}

#endif
