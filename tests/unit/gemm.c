/* gemm - the dense layers' products of gemm.h against a float64 reference:
 * gemm_bias in fp32 and bf16, and gemm_bias_gelu (bias and GELU applied by
 * oneDNN; in bf16 the result rounded to bf16), at row counts below, at
 * and across the bf16 products' blocks of 256 rows.  The bf16 reference is
 * computed from the operands rounded to bf16 as the products take them, so
 * what remains is fp32 accumulation (and, with GELU, the rounding of the
 * result to bf16: 2^-8 of it).  The products again with the weights kept
 * in oneDNN's layout (gemm_packs): as exact, and that copy is what they
 * read until it is cleared.  The bf16 tests skip, saying why, where the
 * CPU has no AVX512_BF16.  And the products' count (gemm_products_counted)
 * with and without BERTPIPE_PRODUCT_RATE=1, in child processes, as the
 * environment is read once. */
#include "../tap.h"
#include "child.h"
#include "gemm.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 72, K = 40 };

static double round_bf16(float x)
{
    bf16 h;
    bf16_from_float(&h, &x, 1);
    return bf16_to_float(h);
}

static double gelu(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

/* The worst |got - want| / (allow_rel |want| + allow_abs scale) over C. */
static double worst(const float *got, const double *want, int M, double scale, double allow_rel,
                    double allow_abs)
{
    double w = 0;
    for (int i = 0; i < M * N; i++) {
        double e = fabs(got[i] - want[i]) / (allow_rel * fabs(want[i]) + allow_abs * scale);
        w = e > w ? e : w;
    }
    return w;
}

/* With room (gemm.h), the same bits as without, whatever the spare rows
 * of A hold (NaN here): the padded rows computed in place instead of in
 * copies. */
static void check_room(gemm_precision p, int gelu, int M, const float *A, const float *B,
                       const bf16 *B16, const float *bias)
{
    int R = gemm_rows_with_room(M);
    size_t c_size = p == GEMM_BF16 && gelu ? sizeof(bf16) : sizeof(float);
    float *spare = xmallocarray((size_t)R * K, sizeof *spare);
    memcpy(spare, A, (size_t)M * K * sizeof *A);
    for (size_t i = (size_t)M * K; i < (size_t)R * K; i++)
        spare[i] = NAN;
    char *want = xmallocarray((size_t)M * N, c_size), *got = xmallocarray((size_t)R * N, c_size);
    if (gelu) {
        gemm_bias_gelu(p, M, N, K, A, NULL, K, B, B16, K, bias, want, N, 0, NULL);
        gemm_bias_gelu(p, M, N, K, spare, NULL, K, B, B16, K, bias, got, N, 1, NULL);
    } else {
        gemm_bias(p, M, N, K, A, NULL, K, B, B16, K, bias, (float *)want, N, 0, NULL);
        gemm_bias(p, M, N, K, spare, NULL, K, B, B16, K, bias, (float *)got, N, 1, NULL);
    }
    ok(memcmp(got, want, (size_t)M * N * c_size) == 0,
       "%s gemm_bias%s, %d rows: with rows to spare (NaN in them), the same bits",
       p == GEMM_BF16 ? "bf16" : "fp32", gelu ? "_gelu" : "", M);
    free(spare);
    free(want);
    free(got);
}

/* gemm_bias with packs (gemm.h): within the bound of the product without
 * (want: its float64 reference); then, B's first weight changed in place,
 * the packed copy's product (the same bits) until gemm_packs_clear, and
 * after it the product of the new weights.  B and B16 are as they were
 * when it returns, packs cleared. */
static void check_packs(gemm_precision p, int M, const float *A, float *B, bf16 *B16,
                        const float *bias, const double *want, double scale)
{
    const char *name = p == GEMM_BF16 ? "bf16" : "fp32";
    gemm_packs *packs = gemm_packs_new();
    if (!packs) {
        diag("built without oneDNN: no gemm_packs");
        return;
    }
    float *C = xmallocarray((size_t)M * N, sizeof *C), *again = xmallocarray((size_t)M * N, sizeof *again);
    double *changed = xmallocarray((size_t)M * N, sizeof *changed);
    gemm_bias(p, M, N, K, A, NULL, K, B, B16, K, bias, C, N, 0, packs);
    double e = worst(C, want, M, scale, 0, 1e-6);
    ok(e <= 1, "%s gemm_bias with packs, %d rows: within 1e-6 of the largest |a||b| sum (%.3g "
       "of it)", name, M, e);
    float old = B[0];
    bf16 old16 = B16 ? B16[0] : 0;
    B[0] = old + 1.0f;
    if (B16)
        bf16_from_float(B16, B, 1);
    gemm_bias(p, M, N, K, A, NULL, K, B, B16, K, bias, again, N, 0, packs);
    ok(memcmp(again, C, (size_t)M * N * sizeof *C) == 0,
       "%s gemm_bias with packs, %d rows: weights changed, packs not cleared: the packed copy's "
       "product, the same bits", name, M);
    gemm_packs_clear(packs);
    gemm_bias(p, M, N, K, A, NULL, K, B, B16, K, bias, again, N, 0, packs);
    /* the new weights' product: the first column moved by A's first column
     * times the change (in bf16, of the operands rounded) */
    double step = B16 ? round_bf16(B[0]) - round_bf16(old) : 1.0;
    for (int i = 0; i < M * N; i++) {
        double a = B16 ? round_bf16(A[i / N * K]) : A[i / N * K];
        changed[i] = C[i] + (i % N == 0 ? a * step : 0.0);
    }
    e = worst(again, changed, M, scale, 0, 2e-6);
    ok(e <= 1, "%s gemm_bias with packs, %d rows: after gemm_packs_clear, the new weights' "
       "product (%.3g of the bound)", name, M, e);
    B[0] = old;
    if (B16)
        B16[0] = old16;
    gemm_packs_free(packs);
    free(C), free(again), free(changed);
}

/* In a child: with rate_env (the environment's BERTPIPE_PRODUCT_RATE, or
 * NULL for none), one fp32 gemm_bias of 37 rows and, where there is one,
 * a gemm_bias_gelu of 300; on stderr what gemm_products_counted says. */
static void count_products(const void *rate_env)
{
    if (rate_env)
        setenv("BERTPIPE_PRODUCT_RATE", rate_env, 1);
    else
        unsetenv("BERTPIPE_PRODUCT_RATE");
    enum { M1 = 37, M2 = 300 };
    float *A = xcalloc((size_t)M2 * K, sizeof *A), *B = xcalloc((size_t)N * K, sizeof *B),
          *C = xcalloc((size_t)M2 * N, sizeof *C), bias[N] = {0};
    gemm_bias(GEMM_FP32, M1, N, K, A, NULL, K, B, NULL, K, bias, C, N, 0, NULL);
    if (gemm_fuses_gelu())
        gemm_bias_gelu(GEMM_FP32, M2, N, K, A, NULL, K, B, NULL, K, bias, C, N, 0, NULL);
    double gflop, seconds;
    int counted = gemm_products_counted(&gflop, &seconds);
    fprintf(stderr, "%d %.17g %.17g\n", counted, gflop, seconds);
}

/* count_products(rate_env) in a child: 1 when it ran and said what it
 * counted, into *counted, *gflop and *seconds. */
static int counted_in_child(const char *rate_env, int *counted, double *gflop, double *seconds)
{
    char err[256];
    return run_in_child(count_products, rate_env, err, sizeof err) == 0 &&
           sscanf(err, "%d %lf %lf", counted, gflop, seconds) == 3;
}

static void check_counting(void)
{
    int counted;
    double gflop, seconds, want = 2.0 * (37 + (gemm_fuses_gelu() ? 300 : 0)) * N * K * 1e-9;
    int ran = counted_in_child("1", &counted, &gflop, &seconds);
    ok(ran && counted == 1 && fabs(gflop - want) <= 1e-12 * want && seconds > 0,
       "BERTPIPE_PRODUCT_RATE=1: the products counted, 2 M N K each (%.6g GFLOP, want %.6g), "
       "and their time (%.3g s)", ran ? gflop : -1, want, ran ? seconds : -1);
    ran = counted_in_child(NULL, &counted, &gflop, &seconds);
    ok(ran && counted == 0 && gflop == 0 && seconds == 0,
       "without BERTPIPE_PRODUCT_RATE: nothing counted");
    ran = counted_in_child("yes", &counted, &gflop, &seconds);
    ok(ran && counted == 0 && gflop == 0, "BERTPIPE_PRODUCT_RATE=yes, not 1: nothing counted");
}

int main(void)
{
    util_init("gemm");
    check_counting(); /* before any product here, whose first call reads the environment */
    const char *why;
    int bf16_here = gemm_bf16_available(&why);
    if (!bf16_here)
        diag("bf16 products unavailable (%s): fp32 only", why);
    const int rows[] = {1, 37, 256, 300, 513};
    float *B = xmallocarray((size_t)N * K, sizeof *B), bias[N];
    bf16 *B16 = xmallocarray((size_t)N * K, sizeof *B16);
    uint64_t state = 12345;
    for (int i = 0; i < N * K; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        B[i] = (float)((double)(state >> 11) / (double)(1ULL << 53) - 0.5);
    }
    for (int j = 0; j < N; j++)
        bias[j] = 0.05f * (float)(j % 7) - 0.15f;
    bf16_from_float(B16, B, (size_t)N * K);
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        int M = rows[r];
        float *A = xmallocarray((size_t)M * K, sizeof *A), *C = xmallocarray((size_t)M * N, sizeof *C);
        bf16 *C16 = xmallocarray((size_t)M * N, sizeof *C16);
        double *want = xmallocarray((size_t)M * N, sizeof *want);
        double *want16 = xmallocarray((size_t)M * N, sizeof *want16);
        for (int i = 0; i < M * K; i++)
            A[i] = (float)sin(0.37 * i + M);
        /* scale: the largest sum of |a| |b| of a result */
        double scale = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s = bias[j], s16 = bias[j], mag = 0;
                for (int k = 0; k < K; k++) {
                    s += (double)A[i * K + k] * B[j * K + k];
                    s16 += round_bf16(A[i * K + k]) * round_bf16(B[j * K + k]);
                    mag += fabs((double)A[i * K + k] * B[j * K + k]);
                }
                want[i * N + j] = s;
                want16[i * N + j] = s16;
                scale = mag > scale ? mag : scale;
            }

        gemm_bias(GEMM_FP32, M, N, K, A, NULL, K, B, NULL, K, bias, C, N, 0, NULL);
        double e = worst(C, want, M, scale, 0, 1e-6);
        ok(e <= 1, "fp32 gemm_bias, %d rows: within 1e-6 of the largest |a||b| sum (%.3g of it)",
           M, e);
        check_room(GEMM_FP32, 0, M, A, B, NULL, bias);
        check_packs(GEMM_FP32, M, A, B, NULL, bias, want, scale);
        if (gemm_fuses_gelu()) {
            check_room(GEMM_FP32, 1, M, A, B, NULL, bias);
            gemm_bias_gelu(GEMM_FP32, M, N, K, A, NULL, K, B, NULL, K, bias, C, N, 0, NULL);
            double *want_gelu = xmallocarray((size_t)M * N, sizeof *want_gelu);
            for (int i = 0; i < M * N; i++)
                want_gelu[i] = gelu(want[i]);
            e = worst(C, want_gelu, M, scale, 1e-6, 1e-6);
            free(want_gelu);
            ok(e <= 1, "fp32 gemm_bias_gelu, %d rows: within 1e-6 of the value + 1e-6 of the "
               "largest |a||b| sum (%.3g of it)", M, e);
        } else {
            diag("built without oneDNN: no gemm_bias_gelu");
        }
        if (!bf16_here) {
            free(A), free(C), free(C16), free(want), free(want16);
            continue;
        }
        gemm_bias(GEMM_BF16, M, N, K, A, NULL, K, B, B16, K, bias, C, N, 0, NULL);
        e = worst(C, want16, M, scale, 0, 1e-6);
        ok(e <= 1, "bf16 gemm_bias, %d rows: within 1e-6 of the largest |a||b| sum of the "
           "bf16 operands' product (%.3g of it)", M, e);

        check_room(GEMM_BF16, 0, M, A, B, B16, bias);
        check_packs(GEMM_BF16, M, A, B, B16, bias, want16, scale);
        check_room(GEMM_BF16, 1, M, A, B, B16, bias);
        /* A given in bf16 here (gemm_bias above converted it itself) */
        bf16 *A16 = xmallocarray((size_t)M * K, sizeof *A16);
        bf16_from_float(A16, A, (size_t)M * K);
        gemm_bias_gelu(GEMM_BF16, M, N, K, NULL, A16, K, B, B16, K, bias, C16, N, 0, NULL);
        free(A16);
        for (int i = 0; i < M * N; i++) {
            C[i] = bf16_to_float(C16[i]);
            want16[i] = gelu(want16[i]);
        }
        /* bf16 keeps 8 significant bits: half a unit is 2^-9 of the value */
        e = worst(C, want16, M, scale, 1.0 / 256, 2e-6);
        ok(e <= 1, "bf16 gemm_bias_gelu, %d rows: GELU within 2^-8 of the value + 2e-6 of "
           "the largest |a||b| sum (%.3g of it)", M, e);
        free(A), free(C), free(C16), free(want), free(want16);
    }
    free(B);
    free(B16);
    done_testing();
    return tap_failed ? 1 : 0;
}
