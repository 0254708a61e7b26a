/* loss.h - sentence-transformers' MultipleNegativesRankingLoss and
 * MultipleNegativesSymmetricRankingLoss over pooled sentence embeddings, with
 * the gradient with respect to every embedding.
 *
 * A batch has B rows and C >= 2 columns: column 0 holds the anchors, column 1
 * the positives, columns 2.. optional hard negatives.  Each column is a
 * row-major [B, H] float block.  The candidates are the positives followed by
 * the negatives (C-1)*B of them, and
 *
 *     scores[i][j] = scale * cos(anchor_i, candidate_j)         [B, (C-1)*B]
 *     forward      = mean_i cross_entropy(scores[i], target i)
 *
 * The symmetric loss adds the opposite direction over the positives only:
 * backward = mean_j cross_entropy(positive_j -> all anchors, target j) over the
 * transposed [B, B] positive block, and returns (forward + backward) / 2 (the
 * negatives appear in the forward direction only, as in sentence-transformers).
 *
 * cos is computed as sentence-transformers does: each embedding is divided
 * by max(|x|, 1e-12) (torch.nn.functional.normalize) and the rows are dotted.
 * Norms, dot products and softmax sums are accumulated in double; the loss is
 * returned in double and the gradients are rounded to float at the end. */
#ifndef BP_LOSS_H
#define BP_LOSS_H

/* sentence-transformers' default scale (temperature 0.05). */
#define MNR_DEFAULT_SCALE 20.0

/* The loss for the batch in cols[0..C-1] (each [B, H]).
 * dcols:  NULL for the loss alone; otherwise dcols[c] (each [B, H]) receives
 *         d loss / d cols[c] for every column c (overwritten, not added to).
 * scores: NULL, or [B, (C-1)*B] floats receiving scale * cos (the logits of
 *         the forward direction).
 * symmetric: 0 MultipleNegativesRankingLoss, 1 the symmetric variant.
 * C < 2 or an empty batch is a programming error (fatal). */
double mnr_loss_columns(const float *const *cols, int C, int B, int H, double scale,
                        int symmetric, float *const *dcols, float *scores);

/* The same for the usual pairs and triplets: n (negatives) may be NULL for
 * pairs; da and dp NULL for the loss alone, dn may be NULL when n is; scores
 * is [B, B] for pairs, [B, 2B] for triplets, or NULL. */
double mnr_loss(const float *a, const float *p, const float *n, int B, int H, double scale,
                int symmetric, float *da, float *dp, float *dn, float *scores);

#endif
