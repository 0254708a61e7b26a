#include "loss.h"

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

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
         * du_candidates = scale G^T ua ... */
        double *du = xmallocarray((size_t)N * H, sizeof *du);
        double *dua = du, *dud = du + (size_t)B * H;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, D, scale, G, D, ud, H, 0.0,
                    dua, H);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, H, B, scale, G, D, ua, H, 0.0,
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

#ifdef BP_HAVE_CUDA
/* lib/cuda/loss.cu */
double mnr_compute_gpu(const loss *l, const loss_batch *b, const float *head, float *const *dcol,
                       float *dhead);
#else
#define mnr_compute_gpu NULL
#endif

loss loss_mnr(double scale, int symmetric)
{
    return (loss){.name = symmetric ? "mnr-symmetric" : "mnr", .scale = scale,
                  .symmetric = symmetric, .compute = mnr_compute, .compute_gpu = mnr_compute_gpu};
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
