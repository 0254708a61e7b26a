/* gpu_stub.c - the parts of gpu.h shared by every build (option parsing,
 * device selection) and, in builds without CUDA, the rest of the API as
 * stubs: gpu_available() says why there is no GPU, everything else dies. */
#include "gpu.h"
#include "threads.h"
#include "util.h"

#include <string.h>

/* gpu_select's choice, before the precision note. */
static int select_device(const char *device, const char *doing, gpu_precision precision)
{
    char why[256];
    if (!strcmp(device, "cpu"))
        return 0;
    if (!strcmp(device, "cuda")) {
        if (!gpu_available(why, sizeof why))
            die("--device cuda: %s", why);
        return 1;
    }
    if (strcmp(device, "auto"))
        return -1;
    if (gpu_available(why, sizeof why)) {
        warnx("--device auto: %s on the GPU (%s; %s)", doing, why, gpu_precision_name(precision));
        return 1;
    }
    int n = threads_count();
    warnx("--device auto: %s on the CPU (%s; %d thread%s)", doing, why, n, n == 1 ? "" : "s");
    return 0;
}

int gpu_select(const char *device, const char *doing, gpu_precision precision,
               int precision_given)
{
    int on_gpu = select_device(device, doing, precision);
    if (on_gpu == 0 && precision_given && precision == GPU_BF16)
        warnx("--precision bf16: the CPU computes in fp32");
    return on_gpu;
}

int gpu_precision_parse(const char *s, gpu_precision *p)
{
    if (!strcmp(s, "fp32"))
        *p = GPU_FP32;
    else if (!strcmp(s, "bf16"))
        *p = GPU_BF16;
    else
        return -1;
    return 0;
}

const char *gpu_precision_name(gpu_precision p)
{
    return p == GPU_FP32 ? "fp32" : "bf16";
}

#ifndef BP_HAVE_CUDA

#include <stdio.h>

#define NO_CUDA "built without CUDA"

int gpu_available(char *why, size_t n)
{
    if (why && n)
        snprintf(why, n, "%s", NO_CUDA);
    return 0;
}

gpu_model *gpu_model_create(const bert_config *c, const float *params, gpu_precision precision,
                            int training)
{
    die("gpu_model_create: %s", NO_CUDA);
}

void gpu_model_free(gpu_model *g)
{
}

void gpu_embed(gpu_model *g, const int32_t *ids, const int32_t *lens, int B, int T,
               pooling_mode mode, int normalize, float *out)
{
    die("gpu_embed: %s", NO_CUDA);
}

void gpu_hidden(gpu_model *g, int layer, float *out)
{
    die("gpu_hidden: %s", NO_CUDA);
}

double gpu_forward_backward(gpu_model *g, const int32_t *const *col_ids,
                            const int32_t *const *col_lens, int C, int B, const int *T,
                            const gpu_loss_config *lc, float *d_emb)
{
    die("gpu_forward_backward: %s", NO_CUDA);
}

double gpu_optimizer_step(gpu_model *g, const adam_config *adam, double lr, double max_grad_norm,
                          long step)
{
    die("gpu_optimizer_step: %s", NO_CUDA);
}

double gpu_train_step(gpu_model *g, const int32_t *const *col_ids, const int32_t *const *col_lens,
                      int C, int B, const int *T, const gpu_loss_config *lc,
                      const adam_config *adam, double lr, double max_grad_norm, long step,
                      double *grad_norm)
{
    die("gpu_train_step: %s", NO_CUDA);
}

void gpu_get_params(gpu_model *g, float *params)
{
    die("gpu_get_params: %s", NO_CUDA);
}

void gpu_set_params(gpu_model *g, const float *params)
{
    die("gpu_set_params: %s", NO_CUDA);
}

void gpu_get_grads(gpu_model *g, float *grads)
{
    die("gpu_get_grads: %s", NO_CUDA);
}

void gpu_get_moments(gpu_model *g, float *m, float *v)
{
    die("gpu_get_moments: %s", NO_CUDA);
}

void gpu_set_moments(gpu_model *g, const float *m, const float *v)
{
    die("gpu_set_moments: %s", NO_CUDA);
}

double gpu_mnr_loss(const float *const *cols, int C, int B, int H, double scale, int symmetric,
                    float *const *dcols)
{
    die("gpu_mnr_loss: %s", NO_CUDA);
}

#endif
