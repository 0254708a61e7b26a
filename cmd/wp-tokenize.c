/* wp-tokenize - lines of tab-separated text columns to token frames: each
 * column of each line is tokenized (BERT WordPiece, as Hugging Face's fast
 * tokenizer does) as a sequence of its own, [CLS] ... [SEP]. */
#include "input.h"
#include "npy.h"
#include "util.h"
#include "wordpiece.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* Longest --max-length accepted: far past any BERT, small enough that a
 * frame's buffers stay modest. */
#define MAX_LENGTH_LIMIT 1048576

/* The rows of the frame being collected: the ids of all its sequences one
 * after another, and each sequence's length. */
typedef struct {
    int cols;
    int64_t rows;
    int32_t *ids;
    size_t n, cap;
    int32_t *lens;   /* STREAM_FRAME_ROWS * cols */
    int32_t *padded; /* the frame as written, reused */
    size_t padded_cap;
} frame;

static void frame_write(frame *f)
{
    if (!f->rows)
        return;
    int64_t nseq = f->rows * f->cols, len = 0;
    for (int64_t s = 0; s < nseq; s++)
        if (f->lens[s] > len)
            len = f->lens[s];
    size_t need = (size_t)nseq * len;
    if (need > f->padded_cap)
        f->padded = xrealloc(f->padded, (f->padded_cap = need) * sizeof *f->padded);
    const int32_t *src = f->ids;
    for (int64_t s = 0; s < nseq; s++) {
        int32_t *dst = f->padded + s * len;
        memcpy(dst, src, f->lens[s] * sizeof *dst);
        for (int64_t i = f->lens[s]; i < len; i++)
            dst[i] = -1;
        src += f->lens[s];
    }
    int64_t shape[3] = {f->rows, f->cols, len};
    npy_write(stdout, "stdout", NPY_I4, 3, shape, f->padded);
    f->rows = 0;
    f->n = 0;
}

static void usage(void)
{
    out_printf(stdout, "stdout", "%s",
"Usage: wp-tokenize (-m MODEL_DIR | -v VOCAB) [OPTION]... [FILE]...\n"
"Tokenize lines of tab-separated text columns for BERT and write token frames\n"
"(<i4, shape (rows, columns, length), each sequence [CLS] ... [SEP] then -1\n"
"padding to the longest sequence of its frame).  Each column is a sequence of\n"
"its own; every line must have the same number of columns.  The tokens are\n"
"those of Hugging Face's fast BERT tokenizer.  With no FILE, or when FILE is -,\n"
"read standard input.\n"
"\n"
"Options:\n"
"  -m, --model=DIR       model directory: vocab.txt (or tokenizer.json),\n"
"                        tokenizer_config.json (do_lower_case)\n"
"  -v, --vocab=FILE      vocabulary of an uncased BERT (lowercases, strips accents)\n"
"  -l, --max-length=N    at most N tokens per sequence, [CLS] and [SEP] included:\n"
"                        longer texts keep their first N-2 pieces (default: the\n"
"                        model's max_seq_length or maximum positions, else 512)\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input (invalid UTF-8, uneven columns) or failure,\n"
"2 usage error.\n");
    out_close(stdout, "stdout");
}

int main(int argc, char **argv)
{
    util_init(argv[0]);
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"vocab", required_argument, NULL, 'v'},
        {"max-length", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *vocab = NULL;
    long max_len = 0;
    int c;
    opterr = 0; /* our own one-line messages below */
    while ((c = getopt_long(argc, argv, ":m:v:l:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'v':
            vocab = optarg;
            break;
        case 'l':
            if (parse_long(optarg, 2, MAX_LENGTH_LIMIT, &max_len) != 0)
                die_usage("--max-length: '%s' is not a whole number from 2 to %d", optarg,
                          MAX_LENGTH_LIMIT);
            break;
        case 'h':
            usage();
            return 0;
        case 'V':
            print_version();
            return 0;
        default:
            die_bad_option(c, argv);
        }
    }
    if (!model == !vocab)
        die_usage("give one of -m MODEL_DIR and -v VOCAB");

    wordpiece *wp = wp_load(model, vocab);
    if (!max_len)
        max_len = wp_default_max_length(model);
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    input_set in;
    input_init(&in, argc - optind, argv + optind);
    frame f = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = input_getline(&in, &line, &cap)) >= 0) {
        int cols = 1;
        for (const char *t = line; (t = memchr(t, '\t', line + len - t)); t++)
            cols++;
        if (!f.cols) {
            f.cols = cols;
            f.lens = xmallocarray((size_t)STREAM_FRAME_ROWS * cols, sizeof *f.lens);
        } else if (cols != f.cols) {
            die("%s:%ld: %d column%s, expected %d as on the first line", in.name, in.line, cols,
                cols == 1 ? "" : "s", f.cols);
        }
        const char *text = line, *end = line + len;
        for (int j = 0; j < cols; j++) {
            const char *tab = memchr(text, '\t', end - text);
            const char *stop = tab ? tab : end;
            if (f.n + max_len > f.cap) {
                f.cap = 2 * (f.n + max_len);
                f.ids = xrealloc(f.ids, f.cap * sizeof *f.ids);
            }
            int n = wp_encode(wp, text, stop - text, f.ids + f.n, max_len);
            if (n < 0)
                die("%s:%ld: invalid UTF-8", in.name, in.line);
            f.lens[f.rows * cols + j] = n;
            f.n += n;
            text = stop + 1;
        }
        if (++f.rows == STREAM_FRAME_ROWS)
            frame_write(&f);
    }
    frame_write(&f);
    out_close(stdout, "stdout");
    free(line);
    free(f.ids);
    free(f.lens);
    free(f.padded);
    wp_free(wp);
    return 0;
}
