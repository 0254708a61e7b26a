/* mnr-train - fine-tune a BERT sentence encoder with MultipleNegativesRankingLoss
 * on a token stream of (anchor, positive[, negative...]) rows, as
 * sentence-transformers' trainer does it: NO_DUPLICATES batches, AdamW with
 * linear warmup and decay, gradient clipping; checkpoints that resume
 * bit-identically, STS evaluation, and the model written as a Hugging Face /
 * sentence-transformers directory. */
#include "bert.h"
#include "encode.h"
#include "gpu.h"
#include "loss.h"
#include "model.h"
#include "npy.h"
#include "optim.h"
#include "rng.h"
#include "safetensors.h"
#include "safetensors_write.h"
#include "stats.h"
#include "threads.h"
#include "train.h"
#include "util.h"
#include "wordpiece.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------ */

/* What defines a run; stored in each checkpoint's state.json. */
typedef struct {
    long batch_size, epochs, max_steps, schedule_steps, max_length, eval_every;
    double lr, scale, weight_decay, adam_eps, max_grad_norm;
    char *warmup; /* as written, so that it is parsed the same way on resume */
    warmup_spec warm;
    optim_kind optimizer;
    long seed;
    int symmetric, shuffle, drop_last, keep_best;
    char *eval_sts;
} options;

/* Options given on the command line (the rest take their default, or the
 * checkpoint's value when resuming). */
enum {
    G_BATCH = 1 << 0, G_EPOCHS = 1 << 1, G_MAX_STEPS = 1 << 2, G_SCHEDULE = 1 << 3,
    G_MAX_LENGTH = 1 << 4, G_EVAL_EVERY = 1 << 5, G_LR = 1 << 6, G_SCALE = 1 << 7,
    G_WD = 1 << 8, G_EPS = 1 << 9, G_CLIP = 1 << 10, G_WARMUP = 1 << 11, G_OPTIM = 1 << 12,
    G_SEED = 1 << 13, G_SYMMETRIC = 1 << 14, G_SHUFFLE = 1 << 15, G_DROP_LAST = 1 << 16,
    G_KEEP_BEST = 1 << 17, G_EVAL_STS = 1 << 18,
};

static options default_options(void)
{
    options o = {
        .batch_size = 32, .epochs = 1, .lr = 2e-5, .warmup = "0.1",
        .scale = MNR_DEFAULT_SCALE, .optimizer = OPTIM_ADAMW, .weight_decay = 0.01,
        .adam_eps = 1e-8, .max_grad_norm = 1.0, .seed = 42, .shuffle = 1,
    };
    warmup_parse(o.warmup, &o.warm);
    return o;
}

static json_t *options_json(const options *o)
{
    return json_pack("{sI sI sI sI sI sI sf sf sf sf sf ss ss sI sb sb sb sb so}",
                     "batch_size", (json_int_t)o->batch_size, "epochs", (json_int_t)o->epochs,
                     "max_steps", (json_int_t)o->max_steps,
                     "schedule_steps", (json_int_t)o->schedule_steps,
                     "max_length", (json_int_t)o->max_length,
                     "eval_every", (json_int_t)o->eval_every, "lr", o->lr, "scale", o->scale,
                     "weight_decay", o->weight_decay, "adam_eps", o->adam_eps,
                     "max_grad_norm", o->max_grad_norm, "warmup", o->warmup,
                     "optimizer", o->optimizer == OPTIM_ADAM ? "adam" : "adamw",
                     "seed", (json_int_t)o->seed, "symmetric", o->symmetric,
                     "shuffle", o->shuffle, "drop_last", o->drop_last, "keep_best", o->keep_best,
                     "eval_sts", o->eval_sts ? json_string(o->eval_sts) : json_null());
}

static void options_from_json(options *o, json_t *j, const char *path)
{
    json_int_t bs, ep, ms, ss, ml, ee, seed;
    const char *warmup, *optim;
    json_t *sts;
    json_error_t err;
    if (json_unpack_ex(j, &err, JSON_STRICT,
                       "{sI sI sI sI sI sI sF sF sF sF sF ss ss sI sb sb sb sb so}",
                       "batch_size", &bs, "epochs", &ep, "max_steps", &ms, "schedule_steps", &ss,
                       "max_length", &ml, "eval_every", &ee, "lr", &o->lr, "scale", &o->scale,
                       "weight_decay", &o->weight_decay, "adam_eps", &o->adam_eps,
                       "max_grad_norm", &o->max_grad_norm, "warmup", &warmup, "optimizer", &optim,
                       "seed", &seed, "symmetric", &o->symmetric, "shuffle", &o->shuffle,
                       "drop_last", &o->drop_last, "keep_best", &o->keep_best, "eval_sts", &sts) != 0)
        die("%s: options: %s", path, err.text);
    o->batch_size = bs, o->epochs = ep, o->max_steps = ms, o->schedule_steps = ss;
    o->max_length = ml, o->eval_every = ee, o->seed = seed;
    o->warmup = xstrdup(warmup);
    if (warmup_parse(o->warmup, &o->warm) != 0 || bs < 1 || ep < 1)
        die("%s: options: bad value", path);
    o->optimizer = strcmp(optim, "adam") ? OPTIM_ADAMW : OPTIM_ADAM;
    o->eval_sts = json_is_string(sts) ? xstrdup(json_string_value(sts)) : NULL;
}

/* A resumed run keeps the checkpoint's options, except those given again on
 * the command line; the ones that decide the batches must not change. */
static void options_merge(options *o, const options *saved, unsigned given)
{
    struct { unsigned flag; const char *name; int differs; } fixed[] = {
        {G_BATCH, "--batch-size", o->batch_size != saved->batch_size},
        {G_SEED, "--seed", o->seed != saved->seed},
        {G_SHUFFLE, "--no-shuffle", o->shuffle != saved->shuffle},
        {G_DROP_LAST, "--drop-last", o->drop_last != saved->drop_last},
        {G_MAX_LENGTH, "--max-length", o->max_length != saved->max_length},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if ((given & fixed[i].flag) && fixed[i].differs)
            die_usage("%s differs from the checkpoint's: the batches would not be the same",
                      fixed[i].name);
    options merged = *saved;
#define KEEP_GIVEN(flag, field) if (given & (flag)) merged.field = o->field
    KEEP_GIVEN(G_EPOCHS, epochs);
    KEEP_GIVEN(G_MAX_STEPS, max_steps);
    KEEP_GIVEN(G_SCHEDULE, schedule_steps);
    KEEP_GIVEN(G_EVAL_EVERY, eval_every);
    KEEP_GIVEN(G_LR, lr);
    KEEP_GIVEN(G_SCALE, scale);
    KEEP_GIVEN(G_WD, weight_decay);
    KEEP_GIVEN(G_EPS, adam_eps);
    KEEP_GIVEN(G_CLIP, max_grad_norm);
    KEEP_GIVEN(G_OPTIM, optimizer);
    KEEP_GIVEN(G_SYMMETRIC, symmetric);
    KEEP_GIVEN(G_KEEP_BEST, keep_best);
    KEEP_GIVEN(G_EVAL_STS, eval_sts);
    if (given & G_WARMUP) {
        merged.warmup = o->warmup;
        merged.warm = o->warm;
    }
#undef KEEP_GIVEN
    *o = merged;
}

/* ---- the run ------------------------------------------------------------ */

/* Where training stands between two steps: everything a resumed run needs
 * besides the weights and the optimiser moments. */
typedef struct {
    long step;     /* optimizer steps done */
    long epoch;    /* 0-based epoch of the next batch */
    long batch;    /* index of the next batch in that epoch's plan */
    rng_t dropout; /* generator of the next step's dropout masks */
} position;

/* STS pairs for --eval-sts: two columns of token sequences and gold scores. */
typedef struct {
    train_data pairs;
    double *gold;
} sts_set;

typedef struct {
    options opt;
    const char *out_dir, *log_path, *resume_dir;
    char *checkpoint_dir;
    long checkpoint_every;

    bert_model model;
    const bert_config *cfg;
    gpu_model *gpu; /* training on the GPU; NULL: on the CPU */
    float *grads, *adam_m, *adam_v; /* with the GPU: the moments' host copies, no grads */
    optim_range *ranges;
    int nranges;
    adam_config adam;
    long schedule_steps, warmup;

    train_data data;
    uint64_t shuffle_seed;
    long total_steps; /* where this run stops */
    position pos;

    sts_set sts;
    double best_score;
    long best_step;
    float *best_params; /* with --keep-best */

    FILE *log;
} run;

static volatile sig_atomic_t stop_signal;

/* Whether a progress bar without its newline is on the terminal: messages
 * clear it first (the next step draws it again). */
static int bar_drawn;

static void bar_clear(void)
{
    if (bar_drawn)
        fputs("\r\033[K", stderr);
    bar_drawn = 0;
}

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Sub-seeds of --seed for the shuffle and dropout (the initial weights use
 * --seed itself), so that the streams are unrelated. */
#define SHUFFLE_STREAM 0x53485546464c45ull /* "SHUFFLE" */
#define DROPOUT_STREAM 0x44524f504f5554ull /* "DROPOUT" */

static char *strip_slashes(const char *path)
{
    char *s = xstrdup(path);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/')
        s[--n] = 0;
    return s;
}

/* The directory that will receive OUT_DIR must be writable before hours of
 * training, not after. */
static void check_output_dir(const char *out_dir)
{
    char *s = strip_slashes(out_dir);
    char *slash = strrchr(s, '/');
    const char *parent = slash ? (slash == s ? "/" : (*slash = 0, s)) : ".";
    if (access(parent, W_OK | X_OK) != 0)
        die("%s: cannot create the output directory there: %s", parent, strerror(errno));
    free(s);
}

/* ---- input -------------------------------------------------------------- */

/* Keep the first max_length - 1 ids and the last one (the [SEP]), as
 * wp-tokenize --max-length does. */
static int32_t truncate_seq(int32_t *ids, int32_t len, long max_length)
{
    if (max_length <= 0 || len <= max_length)
        return len;
    ids[max_length - 1] = ids[len - 1];
    return (int32_t)max_length;
}

static void read_rows(run *R, int nfiles, char **files)
{
    npy_reader r;
    npy_reader_init(&r, nfiles, files);
    npy_array a = {0};
    int32_t *lens = NULL;
    size_t lens_cap = 0;
    int columns = 0;
    int limit = R->opt.max_length > 0 ? (int)R->opt.max_length : R->cfg->max_positions;
    while (npy_read(&r, &a, NPY_I4)) {
        int64_t rows = a.shape[0], C = a.shape[1], T = a.shape[2];
        if (C < 2)
            npy_frame_error(&r, "%lld column%s: training needs at least 2 (anchor, positive)",
                            (long long)C, C == 1 ? "" : "s");
        if (columns && C != columns)
            npy_frame_error(&r, "%lld columns, the frames before have %d", (long long)C, columns);
        if (!columns) {
            columns = (int)C;
            train_data_init(&R->data, columns);
        }
        if ((size_t)(rows * C) > lens_cap) {
            lens_cap = rows * C;
            lens = xrealloc(lens, lens_cap * sizeof *lens);
        }
        tokens_check(&r, &a, R->cfg->vocab_size, lens);
        int32_t *ids = a.data;
        for (int64_t i = 0; i < rows; i++) {
            const int32_t *seqs[C];
            for (int c = 0; c < C; c++) {
                int32_t *q = ids + (i * C + c) * T, *n = &lens[i * C + c];
                if (*n == 0)
                    npy_frame_error(&r, "row %lld column %d is empty", (long long)i, c);
                *n = truncate_seq(q, *n, R->opt.max_length);
                if (*n > limit)
                    npy_frame_error(&r, "row %lld column %d: %d tokens, more than the model's %d "
                                    "positions (see --max-length)", (long long)i, c, *n, limit);
                seqs[c] = q;
            }
            train_data_add_row(&R->data, seqs, lens + i * C);
        }
    }
    npy_free(&a);
    free(lens);
    if (!columns || R->data.rows == 0)
        die("%s: no training rows", nfiles ? files[0] : "stdin");
}

/* An STS benchmark file: tab-separated, score in field 5, the sentences in
 * fields 6 and 7 (further fields ignored), tokenized with the model's
 * tokenizer up to its max_seq_length. */
static void read_sts(run *R, const char *path)
{
    wordpiece *wp = wp_load(R->model.dir, NULL);
    if (wp_vocab_size(wp) > R->cfg->vocab_size)
        die("%s: the tokenizer has %d ids, the model's vocabulary %d", R->model.dir,
            wp_vocab_size(wp), R->cfg->vocab_size);
    int max_len = R->model.max_seq_length < R->cfg->max_positions ? R->model.max_seq_length
                                                                   : R->cfg->max_positions;
    int32_t *ids[2] = {xmallocarray(max_len, sizeof(int32_t)), xmallocarray(max_len, sizeof(int32_t))};
    sts_set *s = &R->sts;
    train_data_init(&s->pairs, 2);
    size_t cap = 0;
    input_set in;
    char *name = (char *)path;
    input_init(&in, 1, &name);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while ((len = input_getline(&in, &line, &line_cap)) >= 0) {
        if (len && line[len - 1] == '\r')
            line[--len] = 0;
        char *field[7];
        int nf = 0;
        for (char *p = line; nf < 7; nf++) {
            field[nf] = p;
            char *tab = strchr(p, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = 0;
            p = tab + 1;
        }
        if (nf < 7)
            die("%s:%ld: %d tab-separated fields, expected 7 (score in field 5, sentences in 6 "
                "and 7)", in.name, in.line, nf);
        double score;
        if (parse_double(field[4], &score) != 0)
            die("%s:%ld: score '%.40s' is not a number", in.name, in.line, field[4]);
        int32_t n[2];
        for (int c = 0; c < 2; c++) {
            n[c] = wp_encode(wp, field[5 + c], strlen(field[5 + c]), ids[c], max_len);
            if (n[c] < 0)
                die("%s:%ld: sentence %d is not valid UTF-8", in.name, in.line, c + 1);
        }
        if ((size_t)s->pairs.rows == cap) {
            cap = cap ? 2 * cap : 1024;
            s->gold = xrealloc(s->gold, cap * sizeof *s->gold);
        }
        s->gold[s->pairs.rows] = score;
        train_data_add_row(&s->pairs, (const int32_t *const *)ids, n);
    }
    free(line);
    free(ids[0]);
    free(ids[1]);
    wp_free(wp);
    if (s->pairs.rows < 2)
        die("%s: %lld sentence pairs, at least 2 are needed for a correlation", path,
            (long long)s->pairs.rows);
}

/* ---- the GPU ------------------------------------------------------------ */

/* With the GPU the weights and moments live on the device between steps:
 * copy them into the host buffers before anything reads those. */
static void gpu_to_host(run *R, int moments)
{
    if (!R->gpu)
        return;
    gpu_get_params(R->gpu, R->model.params);
    if (moments)
        gpu_get_moments(R->gpu, R->adam_m, R->adam_v);
}

/* ---- evaluation --------------------------------------------------------- */

/* Sequences per forward pass, and per packed chunk handed to the encoder. */
#define EVAL_BATCH 64
#define EVAL_CHUNK 1024

/* Pack sequences seq[0..n) of d into ids[n, T] (-1 padding) and lens[n];
 * returns T. */
static int pack(const train_data *d, const int64_t *seq, int n, int32_t *ids, int32_t *lens)
{
    int T = 1;
    for (int i = 0; i < n; i++)
        if (d->len[seq[i]] > T)
            T = d->len[seq[i]];
    for (int i = 0; i < n; i++) {
        int32_t *row = ids + (size_t)i * T;
        lens[i] = d->len[seq[i]];
        memcpy(row, d->tokens + d->start[seq[i]], lens[i] * sizeof *row);
        for (int t = lens[i]; t < T; t++)
            row[t] = -1;
    }
    return T;
}

/* Spearman correlation of the cosines of the STS pairs under the current
 * weights (no dropout) with the gold scores. */
static double eval_sts(run *R)
{
    const train_data *d = &R->sts.pairs;
    int H = R->cfg->hidden;
    int64_t nseq = d->rows * 2;
    encoder *enc = R->gpu ? NULL : encoder_new(&R->model, EVAL_BATCH);
    float *emb = xmallocarray((size_t)nseq * H, sizeof *emb);
    int32_t *ids = xmallocarray((size_t)EVAL_CHUNK * d->max_len, sizeof *ids);
    int32_t lens[EVAL_CHUNK];
    int64_t seq[EVAL_CHUNK];
    for (int64_t s0 = 0; s0 < nseq; s0 += EVAL_CHUNK) {
        int n = nseq - s0 < EVAL_CHUNK ? (int)(nseq - s0) : EVAL_CHUNK;
        for (int i = 0; i < n; i++)
            seq[i] = s0 + i;
        int T = pack(d, seq, n, ids, lens);
        if (R->gpu)
            gpu_embed(R->gpu, ids, lens, n, T, R->model.pooling, 0, emb + (size_t)s0 * H);
        else
            encoder_run(enc, ids, lens, n, T, 0, emb + (size_t)s0 * H);
    }
    double *cos = xmallocarray(d->rows, sizeof *cos);
    for (int64_t i = 0; i < d->rows; i++)
        cos[i] = cosine_f32(emb + (size_t)(2 * i) * H, emb + (size_t)(2 * i + 1) * H, H);
    double rho = stats_spearman(cos, R->sts.gold, d->rows);
    free(cos);
    free(ids);
    free(emb);
    encoder_free(enc);
    return rho;
}

static void log_eval(run *R, double rho)
{
    if (R->log) {
        if (isfinite(rho))
            out_printf(R->log, R->log_path, "{\"step\":%ld,\"eval_sts_spearman\":%.17g}\n",
                       R->pos.step, rho);
        else
            out_printf(R->log, R->log_path, "{\"step\":%ld,\"eval_sts_spearman\":null}\n",
                       R->pos.step);
        fflush(R->log);
    }
    bar_clear();
    warnx("step %ld: STS Spearman %.6f", R->pos.step, rho);
    if (R->opt.keep_best && rho > R->best_score) {
        R->best_score = rho;
        R->best_step = R->pos.step;
        gpu_to_host(R, 0);
        memcpy(R->best_params, R->model.params, R->model.nparams * sizeof(float));
    }
}

/* ---- checkpoints -------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    atomic_file f;
    atomic_open(&f, path);
    out_write(f.f, path, text, strlen(text));
    atomic_commit(&f);
}

static void write_flat(const char *path, const char *names[], const float *data[], int n,
                       size_t numel)
{
    st_out_tensor t[2];
    for (int i = 0; i < n; i++)
        t[i] = (st_out_tensor){.name = names[i], .dtype = ST_F32, .ndim = 1,
                               .shape = {(int64_t)numel}, .data = data[i]};
    st_write(path, t, n, "{\"format\":\"pt\"}");
}

/* A checkpoint of the state at p (the weights and moments in R must be that
 * state's), in R->checkpoint_dir, replacing the one before. */
static void write_checkpoint(run *R, const position *p)
{
    gpu_to_host(R, 1);
    char *tmp = atomic_dir_begin(R->checkpoint_dir);
    model_write_files(&R->model, tmp, R->model.params);
    size_t n = R->model.nparams;

    char *path = path_join(tmp, "optimizer.safetensors");
    write_flat(path, (const char *[]){"exp_avg", "exp_avg_sq"},
               (const float *[]){R->adam_m, R->adam_v}, 2, n);
    free(path);
    if (R->best_step > 0) {
        path = path_join(tmp, "best.safetensors");
        write_flat(path, (const char *[]){"params"}, (const float *[]){R->best_params}, 1, n);
        free(path);
    }

    json_t *rng = json_array();
    for (int i = 0; i < 4; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, p->dropout.s[i]);
        json_array_append_new(rng, json_string(hex));
    }
    char fingerprint[17];
    snprintf(fingerprint, sizeof fingerprint, "%016" PRIx64, train_data_fingerprint(&R->data));
    json_t *state = json_pack(
        "{ss sI sI sI so sI so s{sI si ss}}", "format", "mnr-train checkpoint 1",
        "step", (json_int_t)p->step, "epoch", (json_int_t)p->epoch,
        "batch_in_epoch", (json_int_t)p->batch, "dropout_rng", rng,
        "schedule_steps", (json_int_t)R->schedule_steps, "options", options_json(&R->opt),
        "input", "rows", (json_int_t)R->data.rows, "columns", R->data.columns,
        "fingerprint", fingerprint);
    if (R->best_step > 0)
        json_object_set_new(state, "best", json_pack("{sI sf}", "step", (json_int_t)R->best_step,
                                                     "eval_sts_spearman", R->best_score));
    char *text = json_dumps(state, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    strcpy(text + len, "\n");
    path = path_join(tmp, "state.json");
    write_text(path, text);
    free(path);
    free(text);
    json_decref(state);

    atomic_dir_commit(tmp, R->checkpoint_dir);
    free(tmp);
}

static void read_flat(const char *dir, const char *file, const char *name, float *dst, size_t n)
{
    char *path = path_join(dir, file);
    safetensors st;
    st_open(&st, path);
    const st_tensor *t = st_find(&st, name);
    if (!t)
        die("%s: no tensor %s", path, name);
    if (t->dtype != ST_F32 || t->numel != n)
        die("%s: tensor %s: %s with %zu values, expected F32 with %zu", path, name,
            st_dtype_name(t->dtype), t->numel, n);
    memcpy(dst, t->data, n * sizeof *dst);
    st_close(&st);
    free(path);
}

static json_int_t state_int(json_t *state, const char *path, const char *key, json_int_t min)
{
    json_t *v = json_object_get(state, key);
    if (!json_is_integer(v) || json_integer_value(v) < min)
        die("%s: %s: missing or not an integer >= %lld", path, key, (long long)min);
    return json_integer_value(v);
}

/* Read the state.json of a checkpoint: the options into *saved, the rest
 * into R (position, schedule, best score). */
static json_t *read_state(run *R, options *saved)
{
    char *path = path_join(R->resume_dir, "state.json");
    json_error_t err;
    json_t *state = json_load_file(path, 0, &err);
    if (!state)
        die("%s:%d: %s", path, err.line, err.text);
    json_t *format = json_object_get(state, "format");
    if (!json_is_string(format) || strcmp(json_string_value(format), "mnr-train checkpoint 1"))
        die("%s: not an mnr-train checkpoint (format)", path);
    R->pos.step = state_int(state, path, "step", 0);
    R->pos.epoch = state_int(state, path, "epoch", 0);
    R->pos.batch = state_int(state, path, "batch_in_epoch", 0);
    R->schedule_steps = state_int(state, path, "schedule_steps", 1);
    json_t *rng = json_object_get(state, "dropout_rng");
    if (!json_is_array(rng) || json_array_size(rng) != 4)
        die("%s: dropout_rng: expected 4 hexadecimal words", path);
    for (int i = 0; i < 4; i++) {
        const char *hex = json_string_value(json_array_get(rng, i));
        char *end;
        errno = 0;
        R->pos.dropout.s[i] = hex ? strtoull(hex, &end, 16) : 0;
        if (!hex || !*hex || *end || errno)
            die("%s: dropout_rng: expected 4 hexadecimal words", path);
    }
    options_from_json(saved, json_object_get(state, "options"), path);
    json_t *best = json_object_get(state, "best");
    if (best) {
        R->best_step = state_int(best, path, "step", 1);
        R->best_score = json_real_value(json_object_get(best, "eval_sts_spearman"));
    }
    free(path);
    return state;
}

/* After the input is read: it must be the one the checkpoint was made on. */
static void check_input(run *R, json_t *state)
{
    json_t *in = json_object_get(state, "input");
    char fingerprint[17];
    snprintf(fingerprint, sizeof fingerprint, "%016" PRIx64, train_data_fingerprint(&R->data));
    const char *want = json_string_value(json_object_get(in, "fingerprint"));
    if (json_integer_value(json_object_get(in, "rows")) != R->data.rows ||
        json_integer_value(json_object_get(in, "columns")) != R->data.columns || !want ||
        strcmp(want, fingerprint))
        die("%s: the input differs from the one this checkpoint was trained on "
            "(%lld rows of %d columns, fingerprint %s; the checkpoint's: %lld rows of %lld, %s)",
            R->resume_dir, (long long)R->data.rows, R->data.columns, fingerprint,
            (long long)json_integer_value(json_object_get(in, "rows")),
            (long long)json_integer_value(json_object_get(in, "columns")), want ? want : "none");
}

/* ---- training ----------------------------------------------------------- */

/* Buffers of one training step (with the GPU only ids, lens and seq). */
typedef struct {
    bert_acts *acts;
    int32_t *ids, *lens;
    int64_t *seq;
    float *pooled, *dpooled;
} step_buffers;

static void step_buffers_init(step_buffers *b, const run *R)
{
    int C = R->data.columns, n = (int)R->opt.batch_size * C, H = R->cfg->hidden;
    *b = (step_buffers){0};
    b->ids = xmallocarray((size_t)n * R->data.max_len, sizeof *b->ids);
    b->lens = xmallocarray(n, sizeof *b->lens);
    b->seq = xmallocarray(n, sizeof *b->seq);
    if (R->gpu)
        return;
    b->acts = bert_acts_new(R->cfg, n, R->data.max_len, 1);
    b->pooled = xmallocarray((size_t)n * H, sizeof *b->pooled);
    b->dpooled = xmallocarray((size_t)n * H, sizeof *b->dpooled);
}

static void step_buffers_free(step_buffers *b)
{
    bert_acts_free(b->acts);
    free(b->ids);
    free(b->lens);
    free(b->seq);
    free(b->pooled);
    free(b->dpooled);
}

/* The GPU's forward and backward of the packed batch (C columns of B rows,
 * all padded to T), the gradients left on the device; the dropout masks come
 * from one number of the run's generator. */
static double forward_backward_gpu(run *R, const step_buffers *b, int B, int T, rng_t *dropout)
{
    int C = R->data.columns;
    const int32_t *col_ids[C], *col_lens[C];
    int Ts[C];
    for (int c = 0; c < C; c++) {
        col_ids[c] = b->ids + (size_t)c * B * T;
        col_lens[c] = b->lens + (size_t)c * B;
        Ts[c] = T;
    }
    gpu_loss_config lc = {.scale = R->opt.scale, .symmetric = R->opt.symmetric,
                          .pooling = R->model.pooling, .dropout_seed = rng_next(dropout)};
    return gpu_forward_backward(R->gpu, col_ids, col_lens, C, B, Ts, &lc, NULL);
}

/* Forward and backward of one batch (rows[0..B)) into R->grads (or the
 * GPU's): all its sequences in one packed pass, column after column, so that
 * column c's pooled embeddings are the block pooled + c*B*H the loss expects.
 * Returns the loss. */
static double forward_backward(run *R, step_buffers *b, const int64_t *rows, int B, rng_t *dropout,
                               int *stopped)
{
    int C = R->data.columns, H = R->cfg->hidden, n = B * C;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < B; i++)
            b->seq[c * B + i] = rows[i] * C + c;
    int T = pack(&R->data, b->seq, n, b->ids, b->lens);
    if (R->gpu) {
        double loss = forward_backward_gpu(R, b, B, T, dropout);
        *stopped = !isfinite(loss);
        return loss;
    }
    bert_forward(R->cfg, R->model.params, b->ids, b->lens, n, T, b->acts, dropout);
    bert_pool(b->acts, R->model.pooling, b->pooled);
    const float *cols[C];
    float *dcols[C];
    for (int c = 0; c < C; c++) {
        cols[c] = b->pooled + (size_t)c * B * H;
        dcols[c] = b->dpooled + (size_t)c * B * H;
    }
    /* A Normalize module after pooling changes nothing here: the loss is
     * computed on cosines, which normalisation leaves as they are. */
    double loss = mnr_loss_columns(cols, C, B, H, R->opt.scale, R->opt.symmetric, dcols, NULL);
    if (!isfinite(loss)) {
        *stopped = 1;
        return loss;
    }
    bert_pool_backward(b->acts, R->model.pooling, b->dpooled);
    for (int k = 0; k < R->nranges; k++)
        memset(R->grads + R->ranges[k].offset, 0, R->ranges[k].numel * sizeof *R->grads);
    bert_backward(R->cfg, R->model.params, R->grads, b->acts);
    return loss;
}

/* Gradient clipping and the AdamW update of step k; returns the gradient
 * norm before clipping.  A non-finite norm updates nothing (the caller
 * stops). */
static double optimizer_step(run *R, long k, double lr)
{
    if (R->gpu)
        return gpu_optimizer_step(R->gpu, &R->adam, lr, R->opt.max_grad_norm, k);
    double norm = clip_grad_norm(R->grads, R->ranges, R->nranges, R->opt.max_grad_norm);
    if (isfinite(norm))
        adam_step(&R->adam, R->ranges, R->nranges, R->model.params, R->grads, R->adam_m,
                  R->adam_v, k, lr);
    return norm;
}

static void format_time(char *buf, size_t n, double s)
{
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

/* A tqdm-like bar redrawn in place on a terminal; otherwise a line every
 * `every` steps. */
#define PROGRESS_WIDTH 20
static void progress(const run *R, long done, double elapsed, double loss, int tty, long every)
{
    long steps = R->pos.step, total = R->total_steps;
    double rate = elapsed > 0 ? done / elapsed : 0;
    char el[32], eta[32];
    format_time(el, sizeof el, elapsed);
    format_time(eta, sizeof eta, rate > 0 ? (total - steps) / rate : 0);
    if (tty) {
        char bar[PROGRESS_WIDTH + 1];
        long filled = total > 0 ? steps * PROGRESS_WIDTH / total : 0;
        for (int i = 0; i < PROGRESS_WIDTH; i++)
            bar[i] = i < filled ? '#' : ' ';
        bar[PROGRESS_WIDTH] = 0;
        fprintf(stderr, "\r%s: %3ld%% |%s| %ld/%ld [%s<%s, %.2f it/s, loss %.4f]\033[K%s",
                progname, total > 0 ? steps * 100 / total : 0, bar, steps, total, el, eta, rate,
                loss, steps == total ? "\n" : "");
        fflush(stderr);
        bar_drawn = steps < total;
    } else if (steps % every == 0 || steps == total) {
        warnx("step %ld/%ld loss %.6f %.2f it/s elapsed %s eta %s", steps, total, loss, rate, el,
              eta);
    }
}

/* Step counts of the epochs from `from` up to the last one or until `need`
 * steps are found. */
static long count_steps(const run *R, long from, long first_batch, long need)
{
    int64_t *order = xmallocarray(R->data.rows, sizeof *order);
    long steps = 0;
    for (long e = from; e < R->opt.epochs && steps < need; e++) {
        batch_plan p;
        epoch_order(order, R->data.rows, R->shuffle_seed, e, R->opt.shuffle);
        sampler_plan(&R->data, order, (int)R->opt.batch_size, R->opt.drop_last, &p);
        long b = e == from ? first_batch : 0;
        steps += p.batches > b ? p.batches - b : 0;
        batch_plan_free(&p);
    }
    free(order);
    return steps;
}

static void stop_with_checkpoint(run *R, const position *p, int status, const char *why)
{
    write_checkpoint(R, p);
    if (R->log)
        out_close(R->log, R->log_path);
    bar_clear();
    warnx("%s; the state after step %ld is in %s (continue with --resume %s)", why, p->step,
          R->checkpoint_dir, R->checkpoint_dir);
    exit(status);
}

static void train(run *R)
{
    step_buffers buf;
    step_buffers_init(&buf, R);
    int64_t *order = xmallocarray(R->data.rows, sizeof *order);
    batch_plan plan = {0};
    long plan_epoch = -1;
    int tty = isatty(STDERR_FILENO);
    long every = (R->total_steps + 9) / 10;
    every = every < 1 ? 1 : every > 100 ? 100 : every;
    long start_step = R->pos.step;
    double t0 = now_seconds();

    while (R->pos.step < R->total_steps && R->pos.epoch < R->opt.epochs) {
        if (plan_epoch != R->pos.epoch) {
            batch_plan_free(&plan);
            epoch_order(order, R->data.rows, R->shuffle_seed, R->pos.epoch, R->opt.shuffle);
            sampler_plan(&R->data, order, (int)R->opt.batch_size, R->opt.drop_last, &plan);
            plan_epoch = R->pos.epoch;
        }
        if (R->pos.batch >= plan.batches) {
            R->pos.epoch++;
            R->pos.batch = 0;
            continue;
        }
        if (stop_signal)
            stop_with_checkpoint(R, &R->pos, 128 + stop_signal,
                                 stop_signal == SIGINT ? "interrupted" : "terminated");

        position before = R->pos;
        double t = now_seconds();
        const int64_t *rows = plan.rows + plan.start[R->pos.batch];
        int B = (int)(plan.start[R->pos.batch + 1] - plan.start[R->pos.batch]), bad = 0;
        long k = R->pos.step + 1;
        double lr = lr_linear_warmup(R->opt.lr, R->warmup, R->schedule_steps, k - 1);
        double loss = forward_backward(R, &buf, rows, B, &R->pos.dropout, &bad);
        double norm = bad ? NAN : optimizer_step(R, k, lr);
        if (bad || !isfinite(norm)) {
            double x = bad ? loss : norm;
            char why[160];
            snprintf(why, sizeof why, "step %ld: %s is %s; training stopped", before.step + 1,
                     bad ? "the loss" : "the gradient norm",
                     isnan(x) ? "NaN" : x > 0 ? "infinite" : "-infinite");
            stop_with_checkpoint(R, &before, EXIT_BAD_INPUT, why);
        }
        R->pos.step = k;
        R->pos.batch++;
        double dt = now_seconds() - t;

        if (R->log) {
            out_printf(R->log, R->log_path,
                       "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.17g,\"lr\":%.17g,"
                       "\"grad_norm\":%.17g,\"examples_per_s\":%.17g}\n",
                       k, R->pos.epoch + 1, loss, lr, norm, dt > 0 ? B / dt : 0.0);
            fflush(R->log);
        }
        progress(R, k - start_step, now_seconds() - t0, loss, tty, every);
        if (R->sts.gold && R->opt.eval_every > 0 && k % R->opt.eval_every == 0)
            log_eval(R, eval_sts(R));
        if (R->checkpoint_every > 0 && k % R->checkpoint_every == 0)
            write_checkpoint(R, &R->pos);
    }
    /* A signal during the last step still stops the run with a checkpoint. */
    if (stop_signal)
        stop_with_checkpoint(R, &R->pos, 128 + stop_signal,
                             stop_signal == SIGINT ? "interrupted" : "terminated");
    batch_plan_free(&plan);
    free(order);
    step_buffers_free(&buf);
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    out_printf(stdout, "stdout", "%s",
"Usage: mnr-train -m MODEL_DIR -o OUT_DIR [OPTION]... [FILE]...\n"
"  or:  mnr-train --init-from-config CONFIG.json -o OUT_DIR [OPTION]... [FILE]...\n"
"  or:  mnr-train --resume CHECKPOINT_DIR -o OUT_DIR [OPTION]... [FILE]...\n"
"Fine-tune a BERT sentence encoder with MultipleNegativesRankingLoss on token\n"
"frames (<i4, shape (rows, columns, length), -1 padding): column 0 anchors,\n"
"column 1 positives, further columns hard negatives.  With no FILE, or when\n"
"FILE is -, read standard input.  The trained model is written to OUT_DIR.\n"
"\n"
"Model:\n"
"  -m, --model=DIR             model directory to start from\n"
"      --init-from-config=FILE start from random weights for this config.json\n"
"                              (vocabulary from its directory; no -m)\n"
"  -o, --output=DIR            where the trained model goes (required)\n"
"Batches and schedule:\n"
"      --batch-size=N          rows per batch (default 32)\n"
"      --epochs=N              passes over the data (default 1)\n"
"      --max-steps=N           stop after N optimizer steps\n"
"      --no-shuffle            batches in input order (default: shuffled by --seed)\n"
"      --drop-last             skip a last batch that is not full\n"
"      --max-length=N          truncate longer sequences (first N-1 ids, then the last)\n"
"      --seed=N                seed of everything random (default 42)\n"
"Loss and optimizer:\n"
"      --scale=X               similarity scale (default 20)\n"
"      --symmetric             MultipleNegativesSymmetricRankingLoss\n"
"      --lr=X                  peak learning rate (default 2e-5)\n"
"      --warmup=W              warmup steps, or a share of the schedule when W has a\n"
"                              decimal point (default 0.1)\n"
"      --schedule-steps=N      length of the linear schedule (default: the run's steps)\n"
"      --optimizer=adamw|adam  decoupled or L2 weight decay (default adamw)\n"
"      --weight-decay=X        (default 0.01; not on biases and LayerNorm weights)\n"
"      --adam-eps=X            (default 1e-8)\n"
"      --max-grad-norm=X       clip the gradient norm (default 1; 0 disables)\n"
"Evaluation:\n"
"      --eval-sts=FILE         STS benchmark file (score, sentence 1, sentence 2 in\n"
"                              tab-separated fields 5, 6, 7): Spearman at the end\n"
"      --eval-every=N          and every N steps\n"
"      --keep-best             write the weights with the best Spearman\n"
"Running:\n"
"      --log=FILE              JSON Lines, one object per step and per evaluation\n"
"      --checkpoint-every=N    checkpoint OUT_DIR.checkpoint every N steps\n"
"      --resume=DIR            continue from a checkpoint\n"
"      --device=auto|cpu|cuda  where to train (default auto: the GPU when there is\n"
"                              one, else the CPU; says which on stderr)\n"
"      --precision=fp32|bf16   the GPU's arithmetic (default bf16: bf16 products,\n"
"                              fp32 weights and moments); the CPU is always fp32\n"
"      --threads=N             CPU threads (default: all cores)\n"
"  -h, --help                  show this help and exit\n"
"  -V, --version               show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or failure (a non-finite loss included),\n"
"2 usage error, 130 interrupted (SIGINT) and 143 terminated (SIGTERM), both\n"
"after writing a checkpoint.\n");
    out_close(stdout, "stdout");
}

enum {
    OPT_BATCH = 256, OPT_EPOCHS, OPT_MAX_STEPS, OPT_LR, OPT_WARMUP, OPT_SCHEDULE, OPT_SCALE,
    OPT_SYMMETRIC, OPT_OPTIMIZER, OPT_WD, OPT_EPS, OPT_CLIP, OPT_SEED, OPT_NO_SHUFFLE,
    OPT_MAX_LENGTH, OPT_DROP_LAST, OPT_DEVICE, OPT_PRECISION, OPT_THREADS, OPT_LOG, OPT_CKPT,
    OPT_RESUME, OPT_INIT, OPT_EVAL_STS, OPT_EVAL_EVERY, OPT_KEEP_BEST,
};

static void check_eval_options(const options *o)
{
    if ((o->eval_every || o->keep_best) && !o->eval_sts)
        die_usage("--eval-every and --keep-best need --eval-sts");
}

static long long_arg(const char *opt, long min, long max)
{
    long v;
    if (parse_long(optarg, min, max, &v) != 0)
        die_usage("%s: '%s' is not a whole number from %ld to %ld", opt, optarg, min, max);
    return v;
}

static double real_arg(const char *opt, double min, int min_open)
{
    double v;
    if (parse_double(optarg, &v) != 0 || v < min || (min_open && v == min))
        die_usage("%s: '%s' is not a number %s %g", opt, optarg, min_open ? ">" : ">=", min);
    return v;
}

int main(int argc, char **argv)
{
    util_init(argv[0]);
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
        {"lr", required_argument, NULL, OPT_LR},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"schedule-steps", required_argument, NULL, OPT_SCHEDULE},
        {"scale", required_argument, NULL, OPT_SCALE},
        {"symmetric", no_argument, NULL, OPT_SYMMETRIC},
        {"optimizer", required_argument, NULL, OPT_OPTIMIZER},
        {"weight-decay", required_argument, NULL, OPT_WD},
        {"adam-eps", required_argument, NULL, OPT_EPS},
        {"max-grad-norm", required_argument, NULL, OPT_CLIP},
        {"seed", required_argument, NULL, OPT_SEED},
        {"no-shuffle", no_argument, NULL, OPT_NO_SHUFFLE},
        {"max-length", required_argument, NULL, OPT_MAX_LENGTH},
        {"drop-last", no_argument, NULL, OPT_DROP_LAST},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"log", required_argument, NULL, OPT_LOG},
        {"checkpoint-every", required_argument, NULL, OPT_CKPT},
        {"resume", required_argument, NULL, OPT_RESUME},
        {"init-from-config", required_argument, NULL, OPT_INIT},
        {"eval-sts", required_argument, NULL, OPT_EVAL_STS},
        {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
        {"keep-best", no_argument, NULL, OPT_KEEP_BEST},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    run R = {.best_score = -INFINITY};
    R.opt = default_options();
    options *o = &R.opt;
    const char *model_dir = NULL, *init_config = NULL, *device = "auto", *precision_arg = NULL;
    gpu_precision precision = GPU_BF16;
    long threads = 0;
    unsigned given = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:o:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'o': R.out_dir = optarg; break;
        case OPT_BATCH: o->batch_size = long_arg("--batch-size", 1, 1 << 20); given |= G_BATCH; break;
        case OPT_EPOCHS: o->epochs = long_arg("--epochs", 1, 1 << 20); given |= G_EPOCHS; break;
        case OPT_MAX_STEPS: o->max_steps = long_arg("--max-steps", 1, LONG_MAX); given |= G_MAX_STEPS; break;
        case OPT_SCHEDULE: o->schedule_steps = long_arg("--schedule-steps", 1, LONG_MAX); given |= G_SCHEDULE; break;
        case OPT_MAX_LENGTH: o->max_length = long_arg("--max-length", 2, INT_MAX); given |= G_MAX_LENGTH; break;
        case OPT_EVAL_EVERY: o->eval_every = long_arg("--eval-every", 1, LONG_MAX); given |= G_EVAL_EVERY; break;
        case OPT_SEED: o->seed = long_arg("--seed", 0, LONG_MAX); given |= G_SEED; break;
        case OPT_CKPT: R.checkpoint_every = long_arg("--checkpoint-every", 1, LONG_MAX); break;
        case OPT_THREADS: threads = long_arg("--threads", 1, 4096); break;
        case OPT_LR: o->lr = real_arg("--lr", 0, 0); given |= G_LR; break;
        case OPT_SCALE: o->scale = real_arg("--scale", 0, 1); given |= G_SCALE; break;
        case OPT_WD: o->weight_decay = real_arg("--weight-decay", 0, 0); given |= G_WD; break;
        case OPT_EPS: o->adam_eps = real_arg("--adam-eps", 0, 0); given |= G_EPS; break;
        case OPT_CLIP: o->max_grad_norm = real_arg("--max-grad-norm", 0, 0); given |= G_CLIP; break;
        case OPT_WARMUP:
            if (warmup_parse(optarg, &o->warm) != 0)
                die_usage("--warmup: '%s' is neither a number of steps nor a share from 0.0 to 1.0",
                          optarg);
            o->warmup = optarg;
            given |= G_WARMUP;
            break;
        case OPT_OPTIMIZER:
            if (!strcmp(optarg, "adamw"))
                o->optimizer = OPTIM_ADAMW;
            else if (!strcmp(optarg, "adam"))
                o->optimizer = OPTIM_ADAM;
            else
                die_usage("--optimizer: '%s' is not adamw or adam", optarg);
            given |= G_OPTIM;
            break;
        case OPT_SYMMETRIC: o->symmetric = 1; given |= G_SYMMETRIC; break;
        case OPT_NO_SHUFFLE: o->shuffle = 0; given |= G_SHUFFLE; break;
        case OPT_DROP_LAST: o->drop_last = 1; given |= G_DROP_LAST; break;
        case OPT_KEEP_BEST: o->keep_best = 1; given |= G_KEEP_BEST; break;
        case OPT_EVAL_STS: o->eval_sts = optarg; given |= G_EVAL_STS; break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_PRECISION:
            if (gpu_precision_parse(optarg, &precision) != 0)
                die_usage("--precision: '%s' is not fp32 or bf16", optarg);
            precision_arg = optarg;
            break;
        case OPT_LOG: R.log_path = optarg; break;
        case OPT_RESUME: R.resume_dir = optarg; break;
        case OPT_INIT: init_config = optarg; break;
        case 'h': usage(); return 0;
        case 'V': print_version(); return 0;
        default: die_bad_option(c, argv);
        }
    }
    if (!R.out_dir)
        die_usage("no output directory (-o OUT_DIR)");
    if (!R.resume_dir && !model_dir && !init_config)
        die_usage("no model: give -m MODEL_DIR, --init-from-config CONFIG.json or --resume DIR");
    if (!R.resume_dir && model_dir && init_config)
        die_usage("-m and --init-from-config exclude each other (the vocabulary comes from the "
                  "config's directory)");
    if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda"))
        die_usage("--device: '%s' is not auto, cpu or cuda", device);
    if (!R.resume_dir)
        check_eval_options(o);
    threads_set((int)threads);
    int on_gpu = gpu_select(device, "training", precision, precision_arg != NULL);

    json_t *state = NULL;
    if (R.resume_dir) {
        options saved;
        state = read_state(&R, &saved);
        options_merge(o, &saved, given);
        model_load(&R.model, R.resume_dir);
    } else if (init_config) {
        model_init_random(&R.model, init_config, (uint64_t)o->seed);
    } else {
        model_load(&R.model, model_dir);
    }
    if (R.resume_dir)
        check_eval_options(o); /* now with the checkpoint's options */
    R.cfg = &R.model.cfg;
    if (o->max_length > R.cfg->max_positions)
        die_usage("--max-length %ld is more than the model's %d positions", o->max_length,
                  R.cfg->max_positions);
    if (!model_has_vocab(&R.model))
        die("%s: no vocab.txt or tokenizer.json, which the output directory needs", R.model.dir);
    check_output_dir(R.out_dir);
    char *base = strip_slashes(R.out_dir);
    R.checkpoint_dir = xmalloc(strlen(base) + sizeof ".checkpoint");
    strcat(strcpy(R.checkpoint_dir, base), ".checkpoint");
    free(base);

    read_rows(&R, argc - optind, argv + optind);
    if (state)
        check_input(&R, state);
    if (o->eval_sts)
        read_sts(&R, o->eval_sts);

    /* The schedule: its length is the run's number of steps unless given (or
     * kept from the checkpoint), counted by running the sampler. */
    if (o->max_steps > 0 && o->max_steps < R.pos.step)
        die_usage("--max-steps %ld: the checkpoint is at step %ld already", o->max_steps,
                  R.pos.step);
    R.shuffle_seed = (uint64_t)o->seed ^ SHUFFLE_STREAM;
    long data_steps = R.pos.step + count_steps(&R, R.pos.epoch, R.pos.batch, LONG_MAX);
    R.total_steps = o->max_steps > 0 && o->max_steps < data_steps ? o->max_steps : data_steps;
    if (!state || (given & G_SCHEDULE))
        R.schedule_steps = o->schedule_steps > 0 ? o->schedule_steps : R.total_steps;
    if (R.total_steps == 0)
        die("no batch to train on: %lld rows, batch size %ld%s", (long long)R.data.rows,
            o->batch_size, o->drop_last ? " and --drop-last" : "");
    R.warmup = warmup_steps(&o->warm, R.schedule_steps);
    if (!state)
        rng_seed(&R.pos.dropout, (uint64_t)o->seed ^ DROPOUT_STREAM);

    size_t n = R.model.nparams;
    R.adam_m = xcalloc(n, sizeof *R.adam_m);
    R.adam_v = xcalloc(n, sizeof *R.adam_v);
    if (o->keep_best)
        R.best_params = xmallocarray(n, sizeof *R.best_params);
    if (state) {
        read_flat(R.resume_dir, "optimizer.safetensors", "exp_avg", R.adam_m, n);
        read_flat(R.resume_dir, "optimizer.safetensors", "exp_avg_sq", R.adam_v, n);
        if (o->keep_best && R.best_step > 0)
            read_flat(R.resume_dir, "best.safetensors", "params", R.best_params, n);
        else
            R.best_step = 0, R.best_score = -INFINITY;
        json_decref(state);
    }
    if (on_gpu) {
        R.gpu = gpu_model_create(R.cfg, R.model.params, precision, 1);
        if (R.resume_dir)
            gpu_set_moments(R.gpu, R.adam_m, R.adam_v);
    } else {
        R.grads = xcalloc(n, sizeof *R.grads);
    }
    R.nranges = optim_bert_ranges(R.cfg, NULL);
    R.ranges = xmallocarray(R.nranges, sizeof *R.ranges);
    optim_bert_ranges(R.cfg, R.ranges);
    R.adam = adam_defaults();
    R.adam.kind = o->optimizer;
    R.adam.eps = o->adam_eps;
    R.adam.weight_decay = o->weight_decay;

    if (R.log_path) {
        R.log = fopen(R.log_path, R.resume_dir ? "a" : "w");
        if (!R.log)
            die("%s: %s", R.log_path, strerror(errno));
    }
    warnx("%lld rows of %d columns; steps %ld to %ld of a %ld-step schedule (warmup %ld)",
          (long long)R.data.rows, R.data.columns, R.pos.step + 1, R.total_steps,
          R.schedule_steps, R.warmup);

    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    train(&R);
    if (R.sts.gold && !(R.opt.eval_every > 0 && R.pos.step % R.opt.eval_every == 0))
        log_eval(&R, eval_sts(&R));
    if (stop_signal)
        stop_with_checkpoint(&R, &R.pos, 128 + stop_signal,
                             stop_signal == SIGINT ? "interrupted" : "terminated");
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    gpu_to_host(&R, 0);
    const float *final = R.model.params;
    if (o->keep_best && R.best_step > 0) {
        final = R.best_params;
        warnx("keeping the weights of step %ld (STS Spearman %.6f)", R.best_step, R.best_score);
    }
    model_save(&R.model, R.out_dir, final);
    if (R.gpu)
        gpu_model_free(R.gpu);
    if (R.log)
        out_close(R.log, R.log_path);
    warnx("wrote %s", R.out_dir);
    return 0;
}
