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

/* The first n_pairs pairs of an STS-B csv (tab-separated: score in field 5,
 * the two sentences in fields 6 and 7): texts[2i], texts[2i+1] and gold[i].
 * n_pairs <= 0 reads them all.  Returns the number of pairs. */
__attribute__((unused)) static int sts_read(const char *path, int n_pairs, char ***texts,
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
        line[strcspn(line, "\r\n")] = 0;
        char *field[7];
        int k = 0;
        for (char *s = line; k < 7; k++) {
            field[k] = s;
            char *tab = strchr(s, '\t');
            if (!tab) {
                k++;
                break;
            }
            *tab = 0;
            s = tab + 1;
        }
        if (k < 7)
            die("%s:%d: fewer than 7 fields", path, n + 1);
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 1024;
            *texts = xrealloc(*texts, 2 * (size_t)alloc * sizeof **texts);
            *gold = xrealloc(*gold, (size_t)alloc * sizeof **gold);
        }
        if (parse_double(field[4], &(*gold)[n]))
            die("%s:%d: bad score '%s'", path, n + 1, field[4]);
        (*texts)[2 * n] = xstrdup(field[5]);
        (*texts)[2 * n + 1] = xstrdup(field[6]);
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
__attribute__((unused)) static gpu_precision precision_arg(int argc, char **argv, int i)
{
    gpu_precision p;
    if (argc <= i || gpu_precision_parse(argv[i], &p))
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

#endif
