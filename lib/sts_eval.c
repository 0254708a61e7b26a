#include "sts_eval.h"
#include "input.h"
#include "stats.h"
#include "util.h"
#include "wordpiece.h"

#include <stdlib.h>
#include <string.h>

void sts_parse_line(char *line, const char *name, long lineno, double *score, char **sentence1,
                    char **sentence2)
{
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r')
        line[len - 1] = 0;
    char *field[7];
    int nf = 0;
    for (char *p = line; nf < 7; nf++) {
        field[nf] = p;
        char *tab = strchr(p, '\t');
        if (!tab) {
            nf++;
            break;
        }
        *tab = 0;
        p = tab + 1;
    }
    if (nf < 7)
        die("%s:%ld: %d tab-separated fields, expected 7 (score in field 5, sentences in 6 and 7)",
            name, lineno, nf);
    if (parse_double(field[4], score) != 0)
        die("%s:%ld: score '%.40s' is not a number", name, lineno, field[4]);
    *sentence1 = field[5];
    *sentence2 = field[6];
}

void sts_read(sts_set *s, const bert_model *m, const char *path)
{
    const bert_config *c = &m->cfg;
    wordpiece *wp = wp_load(m->dir, NULL);
    if (wp_vocab_size(wp) > c->vocab_size)
        die("%s: the tokenizer has %d ids, the model's vocabulary %d", m->dir, wp_vocab_size(wp),
            c->vocab_size);
    int max_len = m->max_seq_length < bert_max_tokens(c) ? m->max_seq_length : bert_max_tokens(c);
    int32_t *ids[2] = {xmallocarray(max_len, sizeof(int32_t)), xmallocarray(max_len, sizeof(int32_t))};
    memset(s, 0, sizeof *s);
    train_data_init(&s->pairs, 2);
    size_t cap = 0;
    input_set in;
    char *name = (char *)path;
    input_init(&in, 1, &name);
    char *line = NULL;
    size_t line_cap = 0;
    while (input_getline(&in, &line, &line_cap) >= 0) {
        double score;
        char *sentence[2];
        sts_parse_line(line, in.name, in.line, &score, &sentence[0], &sentence[1]);
        int32_t n[2];
        for (int k = 0; k < 2; k++) {
            n[k] = wp_encode(wp, sentence[k], strlen(sentence[k]), ids[k], max_len);
            if (n[k] < 0)
                die("%s:%ld: sentence %d is not valid UTF-8", in.name, in.line, k + 1);
        }
        if ((size_t)s->pairs.rows == cap) {
            cap = cap ? 2 * cap : 1024;
            s->gold = xrealloc(s->gold, cap * sizeof *s->gold);
        }
        s->gold[s->pairs.rows] = score;
        train_data_add_row(&s->pairs, (const int32_t *const *)ids, n);
    }
    free(line);
    free(ids[0]);
    free(ids[1]);
    wp_free(wp);
    if (s->pairs.rows < 2)
        die("%s: %lld sentence pairs, at least 2 are needed for a correlation", path,
            (long long)s->pairs.rows);
}

void sts_free(sts_set *s)
{
    train_data_free(&s->pairs);
    free(s->gold);
}

/* Sequences handed to the encoder at once. */
#define STS_CHUNK 1024

double sts_evaluate(encoder *e, const sts_set *s)
{
    const train_data *d = &s->pairs;
    int H = encoder_model(e)->cfg.hidden;
    int64_t nseq = d->rows * 2;
    float *emb = xmallocarray((size_t)nseq * H, sizeof *emb);
    int32_t *ids = xmallocarray((size_t)STS_CHUNK * d->max_len, sizeof *ids);
    int32_t *lens = xmallocarray(STS_CHUNK, sizeof *lens);
    int64_t *seq = xmallocarray(STS_CHUNK, sizeof *seq);
    for (int64_t s0 = 0; s0 < nseq; s0 += STS_CHUNK) {
        int n = nseq - s0 < STS_CHUNK ? (int)(nseq - s0) : STS_CHUNK;
        for (int i = 0; i < n; i++)
            seq[i] = s0 + i;
        int T = train_data_pack(d, seq, n, ids, lens);
        encoder_embed(e, ids, lens, n, T, 0, emb + (size_t)s0 * H);
    }
    double *cos = xmallocarray(d->rows, sizeof *cos);
    for (int64_t i = 0; i < d->rows; i++)
        cos[i] = cosine_f32(emb + (size_t)(2 * i) * H, emb + (size_t)(2 * i + 1) * H, H);
    double rho = stats_spearman(cos, s->gold, d->rows);
    free(cos);
    free(seq);
    free(lens);
    free(ids);
    free(emb);
    return rho;
}
