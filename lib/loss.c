#include "loss.h"

#include <stddef.h>

double mnr_loss_columns(const float *const *cols, int C, int B, int H, double scale,
                        int symmetric, float *const *dcols, float *scores)
{
    return 0; /* implemented next */
}

double mnr_loss(const float *a, const float *p, const float *n, int B, int H, double scale,
                int symmetric, float *da, float *dp, float *dn, float *scores)
{
    const float *cols[3] = {a, p, n};
    float *dcols[3] = {da, dp, dn};
    return mnr_loss_columns(cols, n ? 3 : 2, B, H, scale, symmetric, da ? dcols : NULL, scores);
}
