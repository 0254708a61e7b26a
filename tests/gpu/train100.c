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
#include "train100.h"

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
    compare_losses(got, want, allow_rel(prec), allow_abs(prec), "GPU", precision_name(prec));
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
