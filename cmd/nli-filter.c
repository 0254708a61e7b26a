/* nli-filter - natural language inference rows to sentence-embedding training
 * data: (anchor, positive) pairs from the entailment rows, with --triplets
 * (anchor, positive, hard negative) as in the AllNLI recipe, or with --labels
 * every labelled row and its class (SoftmaxLoss).  See nli-filter(1).
 *
 * Input lines are SNLI/MultiNLI official JSON Lines, Hugging Face `datasets`
 * JSON Lines exports or TSV, recognised line by line; output is TSV. */
#define _GNU_SOURCE
#include "input.h"
#include "nli.h"
#include "util.h"

#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* --triplets: every premise with its entailment and contradiction
 * hypotheses, in order of first appearance, found through a hash table. */
typedef struct {
    char **v;
    size_t n, cap;
} text_list;

typedef struct {
    char *text;
    uint64_t hash;
    text_list entail, contra;
} premise;

typedef struct {
    premise *items;
    size_t count, cap;
    size_t *slots; /* index into items + 1; 0 = empty */
    size_t nslots; /* a power of two, kept at least twice count */
} premise_table;

static void text_list_push(text_list *l, const char *s)
{
    if (l->n == l->cap)
        l->v = xrealloc(l->v, (l->cap = l->cap ? 2 * l->cap : 2) * sizeof *l->v);
    l->v[l->n++] = xstrdup(s);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void table_grow(premise_table *t)
{
    size_t nslots = t->nslots ? 2 * t->nslots : 1024;
    size_t *slots = xcalloc(nslots, sizeof *slots);
    for (size_t i = 0; i < t->count; i++) {
        size_t s = t->items[i].hash & (nslots - 1);
        while (slots[s])
            s = (s + 1) & (nslots - 1);
        slots[s] = i + 1;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
}

static premise *table_get(premise_table *t, const char *text)
{
    if (2 * (t->count + 1) > t->nslots)
        table_grow(t);
    uint64_t h = fnv1a(text);
    size_t s = h & (t->nslots - 1);
    for (; t->slots[s]; s = (s + 1) & (t->nslots - 1)) {
        premise *p = &t->items[t->slots[s] - 1];
        if (p->hash == h && !strcmp(p->text, text))
            return p;
    }
    if (t->count == t->cap)
        t->items = xrealloc(t->items, (t->cap = t->cap ? 2 * t->cap : 1024) * sizeof *t->items);
    premise *p = &t->items[t->count];
    memset(p, 0, sizeof *p);
    p->text = xstrdup(text);
    p->hash = h;
    t->slots[s] = ++t->count;
    return p;
}

/* One triplet per entailment row; the premise's contradictions serve as
 * negatives in turn.  Returns the number of triplets written. */
static long write_triplets(const premise_table *t)
{
    long written = 0;
    for (size_t i = 0; i < t->count; i++) {
        const premise *p = &t->items[i];
        if (!p->contra.n)
            continue;
        for (size_t k = 0; k < p->entail.n; k++) {
            out_printf(stdout, "stdout", "%s\t%s\t%s\n", p->text, p->entail.v[k],
                       p->contra.v[k % p->contra.n]);
            written++;
        }
    }
    return written;
}

static void usage(void)
{
    out_printf(stdout, "stdout", "%s",
"Usage: nli-filter [OPTION]... [FILE]...\n"
"Turn natural language inference rows into sentence-embedding training data:\n"
"anchor<TAB>positive for every entailment row, with --triplets\n"
"anchor<TAB>positive<TAB>negative with the premise's contradictions as negatives,\n"
"or with --labels premise<TAB>hypothesis<TAB>label for every row with a gold\n"
"label (0 entailment, 1 neutral, 2 contradiction).\n"
"With no FILE, or when FILE is -, read standard input.  Empty lines are skipped.\n"
"\n"
"Input formats, recognised line by line (a line starting with '{' is JSON):\n"
"  snli  SNLI/MultiNLI JSON Lines: gold_label (entailment, neutral,\n"
"        contradiction, -), sentence1, sentence2\n"
"  hf    Hugging Face datasets JSON Lines: premise, hypothesis,\n"
"        label (0 entailment, 1 neutral, 2 contradiction, -1 none)\n"
"  tsv   premise<TAB>hypothesis<TAB>label, the label as a word or an integer\n"
"\n"
"Options:\n"
"  -f, --format=FORMAT  read every line as FORMAT: auto (default), snli, hf, tsv\n"
"  -t, --triplets       write hard-negative triplets (reads all input first)\n"
"  -l, --labels         write every labelled row with its label as an integer\n"
"      --skip-bad       skip malformed lines and count them, instead of failing\n"
"  -h, --help           show this help and exit\n"
"  -V, --version        show the version and exit\n"
"\n"
"Counts go to standard error: 'before: N rows', 'after: M rows'; with --labels\n"
"also 'label 0: N rows' for each label and 'no gold label: N rows'.\n"
"Exit status: 0 success, 1 malformed input or failure, 2 usage error.\n");
    out_close(stdout, "stdout");
}

int main(int argc, char **argv)
{
    util_init(argv[0]);
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"triplets", no_argument, NULL, 't'},
        {"labels", no_argument, NULL, 'l'},
        {"skip-bad", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static const char *format_names[] = {"auto", "snli", "hf", "tsv"};
    input_format format = FORMAT_AUTO;
    int triplets = 0, labels = 0, skip_bad = 0, c;
    long per_label[3] = {0}, unlabeled = 0;
    opterr = 0; /* our own one-line messages below */
    while ((c = getopt_long(argc, argv, ":f:tlhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': {
            int i = 0;
            while (i < 4 && strcmp(optarg, format_names[i]))
                i++;
            if (i == 4)
                die_usage("unknown format '%s' (auto, snli, hf, tsv)", optarg);
            format = (input_format)i;
            break;
        }
        case 't':
            triplets = 1;
            break;
        case 'l':
            labels = 1;
            break;
        case 's':
            skip_bad = 1;
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

    if (labels && triplets)
        die_usage("--labels and --triplets exclude each other");

    input_set in;
    input_init(&in, argc - optind, argv + optind);
    premise_table table = {0};
    nli_parser parser = {0};
    char *line = NULL;
    size_t cap = 0;
    long before = 0, after = 0, bad = 0;
    ssize_t n;
    while ((n = input_getline(&in, &line, &cap)) >= 0) {
        if (n && line[n - 1] == '\r') /* CRLF line ends */
            line[--n] = 0;
        if (n == 0)
            continue;
        nli_row row;
        if (nli_parse_line(&parser, line, n, format, &row) != 0) {
            if (!skip_bad)
                die("%s:%ld: %s", in.name, in.line, parser.error);
            bad++;
            continue;
        }
        before++;
        if (labels) {
            if (row.label == LABEL_NONE) {
                unlabeled++;
                continue;
            }
            out_printf(stdout, "stdout", "%s\t%s\t%d\n", row.premise, row.hypothesis, row.label);
            per_label[row.label]++;
            after++;
        } else if (triplets) {
            premise *p = table_get(&table, row.premise);
            if (row.label == LABEL_ENTAILMENT)
                text_list_push(&p->entail, row.hypothesis);
            else if (row.label == LABEL_CONTRADICTION)
                text_list_push(&p->contra, row.hypothesis);
        } else if (row.label == LABEL_ENTAILMENT) {
            out_printf(stdout, "stdout", "%s\t%s\n", row.premise, row.hypothesis);
            after++;
        }
    }
    if (triplets)
        after = write_triplets(&table);
    out_close(stdout, "stdout");
    fprintf(stderr, "before: %ld rows\nafter: %ld rows\n", before, after);
    if (labels)
        fprintf(stderr, "label 0: %ld rows\nlabel 1: %ld rows\nlabel 2: %ld rows\n"
                "no gold label: %ld rows\n", per_label[0], per_label[1], per_label[2], unlabeled);
    if (skip_bad)
        fprintf(stderr, "skipped: %ld malformed lines\n", bad);
    return 0;
}
