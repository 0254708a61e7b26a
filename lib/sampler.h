/* sampler.h - the data side of training: the training rows held in memory,
 * which of their sequences are the same text, and the batch sampler.
 *
 * Batches are filled as sentence-transformers' NoDuplicatesBatchSampler
 * (BatchSamplers.NO_DUPLICATES) fills them, so that no text appears twice in
 * a batch (a duplicate would be a false in-batch negative):
 *   - rows are taken in the epoch's order (a seeded shuffle, or input order);
 *   - a row sharing a text with the batch being filled (any of its columns
 *     against any column of the rows already in it) is skipped; it keeps its
 *     place in the order and is tried first for the next batch;
 *   - a batch that cannot be filled from the rows left is yielded as it is,
 *     or dropped with drop_last (its rows are then used up all the same).
 * A "text" is a token sequence (as the model sees it, i.e. after truncation):
 * two rows hold the same text when their token ids are equal.
 *
 * The plain sampler (BatchSamplers.BATCH_SAMPLER, sentence-transformers'
 * default, and a shuffled torch DataLoader's) cuts the epoch's order into
 * consecutive batches whatever they hold. */
#ifndef BP_SAMPLER_H
#define BP_SAMPLER_H

#include <stdint.h>

/* The most columns a training input may have (anchor, positive and up to
 * 254 negatives): a bound for every per-column buffer. */
#define TRAIN_MAX_COLUMNS 256

/* Rows of C token sequences each, back to back in one buffer. */
typedef struct {
    int columns;       /* C */
    int64_t rows;
    int32_t *tokens;   /* every sequence's ids, one after the other */
    int64_t *start;    /* sequence s = row * C + column starts at tokens + start[s] */
    int32_t *len;      /* and has len[s] ids */
    int32_t *text;     /* text id of each sequence: equal sequences share one */
    int32_t texts;     /* number of distinct texts */
    int max_len;       /* longest sequence */
    int32_t *labels;   /* [rows] class of each row (train_data_read_labels), or NULL */
    /* private: the text table (open addressing over first occurrences) */
    int64_t ntokens, cap_tokens, cap_seqs;
    int32_t *table;
    int64_t table_size;
} train_data;

void train_data_init(train_data *d, int columns);
void train_data_free(train_data *d);
/* Append one row: seqs[c][0..lens[c]) for each column c. */
void train_data_add_row(train_data *d, const int32_t *const *seqs, const int32_t *lens);

/* Pack sequences seq[0..n) of d into ids[n, T] (-1 padding) and lens[n],
 * T being the longest of them; returns T.  ids holds n * d->max_len. */
int train_data_pack(const train_data *d, const int64_t *seq, int n, int32_t *ids, int32_t *lens);

/* Read token frames (<i4, (rows, columns, length), -1 padding) from files
 * (none: standard input) into d, which this initialises: every frame must
 * have the same number of columns, at least min_columns; a sequence longer
 * than max_length keeps its first max_length - 1 ids and its last one (as
 * wp-tokenize --max-length does; max_length 0: no truncation) and must then
 * fit max_tokens; ids must be below vocab_size.  Bad input and an empty
 * input are errors naming the frame and byte, or the file. */
void train_data_read(train_data *d, int nfiles, char **files, int min_columns, long max_length,
                     int max_tokens, int vocab_size);

/* Labels for d's rows from path: one integer a line, 0 to nlabels - 1, as
 * many lines as rows (nli-filter --labels | cut -f3 writes them).  Errors
 * name the file and line. */
void train_data_read_labels(train_data *d, const char *path, int nlabels);

/* The batches of one epoch: batch b is rows[start[b] .. start[b+1]). */
typedef struct {
    int64_t *rows;
    int64_t *start;
    int64_t batches;
} batch_plan;

/* The sampling order of epoch e (0-based) for n rows: 0 .. n-1 when !shuffle,
 * else a Fisher-Yates shuffle by a generator seeded from seed and e only (so
 * that a resumed run finds the same order without any saved state). */
void epoch_order(int64_t *order, int64_t n, uint64_t seed, long epoch, int shuffle);

/* Fill the batches of an epoch from the rows of d taken in order[0..rows). */
void sampler_plan(const train_data *d, const int64_t *order, int batch_size, int drop_last,
                  batch_plan *p);
void batch_plan_free(batch_plan *p);

typedef enum { SAMPLER_NO_DUPLICATES, SAMPLER_PLAIN } sampler_kind;
/* The --sampler option: "no-duplicates" or "plain"; 0, or -1 for another name. */
int sampler_parse(const char *s, sampler_kind *k);
const char *sampler_name(sampler_kind k);
/* The batches of an epoch as kind fills them (NO_DUPLICATES: sampler_plan). */
void sampler_plan_kind(const train_data *d, const int64_t *order, int batch_size, int drop_last,
                       sampler_kind kind, batch_plan *p);

/* 64-bit FNV-1a digest of the rows (shape, every id, and the labels when
 * there are any): a resumed run checks
 * that it is given the same input. */
uint64_t train_data_fingerprint(const train_data *d);

#endif
