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

/* In float, as adam_step (optim.c) computes them. */
struct adam_scalars {
    float one_minus_b1, b2, one_minus_b2, eps, step_size, bc2_sqrt, shrink_decay, l2_wd, clip;
    int adamw;
};

/* blockIdx.y picks the range; blocks along x stride over it.  The update in
 * float in adam_step's order (torch's fused AdamW). */
__global__ void adam_kernel(adam_scalars s, const adam_range *ranges, float *params,
                            const float *grads, float *m, float *v, bf16 *params_bf16)
{
    adam_range r = ranges[blockIdx.y];
    float shrink = s.adamw && r.decay ? s.shrink_decay : 1.0f;
    float l2 = !s.adamw && r.decay ? s.l2_wd : 0.0f;
    GRID_STRIDE(k, (size_t)r.numel) {
        size_t i = r.offset + k;
        float g = grads[i] * s.clip + l2 * params[i];
        float mi = m[i] + s.one_minus_b1 * (g - m[i]);
        float vi = s.b2 * v[i] + s.one_minus_b2 * g * g;
        float p = params[i] * shrink - s.step_size * mi / (sqrtf(vi) / s.bc2_sqrt + s.eps);
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
        if (params_bf16)
            params_bf16[i] = __float2bfloat16(p);
    }
}

void adam_step_device(const adam_config *c, const adam_range *r, int nr, size_t max_numel,
                      float *params, const float *grads, float *m, float *v, bf16 *params_bf16,
                      long step, double lr, double clip)
{
    adam_scalars s;
    s.one_minus_b1 = (float)(1 - c->beta1);
    s.b2 = (float)c->beta2;
    s.one_minus_b2 = (float)(1 - c->beta2);
    s.eps = (float)c->eps;
    s.step_size = (float)(lr / (1 - pow(c->beta1, (double)step)));
    s.bc2_sqrt = (float)sqrt(1 - pow(c->beta2, (double)step));
    s.shrink_decay = (float)(1 - lr * c->weight_decay);
    s.l2_wd = (float)c->weight_decay;
    s.clip = (float)clip;
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
