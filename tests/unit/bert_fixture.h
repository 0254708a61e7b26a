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

/* $SHARED/fixtures/NAME/FILE, to be freed. */
__attribute__((unused)) static char *fixture_path(const char *name, const char *file)
{
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

/* The fixture's model: cfg and params (the layout of bert.h).
 * TEMPORARY direct loader until model_load (model.h) is implemented. */
__attribute__((unused)) static void fixture_model(const char *name, bert_model *m)
{
    char *cfg_path = fixture_path(name, "model/config.json");
    json_error_t err;
    json_t *j = json_load_file(cfg_path, 0, &err);
    if (!j)
        die("%s: %s", cfg_path, err.text);
    memset(m, 0, sizeof *m);
    bert_config *c = &m->cfg;
    c->vocab_size = json_integer_value(json_object_get(j, "vocab_size"));
    c->hidden = json_integer_value(json_object_get(j, "hidden_size"));
    c->layers = json_integer_value(json_object_get(j, "num_hidden_layers"));
    c->heads = json_integer_value(json_object_get(j, "num_attention_heads"));
    c->intermediate = json_integer_value(json_object_get(j, "intermediate_size"));
    c->max_positions = json_integer_value(json_object_get(j, "max_position_embeddings"));
    c->type_vocab = json_integer_value(json_object_get(j, "type_vocab_size"));
    c->ln_eps = json_number_value(json_object_get(j, "layer_norm_eps"));
    c->hidden_dropout = json_number_value(json_object_get(j, "hidden_dropout_prob"));
    c->attn_dropout = json_number_value(json_object_get(j, "attention_probs_dropout_prob"));
    c->initializer_range = json_number_value(json_object_get(j, "initializer_range"));
    json_decref(j);
    free(cfg_path);
    size_t off[P_COUNT + 1];
    m->nparams = bert_param_offsets(c, off);
    m->params = xcalloc(m->nparams, sizeof *m->params);
    int n = bert_tensors(c, NULL);
    bert_tensor *t = xcalloc(n, sizeof *t);
    bert_tensors(c, t);
    char *st_path = fixture_path(name, "model/model.safetensors");
    safetensors st;
    st_open(&st, st_path);
    for (int i = 0; i < n; i++) {
        const st_tensor *s = ref_find(&st, t[i].name);
        if (s->numel != t[i].numel)
            die("%s: %s: %zu values, expected %zu", st_path, t[i].name, s->numel, t[i].numel);
        st_to_f32(s, m->params + t[i].offset);
    }
    st_close(&st);
    free(st_path);
    free(t);
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

#endif
