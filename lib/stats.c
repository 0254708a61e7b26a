#include "stats.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>

int stats_all_equal(const double *x, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (x[i] != x[0])
            return 0;
    return 1;
}

typedef struct {
    double value;
    size_t index;
} ranked;

/* Ascending by value, then by position, so that qsort is stable. */
static int compare_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

void stats_rank_average(const double *x, size_t n, double *ranks)
{
    ranked *order = xmallocarray(n, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = (ranked){x[i], i};
    qsort(order, n, sizeof *order, compare_ranked);
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && order[end].value == order[start].value)
            end++;
        /* positions start..end-1 hold ranks start+1..end: their mean */
        double rank = 0.5 * (double)(start + 1 + end);
        for (size_t k = start; k < end; k++)
            ranks[order[k].index] = rank;
        start = end;
    }
    free(order);
}

double stats_pearson(const double *x, const double *y, size_t n)
{
    if (n < 2 || stats_all_equal(x, n) || stats_all_equal(y, n))
        return NAN;
    double xmean = 0, ymean = 0;
    for (size_t i = 0; i < n; i++) {
        xmean += x[i];
        ymean += y[i];
    }
    xmean /= n;
    ymean /= n;
    /* Scale the deviations by their largest magnitude before squaring, as
     * scipy does, so that huge values cannot overflow the sums. */
    double xmax = 0, ymax = 0;
    for (size_t i = 0; i < n; i++) {
        xmax = fmax(xmax, fabs(x[i] - xmean));
        ymax = fmax(ymax, fabs(y[i] - ymean));
    }
    double sxx = 0, syy = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = (x[i] - xmean) / xmax, dy = (y[i] - ymean) / ymax;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    double r = sxy / (sqrt(sxx) * sqrt(syy));
    if (n == 2)
        return round(r);
    return fmin(1.0, fmax(-1.0, r));
}

double stats_spearman(const double *x, const double *y, size_t n)
{
    double *rx = xmallocarray(n, sizeof *rx), *ry = xmallocarray(n, sizeof *ry);
    stats_rank_average(x, n, rx);
    stats_rank_average(y, n, ry);
    double r = stats_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

double cosine_f32(const float *a, const float *b, int dim)
{
    double dot = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        dot += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    /* One square root of the product of the squared norms: for a == b,
     * dot == aa == bb and sqrt(aa * aa) == aa exactly (IEEE multiplication and
     * square root are correctly rounded), so identical vectors score exactly
     * 1 and pairs whose two sentences embed alike are exact ties, not ranked
     * by rounding noise.  Clamping the squares at eps^2 is torch's normalize
     * clamping the norms at eps. */
    const double eps2 = 1e-24;
    return dot / sqrt(fmax(aa, eps2) * fmax(bb, eps2));
}
