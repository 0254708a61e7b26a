/* A model directory's tokenizer.json (lib/wordpiece.c: wp_load without
 * vocab.txt, so the vocabulary, the added tokens and the framing all come
 * from it) on arbitrary bytes.  What it accepts must tokenize: every text is
 * 2 to max_len ids in [0, wp_vocab_size), framed by the same first and last
 * ids as the empty text, and the padding id is -1 or in range; what it
 * refuses, it refuses with one line (fuzz.h). */
#include "fuzz.h"
#include "wordpiece.h"

static char *dir, *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    dir = fuzz_temp_dir("fuzz-tokenizer");
    path = path_join(dir, "tokenizer.json");
    return 0;
}

/* Texts each accepted tokenizer must frame and keep in range. */
static const char *const texts[] = {"", "Hello, world!", "[CLS] <s> [MASK]x[UNK] </s>",
                                    "Café naïve 日本語 \xe2\x80\x94 ##ing", "a\tb\nc"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
    wordpiece *volatile wp = NULL;
    if (!FUZZ_TRY(wp = wp_load(dir, NULL)))
        return 0; /* (the next wp_load frees what this one had) */
    int32_t vocab = wp_vocab_size(wp), pad = wp_pad_id(wp), frame[2], ids[16];
    FUZZ_ASSERT(vocab > 0, "vocabulary size %d", vocab);
    FUZZ_ASSERT(pad >= -1 && pad < vocab, "padding id %d, vocabulary %d", pad, vocab);
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        volatile int n = 0;
        if (!FUZZ_TRY(n = wp_encode(wp, texts[t], strlen(texts[t]), ids, 16)))
            FUZZ_ASSERT(0, "wp_encode died: %s", fuzz_error);
        FUZZ_ASSERT(n >= 2 && n <= 16, "%d ids for \"%s\"", n, texts[t]);
        for (int i = 0; i < n; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside [0, %d) in \"%s\"", ids[i],
                        vocab, texts[t]);
        if (t == 0)
            memcpy(frame, ids, sizeof frame);
        FUZZ_ASSERT(ids[0] == frame[0] && ids[n - 1] == frame[1], "framing %d ... %d, not %d ... %d",
                    ids[0], ids[n - 1], frame[0], frame[1]);
    }
    wp_free(wp);
    return 0;
}
