/* spearman - score sentence-pair similarities against gold scores: Spearman's
 * rank correlation and Pearson's r, as sentence-transformers' STS evaluator
 * reports them (scipy.stats.spearmanr / pearsonr of cosine vs gold). */
#include "npy.h"
#include "stats.h"
#include "util.h"

#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double *v;
    size_t n, cap;
} values;

static void values_push(values *x, double v)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->v = xrealloc(x->v, x->cap * sizeof *x->v);
    }
    x->v[x->n++] = v;
}

/* The name an operand has in messages, as input.c names it. */
static const char *display_name(const char *path)
{
    return strcmp(path, "-") ? path : "stdin";
}

/* A file of one finite number per line; every line must hold one, so that
 * value k is on line k.  With allow_empty, an empty (or blank) line is a pair
 * without a value: NaN there, counted in *empty. */
static values read_numbers(char *path, int allow_empty, size_t *empty)
{
    input_set in;
    input_init(&in, 1, &path);
    values x = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = input_getline(&in, &line, &cap)) >= 0) {
        /* getline keeps NUL bytes, which would end the number early for
         * strtod: "1.5\0junk" must not read as 1.5. */
        const char *nul = memchr(line, 0, (size_t)len);
        if (nul)
            die("%s:%ld: NUL byte at column %td, expected one number", in.name, in.line,
                nul - line + 1);
        while (len && isspace((unsigned char)line[len - 1])) /* CRLF, trailing blanks */
            line[--len] = 0;
        if (len == 0) {
            if (!allow_empty)
                die("%s:%ld: empty line, expected a number", in.name, in.line);
            values_push(&x, NAN);
            ++*empty;
            continue;
        }
        double v;
        if (parse_double(line, &v) != 0)
            die("%s:%ld: '%.40s' is not a finite number", in.name, in.line, line);
        values_push(&x, v);
    }
    free(line);
    return x;
}

/* The cosine of each row of a stream of (rows, 2, dim) embedding frames.
 * Stops with an error at the first row beyond the gold's count. */
static values read_cosines(char *path, const char *gold_name, size_t gold_n)
{
    npy_reader r;
    npy_reader_init(&r, 1, &path);
    npy_array a = {0};
    values x = {0};
    while (npy_read(&r, &a, NPY_F4)) {
        int64_t rows = a.shape[0], cols = a.shape[1];
        int dim = (int)a.shape[2];
        if (cols != 2)
            npy_frame_error(&r, "%lld columns, expected 2 (sentence pairs)", (long long)cols);
        const float *e = a.data;
        for (int64_t i = 0; i < rows; i++) {
            if (x.n == gold_n)
                npy_frame_error(&r, "row %lld has no gold value: %s has %zu values",
                                (long long)i, gold_name, gold_n);
            double c = cosine_f32(e + 2 * i * dim, e + (2 * i + 1) * dim, dim);
            if (isnan(c))
                npy_frame_error(&r, "row %lld: NaN or infinite value in the embeddings",
                                (long long)i);
            values_push(&x, c);
        }
    }
    npy_free(&a);
    return x;
}

static void usage(void)
{
    out_printf(stdout, "stdout", "%s",
"Usage: spearman -g GOLD [OPTION]... [STREAM]\n"
"  or:  spearman -g GOLD -s SCORES [OPTION]...\n"
"Score sentence-pair similarities against gold scores and print one line:\n"
"  spearman R pearson R n N              (with --skip-empty: ... n N skipped K)\n"
"Spearman's rank correlation (ties get average ranks) and Pearson's r, as\n"
"scipy.stats.spearmanr and pearsonr compute them.\n"
"\n"
"STREAM holds embedding frames (<f4, shape (rows, 2, dim)); the score of a row\n"
"is the cosine similarity of its two vectors, a.b / sqrt(|a|^2 |b|^2) in double\n"
"precision (exactly 1 for identical vectors, 0 for a zero vector).  With no\n"
"STREAM, or when STREAM is -, read standard input.  GOLD and SCORES hold one\n"
"number per line, in the order of the rows.\n"
"\n"
"Options:\n"
"  -g, --gold=FILE       gold scores, one per line (required)\n"
"  -s, --predicted=FILE  read the scores from FILE, one per line, not a stream\n"
"      --scores          print each row's score (9 decimals), skipped rows too,\n"
"                        before the result\n"
"      --digits=N        decimals in the result line (default 6, at most 17)\n"
"      --skip-empty      leave out the pairs whose gold line is empty (unscored\n"
"                        pairs, as in STS 2015 and 2016) and count them:\n"
"                        the line ends with 'skipped K'\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"Exit status: 0 success, 1 malformed input or undefined correlation, 2 usage error.\n");
    out_close(stdout, "stdout");
}

enum { OPT_SCORES = 256, OPT_DIGITS, OPT_SKIP_EMPTY };

int main(int argc, char **argv)
{
    util_init(argv[0]);
    static const struct option longopts[] = {
        {"gold", required_argument, NULL, 'g'},
        {"predicted", required_argument, NULL, 's'},
        {"scores", no_argument, NULL, OPT_SCORES},
        {"digits", required_argument, NULL, OPT_DIGITS},
        {"skip-empty", no_argument, NULL, OPT_SKIP_EMPTY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char *gold_path = NULL, *scores_path = NULL;
    int print_scores = 0, skip_empty = 0, c;
    long digits = 6;
    opterr = 0; /* our own one-line messages below */
    while ((c = getopt_long(argc, argv, ":g:s:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'g':
            gold_path = optarg;
            break;
        case 's':
            scores_path = optarg;
            break;
        case OPT_SCORES:
            print_scores = 1;
            break;
        case OPT_SKIP_EMPTY:
            skip_empty = 1;
            break;
        case OPT_DIGITS:
            if (parse_long(optarg, 0, 17, &digits) != 0)
                die_usage("--digits: '%s' is not a whole number from 0 to 17", optarg);
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
    if (!gold_path)
        die_usage("no gold scores: -g GOLD is required");
    if (argc - optind > 1)
        die_usage("extra operand '%s'", argv[optind + 1]);
    char *stream_path = optind < argc ? argv[optind] : "-";
    if (scores_path && optind < argc)
        die_usage("both -s SCORES and STREAM given: score one or the other");
    const char *input_path = scores_path ? scores_path : stream_path;
    if (!strcmp(gold_path, "-") && !strcmp(input_path, "-"))
        die_usage("GOLD and %s cannot both be standard input", scores_path ? "SCORES" : "STREAM");

    const char *gold_name = display_name(gold_path), *input_name = display_name(input_path);
    size_t skipped = 0, unused = 0;
    values gold = read_numbers(gold_path, skip_empty, &skipped);
    values scores;
    if (scores_path) {
        scores = read_numbers(scores_path, 0, &unused);
        if (scores.n > gold.n)
            die("%s:%zu: no matching gold value: %s has %zu %s", input_name, gold.n + 1,
                gold_name, gold.n, skip_empty ? "lines" : "values");
    } else {
        scores = read_cosines(stream_path, gold_name, gold.n);
    }
    if (scores.n < gold.n)
        die("%s:%zu: no matching score: %s has %zu %s", gold_name, scores.n + 1, input_name,
            scores.n, scores_path ? "values" : "rows");

    if (print_scores)
        for (size_t i = 0; i < scores.n; i++)
            out_printf(stdout, "stdout", "%.9f\n", scores.v[i]);
    /* The pairs with a gold value (all of them without --skip-empty). */
    size_t n = 0;
    for (size_t i = 0; i < gold.n; i++)
        if (!isnan(gold.v[i])) {
            gold.v[n] = gold.v[i];
            scores.v[n++] = scores.v[i];
        }
    if (n < 2)
        die("%s: %zu values: a correlation needs at least 2", gold_name, n);
    if (stats_all_equal(gold.v, n))
        die("%s: all %zu values are equal: the correlation is undefined", gold_name, n);
    if (stats_all_equal(scores.v, n))
        die("%s: all %zu scores are equal: the correlation is undefined", input_name, n);

    double rho = stats_spearman(scores.v, gold.v, n), r = stats_pearson(scores.v, gold.v, n);
    out_printf(stdout, "stdout", "spearman %.*f pearson %.*f n %zu", (int)digits, rho,
               (int)digits, r, n);
    if (skip_empty)
        out_printf(stdout, "stdout", " skipped %zu", skipped);
    out_printf(stdout, "stdout", "\n");
    out_close(stdout, "stdout");
    free(gold.v);
    free(scores.v);
    return 0;
}
