/* loss.cu - MultipleNegatives(Symmetric)RankingLoss on the device, as
 * loss.c computes it: unit vectors, scores, cross-entropy in both
 * directions and the gradient back through normalize(), all in double. */
#include "backend.cuh"

/* torch.nn.functional.normalize's eps, as in loss.c. */
#define NORMALIZE_EPS 1e-12

/* u[r] = x[r] / max(|x[r]|, eps); norm[r] = |x[r]|.  One block per row. */
__global__ void normalize_rows_kernel(double *u, double *norm, const float *x, int H)
{
    int r = blockIdx.x;
    const float *xr = x + (size_t)r * H;
    double s = 0;
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        s += (double)xr[h] * xr[h];
    s = block_sum(s);
    double n = sqrt(s), div = n > NORMALIZE_EPS ? n : NORMALIZE_EPS;
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        u[(size_t)r * H + h] = xr[h] / div;
    if (threadIdx.x == 0)
        norm[r] = n;
}

/* S[i, j] = scale * ua[i] . ud[j] for i < B, j < D: one warp per score. */
__global__ void scores_kernel(double *S, const double *ua, const double *ud, int B, int D, int H,
                              double scale)
{
    size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (w >= (size_t)B * D)
        return;
    int i = (int)(w / D), j = (int)(w % D);
    const double *a = ua + (size_t)i * H, *d = ud + (size_t)j * H;
    double s = 0;
    for (int h = lane; h < H; h += 32)
        s += a[h] * d[h];
    s = warp_sum(s);
    if (lane == 0)
        S[w] = scale * s;
}

/* Cross-entropy of n logits x[k * stride] against target t (one warp):
 * g[k * stride] gets (add ? += : =) w * (softmax - onehot); returns
 * log-sum-exp minus the target logit (to every lane). */
__device__ double cross_entropy_warp(const double *x, size_t stride, int n, int t, double w,
                                     double *g, bool add)
{
    int lane = threadIdx.x % 32;
    double mx = -INFINITY;
    for (int k = lane; k < n; k += 32)
        mx = fmax(mx, x[k * stride]);
    for (int o = 16; o > 0; o >>= 1)
        mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0;
    for (int k = lane; k < n; k += 32)
        sum += exp(x[k * stride] - mx);
    double lse = mx + log(warp_sum(sum));
    for (int k = lane; k < n; k += 32) {
        double gk = w * (exp(x[k * stride] - lse) - (k == t));
        g[k * stride] = add ? g[k * stride] + gk : gk;
    }
    return lse - x[t * stride];
}

/* Forward direction: row i of S [B, D] against target i.  G is written. */
__global__ void ce_rows_kernel(double *G, double *row_loss, const double *S, int B, int D, double w)
{
    int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (i >= B)
        return;
    double l = cross_entropy_warp(S + (size_t)i * D, 1, D, i, w, G + (size_t)i * D, false);
    if (threadIdx.x % 32 == 0)
        row_loss[i] = l;
}

/* Backward direction (symmetric loss): column j < B of the positive block
 * against target j.  G is added to (after ce_rows_kernel). */
__global__ void ce_cols_kernel(double *G, double *col_loss, const double *S, int B, int D, double w)
{
    int j = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (j >= B)
        return;
    double l = cross_entropy_warp(S + j, D, B, j, w, G + j, true);
    if (threadIdx.x % 32 == 0)
        col_loss[j] = l;
}

/* du for every unit vector: anchors r < B get scale * sum_j G[r, j] ud[j],
 * candidates r = B + j get scale * sum_i G[i, j] ua[i].  One thread per
 * (row, h). */
__global__ void scores_backward_kernel(double *du, const double *G, const double *u, int B, int D,
                                       int H, double scale)
{
    const double *ua = u, *ud = u + (size_t)B * H;
    GRID_STRIDE(idx, (size_t)(B + D) * H) {
        int r = (int)(idx / H), h = (int)(idx % H);
        double s = 0;
        if (r < B)
            for (int j = 0; j < D; j++)
                s += G[(size_t)r * D + j] * ud[(size_t)j * H + h];
        else
            for (int i = 0; i < B; i++)
                s += G[(size_t)i * D + (r - B)] * ua[(size_t)i * H + h];
        du[idx] = scale * s;
    }
}

/* Through normalize(): dx = (du - u (u . du)) / |x| above eps, du / eps
 * below.  One block per row. */
__global__ void normalize_backward_kernel(float *dx, const double *u, const double *du,
                                          const double *norm, int H)
{
    int r = blockIdx.x;
    const double *ur = u + (size_t)r * H, *dur = du + (size_t)r * H;
    double proj = 0;
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        proj += ur[h] * dur[h];
    proj = block_sum(proj);
    if (!(norm[r] > NORMALIZE_EPS))
        proj = 0;
    double div = norm[r] > NORMALIZE_EPS ? norm[r] : NORMALIZE_EPS;
    for (int h = threadIdx.x; h < H; h += blockDim.x)
        dx[(size_t)r * H + h] = (float)((dur[h] - ur[h] * proj) / div);
}

/* Device scratch, grown as needed (one loss at a time). */
static double *scratch;
static size_t scratch_cap;

double mnr_loss_device(const float *emb, int C, int B, int H, double scale, int symmetric,
                       float *d_emb)
{
    if (C < 2 || B < 1 || H < 1)
        die("mnr_loss: needs 2 or more columns and a non-empty batch (got %d x %d x %d)", B, C, H);
    int N = C * B, D = (C - 1) * B;
    size_t need = (size_t)N * H * 2 + N + (size_t)B * D * 2 + 2 * (size_t)B;
    if (need > scratch_cap) {
        cuda_free(scratch);
        scratch = (double *)cuda_alloc(need * sizeof *scratch, "the MNR loss");
        scratch_cap = need;
    }
    double *u = scratch, *du = u + (size_t)N * H, *norm = du + (size_t)N * H;
    double *S = norm + N, *G = S + (size_t)B * D, *row_loss = G + (size_t)B * D;
    double *col_loss = row_loss + B;

    normalize_rows_kernel<<<N, THREADS>>>(u, norm, emb, H);
    LAUNCH_CHECK();
    scores_kernel<<<grid_for_rows((size_t)B * D), THREADS>>>(S, u, u + (size_t)B * H, B, D, H,
                                                             scale);
    LAUNCH_CHECK();
    double w = (symmetric ? 0.5 : 1.0) / B;
    ce_rows_kernel<<<grid_for_rows(B), THREADS>>>(G, row_loss, S, B, D, w);
    LAUNCH_CHECK();
    if (symmetric) {
        ce_cols_kernel<<<grid_for_rows(B), THREADS>>>(G, col_loss, S, B, D, w);
        LAUNCH_CHECK();
    }
    if (d_emb) {
        scores_backward_kernel<<<grid_for((size_t)N * H), THREADS>>>(du, G, u, B, D, H, scale);
        LAUNCH_CHECK();
        normalize_backward_kernel<<<N, THREADS>>>(d_emb, u, du, norm, H);
        LAUNCH_CHECK();
    }

    double *h_loss = (double *)xmallocarray(2 * (size_t)B, sizeof *h_loss);
    CUDA_CHECK(cudaMemcpy(h_loss, row_loss, 2 * (size_t)B * sizeof *h_loss,
                          cudaMemcpyDeviceToHost));
    double forward = 0, backward = 0;
    for (int i = 0; i < B; i++)
        forward += h_loss[i];
    forward /= B;
    if (symmetric) {
        for (int j = 0; j < B; j++)
            backward += h_loss[B + j];
        backward /= B;
    }
    free(h_loss);
    return symmetric ? (forward + backward) / 2 : forward;
}

/* loss.c's MNR on embeddings in GPU memory (the encoder's pooled block,
 * column after column): the loss_batch of one process. */
extern "C" double mnr_compute_gpu(const loss *l, const loss_batch *b, const float *head,
                                  float *const *dcol, float *dhead)
{
    int C = b->columns, B = b->total_rows, H = b->H;
    if (b->row_offset != 0 || b->rows != B)
        die("mnr_loss: the GPU computes the loss of a whole batch, not rows %d..%d of %d",
            b->row_offset, b->row_offset + b->rows, B);
    for (int c = 1; c < C; c++)
        if (b->col[c] != b->col[0] + (size_t)c * B * H || (dcol && dcol[c] != dcol[0] + (size_t)c * B * H))
            die("mnr_loss: the GPU needs the columns of the batch back to back");
    return mnr_loss_device(b->col[0], C, B, H, l->scale, l->symmetric, dcol ? dcol[0] : NULL);
}

extern "C" double gpu_loss_on_host_data(const loss *l, const loss_batch *b, float *const *dcol)
{
    if (!l->compute_gpu)
        die("the %s loss has no GPU implementation", l->name);
    int C = b->columns;
    size_t col = (size_t)b->total_rows * b->H;
    float *emb = (float *)cuda_alloc(2 * C * col * sizeof(float), "gpu_loss_on_host_data");
    float *d_emb = emb + C * col;
    const float **dev_col = (const float **)xmallocarray(C, sizeof *dev_col);
    float **dev_dcol = (float **)xmallocarray(C, sizeof *dev_dcol);
    for (int c = 0; c < C; c++) {
        CUDA_CHECK(cudaMemcpy(emb + c * col, b->col[c], col * sizeof(float), cudaMemcpyHostToDevice));
        dev_col[c] = emb + c * col;
        dev_dcol[c] = d_emb + c * col;
    }
    loss_batch db = *b;
    db.col = dev_col;
    double loss = l->compute_gpu(l, &db, NULL, dcol ? dev_dcol : NULL, NULL);
    if (dcol)
        for (int c = 0; c < C; c++)
            CUDA_CHECK(cudaMemcpy(dcol[c], dev_dcol[c], col * sizeof(float), cudaMemcpyDeviceToHost));
    free(dev_col);
    free(dev_dcol);
    cuda_free(emb);
    return loss;
}
