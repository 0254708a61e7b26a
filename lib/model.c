#define _GNU_SOURCE
#include "model.h"
#include "gemm.h"
#include "rng.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "torchbin.h"
#include "util.h"
#include "wordpiece.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- JSON helpers ---- */

/* Parse a JSON file; NULL when it does not exist and !required.  flags as for
 * json_loads (JSON_DECODE_INT_AS_REAL for files that may hold integers beyond
 * 64 bits, as tokenizer_config.json's model_max_length of 1e30 does). */
static json_t *load_json(const char *path, int required, size_t flags)
{
    if (!required && !file_exists(path))
        return NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, flags, &jerr);
    if (!root) {
        if (jerr.line > 0)
            die("%s:%d: %s", path, jerr.line, jerr.text);
        die("%s: %s", path, jerr.text);
    }
    return root;
}

static json_t *load_json_object(const char *path, int required, size_t flags)
{
    json_t *root = load_json(path, required, flags);
    if (root && !json_is_object(root))
        die("%s: not a JSON object", path);
    return root;
}

/* An integer field in [min, max]; def when absent (required: die instead). */
static int json_int_field(json_t *o, const char *path, const char *key, int required, long def, long min,
                          long max)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            die("%s: %s missing", path, key);
        return def;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        die("%s: %s must be an integer from %ld to %ld", path, key, min, max);
    return json_integer_value(v);
}

static double json_real_field(json_t *o, const char *path, const char *key, double def, double min,
                              double max)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return def;
    if (!json_is_number(v) || !(json_number_value(v) >= min && json_number_value(v) <= max))
        die("%s: %s must be a number from %g to %g", path, key, min, max);
    return json_number_value(v);
}

static const char *json_string_field(json_t *o, const char *path, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (v && !json_is_string(v) && !json_is_null(v))
        die("%s: %s must be a string", path, key);
    return json_string_value(v);
}

static int json_bool_field(json_t *o, const char *path, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (v && !json_is_boolean(v))
        die("%s: %s must be true or false", path, key);
    return json_is_true(v);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* ---- config.json ---- */

static void config_from_json(bert_config *c, json_t *root, const char *path)
{
    memset(c, 0, sizeof *c);
    const char *type = json_string_field(root, path, "model_type");
    if (type && !strcmp(type, "mpnet"))
        c->arch = ARCH_MPNET;
    else if (type && strcmp(type, "bert"))
        die("%s: model_type \"%s\" is not supported (bert or mpnet)", path, type);
    const char *act = json_string_field(root, path, "hidden_act");
    if (act && strcmp(act, "gelu"))
        die("%s: hidden_act \"%s\" is not supported (only \"gelu\", the exact erf GELU)", path, act);
    const char *pos = json_string_field(root, path, "position_embedding_type");
    if (pos && strcmp(pos, "absolute"))
        die("%s: position_embedding_type \"%s\" is not supported (only \"absolute\")", path, pos);
    if (json_bool_field(root, path, "is_decoder"))
        die("%s: is_decoder models are not supported", path);
    c->vocab_size = json_int_field(root, path, "vocab_size", 1, 0, 1, 1 << 24);
    c->hidden = json_int_field(root, path, "hidden_size", 1, 0, 1, 1 << 16);
    c->layers = json_int_field(root, path, "num_hidden_layers", 1, 0, 1, 1024);
    c->heads = json_int_field(root, path, "num_attention_heads", 1, 0, 1, 1 << 16);
    c->intermediate = json_int_field(root, path, "intermediate_size", 1, 0, 1, 1 << 18);
    if (c->arch == ARCH_MPNET) {
        /* MPNetConfig's defaults; no token types.  MPNetEmbeddings counts
         * positions from padding_idx + 1 with padding_idx fixed at 1 whatever
         * pad_token_id says, so another pad_token_id is refused, not guessed. */
        c->max_positions = json_int_field(root, path, "max_position_embeddings", 0, 514, 3, 1 << 20);
        c->pos_pad = 1;
        if (json_int_field(root, path, "pad_token_id", 0, 1, 0, 1 << 24) != 1)
            die("%s: pad_token_id must be 1 for mpnet (transformers' MPNet counts positions from 2)",
                path);
        /* MPNetEncoder computes 32 buckets whatever the table holds; fewer rows
         * fail in transformers too. */
        c->rel_buckets = json_int_field(root, path, "relative_attention_num_buckets", 0, 32, 32, 1 << 16);
    } else {
        c->max_positions = json_int_field(root, path, "max_position_embeddings", 0, 512, 1, 1 << 20);
        c->type_vocab = json_int_field(root, path, "type_vocab_size", 0, 2, 1, 1 << 16);
    }
    if (c->hidden % c->heads)
        die("%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->hidden, c->heads);
    c->ln_eps = json_real_field(root, path, "layer_norm_eps", 1e-12, 0, 1);
    if (!(c->ln_eps > 0))
        die("%s: layer_norm_eps must be positive", path);
    c->hidden_dropout = json_real_field(root, path, "hidden_dropout_prob", 0.1, 0, 0.999999);
    c->attn_dropout = json_real_field(root, path, "attention_probs_dropout_prob", 0.1, 0, 0.999999);
    c->initializer_range = json_real_field(root, path, "initializer_range", 0.02, 0, 10);
}

void config_parse(bert_config *c, const char *path)
{
    json_t *root = load_json_object(path, 1, 0);
    config_from_json(c, root, path);
    json_decref(root);
}

static void json_release(void *root)
{
    json_decref(root);
}

void config_parse_buffer(bert_config *c, const char *path, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        if (jerr.line > 0)
            die("%s:%d: %s", path, jerr.line, jerr.text);
        die("%s: %s", path, jerr.text);
    }
    die_cleanup_push(json_release, root);
    if (!json_is_object(root))
        die("%s: not a JSON object", path);
    config_from_json(c, root, path);
    die_cleanup_pop();
    json_decref(root);
}

/* ---- sentence-transformers modules ---- */

/* The class name at the end of a module type: sentence-transformers 6 spells
 * them "sentence_transformers.base.modules.transformer.Transformer", older
 * versions "sentence_transformers.models.Transformer". */
static const char *class_name(const char *type)
{
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : type;
}

static void read_pooling(bert_model *m, const char *pool_dir)
{
    char *path = path_join(pool_dir, "config.json");
    json_t *root = load_json_object(path, 1, 0);
    int dim = json_int_field(root, path, "word_embedding_dimension", 0, -1, 1, 1 << 16);
    dim = json_int_field(root, path, "embedding_dimension", 0, dim, 1, 1 << 16);
    if (dim != -1 && dim != m->cfg.hidden)
        die("%s: embedding dimension %d differs from the model's hidden_size %d", path, dim, m->cfg.hidden);
    const char *mode = json_string_field(root, path, "pooling_mode");
    if (mode) { /* sentence-transformers 6 */
        if (!strcmp(mode, "mean"))
            m->pooling = POOL_MEAN;
        else if (!strcmp(mode, "cls"))
            m->pooling = POOL_CLS;
        else if (!strcmp(mode, "max"))
            m->pooling = POOL_MAX;
        else
            die("%s: pooling_mode \"%s\" is not supported (mean, cls or max)", path, mode);
    } else { /* one boolean per mode; several true would concatenate them */
        static const struct {
            const char *key;
            int mode; /* -1: a sentence-transformers mode we reject with a message */
        } modes[] = {
            {"pooling_mode_mean_tokens", POOL_MEAN},     {"pooling_mode_cls_token", POOL_CLS},
            {"pooling_mode_max_tokens", POOL_MAX},       {"pooling_mode_mean_sqrt_len_tokens", -1},
            {"pooling_mode_weightedmean_tokens", -1},    {"pooling_mode_lasttoken", -1},
        };
        int n = 0;
        for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
            if (json_bool_field(root, path, modes[i].key)) {
                if (modes[i].mode < 0)
                    die("%s: %s is not supported (mean, cls or max pooling)", path, modes[i].key);
                m->pooling = modes[i].mode;
                n++;
            }
        if (n == 0)
            die("%s: no pooling mode set", path);
        if (n > 1)
            die("%s: several pooling modes (concatenated) are not supported", path);
    }
    json_decref(root);
    free(path);
}

/* modules.json: sets transformer_dir and normalize; returns the Pooling
 * module's directory (NULL without modules.json: a plain Hugging Face model,
 * which sentence-transformers mean-pools). */
static char *read_modules(bert_model *m)
{
    char *path = path_join(m->dir, "modules.json");
    json_t *root = load_json(path, 0, 0);
    if (!root) {
        m->transformer_dir = xstrdup(m->dir);
        free(path);
        return NULL;
    }
    if (!json_is_array(root))
        die("%s: not a JSON array", path);
    char *pool_dir = NULL;
    size_t i;
    json_t *mod;
    json_array_foreach(root, i, mod) {
        const char *type = json_string_field(mod, path, "type"), *sub = json_string_field(mod, path, "path");
        if (!json_is_object(mod) || !type || !sub)
            die("%s: module %zu: type and path expected", path, i);
        const char *cls = class_name(type);
        if (!strcmp(cls, "Transformer")) {
            if (m->transformer_dir)
                die("%s: more than one Transformer module", path);
            if (i != 0)
                die("%s: the Transformer module must come first", path);
            m->transformer_dir = *sub ? path_join(m->dir, sub) : xstrdup(m->dir);
        } else if (!strcmp(cls, "Pooling")) {
            if (pool_dir || i != 1)
                die("%s: the Pooling module must come second", path);
            pool_dir = path_join(m->dir, sub);
        } else if (!strcmp(cls, "Normalize")) {
            if (!pool_dir || i != json_array_size(root) - 1)
                die("%s: Normalize must be the last module, after Pooling", path);
            m->normalize = 1;
        } else {
            die("%s: module type %s is not supported (Transformer, Pooling, Normalize)", path, type);
        }
    }
    if (!m->transformer_dir)
        die("%s: no Transformer module", path);
    if (!pool_dir)
        die("%s: no Pooling module", path);
    json_decref(root);
    free(path);
    return pool_dir;
}

/* max_seq_length: sentence_bert_config.json (2.x-5.x), else the tokenizer's
 * model_max_length (sentence-transformers 6 keeps it there) when it fits the
 * position embeddings, else max_position_embeddings (sentence-transformers
 * takes the smaller).  Values out of range are errors (wordpiece.h). */
static void read_max_seq_length(bert_model *m)
{
    int P = bert_max_tokens(&m->cfg);
    m->max_seq_length = P;
    char *path = path_join(m->transformer_dir, "sentence_bert_config.json");
    json_t *root = load_json_object(path, 0, 0);
    if (root && json_object_get(root, "max_seq_length")) {
        m->max_seq_length = json_int_field(root, path, "max_seq_length", 1, 0, 2, P);
    } else {
        int tok = wp_tokenizer_max_length(m->transformer_dir);
        if (tok && tok < P)
            m->max_seq_length = tok;
    }
    json_decref(root);
    free(path);
}

void model_load_meta(bert_model *m, const char *dir)
{
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        die("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        die("%s: not a model directory", dir);
    m->dir = xstrdup(dir);
    char *pool_dir = read_modules(m);
    char *path = path_join(m->transformer_dir, "config.json");
    m->config_text = read_file(path, NULL);
    if (!m->config_text)
        die("%s: %s", path, strerror(errno));
    config_parse(&m->cfg, path);
    free(path);
    m->pooling = POOL_MEAN;
    if (pool_dir)
        read_pooling(m, pool_dir);
    free(pool_dir);
    read_max_seq_length(m);
}

/* ---- weights ---- */

static const st_tensor *lookup(const st_tensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

/* The tensor for one of our names: as save_pretrained writes it, or as the
 * hub's pre-training checkpoints do (prefix "bert.", LayerNorm gamma/beta). */
static const st_tensor *find_tensor(const st_tensor *t, int n, const char *prefix, const char *name)
{
    char key[160];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const st_tensor *s = lookup(t, n, key);
    char *ln = strstr(key, "LayerNorm.");
    if (s || !ln)
        return s;
    strcpy(ln + strlen("LayerNorm."), ends_with(key, ".weight") ? "gamma" : "beta");
    return lookup(t, n, key);
}

/* m->params, zeroed (a missing pooler stays 0).  When word, the word
 * embeddings (floats word_at ..), are F32 in the file mapped at file_map
 * (path), their whole pages are mapped from the file in place, so that only
 * the rows of the tokens used are ever read (half of all-MiniLM-L6-v2's
 * weights, read and copied at every start otherwise); *first and *last then
 * say which of its elements that covers, else both are 0. */
static void params_alloc(bert_model *m, const char *path, const void *file_map,
                         const st_tensor *word, size_t word_at, size_t *first, size_t *last)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = m->nparams * sizeof *m->params;
    const union { uint32_t u; uint8_t b[4]; } order = {1};
    *first = *last = 0;
    m->params_map = NULL;
    size_t at = word ? (size_t)((const char *)word->data - (const char *)file_map) : 0;
    /* where the buffer starts in its mapping: the word embeddings' bytes
     * at the same place in a page as in the file */
    size_t shift = (at % page + page - word_at * sizeof(float) % page) % page;
    size_t from = (at + page - 1) / page * page, to = word ? (at + word->nbytes) / page * page : 0;
    if (!word || word->dtype != ST_F32 || !order.b[0] || shift % sizeof(float) || to <= from) {
        m->params = xcalloc(m->nparams, sizeof *m->params);
        return;
    }
    m->params_map_bytes = bytes + page;
    m->params_map = mmap(NULL, m->params_map_bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m->params_map == MAP_FAILED)
        die("out of memory (%zu bytes)", m->params_map_bytes);
    m->params = (float *)((char *)m->params_map + shift);
    int fd = open(path, O_RDONLY);
    char *dst = (char *)(m->params + word_at) + (from - at);
    /* (private: writes to the parameters never reach the file) */
    if (fd < 0 || mmap(dst, to - from, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
                       (off_t)from) == MAP_FAILED)
        die("%s: %s", path, strerror(errno));
    close(fd);
    *first = (from - at) / sizeof(float);
    *last = (to - at) / sizeof(float);
}

void model_free_params(bert_model *m)
{
    if (m->params_map)
        munmap(m->params_map, m->params_map_bytes);
    else
        free(m->params);
    free(m->params16);
    m->params = NULL;
    m->params16 = NULL;
    m->params_map = NULL;
}

/* 1 when the floats at offset o of the parameters belong to one of the
 * layers' matrices (bert_matrix_kinds). */
static int layer_matrix(const size_t off[P_COUNT + 1], size_t o)
{
    for (int k = 0; k < BERT_MATRIX_KINDS; k++)
        if (o >= off[bert_matrix_kinds[k]] && o < off[bert_matrix_kinds[k] + 1])
            return 1;
    return 0;
}

/* The weights of tensors t[0 .. n) of file into m->params (allocated
 * here), checked against the configuration; file_map: the file's mapping
 * when the tensors' data lie in it (safetensors), else NULL.  With
 * matrices16, the layers' matrices go to m->params16 (allocated here) in
 * bf16 instead, their floats left 0. */
static void copy_weights(bert_model *m, const char *file, const void *file_map,
                         const st_tensor *t, int n, int matrices16)
{
    /* The pre-training checkpoints' prefix: "bert." or "mpnet." (the base model's name). */
    const char *prefix = "";
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, "bert.embeddings.word_embeddings.weight"))
            prefix = "bert.";
        else if (!strcmp(t[i].name, "mpnet.embeddings.word_embeddings.weight"))
            prefix = "mpnet.";
    int nt = bert_tensors(&m->cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(&m->cfg, bt);
    const st_tensor **found = xcalloc(nt, sizeof *found);
    /* (released if a tensor is refused, for callers that go on: the fuzzer) */
    die_cleanup_push(free, bt);
    die_cleanup_push(free, found);
    for (int i = 0; i < nt; i++) {
        const st_tensor *s = find_tensor(t, n, prefix, bt[i].name);
        if (!s) {
            if (!bt[i].trainable) /* the pooler: absent from some checkpoints */
                continue;
            die("%s: tensor %s%s missing", file, prefix, bt[i].name);
        }
        if (s->dtype != ST_F32 && s->dtype != ST_F16 && s->dtype != ST_BF16)
            die("%s: tensor %s: unsupported dtype %s (F32, F16 or BF16 expected)", file, s->name,
                st_dtype_name(s->dtype));
        int same = s->ndim == bt[i].ndim;
        for (int d = 0; same && d < s->ndim; d++)
            same = s->shape[d] == bt[i].shape[d];
        if (!same) {
            char got[128] = "", want[64];
            for (int d = 0; d < s->ndim && strlen(got) < 100; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                         (long long)s->shape[d]);
            if (bt[i].ndim == 2)
                snprintf(want, sizeof want, "%lld, %lld", (long long)bt[i].shape[0], (long long)bt[i].shape[1]);
            else
                snprintf(want, sizeof want, "%lld", (long long)bt[i].shape[0]);
            die("%s: tensor %s: shape [%s], expected [%s] from config.json", file, s->name, got, want);
        }
        found[i] = s;
    }
    die_cleanup_pop();
    die_cleanup_pop();
    /* The word embeddings are bert_tensors' first. */
    size_t mapped_from, mapped_to;
    params_alloc(m, file, file_map, file_map ? found[0] : NULL, bt[0].offset, &mapped_from,
                 &mapped_to);
    size_t off[P_COUNT + 1];
    bert_param_offsets(&m->cfg, off);
    m->params16 = matrices16 ? xcalloc(m->nparams, sizeof *m->params16) : NULL;
    /* The rest copied in parts of at most PART elements over the threads:
     * the first writes to the parameters' pages (the kernel's zeroing) and
     * the copy are most of a small model's start. */
    enum { PART = 1 << 18 };
    typedef struct {
        const st_tensor *s;
        size_t first, count;
        float *dst;
        uint16_t *dst16; /* (then dst NULL) */
    } part_of;
    size_t parts = 0, p = 0;
    for (int i = 0; i < nt; i++)
        parts += found[i] ? found[i]->numel / PART + 2 : 0;
    part_of *part = xmallocarray(parts, sizeof *part);
    for (int i = 0; i < nt; i++) {
        if (!found[i])
            continue;
        /* all of it, or what lies around the part mapped in place */
        size_t range[2][2] = {{0, found[i]->numel}, {0, 0}};
        if (i == 0 && mapped_to > mapped_from) {
            range[0][1] = mapped_from;
            range[1][0] = mapped_to;
            range[1][1] = found[i]->numel;
        }
        for (int r = 0; r < 2; r++)
            for (size_t first = range[r][0]; first < range[r][1]; first += PART) {
                size_t count = range[r][1] - first < PART ? range[r][1] - first : PART;
                size_t at = bt[i].offset + first;
                part[p++] = m->params16 && layer_matrix(off, bt[i].offset)
                                ? (part_of){found[i], first, count, NULL, m->params16 + at}
                                : (part_of){found[i], first, count, m->params + at, NULL};
            }
    }
#pragma omp parallel
    {
        float *floats = m->params16 ? xmallocarray(PART, sizeof *floats) : NULL;
#pragma omp for schedule(dynamic)
        for (size_t k = 0; k < p; k++) {
            /* its pages mapped first: a fault per page took a quarter of
             * loading the bert-base shape, the more as threads contend */
            if (part[k].dst16) {
                prefault(part[k].dst16, part[k].count * sizeof *part[k].dst16);
                st_to_f32_part(part[k].s, part[k].first, part[k].count, floats);
                bf16_from_float(part[k].dst16, floats, part[k].count);
                continue;
            }
            prefault(part[k].dst, part[k].count * sizeof *part[k].dst);
            st_to_f32_part(part[k].s, part[k].first, part[k].count, part[k].dst);
        }
        free(floats);
    }
    free(part);
    free(found);
    free(bt);
}

static void close_tensors(void *st)
{
    st_close(st);
}

static void load(bert_model *m, const char *dir, int matrices16)
{
    model_load_meta(m, dir);
    size_t off[P_COUNT + 1];
    m->nparams = bert_param_offsets(&m->cfg, off);
    char *st_path = path_join(m->transformer_dir, "model.safetensors");
    char *bin_path = path_join(m->transformer_dir, "pytorch_model.bin");
    if (file_exists(st_path)) {
        safetensors st;
        st_open(&st, st_path);
        die_cleanup_push(close_tensors, &st);
        copy_weights(m, st_path, st.map, st.tensors, st.count, matrices16);
        die_cleanup_pop();
        st_close(&st);
    } else if (file_exists(bin_path)) {
        safetensors tb;
        tb_open(&tb, bin_path);
        die_cleanup_push(close_tensors, &tb);
        copy_weights(m, bin_path, NULL, tb.tensors, tb.count, matrices16);
        die_cleanup_pop();
        st_close(&tb);
    } else {
        char *index = path_join(m->transformer_dir, "model.safetensors.index.json");
        if (file_exists(index))
            die("%s: sharded checkpoints are not supported", index);
        die("%s: no model.safetensors or pytorch_model.bin", m->transformer_dir);
    }
    free(st_path);
    free(bin_path);
}

void model_load(bert_model *m, const char *dir)
{
    load(m, dir, 0);
}

void model_load_bf16(bert_model *m, const char *dir)
{
    load(m, dir, 1);
}

/* ---- random initialisation ---- */

void model_init_random(bert_model *m, const char *config_json_path, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    json_t *root = load_json_object(config_json_path, 1, 0);
    config_from_json(&m->cfg, root, config_json_path);
    int pad = json_int_field(root, config_json_path, "pad_token_id", 0, -1, 0, m->cfg.vocab_size - 1);
    json_decref(root);
    if (bert_pad_position(&m->cfg) >= 0) /* MPNetEmbeddings' word padding_idx is 1 whatever the config says */
        pad = bert_pad_position(&m->cfg);
    m->config_text = read_file(config_json_path, NULL);
    if (!m->config_text)
        die("%s: %s", config_json_path, strerror(errno));
    const char *slash = strrchr(config_json_path, '/');
    m->dir = !slash ? xstrdup(".") : slash == config_json_path ? xstrdup("/")
                                   : strndup(config_json_path, slash - config_json_path);
    if (!m->dir)
        die("out of memory");
    m->transformer_dir = xstrdup(m->dir);
    m->pooling = POOL_MEAN;
    m->max_seq_length = bert_max_tokens(&m->cfg);

    size_t off[P_COUNT + 1];
    m->nparams = bert_param_offsets(&m->cfg, off);
    m->params = xmallocarray(m->nparams, sizeof *m->params);
    /* transformers' _init_weights: "initializer_range or 0.02". */
    double std = m->cfg.initializer_range > 0 ? m->cfg.initializer_range : 0.02;
    rng_t rng;
    rng_seed(&rng, seed);
    int nt = bert_tensors(&m->cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    bert_tensors(&m->cfg, bt);
    for (int i = 0; i < nt; i++) {
        float *p = m->params + bt[i].offset;
        float fill = ends_with(bt[i].name, "LayerNorm.weight") ? 1.0f : 0.0f;
        if (ends_with(bt[i].name, "LayerNorm.weight") || ends_with(bt[i].name, "bias"))
            for (size_t j = 0; j < bt[i].numel; j++)
                p[j] = fill;
        else
            for (size_t j = 0; j < bt[i].numel; j++)
                p[j] = (float)(std * rng_normal(&rng));
    }
    /* nn.Embedding(padding_idx=pad_token_id): that row starts at zero. */
    if (pad >= 0)
        memset(m->params + off[P_WORD_EMB] + (size_t)pad * m->cfg.hidden, 0, m->cfg.hidden * sizeof(float));
    /* MPNet's position embeddings have padding_idx 1 too. */
    if (bert_pad_position(&m->cfg) >= 0)
        memset(m->params + off[P_POS_EMB] + (size_t)bert_pad_position(&m->cfg) * m->cfg.hidden, 0,
               m->cfg.hidden * sizeof(float));
    free(bt);
}

/* ---- saving ---- */

static void write_bytes(const char *dir, const char *name, const void *p, size_t n)
{
    char *path = path_join(dir, name);
    atomic_file a;
    atomic_open(&a, path);
    out_write(a.f, path, p, n);
    atomic_commit(&a);
    free(path);
}

/* Reals with 15 significant digits: settings such as 0.1 or 1e-12 print as
 * written, not as 0.10000000000000001. */
static void write_json(const char *dir, const char *name, json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    if (!text)
        die("out of memory");
    char *line;
    if (asprintf(&line, "%s\n", text) < 0)
        die("out of memory");
    write_bytes(dir, name, line, strlen(line));
    free(line);
    free(text);
    json_decref(root);
}

/* Integral reals back to integers (files read with JSON_DECODE_INT_AS_REAL). */
static void restore_integers(json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        double x = json_real_value(v);
        if (json_is_real(v) && x == floor(x) && fabs(x) < 9007199254740992.0)
            json_object_set_new(o, key, json_integer((json_int_t)x));
    }
}

/* A float setting as the shortest decimal that reads back as the same float
 * (0.1f as 0.1, not 0.100000001490116), keeping the source's own spelling
 * when it already reads back as that float. */
static void set_real(json_t *o, const char *key, double value)
{
    json_t *v = json_object_get(o, key);
    if (json_is_number(v) && (float)json_number_value(v) == (float)value)
        return;
    char buf[32];
    double x = value;
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, value);
        x = strtod(buf, NULL);
        if ((float)x == (float)value)
            break;
    }
    json_object_set_new(o, key, json_real(x));
}

static void write_config(const bert_model *m, const char *dir)
{
    json_error_t jerr;
    json_t *root = json_loads(m->config_text, 0, &jerr);
    if (!json_is_object(root))
        die("%s: config.json: %s", m->transformer_dir, root ? "not an object" : jerr.text);
    const bert_config *c = &m->cfg;
    int mpnet = c->arch == ARCH_MPNET;
    if (!json_object_get(root, "architectures"))
        json_object_set_new(root, "architectures", json_pack("[s]", mpnet ? "MPNetModel" : "BertModel"));
    json_object_set_new(root, "model_type", json_string(mpnet ? "mpnet" : "bert"));
    json_object_set_new(root, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(root, "hidden_size", json_integer(c->hidden));
    json_object_set_new(root, "num_hidden_layers", json_integer(c->layers));
    json_object_set_new(root, "num_attention_heads", json_integer(c->heads));
    json_object_set_new(root, "intermediate_size", json_integer(c->intermediate));
    json_object_set_new(root, "max_position_embeddings", json_integer(c->max_positions));
    if (mpnet) {
        json_object_set_new(root, "relative_attention_num_buckets", json_integer(c->rel_buckets));
        json_object_set_new(root, "pad_token_id", json_integer(c->pos_pad));
    } else {
        json_object_set_new(root, "type_vocab_size", json_integer(c->type_vocab));
    }
    json_object_set_new(root, "hidden_act", json_string("gelu"));
    set_real(root, "layer_norm_eps", c->ln_eps);
    set_real(root, "hidden_dropout_prob", c->hidden_dropout);
    set_real(root, "attention_probs_dropout_prob", c->attn_dropout);
    set_real(root, "initializer_range", c->initializer_range);
    /* The weights are written as float32 whatever the source held. */
    if (json_object_get(root, "torch_dtype"))
        json_object_set_new(root, "torch_dtype", json_string("float32"));
    if (json_object_get(root, "dtype"))
        json_object_set_new(root, "dtype", json_string("float32"));
    write_json(dir, "config.json", root);
}

static void write_weights(const bert_model *m, const char *dir, const float *params)
{
    int nt = bert_tensors(&m->cfg, NULL);
    bert_tensor *bt = xmallocarray(nt, sizeof *bt);
    st_out_tensor *out = xmallocarray(nt, sizeof *out);
    bert_tensors(&m->cfg, bt);
    for (int i = 0; i < nt; i++) {
        out[i] = (st_out_tensor){.name = bt[i].name, .dtype = ST_F32, .ndim = bt[i].ndim,
                                 .data = params + bt[i].offset};
        out[i].shape[0] = bt[i].shape[0];
        out[i].shape[1] = bt[i].shape[1];
    }
    char *path = path_join(dir, "model.safetensors");
    st_write(path, out, nt, "{\"format\":\"pt\"}");
    free(path);
    free(out);
    free(bt);
}

int model_has_vocab(const bert_model *m)
{
    char *v = model_file(m, "vocab.txt"), *t = model_file(m, "tokenizer.json");
    int ok = file_exists(v) || file_exists(t);
    free(v);
    free(t);
    return ok;
}

static void copy_file(const char *src, const char *dir, const char *name)
{
    size_t len;
    char *text = read_file(src, &len);
    if (!text)
        die("%s: %s", src, strerror(errno));
    write_bytes(dir, name, text, len);
    free(text);
}

/* vocab.txt from tokenizer.json's model.vocab (token -> id), one token a line
 * in id order; the ids must be 0..n-1. */
static void write_vocab_from_tokenizer(const char *tok_path, const char *dir)
{
    json_t *root = load_json_object(tok_path, 1, 0);
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(vocab) || !type || strcmp(type, "WordPiece"))
        die("%s: no WordPiece model.vocab", tok_path);
    size_t n = json_object_size(vocab);
    const char **tokens = xcalloc(n, sizeof *tokens);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || (size_t)id >= n || tokens[id])
            die("%s: model.vocab: token ids are not 0..%zu", tok_path, n - 1);
        if (strchr(key, '\n'))
            die("%s: model.vocab: token with a newline", tok_path);
        tokens[id] = key;
    }
    char *path = path_join(dir, "vocab.txt");
    atomic_file a;
    atomic_open(&a, path);
    for (size_t i = 0; i < n; i++)
        out_printf(a.f, path, "%s\n", tokens[i]);
    atomic_commit(&a);
    free(path);
    free(tokens);
    json_decref(root);
}

/* The tokenizer's settings, loadable by transformers 4.x and 5.x alike: the
 * source's tokenizer_config.json with tokenizer_class BertTokenizer or
 * MPNetTokenizer (5.x writes "TokenizersBackend", unknown to 4.x) and a
 * model_max_length that fits the position embeddings. */
static json_t *tokenizer_config(const bert_model *m)
{
    char *path = model_file(m, "tokenizer_config.json");
    json_t *tc = load_json_object(path, 0, JSON_DECODE_INT_AS_REAL);
    if (tc) {
        restore_integers(tc);
    } else {
        /* No settings: lowercase as tokenizer.json's normaliser says, else as bert-base-uncased. */
        char *tok_path = model_file(m, "tokenizer.json");
        json_t *tok = load_json_object(tok_path, 0, 0);
        json_t *lower = json_object_get(json_object_get(tok, "normalizer"), "lowercase");
        tc = json_pack("{s:b}", "do_lower_case", lower ? json_is_true(lower) : 1);
        json_decref(tok);
        free(tok_path);
    }
    free(path);
    static const char *specials[][3] = {{"unk_token", "[UNK]", "[UNK]"}, {"sep_token", "[SEP]", "</s>"},
                                        {"pad_token", "[PAD]", "<pad>"},   {"cls_token", "[CLS]", "<s>"},
                                        {"mask_token", "[MASK]", "<mask>"}};
    int mpnet = m->cfg.arch == ARCH_MPNET;
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        if (!json_is_string(json_object_get(tc, specials[i][0])))
            json_object_set_new(tc, specials[i][0], json_string(specials[i][1 + mpnet]));
    static const char *drop[] = {"backend", "is_local", "local_files_only", "auto_map"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        json_object_del(tc, drop[i]);
    json_object_set_new(tc, "tokenizer_class", json_string(mpnet ? "MPNetTokenizer" : "BertTokenizer"));
    json_t *mml = json_object_get(tc, "model_max_length");
    int max_tokens = bert_max_tokens(&m->cfg);
    if (!json_is_integer(mml) || json_integer_value(mml) < 1 || json_integer_value(mml) > max_tokens)
        json_object_set_new(tc, "model_max_length", json_integer(max_tokens));
    return tc;
}

static void require_vocab(const bert_model *m)
{
    if (!model_has_vocab(m))
        die("%s: no vocab.txt or tokenizer.json to take the vocabulary from", m->transformer_dir);
}

static void write_tokenizer(const bert_model *m, const char *dir)
{
    require_vocab(m);
    char *vocab = model_file(m, "vocab.txt"), *tok = model_file(m, "tokenizer.json");
    if (file_exists(vocab))
        copy_file(vocab, dir, "vocab.txt");
    else
        write_vocab_from_tokenizer(tok, dir);
    if (file_exists(tok))
        copy_file(tok, dir, "tokenizer.json");
    json_t *tc = tokenizer_config(m);
    json_t *map = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(tc, key, v) {
        if (ends_with(key, "_token") && json_is_string(v))
            json_object_set(map, key, v);
    }
    write_json(dir, "tokenizer_config.json", tc);
    write_json(dir, "special_tokens_map.json", map);
    free(vocab);
    free(tok);
}

/* sentence-transformers' files in the 2.x-5.x layout, which 6.x reads too. */
static void write_sentence_transformers(const bert_model *m, const char *dir)
{
    json_t *mods = json_pack("[{s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s}]", "idx", 0, "name", "0", "path", "",
                             "type", "sentence_transformers.models.Transformer", "idx", 1, "name", "1", "path",
                             "1_Pooling", "type", "sentence_transformers.models.Pooling");
    if (m->normalize)
        json_array_append_new(mods, json_pack("{s:i, s:s, s:s, s:s}", "idx", 2, "name", "2", "path",
                                              "2_Normalize", "type", "sentence_transformers.models.Normalize"));
    write_json(dir, "modules.json", mods);
    write_json(dir, "sentence_bert_config.json",
               json_pack("{s:i, s:b}", "max_seq_length", m->max_seq_length, "do_lower_case", 0));
    char *pool = path_join(dir, "1_Pooling");
    if (mkdir(pool, 0777) != 0)
        die("%s: %s", pool, strerror(errno));
    write_json(pool, "config.json",
               json_pack("{s:i, s:b, s:b, s:b, s:b}", "word_embedding_dimension", m->cfg.hidden,
                         "pooling_mode_cls_token", m->pooling == POOL_CLS, "pooling_mode_mean_tokens",
                         m->pooling == POOL_MEAN, "pooling_mode_max_tokens", m->pooling == POOL_MAX,
                         "pooling_mode_mean_sqrt_len_tokens", 0));
    free(pool);
    if (m->normalize) { /* Normalize has no settings; its directory exists, as git clones lack it anyway */
        char *norm = path_join(dir, "2_Normalize");
        if (mkdir(norm, 0777) != 0)
            die("%s: %s", norm, strerror(errno));
        free(norm);
    }
}

void model_write_files(const bert_model *m, const char *dir, const float *params)
{
    write_config(m, dir);
    write_weights(m, dir, params);
    write_tokenizer(m, dir);
    write_sentence_transformers(m, dir);
}

/* Whether every entry of dir is one of names (with checkpoint, also a
 * checkpoint's files); 1_Pooling and 2_Normalize as model_save makes them. */
static int only_entries(const char *dir, const char *const *names, int checkpoint)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        int known = 0;
        for (int i = 0; names[i] && !known; i++)
            known = !strcmp(n, names[i]);
        if (!known && checkpoint)
            known = !strcmp(n, "optimizer.safetensors") || !strcmp(n, "best.safetensors") ||
                    !strcmp(n, "state.json");
        if (!known && (!strcmp(n, "1_Pooling") || !strcmp(n, "2_Normalize"))) {
            char *sub = path_join(dir, n);
            static const char *const pooling[] = {"config.json", NULL}, *const none[] = {NULL};
            known = only_entries(sub, !strcmp(n, "1_Pooling") ? pooling : none, 0);
            free(sub);
        }
        ok = known;
    }
    closedir(d);
    return ok;
}

void model_check_replaceable(const char *path, int checkpoint)
{
    static const char *const names[] = {
        "config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
        "tokenizer_config.json", "special_tokens_map.json", "modules.json",
        "sentence_bert_config.json", NULL};
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return;
        die("%s: %s", path, strerror(errno));
    }
    char *config = path_join(path, "config.json");
    int model_dir = S_ISDIR(st.st_mode) && file_exists(config) && only_entries(path, names, checkpoint);
    free(config);
    if (!model_dir)
        die("%s: exists and is not a %s this tool wrote; refusing to replace it", path,
            checkpoint ? "checkpoint" : "model directory");
}

void model_save(const bert_model *m, const char *out_dir, const float *params)
{
    if (m->params16 && params == m->params)
        die("%s: a model loaded for bf16 (model_load_bf16) has no fp32 matrices to save", out_dir);
    model_check_replaceable(out_dir, 0);
    require_vocab(m); /* before any output exists */
    char *tmp = atomic_dir_begin(out_dir);
    model_write_files(m, tmp, params);
    atomic_dir_commit(tmp, out_dir);
    free(tmp);
}

void model_free(bert_model *m)
{
    model_free_params(m);
    free(m->dir);
    free(m->transformer_dir);
    free(m->config_text);
    memset(m, 0, sizeof *m);
}

const char *pooling_mode_name(pooling_mode p)
{
    return p == POOL_CLS ? "cls" : p == POOL_MAX ? "max" : "mean";
}

char *model_file(const bert_model *m, const char *name)
{
    char *p = path_join(m->transformer_dir, name);
    if (file_exists(p))
        return p;
    char *q = path_join(m->dir, name);
    if (file_exists(q)) {
        free(p);
        return q;
    }
    free(q);
    return p;
}
