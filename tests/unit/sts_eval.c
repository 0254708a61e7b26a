/* STS evaluation (sts_eval.h): the tiny fixture model on STS-B dev gives the
 * Spearman correlation sentence-transformers gives (fixtures/meta.json),
 * with the encoder's current weights; bad STS files are refused with one
 * line naming the file and line. */
#include "../tap.h"
#include "bert_fixture.h"
#include "child.h"
#include "sts_eval.h"

#include <math.h>
#include <string.h>

static bert_model model;

static void read_bad(const void *path)
{
    sts_set s;
    sts_read(&s, &model, path);
}

static void bad_file(const char *text, const char *why)
{
    char path[] = "/tmp/test-sts-eval-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd))
        die("%s: cannot write", path);
    char err[512];
    int status = run_in_child(read_bad, path, err, sizeof err);
    ok(status == 1 && strstr(err, path) && strstr(err, why) &&
           strchr(err, '\n') == err + strlen(err) - 1,
       "refused: '%.*s'", (int)strcspn(err, "\n"), err);
    remove(path);
}

int main(void)
{
    util_init("test-sts-eval");
    char *dir = fixture_path("tiny", "model");
    char *csv = path_join(shared_dir(), "data/stsbenchmark/sts-dev.csv");
    model_load(&model, dir);
    sts_set s;
    sts_read(&s, &model, csv);
    encoder_settings es = {.device = DEVICE_CPU, .doing = "testing", .batch_size = 64};
    encoder *e = encoder_open(&model, &es);
    double rho = sts_evaluate(e, &s), want = fixture_sts_spearman();
    ok(s.pairs.rows == 1500 && fabs(rho - want) <= 1e-6,
       "tiny on STS-B dev: %lld pairs, Spearman %.9f, sentence-transformers %.9f",
       (long long)s.pairs.rows, rho, want);
    encoder_close(e);

    bad_file("a\tb\tc\td\t1.5\tone\n", ":1: 6 tab-separated fields, expected 7");
    bad_file("a\tb\tc\td\tx1\tone\ttwo\n", ":1: score 'x1' is not a number");
    bad_file("a\tb\tc\td\t1\tone\ttwo\n", "1 sentence pairs, at least 2 are needed");
    bad_file("a\tb\tc\td\t1\tone\ttwo\na\tb\tc\td\t2\t\xff\ttwo\n", ":2: sentence 1 is not valid UTF-8");

    sts_free(&s);
    model_free(&model);
    free(dir);
    free(csv);
    return done_testing();
}
