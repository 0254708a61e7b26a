/* bert.c - the BERT encoder on the CPU (stubs; implementation follows). */
#include "bert.h"
#include "util.h"

#include <stdlib.h>

struct bert_acts {
    int N, B;
    int *start;
    float *dhidden;
};

bert_acts *bert_acts_new(const bert_config *c, int max_sequences, int max_len, int training)
{
    bert_acts *a = xcalloc(1, sizeof *a);
    a->start = xcalloc(max_sequences + 1, sizeof *a->start);
    return a;
}

void bert_acts_free(bert_acts *a)
{
    if (!a)
        return;
    free(a->start);
    free(a->dhidden);
    free(a);
}

void bert_forward(const bert_config *c, const float *params, const int32_t *ids,
                  const int32_t *lens, int B, int T, bert_acts *a, rng_t *dropout)
{
    die("bert_forward: not implemented yet");
}

int bert_acts_tokens(const bert_acts *a) { return a->N; }
int bert_acts_sequences(const bert_acts *a) { return a->B; }
const int *bert_acts_starts(const bert_acts *a) { return a->start; }
const float *bert_hidden(const bert_acts *a, int layer) { return NULL; }
void bert_pool(const bert_acts *a, pooling_mode mode, float *out) { die("bert_pool: not implemented yet"); }
void bert_pool_backward(bert_acts *a, pooling_mode mode, const float *d_pooled)
{
    die("bert_pool_backward: not implemented yet");
}
float *bert_acts_dhidden(bert_acts *a) { return a->dhidden; }
void bert_backward(const bert_config *c, const float *params, float *grads, bert_acts *a)
{
    die("bert_backward: not implemented yet");
}
void l2_normalize(float *out, float *norms, const float *x, int n, int d) { die("l2_normalize: not implemented yet"); }
void l2_normalize_backward(float *dx, const float *dout, const float *out, const float *norms,
                           int n, int d)
{
    die("l2_normalize_backward: not implemented yet");
}
