/* vmath.h's exp and erf against libm's double exp and erf: the error bounds
 * the header states, over dense grids, in the baseline build and, where the
 * CPU has them, compiled for AVX2 + FMA and AVX-512 as bert.c's kernels are;
 * and the edges (clamped inputs, infinities, NaN, symmetry). */
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
