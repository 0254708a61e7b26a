/* optim.cu - the gradient norm and AdamW/Adam on the device, computed as
 * optim.c does (per element in double, stored as float). */
#include "backend.cuh"

#include <cmath>

/* A fixed grid, so the order of the partial sums never changes. */
enum { NORM_BLOCKS = 264 };

__global__ void sumsq_partial_kernel(double *partial, const float *g, size_t n)
{
    double s = 0;
    GRID_STRIDE(i, n)
        s += (double)g[i] * g[i];
    s = block_sum(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

static double *norm_partial;

double grad_norm_device(const float *g, size_t n)
{
    if (!norm_partial)
        norm_partial = (double *)cuda_alloc(NORM_BLOCKS * sizeof *norm_partial, "the gradient norm");
    sumsq_partial_kernel<<<NORM_BLOCKS, THREADS>>>(norm_partial, g, n);
    LAUNCH_CHECK();
    double h[NORM_BLOCKS], total = 0;
    CUDA_CHECK(cudaMemcpy(h, norm_partial, sizeof h, cudaMemcpyDeviceToHost));
    for (int i = 0; i < NORM_BLOCKS; i++)
        total += h[i];
    return sqrt(total);
}

struct adam_scalars {
    double b1, b2, eps, step_size, bc2_sqrt, lr_wd, l2_wd, clip;
    int adamw;
};

/* blockIdx.y picks the range; blocks along x stride over it. */
__global__ void adam_kernel(adam_scalars s, const adam_range *ranges, float *params,
                            const float *grads, float *m, float *v, bf16 *params_bf16)
{
    adam_range r = ranges[blockIdx.y];
    double shrink = s.adamw && r.decay ? 1 - s.lr_wd : 1;
    double l2 = !s.adamw && r.decay ? s.l2_wd : 0;
    GRID_STRIDE(k, (size_t)r.numel) {
        size_t i = r.offset + k;
        float gi = s.clip < 1 ? (float)(grads[i] * s.clip) : grads[i];
        double p = params[i] * shrink;
        double g = gi + l2 * params[i];
        double mi = s.b1 * m[i] + (1 - s.b1) * g;
        double vi = s.b2 * v[i] + (1 - s.b2) * g * g;
        p -= s.step_size * mi / (sqrt(vi) / s.bc2_sqrt + s.eps);
        m[i] = (float)mi;
        v[i] = (float)vi;
        params[i] = (float)p;
        if (params_bf16)
            params_bf16[i] = __float2bfloat16((float)p);
    }
}

void adam_step_device(const adam_config *c, const adam_range *r, int nr, size_t max_numel,
                      float *params, const float *grads, float *m, float *v, bf16 *params_bf16,
                      long step, double lr, double clip)
{
    adam_scalars s;
    s.b1 = c->beta1;
    s.b2 = c->beta2;
    s.eps = c->eps;
    s.step_size = lr / (1 - pow(c->beta1, (double)step));
    s.bc2_sqrt = sqrt(1 - pow(c->beta2, (double)step));
    s.lr_wd = lr * c->weight_decay;
    s.l2_wd = c->weight_decay;
    s.clip = clip;
    s.adamw = c->kind == OPTIM_ADAMW;
    unsigned bx = grid_for(max_numel);
    bx = bx > 1024 ? 1024 : bx;
    adam_kernel<<<dim3(bx, nr), THREADS>>>(s, r, params, grads, m, v, params_bf16);
    LAUNCH_CHECK();
}

__global__ void to_bf16_kernel(bf16 *dst, const float *src, size_t n)
{
    GRID_STRIDE(i, n)
        dst[i] = __float2bfloat16(src[i]);
}

void to_bf16_device(bf16 *dst, const float *src, size_t n)
{
    to_bf16_kernel<<<grid_for(n), THREADS>>>(dst, src, n);
    LAUNCH_CHECK();
}
