/* bert_fixture.h - reading the tiny/head64 fixtures for the encoder tests
 * (bert_forward.c, bert_backward.c). */
#ifndef BP_TEST_BERT_FIXTURE_H
#define BP_TEST_BERT_FIXTURE_H

#include "../tap.h"
#include "bert.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

#include <jansson.h>
#include <string.h>

/* $SHARED/fixtures/NAME/FILE, to be freed; NAME/FILE when NAME is a path
 * (the MPNet fixtures, made by mpnet_fixtures). */
__attribute__((unused)) static char *fixture_path(const char *name, const char *file)
{
    if (strchr(name, '/'))
        return path_join(name, file);
    char *dir = path_join(shared_dir(), "fixtures"), *sub = path_join(dir, name);
    char *path = path_join(sub, file);
    free(dir);
    free(sub);
    return path;
}

__attribute__((unused)) static const st_tensor *ref_find(const safetensors *st, const char *name)
{
    const st_tensor *t = st_find(st, name);
    if (!t)
        die("%s: no tensor %s", st->path, name);
    return t;
}

__attribute__((unused)) static float *ref_f32(const safetensors *st, const char *name)
{
    const st_tensor *t = ref_find(st, name);
    float *x = xmallocarray(t->numel, sizeof *x);
    st_to_f32(t, x);
    return x;
}

/* A column of the fixture (input_ids right-padded with 0, attention_mask)
 * as our ids: [B, T], -1 after each sequence, and lens[B]. */
typedef struct {
    int B, T;
    int32_t *ids, *lens, *mask;
} ref_column;

__attribute__((unused)) static ref_column ref_column_read(const safetensors *st, const char *column)
{
    char name[64];
    snprintf(name, sizeof name, "%s.input_ids", column);
    const st_tensor *ti = ref_find(st, name);
    snprintf(name, sizeof name, "%s.attention_mask", column);
    const st_tensor *tm = ref_find(st, name);
    if (ti->dtype != ST_I32 || tm->dtype != ST_I32 || ti->ndim != 2 || tm->numel != ti->numel)
        die("%s: %s: expected int32 [B, T] ids and mask", st->path, column);
    ref_column c = {(int)ti->shape[0], (int)ti->shape[1], NULL, NULL, NULL};
    c.ids = xmallocarray(ti->numel, sizeof *c.ids);
    c.mask = xmallocarray(ti->numel, sizeof *c.mask);
    c.lens = xcalloc(c.B, sizeof *c.lens);
    memcpy(c.ids, ti->data, ti->numel * sizeof *c.ids);
    memcpy(c.mask, tm->data, tm->numel * sizeof *c.mask);
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.T; t++) {
            size_t i = (size_t)b * c.T + t;
            if (c.mask[i])
                c.lens[b]++;
            else
                c.ids[i] = -1;
        }
    return c;
}

__attribute__((unused)) static void ref_column_free(ref_column *c)
{
    free(c->ids);
    free(c->lens);
    free(c->mask);
}

/* The MPNet fixtures, made now by transformers and sentence-transformers
 * (tests/py/mk_mpnet_fixture.py) in a new temporary directory: its path (to
 * be removed with remove_tree and freed), or NULL when the Python stack is
 * missing (a skip) or the script failed (a failure), both reported. */
__attribute__((unused)) static char *mpnet_fixtures(void)
{
    char *dir = tap_temp_dir("mpnet");
    char *cmd = xmalloc(strlen(dir) + 64);
    sprintf(cmd, "python3 tests/py/mk_mpnet_fixture.py %s 2>&1", dir);
    int made = python_reference(cmd);
    free(cmd);
    if (made)
        return dir;
    remove_tree(dir);
    free(dir);
    return NULL;
}

/* check(dir) on mpnet-tiny and mpnet-head64 of mpnet_fixtures (none when
 * it reported a skip or a failure), which are then removed. */
__attribute__((unused)) static void for_each_mpnet_fixture(void (*check)(const char *dir))
{
    char *mp = mpnet_fixtures();
    if (!mp)
        return;
    static const char *names[2] = {"mpnet-tiny", "mpnet-head64"};
    for (int i = 0; i < 2; i++) {
        char *dir = path_join(mp, names[i]);
        check(dir);
        free(dir);
    }
    remove_tree(mp);
    free(mp);
}

/* The fixture's model: cfg and params (the layout of bert.h). */
__attribute__((unused)) static void fixture_model(const char *name, bert_model *m)
{
    char *dir = fixture_path(name, "model");
    model_load(m, dir);
    free(dir);
}

__attribute__((unused)) static double max_abs_diff(const float *x, const float *y, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i] - y[i]));
    return m;
}

__attribute__((unused)) static double dot_f(const float *x, const float *y, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)x[i] * y[i];
    return s;
}

__attribute__((unused)) static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* The Spearman correlation of the tiny model's STS-B dev cosines, as
 * sentence-transformers computed it (fixtures/meta.json). */
__attribute__((unused)) static double fixture_sts_spearman(void)
{
    char *path = path_join(shared_dir(), "fixtures/meta.json");
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        die("%s: %s", path, err.text);
    json_t *v = json_object_get(json_object_get(json_object_get(j, "tiny_sts"), "dev"),
                                "spearman_cosine");
    if (!json_is_number(v))
        die("%s: no tiny_sts.dev.spearman_cosine", path);
    double x = json_number_value(v);
    json_decref(j);
    free(path);
    return x;
}

#endif
