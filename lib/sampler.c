#include "sampler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "npy.h"
#include "rng.h"
#include "util.h"

void train_data_init(train_data *d, int columns)
{
    memset(d, 0, sizeof *d);
    d->columns = columns;
}

void train_data_free(train_data *d)
{
    free(d->tokens);
    free(d->start);
    free(d->len);
    free(d->text);
    free(d->table);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

static uint64_t seq_hash(const int32_t *ids, int32_t n)
{
    return fnv1a(FNV_OFFSET, ids, (size_t)n * sizeof *ids);
}

static int same_seq(const train_data *d, int64_t a, int64_t b)
{
    return d->len[a] == d->len[b] &&
           !memcmp(d->tokens + d->start[a], d->tokens + d->start[b], d->len[a] * sizeof(int32_t));
}

/* Slot of sequence s's text in the table: the slot holding an equal
 * sequence, or the empty slot where it goes. */
static int64_t table_slot(const train_data *d, int64_t s)
{
    uint64_t mask = (uint64_t)d->table_size - 1;
    uint64_t i = seq_hash(d->tokens + d->start[s], d->len[s]) & mask;
    while (d->table[i] >= 0 && !same_seq(d, d->table[i], s))
        i = (i + 1) & mask;
    return (int64_t)i;
}

/* The table holds the first sequence of each text; kept at most half full. */
static void table_grow(train_data *d)
{
    int32_t *old = d->table;
    int64_t old_size = d->table_size;
    d->table_size = old_size ? 2 * old_size : 1024;
    d->table = xmallocarray(d->table_size, sizeof *d->table);
    for (int64_t i = 0; i < d->table_size; i++)
        d->table[i] = -1;
    for (int64_t i = 0; i < old_size; i++)
        if (old[i] >= 0)
            d->table[table_slot(d, old[i])] = old[i];
    free(old);
}

void train_data_add_row(train_data *d, const int32_t *const *seqs, const int32_t *lens)
{
    int C = d->columns;
    int64_t nseq = d->rows * C;
    if (nseq + C > INT32_MAX)
        die("too many sequences (at most %d)", INT32_MAX);
    if (nseq + C > d->cap_seqs) {
        d->cap_seqs = d->cap_seqs ? 2 * d->cap_seqs : 1024;
        d->start = xrealloc(d->start, d->cap_seqs * sizeof *d->start);
        d->len = xrealloc(d->len, d->cap_seqs * sizeof *d->len);
        d->text = xrealloc(d->text, d->cap_seqs * sizeof *d->text);
    }
    for (int c = 0; c < C; c++) {
        if (d->ntokens + lens[c] > d->cap_tokens) {
            while (d->ntokens + lens[c] > d->cap_tokens)
                d->cap_tokens = d->cap_tokens ? 2 * d->cap_tokens : 65536;
            d->tokens = xrealloc(d->tokens, d->cap_tokens * sizeof *d->tokens);
        }
        int64_t s = nseq + c;
        memcpy(d->tokens + d->ntokens, seqs[c], lens[c] * sizeof(int32_t));
        d->start[s] = d->ntokens;
        d->len[s] = lens[c];
        d->ntokens += lens[c];
        if (lens[c] > d->max_len)
            d->max_len = lens[c];

        if (2 * (d->texts + 1) > d->table_size)
            table_grow(d);
        int64_t slot = table_slot(d, s);
        if (d->table[slot] < 0) {
            d->table[slot] = (int32_t)s;
            d->text[s] = d->texts++;
        } else {
            d->text[s] = d->text[d->table[slot]];
        }
    }
    d->rows++;
}

uint64_t train_data_fingerprint(const train_data *d)
{
    int64_t shape[2] = {d->rows, d->columns};
    uint64_t h = fnv1a(FNV_OFFSET, shape, sizeof shape);
    h = fnv1a(h, d->len, (size_t)(d->rows * d->columns) * sizeof *d->len);
    h = fnv1a(h, d->tokens, (size_t)d->ntokens * sizeof *d->tokens);
    /* Without labels the digest is what it was before labels existed, so
     * that older checkpoints still match their input. */
    return d->labels ? fnv1a(h, d->labels, (size_t)d->rows * sizeof *d->labels) : h;
}

void epoch_order(int64_t *order, int64_t n, uint64_t seed, long epoch, int shuffle)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    if (!shuffle)
        return;
    rng_t r;
    rng_seed(&r, seed + (uint64_t)epoch);
    rng_shuffle(&r, order, n);
}

void sampler_plan(const train_data *d, const int64_t *order, int batch_size, int drop_last,
                  batch_plan *p)
{
    int64_t n = d->rows;
    int C = d->columns;
    p->rows = xmallocarray(n ? n : 1, sizeof *p->rows);
    p->start = xmallocarray(n + 1, sizeof *p->start);
    p->batches = 0;
    p->start[0] = 0;
    /* The positions of order not yet used, as a singly linked list (as
     * sentence-transformers keeps them), so that a skipped row keeps its
     * place; in_batch[text] holds the number of the batch holding it. */
    int64_t *next = xmallocarray(n ? n : 1, sizeof *next);
    for (int64_t i = 0; i < n; i++)
        next[i] = i + 1 < n ? i + 1 : -1;
    int64_t *in_batch = xmallocarray(d->texts ? d->texts : 1, sizeof *in_batch);
    for (int32_t t = 0; t < d->texts; t++)
        in_batch[t] = -1;

    int64_t head = n ? 0 : -1, used = 0, filling = 0;
    while (head != -1) {
        int64_t first = used, prev = -1, cur = head;
        int full = 0;
        filling++;
        while (cur != -1) {
            int64_t after = next[cur], row = order[cur];
            const int32_t *texts = d->text + row * C;
            int clash = 0;
            for (int c = 0; c < C && !clash; c++)
                clash = in_batch[texts[c]] == filling;
            if (clash) {
                prev = cur;
                cur = after;
                continue;
            }
            p->rows[used++] = row;
            if (prev == -1)
                head = after;
            else
                next[prev] = after;
            if (used - first == batch_size) {
                full = 1;
                break;
            }
            for (int c = 0; c < C; c++)
                in_batch[texts[c]] = filling;
            cur = after;
        }
        if (full || !drop_last)
            p->start[++p->batches] = used;
        else
            used = first; /* a partial batch dropped: its rows are used up */
    }
    free(next);
    free(in_batch);
}

static const char *const sampler_names[] = {"no-duplicates", "plain", NULL}; /* as sampler_kind */

int sampler_parse(const char *s, sampler_kind *k)
{
    int i = parse_choice(s, sampler_names);
    if (i >= 0)
        *k = (sampler_kind)i;
    return i < 0 ? -1 : 0;
}

const char *sampler_name(sampler_kind k)
{
    return sampler_names[k];
}

void sampler_plan_kind(const train_data *d, const int64_t *order, int batch_size, int drop_last,
                       sampler_kind kind, batch_plan *p)
{
    if (kind == SAMPLER_NO_DUPLICATES) {
        sampler_plan(d, order, batch_size, drop_last, p);
        return;
    }
    int64_t n = d->rows;
    p->rows = xmallocarray(n ? n : 1, sizeof *p->rows);
    p->start = xmallocarray(n / batch_size + 2, sizeof *p->start);
    p->batches = 0;
    p->start[0] = 0;
    for (int64_t i = 0; i < n; i += batch_size) {
        int64_t end = i + batch_size < n ? i + batch_size : n;
        if (end - i < batch_size && drop_last)
            break;
        for (int64_t j = i; j < end; j++)
            p->rows[j] = order[j];
        p->start[++p->batches] = end;
    }
}

void train_data_read_labels(train_data *d, const char *path, int nlabels)
{
    input_set in;
    char *name = (char *)path;
    input_init(&in, 1, &name);
    d->labels = xmallocarray(d->rows ? d->rows : 1, sizeof *d->labels);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t row = 0;
    while ((n = input_getline(&in, &line, &cap)) >= 0) {
        if (n && line[n - 1] == '\r')
            line[--n] = 0;
        /* "1\0junk" must not read as 1 */
        long v;
        if (memchr(line, 0, (size_t)n) || parse_long(line, 0, nlabels - 1, &v) != 0)
            die("%s:%ld: '%.40s' is not a label from 0 to %d", in.name, in.line, line,
                nlabels - 1);
        if (row == d->rows)
            die("%s:%ld: more labels than the %lld training rows", in.name, in.line,
                (long long)d->rows);
        d->labels[row++] = (int32_t)v;
    }
    free(line);
    if (row != d->rows)
        die("%s:%lld: %lld labels for %lld training rows", path, (long long)row + 1,
            (long long)row, (long long)d->rows);
}

void batch_plan_free(batch_plan *p)
{
    free(p->rows);
    free(p->start);
    memset(p, 0, sizeof *p);
}

int train_data_pack(const train_data *d, const int64_t *seq, int n, int32_t *ids, int32_t *lens)
{
    int T = 1;
    for (int i = 0; i < n; i++)
        if (d->len[seq[i]] > T)
            T = d->len[seq[i]];
    for (int i = 0; i < n; i++) {
        int32_t *row = ids + (size_t)i * T;
        lens[i] = d->len[seq[i]];
        memcpy(row, d->tokens + d->start[seq[i]], lens[i] * sizeof *row);
        for (int t = lens[i]; t < T; t++)
            row[t] = -1;
    }
    return T;
}

/* Keep the first max_length - 1 ids and the last one (the [SEP]). */
static int32_t truncate_seq(int32_t *ids, int32_t len, long max_length)
{
    if (max_length <= 0 || len <= max_length)
        return len;
    ids[max_length - 1] = ids[len - 1];
    return (int32_t)max_length;
}

void train_data_read(train_data *d, int nfiles, char **files, int min_columns, long max_length,
                     int max_tokens, int vocab_size)
{
    npy_reader r;
    npy_reader_init(&r, nfiles, files);
    npy_array a = {0};
    int32_t *lens = NULL;
    const int32_t **seqs = NULL;
    size_t lens_cap = 0;
    int columns = 0;
    train_data_init(d, 0);
    while (npy_read(&r, &a, NPY_I4)) {
        int64_t rows = a.shape[0], C = a.shape[1], T = a.shape[2];
        if (C < min_columns)
            npy_frame_error(&r, "%lld column%s: training needs at least %d (anchor, positive)", (long long)C,
                            C == 1 ? "" : "s", min_columns);
        if (columns && C != columns)
            npy_frame_error(&r, "%lld columns, the frames before have %d", (long long)C, columns);
        if (!columns) {
            if (C > TRAIN_MAX_COLUMNS)
                npy_frame_error(&r, "%lld columns, more than %d", (long long)C,
                                TRAIN_MAX_COLUMNS);
            columns = (int)C;
            train_data_init(d, columns);
            seqs = xmallocarray(columns, sizeof *seqs);
        }
        if ((size_t)(rows * C) > lens_cap) {
            lens_cap = rows * C;
            lens = xrealloc(lens, lens_cap * sizeof *lens);
        }
        tokens_check(&r, &a, vocab_size, lens);
        int32_t *ids = a.data;
        for (int64_t i = 0; i < rows; i++) {
            for (int c = 0; c < C; c++) {
                int32_t *q = ids + (i * C + c) * T, *n = &lens[i * C + c];
                if (*n == 0)
                    npy_frame_error(&r, "row %lld column %d is empty", (long long)i, c);
                *n = truncate_seq(q, *n, max_length);
                if (*n > max_tokens)
                    npy_frame_error(&r, "row %lld column %d: %d tokens, more than the model's %d "
                                    "positions (see --max-length)", (long long)i, c, *n,
                                    max_tokens);
                seqs[c] = q;
            }
            train_data_add_row(d, seqs, lens + i * C);
        }
    }
    npy_free(&a);
    free(lens);
    free(seqs);
    if (!columns || d->rows == 0)
        die("%s: no training rows", nfiles ? files[0] : "stdin");
}
