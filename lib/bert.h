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

#include "dropout.h"

/* The architectures of the family: one code path, their differences are the
 * data below (see bert_config). */
typedef enum { ARCH_BERT, ARCH_MPNET } bert_arch;

typedef struct {
    bert_arch arch;
    int vocab_size;
    int hidden;        /* H */
    int layers;        /* L */
    int heads;
    int intermediate;  /* I */
    int max_positions; /* P */
    int type_vocab;    /* T; 0 for MPNet, which has no token types */
    int rel_buckets;   /* rows of the relative attention bias table (MPNet; 0: none) */
    int pos_pad;       /* MPNet only (bert_pad_position): position ids count from
                        * pos_pad + 1, and a token with id pos_pad (<pad>) takes
                        * position pos_pad, as transformers' create_position_ids_from_input_ids */
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
    P_REL_BIAS,   /* [rel_buckets, heads], shared by all layers (MPNet; empty for BERT) */
    P_POOLER_W,   /* [H, H]  kept for save/load; unused by sentence pooling */
    P_POOLER_B,   /* [H] */
    P_COUNT
};
/* Tensors before P_POOLER_W are the ones training updates: the pooler gets
 * no gradient, and torch's optimizers skip parameters without one. */
#define P_TRAINABLE P_POOLER_W

/* The layers' matrices, the dense products' operands (the ones a bf16
 * copy of the parameters needs): query/key/value, attention output,
 * feed-forward in and out. */
enum { BERT_MATRIX_KINDS = 4 };
extern const int bert_matrix_kinds[BERT_MATRIX_KINDS];

/* MPNet's pos_pad; -1 for BERT, whose positions are 0, 1, 2 ... (a config
 * zeroed but for BERT's fields is BERT's). */
int bert_pad_position(const bert_config *c);

/* The longest sequence the position embeddings allow: max_positions, less
 * the positions MPNet never gives a token (0 and pos_pad). */
int bert_max_tokens(const bert_config *c);

/* MPNet's relative position bucket of key position j seen from query
 * position i (rel = j - i): transformers' relative_position_bucket with the
 * 32 buckets and maximum distance 128 that MPNetEncoder always uses. */
int bert_rel_bucket(int rel);

/* Number of floats in each parameter tensor, and their offsets in the flat
 * buffer (offsets[P_COUNT] = total). */
void bert_param_sizes(const bert_config *c, size_t sizes[P_COUNT]);
size_t bert_param_offsets(const bert_config *c, size_t offsets[P_COUNT + 1]);

/* The Hugging Face view of the flat buffer: one entry per tensor as
 * BertModel (MPNetModel).save_pretrained names it (e.g.
 * "encoder.layer.3.attention.self.key.bias", "encoder.layer.3.attention.attn.k.bias"). */
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

/* ---- CPU reference encoder (bert.c) ------------------------------------
 *
 * A batch is B sequences given as token ids [B, T] (row b at ids + b*T),
 * sequence b being its first lens[b] ids (1 <= lens[b] <= T, at most P and
 * the max_len of the activations; the rest is padding, -1 by convention,
 * never read).  Token type ids are all 0 and
 * positions count from 0 in every sequence (MPNet: from pos_pad + 1).
 *
 * Activations are packed: the N = sum(lens) real tokens are the rows of
 * [N, H] matrices, sequence b at rows start[b] .. start[b+1]-1, so dense
 * layers never compute on padding and attention looks only at real keys
 * (what Hugging Face's additive mask gives for real query positions).
 *
 * One bert_acts holds one forward pass and everything its backward needs;
 * several can exist at once (e.g. one per column of a training batch), each
 * backward adding into one shared gradient buffer. */

typedef struct bert_acts bert_acts;

/* Activations for up to max_sequences sequences of up to max_len tokens.
 * training = 0 keeps only what inference needs (of the hidden states, only
 * the last layer's); the backward functions then refuse.  Buffers grow to
 * the largest token count seen, so short batches cost little memory. */
bert_acts *bert_acts_new(const bert_config *c, int max_sequences, int max_len, int training);
void bert_acts_free(bert_acts *a);

/* The precision of the dense layers' matrix products: fp32 (0, the default
 * and the reference) or, with bf16_products, bf16 operands with fp32
 * accumulation (gemm.h; the caller checks gemm_bf16_available).  params16
 * (may be NULL: converted in each product) is the parameter buffer already
 * rounded to bf16 by bf16_from_float, laid out as the fp32 one and kept
 * current by the caller; everything else stays fp32.  packs (may be NULL)
 * keeps the weights of the forward pass's dense products in oneDNN's
 * layout (gemm.h), for the products in either precision; the caller
 * clears it whenever the parameters change. */
struct gemm_packs;
void bert_acts_set_precision(bert_acts *a, int bf16_products, const uint16_t *params16,
                             struct gemm_packs *packs);

/* Forward pass.  lens may be NULL: each length is then the number of ids
 * before the first negative one (or T).  dropout NULL means no dropout
 * (evaluation); otherwise hidden_dropout applies after the embedding
 * LayerNorm and after the attention-output and FFN-output dense layers, and
 * attn_dropout on the attention probabilities (inverted dropout; the masks
 * are dropout.h's function of position, with row and column of sequence b
 * taken from dropout->row[b] and dropout->column[b], and are kept for the
 * backward pass). */
void bert_forward(const bert_config *c, const float *params, const int32_t *ids,
                  const int32_t *lens, int B, int T, bert_acts *a, const dropout_keys *dropout);

/* Multi-head self-attention alone, as the forward pass computes it (for
 * tests): qkv [N, 3H] (query | key | value) of B sequences, sequence b
 * rows start[b] .. start[b + 1] - 1, heads of H / heads dimensions ->
 * ctx [N, H] in fp32, or, when ctx16 is given, ctx16 in bf16 as bf16
 * inference computes it (ctx is then scratch): on AMX tiles where
 * bert_attention_on_amx says so.  relvec (MPNet; NULL for BERT): [heads,
 * 2 rel_len - 1] bias by relative position j - i, 0 at rel_len - 1,
 * rel_len at least the longest sequence. */
void bert_attention(float *ctx, uint16_t *ctx16, const float *qkv, const float *relvec,
                    int rel_len, const int *start, int B, int H, int heads);

/* 1 when bf16 inference's attention for a sequence of n tokens in heads
 * of d dimensions runs on AMX tiles here (the CPU has AMX and AVX512_BF16,
 * Linux lets the process use the tiles, BERTPIPE_CPU_AMX is not 0, d is
 * 16, 32, 48 or 64, n is long enough to gain from them), else 0. */
int bert_attention_on_amx(int d, int n);

/* Without training, bert_forward computes each layer for groups of whole
 * sequences at a time, so that their rows stay in the cache: sequences b0
 * .. end - 1 of a batch whose sequence b starts at row start[b] (start[B]
 * the batch's token count), as many as add up to at most LAYER_ROWS
 * (bert.c) tokens, at least one.  A group's rows come out the same whether
 * it is computed in its batch or as a batch of its own (the same products,
 * each row of a product its own). */
int bert_group_end(const int *start, int B, int b0);

/* The packed batch of the last forward: N, B and the row offsets start[B+1]. */
int bert_acts_tokens(const bert_acts *a);
int bert_acts_sequences(const bert_acts *a);
const int *bert_acts_starts(const bert_acts *a);
/* Hidden states [N, H] after layer l (0 = embedding output, L = last; only
 * L for activations made without training). */
const float *bert_hidden(const bert_acts *a, int layer);

/* Sentence embeddings out[B, H] from the last hidden states: mean over the
 * tokens of each sequence ([CLS] and [SEP] included), the [CLS] token, or the
 * elementwise maximum. */
void bert_pool(const bert_acts *a, pooling_mode mode, float *out);
/* Gradient d_pooled[B, H] of the pooled embeddings into the gradient of the
 * last hidden states held in a (overwritten), for bert_backward. */
void bert_pool_backward(bert_acts *a, pooling_mode mode, const float *d_pooled);
/* That gradient, [N, H] packed (valid after bert_forward): a caller with a
 * loss on the hidden states themselves writes it here instead of calling
 * bert_pool_backward. */
float *bert_acts_dhidden(bert_acts *a);

/* Backward pass of the last forward of a, from bert_acts_dhidden(a) (which
 * it uses as scratch): parameter gradients are added (+=) into grads, laid
 * out as params (bert_param_offsets); the pooler's part is left untouched. */
void bert_backward(const bert_config *c, const float *params, float *grads, bert_acts *a);

/* Rows of x[n, d] scaled to unit L2 norm (out may equal x), as
 * torch.nn.functional.normalize: x / max(|x|, 1e-12); norms[n] keeps the
 * divisors for the backward pass, which writes dx[n, d] (dx may equal dout). */
void l2_normalize(float *out, float *norms, const float *x, int n, int d);
void l2_normalize_backward(float *dx, const float *dout, const float *out, const float *norms,
                           int n, int d);

#endif
