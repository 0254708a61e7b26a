/* loss.h - the training losses over pooled sentence embeddings, behind one
 * interface: a loss takes the embeddings of a batch (and labels where it has
 * them), its own head parameters where it has them, and returns the loss
 * and the gradients of the embeddings and of its head.
 *
 * A batch has C >= 2 columns of embeddings: column 0 the anchors, column 1
 * the positives, columns 2.. optional hard negatives.  col[c] is a row-major
 * [total_rows, H] block holding the whole batch (every process's rows, when
 * several share one batch); the loss is computed for the rows row_offset ..
 * row_offset + rows - 1 and divided by total_rows, so that the losses of the
 * processes add up to the loss of the batch, and dcol[c] ([total_rows, H],
 * overwritten) receives the gradient of that part with respect to every
 * embedding of the batch (the processes' gradients add up likewise).
 *
 * MultipleNegativesRankingLoss (sentence-transformers):
 *     scores[i][j] = scale * cos(anchor_i, candidate_j),  candidates = the
 *                    positives followed by the negatives, (C-1)*total of them
 *     loss         = mean_i cross_entropy(scores[i], target i)
 * MultipleNegativesSymmetricRankingLoss adds the opposite direction over the
 * positives only (positive j against every anchor, target j) and returns the
 * mean of the two directions (negatives appear in the forward one only).
 * cos is computed as sentence-transformers does: each embedding divided by
 * max(|x|, 1e-12) (torch.nn.functional.normalize), rows dotted; norms, dot
 * products and softmax sums in double, the loss in double, the gradients
 * rounded to float at the end.
 *
 * SoftmaxLoss (sentence-transformers; the SBERT paper's NLI objective) over
 * two columns u (premises) and v (hypotheses) with a class per row:
 *     features = concat(u, v, |u - v| [, u * v])      F = 3H (4H) floats
 *     logits   = W features + bias                    W [3, F], bias [3]
 *     loss     = mean_i cross_entropy(logits_i, label_i)
 * The head (W row-major, then bias) is the loss's own parameters: weight
 * decay on W, not on the bias, as sentence-transformers' trainer groups
 * them.  The embeddings are the model's sentence embeddings: with a
 * Normalize module (normalize) u and v are first divided by max(|x|, 1e-12).
 * d|x|/dx is taken as torch does, 0 at x = 0. */
#ifndef BP_LOSS_H
#define BP_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"

/* sentence-transformers' default scale (temperature 0.05). */
#define MNR_DEFAULT_SCALE 20.0

typedef struct {
    int H;
    int columns;             /* C >= 2 */
    int total_rows;          /* rows of the whole batch in col */
    int row_offset, rows;    /* the rows whose loss is computed here */
    const float *const *col; /* [C] of [total_rows, H] */
    const int32_t *labels;   /* [total_rows] class of each row, for losses with labels */
} loss_batch;

/* sentence-transformers' SoftmaxLoss on NLI: entailment, neutral, contradiction. */
#define SOFTMAX_LABELS 3

typedef struct loss loss;
struct loss {
    const char *name;        /* as logs and checkpoints name it */
    double scale;
    int symmetric;
    int H, multiply, normalize; /* the softmax loss's */
    int needs_labels;        /* loss_batch.labels required, each in [0, SOFTMAX_LABELS) */
    size_t head_size;        /* floats of head parameters (0: none) */
    optim_range head_ranges[2]; /* offsets within the head */
    int n_head_ranges;
    /* Fill head (head_size floats) with the head's initial values drawn
     * from seed; NULL without a head. */
    void (*init_head)(const loss *l, float *head, uint64_t seed);
    /* head, dhead: head_size floats (NULL without a head); dcol NULL for the
     * loss alone; dhead is added to. */
    double (*compute)(const loss *l, const loss_batch *b, const float *head, float *const *dcol,
                      float *dhead);
    /* The same on embeddings in GPU memory, or NULL when the loss has no GPU
     * implementation. */
    double (*compute_gpu)(const loss *l, const loss_batch *b, const float *head,
                          float *const *dcol, float *dhead);
};

/* MultipleNegatives(Symmetric)RankingLoss with the given scale. */
loss loss_mnr(double scale, int symmetric);

/* The --loss option: "mnr" or "softmax"; 0, or -1 for another name. */
typedef enum { LOSS_MNR, LOSS_SOFTMAX } loss_kind;
int loss_kind_parse(const char *s, loss_kind *k);
const char *loss_kind_name(loss_kind k);

/* SoftmaxLoss for H-dimensional embeddings: with multiply the u * v
 * features too; normalize: the model ends with a Normalize module. */
loss loss_softmax(int H, int multiply, int normalize);

/* l's loss of batch b, computed where the embeddings are (on_gpu: in GPU
 * memory, by the loss's GPU implementation). */
double loss_compute(const loss *l, const loss_batch *b, int on_gpu, const float *head,
                    float *const *dcol, float *dhead);

/* The MNR loss of a single-process batch cols[0..C-1] (each [B, H]), as
 * loss_mnr computes it: dcols NULL for the loss alone, else overwritten with
 * the gradients; scores NULL or [B, (C-1)*B] floats receiving scale * cos. */
double mnr_loss_columns(const float *const *cols, int C, int B, int H, double scale,
                        int symmetric, float *const *dcols, float *scores);

/* The same for the usual pairs and triplets: n (negatives) may be NULL for
 * pairs; da and dp NULL for the loss alone, dn may be NULL when n is; scores
 * is [B, B] for pairs, [B, 2B] for triplets, or NULL. */
double mnr_loss(const float *a, const float *p, const float *n, int B, int H, double scale,
                int symmetric, float *da, float *dp, float *dn, float *scores);

#endif
