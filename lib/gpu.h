/* gpu.h - what the CUDA backend (lib/cuda) offers beyond encoder.h, for the
 * GPU checks (tests/gpu): the hidden states of the last forward pass, copies
 * from GPU memory, and a loss's GPU kernels on host data.
 *
 * The backend implements encoder.h on the first CUDA device (compute
 * capability 9.0 or newer: the kernels are built for Hopper only); every
 * call is synchronous: results are on the host when it returns.  Any CUDA
 * or cuBLAS failure is fatal through die() ("tool: cuda: FILE:LINE: what
 * failed").  Two precisions:
 *   PRECISION_FP32  everything in float32 (matrix products in true fp32, no
 *                   TF32), to check the GPU against the CPU and the fixtures;
 *   PRECISION_BF16  bf16 matrix operands and activations with fp32
 *                   accumulation; fp32 master weights, gradients and AdamW
 *                   moments (the GPU's default).
 * Dropout masks are dropout.h's, bitwise the CPU's. */
#ifndef BP_GPU_H
#define BP_GPU_H

#include "encoder.h"
#include "loss.h"

/* The last forward pass's hidden states after layer l (0 = embedding
 * output, L = last), packed [N, H] as bert_hidden() gives them, converted to
 * float.  e must be a GPU encoder opened for training. */
void gpu_encoder_hidden(const encoder *e, int layer, float *out);

/* n floats from GPU memory (e.g. encoder_pooled_grad of a GPU encoder) to
 * the host. */
void gpu_download(float *dst, const float *device_src, size_t n);

/* A loss's GPU implementation (loss.h: compute_gpu) on host data: b's
 * columns are copied to the GPU back to back, dcol (NULL: the loss alone)
 * receives the gradients. */
double gpu_loss_on_host_data(const loss *l, const loss_batch *b, float *const *dcol);

#endif
