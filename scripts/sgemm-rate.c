/* sgemm-rate - the matrix-product rate this machine gives a BERT encoder's
 * dense layers through gemm.h's gemm_bias, as bert.c runs them: fp32
 * (oneDNN's fp32 matmul, or OpenBLAS in a build without oneDNN) or bf16
 * (oneDNN, weights converted beforehand and the input converted in every
 * call): the ceiling for embed's speed, printed by bench-embed.sh.
 *
 *   sgemm-rate THREADS HIDDEN INTERMEDIATE LAYERS ROWS [fp32|bf16]
 *
 * Each of THREADS threads runs single-threaded products of the
 * encoder's dense shapes (ROWS x HIDDEN times the query/key/value,
 * attention-output, intermediate and output weights of LAYERS layers, each
 * its own weights, as embed's threads do with whole batches; the weights
 * in oneDNN's layout, gemm_packs, as embed keeps them, made in a first
 * pass that is not timed) for about two seconds; prints the GFLOP/s of all
 * threads together. */
#include "gemm.h"

#include <cblas.h>
#include <string.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        perror("sgemm-rate");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i % 13) * 0.01f;
    return p;
}

/* The dense layers' products of L layers, each with its own weights. */
static void encoder_pass(gemm_precision prec, int shapes[4][2], int L, int rows, const float *in,
                         float **w, bf16 **w16, const float *bias, float *out, gemm_packs *packs)
{
    for (int i = 0; i < 4 * L; i++)
        gemm_bias(prec, rows, shapes[i % 4][1], shapes[i % 4][0], in, NULL, shapes[i % 4][0], w[i],
                  w16[i], shapes[i % 4][0], bias, out, shapes[i % 4][1], 0, packs);
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: sgemm-rate THREADS HIDDEN INTERMEDIATE LAYERS ROWS [fp32|bf16]\n");
        return 2;
    }
    gemm_precision prec = argc == 7 && !strcmp(argv[6], "bf16") ? GEMM_BF16 : GEMM_FP32;
    if (argc == 7 && prec == GEMM_FP32 && strcmp(argv[6], "fp32")) {
        fprintf(stderr, "sgemm-rate: precision is fp32 or bf16\n");
        return 2;
    }
    int threads = atoi(argv[1]), H = atoi(argv[2]), FF = atoi(argv[3]), L = atoi(argv[4]),
        rows = atoi(argv[5]);
    if (threads < 1 || H < 1 || FF < 1 || L < 1 || rows < 1) {
        fprintf(stderr, "sgemm-rate: arguments must be positive whole numbers\n");
        return 2;
    }
    /* (in, out) of the four dense layers of an encoder layer. */
    int shapes[4][2] = {{H, 3 * H}, {H, H}, {H, FF}, {FF, H}};
    double flop_per_pass = 0;
    for (int s = 0; s < 4; s++)
        flop_per_pass += 2.0 * rows * shapes[s][0] * shapes[s][1] * L;
    openblas_set_num_threads(1); /* also for THREADS = 1, not in parallel */
    omp_set_max_active_levels(1); /* oneDNN, too, single-threaded in each thread */
    long passes_total = 0;
    double t0 = now(), t1 = t0;
#pragma omp parallel num_threads(threads) reduction(+ : passes_total)
    {
        float *in = filled((size_t)rows * FF), *out = filled((size_t)rows * 3 * FF),
              *bias = filled((size_t)3 * (H > FF ? H : FF));
        float **w = malloc(4 * (size_t)L * sizeof *w);
        bf16 **w16 = malloc(4 * (size_t)L * sizeof *w16);
        for (int i = 0; i < 4 * L; i++) {
            size_t n = (size_t)shapes[i % 4][0] * shapes[i % 4][1];
            w[i] = filled(n);
            w16[i] = malloc(n * sizeof *w16[i]);
            bf16_from_float(w16[i], w[i], n);
        }
        gemm_packs *packs = gemm_packs_new();
        encoder_pass(prec, shapes, L, rows, in, w, w16, bias, out, packs);
#pragma omp barrier
#pragma omp single
        t0 = now();
        long passes = 0;
        do {
            encoder_pass(prec, shapes, L, rows, in, w, w16, bias, out, packs);
            passes++;
        } while (now() - t0 < 2.0);
        passes_total += passes;
#pragma omp barrier
#pragma omp single
        t1 = now();
        for (int i = 0; i < 4 * L; i++) {
            free(w[i]);
            free(w16[i]);
        }
        free(w);
        free(w16);
        gemm_packs_free(packs);
        free(in);
        free(out);
        free(bias);
    }
    printf("%.1f\n", passes_total * flop_per_pass / (t1 - t0) / 1e9);
    return 0;
}
