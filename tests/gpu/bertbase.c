/* bertbase cpu OUT | bertbase fp32|bf16 REF: a bert-base-shaped model with
 * random weights (tests/gpu/bert-base-config.json, model_init_random seed
 * 42) embeds the first 1000 STS-B dev sentences (bert-base-uncased
 * vocabulary, at most 128 tokens, mean pooling): on the CPU (fp32, the
 * reference, written to OUT as raw float32 [1000, 768]) or on the GPU,
 * compared with REF (TAP): |e - ref| / |ref| <= 1e-2 (fp32) or 2e-2 (bf16)
 * on every row (see ROW_TOL_*). */
#include "gpu_check.h"

enum { SENTENCES = 1000, MAX_LEN = 128, SEED = 42 };

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
    precision prec = PRECISION_BF16;
    if (!cpu) {
        prec = precision_arg(argc, argv, 1);
        require_gpu();
    }

    char *csv = shared_path("data/stsbenchmark/sts-dev.csv");
    char *vocab = shared_path("data/vocab/bert-base-uncased-vocab.txt");
    char **texts;
    double *gold;
    int pairs = sts_texts(csv, SENTENCES / 2, &texts, &gold);
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

    encoder *e = open_encoder(&m, cpu ? DEVICE_CPU : DEVICE_CUDA, prec, 0, 0, 0);
    encoder_embed(e, ids, lens, SENTENCES, T, 0, emb);
    encoder_close(e);
    if (cpu) {
        atomic_file out;
        atomic_open(&out, argv[2]);
        out_write(out.f, argv[2], emb, (size_t)SENTENCES * H * sizeof *emb);
        atomic_commit(&out);
        warnx("%d sentences on the CPU in %.1f s", SENTENCES, now_seconds() - t0);
    } else {
        diag("%d sentences (longest %d tokens) on the GPU in %.3f s, model upload included",
             SENTENCES, T, now_seconds() - t0);
        float *ref = xmallocarray((size_t)SENTENCES * H, sizeof *ref);
        FILE *f = fopen(argv[2], "rb");
        if (!f || fread(ref, sizeof *ref, (size_t)SENTENCES * H, f) != (size_t)SENTENCES * H)
            die("%s: cannot read %d x %d floats (run '%s cpu %s' first)", argv[2], SENTENCES, H,
                argv[0], argv[2]);
        fclose(f);
        double rr = max_row_rel(emb, ref, SENTENCES, H);
        double tol = prec == PRECISION_BF16 ? ROW_TOL_BF16 : ROW_TOL_FP32;
        ok(rr <= tol, "bert-base shape, random weights, %s: %d STS-B embeddings, worst row "
           "%.3g of its norm from the CPU's fp32 (limit %g)", precision_name(prec), SENTENCES,
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
