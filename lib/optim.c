#include "optim.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vmath.h"

int optim_bert_ranges(const bert_config *c, optim_range *out)
{
    int nt = bert_tensors(c, NULL);
    bert_tensor *t = xmallocarray(nt, sizeof *t);
    bert_tensors(c, t);
    int n = 0;
    for (int i = 0; i < nt; i++) {
        if (!t[i].trainable)
            continue;
        if (out)
            out[n] = (optim_range){t[i].offset, t[i].numel, t[i].decay};
        n++;
    }
    free(t);
    return n;
}

adam_config adam_defaults(void)
{
    return (adam_config){.kind = OPTIM_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                         .weight_decay = 0.01};
}

/* The update of elements [0, n) of one range in float, in the order of
 * torch's fused AdamW kernel (its arithmetic for float parameters): double
 * would cost the CPU twice the time of the memory traffic (sqrt and
 * division over 8 lanes, not 16), for a difference far below a weight's
 * rounding.  1 - beta is given as torch computes it, in double (1 - 0.999f
 * would be 1.3e-5 off). */
MULTIVERSIONED static void adam_range(float *params, const float *grads, float *m, float *v,
                                      size_t n, float one_minus_b1, float b2, float one_minus_b2,
                                      float eps, float step_size, float bc2_sqrt, float shrink,
                                      float l2, float clip)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * clip + l2 * params[i];
        float mi = m[i] + one_minus_b1 * (g - m[i]);
        float vi = b2 * v[i] + one_minus_b2 * g * g;
        params[i] = params[i] * shrink - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
    }
}

/* Elements per piece of work handed to a thread. */
#define ADAM_CHUNK 16384

void adam_step(const adam_config *c, const optim_range *r, int nr, float *params,
               const float *grads, float *m, float *v, long step, double lr, double clip)
{
    double b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    double step_size = lr / (1 - pow(b1, (double)step));
    double bc2_sqrt = sqrt(1 - pow(b2, (double)step));
    for (int k = 0; k < nr; k++) {
        double wd = r[k].decay ? c->weight_decay : 0;
        double shrink = c->kind == OPTIM_ADAMW ? 1 - lr * wd : 1;
        double l2 = c->kind == OPTIM_ADAM ? wd : 0;
        size_t chunks = (r[k].numel + ADAM_CHUNK - 1) / ADAM_CHUNK;
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < chunks; j++) {
            size_t i = r[k].offset + j * ADAM_CHUNK;
            size_t n = r[k].numel - j * ADAM_CHUNK < ADAM_CHUNK ? r[k].numel - j * ADAM_CHUNK
                                                                  : ADAM_CHUNK;
            adam_range(params + i, grads + i, m + i, v + i, n, (float)(1 - b1), (float)b2,
                       (float)(1 - b2), (float)eps, (float)step_size, (float)bc2_sqrt,
                       (float)shrink, (float)l2, (float)clip);
        }
    }
}

/* x[0]^2 + ... + x[n-1]^2 in double. */
MULTIVERSIONED static double sum_of_squares(const float *x, size_t n)
{
    return dot_fixed(x, x, n);
}

/* Squares are summed over fixed chunks in parallel, then the chunk sums in
 * order, so the result does not depend on the number of threads. */
#define NORM_CHUNK 65536

double grad_norm(const float *grads, const optim_range *r, int nr)
{
    size_t nchunks = 0;
    for (int k = 0; k < nr; k++)
        nchunks += (r[k].numel + NORM_CHUNK - 1) / NORM_CHUNK;
    size_t *start = xmallocarray(nchunks, sizeof *start);
    size_t *len = xmallocarray(nchunks, sizeof *len);
    double *sum = xmallocarray(nchunks, sizeof *sum);
    size_t n = 0;
    for (int k = 0; k < nr; k++)
        for (size_t i = 0; i < r[k].numel; i += NORM_CHUNK) {
            start[n] = r[k].offset + i;
            len[n] = r[k].numel - i < NORM_CHUNK ? r[k].numel - i : NORM_CHUNK;
            n++;
        }
#pragma omp parallel for schedule(dynamic)
    for (size_t j = 0; j < nchunks; j++)
        sum[j] = sum_of_squares(grads + start[j], len[j]);
    double total = 0;
    for (size_t j = 0; j < nchunks; j++)
        total += sum[j];
    free(start);
    free(len);
    free(sum);
    return sqrt(total);
}

double grad_clip(double norm, double max_norm)
{
    if (max_norm <= 0 || !isfinite(norm))
        return 1;
    double clip = max_norm / (norm + 1e-6);
    return clip < 1 ? clip : 1;
}

double lr_linear_warmup(double peak, long warmup, long total, long s)
{
    double factor;
    if (s < warmup)
        factor = (double)s / (double)(warmup > 1 ? warmup : 1);
    else
        factor = fmax(0.0, (double)(total - s) / (double)(total - warmup > 1 ? total - warmup : 1));
    return peak * factor;
}

int warmup_parse(const char *s, warmup_spec *w)
{
    if (strchr(s, '.')) {
        double share;
        if (parse_double(s, &share) != 0 || share < 0 || share > 1)
            return -1;
        *w = (warmup_spec){.is_share = 1, .share = share};
        return 0;
    }
    long steps;
    if (parse_long(s, 0, LONG_MAX, &steps) != 0)
        return -1;
    *w = (warmup_spec){.is_share = 0, .steps = steps};
    return 0;
}

long warmup_steps(const warmup_spec *w, long total_steps)
{
    return w->is_share ? (long)ceil((double)total_steps * w->share) : w->steps;
}
