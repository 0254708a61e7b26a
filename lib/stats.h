/* stats.h - the STS evaluation statistics: rank and linear correlation of two
 * score lists, and the cosine similarity of two embeddings.
 *
 * The correlations give what scipy.stats.spearmanr and scipy.stats.pearsonr
 * give (average ranks for ties; NaN where the correlation is undefined), so
 * that numbers from this project and from sentence-transformers' evaluator
 * can be compared digit for digit.  Inputs must not contain NaN. */
#ifndef BP_STATS_H
#define BP_STATS_H

#include <stddef.h>

/* 1 when x[0..n-1] are all equal (or n == 0): no correlation is defined. */
int stats_all_equal(const double *x, size_t n);

/* ranks[i] = 1-based rank of x[i] in ascending order; equal values share the
 * average of the ranks they span (scipy.stats.rankdata, method 'average'). */
void stats_rank_average(const double *x, size_t n, double *ranks);

/* Pearson's r, computed as scipy does: centre each list (two passes, double),
 * scale it to unit length, take the dot product, clip to [-1, 1]; exactly
 * +-1 for n == 2.  NaN when n < 2 or either list is constant. */
double stats_pearson(const double *x, const double *y, size_t n);

/* Spearman's rho: Pearson's r of the average ranks.  NaN as stats_pearson. */
double stats_spearman(const double *x, const double *y, size_t n);

/* Cosine similarity a.b / sqrt(max(|a|^2, 1e-24) * max(|b|^2, 1e-24)), sums
 * accumulated in double.  This is sentence-transformers' pairwise_cos_sim
 * (each side normalised by torch.nn.functional.normalize, eps 1e-12), so a
 * zero vector has cosine 0 with anything, computed so that two identical
 * vectors give exactly 1 (one square root of the product, not a product of
 * two square roots).  NaN when an element is NaN or infinite. */
double cosine_f32(const float *a, const float *b, int dim);

#endif
