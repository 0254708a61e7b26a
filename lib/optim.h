/* optim.h - the optimiser side of a training step, as sentence-transformers
 * runs it through PyTorch and transformers:
 *
 *   norm = grad_norm(grads, ...)                 torch.nn.utils.clip_grad_norm_
 *   lr   = lr_linear_warmup(peak, w, total, k-1) get_linear_schedule_with_warmup
 *   adam_step(&cfg, ..., k, lr, grad_clip(norm, max))
 *                                                its scaling, torch.optim.AdamW
 *
 * Parameters, gradients and the two moment buffers are flat float arrays with
 * the same indexing (for BERT: the buffer laid out by bert_param_offsets()).
 * The optimiser touches only the index ranges it is given; each range says
 * whether weight decay applies to it.  Everything is deterministic: the same
 * inputs give bit-identical outputs whatever the number of threads. */
#ifndef BP_OPTIM_H
#define BP_OPTIM_H

#include <stddef.h>

#include "bert.h"

/* A block of the flat buffers updated by the optimiser. */
typedef struct {
    size_t offset; /* in floats */
    size_t numel;
    int decay;     /* weight decay applies */
} optim_range;

/* The trainable tensors of a BERT model (everything but the pooler), one
 * range per tensor of bert_tensors(), decay as bert_tensor.decay says (not
 * biases, not LayerNorm weights).  Fills out[] (may be NULL); returns the count. */
int optim_bert_ranges(const bert_config *c, optim_range *out);

typedef enum {
    OPTIM_ADAMW, /* torch.optim.AdamW: decoupled decay, p -= lr*wd*p before the update */
    OPTIM_ADAM   /* torch.optim.Adam: L2 decay, g += wd*p before the moments */
} optim_kind;

typedef struct {
    optim_kind kind;
    double beta1, beta2;
    double eps;          /* added to sqrt(v_hat), as torch does */
    double weight_decay; /* applied only to ranges with decay set */
} adam_config;

/* AdamW, betas 0.9/0.999, eps 1e-8, weight decay 0.01 (torch's and
 * sentence-transformers' defaults). */
adam_config adam_defaults(void);

/* One update of params over the given ranges.  m and v are the first and
 * second moments (zero before the first step), indexed like params; step is
 * the 1-based number of this update (for bias correction) and lr the learning
 * rate it uses; each gradient is first multiplied by clip (grad_clip:
 * clip_grad_norm_'s scaling, fused here to save a pass over the gradients;
 * 1 leaves them as they are).  Per element, in float as torch's fused AdamW
 * computes it for float parameters:
 *     AdamW: p *= 1 - lr*wd               Adam: g += wd*p
 *     m += (1-b1)*(g - m);  v = b2*v + (1-b2)*g*g
 *     p -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps)          */
void adam_step(const adam_config *c, const optim_range *r, int nr, float *params,
               const float *grads, float *m, float *v, long step, double lr, double clip);

/* sqrt of the sum of squares of grads over the ranges, in double. */
double grad_norm(const float *grads, const optim_range *r, int nr);

/* torch.nn.utils.clip_grad_norm_'s factor for gradients of this norm:
 * max_norm / (norm + 1e-6) when that is below 1, else 1; also 1 when
 * max_norm <= 0 (no clipping) or the norm is not finite (the caller decides
 * what to do: stop). */
double grad_clip(double norm, double max_norm);

/* transformers' get_linear_schedule_with_warmup: the learning rate at 0-based
 * scheduler step s (optimizer update k uses s = k-1):
 *     s < warmup:  peak * s / max(1, warmup)
 *     otherwise:   peak * max(0, (total - s) / max(1, total - warmup))     */
double lr_linear_warmup(double peak, long warmup, long total, long s);

/* The --warmup option (CONVENTIONS.md): written without a decimal point it is
 * a number of steps (>= 0); with one, a share in [0, 1] of the schedule.
 * Parsed first, resolved once the number of steps of the schedule is known. */
typedef struct {
    int is_share;
    long steps;   /* when !is_share */
    double share; /* when is_share */
} warmup_spec;

/* Returns 0 and fills *w, or -1 when s is neither form. */
int warmup_parse(const char *s, warmup_spec *w);

/* Warmup steps for a schedule of total_steps: the steps as given, or
 * ceil(total_steps * share) computed in double, as transformers'
 * TrainingArguments.get_warmup_steps does (math.ceil), so that a ratio gives
 * the same count as in sentence-transformers (floating-point quirks
 * included: ceil(100 * 0.07) is 8). */
long warmup_steps(const warmup_spec *w, long total_steps);

#endif
