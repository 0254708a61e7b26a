/* bf16.c - gemm.h's conversions to bf16: apart from the products, so that
 * what has no oneDNN (the model loader in the fuzzing build) has them. */
#include "gemm.h"
#include "vmath.h"

MULTIVERSIONED static void to_bf16(bf16 *restrict out, const float *restrict in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_round(in[i]);
}

void bf16_from_float(bf16 *out, const float *in, size_t n)
{
    enum { CHUNK = 1 << 16 };
    size_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * CHUNK;
        to_bf16(out + i, in + i, n - i < CHUNK ? n - i : CHUNK);
    }
}

void bf16_rows_from_float(bf16 *out, size_t ld_out, const float *in, size_t ld_in, int rows,
                          int cols)
{
    if (ld_in == (size_t)cols && ld_out == (size_t)cols) {
        bf16_from_float(out, in, (size_t)rows * cols);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= 1 << 17)
    for (int r = 0; r < rows; r++)
        to_bf16(out + r * ld_out, in + r * ld_in, cols);
}
