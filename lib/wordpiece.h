/* wordpiece.h - BERT tokenization: BasicTokenizer + WordPiece, giving the same
 * ids as Hugging Face's fast tokenizer (tokenizers' BertNormalizer,
 * BertPreTokenizer, WordPiece and BertProcessing) for bert-base-uncased.
 *
 * A text becomes [CLS] pieces... [SEP]:
 *   - the special-token strings [PAD] [UNK] [CLS] [SEP] [MASK], written
 *     exactly so in the raw text, map to their own ids;
 *   - clean: NUL, U+FFFD and control/format/private-use characters are
 *     dropped, whitespace becomes a word boundary;
 *   - CJK ideographs become words of their own;
 *   - when lowercasing: NFD, drop nonspacing marks (Mn), lowercase;
 *   - punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*) splits
 *     off as words of one character;
 *   - each word: over 100 characters -> [UNK]; otherwise greedy
 *     longest-match-first pieces, "##" marking continuations; if any part has
 *     no piece, the whole word is one [UNK].
 * Character categories follow the tables Hugging Face uses (Unicode 8.0 for
 * control, mark and punctuation tests), so characters assigned since then
 * behave as ordinary letters, as they do there.
 *
 * A loaded tokenizer is read-only: several threads may share one. */
#ifndef BP_WORDPIECE_H
#define BP_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

/* Default sequence length when nothing says otherwise (bert-base). */
#define WP_DEFAULT_MAX_LENGTH 512
/* Longest sequence length a model directory may ask for. */
#define WP_MAX_LENGTH_LIMIT (1 << 20)

typedef struct wordpiece wordpiece;

/* Load a tokenizer from exactly one of:
 *   model_dir  - a Hugging Face / sentence-transformers model directory:
 *                vocab.txt, or when absent the vocabulary (model.vocab) in
 *                tokenizer.json; do_lower_case and strip_accents from
 *                tokenizer_config.json (lowercase by default; accents are
 *                stripped when lowercasing unless strip_accents says otherwise);
 *   vocab_path - a vocab.txt (one token per line, id = line number - 1),
 *                lowercasing as bert-base-uncased does.
 * Unreadable or malformed files, or a vocabulary without [CLS], [SEP] and
 * [UNK], are fatal (one-line message naming the file, exit 1). */
wordpiece *wp_load(const char *model_dir, const char *vocab_path);
void wp_free(wordpiece *wp);

/* Tokenize text[0..len) (UTF-8; NUL bytes are dropped like other control
 * characters) into ids[0..max_len): [CLS] pieces [SEP], keeping only the
 * first max_len - 2 pieces when there are more (as sentence-transformers
 * truncates).  max_len must be at least 2.  Returns the number of ids
 * written, or -1 when text is not valid UTF-8 (also past the truncation
 * point). */
int wp_encode(const wordpiece *wp, const char *text, size_t len, int32_t *ids, int max_len);

/* One more than the largest id: token ids are in [0, wp_vocab_size). */
int32_t wp_vocab_size(const wordpiece *wp);
/* Id of [PAD], or -1 when the vocabulary has none. */
int32_t wp_pad_id(const wordpiece *wp);

/* The sequence length sentence-transformers uses for a model directory:
 * max_seq_length from sentence_bert_config.json; otherwise the smaller of
 * config.json's max_position_embeddings (less 2 for model_type mpnet, whose
 * positions start at 2) and tokenizer_config.json's
 * model_max_length (either when only one is present); otherwise
 * WP_DEFAULT_MAX_LENGTH, which is also the answer for model_dir NULL.
 * A malformed JSON file is fatal, and so is a value out of range: a
 * max_seq_length below 2 or above max_position_embeddings, a
 * model_max_length below 1 or above WP_MAX_LENGTH_LIMIT (transformers'
 * "no limit", 1e30, is no limit). */
int wp_default_max_length(const char *model_dir);
/* model_max_length of dir/tokenizer_config.json, checked as above; 0 when
 * absent or "no limit". */
int wp_tokenizer_max_length(const char *dir);

#endif
