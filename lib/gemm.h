/* gemm.h - the CPU encoder's matrix products, with the precision as data:
 * bf16 through oneDNN's matmul (bf16 operands, fp32 accumulation and
 * result), which reaches the AVX512_BF16 dot-product instructions
 * (vdpbf16ps) as PyTorch's CPU autocast does; fp32 through OpenBLAS, except
 * the dense layers' forward products (gemm_bias, gemm_bias_gelu), which go
 * through oneDNN's fp32 matmul too when the build has it: faster on this
 * project's CPU, with the bias and GELU applied as it writes the result.
 * docs/cpu-bf16.md says why oneDNN, and what it measured.  A build without
 * oneDNN (make DNNL=) has fp32 only, all of it through OpenBLAS:
 * gemm_bf16_available() says so. */
#ifndef BP_GEMM_H
#define BP_GEMM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GEMM_FP32, GEMM_BF16 } gemm_precision;

/* A bfloat16 number: the top half of a float's bits. */
typedef uint16_t bf16;

/* 1 when bf16 products can run here: the CPU has AVX512_BF16 and the
 * environment does not say BERTPIPE_CPU_BF16=0 (which forces the fallback,
 * so that it can be tested on any machine).  Otherwise 0 and, in why
 * (may be NULL), a few words on the reason. */
int gemm_bf16_available(const char **why);

/* x rounded to the nearest bf16 (ties to even; NaN stays NaN, quiet).
 * Inline, so that the loops calling it vectorise. */
static inline bf16 bf16_round(float x)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (bf16)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
}

/* The float that bf16 h stands for (exact: its bits are the float's top
 * half). */
static inline float bf16_to_float(bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

/* out[i] = bf16_round(in[i]).  (These two are lib/bf16.c's, which needs
 * no oneDNN.) */
void bf16_from_float(bf16 *out, const float *in, size_t n);

/* rows x cols of in (rows ld_in apart) rounded to bf16 into out (rows
 * ld_out apart). */
void bf16_rows_from_float(bf16 *out, size_t ld_out, const float *in, size_t ld_in, int rows,
                          int cols);

/* C[M, N] = op(A) op(B) + beta C, row-major: op(A) is [M, K], A stored
 * [M, K] (lda apart) or, with ta, [K, M]; op(B) is [K, N], B stored [K, N]
 * or, with tb, [N, K].  In bf16, A16 and B16 are the operands already
 * converted (same layout), or NULL to convert A or B here (activations,
 * converted as they are used); fp32 ignores them. */
void gemm(gemm_precision p, int ta, int tb, int M, int N, int K, const float *A, const bf16 *A16,
          int lda, const float *B, const bf16 *B16, int ldb, float beta, float *C, int ldc);

/* The rows a caller may give gemm_bias and gemm_bias_gelu to spare (room):
 * M rounded up to a multiple of GEMM_ROW_ROOM, gemm_rows_with_room(M). */
enum { GEMM_ROW_ROOM = 32 };

static inline int gemm_rows_with_room(int rows)
{
    return (rows + GEMM_ROW_ROOM - 1) / GEMM_ROW_ROOM * GEMM_ROW_ROOM;
}

/* Weights kept in oneDNN's own layout for the dense layers' products: a
 * weight matrix (B of gemm_bias and gemm_bias_gelu, by its address, for
 * each layout a product asks for) reordered at its first product and
 * reused after, which saves the product that reordering of its operand
 * each time (bf16 on AMX above all).  The owner of the weights makes one,
 * gives it to the products, and clears it whenever a weight changes.
 * Products from several threads may share one; clearing may not overlap
 * them.  gemm_packs_new returns NULL in a build without oneDNN, and the
 * products take NULL as "none": they read the weights as they are. */
typedef struct gemm_packs gemm_packs;
gemm_packs *gemm_packs_new(void);
void gemm_packs_clear(gemm_packs *packs);
void gemm_packs_free(gemm_packs *packs);

/* C[M, N] = A[M, K] B[N, K]^T + bias[N] on every row (a dense layer's
 * forward product); A16 and B16 as for gemm.  With room, A (or A16) and C
 * have rows up to M rounded up to GEMM_ROW_ROOM, which the product may read
 * and write (their values do not matter, and change), so that oneDNN's
 * products for a fixed number of rows need no padded copies.  packs (NULL:
 * none): B, or B16 in bf16, taken from there. */
void gemm_bias(gemm_precision p, int M, int N, int K, const float *A, const bf16 *A16, int lda,
               const float *B, const bf16 *B16, int ldb, const float *bias, float *C, int ldc,
               int room, gemm_packs *packs);

/* 1 when this build has gemm_bias_gelu (oneDNN), else 0. */
int gemm_fuses_gelu(void);

/* C[M, N] = GELU(A[M, K] B[N, K]^T + bias[N]): a dense layer and its
 * activation in one pass, for inference, where nothing needs the values
 * before the GELU.  C is bf16 in GEMM_BF16 (the next product's operand, as
 * the product rounds it) and float in GEMM_FP32.  GELU is oneDNN's erf form
 * (gelu_erf).  A16, B16, room and packs as for gemm_bias.  Only where
 * gemm_fuses_gelu(). */
void gemm_bias_gelu(gemm_precision p, int M, int N, int K, const float *A, const bf16 *A16, int lda,
                    const float *B, const bf16 *B16, int ldb, const float *bias, void *C, int ldc,
                    int room, gemm_packs *packs);

/* With BERTPIPE_PRODUCT_RATE=1 in the environment, the dense layers'
 * forward products (gemm_bias, gemm_bias_gelu) are counted: their
 * arithmetic (2 M N K, for the M rows given, not the padding) into *gflop
 * and the seconds spent in them into *seconds, summed over the threads
 * that called them (a product that runs on several threads counts its
 * time once); returns 1.  Without it, 0 and nothing counted. */
int gemm_products_counted(double *gflop, double *seconds);

#endif
