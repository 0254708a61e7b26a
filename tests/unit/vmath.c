/* vmath.h's exp and erf against libm's double exp and erf: the error bounds
 * the header states, over dense grids, in the baseline build and, where the
 * CPU has them, compiled for AVX2 + FMA and AVX-512 as bert.c's kernels are;
 * and the edges (clamped inputs, infinities, NaN, symmetry).  Its
 * fixed-order sums against the same order written out in scalar code (the
 * same bits), and against long double in every build. */
#include "../tap.h"
#include "vmath.h"

#include <float.h>

typedef struct {
    double exp_rel, erf_abs; /* worst errors */
    float exp_at, erf_at;    /* where */
} errors;

/* Worst errors of exp_approx on [-87, 88] and erf_approx on [-10, 10], n
 * points each; the same source compiled three ways. */
#define ERROR_SCAN(name, attr)                                                   \
    attr static errors name(int n)                                               \
    {                                                                            \
        errors e = {0, 0, 0, 0};                                                 \
        for (int i = 0; i <= n; i++) {                                           \
            float x = -87.0f + 175.0f * (float)i / n;                            \
            double rel = fabs(exp_approx(x) - exp((double)x)) / exp((double)x); \
            if (rel > e.exp_rel) {                                               \
                e.exp_rel = rel;                                                 \
                e.exp_at = x;                                                    \
            }                                                                    \
            x = -10.0f + 20.0f * (float)i / n;                                   \
            double abs_err = fabs(erf_approx(x) - erf((double)x));              \
            if (abs_err > e.erf_abs) {                                           \
                e.erf_abs = abs_err;                                             \
                e.erf_at = x;                                                    \
            }                                                                    \
        }                                                                        \
        return e;                                                                \
    }

ERROR_SCAN(scan_baseline, )
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define X86_CLONES 1 /* as bert.c's MULTIVERSIONED */
ERROR_SCAN(scan_avx2, __attribute__((target("arch=x86-64-v3"))))
ERROR_SCAN(scan_avx512, __attribute__((target("arch=x86-64-v4"))))
#endif

/* The fixed-order sums of x (and y), scalar: lane l sums elements l, l + 8,
 * ..., the lanes added as LANES_TOTAL adds them. */
typedef enum { SUM, DOT, DEVIATIONS } sum_kind;

static double fixed_order_reference(sum_kind kind, const float *x, const float *y, double m,
                                    size_t n)
{
    double lane[8] = {0};
    for (size_t i = 0; i < n; i++) {
        double t = kind == SUM ? x[i] : kind == DOT ? (double)x[i] * y[i] : (x[i] - m) * (x[i] - m);
        lane[i % 8] += t;
    }
    return LANES_TOTAL(lane);
}

/* Largest relative difference of the fixed-order sums from long double over
 * lengths 0 to 40 and 1000, and whether every one equals
 * fixed_order_reference bit for bit. */
#define SUM_SCAN(name, attr)                                                                   \
    attr static double name(const float *x, const float *y, int *exact)                        \
    {                                                                                          \
        double worst = 0;                                                                      \
        *exact = 1;                                                                            \
        for (size_t n = 0; n <= 1000; n = n < 40 ? n + 1 : 1000) {                             \
            long double s = 0, d = 0, v = 0;                                                   \
            for (size_t i = 0; i < n; i++)                                                     \
                s += x[i], d += (long double)x[i] * y[i];                                      \
            double m = n ? (double)(s / n) : 0;                                                \
            for (size_t i = 0; i < n; i++)                                                     \
                v += ((long double)x[i] - m) * ((long double)x[i] - m);                        \
            double got[3] = {sum_fixed(x, n), dot_fixed(x, y, n),                              \
                             squared_deviations_fixed(x, m, n)};                               \
            long double want[3] = {s, d, v};                                                   \
            for (int k = 0; k < 3; k++) {                                                      \
                *exact &= got[k] == fixed_order_reference((sum_kind)k, x, y, m, n);            \
                long double scale = fabsl(want[k]) > 1 ? fabsl(want[k]) : 1;                   \
                double rel = (double)(fabsl(got[k] - want[k]) / scale);                        \
                worst = rel > worst ? rel : worst;                                             \
            }                                                                                  \
            if (n == 1000)                                                                     \
                break;                                                                         \
        }                                                                                      \
        return worst;                                                                          \
    }

SUM_SCAN(sums_baseline, )
#ifdef X86_CLONES
SUM_SCAN(sums_avx2, __attribute__((target("arch=x86-64-v3"))))
SUM_SCAN(sums_avx512, __attribute__((target("arch=x86-64-v4"))))
#endif

static void check_bounds(const char *build, errors e)
{
    ok(e.exp_rel < 2e-7, "%s: exp relative error %.3g (at %.6g), bound 2e-7", build, e.exp_rel,
       e.exp_at);
    ok(e.erf_abs < 6e-7, "%s: erf absolute error %.3g (at %.6g), bound 6e-7", build,
       e.erf_abs, e.erf_at);
}

int main(void)
{
    enum { POINTS = 4000000 };
    check_bounds("baseline", scan_baseline(POINTS));
#ifdef X86_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        check_bounds("x86-64-v3", scan_avx2(POINTS));
    else
        diag("no AVX2 and FMA here: the x86-64-v3 build is not checked");
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        check_bounds("x86-64-v4", scan_avx512(POINTS));
    else
        diag("no AVX-512 here: the x86-64-v4 build is not checked");
#endif

    /* Fixed-order sums: the baseline is the scalar order exactly; with FMA
     * (x86-64-v3 and v4) a product may be fused into its sum, so there only
     * the distance from long double is checked. */
    float x[1000], y[1000];
    for (int i = 0; i < 1000; i++) {
        x[i] = (float)sin(i * 0.7) * (i % 7 + 1);
        y[i] = (float)cos(i * 1.3) / (i % 5 + 1);
    }
    int exact;
    double worst = sums_baseline(x, y, &exact);
    ok(exact, "baseline: fixed-order sums equal the scalar sums in their order, bit for bit");
    ok(worst < 1e-13, "baseline: fixed-order sums within %.3g of long double, bound 1e-13", worst);
#ifdef X86_CLONES
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        worst = sums_avx2(x, y, &exact);
        ok(worst < 1e-13, "x86-64-v3: fixed-order sums within %.3g of long double", worst);
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
        worst = sums_avx512(x, y, &exact);
        ok(worst < 1e-13, "x86-64-v4: fixed-order sums within %.3g of long double", worst);
    }
#endif

    /* exp: clamped below -87 to a tiny positive number, exact at 0. */
    int tiny = 1;
    float below[] = {-87.5f, -88.0f, -100.0f, -1e4f, -FLT_MAX, -INFINITY};
    for (size_t i = 0; i < sizeof below / sizeof *below; i++)
        tiny &= exp_approx(below[i]) >= 0.0f && exp_approx(below[i]) < 2e-38f;
    ok(tiny, "exp of -87.5 ... -inf is in [0, 2e-38)");
    ok(exp_approx(0.0f) == 1.0f, "exp(0) = 1");
    ok(isnan(exp_approx(NAN)), "exp(NaN) is NaN");

    /* erf: odd, saturating, NaN through. */
    int odd = 1;
    for (int i = 0; i <= 10000; i++) {
        float x = 12.0f * (float)i / 10000;
        odd &= erf_approx(-x) == -erf_approx(x);
    }
    ok(odd, "erf(-x) = -erf(x) on [0, 12]");
    ok(erf_approx(INFINITY) == 1.0f && erf_approx(-INFINITY) == -1.0f && erf_approx(20.0f) == 1.0f,
       "erf(+-inf) = +-1, erf(20) = 1");
    ok(isnan(erf_approx(NAN)), "erf(NaN) is NaN");
    return done_testing();
}
