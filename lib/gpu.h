/* gpu.h - the BERT encoder, MNR loss and AdamW on an NVIDIA GPU (CUDA), as a
 * plain-C API for the tools (embed, mnr-train) and the GPU checks.
 *
 * lib/cuda/ mirrors the CPU reference (bert.c, loss.c, optim.c) function for
 * function; gpu_stub.c stands in for it in builds without CUDA, where every
 * call but gpu_available() and the parsing helpers dies with "built without
 * CUDA".  Everything runs on the first CUDA device (compute capability 9.0 or
 * newer: the kernels are built for Hopper only) and every call is
 * synchronous: results are on the host when it returns.  Any CUDA or cuBLAS
 * failure is fatal through die() ("tool: cuda: FILE:LINE: what failed").
 *
 * Two precisions:
 *   GPU_FP32  everything in float32 (matrix products in true fp32, no TF32),
 *             to check the GPU against the CPU and the fixtures;
 *   GPU_BF16  bf16 matrix operands and activations with fp32 accumulation;
 *             fp32 master weights, gradients and AdamW moments (the default).
 *
 * A batch is given as on the CPU (bert.h): token ids [B, T], row b at
 * ids + b*T, sequence b its first lens[b] ids (lens NULL: the ids before the
 * first negative one), 1 <= lens[b] <= min(T, max positions).  Token types
 * are 0 and positions count from 0.  Dropout comes from a counter-based
 * generator keyed by the caller's seed (same seed, same masks on the GPU), so
 * masks are NOT bit-identical with the CPU's; without dropout (probabilities
 * 0 or evaluation) the two compute the same function. */
#ifndef BP_GPU_H
#define BP_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "bert.h"
#include "optim.h"

typedef enum { GPU_FP32, GPU_BF16 } gpu_precision;

/* 1 when a usable CUDA device is present; otherwise 0 and why (e.g. "built
 * without CUDA", "no CUDA device: ...", "compute capability 8.0 is below
 * 9.0").  With 1, why names the device ("NVIDIA H200, compute capability
 * 9.0, 139 GiB").  why may be NULL.  Never dies. */
int gpu_available(char *why, size_t n);

/* The --device option (CONVENTIONS.md): "auto" (the GPU when present, else
 * the CPU), "cpu" or "cuda" (dies, exit 1, when no usable GPU: "tool:
 * --device cuda: no CUDA device: ...").  auto says on stderr what the tool is
 * doing where, e.g. "tool: --device auto: training on the CPU (built without
 * CUDA; 2 threads)", so call threads_set() first.  On the CPU, a bf16
 * precision the user asked for (precision_given) gets the note "tool:
 * --precision bf16: the CPU computes in fp32".  Returns 1 for the GPU, 0 for
 * the CPU, -1 for an unknown name (the caller's usage error). */
int gpu_select(const char *device, const char *doing, gpu_precision precision,
               int precision_given);

/* The --precision option: "fp32" or "bf16".  Returns 0, or -1 when s is
 * neither. */
int gpu_precision_parse(const char *s, gpu_precision *p);
const char *gpu_precision_name(gpu_precision p);

typedef struct gpu_model gpu_model;

/* Upload a model: c and params (laid out by bert_param_offsets).  training 0
 * keeps only what inference needs (gpu_embed, gpu_hidden); 1 also makes the
 * gradient and moment buffers (zero moments) for training. */
gpu_model *gpu_model_create(const bert_config *c, const float *params, gpu_precision precision,
                            int training);
void gpu_model_free(gpu_model *g);

/* Sentence embeddings out[B, H] (host memory): the forward pass without
 * dropout, pooled (bert.h's pooling modes) and, when normalize, scaled to
 * unit L2 norm.  Any B and T: the device buffers grow as needed. */
void gpu_embed(gpu_model *g, const int32_t *ids, const int32_t *lens, int B, int T,
               pooling_mode mode, int normalize, float *out);

/* The last forward pass's hidden states after layer l (0 = embedding
 * output, L = last), packed [N, H] as bert_hidden() gives them (sequence b at
 * rows start[b]...; N = sum of the lengths), converted to float. */
void gpu_hidden(gpu_model *g, int layer, float *out);

/* A training batch: C >= 2 columns (anchors, positives, negatives...) of B
 * rows each; column c has ids col_ids[c] [B, T[c]] and lengths col_lens[c]
 * (NULL: from the -1 padding).  All C*B sequences go through the encoder as
 * one batch. */
typedef struct {
    double scale;         /* MNR scale, MNR_DEFAULT_SCALE (20) usually */
    int symmetric;        /* MultipleNegativesSymmetricRankingLoss */
    pooling_mode pooling;
    uint64_t dropout_seed; /* masks for the config's dropout probabilities */
} gpu_loss_config;

/* Forward, MNR loss (loss.h) and backward: returns the loss and leaves
 * d loss / d params on the device (overwritten, the pooler's part 0).
 * d_emb, when not NULL, receives the gradient of the pooled embeddings,
 * [C*B, H] column after column (as mnr_loss_columns' dcols). */
double gpu_forward_backward(gpu_model *g, const int32_t *const *col_ids,
                            const int32_t *const *col_lens, int C, int B, const int *T,
                            const gpu_loss_config *lc, float *d_emb);

/* One optimiser update from the gradients on the device, as the CPU does it
 * (optim.h): the norm over the trainable tensors, clipping to max_grad_norm
 * (<= 0: none), then adam_step over optim_bert_ranges() with the 1-based
 * step and lr.  Returns the norm before clipping; a non-finite norm leaves
 * everything untouched (the caller stops). */
double gpu_optimizer_step(gpu_model *g, const adam_config *adam, double lr, double max_grad_norm,
                          long step);

/* gpu_forward_backward then gpu_optimizer_step; *grad_norm (may be NULL)
 * receives the norm.  Returns the loss before the update. */
double gpu_train_step(gpu_model *g, const int32_t *const *col_ids, const int32_t *const *col_lens,
                      int C, int B, const int *T, const gpu_loss_config *lc,
                      const adam_config *adam, double lr, double max_grad_norm, long step,
                      double *grad_norm);

/* Copies between the device and host buffers laid out as params: the fp32
 * master weights, the gradients, and the AdamW moments (for checkpoints;
 * training models only).  gpu_set_params also refreshes the bf16 copy. */
void gpu_get_params(gpu_model *g, float *params);
void gpu_set_params(gpu_model *g, const float *params);
void gpu_get_grads(gpu_model *g, float *grads);
void gpu_get_moments(gpu_model *g, float *m, float *v);
void gpu_set_moments(gpu_model *g, const float *m, const float *v);

/* The MNR loss kernels on host data, as mnr_loss_columns (loss.h): cols[c]
 * and dcols[c] are [B, H] host blocks (dcols NULL: the loss alone). */
double gpu_mnr_loss(const float *const *cols, int C, int B, int H, double scale, int symmetric,
                    float *const *dcols);

#endif
