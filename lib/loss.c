#include "loss.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "cuda_backend.h"
#include "rng.h"
#include "util.h"

/* torch.nn.functional.normalize's default eps: x / max(|x|, eps). */
#define NORMALIZE_EPS 1e-12

static double dot(const double *x, const double *y, int H)
{
    double s = 0;
    for (int h = 0; h < H; h++)
        s += x[h] * y[h];
    return s;
}

/* u = x / max(|x|, eps) in double; returns |x|. */
static double unit_vector(double *u, const float *x, int H)
{
    double s = 0;
    for (int h = 0; h < H; h++) {
        u[h] = x[h];
        s += u[h] * u[h];
    }
    double norm = sqrt(s), div = norm > NORMALIZE_EPS ? norm : NORMALIZE_EPS;
    for (int h = 0; h < H; h++)
        u[h] /= div;
    return norm;
}

/* Through u = x / max(|x|, eps): dx = (du - u (u . du)) / |x| above eps,
 * du / eps below (the clamped divisor is a constant). */
static void unit_vector_backward(float *dx, const double *u, const double *du, double norm, int H)
{
    double proj = norm > NORMALIZE_EPS ? dot(u, du, H) : 0;
    double div = norm > NORMALIZE_EPS ? norm : NORMALIZE_EPS;
    for (int h = 0; h < H; h++)
        dx[h] = (float)((du[h] - u[h] * proj) / div);
}

/* Cross-entropy of one row of logits x[0..n-1] (element k apart by stride)
 * against target t; adds w * (softmax - onehot) to g (same stride).
 * Returns log-sum-exp minus the target logit. */
static double cross_entropy(const double *x, size_t stride, int n, int t, double w, double *g)
{
    double max = x[0];
    for (int k = 1; k < n; k++)
        if (x[k * stride] > max)
            max = x[k * stride];
    double sum = 0;
    for (int k = 0; k < n; k++)
        sum += exp(x[k * stride] - max);
    double lse = max + log(sum);
    for (int k = 0; k < n; k++)
        g[k * stride] += w * (exp(x[k * stride] - lse) - (k == t));
    return lse - x[t * stride];
}

/* MNR over a loss_batch: see loss.h. */
static double mnr_compute(const loss *l, const loss_batch *b, const float *head,
                          float *const *dcol, float *dhead)
{
    int C = b->columns, B = b->total_rows, H = b->H, first = b->row_offset;
    int last = b->row_offset + b->rows;
    if (C < 2 || B < 1 || H < 1 || b->rows < 1 || first < 0 || last > B)
        die("mnr_loss: needs 2 or more columns and a non-empty batch (got rows %d..%d of %d x %d "
            "x %d)", first, last, B, C, H);
    int N = C * B;          /* embeddings: anchors, then candidates */
    int D = (C - 1) * B;    /* candidates: positives, then negatives */
    double scale = l->scale;

    /* Unit vectors in double, as normalize() makes them. */
    double *u = xmallocarray((size_t)N * H, sizeof *u);
    double *norm = xmallocarray(N, sizeof *norm);
    for (int r = 0; r < N; r++)
        norm[r] = unit_vector(u + (size_t)r * H, b->col[r / B] + (size_t)(r % B) * H, H);
    const double *ua = u, *ud = u + (size_t)B * H;

    /* Scores: every candidate for this part's anchors and, for the symmetric
     * loss, every anchor (for this part's positives), as one matrix product:
     * the batches of cached losses are thousands of rows. */
    int r0 = l->symmetric ? 0 : first, nr = l->symmetric ? B : last - first;
    double *S = xcalloc((size_t)B * D, sizeof *S);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, D, H, scale, ua + (size_t)r0 * H, H,
                ud, H, 0.0, S + (size_t)r0 * D, D);

    /* d loss / d scores, accumulated by both directions. */
    double *G = xcalloc((size_t)B * D, sizeof *G);
    double w = (l->symmetric ? 0.5 : 1.0) / B;
    double forward = 0, backward = 0;
    for (int i = first; i < last; i++)
        forward += cross_entropy(S + (size_t)i * D, 1, D, i, w, G + (size_t)i * D);
    forward /= B;
    if (l->symmetric) {
        /* positive j against every anchor: column j of the positive block */
        for (int j = first; j < last; j++)
            backward += cross_entropy(S + j, D, B, j, w, G + j);
        backward /= B;
    }
    double loss = l->symmetric ? (forward + backward) / 2 : forward;

    if (dcol) {
        /* Through the scores to the unit vectors: du_anchors = scale G ud,
         * du_candidates = scale G^T ua, over the rows r0 .. r0 + nr - 1
         * that have scores (G is zero elsewhere: a part of several) ... */
        double *du = xcalloc((size_t)N * H, sizeof *du);
        double *dua = du, *dud = du + (size_t)B * H;
        const double *Gr = G + (size_t)r0 * D, *uar = ua + (size_t)r0 * H;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, H, D, scale, Gr, D, ud, H, 0.0,
                    dua + (size_t)r0 * H, H);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, H, nr, scale, Gr, D, uar, H, 0.0,
                    dud, H);
        /* ... and through normalize(). */
        for (int r = 0; r < N; r++)
            unit_vector_backward(dcol[r / B] + (size_t)(r % B) * H, u + (size_t)r * H,
                                 du + (size_t)r * H, norm[r], H);
        free(du);
    }
    free(G);
    free(S);
    free(norm);
    free(u);
    return loss;
}

#ifndef BP_HAVE_CUDA
#define mnr_compute_gpu NULL
#endif

loss loss_mnr(double scale, int symmetric)
{
    return (loss){.name = symmetric ? "mnr-symmetric" : "mnr", .scale = scale,
                  .symmetric = symmetric, .compute = mnr_compute, .compute_gpu = mnr_compute_gpu};
}

/* Features of one row: u, v, |u - v| and, with multiply, u * v. */
static void softmax_features(double *f, const double *u, const double *v, int H, int multiply)
{
    for (int h = 0; h < H; h++) {
        f[h] = u[h];
        f[H + h] = v[h];
        f[2 * H + h] = fabs(u[h] - v[h]);
        if (multiply)
            f[3 * H + h] = u[h] * v[h];
    }
}

/* The embedding as the loss sees it: normalised when the model does it;
 * returns the norm for the backward pass. */
static double softmax_input(double *u, const float *x, int H, int normalize)
{
    if (normalize)
        return unit_vector(u, x, H);
    for (int h = 0; h < H; h++)
        u[h] = x[h];
    return 0;
}

/* SoftmaxLoss over a loss_batch: see loss.h. */
static double softmax_compute(const loss *l, const loss_batch *b, const float *head,
                              float *const *dcol, float *dhead)
{
    int B = b->total_rows, H = b->H, first = b->row_offset, last = b->row_offset + b->rows;
    if (b->columns != 2 || H != l->H || B < 1 || b->rows < 1 || first < 0 || last > B)
        die("softmax_loss: needs 2 columns of %d and a non-empty batch (got rows %d..%d of %d x "
            "%d x %d)", l->H, first, last, B, b->columns, H);
    if (!b->labels || !head)
        die("softmax_loss: no labels or no classifier");
    int F = (l->multiply ? 4 : 3) * H, K = SOFTMAX_LABELS;
    const float *W = head, *bias = head + (size_t)K * F;
    double *u = xmallocarray((size_t)6 * F, sizeof *u);
    double *v = u + H, *f = u + F, *df = f + F, *du = df + F, *dv = du + H;
    double *dW = dhead ? xcalloc((size_t)K * F + K, sizeof *dW) : NULL;
    if (dcol)
        for (int c = 0; c < 2; c++)
            for (size_t i = 0; i < (size_t)B * H; i++)
                dcol[c][i] = 0;
    double loss = 0;
    for (int i = first; i < last; i++) {
        int t = b->labels[i];
        if (t < 0 || t >= K)
            die("softmax_loss: row %d: label %d is not 0 to %d", i, t, K - 1);
        double nu = softmax_input(u, b->col[0] + (size_t)i * H, H, l->normalize);
        double nv = softmax_input(v, b->col[1] + (size_t)i * H, H, l->normalize);
        softmax_features(f, u, v, H, l->multiply);
        double z[SOFTMAX_LABELS], dz[SOFTMAX_LABELS] = {0};
        for (int k = 0; k < K; k++) {
            double s = bias[k];
            const float *w = W + (size_t)k * F;
            for (int j = 0; j < F; j++)
                s += w[j] * f[j];
            z[k] = s;
        }
        loss += cross_entropy(z, 1, K, t, 1.0 / B, dz);
        if (dW)
            for (int k = 0; k < K; k++) {
                for (int j = 0; j < F; j++)
                    dW[(size_t)k * F + j] += dz[k] * f[j];
                dW[(size_t)K * F + k] += dz[k];
            }
        if (!dcol)
            continue;
        for (int j = 0; j < F; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += dz[k] * W[(size_t)k * F + j];
            df[j] = s;
        }
        for (int h = 0; h < H; h++) {
            double d = u[h] - v[h], sign = d > 0 ? 1 : d < 0 ? -1 : 0;
            du[h] = df[h] + sign * df[2 * H + h];
            dv[h] = df[H + h] - sign * df[2 * H + h];
            if (l->multiply) {
                du[h] += v[h] * df[3 * H + h];
                dv[h] += u[h] * df[3 * H + h];
            }
        }
        float *dx = dcol[0] + (size_t)i * H, *dy = dcol[1] + (size_t)i * H;
        if (l->normalize) {
            unit_vector_backward(dx, u, du, nu, H);
            unit_vector_backward(dy, v, dv, nv, H);
        } else {
            for (int h = 0; h < H; h++) {
                dx[h] = (float)du[h];
                dy[h] = (float)dv[h];
            }
        }
    }
    if (dW) {
        for (size_t j = 0; j < (size_t)K * F + K; j++)
            dhead[j] += (float)dW[j];
        free(dW);
    }
    free(u);
    return loss / B;
}

/* As torch.nn.Linear initialises itself: weight and bias uniform in
 * +-1/sqrt(fan_in); drawn from a stream of its own. */
#define HEAD_STREAM 0x534f46544d4158ull /* "SOFTMAX" */
static void softmax_init_head(const loss *l, float *head, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed ^ HEAD_STREAM);
    size_t F = (size_t)(l->multiply ? 4 : 3) * l->H;
    double bound = 1 / sqrt((double)F);
    for (size_t i = 0; i < l->head_size; i++)
        head[i] = (float)((2 * rng_uniform(&r) - 1) * bound);
}

static const char *const loss_names[] = {"mnr", "softmax", NULL}; /* as loss_kind */

int loss_kind_parse(const char *s, loss_kind *k)
{
    int i = parse_choice(s, loss_names);
    if (i >= 0)
        *k = (loss_kind)i;
    return i < 0 ? -1 : 0;
}

const char *loss_kind_name(loss_kind k)
{
    return loss_names[k];
}

loss loss_softmax(int H, int multiply, int normalize)
{
    size_t F = (size_t)(multiply ? 4 : 3) * H, K = SOFTMAX_LABELS;
    return (loss){.name = "softmax", .H = H, .multiply = multiply, .normalize = normalize,
                  .needs_labels = 1, .head_size = K * F + K,
                  .head_ranges = {{.offset = 0, .numel = K * F, .decay = 1},
                                  {.offset = K * F, .numel = K, .decay = 0}},
                  .n_head_ranges = 2, .init_head = softmax_init_head,
                  .compute = softmax_compute};
}

double loss_compute(const loss *l, const loss_batch *b, int on_gpu, const float *head,
                    float *const *dcol, float *dhead)
{
    if (!on_gpu)
        return l->compute(l, b, head, dcol, dhead);
    if (!l->compute_gpu)
        die("the %s loss has no GPU implementation", l->name);
    return l->compute_gpu(l, b, head, dcol, dhead);
}

double mnr_loss_columns(const float *const *cols, int C, int B, int H, double scale,
                        int symmetric, float *const *dcols, float *scores)
{
    loss l = loss_mnr(scale, symmetric);
    loss_batch b = {.H = H, .columns = C, .total_rows = B, .rows = B, .col = cols};
    if (scores) {
        double *u = xmallocarray((size_t)C * B * H, sizeof *u);
        for (int r = 0; r < C * B; r++)
            unit_vector(u + (size_t)r * H, cols[r / B] + (size_t)(r % B) * H, H);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < (C - 1) * B; j++)
                scores[(size_t)i * (C - 1) * B + j] =
                    (float)(scale * dot(u + (size_t)i * H, u + (size_t)(B + j) * H, H));
        free(u);
    }
    return mnr_compute(&l, &b, NULL, dcols, NULL);
}
double mnr_loss(const float *a, const float *p, const float *n, int B, int H, double scale,
                int symmetric, float *da, float *dp, float *dn, float *scores)
{
    const float *cols[3] = {a, p, n};
    float *dcols[3] = {da, dp, dn};
    return mnr_loss_columns(cols, n ? 3 : 2, B, H, scale, symmetric, da ? dcols : NULL, scores);
}
