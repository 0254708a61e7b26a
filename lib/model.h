/* model.h - model directories: loading, saving and random initialisation.
 *
 * A model directory is what Hugging Face and sentence-transformers write:
 * config.json, model.safetensors (or pytorch_model.bin), vocab.txt and/or
 * tokenizer.json, tokenizer_config.json, and optionally sentence-transformers'
 * modules.json, sentence_bert_config.json and 1_Pooling/config.json, in the
 * 2.x-5.x layout or the 6.x one (see ../shared/fixtures/README.md).
 *
 * Weights are read in both key layouts: as BertModel.save_pretrained names
 * them ("encoder.layer.0.attention.self.query.weight") and as the hub's
 * pre-training checkpoints do ("bert." prefix, LayerNorm gamma/beta, cls.*
 * heads ignored).  F32, F16 and BF16 tensors are upcast to float.
 *
 * Every problem is fatal through die(): one line naming the file and, for
 * weights, the tensor ("tool: DIR/model.safetensors: tensor
 * encoder.layer.1.output.dense.weight: shape [32, 63], expected [32, 64]"). */
#ifndef BP_MODEL_H
#define BP_MODEL_H

#include "bert.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    bert_config cfg;      /* from config.json */
    float *params;        /* flat buffer, layout of bert.h (bert_param_offsets) */
    size_t nparams;       /* floats in params */
    uint16_t *params16;   /* model_load_bf16's: the layers' matrices in bf16, at their
                           * offsets in params (NULL: none) */
    void *params_map;     /* model_load's mapping that params lies in (NULL: malloc's) */
    size_t params_map_bytes;
    pooling_mode pooling; /* 1_Pooling/config.json when present, else POOL_MEAN */
    int normalize;        /* modules.json lists a Normalize module */
    int max_seq_length;   /* sentence_bert_config.json, else the 6.x tokenizer_config.json
                           * model_max_length when it fits, else max_position_embeddings */
    char *dir;            /* the directory given to model_load (or config.json's directory) */
    char *transformer_dir; /* where config.json, weights and tokenizer files live: dir, or
                            * the Transformer module's subdirectory (e.g. DIR/0_Transformer) */
    char *config_text;    /* config.json as read, so that model_save keeps the fields we
                           * do not interpret (model_type, architectures, pad_token_id ...) */
} bert_model;

/* Parse and validate a BERT config.json into c: positive sizes, hidden_size a
 * multiple of num_attention_heads, hidden_act "gelu" (exact erf GELU; others
 * such as gelu_new or relu are rejected), dropout probabilities in [0, 1).
 * Missing optional fields take BertConfig's defaults (layer_norm_eps 1e-12,
 * initializer_range 0.02, type_vocab_size 2, dropouts 0.1). */
void config_parse(bert_config *c, const char *path);
/* The same on config.json's text[0..len), named path in messages. */
void config_parse_buffer(bert_config *c, const char *path, const char *text, size_t len);

/* Read a model directory: config, sentence-transformers modules and pooling,
 * and the weights (model.safetensors, else pytorch_model.bin).  The pooler is
 * optional (zero when absent).  m is overwritten. */
void model_load(bert_model *m, const char *dir);

/* model_load for bf16 inference on the CPU: the layers' matrices (the
 * dense products' operands) read into params16 in bf16 (bf16_round) and
 * not into params, whose floats there stay 0, which spares their fp32
 * copy (the bert-base shape: 340 MB and 0.07 s of loading).  The CPU
 * encoder opened for inference in bf16 takes them from there, where bf16
 * products run (gemm_bf16_available); encoder_open refuses the model for
 * anything else, and model_save its params. */
void model_load_bf16(bert_model *m, const char *dir);

/* Everything model_load reads except the weights (params NULL, nparams 0):
 * for tools that only need the configuration, pooling or file locations. */
void model_load_meta(bert_model *m, const char *dir);

/* A freshly initialised model as transformers' BertPreTrainedModel._init_weights
 * does it: Linear weights and embeddings ~ normal(0, initializer_range),
 * biases 0, LayerNorm weight 1 and bias 0, and the pad_token_id row of the
 * word embeddings zero (when config.json sets pad_token_id).  Deterministic in
 * seed (rng.h).  Pooling is mean, no normalisation, max_seq_length is
 * max_position_embeddings; dir is config.json's directory, so that model_save
 * finds the vocabulary beside it. */
void model_init_random(bert_model *m, const char *config_json_path, uint64_t seed);

/* Write a complete model directory at out_dir, atomically (built under a
 * temporary name, then renamed; an existing out_dir is replaced only then).
 * params (the same layout as m->params, which it may differ from, e.g. the
 * trained weights) go to model.safetensors as F32 with BertModel.save_pretrained
 * keys and __metadata__ {"format": "pt"}.  Also written:
 *   config.json              the source's, our fields updated (so transformers'
 *                            AutoModel.from_pretrained loads it)
 *   vocab.txt                copied, or made from tokenizer.json's model.vocab
 *   tokenizer.json           copied when the source has one
 *   tokenizer_config.json    the source's (do_lower_case ...), with tokenizer_class
 *                            BertTokenizer, which transformers 4.x and 5.x both load
 *   special_tokens_map.json  its special tokens
 *   modules.json, sentence_bert_config.json, 1_Pooling/config.json, and
 *   2_Normalize/ when normalize: sentence-transformers' 2.x-5.x layout, which
 *                            6.x reads too.
 * Dies before writing anything when the source has no vocabulary. */
void model_save(const bert_model *m, const char *out_dir, const float *params);

/* Before writing a model directory (or, with checkpoint, a checkpoint) at
 * path: dies with one line unless path does not exist or is a directory
 * that only a model_save (or checkpoint) could have written: config.json
 * present, and nothing but config.json, model.safetensors, vocab.txt,
 * tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * modules.json, sentence_bert_config.json, 1_Pooling/config.json and
 * 2_Normalize/ (a checkpoint also optimizer.safetensors, best.safetensors and
 * state.json).  Anything else (a file, a directory of other files, the
 * input) is never replaced.  model_save and checkpoint_write check it
 * themselves; a tool calls it first to fail before hours of work. */
void model_check_replaceable(const char *path, int checkpoint);

/* The files of model_save written into an existing directory dir, not
 * atomically: for checkpoints, which add their own files to the same
 * temporary directory before atomic_dir_commit (util.h). */
void model_write_files(const bert_model *m, const char *dir, const float *params);

/* Whether the model has the vocabulary model_save needs (vocab.txt or
 * tokenizer.json), which dies without one: a trainer can check up front. */
int model_has_vocab(const bert_model *m);

/* The weights freed (params NULL), however model_load holds them: the word
 * embeddings may be mapped from the weights file in place. */
void model_free_params(bert_model *m);
void model_free(bert_model *m);

/* "mean", "cls" or "max". */
const char *pooling_mode_name(pooling_mode p);

/* Path of a file of the model: transformer_dir/name when it exists, else
 * dir/name when that exists, else transformer_dir/name (so that opening it
 * reports a sensible name); the caller frees.  E.g. model_file(m, "vocab.txt"). */
char *model_file(const bert_model *m, const char *name);

#endif
