/* The training data side (lib/sampler.h): text identity by token sequence, the
 * epoch order, and NO_DUPLICATES batches, by hand-made cases and against
 * sentence-transformers' NoDuplicatesBatchSampler on random cases. */
#include "rng.h"
#include "../tap.h"
#include "sampler.h"
#include "util.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Rows whose texts are small numbers: text k is the sequence [CLS] 1000+k [SEP]. */
static void add_rows(train_data *d, int columns, const int *texts, int rows)
{
    for (int r = 0; r < rows; r++) {
        int32_t ids[8][3];
        const int32_t *seqs[8];
        int32_t lens[8];
        for (int c = 0; c < columns; c++) {
            ids[c][0] = 101;
            ids[c][1] = 1000 + texts[r * columns + c];
            ids[c][2] = 102;
            seqs[c] = ids[c];
            lens[c] = 3;
        }
        train_data_add_row(d, seqs, lens);
    }
}

/* The batches as text: "0 3 4|1 2 5". */
static char *batches_text(const batch_plan *p)
{
    size_t cap = 64 + (size_t)p->start[p->batches] * 12, n = 0;
    char *s = xmalloc(cap);
    s[0] = 0;
    for (int64_t b = 0; b < p->batches; b++)
        for (int64_t i = p->start[b]; i < p->start[b + 1]; i++)
            n += snprintf(s + n, cap - n, "%s%lld", i == p->start[b] ? (b ? "|" : "") : " ",
                          (long long)p->rows[i]);
    return s;
}

static void check_plan(const char *what, int columns, const int *texts, int rows, int batch_size,
                       int drop_last, const char *want)
{
    train_data d;
    train_data_init(&d, columns);
    add_rows(&d, columns, texts, rows);
    int64_t order[64];
    epoch_order(order, rows, 0, 0, 0);
    batch_plan p;
    sampler_plan(&d, order, batch_size, drop_last, &p);
    char *got = batches_text(&p);
    if (!ok(!strcmp(got, want), "%s", what))
        diag("got '%s', want '%s'", got, want);
    free(got);
    batch_plan_free(&p);
    train_data_free(&d);
}

static void test_texts(void)
{
    train_data d;
    train_data_init(&d, 2);
    int32_t a[] = {101, 5, 102}, b[] = {101, 5, 6, 102}, c[] = {101, 5, 102}, e[] = {101, 6, 102};
    add_rows(&d, 2, (int[]){1, 2}, 1);
    train_data_add_row(&d, (const int32_t *const[]){a, b}, (int32_t[]){3, 4});
    train_data_add_row(&d, (const int32_t *const[]){c, e}, (int32_t[]){3, 3});
    train_data_add_row(&d, (const int32_t *const[]){b, b}, (int32_t[]){3, 3}); /* a prefix of b */
    ok(d.rows == 4 && d.max_len == 4, "4 rows, longest sequence 4");
    ok(d.text[2] == d.text[4], "equal token sequences are one text");
    ok(d.text[2] != d.text[3] && d.text[3] != d.text[6], "a prefix is another text");
    ok(d.text[6] == d.text[7] && d.text[6] != d.text[2], "[101 5 6] is its own text");
    ok(d.texts == 6, "6 distinct texts (%d)", d.texts);
    uint64_t f = train_data_fingerprint(&d);
    train_data_free(&d);

    train_data_init(&d, 2);
    add_rows(&d, 2, (int[]){1, 2}, 1);
    train_data_add_row(&d, (const int32_t *const[]){a, b}, (int32_t[]){3, 4});
    train_data_add_row(&d, (const int32_t *const[]){c, e}, (int32_t[]){3, 3});
    ok(train_data_fingerprint(&d) != f, "the fingerprint sees a missing row");
    train_data_add_row(&d, (const int32_t *const[]){b, b}, (int32_t[]){3, 3});
    ok(train_data_fingerprint(&d) == f, "and is the same for the same rows");
    train_data_free(&d);

    /* Many texts: the table grows and still finds every one. */
    train_data_init(&d, 2);
    int *many = xmallocarray(2 * 5000, sizeof *many);
    for (int i = 0; i < 5000; i++)
        many[2 * i] = i, many[2 * i + 1] = i % 7;
    add_rows(&d, 2, many, 5000);
    int good = d.texts == 5000;
    for (int i = 0; i < 5000; i++)
        good &= d.text[2 * i + 1] == d.text[2 * (i % 7)];
    ok(good, "5000 rows: 5000 texts, repeats found (%d)", d.texts);
    free(many);
    train_data_free(&d);
}

static void test_hand_made(void)
{
    check_plan("no duplicates: batches in order, partial last batch", 2,
               (int[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, 10, 4,
               0, "0 1 2 3|4 5 6 7|8 9");
    check_plan("--drop-last drops it", 2,
               (int[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, 10, 4,
               1, "0 1 2 3|4 5 6 7");
    /* rows: (a,b) (a,c) (b,d) (e,f) (g,h) (i,j) */
    int t1[] = {0, 1, 0, 2, 1, 3, 4, 5, 6, 7, 8, 9};
    check_plan("rows with a text in the batch wait and go first, in order, into the next", 2, t1,
               6, 3, 0, "0 3 4|1 2 5");
    /* triplets; the negative of row 2 is the anchor of row 0 */
    int t2[] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 8, 9, 10};
    check_plan("any column against any column (a negative equal to an anchor)", 3, t2, 4, 4, 0,
               "0 1 3|2");
    int t3[] = {0, 0, 1, 1, 2, 3};
    check_plan("a row whose anchor equals its positive is no clash with itself", 2, t3, 3, 3, 0,
               "0 1 2");
    /* (a,b) (a,c) (a,d): each batch can take one row */
    int t4[] = {0, 1, 0, 2, 0, 3};
    check_plan("partial batches in the middle of the epoch are trained on", 2, t4, 3, 2, 0,
               "0|1|2");
    check_plan("with --drop-last they are dropped and their rows used up", 2, t4, 3, 2, 1, "");
    /* (a,b) (a,c) (d,e) (f,g) */
    int t5[] = {0, 1, 0, 2, 3, 4, 5, 6};
    check_plan("--drop-last: a waiting row fills the next batch", 2, t5, 4, 2, 1, "0 2|1 3");
    check_plan("batch size 1", 2, t5, 4, 1, 0, "0|1|2|3");
}

static void test_order(void)
{
    int64_t a[100], b[100], c[100];
    epoch_order(a, 100, 42, 0, 0);
    int identity = 1;
    for (int i = 0; i < 100; i++)
        identity &= a[i] == i;
    ok(identity, "no shuffle: input order");
    epoch_order(a, 100, 42, 0, 1);
    epoch_order(b, 100, 42, 0, 1);
    epoch_order(c, 100, 42, 1, 1);
    ok(!memcmp(a, b, sizeof a), "the shuffle is a function of the seed and epoch");
    ok(memcmp(a, c, sizeof a) != 0, "each epoch has its own order");
    epoch_order(c, 100, 43, 0, 1);
    ok(memcmp(a, c, sizeof a) != 0, "another seed, another order");
    int seen[100] = {0}, perm = 1;
    for (int i = 0; i < 100; i++)
        perm &= a[i] >= 0 && a[i] < 100 && !seen[a[i]]++;
    ok(perm, "a permutation");
}

/* Random rows with many repeated texts, batched by us and by
 * sentence-transformers from the same order (one Python run for all cases). */
#define CASES 24

static void test_against_sentence_transformers(void)
{
    const char *script = "tests/py/st_sampler.py";
    if (!file_exists(script)) {
        ok(1, "# SKIP %s not found (run from the source directory)", script);
        return;
    }
    char in[] = "/tmp/sampler-in-XXXXXX";
    FILE *f = fdopen(mkstemp(in), "w");
    char *ours[CASES], desc[CASES][80];
    rng_t r;
    rng_seed(&r, 7);
    for (int k = 0; k < CASES; k++) {
        int columns = 2 + (int)rng_below(&r, 2), rows = 50 + (int)rng_below(&r, 150);
        int batch_size = (int[]){1, 3, 8, 16, 32}[rng_below(&r, 5)], drop_last = k % 2;
        int pool = k % 3 == 0 ? 12 : rows; /* few distinct texts: long waits */
        int *texts = xmallocarray((size_t)rows * columns, sizeof *texts);
        for (int i = 0; i < rows * columns; i++)
            texts[i] = (int)rng_below(&r, pool);
        train_data d;
        train_data_init(&d, columns);
        add_rows(&d, columns, texts, rows);
        int64_t *order = xmallocarray(rows, sizeof *order);
        epoch_order(order, rows, 1000 + k, 0, 1);
        batch_plan p;
        sampler_plan(&d, order, batch_size, drop_last, &p);
        ours[k] = batches_text(&p);
        snprintf(desc[k], sizeof desc[k], "%d rows, %d columns, batch %d, drop_last %d", rows,
                 columns, batch_size, drop_last);

        fprintf(f, "%d %d %d %d\n", rows, columns, batch_size, drop_last);
        for (int i = 0; i < rows; i++)
            for (int c = 0; c < columns; c++)
                fprintf(f, "t%d%c", texts[i * columns + c], c + 1 < columns ? '\t' : '\n');
        for (int i = 0; i < rows; i++)
            fprintf(f, "%lld%c", (long long)order[i], i + 1 < rows ? ' ' : '\n');
        batch_plan_free(&p);
        free(order);
        train_data_free(&d);
        free(texts);
    }
    fclose(f);

    char cmd[256];
    snprintf(cmd, sizeof cmd, "python3 %s < %s", script, in);
    FILE *py = popen(cmd, "r");
    char *theirs[CASES] = {0};
    char line[8192];
    int k = 0;
    size_t n = 0;
    while (k < CASES && fgets(line, sizeof line, py)) {
        line[strcspn(line, "\n")] = 0;
        if (!theirs[k])
            theirs[k] = xcalloc(1, 1), n = 0;
        if (!strcmp(line, "end")) {
            k++;
            continue;
        }
        theirs[k] = xrealloc(theirs[k], n + strlen(line) + 2);
        n += sprintf(theirs[k] + n, "%s%s", n ? "|" : "", line);
    }
    int status = pclose(py);
    unlink(in);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        ok(1, "# SKIP sentence-transformers is not installed");
    } else {
        int matched = 0;
        for (k = 0; k < CASES; k++) {
            if (theirs[k] && !strcmp(ours[k], theirs[k]))
                matched++;
            else
                diag("case %d (%s): ours '%.200s', theirs '%.200s'", k, desc[k], ours[k],
                     theirs[k] ? theirs[k] : "(none)");
        }
        ok(status == 0 && matched == CASES,
           "the batches of sentence-transformers' NoDuplicatesBatchSampler: %d of %d cases",
           matched, CASES);
    }
    for (k = 0; k < CASES; k++) {
        free(ours[k]);
        free(theirs[k]);
    }
}

int main(void)
{
    test_texts();
    test_hand_made();
    test_order();
    test_against_sentence_transformers();
    return done_testing();
}
