#include "loss.h"

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

double mnr_loss_columns(const float *const *cols, int C, int B, int H, double scale,
                        int symmetric, float *const *dcols, float *scores)
{
    if (C < 2 || B < 1 || H < 1)
        die("mnr_loss: needs 2 or more columns and a non-empty batch (got %d x %d x %d)", B, C, H);
    int N = C * B;          /* embeddings: anchors, then candidates */
    int D = (C - 1) * B;    /* candidates: positives, then negatives */

    /* Unit vectors in double, as normalize() makes them. */
    double *u = xmallocarray((size_t)N * H, sizeof *u);
    double *norm = xmallocarray(N, sizeof *norm);
    for (int r = 0; r < N; r++) {
        const float *x = cols[r / B] + (size_t)(r % B) * H;
        double *ur = u + (size_t)r * H;
        double s = 0;
        for (int h = 0; h < H; h++) {
            ur[h] = x[h];
            s += ur[h] * ur[h];
        }
        norm[r] = sqrt(s);
        double div = norm[r] > NORMALIZE_EPS ? norm[r] : NORMALIZE_EPS;
        for (int h = 0; h < H; h++)
            ur[h] /= div;
    }
    const double *ua = u, *ud = u + (size_t)B * H;

    double *S = xmallocarray((size_t)B * D, sizeof *S);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < D; j++) {
            S[(size_t)i * D + j] = scale * dot(ua + (size_t)i * H, ud + (size_t)j * H, H);
            if (scores)
                scores[(size_t)i * D + j] = (float)S[(size_t)i * D + j];
        }

    /* d loss / d scores, accumulated by both directions. */
    double *G = xcalloc((size_t)B * D, sizeof *G);
    double w = (symmetric ? 0.5 : 1.0) / B;
    double forward = 0, backward = 0;
    for (int i = 0; i < B; i++)
        forward += cross_entropy(S + (size_t)i * D, 1, D, i, w, G + (size_t)i * D);
    forward /= B;
    if (symmetric) {
        /* positive j against every anchor: column j of the positive block */
        for (int j = 0; j < B; j++)
            backward += cross_entropy(S + j, D, B, j, w, G + j);
        backward /= B;
    }
    double loss = symmetric ? (forward + backward) / 2 : forward;

    if (dcols) {
        /* Through the scores to the unit vectors ... */
        double *du = xcalloc((size_t)N * H, sizeof *du);
        double *dua = du, *dud = du + (size_t)B * H;
        for (int i = 0; i < B; i++)
            for (int j = 0; j < D; j++) {
                double g = scale * G[(size_t)i * D + j];
                const double *ai = ua + (size_t)i * H, *dj = ud + (size_t)j * H;
                double *dai = dua + (size_t)i * H, *ddj = dud + (size_t)j * H;
                for (int h = 0; h < H; h++) {
                    dai[h] += g * dj[h];
                    ddj[h] += g * ai[h];
                }
            }
        /* ... and through normalize(): (du - u (u . du)) / |x| above eps. */
        for (int r = 0; r < N; r++) {
            const double *ur = u + (size_t)r * H, *dur = du + (size_t)r * H;
            float *dx = dcols[r / B] + (size_t)(r % B) * H;
            double proj = norm[r] > NORMALIZE_EPS ? dot(ur, dur, H) : 0;
            double div = norm[r] > NORMALIZE_EPS ? norm[r] : NORMALIZE_EPS;
            for (int h = 0; h < H; h++)
                dx[h] = (float)((dur[h] - ur[h] * proj) / div);
        }
        free(du);
    }
    free(G);
    free(S);
    free(norm);
    free(u);
    return loss;
}

double mnr_loss(const float *a, const float *p, const float *n, int B, int H, double scale,
                int symmetric, float *da, float *dp, float *dn, float *scores)
{
    const float *cols[3] = {a, p, n};
    float *dcols[3] = {da, dp, dn};
    return mnr_loss_columns(cols, n ? 3 : 2, B, H, scale, symmetric, da ? dcols : NULL, scores);
}
