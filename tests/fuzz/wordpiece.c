/* The WordPiece tokenizer (lib/wordpiece.c) on arbitrary bytes, with the
 * invariants of wordpiece.h: a sequence [CLS] pieces [SEP] of ids in the
 * vocabulary, no longer than max_len, and -1 exactly when the bytes are not
 * UTF-8.  The vocabulary is tests/fuzz/vocab.txt (a small hand-made one with
 * accents, CJK and the special tokens), or the model directory named by
 * $FUZZ_WP_MODEL. */
#include "fuzz.h"
#include "wordpiece.h"

#ifndef FUZZ_VOCAB
#define FUZZ_VOCAB "tests/fuzz/vocab.txt"
#endif

static wordpiece *wp;
static int32_t cls_id, sep_id, vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    const char *model = getenv("FUZZ_WP_MODEL");
    if (!FUZZ_TRY(wp = model && *model ? wp_load(model, NULL) : wp_load(NULL, FUZZ_VOCAB))) {
        fprintf(stderr, "%s\n", fuzz_error);
        exit(1);
    }
    int32_t ids[2];
    FUZZ_ASSERT(wp_encode(wp, "", 0, ids, 2) == 2, "empty text");
    cls_id = ids[0];
    sep_id = ids[1];
    vocab = wp_vocab_size(wp);
    return 0;
}

/* Strict UTF-8 (RFC 3629), written independently of the tokenizer's. */
static int utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t len;
        uint32_t v, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, v = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, v = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, v = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            v = v << 6 | (p[i + k] & 0x3F);
        }
        if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks max_len (2 to 257), the rest is the text. */
    int max_len = size ? 2 + data[0] : 128;
    if (size) {
        data++;
        size--;
    }
    int32_t *ids = malloc(max_len * sizeof *ids);
    volatile int n = 0;
    if (!FUZZ_TRY(n = wp_encode(wp, (const char *)data, size, ids, max_len)))
        FUZZ_ASSERT(0, "wp_encode died: %s", fuzz_error);
    int valid = utf8_ok(data, size);
    FUZZ_ASSERT((n < 0) == !valid, "wp_encode returned %d for %s UTF-8", n,
                valid ? "valid" : "invalid");
    if (n >= 0) {
        FUZZ_ASSERT(n >= 2 && n <= max_len, "%d ids for max_len %d", n, max_len);
        FUZZ_ASSERT(ids[0] == cls_id && ids[n - 1] == sep_id, "framing %d ... %d", ids[0],
                    ids[n - 1]);
        for (int i = 0; i < n; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside [0, %d)", ids[i], vocab);
        /* The same text with room to spare starts with the same pieces. */
        int32_t *more = malloc((max_len + 64) * sizeof *more);
        int m = wp_encode(wp, (const char *)data, size, more, max_len + 64);
        FUZZ_ASSERT(m >= n, "longer max_len, fewer ids: %d < %d", m, n);
        FUZZ_ASSERT(!memcmp(more, ids, (n - 1) * sizeof *ids), "truncation changed the pieces");
        free(more);
    }
    free(ids);
    return 0;
}
