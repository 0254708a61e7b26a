/* Dropout masks (dropout.h): the share kept is 1 - p; every key word
 * changes the mask; and the encoder's vectorised kernels (bert.c) apply
 * exactly the masks of dropout_keep, the plain function the CUDA kernels
 * share, at every site it is easy to observe: the embedding output. */
#include "../tap.h"
#include "bert_fixture.h"
#include "dropout.h"

#include <math.h>
#include <string.h>

/* Share of n elements kept under key. */
static double kept(uint64_t key, size_t n, float p)
{
    uint32_t threshold = dropout_threshold(p);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += dropout_keep(key, i, threshold);
    return (double)k / n;
}

/* Elements of n on which the masks of two keys agree, as a share. */
static double agreement(uint64_t a, uint64_t b, size_t n)
{
    uint32_t threshold = dropout_threshold(0.5f);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += dropout_keep(a, i, threshold) == dropout_keep(b, i, threshold);
    return (double)same / n;
}

static void check_statistics(void)
{
    enum { N = 1 << 20 };
    for (int i = 0; i < 3; i++) {
        float p = (float[]){0.1f, 0.5f, 0.9f}[i];
        double share = kept(dropout_key(42, 1, 0, 0, 0, DROP_EMBEDDINGS), N, p);
        double sigma = sqrt(p * (1 - p) / N);
        ok(fabs(share - (1 - p)) <= 5 * sigma, "p %.1f: %.5f of %d elements kept", p, share, N);
    }
    ok(kept(dropout_key(1, 1, 1, 1, 1, 1), 4096, 0) == 1, "p 0 keeps everything");
    uint64_t base = dropout_key(42, 7, 3, 1, 2, DROP_FFN_OUT);
    uint64_t other[] = {dropout_key(43, 7, 3, 1, 2, DROP_FFN_OUT),
                        dropout_key(42, 8, 3, 1, 2, DROP_FFN_OUT),
                        dropout_key(42, 7, 4, 1, 2, DROP_FFN_OUT),
                        dropout_key(42, 7, 3, 0, 2, DROP_FFN_OUT),
                        dropout_key(42, 7, 3, 1, 3, DROP_FFN_OUT),
                        dropout_key(42, 7, 3, 1, 2, DROP_ATTENTION_OUT)};
    static const char *word[] = {"seed", "step", "row", "column", "layer", "site"};
    for (int i = 0; i < 6; i++) {
        double a = agreement(base, other[i], 1 << 16);
        ok(fabs(a - 0.5) < 0.02, "another %s: masks agree on %.4f of the elements (independent: "
           "0.5)", word[i], a);
    }
    ok(agreement(base, dropout_key(42, 7, 3, 1, 2, DROP_FFN_OUT), 1 << 16) == 1,
       "the same key: the same mask");
}

/* The embedding output with dropout p (hidden only) against the plain
 * function applied to the output without dropout. */
static void check_encoder_masks(void)
{
    char *dir = fixture_path("tiny", "model");
    bert_model m;
    model_load(&m, dir);
    bert_config c = m.cfg;
    c.hidden_dropout = 0.5f;
    char *ref = fixture_path("tiny", "reference.safetensors");
    safetensors st;
    st_open(&st, ref);
    ref_column col = ref_column_read(&st, "anchor");
    int B = col.B, H = c.hidden;
    int32_t *rows = xmallocarray(B, sizeof *rows), *cols = xmallocarray(B, sizeof *cols);
    for (int b = 0; b < B; b++) {
        rows[b] = 10 + b;
        cols[b] = 2;
    }
    dropout_keys keys = {.seed = 5, .step = 9, .row = rows, .column = cols};
    bert_acts *plain = bert_acts_new(&c, B, col.T, 1), *dropped = bert_acts_new(&c, B, col.T, 1);
    bert_forward(&c, m.params, col.ids, col.lens, B, col.T, plain, NULL);
    bert_forward(&c, m.params, col.ids, col.lens, B, col.T, dropped, &keys);
    const float *x = bert_hidden(plain, 0), *y = bert_hidden(dropped, 0);
    const int *start = bert_acts_starts(plain);
    uint32_t threshold = dropout_threshold(c.hidden_dropout);
    size_t wrong = 0, dropped_count = 0, n = 0;
    for (int b = 0; b < B; b++) {
        uint64_t key = dropout_key(5, 9, rows[b], cols[b], 0, DROP_EMBEDDINGS);
        for (int t = 0; t < start[b + 1] - start[b]; t++)
            for (int j = 0; j < H; j++, n++) {
                size_t r = (size_t)(start[b] + t) * H + j;
                int k = dropout_keep(key, (uint64_t)t * H + j, threshold);
                float want = k ? x[r] * (1.0f / (1.0f - c.hidden_dropout)) : 0.0f;
                wrong += y[r] != want;
                dropped_count += !k;
            }
    }
    ok(wrong == 0 && dropped_count > n / 3 && dropped_count < 2 * n / 3,
       "bert_forward's embedding dropout is dropout_keep's mask: %zu of %zu elements differ, %zu "
       "dropped", wrong, n, dropped_count);
    bert_acts_free(plain);
    bert_acts_free(dropped);
    ref_column_free(&col);
    st_close(&st);
    free(rows);
    free(cols);
    free(ref);
    free(dir);
    model_free(&m);
}

int main(void)
{
    util_init("test-dropout");
    check_statistics();
    check_encoder_masks();
    return done_testing();
}
