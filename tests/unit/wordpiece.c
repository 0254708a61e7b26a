/* WordPiece tokenizer: every line of the golden file through the library,
 * truncation, invalid UTF-8, the model-directory settings, and characters
 * whose treatment depends on Hugging Face's Unicode tables (expected ids
 * taken from tokenizers 0.23). */
#include "../tap.h"
#include "util.h"
#include "wordpiece.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

#define CAP 4096

/* Encode text and compare with want[0..nwant). */
static int same_ids(const wordpiece *wp, const char *text, size_t len, int max_len,
                    const int32_t *want, int nwant)
{
    int32_t ids[CAP];
    int n = wp_encode(wp, text, len, ids, max_len);
    if (n != nwant)
        return 0;
    return memcmp(ids, want, n * sizeof *ids) == 0;
}

#define CHECK(wp, text, max_len, name, ...)                                                  \
    do {                                                                                     \
        const int32_t want_[] = {__VA_ARGS__};                                               \
        ok(same_ids(wp, text, strlen(text), max_len, want_, sizeof want_ / sizeof *want_), \
           "%s", name);                                                                      \
    } while (0)

/* Every golden line: returns how many matched; reports the first misses. */
static long golden(const wordpiece *wp, const char *path, long *total, int *line6)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    long matched = 0, shown = 0;
    *total = 0;
    while (getline(&line, &cap, f) > 0) {
        long no = ++*total;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        json_t *text = json_object_get(o, "text"), *want = json_object_get(o, "ids");
        int32_t ids[CAP];
        int n = wp_encode(wp, json_string_value(text), json_string_length(text), ids, CAP);
        int good = n == (int)json_array_size(want);
        for (int i = 0; good && i < n; i++)
            good = ids[i] == json_integer_value(json_array_get(want, i));
        matched += good;
        if (no == 6)
            *line6 = good && memchr(json_string_value(text), '\t', json_string_length(text)) &&
                     memchr(json_string_value(text), '\n', json_string_length(text));
        if (!good && shown++ < 5)
            diag("line %ld differs: %s", no, json_string_value(text));
        json_decref(o);
    }
    free(line);
    fclose(f);
    return matched;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

int main(void)
{
    util_init("test-wordpiece");
    char *vocab = path_join(shared_dir(), "data/vocab/bert-base-uncased-vocab.txt");
    if (!file_exists(vocab))
        skip_all("no ../shared data");
    wordpiece *wp = wp_load(NULL, vocab);
    ok(wp_vocab_size(wp) == 30522 && wp_pad_id(wp) == 0, "vocab.txt: 30522 tokens, [PAD] = 0");

    char *gold = path_join(shared_dir(), "fixtures/tokenizer-golden.jsonl");
    long total = 0;
    int line6 = 0;
    long matched = golden(wp, gold, &total, &line6);
    ok(total == 42830 && matched == total, "golden file: %ld of %ld lines match", matched, total);
    ok(line6, "golden line 6 (tab and newlines in the text) matches");

    /* Truncation keeps the first max_len - 2 pieces, then [SEP]. */
    const char *s = "supercalifragilisticexpialidocious antidisestablishmentarianism";
    CHECK(wp, s, 5, "truncation to 5: [CLS] + 3 pieces + [SEP]", 101, 3565, 9289, 10128, 102);
    CHECK(wp, s, 2, "truncation to 2: [CLS] [SEP]", 101, 102);
    CHECK(wp, "Hello, world!", 6, "no truncation when it fits", 101, 7592, 1010, 2088, 999, 102);
    CHECK(wp, "a [SEP] b", 4, "special token counts as a piece", 101, 1037, 102, 102);

    /* Invalid UTF-8, also after the truncation point. */
    static const char *bad[] = {"\xC3",     "\x80",         "\xC0\xAF",         "\xE0\x80\xAF",
                                "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",
                                "\xE2\x82", "ok \xFF"};
    int all_bad = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int32_t ids[CAP];
        all_bad &= wp_encode(wp, bad[i], strlen(bad[i]), ids, CAP) == -1;
    }
    ok(all_bad, "truncated, overlong, surrogate, out-of-range and stray bytes are invalid");
    int32_t ids[CAP];
    const char *late = "one two three four five \xC3";
    ok(wp_encode(wp, late, strlen(late), ids, 3) == -1, "invalid UTF-8 past the truncation point");
    ok(wp_encode(wp, "a\0b", 3, ids, CAP) == 3 && ids[1] == 11113, "NUL bytes are dropped (a\\0b -> ab)");

    /* Characters whose category changed after Unicode 8.0 (HF uses 8.0). */
    CHECK(wp, "a\xE1\x99\xAD" "b", CAP, "U+166D (Po in 8.0) splits", 101, 1037, 100, 1038, 102);
    CHECK(wp, "a\xE2\xB9\x83" "b", CAP, "U+2E43 (new in 10.0) is a letter", 101, 100, 102);
    CHECK(wp, "a\xE0\xA2\x90" "b", CAP, "U+0890 (Cf, new in 14.0) is kept", 101, 100, 102);
    CHECK(wp, "a\xE1\x9C\xB4" "b", CAP, "U+1734 (Mn in 8.0) is dropped", 101, 11113, 102);
    CHECK(wp, "a\xF0\x91\x87\x89" "b", CAP, "U+111C9 (Po in 8.0) splits", 101, 1037, 100, 1038,
          102);
    CHECK(wp, "e\xCC\x81\xE2\x80\xAF\xE2\x80\x8B" "x", CAP,
          "combining acute dropped, U+202F space, U+200B dropped", 101, 1041, 1060, 102);
    CHECK(wp, "\xEF\xA4\x82", CAP, "CJK compatibility U+F902 decomposes to U+8ECA", 101, 1954, 102);
    CHECK(wp, "\xEA\xB0\x80", CAP, "Hangul syllable decomposes to jamo", 101, 1455, 30006, 102);
    CHECK(wp, "a\xE1\xBF\xAF" "b", CAP, "U+1FEF decomposes to a backtick", 101, 1037, 1036, 1038, 102);
    CHECK(wp, "x[CLS]y[cls]", CAP, "special tokens inside words", 101, 1060, 101, 1061, 1031,
          18856, 2015, 1033, 102);

    char *dir = tap_temp_dir("wordpiece");

    /* Canonical ordering of the marks NFD keeps (U+1D16D class 226, U+1D165
     * class 216); a dropped mark of class 0 (U+034F) separates runs; marks
     * newer than Hugging Face's tables (U+1DF6, U+1DF9) are not reordered. */
    char *v4 = path_join(dir, "order.txt");
    write_file(v4, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
                   "a\xE1\xB7\xB9\xE1\xB7\xB6\n" "a\xE1\xB7\xB6\xE1\xB7\xB9\n"
                   "a\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5\n" "a\xF0\x9D\x85\xA5\xF0\x9D\x85\xAD\n");
    wordpiece *ord = wp_load(NULL, v4);
    CHECK(ord, "a\xF0\x9D\x85\xAD\xF0\x9D\x85\xA5", CAP, "marks reordered by class", 2, 8, 3);
    CHECK(ord, "a\xF0\x9D\x85\xA5\xF0\x9D\x85\xAD", CAP, "marks already in order", 2, 8, 3);
    CHECK(ord, "A\xF0\x9D\x85\xAD\xCC\x81\xF0\x9D\x85\xA5", CAP,
          "reordered across a dropped accent", 2, 8, 3);
    CHECK(ord, "a\xF0\x9D\x85\xAD\x07\xF0\x9D\x85\xA5", CAP,
          "reordered across a dropped control character", 2, 8, 3);
    CHECK(ord, "a\xF0\x9D\x85\xAD\xCD\x8F\xF0\x9D\x85\xA5", CAP,
          "not reordered across U+034F", 2, 7, 3);
    CHECK(ord, "a\xE1\xB7\xB6\xE1\xB7\xB9", CAP, "marks unknown to Hugging Face keep order",
          2, 6, 3);
    wp_free(ord);
    unlink(v4);

    /* Model directories: do_lower_case false keeps case and accents. */
    char *cfg = path_join(dir, "tokenizer_config.json"), *vt = path_join(dir, "vocab.txt");
    char *text = read_file(vocab, NULL);
    write_file(vt, text);
    free(text);
    write_file(cfg, "{\"do_lower_case\": false}");
    wordpiece *cased = wp_load(dir, NULL);
    CHECK(cased, "Caf\xC3\xA9 ok", CAP, "do_lower_case false: no lowercasing, no stripping", 101,
          100, 7929, 102);
    wp_free(cased);
    ok(wp_default_max_length(dir) == WP_DEFAULT_MAX_LENGTH, "no config: default length 512");
    write_file(cfg, "{\"do_lower_case\": true, \"model_max_length\": 64}");
    char *conf = path_join(dir, "config.json");
    write_file(conf, "{\"max_position_embeddings\": 128}");
    ok(wp_default_max_length(dir) == 64, "min(model_max_length, max_position_embeddings)");
    char *sb = path_join(dir, "sentence_bert_config.json");
    write_file(sb, "{\"max_seq_length\": 100, \"do_lower_case\": false}");
    ok(wp_default_max_length(dir) == 100, "sentence_bert_config.json max_seq_length wins");
    ok(wp_default_max_length(NULL) == 512, "no model directory: 512");
    char *tiny = path_join(shared_dir(), "fixtures/tiny/model");
    ok(wp_default_max_length(tiny) == 128, "tiny model: 128");
    wordpiece *tw = wp_load(tiny, NULL);
    CHECK(tw, "Hello, world!", CAP, "tiny model tokenizes like the vocabulary", 101, 7592, 1010,
          2088, 999, 102);
    wp_free(tw);
    unlink(cfg);
    unlink(conf);
    unlink(sb);
    unlink(vt);
    rmdir(dir);
    wp_free(wp);
    return done_testing();
}
