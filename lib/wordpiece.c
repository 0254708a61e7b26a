/* wordpiece.c - BERT BasicTokenizer + WordPiece as Hugging Face's fast
 * tokenizer does it.  See wordpiece.h for the rules.
 *
 * Speed: ASCII bytes go through a 128-entry class table; words are built in
 * a fixed buffer on the stack; the vocabulary is an open-addressing hash
 * table probed with incrementally computed prefix hashes, so matching a word
 * costs one pass over its bytes plus one probe per candidate piece.  Only
 * non-ASCII characters reach utf8proc. */
#include "wordpiece.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

/* tokenizers' max_input_chars_per_word: longer words become [UNK]. */
#define MAX_WORD_CHARS 100

enum { CN = UTF8PROC_CATEGORY_CN, MN = UTF8PROC_CATEGORY_MN, PO = UTF8PROC_CATEGORY_PO };

/* Hugging Face tests control, nonspacing-mark and punctuation categories with
 * the unicode_categories crate, whose tables are Unicode 8.0: characters
 * assigned since are unassigned (Cn) there, hence ordinary letters, and three
 * were recategorised.  These ranges give the Unicode 8.0 category wherever
 * it changes one of those tests compared with utf8proc (Unicode 15 here);
 * found by classifying every code point with both. */
static const struct {
    int32_t lo, hi;
    int cat;
} unicode8_category[] = {
    {0x61D, 0x61D, CN}, {0x7FD, 0x7FD, CN}, {0x890, 0x891, CN}, {0x898, 0x89F, CN},
    {0x8CA, 0x8E2, CN}, {0x9FD, 0x9FE, CN}, {0xA76, 0xA76, CN}, {0xAFA, 0xAFF, CN},
    {0xB55, 0xB55, CN}, {0xC04, 0xC04, CN}, {0xC3C, 0xC3C, CN}, {0xC77, 0xC77, CN},
    {0xC84, 0xC84, CN}, {0xD00, 0xD00, CN}, {0xD3B, 0xD3C, CN}, {0xD81, 0xD81, CN},
    {0xEBA, 0xEBA, CN}, {0xECE, 0xECE, CN}, {0x166D, 0x166D, PO}, {0x1734, 0x1734, MN},
    {0x180F, 0x180F, CN}, {0x1885, 0x1886, CN}, {0x1ABF, 0x1ACE, CN}, {0x1B7D, 0x1B7E, CN},
    {0x1DF6, 0x1DFB, CN}, {0x2E43, 0x2E4F, CN}, {0x2E52, 0x2E5D, CN}, {0xA82C, 0xA82C, CN},
    {0xA8C5, 0xA8C5, CN}, {0xA8FF, 0xA8FF, CN}, {0xA9BD, 0xA9BD, CN},
    {0x10D24, 0x10D27, CN}, {0x10EAB, 0x10EAD, CN}, {0x10EFD, 0x10EFF, CN},
    {0x10F46, 0x10F50, CN}, {0x10F55, 0x10F59, CN}, {0x10F82, 0x10F89, CN},
    {0x11070, 0x11070, CN}, {0x11073, 0x11074, CN}, {0x110C2, 0x110C2, CN},
    {0x110CD, 0x110CD, CN}, {0x111C9, 0x111C9, PO}, {0x111CF, 0x111CF, CN},
    {0x1123E, 0x1123E, CN}, {0x11241, 0x11241, CN}, {0x1133B, 0x1133B, CN},
    {0x11438, 0x1143F, CN}, {0x11442, 0x11444, CN}, {0x11446, 0x11446, CN},
    {0x1144B, 0x1144F, CN}, {0x1145A, 0x1145B, CN}, {0x1145D, 0x1145E, CN},
    {0x11660, 0x1166C, CN}, {0x116B9, 0x116B9, CN}, {0x1182F, 0x11837, CN},
    {0x11839, 0x1183B, CN}, {0x1193B, 0x1193C, CN}, {0x1193E, 0x1193E, CN},
    {0x11943, 0x11946, CN}, {0x119D4, 0x119D7, CN}, {0x119DA, 0x119DB, CN},
    {0x119E0, 0x119E0, CN}, {0x119E2, 0x119E2, CN}, {0x11A01, 0x11A0A, CN},
    {0x11A33, 0x11A38, CN}, {0x11A3B, 0x11A47, CN}, {0x11A51, 0x11A56, CN},
    {0x11A59, 0x11A5B, CN}, {0x11A8A, 0x11A96, CN}, {0x11A98, 0x11A9C, CN},
    {0x11A9E, 0x11AA2, CN}, {0x11B00, 0x11B09, CN}, {0x11C30, 0x11C36, CN},
    {0x11C38, 0x11C3D, CN}, {0x11C3F, 0x11C3F, CN}, {0x11C41, 0x11C45, CN},
    {0x11C70, 0x11C71, CN}, {0x11C92, 0x11CA7, CN}, {0x11CAA, 0x11CB0, CN},
    {0x11CB2, 0x11CB3, CN}, {0x11CB5, 0x11CB6, CN}, {0x11D31, 0x11D36, CN},
    {0x11D3A, 0x11D3A, CN}, {0x11D3C, 0x11D3D, CN}, {0x11D3F, 0x11D45, CN},
    {0x11D47, 0x11D47, CN}, {0x11D90, 0x11D91, CN}, {0x11D95, 0x11D95, CN},
    {0x11D97, 0x11D97, CN}, {0x11EF3, 0x11EF4, CN}, {0x11EF7, 0x11EF8, CN},
    {0x11F00, 0x11F01, CN}, {0x11F36, 0x11F3A, CN}, {0x11F40, 0x11F40, CN},
    {0x11F42, 0x11F4F, CN}, {0x11FFF, 0x11FFF, CN}, {0x12FF1, 0x12FF2, CN},
    {0x13430, 0x13440, CN}, {0x13447, 0x13455, CN}, {0x16E97, 0x16E9A, CN},
    {0x16F4F, 0x16F4F, CN}, {0x16FE2, 0x16FE2, CN}, {0x16FE4, 0x16FE4, CN},
    {0x1CF00, 0x1CF2D, CN}, {0x1CF30, 0x1CF46, CN}, {0x1E000, 0x1E006, CN},
    {0x1E008, 0x1E018, CN}, {0x1E01B, 0x1E021, CN}, {0x1E023, 0x1E024, CN},
    {0x1E026, 0x1E02A, CN}, {0x1E08F, 0x1E08F, CN}, {0x1E130, 0x1E136, CN},
    {0x1E2AE, 0x1E2AE, CN}, {0x1E2EC, 0x1E2EF, CN}, {0x1E4EC, 0x1E4EF, CN},
    {0x1E944, 0x1E94A, CN}, {0x1E95E, 0x1E95F, CN},
};

/* The Unicode 8.0 category of cp where it matters and differs, else -1. */
static int unicode8_override(int32_t cp)
{
    int lo = 0, hi = sizeof unicode8_category / sizeof unicode8_category[0] - 1;
    if (cp < unicode8_category[0].lo || cp > unicode8_category[hi].hi)
        return -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < unicode8_category[mid].lo)
            hi = mid - 1;
        else if (cp > unicode8_category[mid].hi)
            lo = mid + 1;
        else
            return unicode8_category[mid].cat;
    }
    return -1;
}

/* Category as Hugging Face sees it. */
static int hf_category(int32_t cp)
{
    int cat = unicode8_override(cp);
    return cat >= 0 ? cat : (int)utf8proc_category(cp);
}

/* Dropped by cleaning: Rust's is_other() (Cc, Cf, Cs, Co) plus U+FFFD. */
static int is_dropped(int32_t cp, int cat)
{
    return cp == 0xFFFD || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO;
}

/* Rust's char::is_whitespace (Unicode White_Space) for non-ASCII characters
 * that cleaning keeps (U+0085 is a control character, dropped before). */
static int is_space(int32_t cp)
{
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* The CJK blocks that BertNormalizer surrounds with spaces. */
static int is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

enum { ASCII_DROP, ASCII_SPACE, ASCII_PUNCT, ASCII_WORD };

/* One vocabulary entry; id < 0 marks an empty slot. */
typedef struct {
    uint32_t hash;
    int32_t id;
    uint32_t off, len; /* key bytes in the pool */
} slot;

/* The special tokens of a tokenizer and their defaults: BERT's, and MPNet's
 * (MPNetTokenizer's).  Framing: cls first, sep last. */
enum { UNK, CLS, SEP, PAD, MASK, BOS, EOS, N_SPECIAL };
static const char *const special_keys[N_SPECIAL] = {"unk_token", "cls_token", "sep_token", "pad_token",
                                                    "mask_token", "bos_token", "eos_token"};
static const char *const bert_specials[N_SPECIAL] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", NULL, NULL};
static const char *const mpnet_specials[N_SPECIAL] = {"[UNK]", "<s>", "</s>", "<pad>", "<mask>", "<s>", "</s>"};

/* An added token: text matched in the raw input before anything else, as
 * tokenizers' AddedVocabulary does (normalized ones in the lowercased text). */
typedef struct {
    char *text;
    uint32_t len;
    int32_t id;
    int normalized;
} added_token;
enum { MAX_ADDED = 64 };

struct wordpiece {
    slot *slots;
    uint32_t bits; /* the table has 1 << bits slots */
    char *pool;
    size_t pool_len, pool_cap;
    int32_t vocab_size;
    uint32_t max_word_bytes, max_cont_bytes; /* longest piece, "##" excluded */
    int lowercase, strip_accents;
    int32_t unk_id, cls_id, sep_id, pad_id; /* pad_id -1 when there is none */
    added_token added[MAX_ADDED];
    int n_added;
    unsigned char added_first[128]; /* ASCII bytes that start an added token */
    json_t *json_roots[3]; /* while loading: tokenizer_config.json, special_tokens_map.json and
                            * tokenizer.json, which the special tokens' texts point into */
    unsigned char ascii_class[128];
    char ascii_map[128]; /* ASCII after lowercasing (when on) */
};

/* FNV-1a: cheap to extend one byte at a time, which the prefix search uses. */
#define FNV_BASIS 2166136261u
static inline uint32_t fnv_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}

static uint32_t fnv(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = fnv_step(h, (unsigned char)s[i]);
    return h;
}

/* Hash state after "##": continuation pieces hash as their full key. */
static uint32_t cont_basis(void)
{
    return fnv(FNV_BASIS, "##", 2);
}

static inline uint32_t slot_index(const wordpiece *wp, uint32_t h)
{
    return (h * 2654435769u) >> (32 - wp->bits);
}

/* Id of the piece s[0..n), preceded by "##" when cont; -1 if absent.  h is
 * its hash (including the "##"). */
static inline int32_t lookup(const wordpiece *wp, uint32_t h, const char *s, uint32_t n, int cont)
{
    uint32_t mask = (1u << wp->bits) - 1;
    uint32_t klen = n + (cont ? 2 : 0);
    for (uint32_t i = slot_index(wp, h);; i = (i + 1) & mask) {
        const slot *e = &wp->slots[i];
        if (e->id < 0)
            return -1;
        if (e->hash != h || e->len != klen)
            continue;
        const char *k = wp->pool + e->off;
        if (cont && (k[0] != '#' || k[1] != '#'))
            continue;
        if (memcmp(k + (cont ? 2 : 0), s, n) == 0)
            return e->id;
    }
}

/* Add a token; a repeated token takes the later id (as tokenizers' HashMap
 * insert does). */
static void vocab_add(wordpiece *wp, const char *tok, size_t n, int32_t id)
{
    if (n > UINT32_MAX / 2)
        die("vocabulary token too long");
    if (n == 0) { /* an empty token matches no piece: only its id counts */
        if (id >= wp->vocab_size)
            wp->vocab_size = id + 1;
        return;
    }
    uint32_t h = fnv(FNV_BASIS, tok, n);
    uint32_t mask = (1u << wp->bits) - 1;
    for (uint32_t i = slot_index(wp, h);; i = (i + 1) & mask) {
        slot *e = &wp->slots[i];
        if (e->id >= 0 && (e->hash != h || e->len != n || memcmp(wp->pool + e->off, tok, n)))
            continue;
        if (e->id < 0) {
            if (wp->pool_len + n > wp->pool_cap)
                wp->pool = xrealloc(wp->pool, wp->pool_cap = 2 * (wp->pool_cap + n));
            memcpy(wp->pool + wp->pool_len, tok, n);
            e->hash = h;
            e->off = wp->pool_len;
            e->len = n;
            wp->pool_len += n;
            if (n >= 2 && tok[0] == '#' && tok[1] == '#') {
                if (n - 2 > wp->max_cont_bytes)
                    wp->max_cont_bytes = n - 2;
            }
            if (n > wp->max_word_bytes)
                wp->max_word_bytes = n;
        }
        e->id = id;
        if (id >= wp->vocab_size)
            wp->vocab_size = id + 1;
        return;
    }
}

/* Size the table for n tokens at most half full. */
static void vocab_init(wordpiece *wp, size_t n)
{
    wp->bits = 4;
    while (((size_t)1 << wp->bits) < 2 * n)
        wp->bits++;
    if (wp->bits > 31)
        die("vocabulary too large");
    wp->slots = xmallocarray((size_t)1 << wp->bits, sizeof(slot));
    for (size_t i = 0; i < (size_t)1 << wp->bits; i++)
        wp->slots[i].id = -1;
}

static void load_vocab_txt(wordpiece *wp, const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        die("%s: %s", path, strerror(errno));
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    vocab_init(wp, lines + 1);
    int32_t id = 0;
    for (char *p = text, *end = text + len; p < end; id++) {
        char *nl = memchr(p, '\n', end - p);
        char *e = nl ? nl : end;
        size_t n = e - p;
        /* Rust's trim_end(), for the ASCII whitespace a vocab.txt may carry. */
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' ||
                     p[n - 1] == '\f' || p[n - 1] == '\v'))
            n--;
        if (id == INT32_MAX)
            die("%s: too many tokens", path);
        vocab_add(wp, p, n, id);
        p = e + 1;
    }
    free(text);
}

/* flags: JSON_DECODE_INT_AS_REAL for files whose integers may not fit
 * (tokenizer_config.json's model_max_length is often 1e30). */
static json_t *load_json(const char *path, size_t flags)
{
    json_error_t err;
    json_t *j = json_load_file(path, flags, &err);
    if (!j) {
        if (err.line < 1)
            die("%s: %s", path, err.text);
        die("%s:%d: %s", path, err.line, err.text);
    }
    return j;
}

/* The vocabulary of a tokenizer.json (root, read from path): model.vocab,
 * an object token -> id. */
static void load_tokenizer_json(wordpiece *wp, const char *path, json_t *root)
{
    json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    if (!json_is_object(vocab))
        die("%s: no model.vocab object", path);
    vocab_init(wp, json_object_size(vocab));
    const char *tok;
    json_t *v;
    json_object_foreach(vocab, tok, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= INT32_MAX)
            die("%s: model.vocab: bad id for token '%s'", path, tok);
        vocab_add(wp, tok, strlen(tok), id);
    }
}

/* A special token's text in tokenizer_config.json or special_tokens_map.json:
 * a string, or an object with "content" (NULL when absent). */
static const char *token_text(json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

/* What the model directory says about its tokenizer: do_lower_case,
 * strip_accents, tokenizer_class and the special tokens' texts
 * (tokenizer_config.json, else special_tokens_map.json, else the class's
 * defaults), written into specials (strings owned by the caller's roots). */
static void load_tokenizer_config(wordpiece *wp, const char *dir, const char *specials[N_SPECIAL],
                                  json_t **roots)
{
    char *path = path_join(dir, "tokenizer_config.json");
    const char *const *defaults = bert_specials;
    if (file_exists(path)) {
        json_t *root = roots[0] = load_json(path, JSON_DECODE_INT_AS_REAL);
        json_t *lower = json_object_get(root, "do_lower_case");
        json_t *strip = json_object_get(root, "strip_accents");
        if (json_is_boolean(lower))
            wp->lowercase = json_is_true(lower);
        wp->strip_accents = json_is_boolean(strip) ? json_is_true(strip) : wp->lowercase;
        const char *cls = json_string_value(json_object_get(root, "tokenizer_class"));
        /* TokenizersBackend (transformers 5) and PreTrainedTokenizerFast defer
         * to tokenizer.json, checked below. */
        static const char *const known[] = {"BertTokenizer", "BertTokenizerFast", "MPNetTokenizer",
                                            "MPNetTokenizerFast", "TokenizersBackend",
                                            "PreTrainedTokenizerFast"};
        int ok = !cls;
        for (size_t i = 0; cls && i < sizeof known / sizeof *known; i++)
            ok |= !strcmp(cls, known[i]);
        if (!ok)
            die("%s: tokenizer_class \"%s\" is not supported (BertTokenizer, MPNetTokenizer)", path, cls);
        if (cls && !strncmp(cls, "MPNetTokenizer", 14))
            defaults = mpnet_specials;
        for (int i = 0; i < N_SPECIAL; i++)
            specials[i] = token_text(json_object_get(root, special_keys[i]));
    }
    free(path);
    path = path_join(dir, "special_tokens_map.json");
    if (file_exists(path)) {
        json_t *root = roots[1] = load_json(path, 0);
        for (int i = 0; i < N_SPECIAL; i++)
            if (!specials[i])
                specials[i] = token_text(json_object_get(root, special_keys[i]));
    }
    free(path);
    for (int i = 0; i < N_SPECIAL; i++)
        if (!specials[i])
            specials[i] = defaults[i];
}

static void add_token(wordpiece *wp, const char *source, const char *text, int32_t id, int normalized)
{
    size_t n = strlen(text);
    if (!n)
        return;
    for (int i = 0; i < wp->n_added; i++)
        if (!strcmp(wp->added[i].text, text))
            return;
    if (wp->n_added == MAX_ADDED)
        die("%s: more than %d added tokens", source, MAX_ADDED);
    /* The encoder looks for them where ASCII punctuation starts (BERT's [..]
     * and MPNet's <..>): others would need a look at every character. */
    unsigned char c = (unsigned char)text[0];
    if (c >= 128 || wp->ascii_class[c] != ASCII_PUNCT)
        die("%s: added token \"%s\" does not start with ASCII punctuation (not supported)", source,
            text);
    wp->added[wp->n_added++] = (added_token){xstrdup(text), (uint32_t)n, id, normalized};
    if (id >= wp->vocab_size) /* added tokens may extend the vocabulary */
        wp->vocab_size = id + 1;
    wp->added_first[c] = 1;
}

/* A framing token's id in tokenizer.json's post_processor (an integer). */
static int32_t framing_id(const char *path, json_t *v)
{
    json_int_t id = json_integer_value(v);
    if (id < 0 || id >= INT32_MAX)
        die("%s: post_processor: token id %" JSON_INTEGER_FORMAT " out of range", path, id);
    return (int32_t)id;
}

/* tokenizer.json: refuse what is not BERT's WordPiece pipeline; take its
 * added tokens, its [UNK] and its framing (cls and sep texts and ids). */
static void load_tokenizer_pipeline(wordpiece *wp, const char *path, json_t *root,
                                    const char *specials[N_SPECIAL], int32_t *cls_id,
                                    int32_t *sep_id)
{
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "WordPiece"))
        die("%s: model type \"%s\" is not supported (WordPiece only)", path, type);
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk)
        specials[UNK] = unk;
    static const struct {
        const char *key, *type;
    } parts[] = {{"normalizer", "BertNormalizer"}, {"pre_tokenizer", "BertPreTokenizer"}};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        json_t *part = json_object_get(root, parts[i].key);
        const char *t = json_string_value(json_object_get(part, "type"));
        if (part && !json_is_null(part) && (!t || strcmp(t, parts[i].type)))
            die("%s: %s \"%s\" is not supported (%s only)", path, parts[i].key, t ? t : "?",
                parts[i].type);
    }
    json_t *added = json_object_get(root, "added_tokens");
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        const char *text = json_string_value(json_object_get(a, "content"));
        json_t *id = json_object_get(a, "id");
        if (!text || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX)
            die("%s: added_tokens[%zu]: content and id expected", path, i);
        if (json_is_true(json_object_get(a, "single_word")))
            die("%s: added token \"%s\" is single_word (not supported)", path, text);
        add_token(wp, path, text, (int32_t)json_integer_value(id),
                  json_is_true(json_object_get(a, "normalized")));
    }
    /* The framing: [cls] A [sep], given as BertProcessing / RobertaProcessing
     * (cls and sep: [text, id]) or a TemplateProcessing of that shape. */
    json_t *post = json_object_get(root, "post_processor");
    const char *ptype = json_string_value(json_object_get(post, "type"));
    if (post && !json_is_null(post)) {
        if (ptype && (!strcmp(ptype, "BertProcessing") || !strcmp(ptype, "RobertaProcessing"))) {
            json_t *c = json_object_get(post, "cls"), *sp = json_object_get(post, "sep");
            if (!json_is_string(json_array_get(c, 0)) || !json_is_integer(json_array_get(c, 1)) ||
                !json_is_string(json_array_get(sp, 0)) || !json_is_integer(json_array_get(sp, 1)))
                die("%s: post_processor: cls and sep must be [text, id]", path);
            specials[CLS] = json_string_value(json_array_get(c, 0));
            specials[SEP] = json_string_value(json_array_get(sp, 0));
            *cls_id = framing_id(path, json_array_get(c, 1));
            *sep_id = framing_id(path, json_array_get(sp, 1));
        } else if (ptype && !strcmp(ptype, "TemplateProcessing")) {
            json_t *single = json_object_get(post, "single");
            const char *first = json_string_value(
                json_object_get(json_object_get(json_array_get(single, 0), "SpecialToken"), "id"));
            const char *seq = json_string_value(
                json_object_get(json_object_get(json_array_get(single, 1), "Sequence"), "id"));
            const char *last = json_string_value(
                json_object_get(json_object_get(json_array_get(single, 2), "SpecialToken"), "id"));
            if (json_array_size(single) != 3 || !first || !seq || strcmp(seq, "A") || !last)
                die("%s: post_processor: only a single-sequence template special, A, special is "
                    "supported", path);
            json_t *st = json_object_get(post, "special_tokens");
            json_t *fi = json_object_get(json_object_get(st, first), "ids");
            json_t *la = json_object_get(json_object_get(st, last), "ids");
            if (json_array_size(fi) != 1 || json_array_size(la) != 1 ||
                !json_is_integer(json_array_get(fi, 0)) || !json_is_integer(json_array_get(la, 0)))
                die("%s: post_processor: special tokens %s and %s must have one id each", path,
                    first, last);
            specials[CLS] = first;
            specials[SEP] = last;
            *cls_id = framing_id(path, json_array_get(fi, 0));
            *sep_id = framing_id(path, json_array_get(la, 0));
        } else {
            die("%s: post_processor \"%s\" is not supported (BertProcessing, RobertaProcessing, "
                "TemplateProcessing)", path, ptype ? ptype : "?");
        }
    }
}

/* Id of a special token's text: an added token's, else the vocabulary's (-1). */
static int32_t special_lookup(const wordpiece *wp, const char *text)
{
    if (!text)
        return -1;
    for (int i = 0; i < wp->n_added; i++)
        if (!strcmp(wp->added[i].text, text))
            return wp->added[i].id;
    return lookup(wp, fnv(FNV_BASIS, text, strlen(text)), text, strlen(text), 0);
}

/* The tokenizer being loaded, with every JSON tree it has read.  A load
 * that dies under a die handler that carries on (the fuzz harness's)
 * leaves it here, and the next load frees it, rather than a few KB
 * abandoned per bad tokenizer. */
static wordpiece *loading;

wordpiece *wp_load(const char *model_dir, const char *vocab_path)
{
    wp_free(loading);
    wordpiece *wp = loading = xcalloc(1, sizeof *wp);
    wp->lowercase = wp->strip_accents = 1;
    const char *source = vocab_path;
    char *owned = NULL, *tok_json = NULL;
    for (int c = 0; c < 128; c++) {
        int cls = ASCII_WORD;
        if (c == '\t' || c == '\n' || c == '\r' || c == ' ')
            cls = ASCII_SPACE;
        else if (c < 32 || c == 127)
            cls = ASCII_DROP;
        else if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                 (c >= 123 && c <= 126))
            cls = ASCII_PUNCT;
        wp->ascii_class[c] = cls;
    }
    const char *specials[N_SPECIAL];
    memcpy(specials, bert_specials, sizeof specials);
    int32_t cls_id = -1, sep_id = -1;
    if (vocab_path) {
        load_vocab_txt(wp, vocab_path);
    } else {
        owned = path_join(model_dir, "vocab.txt");
        tok_json = path_join(model_dir, "tokenizer.json");
        if (!file_exists(owned)) {
            free(owned);
            owned = xstrdup(tok_json);
            if (!file_exists(owned))
                die("%s: no vocab.txt or tokenizer.json", model_dir);
            wp->json_roots[2] = load_json(tok_json, 0);
            load_tokenizer_json(wp, owned, wp->json_roots[2]);
        } else {
            load_vocab_txt(wp, owned);
        }
        source = owned;
        load_tokenizer_config(wp, model_dir, specials, wp->json_roots);
        if (file_exists(tok_json)) {
            if (!wp->json_roots[2]) /* read once, for the vocabulary too when it is there */
                wp->json_roots[2] = load_json(tok_json, 0);
            load_tokenizer_pipeline(wp, tok_json, wp->json_roots[2], specials, &cls_id, &sep_id);
        }
    }
    if (!wp->n_added) /* no tokenizer.json: the special tokens are the added ones */
        for (int i = 0; i < N_SPECIAL; i++) {
            int32_t id = special_lookup(wp, specials[i]);
            if (id >= 0)
                add_token(wp, source, specials[i], id, 0);
        }
    wp->unk_id = special_lookup(wp, specials[UNK]);
    wp->pad_id = special_lookup(wp, specials[PAD]);
    if (cls_id < 0)
        cls_id = special_lookup(wp, specials[CLS]);
    if (sep_id < 0)
        sep_id = special_lookup(wp, specials[SEP]);
    if (cls_id < 0 || sep_id < 0 || wp->unk_id < 0)
        die("%s: vocabulary lacks %s, %s or %s", source, specials[CLS] ? specials[CLS] : "cls_token",
            specials[SEP] ? specials[SEP] : "sep_token", specials[UNK] ? specials[UNK] : "unk_token");
    if (cls_id >= wp->vocab_size || sep_id >= wp->vocab_size) /* post_processor's ids */
        die("%s: post_processor: id %d of %s is not a token (the vocabulary has ids 0 to %d)",
            tok_json, cls_id >= wp->vocab_size ? cls_id : sep_id,
            cls_id >= wp->vocab_size ? specials[CLS] : specials[SEP], wp->vocab_size - 1);
    wp->cls_id = cls_id;
    wp->sep_id = sep_id;
    free(owned);
    free(tok_json);
    for (int i = 0; i < 3; i++)
        json_decref(wp->json_roots[i]);
    memset(wp->json_roots, 0, sizeof wp->json_roots);

    for (int c = 0; c < 128; c++)
        wp->ascii_map[c] = wp->lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c;
    loading = NULL;
    return wp;
}

void wp_free(wordpiece *wp)
{
    if (!wp)
        return;
    free(wp->slots);
    free(wp->pool);
    for (int i = 0; i < wp->n_added; i++)
        free(wp->added[i].text);
    for (int i = 0; i < 3; i++) /* a load that died (after one, none) */
        json_decref(wp->json_roots[i]);
    free(wp);
}

int32_t wp_vocab_size(const wordpiece *wp)
{
    return wp->vocab_size;
}

int32_t wp_pad_id(const wordpiece *wp)
{
    return wp->pad_id;
}

/* ---- encoding ---- */

/* The state of one wp_encode call: output so far and the word being built. */
typedef struct {
    const wordpiece *wp;
    int32_t *ids;
    int n, cap; /* ids written; room for pieces (the last slot is [SEP]'s) */
    /* The current word: nchars characters (possibly over MAX_WORD_CHARS, in
     * which case only the first ones are stored), character i at bytes
     * w[off[i]..off[i+1]), its canonical combining class in ccc[i].  Characters
     * from run on form the trailing run of nonzero combining classes that
     * canonical ordering may still rearrange. */
    int nchars, run;
    uint16_t off[MAX_WORD_CHARS + 1];
    uint8_t ccc[MAX_WORD_CHARS];
    char w[4 * MAX_WORD_CHARS];
} encoder;

static inline void emit(encoder *e, int32_t id)
{
    if (e->n < e->cap)
        e->ids[e->n++] = id;
}

/* WordPiece over the current word: greedy longest match first. */
static void wordpiece_word(encoder *e)
{
    const wordpiece *wp = e->wp;
    int32_t pieces[MAX_WORD_CHARS];
    uint32_t hash[MAX_WORD_CHARS + 1];
    int np = 0;
    for (int start = 0; start < e->nchars;) {
        int cont = start > 0;
        uint32_t limit = cont ? wp->max_cont_bytes : wp->max_word_bytes;
        const char *s = e->w + e->off[start];
        /* Hashes of every candidate piece w[start..end), end a character
         * boundary no further than the longest vocabulary piece. */
        uint32_t h = cont ? cont_basis() : FNV_BASIS;
        int last = start;
        for (int end = start + 1; end <= e->nchars; end++) {
            uint32_t n = e->off[end] - e->off[start];
            if (n > limit)
                break;
            for (uint32_t b = e->off[end - 1] - e->off[start]; b < n; b++)
                h = fnv_step(h, (unsigned char)s[b]);
            hash[end] = h;
            last = end;
        }
        int32_t id = -1;
        int end = last;
        for (; end > start; end--) {
            id = lookup(wp, hash[end], s, e->off[end] - e->off[start], cont);
            if (id >= 0)
                break;
        }
        if (id < 0) {
            pieces[0] = wp->unk_id;
            np = 1;
            break;
        }
        pieces[np++] = id;
        start = end;
    }
    for (int i = 0; i < np; i++)
        emit(e, pieces[i]);
}

/* End the current word, if any: emit its pieces. */
static void flush(encoder *e)
{
    if (e->nchars > MAX_WORD_CHARS)
        emit(e, e->wp->unk_id);
    else if (e->nchars)
        wordpiece_word(e);
    e->nchars = e->run = 0;
}

static inline void append_ascii(encoder *e, char c)
{
    if (e->nchars < MAX_WORD_CHARS) {
        int b = e->off[e->nchars];
        e->w[b] = c;
        e->off[e->nchars + 1] = b + 1;
    }
    e->run = ++e->nchars;
}

/* Append a character with combining class ccc, placing it as canonical
 * ordering (part of NFD) does: after the characters of its run whose class
 * is not greater.  ccc is 0 when no NFD is applied. */
static void append_char(encoder *e, int32_t cp, int ccc)
{
    if (e->nchars >= MAX_WORD_CHARS) {
        e->nchars++;
        return;
    }
    uint8_t u[4];
    int k = utf8proc_encode_char(cp, u);
    int pos = e->nchars;
    if (ccc)
        while (pos > e->run && e->ccc[pos - 1] > ccc)
            pos--;
    int at = e->off[pos];
    memmove(e->w + at + k, e->w + at, e->off[e->nchars] - at);
    memcpy(e->w + at, u, k);
    for (int i = e->nchars; i >= pos; i--)
        e->off[i + 1] = e->off[i] + k;
    memmove(e->ccc + pos + 1, e->ccc + pos, e->nchars - pos);
    e->ccc[pos] = ccc;
    e->nchars++;
    if (!ccc)
        e->run = e->nchars;
}

/* A character of the normalized text, going to the pre-tokenizer:
 * punctuation becomes a word of its own. */
static void pretokenize_char(encoder *e, int32_t cp, int ccc)
{
    int punct;
    if (cp < 128) {
        punct = e->wp->ascii_class[cp] == ASCII_PUNCT;
    } else {
        int cat = hf_category(cp);
        punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
    }
    if (punct) {
        flush(e);
        append_char(e, cp, 0);
        flush(e);
    } else {
        append_char(e, cp, ccc);
    }
}

static int32_t lower(int32_t cp)
{
    return cp < 128 ? (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp) : utf8proc_tolower(cp);
}

/* Accent stripping (NFD, then drop Mn) and lowercasing of one character that
 * cleaning kept. */
static void normalize_char(encoder *e, int32_t cp)
{
    const wordpiece *wp = e->wp;
    if (!wp->strip_accents) {
        if (!wp->lowercase) {
            pretokenize_char(e, cp, 0);
        } else if (cp == 0x130) {
            /* Full lowercase mapping: İ -> i + combining dot above. */
            pretokenize_char(e, 'i', 0);
            pretokenize_char(e, 0x307, 0);
        } else {
            pretokenize_char(e, lower(cp), 0);
        }
        return;
    }
    utf8proc_int32_t d[8];
    utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 8, UTF8PROC_DECOMPOSE, NULL);
    if (n < 0 || n > 8)
        die("utf8proc cannot decompose U+%04X", (unsigned)cp);
    for (int i = 0; i < n; i++) {
        /* Hugging Face's normalization tables predate the characters it
         * sees as unassigned: no combining class for those. */
        int cat = unicode8_override(d[i]);
        int ccc = cat == CN ? 0 : utf8proc_get_property(d[i])->combining_class;
        if (cat < 0)
            cat = utf8proc_category(d[i]);
        if (cat == MN) {
            /* Dropped; one of class 0 still ends a run of marks. */
            if (!ccc)
                e->run = e->nchars;
            continue;
        }
        pretokenize_char(e, wp->lowercase ? lower(d[i]) : d[i], ccc);
    }
}

/* A non-ASCII character of the raw text. */
static void push_char(encoder *e, int32_t cp)
{
    if (is_dropped(cp, hf_category(cp)))
        return;
    if (is_space(cp)) {
        flush(e);
    } else if (is_cjk(cp)) {
        flush(e);
        normalize_char(e, cp);
        flush(e);
    } else {
        normalize_char(e, cp);
    }
}

/* Decode one UTF-8 character at p (n >= 1 bytes left, p[0] >= 0x80), strictly:
 * no overlong forms, surrogates or values past U+10FFFF.  Returns its length,
 * or -1 when invalid. */
static int utf8_decode(const unsigned char *p, size_t n, int32_t *cp)
{
    unsigned c = p[0];
    int len;
    int32_t v, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return -1;
    if (n < (size_t)len)
        return -1;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return -1;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    *cp = v;
    return len;
}

static int utf8_valid(const unsigned char *p, const unsigned char *end)
{
    int32_t cp;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        int k = utf8_decode(p, end - p, &cp);
        if (k < 0)
            return 0;
        p += k;
    }
    return 1;
}

/* If p starts an added token, emit its id and return its length (the
 * longest one, as tokenizers' leftmost-longest match).  A normalized one
 * matches the text as lowercasing would give it; only ASCII letters are
 * folded, which is exact for added tokens of ASCII text. */
static int special_at(encoder *e, const unsigned char *p, const unsigned char *end)
{
    const wordpiece *wp = e->wp;
    const added_token *best = NULL;
    for (int i = 0; i < wp->n_added; i++) {
        const added_token *a = &wp->added[i];
        if ((size_t)(end - p) < a->len || (best && a->len <= best->len))
            continue;
        int same = a->normalized && wp->lowercase ? !strncasecmp((const char *)p, a->text, a->len)
                                                  : !memcmp(p, a->text, a->len);
        if (same)
            best = a;
    }
    if (!best)
        return 0;
    flush(e);
    emit(e, best->id);
    return best->len;
}

int wp_encode(const wordpiece *wp, const char *text, size_t len, int32_t *ids, int max_len)
{
    if (max_len < 2)
        die("wp_encode: max_len %d is less than 2", max_len);
    encoder e;
    e.wp = wp;
    e.ids = ids;
    e.cap = max_len - 1;
    e.n = 0;
    e.nchars = e.run = 0;
    e.off[0] = 0;
    emit(&e, wp->cls_id);
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    while (p < end && e.n < e.cap) {
        unsigned c = *p;
        if (c < 0x80) {
            switch (wp->ascii_class[c]) {
            case ASCII_WORD:
                append_ascii(&e, wp->ascii_map[c]);
                break;
            case ASCII_SPACE:
                flush(&e);
                break;
            case ASCII_PUNCT:
                if (wp->added_first[c]) {
                    int k = special_at(&e, p, end);
                    if (k) {
                        p += k;
                        continue;
                    }
                }
                flush(&e);
                append_ascii(&e, c);
                flush(&e);
                break;
            }
            p++;
            continue;
        }
        int32_t cp;
        int k = utf8_decode(p, end - p, &cp);
        if (k < 0)
            return -1;
        push_char(&e, cp);
        p += k;
    }
    flush(&e);
    /* Output full: the rest is not tokenized but must still be valid. */
    if (!utf8_valid(p, end))
        return -1;
    ids[e.n++] = wp->sep_id;
    return e.n;
}

/* ---- default length ---- */

/* An integer member of a JSON file, or 0 when the file or the member is
 * absent (or null).  A member that is not an integer from lo to hi is fatal,
 * except that values of at least 1e18 mean "no limit" (0) when huge_is_none:
 * transformers writes VERY_LARGE_INTEGER (1e30) as model_max_length for
 * tokenizers without one. */
static long json_file_int(const char *dir, const char *file, const char *key, long lo, long hi,
                          int huge_is_none)
{
    char *path = path_join(dir, file);
    long v = 0;
    if (file_exists(path)) {
        json_t *root = load_json(path, JSON_DECODE_INT_AS_REAL);
        json_t *x = json_object_get(root, key);
        double d = json_number_value(x);
        if (x && !json_is_null(x)) {
            if (huge_is_none && json_is_number(x) && d >= 1e18)
                v = 0;
            else if (!json_is_number(x) || !(d >= lo && d <= hi) || d != (double)(long)d)
                die("%s: %s must be an integer from %ld to %ld", path, key, lo, hi);
            else
                v = (long)d;
        }
        json_decref(root);
    }
    free(path);
    return v;
}

int wp_tokenizer_max_length(const char *dir)
{
    return json_file_int(dir, "tokenizer_config.json", "model_max_length", 1, WP_MAX_LENGTH_LIMIT, 1);
}

int wp_default_max_length(const char *model_dir)
{
    if (!model_dir)
        return WP_DEFAULT_MAX_LENGTH;
    long pos = json_file_int(model_dir, "config.json", "max_position_embeddings", 1, 1 << 20, 0);
    /* MPNet never gives a token positions 0 and 1 (bert.h's bert_max_tokens). */
    char *config = path_join(model_dir, "config.json");
    if (pos > 2 && file_exists(config)) {
        json_t *root = load_json(config, JSON_DECODE_INT_AS_REAL);
        const char *type = json_string_value(json_object_get(root, "model_type"));
        if (type && !strcmp(type, "mpnet"))
            pos -= 2;
        json_decref(root);
    }
    free(config);
    long n = json_file_int(model_dir, "sentence_bert_config.json", "max_seq_length", 2,
                           pos ? pos : WP_MAX_LENGTH_LIMIT, 0);
    if (n)
        return n;
    long tok = wp_tokenizer_max_length(model_dir);
    if (pos && tok)
        return pos < tok ? pos : tok;
    if (pos || tok)
        return pos ? pos : tok;
    return WP_DEFAULT_MAX_LENGTH;
}
