/* config.json (lib/model.c): config_parse_buffer and what it promises. */
#include "fuzz.h"
#include "model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bert_config c;
    if (!FUZZ_TRY(config_parse_buffer(&c, "fuzz/config.json", (const char *)data, size)))
        return 0;
    FUZZ_ASSERT(c.vocab_size > 0 && c.hidden > 0 && c.layers > 0 && c.heads > 0 &&
                    c.intermediate > 0 && c.max_positions > 0,
                "non-positive size");
    /* BERT has token types and no relative bias; MPNet the other way round */
    FUZZ_ASSERT(c.arch == ARCH_MPNET ? c.type_vocab == 0 && c.rel_buckets > 0
                                     : c.type_vocab > 0 && c.rel_buckets == 0,
                "arch %d: type_vocab %d rel_buckets %d", (int)c.arch, c.type_vocab,
                c.rel_buckets);
    FUZZ_ASSERT(c.hidden % c.heads == 0, "hidden %d heads %d", c.hidden, c.heads);
    FUZZ_ASSERT(c.ln_eps > 0 && c.hidden_dropout >= 0 && c.hidden_dropout < 1 &&
                    c.attn_dropout >= 0 && c.attn_dropout < 1,
                "eps or dropout out of range");
    return 0;
}
