/* mnr-train --labels' reader (lib/sampler.c: train_data_read_labels) on
 * arbitrary bytes: the first byte gives the training rows (0 to 15), the
 * rest is the labels file, read as standard input.  What it accepts gives
 * every row a label in [0, 3); what it refuses, it refuses with one line
 * (fuzz.h). */
#include "fuzz.h"
#include "sampler.h"

enum { LABELS = 3 }; /* as the softmax loss's three NLI classes */

static char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    path = path_join(fuzz_temp_dir("fuzz-labels"), "labels.txt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f && fwrite(data + 1, 1, size - 1, f) == size - 1 && fclose(f) == 0,
                "cannot write %s", path);
    static train_data d; /* static: what a dying read allocated is freed by the next */
    free(d.labels);
    memset(&d, 0, sizeof d);
    d.rows = data[0] % 16;
    /* Read as standard input, which freopen points at the file: a read that
     * dies leaves its input open, as a tool exiting would, and a FILE
     * opened by name each time would use up the descriptors (and 4 KB of
     * buffer each) within seconds. */
    FUZZ_ASSERT(freopen(path, "rb", stdin), "cannot reopen stdin from %s", path);
    if (!FUZZ_TRY(train_data_read_labels(&d, "-", LABELS)))
        return 0;
    for (int64_t r = 0; r < d.rows; r++)
        FUZZ_ASSERT(d.labels[r] >= 0 && d.labels[r] < LABELS, "row %lld: label %d",
                    (long long)r, d.labels[r]);
    return 0;
}
