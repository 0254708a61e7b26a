/* Correlations and cosine against scipy's answers and hand-computed cases. */
#include "../tap.h"
#include "stats.h"
#include "util.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

/* A JSON array of numbers as a new double array. */
static double *numbers(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    double *x = xmallocarray(*n, sizeof *x);
    for (size_t i = 0; i < *n; i++)
        x[i] = json_number_value(json_array_get(a, i));
    return x;
}

static int close_to(double got, double want, double tol)
{
    return fabs(got - want) <= tol;
}

int main(void)
{
    char *path = path_join(shared_dir(), "fixtures/meta.json");
    json_error_t err;
    json_t *meta = json_load_file(path, 0, &err);
    if (!meta)
        skip_all("cannot read fixtures/meta.json (set SHARED)");

    /* scipy on 200 values with heavy ties (average ranks). */
    json_t *ties = json_object_get(meta, "spearman_ties");
    size_t nx, ny;
    double *x = numbers(json_object_get(ties, "x"), &nx);
    double *y = numbers(json_object_get(ties, "y"), &ny);
    double want_s = json_number_value(json_object_get(ties, "spearman"));
    double want_p = json_number_value(json_object_get(ties, "pearson"));
    ok(nx == 200 && ny == 200, "spearman_ties holds 200 + 200 values");
    double s = stats_spearman(x, y, nx), p = stats_pearson(x, y, nx);
    ok(close_to(s, want_s, 1e-9), "spearman with ties %.17g, scipy %.17g", s, want_s);
    ok(close_to(p, want_p, 1e-9), "pearson with ties %.17g, scipy %.17g", p, want_p);
    ok(close_to(stats_spearman(y, x, nx), s, 1e-15), "spearman is symmetric");

    /* Average ranks: stable, 1-based, ties share the mean of their span. */
    double v[7] = {10, 20, 20, 5, 20, -1, 5};
    double r[7], want_r[7] = {4, 6, 6, 2.5, 6, 1, 2.5};
    stats_rank_average(v, 7, r);
    int same = 1;
    for (int i = 0; i < 7; i++)
        same &= r[i] == want_r[i];
    ok(same, "average ranks %g %g %g %g %g %g %g", r[0], r[1], r[2], r[3], r[4], r[5], r[6]);

    /* Exact linear relations and monotone ones. */
    double a[5] = {1, 2, 3, 4, 5}, b[5] = {3, 5, 7, 9, 11}, c[5] = {1, 8, 27, 64, 125};
    double d[5] = {5, 4, 3, 2, 1};
    ok(close_to(stats_pearson(a, b, 5), 1.0, 1e-15), "pearson of a line is 1");
    ok(close_to(stats_pearson(a, d, 5), -1.0, 1e-15), "pearson of a falling line is -1");
    ok(close_to(stats_spearman(a, c, 5), 1.0, 1e-15), "spearman of a monotone curve is 1");
    ok(stats_pearson(a, c, 5) < 0.99, "pearson of a cubic is below 1 (%g)", stats_pearson(a, c, 5));
    double e[2] = {0.3, 0.7}, f[2] = {2, 1};
    ok(stats_pearson(e, f, 2) == -1.0, "two points: exactly -1");

    /* Large offsets: the centred two-pass sums keep the digits. */
    double big_a[5], big_b[5];
    for (int i = 0; i < 5; i++) {
        big_a[i] = 1e9 + a[i];
        big_b[i] = 1e9 + c[i];
    }
    ok(close_to(stats_pearson(big_a, big_b, 5), stats_pearson(a, c, 5), 1e-12),
       "pearson unchanged by an offset of 1e9");
    double huge_a[3] = {-5e300, 5e300, 1e300}, huge_b[3] = {-1, 1, 0.2};
    ok(close_to(stats_pearson(huge_a, huge_b, 3), 1.0, 1e-15), "no overflow near 1e300");

    /* Undefined correlations are NaN. */
    double k[3] = {0.1, 0.1, 0.1};
    ok(isnan(stats_pearson(k, a, 3)) && isnan(stats_spearman(a, k, 3)), "constant input: NaN");
    ok(isnan(stats_pearson(a, b, 1)) && isnan(stats_spearman(a, b, 0)), "fewer than 2: NaN");
    ok(stats_all_equal(k, 3) && !stats_all_equal(a, 5), "stats_all_equal");

    /* Cosine. */
    float u[3] = {1, 2, 3}, w[3] = {-2, 0.5f, 4}, zero[3] = {0, 0, 0};
    double want_c = (-2 + 1 + 12) / (sqrt(14.0) * sqrt(4 + 0.25 + 16));
    ok(close_to(cosine_f32(u, w, 3), want_c, 1e-15), "cosine %.17g", cosine_f32(u, w, 3));
    ok(close_to(cosine_f32(u, u, 3), 1.0, 1e-15), "cosine of a vector with itself is 1");
    ok(cosine_f32(u, zero, 3) == 0 && cosine_f32(zero, zero, 3) == 0, "zero vector: cosine 0");
    float tiny[3] = {1e-20f, 0, 0};
    ok(close_to(cosine_f32(tiny, u, 3), (double)tiny[0] / 1e-12 / sqrt(14.0), 1e-22),
       "norm below 1e-12 is clamped as torch's normalize does");
    float bad[3] = {1, NAN, 0}, inf[3] = {INFINITY, 0, 0};
    ok(isnan(cosine_f32(bad, u, 3)) && isnan(cosine_f32(u, inf, 3)) &&
           isnan(cosine_f32(inf, zero, 3)),
       "NaN or infinite element: NaN");
    /* 768 dims of float32: the double sums agree with a direct formula. */
    float p1[768], p2[768];
    double dot = 0, n1 = 0, n2 = 0;
    for (int i = 0; i < 768; i++) {
        p1[i] = (float)sin(i * 0.37) * 3.0f;
        p2[i] = (float)cos(i * 0.11) + 0.25f;
        dot += (double)p1[i] * p2[i];
        n1 += (double)p1[i] * p1[i];
        n2 += (double)p2[i] * p2[i];
    }
    ok(close_to(cosine_f32(p1, p2, 768), dot / sqrt(n1 * n2), 1e-14), "768-dim cosine");

    /* Identical vectors: exactly 1, whatever their values, so that pairs
     * whose sentences embed alike tie exactly.  (A product of two square
     * roots, |a| * |a|, misses aa by an ulp for about half of these.) */
    static float v384[384];
    int exact = 0, trials = 2000;
    uint64_t state = 12345;
    for (int t = 0; t < trials; t++) {
        for (int i = 0; i < 384; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            v384[i] = (float)((double)(state >> 11) / 9007199254740992.0 - 0.5) * (1 + t % 7);
        }
        exact += cosine_f32(v384, v384, 384) == 1.0;
    }
    ok(exact == trials, "identical vectors: cosine exactly 1 in %d of %d", exact, trials);
    int ulp_off = 0;
    for (int t = 0; t < trials; t++) {
        double aa = 1 + t * 0.0137;
        ulp_off += sqrt(aa) * sqrt(aa) != aa;
    }
    ok(ulp_off > 0, "the test can fail: sqrt(x) * sqrt(x) != x for %d of %d values", ulp_off, trials);

    free(x);
    free(y);
    free(path);
    json_decref(meta);
    return done_testing();
}
