/* A model directory's weights (lib/model.c): the input is model.safetensors
 * beside a fixed small config.json, loaded by model_load and
 * model_load_bf16 (the tensors found and checked against the
 * configuration, then copied in parts, the word embeddings' whole pages
 * mapped from the file in place when they line up, the layers' matrices in
 * bf16 for model_load_bf16). */
#include "fuzz.h"
#include "gemm.h"
#include "model.h"
#include "safetensors.h"


/* A word embedding table of 128 x 8 floats is one page of 4 KB: a seed
 * whose data start on a page boundary (tests/fuzz/mkseeds.py) takes the
 * path that maps it. */
static const char config[] =
    "{\"vocab_size\": 128, \"hidden_size\": 8, \"num_hidden_layers\": 1, "
    "\"num_attention_heads\": 2, \"intermediate_size\": 16, \"max_position_embeddings\": 8, "
    "\"type_vocab_size\": 2, \"hidden_act\": \"gelu\"}";

static char *dir, *weights;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    dir = fuzz_temp_dir("fuzz-weights");
    char *path = path_join(dir, "config.json");
    FILE *f = fopen(path, "w");
    if (!f || fputs(config, f) < 0 || fclose(f) != 0)
        abort();
    free(path);
    weights = path_join(dir, "model.safetensors");
    return 0;
}

/* Every parameter of m as the file's tensor of its name (st_to_f32), when
 * the file names them all as bert_tensors does: 1 if equal bit for bit, 0
 * if not, -1 when the names differ (the hub's prefixed or gamma/beta
 * names, or no pooler). */
static int params_as_file(const bert_model *m)
{
    safetensors st;
    if (!FUZZ_TRY(st_open(&st, weights)))
        return -1;
    int nt = bert_tensors(&m->cfg, NULL), same = 1;
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(&m->cfg, bt);
    for (int i = 0; i < nt && same == 1; i++) {
        const st_tensor *t = st_find(&st, bt[i].name);
        if (!t) {
            same = -1;
            break;
        }
        float *want = xmallocarray(t->numel + 1, sizeof *want);
        st_to_f32(t, want);
        same = !memcmp(want, m->params + bt[i].offset, t->numel * sizeof *want);
        free(want);
    }
    free(bt);
    st_close(&st);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(weights, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    static bert_model m, m16;
    if (!FUZZ_TRY(model_load(&m, dir))) {
        model_free(&m); /* what it had read: the directory's names, config.json */
        return 0;
    }
    FUZZ_ASSERT(m.params && !m.params16, "model_load: params %p params16 %p", (void *)m.params,
                (void *)m.params16);
    FUZZ_ASSERT(params_as_file(&m) != 0, "model_load's parameters differ from the file's tensors");
    /* model_load_bf16 checks the same and accepts the same */
    FUZZ_ASSERT(FUZZ_TRY(model_load_bf16(&m16, dir)), "model_load_bf16 refused: %s", fuzz_error);
    FUZZ_ASSERT(m16.nparams == m.nparams && m16.params16, "model_load_bf16: no bf16 matrices");
    size_t off[P_COUNT + 1];
    bert_param_offsets(&m.cfg, off);
    for (int p = 0; p < P_COUNT; p++) {
        int matrix = p == P_QKV_W || p == P_ATTN_OUT_W || p == P_FFN_IN_W || p == P_FFN_OUT_W;
        for (size_t i = off[p]; i < off[p + 1]; i++) {
            uint32_t a, b;
            memcpy(&a, &m.params[i], 4);
            memcpy(&b, &m16.params[i], 4);
            FUZZ_ASSERT(matrix ? b == 0 && m16.params16[i] == bf16_round(m.params[i])
                               : a == b && m16.params16[i] == 0,
                        "model_load_bf16 at float %zu (kind %d) against model_load", i, p);
        }
    }
    model_free(&m16);
    model_free(&m);
    return 0;
}
