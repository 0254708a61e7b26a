/* NPY tensor streams (lib/npy.c): token frames as embed and mnr-train read
 * them (with tokens_check), embedding frames as spearman does. */
#include "fuzz.h"
#include "npy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the dtype a tool would ask for. */
    npy_dtype want = size && (data[0] & 1) ? NPY_F4 : NPY_I4;
    if (size) {
        data++;
        size--;
    }
    npy_reader r;
    static npy_array a;
    static int32_t *lens;
    static size_t lens_cap;
    volatile long frames = 0;
    npy_reader_init_mem(&r, data, size, "fuzz.npy");
    if (FUZZ_TRY(({
            while (npy_read(&r, &a, want)) {
                frames++;
                FUZZ_ASSERT(a.ndim == 3 && a.data, "frame without data");
                uint64_t nseq = (uint64_t)a.shape[0] * a.shape[1];
                FUZZ_ASSERT(nseq * a.shape[2] * 4 <= a.cap, "frame larger than its buffer");
                /* Resource limit of the harness, not of the reader: frames of
                 * many empty sequences take long to check. */
                if (want == NPY_I4 && nseq <= 1 << 16) {
                    if (lens_cap < nseq) {
                        lens = realloc(lens, nseq * sizeof *lens);
                        lens_cap = nseq;
                    }
                    tokens_check(&r, &a, 30522, lens);
                    for (uint64_t s = 0; s < nseq; s++)
                        FUZZ_ASSERT(lens[s] >= 0 && lens[s] <= a.shape[2], "length %d", lens[s]);
                }
            }
        })))
        FUZZ_ASSERT(r.in.f == NULL, "stream not closed at its end");
    else
        FUZZ_ASSERT(strstr(fuzz_error, "fuzz.npy: frame "), "frame error without its place: %s",
                    fuzz_error);
    input_close(&r.in);
    (void)frames;
    return 0;
}
