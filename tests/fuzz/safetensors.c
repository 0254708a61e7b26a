/* safetensors files (lib/safetensors.c): st_parse, then every tensor read. */
#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static safetensors st;
    if (!FUZZ_TRY(st_parse(&st, "fuzz.safetensors", data, size)))
        return 0;
    size_t total = 0;
    for (int i = 0; i < st.count; i++) {
        const st_tensor *t = &st.tensors[i];
        FUZZ_ASSERT((const uint8_t *)t->data >= data && t->nbytes <= size &&
                        (const uint8_t *)t->data + t->nbytes <= data + size,
                    "tensor %s outside the file", t->name);
        FUZZ_ASSERT(t->nbytes == t->numel * st_dtype_size(t->dtype), "tensor %s size", t->name);
        FUZZ_ASSERT(st_find(&st, t->name) == t, "st_find %s", t->name);
        float *f = malloc(t->numel * sizeof *f + 1);
        st_to_f32(t, f);
        free(f);
        total += t->nbytes;
    }
    FUZZ_ASSERT(total <= size, "tensors overlap: %zu bytes of tensors in %zu", total, size);
    free(st_metadata(&st, "format"));
    st_close(&st);
    return 0;
}
