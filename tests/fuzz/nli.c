/* nli-filter's row parser (lib/nli.c): each line of the input, as
 * nli-filter splits it, in each input format. */
#include "fuzz.h"
#include "nli.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_init();
    return 0;
}

static void check_text(const char *s)
{
    FUZZ_ASSERT(s && !strpbrk(s, "\t\n\r"), "text with a tab or line break");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nli_parser p;
    char *buf = malloc(size + 1);
    for (int format = FORMAT_AUTO; format <= FORMAT_TSV; format++) {
        memcpy(buf, data, size);
        buf[size] = 0;
        for (char *line = buf, *end = buf + size; line <= end;) {
            char *nl = memchr(line, '\n', end - line);
            size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
            line[n] = 0;
            if (n && line[n - 1] == '\r')
                line[--n] = 0;
            if (n) {
                nli_row row;
                if (nli_parse_line(&p, line, n, format, &row) == 0) {
                    FUZZ_ASSERT(row.label >= LABEL_NONE && row.label <= LABEL_CONTRADICTION,
                                "label %d", row.label);
                    check_text(row.premise);
                    check_text(row.hypothesis);
                } else {
                    FUZZ_ASSERT(p.error[0] && !strpbrk(p.error, "\n\r"), "error \"%s\"", p.error);
                }
            }
            if (!nl)
                break;
            line = nl + 1;
        }
    }
    free(buf);
    return 0;
}
