/* encoder.h - the sentence encoder as the tools and the trainer see it, the
 * same on every device: the CPU reference (encoder_cpu.c over bert.c) and the
 * CUDA backend (lib/cuda/encoder.cu) implement it.
 *
 * An encoder holds a model's weights and, for training, the gradients and
 * AdamW moments of a flat parameter buffer: the model's parameters laid out
 * by bert_param_offsets(), followed by `extra` floats that a loss may own
 * (its head), so that clipping, the optimizer and checkpoints treat both
 * alike.  Buffers returned by encoder_pooled() and friends live where the
 * encoder computes (host memory on the CPU, device memory on the GPU): only
 * code for that device touches them (a loss's own implementation for it);
 * everything else goes through the copying calls. */
#ifndef BP_ENCODER_H
#define BP_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "dropout.h"
#include "model.h"
#include "optim.h"

typedef enum { PRECISION_FP32, PRECISION_BF16 } precision;

/* The --precision option: "fp32" or "bf16"; 0, or -1 when s is neither. */
int precision_parse(const char *s, precision *p);
const char *precision_name(precision p);

typedef enum { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA } device_kind;

/* The --device option: "auto", "cpu" or "cuda"; 0, or -1 when s is none. */
int device_parse(const char *s, device_kind *d);

/* 1 when a usable CUDA device is present; otherwise 0 and why (e.g. "built
 * without CUDA", "no CUDA device: ...").  With 1, why names the device.
 * why may be NULL.  Never dies. */
int gpu_available(char *why, size_t n);

typedef struct {
    device_kind device;
    precision precision;     /* the GPU's; the CPU's only when given (below) */
    int precision_given;     /* the user asked for it: the CPU computes fp32 unless
                              * given bf16 (fp32 with a note without AVX512_BF16) */
    const char *doing;       /* "training", "embedding": for the --device auto line */
    int training;            /* keep activations, gradients and moments */
    int batch_size;          /* sequences per forward pass of encoder_embed */
    int max_sequences;       /* sequences per training forward pass */
    int max_pooled;          /* rows of the batch-wide pooled buffers (0: max_sequences) */
    int max_len;             /* tokens per sequence, at most */
    /* Parameters after the model's (a loss head) and their optimizer ranges,
     * offsets counted from the start of the extra block. */
    size_t extra;
    const optim_range *extra_ranges;
    int n_extra_ranges;
} encoder_settings;

typedef struct encoder encoder;

/* The device chosen as settings say (cuda without a usable GPU: error, exit
 * 1), and the model's weights (and zero extra parameters) loaded on it.
 * With DEVICE_AUTO, says on stderr what it is doing where. */
encoder *encoder_open(const bert_model *m, const encoder_settings *s);
void encoder_close(encoder *e);

int encoder_on_gpu(const encoder *e);
const bert_model *encoder_model(const encoder *e);
/* Floats in the parameter buffer: the model's, then the extra ones. */
size_t encoder_nparams(const encoder *e);

/* Sentence embeddings out[n, H] (host) of sequences ids[s * T ...] of
 * lengths lens[s] (1 to the model's positions), pooled as the model says and
 * scaled to unit length when normalize, without dropout. */
void encoder_embed(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                   int normalize, float *out);

/* ---- training ----------------------------------------------------------- */

/* Forward pass of B sequences (at most max_sequences), with dropout drawn as
 * dropout.h says from keys (NULL: none), keeping what the backward needs; the
 * pooled embeddings [B, H] go to rows pooled_row .. pooled_row + B - 1 of
 * encoder_pooled() (at most max_pooled rows), so that a batch can be
 * embedded in several passes (cached MNR) into one batch-wide block. */
void encoder_forward(encoder *e, const int32_t *ids, const int32_t *lens, int B, int T,
                     const dropout_keys *keys, int pooled_row);
/* [max_pooled, H] in the encoder's memory. */
const float *encoder_pooled(const encoder *e);
/* [max_pooled, H] in the encoder's memory: the caller writes d loss / d
 * pooled here; encoder_backward() then adds the parameter gradients of the
 * last forward pass into the gradients, from its rows of this buffer. */
float *encoder_pooled_grad(encoder *e);
void encoder_backward(encoder *e);
/* Host copies of the last forward pass's rows of the pooled embeddings, and
 * into the same rows of their gradient. */
void encoder_read_pooled(const encoder *e, float *out);
void encoder_write_pooled_grad(encoder *e, const float *in);

/* n floats between the host and the encoder's memory (e.g. rows of
 * encoder_pooled()), whichever device that is. */
void encoder_download(const encoder *e, float *host, const float *mem, size_t n);
void encoder_upload(encoder *e, float *mem, const float *host, size_t n);

/* The parameter and gradient buffers in the encoder's memory (a loss head's
 * part is at model floats + offset). */
float *encoder_params(encoder *e);
float *encoder_grads(encoder *e);
void encoder_zero_grads(encoder *e);

/* One optimizer update from the gradients: the norm over every trainable
 * range (the model's but the pooler, and the extra ones), then adam_step
 * with the 1-based step, lr and grad_clip(norm, max_grad_norm) (<= 0: no
 * clipping; the gradient buffer itself is not scaled).
 * Returns the norm before clipping; a non-finite one updates nothing. */
double encoder_optimizer_step(encoder *e, const adam_config *adam, double lr,
                              double max_grad_norm, long step);

/* Host copies of the buffers, encoder_nparams() floats each. */
typedef enum { BUF_PARAMS, BUF_GRADS, BUF_MOMENT1, BUF_MOMENT2 } encoder_buffer;
void encoder_get(const encoder *e, encoder_buffer which, float *out);
void encoder_set(encoder *e, encoder_buffer which, const float *in);

/* ---- the implementations ------------------------------------------------ */

typedef struct {
    void (*close)(encoder *e);
    void (*embed)(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                  int normalize, float *out);
    /* pooled: where the pooled embeddings go; backward reads dpooled, both
     * [B, H] in the encoder's memory */
    void (*forward)(encoder *e, const int32_t *ids, const int32_t *lens, int B, int T,
                    const dropout_keys *keys, float *pooled);
    void (*backward)(encoder *e, const float *dpooled);
    /* n floats between the host and the encoder's memory */
    void (*download)(const encoder *e, float *host, const float *dev, size_t n);
    void (*upload)(encoder *e, float *dev, const float *host, size_t n);
    void (*zero_grads)(encoder *e);
    double (*optimizer_step)(encoder *e, const adam_config *adam, double lr, double max_norm,
                             long step);
    void (*get)(const encoder *e, encoder_buffer which, float *out);
    void (*set)(encoder *e, encoder_buffer which, const float *in);
} encoder_ops;

/* What every implementation shares; each embeds it first in its own struct. */
struct encoder {
    const encoder_ops *ops;
    const bert_model *model;
    int on_gpu;
    size_t nparams;              /* model's + extra */
    optim_range *ranges;         /* trainable ranges over the whole buffer */
    int nranges;
    int max_pooled;
    int pooled_row, pooled_rows; /* where the last forward's rows went, and B */
    float *pooled, *pooled_grad; /* [max_pooled, H] in the encoder's memory */
    float *params, *grads;       /* in the encoder's memory */
};

/* The trainable ranges of settings (the model's and the extra ones) into e,
 * and e->max_pooled from them. */
void encoder_init_settings(encoder *e, const encoder_settings *s);

encoder *encoder_cpu_open(const bert_model *m, const encoder_settings *s);
encoder *encoder_gpu_open(const bert_model *m, const encoder_settings *s);

#endif
