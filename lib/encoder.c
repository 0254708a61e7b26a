/* encoder.c - the device-neutral half of encoder.h: option parsing, the
 * choice of device, and the calls that dispatch to an implementation. */
#include "encoder.h"
#include "gemm.h"
#include "threads.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names in the order of the enums. */
static const char *const precision_names[] = {"fp32", "bf16", NULL};
static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};

int precision_parse(const char *s, precision *p)
{
    int i = parse_choice(s, precision_names);
    if (i >= 0)
        *p = (precision)i;
    return i < 0 ? -1 : 0;
}

const char *precision_name(precision p)
{
    return precision_names[p];
}

int device_parse(const char *s, device_kind *d)
{
    int i = parse_choice(s, device_names);
    if (i >= 0)
        *d = (device_kind)i;
    return i < 0 ? -1 : 0;
}

/* 1 for the GPU, 0 for the CPU, saying so for auto. */
static int choose_gpu(const encoder_settings *s)
{
    char why[256];
    if (s->device == DEVICE_CPU)
        return 0;
    if (s->device == DEVICE_CUDA) {
        if (!gpu_available(why, sizeof why))
            die("--device cuda: %s", why);
        return 1;
    }
    if (gpu_available(why, sizeof why)) {
        warnx("--device auto: %s on the GPU (%s; %s)", s->doing, why,
              precision_name(s->precision));
        return 1;
    }
    int n = threads_count();
    warnx("--device auto: %s on the CPU (%s; %d thread%s)", s->doing, why, n, n == 1 ? "" : "s");
    return 0;
}

encoder *encoder_open(const bert_model *m, const encoder_settings *s)
{
    /* model_load_bf16's matrices are in bf16 only */
    if (m->params16 && (s->device == DEVICE_CUDA || s->training || !s->precision_given ||
                        s->precision != PRECISION_BF16 || !gemm_bf16_available(NULL)))
        die("encoder: a model loaded for bf16 (model_load_bf16) serves bf16 inference on the CPU "
            "only, where bf16 products run");
    if (!m->params16 && choose_gpu(s))
        return encoder_gpu_open(m, s);
    const char *why;
    if (s->precision_given && s->precision == PRECISION_BF16 && !gemm_bf16_available(&why))
        warnx("--precision bf16: computing in fp32 on the CPU (%s)", why);
    return encoder_cpu_open(m, s);
}

void encoder_init_settings(encoder *e, const encoder_settings *s)
{
    e->max_pooled = s->max_pooled > 0 ? s->max_pooled : s->max_sequences;
    const bert_config *c = &e->model->cfg;
    size_t off[P_COUNT + 1];
    size_t model_floats = bert_param_offsets(c, off);
    int nb = optim_bert_ranges(c, NULL);
    e->nparams = model_floats + s->extra;
    e->nranges = nb + s->n_extra_ranges;
    e->ranges = xmallocarray(e->nranges, sizeof *e->ranges);
    optim_bert_ranges(c, e->ranges);
    for (int i = 0; i < s->n_extra_ranges; i++) {
        optim_range r = s->extra_ranges[i];
        if (r.offset + r.numel > s->extra)
            die("encoder: an extra parameter range ends past the extra parameters");
        r.offset += model_floats;
        e->ranges[nb + i] = r;
    }
}

void encoder_close(encoder *e)
{
    if (!e)
        return;
    free(e->ranges);
    e->ops->close(e);
}

int encoder_on_gpu(const encoder *e)
{
    return e->on_gpu;
}

const bert_model *encoder_model(const encoder *e)
{
    return e->model;
}

size_t encoder_nparams(const encoder *e)
{
    return e->nparams;
}

void encoder_embed(encoder *e, const int32_t *ids, const int32_t *lens, int64_t n, int T,
                   int normalize, float *out)
{
    e->ops->embed(e, ids, lens, n, T, normalize, out);
}

void encoder_forward(encoder *e, const int32_t *ids, const int32_t *lens, int B, int T,
                     const dropout_keys *keys, int pooled_row)
{
    if (pooled_row < 0 || B < 1 || B > e->max_pooled - pooled_row)
        die("encoder_forward: %d sequences at pooled row %d, at most %d rows", B, pooled_row,
            e->max_pooled);
    e->ops->forward(e, ids, lens, B, T, keys, e->pooled + (size_t)pooled_row * e->model->cfg.hidden);
    e->pooled_row = pooled_row;
    e->pooled_rows = B;
}

/* The last forward pass's rows of a [max_pooled, H] buffer. */
static size_t last_rows(const encoder *e, size_t *n)
{
    size_t H = e->model->cfg.hidden;
    *n = (size_t)e->pooled_rows * H;
    return (size_t)e->pooled_row * H;
}

const float *encoder_pooled(const encoder *e)
{
    return e->pooled;
}

float *encoder_pooled_grad(encoder *e)
{
    return e->pooled_grad;
}

void encoder_backward(encoder *e)
{
    size_t n, at = last_rows(e, &n);
    e->ops->backward(e, e->pooled_grad + at);
}

void encoder_read_pooled(const encoder *e, float *out)
{
    size_t n, at = last_rows(e, &n);
    e->ops->download(e, out, e->pooled + at, n);
}

void encoder_write_pooled_grad(encoder *e, const float *in)
{
    size_t n, at = last_rows(e, &n);
    e->ops->upload(e, e->pooled_grad + at, in, n);
}

void encoder_download(const encoder *e, float *host, const float *mem, size_t n)
{
    e->ops->download(e, host, mem, n);
}

void encoder_upload(encoder *e, float *mem, const float *host, size_t n)
{
    e->ops->upload(e, mem, host, n);
}

float *encoder_params(encoder *e)
{
    return e->params;
}

float *encoder_grads(encoder *e)
{
    return e->grads;
}

void encoder_zero_grads(encoder *e)
{
    e->ops->zero_grads(e);
}

double encoder_optimizer_step(encoder *e, const adam_config *adam, double lr,
                              double max_grad_norm, long step)
{
    return e->ops->optimizer_step(e, adam, lr, max_grad_norm, step);
}

void encoder_get(const encoder *e, encoder_buffer which, float *out)
{
    e->ops->get(e, which, out);
}

void encoder_set(encoder *e, encoder_buffer which, const float *in)
{
    e->ops->set(e, which, in);
}
