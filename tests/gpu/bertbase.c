/* bertbase cpu OUT | bertbase fp32|bf16 REF: a bert-base-shaped model with
 * random weights (tests/gpu/bert-base-config.json, model_init_random seed
 * 42) embeds the first 1000 STS-B dev sentences (bert-base-uncased
 * vocabulary, at most 128 tokens, mean pooling): on the CPU (fp32, the
 * reference, written to OUT as raw float32 [1000, 768]) or on the GPU,
 * compared with REF (TAP): |e - ref| / |ref| <= 1e-2 (fp32) or 2e-2 (bf16)
 * on every row (see ROW_TOL_*). */
#include "gpu_check.h"

enum { SENTENCES = 1000, MAX_LEN = 128, SEED = 42, CPU_BATCH = 32 };

/* The worst row's relative error allowed.  bf16: the review of issue 11
 * emulated the GPU's bf16 rounding in float64 on this model and these
 * sentences and found a worst row of 8.5e-3; 2e-2 is a margin of 2.35x over
 * it (at least 2x asked).  fp32: 1e-2, as before (loose: only the order of
 * fp32 sums differs from the CPU's). */
static const double ROW_TOL_BF16 = 2e-2, ROW_TOL_FP32 = 1e-2;

int main(int argc, char **argv)
{
    util_init("gpu-bertbase");
    if (argc != 3 || !getenv("BERT_BASE_CONFIG"))
        die("usage: BERT_BASE_CONFIG=tests/gpu/bert-base-config.json %s cpu OUT | fp32|bf16 REF",
            argv[0]);
    int cpu = !strcmp(argv[1], "cpu");
    gpu_precision prec = GPU_BF16;
    if (!cpu) {
        prec = precision_arg(argc, argv, 1);
        require_gpu();
    }

    char *csv = shared_path("data/stsbenchmark/sts-dev.csv");
    char *vocab = shared_path("data/vocab/bert-base-uncased-vocab.txt");
    char **texts;
    double *gold;
    int pairs = sts_read(csv, SENTENCES / 2, &texts, &gold);
    if (2 * pairs != SENTENCES)
        die("%s: fewer than %d sentences", csv, SENTENCES);
    wordpiece *wp = wp_load(NULL, vocab);
    int32_t *ids, *lens, T;
    tokenize_all(wp, texts, SENTENCES, MAX_LEN, &ids, &lens, &T);
    bert_model m;
    model_init_random(&m, getenv("BERT_BASE_CONFIG"), SEED);
    int H = m.cfg.hidden;
    float *emb = xmallocarray((size_t)SENTENCES * H, sizeof *emb);
    double t0 = now_seconds();

    if (cpu) {
        bert_acts *a = bert_acts_new(&m.cfg, CPU_BATCH, T, 0);
        for (int s = 0; s < SENTENCES; s += CPU_BATCH) {
            int B = SENTENCES - s < CPU_BATCH ? SENTENCES - s : CPU_BATCH;
            bert_forward(&m.cfg, m.params, ids + (size_t)s * T, lens + s, B, T, a, NULL);
            bert_pool(a, POOL_MEAN, emb + (size_t)s * H);
        }
        bert_acts_free(a);
        atomic_file out;
        atomic_open(&out, argv[2]);
        out_write(out.f, argv[2], emb, (size_t)SENTENCES * H * sizeof *emb);
        atomic_commit(&out);
        warnx("%d sentences on the CPU in %.1f s", SENTENCES, now_seconds() - t0);
    } else {
        gpu_model *g = gpu_model_create(&m.cfg, m.params, prec, 0);
        gpu_embed(g, ids, lens, SENTENCES, T, POOL_MEAN, 0, emb);
        diag("%d sentences (longest %d tokens) on the GPU in %.3f s, model upload included",
             SENTENCES, T, now_seconds() - t0);
        gpu_model_free(g);
        float *ref = xmallocarray((size_t)SENTENCES * H, sizeof *ref);
        FILE *f = fopen(argv[2], "rb");
        if (!f || fread(ref, sizeof *ref, (size_t)SENTENCES * H, f) != (size_t)SENTENCES * H)
            die("%s: cannot read %d x %d floats (run '%s cpu %s' first)", argv[2], SENTENCES, H,
                argv[0], argv[2]);
        fclose(f);
        double rr = max_row_rel(emb, ref, SENTENCES, H);
        double tol = prec == GPU_BF16 ? ROW_TOL_BF16 : ROW_TOL_FP32;
        ok(rr <= tol, "bert-base shape, random weights, %s: %d STS-B embeddings, worst row "
           "%.3g of its norm from the CPU's fp32 (limit %g)", gpu_precision_name(prec), SENTENCES,
           rr, tol);
        free(ref);
        done_testing();
    }
    wp_free(wp);
    model_free(&m);
    for (int i = 0; i < SENTENCES; i++)
        free(texts[i]);
    free(texts);
    free(gold);
    free(ids);
    free(lens);
    free(emb);
    free(csv);
    free(vocab);
    return tap_failed ? 1 : 0;
}
