/* gpu_check.h - what the GPU check programs in tests/gpu/ (run by
 * tests/gpu/check.sh on a machine with a GPU) share: the fixture readers of
 * the encoder tests, STS-B sentences, tokenizing to padded id blocks and
 * error measures.  Data come from $SHARED (gpu-fixtures/ on the GPU machine,
 * laid out as ../shared). */
#ifndef BP_GPU_CHECK_H
#define BP_GPU_CHECK_H

#include "../unit/bert_fixture.h"
#include "gpu.h"
#include "loss.h"
#include "sts_eval.h"
#include "trainer.h"
#include "wordpiece.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative error of got against want (0 when equal). */
__attribute__((unused)) static double rel_err(double got, double want)
{
    return got == want ? 0 : fabs(got - want) / fabs(want);
}

/* max over rows of |x_r - ref_r| / |ref_r|, rows of d floats. */
__attribute__((unused)) static double max_row_rel(const float *x, const float *ref, size_t rows,
                                                  int d)
{
    double worst = 0;
    for (size_t r = 0; r < rows; r++) {
        double e = 0, n = 0;
        for (int j = 0; j < d; j++) {
            double a = x[r * d + j], b = ref[r * d + j];
            e += (a - b) * (a - b);
            n += b * b;
        }
        worst = fmax(worst, n > 0 ? sqrt(e / n) : sqrt(e));
    }
    return worst;
}

/* $SHARED/REL, to be freed. */
__attribute__((unused)) static char *shared_path(const char *rel)
{
    return path_join(shared_dir(), rel);
}

/* The first n_pairs pairs of an STS-B csv (sts_parse_line's format):
 * texts[2i], texts[2i+1] and gold[i].  n_pairs <= 0 reads them all.
 * Returns the number of pairs. */
__attribute__((unused)) static int sts_texts(const char *path, int n_pairs, char ***texts,
                                             double **gold)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, alloc = 0;
    *texts = NULL;
    *gold = NULL;
    while ((n_pairs <= 0 || n < n_pairs) && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 1024;
            *texts = xrealloc(*texts, 2 * (size_t)alloc * sizeof **texts);
            *gold = xrealloc(*gold, (size_t)alloc * sizeof **gold);
        }
        char *s1, *s2;
        sts_parse_line(line, path, n + 1, &(*gold)[n], &s1, &s2);
        (*texts)[2 * n] = xstrdup(s1);
        (*texts)[2 * n + 1] = xstrdup(s2);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

/* texts[0..n) tokenized into ids [n, *T] (-1 padding, *T the longest) and
 * lens[n]; the caller frees both. */
__attribute__((unused)) static void tokenize_all(const wordpiece *wp, char *const *texts, int n,
                                                 int max_len, int32_t **ids, int32_t **lens,
                                                 int *T)
{
    int32_t *all = xmallocarray((size_t)n * max_len, sizeof *all);
    *lens = xmallocarray(n, sizeof **lens);
    *T = 1;
    for (int i = 0; i < n; i++) {
        int len = wp_encode(wp, texts[i], strlen(texts[i]), all + (size_t)i * max_len, max_len);
        if (len < 1)
            die("text %d is not valid UTF-8", i);
        (*lens)[i] = len;
        *T = len > *T ? len : *T;
    }
    *ids = xmallocarray((size_t)n * *T, sizeof **ids);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < *T; t++)
            (*ids)[(size_t)i * *T + t] = t < (*lens)[i] ? all[(size_t)i * max_len + t] : -1;
    free(all);
}

/* The precision named by argv[1] ("fp32" or "bf16"), or a usage error. */
__attribute__((unused)) static precision precision_arg(int argc, char **argv, int i)
{
    precision p;
    if (argc <= i || precision_parse(argv[i], &p))
        die("usage: %s fp32|bf16 ...", argv[0]);
    return p;
}

/* Skip everything (TAP) when no GPU is usable. */
__attribute__((unused)) static void require_gpu(void)
{
    char why[256];
    if (!gpu_available(why, sizeof why))
        skip_all(why);
    diag("device: %s", why);
}

/* An encoder for m on device (DEVICE_CPU or DEVICE_CUDA) in precision p;
 * for training, batches of up to max_sequences sequences of max_len tokens. */
__attribute__((unused)) static encoder *open_encoder(const bert_model *m, device_kind device,
                                                     precision p, int training,
                                                     int max_sequences, int max_len)
{
    encoder_settings s = {.device = device, .precision = p, .precision_given = 1,
                          .doing = "checking",
                          .training = training, .batch_size = 64,
                          .max_sequences = max_sequences, .max_len = max_len};
    return encoder_open(m, &s);
}

/* Rows of C columns (column c: ids [B, T[c]], lengths lens[c]) appended to
 * d as training rows. */
__attribute__((unused)) static void add_columns(train_data *d, const int32_t *const *ids,
                                                const int32_t *const *lens, int C, int B,
                                                const int *T)
{
    const int32_t **seqs = xmallocarray(C, sizeof *seqs);
    int32_t *n = xmallocarray(C, sizeof *n);
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            seqs[c] = ids[c] + (size_t)b * T[c];
            n[c] = lens[c][b];
        }
        train_data_add_row(d, seqs, n);
    }
    free(seqs);
    free(n);
}

/* A trainer on e over d, for steps of batch_size rows called one by one
 * (trainer_step, trainer_forward_backward): input order, clipping at
 * max_norm, optimizer adam. */
__attribute__((unused)) static void step_trainer(trainer *t, const bert_model *m, encoder *e,
                                                 const train_data *d, int batch_size,
                                                 const loss *l, const adam_config *adam,
                                                 double max_norm)
{
    train_options o = train_options_default();
    o.batch_size = batch_size;
    o.shuffle = 0;
    o.max_grad_norm = max_norm;
    trainer_init(t, &o, m, e, l, d, (train_position){0}, 0);
    t->adam = *adam;
}

#endif
