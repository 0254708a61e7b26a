/* A model directory's tokenizer.json (lib/wordpiece.c: wp_load without
 * vocab.txt, so the vocabulary, the added tokens and the framing all come
 * from it) on arbitrary bytes.  What it accepts must tokenize: every text is
 * 2 to max_len ids in [0, wp_vocab_size), framed by the same first and last
 * ids as the empty text, and the padding id is -1 or in range; what it
 * refuses, it refuses with one line (fuzz.h). */
#include "fuzz.h"
#include "wordpiece.h"

#include <jansson.h>
#include <stddef.h>

static char dir[] = "/tmp/bp-fuzz-tokenizer-XXXXXX";
static char *path;

/* jansson's allocations, in a list: a load that dies abandons its JSON
 * trees (as a tool exits), and at a few KB per input they would reach
 * libFuzzer's memory limit within minutes; the harness frees them. */
typedef struct json_block {
    struct json_block *prev, *next;
    max_align_t data[];
} json_block;
static json_block json_live = {&json_live, &json_live};

static void *json_alloc(size_t n)
{
    json_block *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->prev = &json_live;
    b->next = json_live.next;
    json_live.next->prev = b;
    json_live.next = b;
    return b->data;
}

static void json_release(void *p)
{
    if (!p)
        return;
    json_block *b = (json_block *)((char *)p - offsetof(json_block, data));
    b->prev->next = b->next;
    b->next->prev = b->prev;
    free(b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    json_set_alloc_funcs(json_alloc, json_release);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
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
    if (!FUZZ_TRY(wp = wp_load(dir, NULL))) {
        while (json_live.next != &json_live)
            json_release(json_live.next->data);
        return 0;
    }
    FUZZ_ASSERT(json_live.next == &json_live, "a loaded tokenizer kept JSON trees");
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
