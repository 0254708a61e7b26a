#include "bert.h"

#include <stdio.h>
#include <string.h>

const int bert_matrix_kinds[BERT_MATRIX_KINDS] = {P_QKV_W, P_ATTN_OUT_W, P_FFN_IN_W, P_FFN_OUT_W};

void bert_param_sizes(const bert_config *c, size_t s[P_COUNT])
{
    size_t H = c->hidden, L = c->layers, I = c->intermediate;
    s[P_WORD_EMB] = (size_t)c->vocab_size * H;
    s[P_POS_EMB] = (size_t)c->max_positions * H;
    s[P_TYPE_EMB] = (size_t)c->type_vocab * H;
    s[P_EMB_LN_W] = s[P_EMB_LN_B] = H;
    s[P_QKV_W] = L * 3 * H * H;
    s[P_QKV_B] = L * 3 * H;
    s[P_ATTN_OUT_W] = L * H * H;
    s[P_ATTN_OUT_B] = L * H;
    s[P_ATTN_LN_W] = s[P_ATTN_LN_B] = L * H;
    s[P_FFN_IN_W] = L * I * H;
    s[P_FFN_IN_B] = L * I;
    s[P_FFN_OUT_W] = L * H * I;
    s[P_FFN_OUT_B] = L * H;
    s[P_FFN_LN_W] = s[P_FFN_LN_B] = L * H;
    s[P_REL_BIAS] = (size_t)c->rel_buckets * c->heads;
    s[P_POOLER_W] = H * H;
    s[P_POOLER_B] = H;
}

int bert_pad_position(const bert_config *c)
{
    return c->arch == ARCH_MPNET ? c->pos_pad : -1;
}

int bert_max_tokens(const bert_config *c)
{
    int pad = bert_pad_position(c);
    return pad < 0 ? c->max_positions : c->max_positions - pad - 1;
}

int bert_rel_bucket(int rel)
{
    /* n = i - j; the far half of the 16 buckets of each direction is
     * logarithmic, 8 + floor(log(n / 8) / log(16) * 8) below distance 128:
     * it first reaches 9, 10, ... 15 at these n (8 * 2^(k/2) rounded up; the
     * tests compare with transformers' bucket table). */
    static const int starts[8] = {8, 12, 16, 23, 32, 46, 64, 91};
    int n = -rel, ret = n < 0 ? 16 : 0;
    n = n < 0 ? -n : n;
    if (n < 8)
        return ret + n;
    int k = 7;
    while (n < starts[k])
        k--;
    return ret + 8 + k;
}

size_t bert_param_offsets(const bert_config *c, size_t off[P_COUNT + 1])
{
    size_t s[P_COUNT];
    bert_param_sizes(c, s);
    off[0] = 0;
    for (int i = 0; i < P_COUNT; i++)
        off[i + 1] = off[i] + s[i];
    return off[P_COUNT];
}

static int add(bert_tensor *out, int n, const char *name, size_t offset, int64_t d0, int64_t d1)
{
    if (out) {
        bert_tensor *t = &out[n];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->offset = offset;
        t->ndim = d1 ? 2 : 1;
        t->shape[0] = d0;
        t->shape[1] = d1;
        t->numel = d0 * (d1 ? d1 : 1);
        t->decay = !strstr(name, "LayerNorm") && !strstr(name, "bias");
        t->trainable = strncmp(name, "pooler.", 7) != 0;
    }
    return n + 1;
}

/* Hugging Face's names of one layer's tensors, per architecture. */
typedef struct {
    const char *qkv[3], *attn_out, *attn_ln;
} layer_names;

static const layer_names bert_layer = {{"attention.self.query", "attention.self.key", "attention.self.value"},
                                       "attention.output.dense", "attention.output.LayerNorm"};
static const layer_names mpnet_layer = {{"attention.attn.q", "attention.attn.k", "attention.attn.v"},
                                        "attention.attn.o", "attention.LayerNorm"};

int bert_tensors(const bert_config *c, bert_tensor *out)
{
    size_t off[P_COUNT + 1];
    bert_param_offsets(c, off);
    int64_t H = c->hidden, I = c->intermediate;
    const layer_names *ln = c->arch == ARCH_MPNET ? &mpnet_layer : &bert_layer;
    int n = 0;
    n = add(out, n, "embeddings.word_embeddings.weight", off[P_WORD_EMB], c->vocab_size, H);
    n = add(out, n, "embeddings.position_embeddings.weight", off[P_POS_EMB], c->max_positions, H);
    if (c->type_vocab)
        n = add(out, n, "embeddings.token_type_embeddings.weight", off[P_TYPE_EMB], c->type_vocab, H);
    n = add(out, n, "embeddings.LayerNorm.weight", off[P_EMB_LN_W], H, 0);
    n = add(out, n, "embeddings.LayerNorm.bias", off[P_EMB_LN_B], H, 0);
    for (int l = 0; l < c->layers; l++) {
        char name[80];
#define LAYER(fmt, ...) (snprintf(name, sizeof name, "encoder.layer.%d." fmt, l, __VA_ARGS__), name)
        for (int j = 0; j < 3; j++) {
            n = add(out, n, LAYER("%s.weight", ln->qkv[j]),
                    off[P_QKV_W] + (size_t)(l * 3 + j) * H * H, H, H);
            n = add(out, n, LAYER("%s.bias", ln->qkv[j]),
                    off[P_QKV_B] + (size_t)(l * 3 + j) * H, H, 0);
        }
        n = add(out, n, LAYER("%s.weight", ln->attn_out), off[P_ATTN_OUT_W] + (size_t)l * H * H, H, H);
        n = add(out, n, LAYER("%s.bias", ln->attn_out), off[P_ATTN_OUT_B] + (size_t)l * H, H, 0);
        n = add(out, n, LAYER("%s.weight", ln->attn_ln), off[P_ATTN_LN_W] + (size_t)l * H, H, 0);
        n = add(out, n, LAYER("%s.bias", ln->attn_ln), off[P_ATTN_LN_B] + (size_t)l * H, H, 0);
        n = add(out, n, LAYER("intermediate.dense.%s", "weight"), off[P_FFN_IN_W] + (size_t)l * I * H, I, H);
        n = add(out, n, LAYER("intermediate.dense.%s", "bias"), off[P_FFN_IN_B] + (size_t)l * I, I, 0);
        n = add(out, n, LAYER("output.dense.%s", "weight"), off[P_FFN_OUT_W] + (size_t)l * H * I, H, I);
        n = add(out, n, LAYER("output.dense.%s", "bias"), off[P_FFN_OUT_B] + (size_t)l * H, H, 0);
        n = add(out, n, LAYER("output.LayerNorm.%s", "weight"), off[P_FFN_LN_W] + (size_t)l * H, H, 0);
        n = add(out, n, LAYER("output.LayerNorm.%s", "bias"), off[P_FFN_LN_B] + (size_t)l * H, H, 0);
#undef LAYER
    }
    /* "bias" in its name: no weight decay, as transformers' Trainer decides. */
    if (c->rel_buckets)
        n = add(out, n, "encoder.relative_attention_bias.weight", off[P_REL_BIAS], c->rel_buckets, c->heads);
    n = add(out, n, "pooler.dense.weight", off[P_POOLER_W], H, H);
    n = add(out, n, "pooler.dense.bias", off[P_POOLER_B], H, 0);
    return n;
}
