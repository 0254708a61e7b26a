/* bert.h - BERT encoder: configuration and the flat parameter layout shared by
 * model I/O, the CPU reference (bert.c) and the CUDA backend.
 *
 * All parameters live in one float buffer, tensor after tensor in the order of
 * enum bert_param; per-layer tensors are stacked over layers ([L, ...]).
 * Linear weights keep PyTorch's [out, in] layout, so loading and saving copy
 * blocks.  Query, key and value are fused into one [3H, H] weight per layer
 * (rows 0..H-1 query, H..2H-1 key, 2H..3H-1 value) so that one matrix product
 * computes all three; each Hugging Face tensor is still one contiguous block. */
#ifndef BP_BERT_H
#define BP_BERT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab_size;
    int hidden;        /* H */
    int layers;        /* L */
    int heads;
    int intermediate;  /* I */
    int max_positions; /* P */
    int type_vocab;    /* T */
    double ln_eps;
    float hidden_dropout;
    float attn_dropout;
    float initializer_range;
} bert_config;

/* Sentence pooling over the positions of each sequence (mask 1), as
 * sentence-transformers' Pooling module does. */
typedef enum { POOL_MEAN, POOL_CLS, POOL_MAX } pooling_mode;

enum bert_param {
    P_WORD_EMB,   /* [V, H] */
    P_POS_EMB,    /* [P, H] */
    P_TYPE_EMB,   /* [T, H] */
    P_EMB_LN_W,   /* [H] */
    P_EMB_LN_B,   /* [H] */
    P_QKV_W,      /* [L, 3H, H] */
    P_QKV_B,      /* [L, 3H] */
    P_ATTN_OUT_W, /* [L, H, H] */
    P_ATTN_OUT_B, /* [L, H] */
    P_ATTN_LN_W,  /* [L, H] */
    P_ATTN_LN_B,  /* [L, H] */
    P_FFN_IN_W,   /* [L, I, H] */
    P_FFN_IN_B,   /* [L, I] */
    P_FFN_OUT_W,  /* [L, H, I] */
    P_FFN_OUT_B,  /* [L, H] */
    P_FFN_LN_W,   /* [L, H] */
    P_FFN_LN_B,   /* [L, H] */
    P_POOLER_W,   /* [H, H]  kept for save/load; unused by sentence pooling */
    P_POOLER_B,   /* [H] */
    P_COUNT
};
/* Tensors before P_POOLER_W are the ones training updates: the pooler gets
 * no gradient, and torch's optimizers skip parameters without one. */
#define P_TRAINABLE P_POOLER_W

/* Number of floats in each parameter tensor, and their offsets in the flat
 * buffer (offsets[P_COUNT] = total). */
void bert_param_sizes(const bert_config *c, size_t sizes[P_COUNT]);
size_t bert_param_offsets(const bert_config *c, size_t offsets[P_COUNT + 1]);

/* The Hugging Face view of the flat buffer: one entry per tensor as
 * BertModel.save_pretrained names it (e.g. "encoder.layer.3.attention.self.key.bias"). */
typedef struct {
    char name[80];
    size_t offset;      /* in floats, into the flat buffer */
    int ndim;
    int64_t shape[2];
    size_t numel;
    int decay;          /* AdamW weight decay applies (not biases, not LayerNorm) */
    int trainable;      /* 0 for the pooler */
} bert_tensor;

/* Fill out[] (may be NULL) and return the number of tensors. */
int bert_tensors(const bert_config *c, bert_tensor *out);

#endif
