/* vmath.h - for loops the compiler vectorises: a marker that builds a
 * function for several instruction sets, and exp and erf (libm's expf and
 * erff are a function call per element). */
#ifndef BP_VMATH_H
#define BP_VMATH_H

#include <math.h>
#include <stdint.h>

/* A function compiled for AVX-512 and AVX2 beside the baseline, the dynamic
 * loader picking the best version the CPU runs (GCC's target_clones).  Put
 * the loop itself in it: an OpenMP parallel region inside would be outlined
 * into a function without the clone's instruction set. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSIONED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MULTIVERSIONED
#endif

/* Sums in double, in a fixed order: eight partial sums, lane l taking
 * elements l, l + 8, l + 16, ..., added pairwise at the end.  A reduction
 * clause would let the compiler choose the order, which then differs with
 * the vector width and between builds (-O1, a sanitizer's); these give the
 * same bits in every build.  GCC's vector types are elementwise, lowered to
 * what the target has; always_inline compiles them into the caller's
 * instruction set. */
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x8 __attribute__((vector_size(64)));
typedef double f64x16 __attribute__((vector_size(128)));

/* x[0..7] into lo and x[8..15] into hi, in double.  Sixteen at a time:
 * GCC 12 converts 8 floats as two conversions of 4 and two shuffles, 16 as
 * one conversion per 8 and one shuffle. */
#define LOAD_F64X8_PAIR(lo, hi, x)                                                               \
    do {                                                                                         \
        f32x16 f_;                                                                               \
        __builtin_memcpy(&f_, (x), sizeof f_);                                                   \
        f64x16 w_ = __builtin_convertvector(f_, f64x16);                                         \
        __builtin_memcpy(&(lo), &w_, sizeof(lo));                                                \
        __builtin_memcpy(&(hi), (const char *)&w_ + sizeof(lo), sizeof(hi));                     \
    } while (0)
#define LANES_TOTAL(s) ((((s)[0] + (s)[4]) + ((s)[2] + (s)[6])) + (((s)[1] + (s)[5]) + ((s)[3] + (s)[7])))

/* The loops below take 16 elements at a time, then the rest one by one:
 * the same lanes in the same order as 8 at a time. */

/* x[0] + ... + x[n-1] */
__attribute__((always_inline)) static inline double sum_fixed(const float *x, size_t n)
{
    f64x8 s = {0}, lo, hi;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        LOAD_F64X8_PAIR(lo, hi, x + i);
        s += lo;
        s += hi;
    }
    for (; i < n; i++)
        s[i % 8] += x[i];
    return LANES_TOTAL(s);
}

/* a[0] b[0] + ... + a[n-1] b[n-1], each product in double */
__attribute__((always_inline)) static inline double dot_fixed(const float *a, const float *b,
                                                              size_t n)
{
    f64x8 s = {0}, alo, ahi, blo, bhi;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        LOAD_F64X8_PAIR(alo, ahi, a + i);
        LOAD_F64X8_PAIR(blo, bhi, b + i);
        s += alo * blo;
        s += ahi * bhi;
    }
    for (; i < n; i++)
        s[i % 8] += (double)a[i] * b[i];
    return LANES_TOTAL(s);
}

/* (x[0] - m)^2 + ... + (x[n-1] - m)^2 */
__attribute__((always_inline)) static inline double squared_deviations_fixed(const float *x,
                                                                             double m, size_t n)
{
    f64x8 s = {0}, lo, hi;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        LOAD_F64X8_PAIR(lo, hi, x + i);
        lo -= m;
        hi -= m;
        s += lo * lo;
        s += hi * hi;
    }
    for (; i < n; i++)
        s[i % 8] += (x[i] - m) * (x[i] - m);
    return LANES_TOTAL(s);
}

/* exp_approx and erf_approx are static inline, so that they are compiled
 * into each caller's instruction set.  Build with -fno-trapping-math, which
 * lets GCC if-convert the clamps. */

/* e^x with a relative error below 2e-7 (Cephes' expf polynomial), for x
 * in [-87, 88] or NaN (NaN stays NaN). */
static inline float exp_in_range(float x)
{
    /* x = n ln 2 + r, |r| <= ln 2 / 2; ln 2 in two parts keeps r exact. */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* NaN has no integer: take n = 0 for it (p is NaN already), so that the
     * conversion and the shift stay defined; finite n are in [-126, 127]. */
    n = n == n ? n : 0.0f;
    union { float f; int32_t i; } u = {.f = p};
    u.i += (int32_t)n * (1 << 23); /* times 2^n: n added to the exponent */
    return u.f;
}

/* e^x, inputs clamped to [-87, 88]: below, the result is a float under
 * 2e-38 (not 0); the softmax and GELU feed it nothing above 0. */
static inline float exp_approx(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    return exp_in_range(x);
}

/* exp_approx for x <= 0 (or NaN), as the softmax has it: the same result,
 * one clamp less. */
static inline float exp_nonpositive(float x)
{
    return exp_in_range(x < -87.0f ? -87.0f : x);
}

/* erf(x) by Abramowitz and Stegun 7.1.26, the formula PyTorch's vectorised
 * CPU GELU uses too: absolute error 1.5e-7 in exact arithmetic, below 6e-7
 * in float (rounding in 1 - y e^(-x^2) near 0, where GELU multiplies it by
 * x / 2).  Odd, erf(+-inf) = +-1, NaN stays NaN. */
static inline float erf_approx(float x)
{
    float ax = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
               0.254829592f) * t;
    return copysignf(1.0f - y * exp_approx(-ax * ax), x);
}

#endif
