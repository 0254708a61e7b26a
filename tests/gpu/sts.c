/* sts fp32|bf16: the tiny fixture model on STS-B dev through the library
 * (tokenize, encoder_embed, cosine, Spearman), as the pipeline
 * `wp-tokenize | embed --device cuda | spearman` computes it (TAP):
 * fp32 cosines within 1e-5 of tiny/sts-dev.cosine.txt; bf16 Spearman
 * within 2e-3 of meta.json's 0.494386. */
#include "gpu_check.h"
#include "stats.h"


int main(int argc, char **argv)
{
    util_init("gpu-sts");
    precision prec = precision_arg(argc, argv, 1);
    require_gpu();
    const char *P = precision_name(prec);

    char *dir = fixture_path("tiny", "model"), *csv = shared_path("data/stsbenchmark/sts-dev.csv");
    char **texts;
    double *gold;
    int n = sts_texts(csv, 0, &texts, &gold);
    bert_model m;
    model_load(&m, dir);
    wordpiece *wp = wp_load(dir, NULL);
    int32_t *ids, *lens, T;
    tokenize_all(wp, texts, 2 * n, wp_default_max_length(dir), &ids, &lens, &T);

    int H = m.cfg.hidden;
    float *emb = xmallocarray((size_t)2 * n * H, sizeof *emb);
    encoder *e = open_encoder(&m, DEVICE_CUDA, prec, 0, 0, 0);
    double t0 = now_seconds();
    encoder_embed(e, ids, lens, 2 * n, T, m.normalize, emb);
    diag("%d sentences embedded in %.3f s", 2 * n, now_seconds() - t0);

    double *cos = xmallocarray(n, sizeof *cos), worst = 0;
    char *ref_path = fixture_path("tiny", "sts-dev.cosine.txt");
    FILE *f = fopen(ref_path, "r");
    if (!f)
        die("%s: cannot open", ref_path);
    for (int i = 0; i < n; i++) {
        double want;
        if (fscanf(f, "%lf", &want) != 1)
            die("%s: fewer than %d cosines", ref_path, n);
        cos[i] = cosine_f32(emb + (size_t)2 * i * H, emb + (size_t)(2 * i + 1) * H, H);
        worst = fmax(worst, fabs(cos[i] - want));
    }
    fclose(f);
    double rho = stats_spearman(cos, gold, n), want_rho = fixture_sts_spearman();
    if (prec == PRECISION_FP32)
        ok(worst <= 1e-5, "tiny fp32: %d STS-B dev cosines, max error %.3g from the fixture "
           "(Spearman %.6f, reference %.6f)", n, worst, rho, want_rho);
    else
        ok(fabs(rho - want_rho) <= 2e-3, "tiny %s: STS-B dev Spearman %.6f, reference %.6f "
           "(cosines: max error %.3g, not judged)", P, rho, want_rho, worst);

    encoder_close(e);
    wp_free(wp);
    model_free(&m);
    for (int i = 0; i < 2 * n; i++)
        free(texts[i]);
    free(texts);
    free(gold);
    free(ids);
    free(lens);
    free(emb);
    free(cos);
    free(dir);
    free(csv);
    free(ref_path);
    return done_testing();
}
