/* sts_eval.h - evaluation on an STS benchmark file during training: the
 * Spearman correlation of the cosines of sentence pairs with their gold
 * scores, as sentence-transformers' EmbeddingSimilarityEvaluator reports it. */
#ifndef BP_STS_EVAL_H
#define BP_STS_EVAL_H

#include "encoder.h"
#include "model.h"
#include "sampler.h"

typedef struct {
    train_data pairs; /* two columns of token sequences */
    double *gold;     /* [pairs.rows] */
} sts_set;

/* An STS benchmark file (tab-separated: score in field 5, the sentences in
 * fields 6 and 7, further fields ignored), tokenized with m's tokenizer up
 * to its max_seq_length.  Errors name the file and line. */
void sts_read(sts_set *s, const bert_model *m, const char *path);
void sts_free(sts_set *s);

/* One line of such a file, split in place (a trailing \r dropped): the gold
 * score and the two sentences.  Dies naming name:lineno on fewer than 7
 * fields or a score that is not a number. */
void sts_parse_line(char *line, const char *name, long lineno, double *score, char **sentence1,
                    char **sentence2);

/* Spearman correlation of the embeddings' cosines (e's current weights, no
 * dropout) with the gold scores. */
double sts_evaluate(encoder *e, const sts_set *s);

#endif
