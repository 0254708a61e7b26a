/* backend.cuh - the pieces of the CUDA backend that gpu.cu calls across
 * files: matrix products (matmul.cu), the MNR loss (loss.cu) and the
 * optimiser (optim.cu).  All pointers are device pointers unless named h_. */
#ifndef BP_CUDA_BACKEND_CUH
#define BP_CUDA_BACKEND_CUH

#include "common.cuh"

/* ---- matmul.cu ----------------------------------------------------------- */

typedef enum { DT_F32, DT_BF16 } elem_type;

/* Row-major C[M, N] = alpha * op(A) op(B) + beta * C (+ bias[N] on every row
 * when bias is given; bias has C's type), through cuBLASLt with fp32
 * accumulation (CUBLAS_COMPUTE_32F: true fp32 products for fp32 operands, no
 * TF32).  op(A) is [M, K]: A is stored row-major [M, K], or [K, M] when transA;
 * op(B) is [K, N]: B is [K, N], or [N, K] when transB.  A and B share one
 * type; C may be fp32 with bf16 operands.  batch > 1 repeats the product over
 * matrices stride_* elements apart. */
struct matmul_args {
    void *c;
    elem_type tc;
    const void *a, *b;
    elem_type tab;
    int M, N, K;
    int transA, transB;
    float alpha, beta;
    const void *bias;
    int batch;
    long long stride_a, stride_b, stride_c;
};
void matmul(const matmul_args &m);

/* ---- loss.cu ------------------------------------------------------------- */

/* mnr_loss_columns (loss.h) on the device: emb is [C*B, H] float, column
 * after column; d_emb (may be NULL) receives d loss / d emb.  Norms, scores
 * and softmax in double, as on the CPU. */
double mnr_loss_device(const float *emb, int C, int B, int H, double scale, int symmetric,
                       float *d_emb);

/* ---- optim.cu ------------------------------------------------------------ */

/* sqrt of the sum of squares of g[0, n), accumulated in double in a fixed
 * order (deterministic). */
double grad_norm_device(const float *g, size_t n);

/* One range of the flat buffers for adam_step_device (optim_range on the device). */
struct adam_range {
    unsigned long long offset, numel;
    int decay;
};

/* adam_step (optim.h) over the nr ranges r (device array), with the gradients
 * multiplied by clip first (grad_clip: clip_grad_norm_'s scaling, fused).
 * params_bf16, when not NULL, receives the updated weights in bf16. */
void adam_step_device(const adam_config *c, const adam_range *r, int nr, size_t max_numel,
                      float *params, const float *grads, float *m, float *v, bf16 *params_bf16,
                      long step, double lr, double clip);

/* dst[i] = bf16(src[i]). */
void to_bf16_device(bf16 *dst, const float *src, size_t n);

#endif
