/* layers.cuh - the encoder's layer kernels, templated on the activation type
 * T (float, or bf16 with float arithmetic), each with its launcher; the
 * device counterparts of bert.c's static functions, in the same order.
 * Activations are packed [N, width] rows as on the CPU; start[B + 1] gives
 * each sequence's first row, pos[N] each row's position, seq[N] its
 * sequence.  Included by gpu.cu only. */
#ifndef BP_CUDA_LAYERS_CUH
#define BP_CUDA_LAYERS_CUH

#include "common.cuh"

/* ---- column sums (bias and LayerNorm gradients) -------------------------- */

/* Rows per partial sum: the partial sums of one column are added in a fixed
 * order, so results do not depend on scheduling. */
enum { COLSUM_ROWS = 64 };

static inline size_t colsum_chunks(int n)
{
    return ((size_t)n + COLSUM_ROWS - 1) / COLSUM_ROWS;
}

/* partial[chunk, j] = sum over the chunk's rows r of a[r, j], times the
 * normalised LayerNorm input (x[r, j] - mean[r]) * rstd[r] when x is given.
 * Block (32, 8), grid (column blocks, chunks). */
template <class T>
__global__ void colsum_partial_kernel(float *partial, const T *a, const T *x, const float *mean,
                                      const float *rstd, int n, int d)
{
    __shared__ float part[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    int r0 = blockIdx.y * COLSUM_ROWS, r1 = min(n, r0 + COLSUM_ROWS);
    float s = 0;
    if (j < d)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            float v = to_f(a[(size_t)r * d + j]);
            if (x)
                v *= (to_f(x[(size_t)r * d + j]) - mean[r]) * rstd[r];
            s += v;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        for (int k = 1; k < 8; k++)
            s += part[k][threadIdx.x];
        partial[(size_t)blockIdx.y * d + j] = s;
    }
}

__global__ void colsum_finish_kernel(float *dst, const float *partial, size_t chunks, int d)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d)
        return;
    double s = 0;
    for (size_t k = 0; k < chunks; k++)
        s += partial[k * d + j];
    dst[j] += (float)s;
}

/* dst[j] += sum over rows of a[r, j] (times the normalised x when given);
 * partial holds colsum_chunks(n) * d floats. */
template <class T>
static void column_sums(float *dst, float *partial, const T *a, const T *x, const float *mean,
                        const float *rstd, int n, int d)
{
    size_t chunks = colsum_chunks(n);
    colsum_partial_kernel<T><<<dim3((d + 31) / 32, (unsigned)chunks), dim3(32, 8)>>>(
        partial, a, x, mean, rstd, n, d);
    LAUNCH_CHECK();
    colsum_finish_kernel<<<(d + THREADS - 1) / THREADS, THREADS>>>(dst, partial, chunks, d);
    LAUNCH_CHECK();
}

/* ---- embeddings ---------------------------------------------------------- */

/* out[r] = word[ids[r]] + type[0] + position[pos[r]] (Hugging Face's order);
 * type NULL (MPNet): word + position, which adding 0 gives exactly. */
template <class T>
__global__ void embedding_forward_kernel(T *out, const int32_t *ids, const int32_t *pos, int n,
                                         const T *word, const T *position, const T *type, int H)
{
    GRID_STRIDE(i, (size_t)n * H) {
        size_t r = i / H, j = i % H;
        float w = to_f(word[(size_t)ids[r] * H + j]), p = to_f(position[(size_t)pos[r] * H + j]);
        out[i] = from_f<T>((w + (type ? to_f(type[j]) : 0.0f)) + p);
    }
}

template <class T>
static void embedding_forward(T *out, const int32_t *ids, const int32_t *pos, int n, const T *word,
                              const T *position, const T *type, int H)
{
    embedding_forward_kernel<T><<<grid_for((size_t)n * H), THREADS>>>(out, ids, pos, n, word,
                                                                       position, type, H);
    LAUNCH_CHECK();
}

/* table[keys[k]] += sum of dout's rows rows[offsets[k] .. offsets[k+1]-1]:
 * the rows sharing a token id (or a position) are grouped on the host, so
 * every row of the table has one writer and the sum order is fixed. */
template <class T>
__global__ void scatter_rows_kernel(float *table, const T *dout, const int32_t *keys,
                                    const int32_t *offsets, const int32_t *rows, int H)
{
    int k = blockIdx.x;
    float *dst = table + (size_t)keys[k] * H;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float s = 0;
        for (int i = offsets[k]; i < offsets[k + 1]; i++)
            s += to_f(dout[(size_t)rows[i] * H + j]);
        dst[j] += s;
    }
}

template <class T>
static void scatter_rows(float *table, const T *dout, const int32_t *keys, const int32_t *offsets,
                         const int32_t *rows, int nkeys, int H)
{
    if (nkeys < 1)
        return;
    scatter_rows_kernel<T><<<nkeys, 128>>>(table, dout, keys, offsets, rows, H);
    LAUNCH_CHECK();
}

/* ---- LayerNorm ----------------------------------------------------------- */

/* One warp per row; statistics in float, two passes. */
template <class T>
__global__ void layernorm_forward_kernel(T *out, float *mean, float *rstd, const T *in, const T *w,
                                         const T *b, int n, int H, float eps)
{
    int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (r >= n)
        return;
    const T *x = in + (size_t)r * H;
    float m = 0, v = 0;
    for (int j = lane; j < H; j += 32)
        m += to_f(x[j]);
    m = warp_sum(m) / H;
    for (int j = lane; j < H; j += 32) {
        float d = to_f(x[j]) - m;
        v += d * d;
    }
    v = warp_sum(v) / H;
    float s = 1.0f / sqrtf(v + eps);
    T *o = out + (size_t)r * H;
    for (int j = lane; j < H; j += 32)
        o[j] = from_f<T>((to_f(x[j]) - m) * s * to_f(w[j]) + to_f(b[j]));
    if (lane == 0) {
        mean[r] = m;
        rstd[r] = s;
    }
}

template <class T>
static void layernorm_forward(T *out, float *mean, float *rstd, const T *in, const T *w, const T *b,
                              int n, int H, double eps)
{
    layernorm_forward_kernel<T><<<grid_for_rows(n), THREADS>>>(out, mean, rstd, in, w, b, n, H,
                                                               (float)eps);
    LAUNCH_CHECK();
}

/* din = d LayerNorm / d in (overwritten), one warp per row. */
template <class T>
__global__ void layernorm_backward_kernel(T *din, const T *dout, const T *in, const float *mean,
                                          const float *rstd, const T *w, int n, int H)
{
    int r = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (r >= n)
        return;
    const T *x = in + (size_t)r * H, *dy = dout + (size_t)r * H;
    float mr = mean[r], sr = rstd[r], sum_dn = 0, sum_dn_xh = 0;
    for (int j = lane; j < H; j += 32) {
        float dn = to_f(dy[j]) * to_f(w[j]);
        sum_dn += dn;
        sum_dn_xh += dn * ((to_f(x[j]) - mr) * sr);
    }
    float mean_dn = warp_sum(sum_dn) / H, mean_dn_xh = warp_sum(sum_dn_xh) / H;
    T *dx = din + (size_t)r * H;
    for (int j = lane; j < H; j += 32) {
        float xh = (to_f(x[j]) - mr) * sr;
        dx[j] = from_f<T>((to_f(dy[j]) * to_f(w[j]) - mean_dn - xh * mean_dn_xh) * sr);
    }
}

/* din overwritten; dw, db (fp32 gradients) accumulate. */
template <class T>
static void layernorm_backward(T *din, float *dw, float *db, float *partial, const T *dout,
                               const T *in, const float *mean, const float *rstd, const T *w, int n,
                               int H)
{
    layernorm_backward_kernel<T><<<grid_for_rows(n), THREADS>>>(din, dout, in, mean, rstd, w, n, H);
    LAUNCH_CHECK();
    column_sums<T>(dw, partial, dout, in, mean, rstd, n, H);
    column_sums<T>(db, partial, dout, (const T *)NULL, NULL, NULL, n, H);
}

/* ---- GELU (exact, erf) --------------------------------------------------- */

template <class T> __global__ void gelu_forward_kernel(T *out, const T *in, size_t n)
{
    GRID_STRIDE(i, n) {
        float x = to_f(in[i]);
        out[i] = from_f<T>(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
    }
}

template <class T> static void gelu_forward(T *out, const T *in, size_t n)
{
    gelu_forward_kernel<T><<<grid_for(n), THREADS>>>(out, in, n);
    LAUNCH_CHECK();
}

/* d *= GELU'(in). */
template <class T> __global__ void gelu_backward_kernel(T *d, const T *in, size_t n)
{
    GRID_STRIDE(i, n) {
        float x = to_f(in[i]);
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        d[i] = from_f<T>(to_f(d[i]) * (cdf + x * 0.3989422804014327f * expf(-0.5f * x * x)));
    }
}

template <class T> static void gelu_backward(T *d, const T *in, size_t n)
{
    gelu_backward_kernel<T><<<grid_for(n), THREADS>>>(d, in, n);
    LAUNCH_CHECK();
}

/* ---- dropout and residuals ----------------------------------------------- */

/* x = dropout(x) (when drop) + res: the dense output, its dropout and the
 * residual sum in one pass. */
template <class T>
__global__ void dropout_residual_kernel(T *x, const T *res, size_t n, dropout_mask site, bool drop)
{
    GRID_STRIDE(i, n) {
        float v = to_f(x[i]);
        if (drop)
            v = dropout_keep_at(site, i) ? v * site.scale : 0.0f;
        x[i] = from_f<T>(v + to_f(res[i]));
    }
}

template <class T>
static void dropout_residual(T *x, const T *res, size_t n, const dropout_mask &site, bool drop)
{
    dropout_residual_kernel<T><<<grid_for(n), THREADS>>>(x, res, n, site, drop);
    LAUNCH_CHECK();
}

/* dst[i] = mask i ? src[i] * scale : 0 (dst may equal src). */
template <class D, class S>
__global__ void dropout_apply_kernel(D *dst, const S *src, size_t n, dropout_mask site)
{
    GRID_STRIDE(i, n)
        dst[i] = from_f<D>(dropout_keep_at(site, i) ? to_f(src[i]) * site.scale : 0.0f);
}

template <class D, class S>
static void dropout_apply(D *dst, const S *src, size_t n, const dropout_mask &site)
{
    dropout_apply_kernel<D, S><<<grid_for(n), THREADS>>>(dst, src, n, site);
    LAUNCH_CHECK();
}

/* ---- attention ----------------------------------------------------------- */
/* The packed rows of each sequence are copied into zero-padded per-head
 * blocks [B * heads, Tp, d] (Tp >= the longest sequence) so that the score
 * and context products are strided batched matrix products; the softmax
 * masks the padding keys, and padding queries get zero probabilities. */

/* out[b, h, t, e] = in[start[b] + t, col + h*d + e] for t < len(b), else 0
 * (in has ld columns). */
template <class T>
__global__ void pad_heads_kernel(T *out, const T *in, int ld, int col, const int *start, int B,
                                 int heads, int d, int Tp)
{
    GRID_STRIDE(i, (size_t)B * heads * Tp * d) {
        size_t rest = i / d;
        int e = (int)(i % d), t = (int)(rest % Tp);
        rest /= Tp;
        int h = (int)(rest % heads), b = (int)(rest / heads);
        int s = start[b], len = start[b + 1] - s;
        out[i] = t < len ? in[(size_t)(s + t) * ld + col + h * d + e] : from_f<T>(0.0f);
    }
}

template <class T>
static void pad_heads(T *out, const T *in, int ld, int col, const int *start, int B, int heads,
                      int d, int Tp)
{
    pad_heads_kernel<T><<<grid_for((size_t)B * heads * Tp * d), THREADS>>>(out, in, ld, col, start,
                                                                           B, heads, d, Tp);
    LAUNCH_CHECK();
}

/* out[r, col + j] = in[seq[r], j / d, pos[r], j % d] for the n packed rows
 * (out has ld columns); the inverse of pad_heads. */
template <class T>
__global__ void unpad_heads_kernel(T *out, int ld, int col, const T *in, const int32_t *seq,
                                   const int32_t *pos, int n, int heads, int d, int Tp)
{
    int H = heads * d;
    GRID_STRIDE(i, (size_t)n * H) {
        size_t r = i / H;
        int j = (int)(i % H), h = j / d, e = j % d;
        out[r * ld + col + j] = in[(((size_t)seq[r] * heads + h) * Tp + pos[r]) * d + e];
    }
}

template <class T>
static void unpad_heads(T *out, int ld, int col, const T *in, const int32_t *seq,
                        const int32_t *pos, int n, int heads, int d, int Tp)
{
    unpad_heads_kernel<T><<<grid_for((size_t)n * heads * d), THREADS>>>(out, ld, col, in, seq, pos,
                                                                        n, heads, d, Tp);
    LAUNCH_CHECK();
}

/* MPNet's relative position bias (rel NULL: none): the score of query i for
 * key j of head h gets rel[bucket[j - i + center] * heads + h], the table
 * shared by all layers, bucket = bert_rel_bucket on the host. */
struct rel_bias {
    const void *rel; /* T [buckets, heads] */
    const int *bucket;
    int center;
};

/* Softmax over the real keys of each row of scores [B*heads, Tp, Tp] (plus
 * the relative position bias rb, which it adds into S); rows of padding
 * queries and columns of padding keys get 0.  One warp per row. */
template <class T>
__global__ void softmax_forward_kernel(T *P, float *S, const int *start, int B, int heads, int Tp,
                                       rel_bias rb)
{
    size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= (size_t)B * heads * Tp)
        return;
    int i = (int)(row % Tp), b = (int)(row / Tp / heads), len = start[b + 1] - start[b];
    float *s = S + row * Tp;
    if (rb.rel && i < len) {
        const T *rel = (const T *)rb.rel;
        int h = (int)(row / Tp % heads);
        for (int j = lane; j < len; j += 32)
            s[j] += to_f(rel[(size_t)rb.bucket[j - i + rb.center] * heads + h]);
        __syncwarp();
    }
    T *p = P + row * Tp;
    if (i >= len) {
        for (int j = lane; j < Tp; j += 32)
            p[j] = from_f<T>(0.0f);
        return;
    }
    float mx = -INFINITY;
    for (int j = lane; j < len; j += 32)
        mx = fmaxf(mx, s[j]);
    mx = warp_max(mx);
    float sum = 0;
    for (int j = lane; j < len; j += 32)
        sum += expf(s[j] - mx);
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < Tp; j += 32)
        p[j] = from_f<T>(j < len ? expf(s[j] - mx) * inv : 0.0f);
}

/* dS = P * (dP - sum_j P dP) over the real keys (0 elsewhere), written over
 * dS's own buffer type; one warp per row. */
template <class T>
__global__ void softmax_backward_kernel(T *dS, const float *dP, const T *P, const int *start, int B,
                                        int heads, int Tp)
{
    size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    if (row >= (size_t)B * heads * Tp)
        return;
    int i = (int)(row % Tp), b = (int)(row / Tp / heads), len = start[b + 1] - start[b];
    const float *dp = dP + row * Tp;
    const T *p = P + row * Tp;
    T *ds = dS + row * Tp;
    if (i >= len) {
        for (int j = lane; j < Tp; j += 32)
            ds[j] = from_f<T>(0.0f);
        return;
    }
    float dot = 0;
    for (int j = lane; j < len; j += 32)
        dot += to_f(p[j]) * dp[j];
    dot = warp_sum(dot);
    for (int j = lane; j < Tp; j += 32)
        ds[j] = from_f<T>(j < len ? to_f(p[j]) * (dp[j] - dot) : 0.0f);
}

template <class T>
static void softmax_forward(T *P, float *S, const int *start, int B, int heads, int Tp,
                            rel_bias rb)
{
    softmax_forward_kernel<T><<<grid_for_rows((size_t)B * heads * Tp), THREADS>>>(P, S, start, B,
                                                                                  heads, Tp, rb);
    LAUNCH_CHECK();
}

/* The relative position bias's gradient, in two deterministic passes:
 * partial[bh, x] = sum over the queries i of dS[bh, i, i + x - (Tp - 1)]
 * (real tokens only), then dtable[k, h] += the sum over sequences and the x
 * whose bucket is k. */
template <class T>
__global__ void rel_bias_partial_kernel(float *partial, const T *dS, const int *start, int B,
                                        int heads, int Tp)
{
    int span = 2 * Tp - 1;
    GRID_STRIDE(k, (size_t)B * heads * span) {
        size_t bh = k / span;
        int x = (int)(k % span) - (Tp - 1), b = (int)(bh / heads), len = start[b + 1] - start[b];
        const T *s = dS + bh * Tp * Tp;
        float acc = 0;
        for (int i = x < 0 ? -x : 0; i < len && i + x < len; i++)
            acc += to_f(s[(size_t)i * Tp + i + x]);
        partial[k] = acc;
    }
}

__global__ void rel_bias_finish_kernel(float *dtable, const float *partial, const int *bucket,
                                       int center, int B, int heads, int Tp, int buckets)
{
    int span = 2 * Tp - 1;
    GRID_STRIDE(k, (size_t)buckets * heads) {
        int kb = (int)(k / heads), h = (int)(k % heads);
        double acc = 0;
        for (int b = 0; b < B; b++)
            for (int x = 0; x < span; x++)
                if (bucket[x - (Tp - 1) + center] == kb)
                    acc += partial[((size_t)b * heads + h) * span + x];
        dtable[k] += (float)acc;
    }
}

template <class T>
static void rel_bias_backward(float *dtable, float *partial, const T *dS, const int *start,
                              const int *bucket, int center, int B, int heads, int Tp, int buckets)
{
    rel_bias_partial_kernel<T><<<grid_for((size_t)B * heads * (2 * Tp - 1)), THREADS>>>(
        partial, dS, start, B, heads, Tp);
    LAUNCH_CHECK();
    rel_bias_finish_kernel<<<grid_for((size_t)buckets * heads), THREADS>>>(
        dtable, partial, bucket, center, B, heads, Tp, buckets);
    LAUNCH_CHECK();
}

template <class T>
static void softmax_backward(T *dS, const float *dP, const T *P, const int *start, int B, int heads,
                             int Tp)
{
    softmax_backward_kernel<T><<<grid_for_rows((size_t)B * heads * Tp), THREADS>>>(dS, dP, P, start,
                                                                                   B, heads, Tp);
    LAUNCH_CHECK();
}

/* ---- pooling and normalisation ------------------------------------------- */

/* out[b] (float) from the rows of sequence b: mean (in double), the first
 * row, or the elementwise maximum (first row on ties).  One block per
 * sequence. */
template <class T>
__global__ void pool_forward_kernel(float *out, const T *h, const int *start, int H, int mode)
{
    int b = blockIdx.x, s = start[b], e = start[b + 1];
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float o;
        if (mode == POOL_CLS) {
            o = to_f(h[(size_t)s * H + j]);
        } else if (mode == POOL_MAX) {
            o = to_f(h[(size_t)s * H + j]);
            for (int r = s + 1; r < e; r++)
                o = fmaxf(o, to_f(h[(size_t)r * H + j]));
        } else {
            double sum = 0;
            for (int r = s; r < e; r++)
                sum += to_f(h[(size_t)r * H + j]);
            o = (float)(sum / (e - s));
        }
        out[(size_t)b * H + j] = o;
    }
}

template <class T>
static void pool_forward(float *out, const T *h, const int *start, int B, int H, pooling_mode mode)
{
    pool_forward_kernel<T><<<B, THREADS>>>(out, h, start, H, (int)mode);
    LAUNCH_CHECK();
}

/* dh (every row of every sequence written) from d_pooled [B, H]. */
template <class T>
__global__ void pool_backward_kernel(T *dh, const float *d_pooled, const T *h, const int *start,
                                     int H, int mode)
{
    int b = blockIdx.x, s = start[b], e = start[b + 1];
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        float d = d_pooled[(size_t)b * H + j];
        int pick = s; /* the row that gets d, for cls and max */
        if (mode == POOL_MAX)
            for (int r = s + 1; r < e; r++)
                if (to_f(h[(size_t)r * H + j]) > to_f(h[(size_t)pick * H + j]))
                    pick = r;
        for (int r = s; r < e; r++) {
            float g = mode == POOL_MEAN ? d / (e - s) : r == pick ? d : 0.0f;
            dh[(size_t)r * H + j] = from_f<T>(g);
        }
    }
}

template <class T>
static void pool_backward(T *dh, const float *d_pooled, const T *h, const int *start, int B, int H,
                          pooling_mode mode)
{
    pool_backward_kernel<T><<<B, THREADS>>>(dh, d_pooled, h, start, H, (int)mode);
    LAUNCH_CHECK();
}

/* Rows of x[n, d] scaled to unit L2 norm in place: x / max(|x|, 1e-12),
 * the norm in double.  One block per row. */
__global__ void l2_normalize_kernel(float *x, int d)
{
    float *xr = x + (size_t)blockIdx.x * d;
    double s = 0;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        s += (double)xr[j] * xr[j];
    s = block_sum(s);
    double norm = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
    for (int j = threadIdx.x; j < d; j += blockDim.x)
        xr[j] = (float)(xr[j] / norm);
}

static void l2_normalize_rows(float *x, int n, int d)
{
    l2_normalize_kernel<<<n, THREADS>>>(x, d);
    LAUNCH_CHECK();
}

#endif
