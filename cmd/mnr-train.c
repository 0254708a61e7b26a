/* mnr-train - fine-tune a BERT sentence encoder with MultipleNegativesRankingLoss
 * on a token stream of (anchor, positive[, negative...]) rows, as
 * sentence-transformers' trainer does it.  Options and wiring only: the
 * training itself is lib/trainer.c, checkpoints lib/checkpoint.c, the STS
 * evaluation lib/sts_eval.c, the devices lib/encoder*.c. */
#include "checkpoint.h"
#include "comm.h"
#include "encoder.h"
#include "loss.h"
#include "model.h"
#include "sampler.h"
#include "sts_eval.h"
#include "threads.h"
#include "train_log.h"
#include "trainer.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sequences per forward pass of the STS evaluation. */
#define EVAL_BATCH 64

/* What the hooks need besides the trainer. */
typedef struct {
    const char *log_path, *checkpoint_dir;
    FILE *log;
    sts_set sts;
    int tty;            /* progress bar (stderr is a terminal) or lines */
    int bar_drawn;      /* a bar without its newline is on the terminal */
    long every;         /* progress line every so many steps */
    long start_step;
    double t0;
} run_io;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* Messages clear a progress bar first (the next step draws it again). */
static void bar_clear(run_io *io)
{
    if (io->bar_drawn)
        fputs("\r\033[K", stderr);
    io->bar_drawn = 0;
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
 * io->every steps. */
#define PROGRESS_WIDTH 20
static void progress(run_io *io, const trainer *t, double loss)
{
    long steps = t->pos.step, total = t->total_steps;
    double elapsed = now_seconds() - io->t0;
    double rate = elapsed > 0 ? (steps - io->start_step) / elapsed : 0;
    char el[32], eta[32];
    format_time(el, sizeof el, elapsed);
    format_time(eta, sizeof eta, rate > 0 ? (total - steps) / rate : 0);
    if (io->tty) {
        char bar[PROGRESS_WIDTH + 1];
        long filled = total > 0 ? steps * PROGRESS_WIDTH / total : 0;
        for (int i = 0; i < PROGRESS_WIDTH; i++)
            bar[i] = i < filled ? '#' : ' ';
        bar[PROGRESS_WIDTH] = 0;
        fprintf(stderr, "\r%s: %3ld%% |%s| %ld/%ld [%s<%s, %.2f it/s, loss %.4f]\033[K%s",
                progname, total > 0 ? steps * 100 / total : 0, bar, steps, total, el, eta, rate,
                loss, steps == total ? "\n" : "");
        fflush(stderr);
        io->bar_drawn = steps < total;
    } else if (steps % io->every == 0 || steps == total) {
        warnx("step %ld/%ld loss %.6f %.2f it/s elapsed %s eta %s", steps, total, loss, rate, el,
              eta);
    }
}

static void log_step(trainer *t, int rows, double loss, double lr, double norm, double seconds)
{
    run_io *io = t->hook_ctx;
    if (io->log)
        train_log_step(io->log, io->log_path, t, loss, lr, norm, seconds > 0 ? rows / seconds : 0);
    progress(io, t, loss);
}

static double evaluate(trainer *t)
{
    run_io *io = t->hook_ctx;
    return sts_evaluate(t->enc, &io->sts);
}

static void log_eval(trainer *t, double rho)
{
    run_io *io = t->hook_ctx;
    if (io->log)
        train_log_eval(io->log, io->log_path, t, rho);
    bar_clear(io);
    warnx("step %ld: STS Spearman %.6f", t->pos.step, rho);
}

/* A checkpoint with SIGINT and SIGTERM held back until it is complete (a
 * second Ctrl-C then stops the run, not the write). */
static void write_checkpoint(trainer *t)
{
    run_io *io = t->hook_ctx;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    checkpoint_write(io->checkpoint_dir, t);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static int should_stop(trainer *t)
{
    return stop_signal != 0;
}

/* Write a checkpoint of the state at t->pos and exit with status.  With
 * several ranks, rank 0 writes it while the others wait (a rank that left
 * early would end the job under it). */
static void stop_with_checkpoint(trainer *t, int status, const char *why)
{
    run_io *io = t->hook_ctx;
    if (comm_rank(t->comm) == 0) {
        if (io->log)
            out_close(io->log, io->log_path);
        write_checkpoint(t);
        bar_clear(io);
        warnx("%s; the state after step %ld is in %s (continue with --resume %s)", why,
              t->pos.step, io->checkpoint_dir, io->checkpoint_dir);
    }
    comm_close(t->comm);
    exit(status);
}

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

static void check_eval_options(const train_options *o)
{
    if ((o->eval_every || o->keep_best) && !o->eval_sts)
        die_usage("--eval-every and --keep-best need --eval-sts");
}

/* The model to start from (a checkpoint's, with its options merged into o;
 * random weights; a model directory), checked against the options. */
static void check_loss_options(const train_options *o, unsigned given, const char *labels)
{
    if (o->loss == LOSS_SOFTMAX) {
        if (o->symmetric || (given & GIVEN_SCALE))
            die_usage("--symmetric and --scale are MNR's, not the softmax loss's");
        if (!labels)
            die_usage("--loss softmax needs --labels FILE");
    } else {
        if (labels)
            die_usage("--labels is for --loss softmax");
        if (o->softmax_multiply)
            die_usage("--softmax-multiply is for --loss softmax");
    }
}

static void load_model(bert_model *model, checkpoint_state *saved, train_options *o,
                       unsigned given, const char *resume_dir, const char *init_config,
                       const char *model_dir, const char *labels_path, int ranks)
{
    if (resume_dir) {
        checkpoint_read_state(resume_dir, saved);
        checkpoint_merge_options(o, &saved->opt, given);
        check_eval_options(o); /* now with the checkpoint's options */
        check_loss_options(o, given & ~GIVEN_SCALE, labels_path);
        if (o->max_steps > 0 && o->max_steps < saved->pos.step)
            die_usage("--max-steps %ld: the checkpoint is at step %ld already", o->max_steps,
                      saved->pos.step);
    }
    if (o->batch_size % ranks)
        die_usage("--batch-size %ld is not a multiple of the %d ranks (each takes an equal share "
                  "of a batch)", o->batch_size, ranks);
    if (resume_dir) {
        model_load(model, resume_dir);
    } else if (init_config) {
        model_init_random(model, init_config, (uint64_t)o->seed);
    } else {
        model_load(model, model_dir);
    }
    if (o->max_length > bert_max_tokens(&model->cfg))
        die_usage("--max-length %ld is more than the model's %d positions", o->max_length,
                  bert_max_tokens(&model->cfg));
    if (!model_has_vocab(model))
        die("%s: no vocab.txt or tokenizer.json, which the output directory needs", model->dir);
}

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
"      --mini-batch=N          cached loss (GradCache): embed the batch in passes of\n"
"                              N sequences, the memory of N instead of the batch's\n"
"                              (default 0: one pass)\n"
"      --epochs=N              passes over the data (default 1)\n"
"      --max-steps=N           stop after N optimizer steps\n"
"      --no-shuffle            batches in input order (default: shuffled by --seed)\n"
"      --sampler=KIND          no-duplicates (no text twice in a batch; MNR's default)\n"
"                              or plain (consecutive rows; softmax's default)\n"
"      --drop-last             skip a last batch that is not full\n"
"      --max-length=N          truncate longer sequences (first N-1 ids, then the last)\n"
"      --seed=N                seed of everything random (default 42)\n"
"Loss and optimizer:\n"
"      --loss=mnr|softmax      MultipleNegativesRankingLoss (default), or SBERT's\n"
"                              SoftmaxLoss over NLI labels (needs --labels)\n"
"      --labels=FILE           a class a line (0 entailment, 1 neutral, 2\n"
"                              contradiction), one per input row\n"
"      --softmax-multiply      the softmax classifier also sees u * v\n"
"      --scale=X               similarity scale of MNR (default 20)\n"
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
"      --threads=N             CPU threads (default: all cores; under mpirun, the\n"
"                              cores shared among the ranks on each machine)\n"
"  -h, --help                  show this help and exit\n"
"  -V, --version               show the version and exit\n"
"\n"
"Under mpirun -np N, the N ranks train one model: each computes its share of\n"
"every batch (--batch-size is the whole batch; N must divide it), rank 0\n"
"reads the input and alone writes the log, checkpoints and the model.\n"
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
    OPT_RESUME, OPT_INIT, OPT_EVAL_STS, OPT_EVAL_EVERY, OPT_KEEP_BEST, OPT_MINI_BATCH,
    OPT_LOSS = 512, OPT_LABELS, OPT_SAMPLER, OPT_SOFTMAX_MULTIPLY,
};

/* A digest of the weights and AdamW moments, which every rank must hold
 * alike. */
static uint64_t weights_digest(encoder *enc)
{
    size_t n = encoder_nparams(enc);
    float *buf = xmallocarray(n, sizeof *buf);
    uint64_t h = 0xcbf29ce484222325ull;
    for (encoder_buffer b = BUF_PARAMS; b <= BUF_MOMENT2; b++) {
        if (b == BUF_GRADS)
            continue;
        encoder_get(enc, b, buf);
        for (size_t i = 0; i < n; i++) {
            uint32_t w;
            memcpy(&w, buf + i, sizeof w);
            h = (h ^ w) * 0x100000001b3ull;
        }
    }
    free(buf);
    return h;
}

/* The loss's options together (also once a checkpoint's are merged). */
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
    comm *cm = comm_open(&argc, &argv);
    int rank = comm_rank(cm), ranks = comm_size(cm);
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"mini-batch", required_argument, NULL, OPT_MINI_BATCH},
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
        {"loss", required_argument, NULL, OPT_LOSS},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"softmax-multiply", no_argument, NULL, OPT_SOFTMAX_MULTIPLY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    train_options opt = train_options_default(), *o = &opt;
    const char *model_dir = NULL, *init_config = NULL, *out_dir = NULL, *resume_dir = NULL;
    const char *labels_path = NULL;
    encoder_settings es = {.device = DEVICE_AUTO, .precision = PRECISION_BF16,
                           .doing = "training", .training = 1, .batch_size = EVAL_BATCH};
    run_io io = {0};
    long threads = 0;
    unsigned given = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:o:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'o': out_dir = optarg; break;
        case OPT_BATCH: o->batch_size = long_arg("--batch-size", 1, 1 << 20); given |= GIVEN_BATCH; break;
        case OPT_MINI_BATCH: o->mini_batch = long_arg("--mini-batch", 0, 1 << 20); given |= GIVEN_MINI_BATCH; break;
        case OPT_EPOCHS: o->epochs = long_arg("--epochs", 1, 1 << 20); given |= GIVEN_EPOCHS; break;
        case OPT_MAX_STEPS: o->max_steps = long_arg("--max-steps", 1, INT32_MAX); given |= GIVEN_MAX_STEPS; break;
        case OPT_SCHEDULE: o->schedule_steps = long_arg("--schedule-steps", 1, INT32_MAX); given |= GIVEN_SCHEDULE; break;
        case OPT_MAX_LENGTH: o->max_length = long_arg("--max-length", 2, INT32_MAX); given |= GIVEN_MAX_LENGTH; break;
        case OPT_EVAL_EVERY: o->eval_every = long_arg("--eval-every", 1, LONG_MAX); given |= GIVEN_EVAL_EVERY; break;
        case OPT_SEED: o->seed = long_arg("--seed", 0, LONG_MAX); given |= GIVEN_SEED; break;
        case OPT_CKPT: o->checkpoint_every = long_arg("--checkpoint-every", 1, LONG_MAX); given |= GIVEN_CHECKPOINT_EVERY; break;
        case OPT_THREADS: threads = long_arg("--threads", 1, 4096); break;
        case OPT_LR: o->lr = real_arg("--lr", 0, 0); given |= GIVEN_LR; break;
        case OPT_SCALE: o->scale = real_arg("--scale", 0, 1); given |= GIVEN_SCALE; break;
        case OPT_WD: o->weight_decay = real_arg("--weight-decay", 0, 0); given |= GIVEN_WD; break;
        case OPT_EPS: o->adam_eps = real_arg("--adam-eps", 0, 0); given |= GIVEN_EPS; break;
        case OPT_CLIP: o->max_grad_norm = real_arg("--max-grad-norm", 0, 0); given |= GIVEN_CLIP; break;
        case OPT_WARMUP:
            if (warmup_parse(optarg, &o->warm) != 0)
                die_usage("--warmup: '%s' is neither a number of steps nor a share from 0.0 to 1.0",
                          optarg);
            o->warmup = optarg;
            given |= GIVEN_WARMUP;
            break;
        case OPT_OPTIMIZER:
            if (optimizer_parse(optarg, &o->optimizer) != 0)
                die_usage("--optimizer: '%s' is not adamw or adam", optarg);
            given |= GIVEN_OPTIM;
            break;
        case OPT_SYMMETRIC: o->symmetric = 1; given |= GIVEN_SYMMETRIC; break;
        case OPT_NO_SHUFFLE: o->shuffle = 0; given |= GIVEN_SHUFFLE; break;
        case OPT_DROP_LAST: o->drop_last = 1; given |= GIVEN_DROP_LAST; break;
        case OPT_KEEP_BEST: o->keep_best = 1; given |= GIVEN_KEEP_BEST; break;
        case OPT_EVAL_STS: o->eval_sts = optarg; given |= GIVEN_EVAL_STS; break;
        case OPT_DEVICE:
            if (device_parse(optarg, &es.device) != 0)
                die_usage("--device: '%s' is not auto, cpu or cuda", optarg);
            break;
        case OPT_PRECISION:
            if (precision_parse(optarg, &es.precision) != 0)
                die_usage("--precision: '%s' is not fp32 or bf16", optarg);
            es.precision_given = 1;
            break;
        case OPT_LOSS:
            if (loss_kind_parse(optarg, &o->loss) != 0)
                die_usage("--loss: '%s' is not mnr or softmax", optarg);
            given |= GIVEN_LOSS;
            break;
        case OPT_SAMPLER:
            if (sampler_parse(optarg, &o->sampler) != 0)
                die_usage("--sampler: '%s' is not no-duplicates or plain", optarg);
            given |= GIVEN_SAMPLER;
            break;
        case OPT_SOFTMAX_MULTIPLY: o->softmax_multiply = 1; given |= GIVEN_SOFTMAX_MULTIPLY; break;
        case OPT_LABELS: labels_path = optarg; break;
        case OPT_LOG: io.log_path = optarg; break;
        case OPT_RESUME: resume_dir = optarg; break;
        case OPT_INIT: init_config = optarg; break;
        case 'h': if (rank == 0) usage(); comm_close(cm); return 0;
        case 'V': if (rank == 0) print_version(); comm_close(cm); return 0;
        default: die_bad_option(c, argv);
        }
    }
    if (!out_dir)
        die_usage("no output directory (-o OUT_DIR)");
    if (!resume_dir && !model_dir && !init_config)
        die_usage("no model: give -m MODEL_DIR, --init-from-config CONFIG.json or --resume DIR");
    if (!resume_dir && model_dir && init_config)
        die_usage("-m and --init-from-config exclude each other (the vocabulary comes from the "
                  "config's directory)");
    /* sentence-transformers' default sampler for each loss */
    if (!(given & GIVEN_SAMPLER))
        o->sampler = o->loss == LOSS_SOFTMAX ? SAMPLER_PLAIN : SAMPLER_NO_DUPLICATES;
    if (!resume_dir) {
        check_eval_options(o);
        check_loss_options(o, given, labels_path);
    }
    threads_share(comm_local_size(cm));
    threads_set((int)threads);

    /* Rank 0 reads the model and the input first and shares the rows; the
     * other ranks load the model once it has (an error is then rank 0's
     * alone, one line). */
    bert_model model;
    checkpoint_state saved;
    train_data data;
    char *checkpoint_dir = NULL;
    if (rank == 0) {
        load_model(&model, &saved, o, given, resume_dir, init_config, model_dir, labels_path,
                   ranks);
        check_output_dir(out_dir);
        char *base = strip_slashes(out_dir);
        checkpoint_dir = xmalloc(strlen(base) + sizeof ".checkpoint");
        strcat(strcpy(checkpoint_dir, base), ".checkpoint");
        model_check_replaceable(base, 0);
        model_check_replaceable(checkpoint_dir, 1);
        atomic_remove_stale(base);
        atomic_remove_stale(checkpoint_dir);
        free(base);
        int limit = o->max_length > 0 ? (int)o->max_length : bert_max_tokens(&model.cfg);
        train_data_read(&data, argc - optind, argv + optind, 2, o->max_length, limit,
                        model.cfg.vocab_size);
        if (o->loss == LOSS_SOFTMAX && data.columns != 2)
            die("%s: %d columns: the softmax loss takes pairs (premise, hypothesis)",
                optind < argc ? argv[optind] : "stdin", data.columns);
        if (labels_path)
            train_data_read_labels(&data, labels_path, SOFTMAX_LABELS);
        if (resume_dir)
            checkpoint_check_input(resume_dir, &saved, &data);
        if (o->eval_sts)
            sts_read(&io.sts, &model, o->eval_sts);
    }
    comm_share_train_data(cm, &data);
    if (rank != 0)
        load_model(&model, &saved, o, given, resume_dir, init_config, model_dir, labels_path,
                   ranks);
    loss l = o->loss == LOSS_SOFTMAX
                 ? loss_softmax(model.cfg.hidden, o->softmax_multiply, model.normalize)
                 : loss_mnr(o->scale, o->symmetric);

    /* A rank's passes cover its share of a batch; with several ranks, the
     * batch-wide pooled block has scratch rows after the batch's (trainer.h). */
    train_options share = *o;
    share.batch_size = o->batch_size / ranks;
    es.max_sequences = trainer_pass_sequences(&share, data.columns);
    es.max_pooled = (ranks > 1 ? 2 : 1) * (int)o->batch_size * data.columns;
    es.max_len = data.max_len;
    es.extra = l.head_size;
    es.extra_ranges = l.head_ranges;
    es.n_extra_ranges = l.n_head_ranges;
    /* Several ranks on GPUs: one GPU per local rank, NCCL between them. */
    if (comm_is_mpi(cm) && es.device != DEVICE_CPU && gpu_available(NULL, 0))
        comm_use_gpu(cm);
    encoder *enc = encoder_open(&model, &es);
    if (l.head_size && !resume_dir) {
        /* the head's initial values; a resumed run takes the checkpoint's */
        float *p = xmallocarray(encoder_nparams(enc), sizeof *p);
        encoder_get(enc, BUF_PARAMS, p);
        l.init_head(&l, p + model.nparams, (uint64_t)o->seed);
        encoder_set(enc, BUF_PARAMS, p);
        free(p);
    }
    /* The encoder holds the weights from here on (model_save and the
     * checkpoints take them from it): no second copy. */
    model_free_params(&model);
    trainer t;
    train_position start = resume_dir ? saved.pos : (train_position){0};
    long schedule = o->schedule_steps;
    if (resume_dir && !(given & GIVEN_SCHEDULE))
        schedule = saved.schedule_steps;
    trainer_init(&t, o, &model, enc, &l, &data, start, schedule);
    t.comm = cm;
    if (resume_dir)
        checkpoint_load(resume_dir, &saved, &t);
    if (ranks > 1 && !comm_same(cm, weights_digest(enc)))
        die("the ranks start from different weights or moments (is the model or checkpoint "
            "directory the same on every machine?)");

    io.checkpoint_dir = checkpoint_dir;
    io.tty = isatty(STDERR_FILENO);
    io.every = (t.total_steps + 9) / 10;
    io.every = io.every < 1 ? 1 : io.every > 100 ? 100 : io.every;
    io.start_step = t.pos.step;
    t.hook_ctx = &io;
    /* Rank 0 speaks and writes for the job; a signal to any rank stops
     * every rank at the same step (trainer_run). */
    t.hooks = (trainer_hooks){.should_stop = should_stop};
    if (rank == 0) {
        t.hooks.step_done = log_step;
        t.hooks.checkpoint = write_checkpoint;
        if (o->eval_sts) {
            t.hooks.evaluate = evaluate;
            t.hooks.evaluated = log_eval;
        }
        if (io.log_path)
            io.log = train_log_open(io.log_path, resume_dir ? t.pos.step : -1);
    }
    char ranks_note[64] = "";
    if (comm_is_mpi(cm))
        snprintf(ranks_note, sizeof ranks_note, "; %d rank%s", ranks, ranks == 1 ? "" : "s");
    if (t.pos.step < t.total_steps)
        warnx("%lld rows of %d columns; steps %ld to %ld of a %ld-step schedule (warmup %ld)%s",
              (long long)data.rows, data.columns, t.pos.step + 1, t.total_steps, t.schedule_steps,
              t.warmup, ranks_note);
    else /* resumed at its last step: the model is written (and evaluated) only */
        warnx("%lld rows of %d columns; no steps left: the checkpoint is at step %ld of %ld%s",
              (long long)data.rows, data.columns, t.pos.step, t.total_steps, ranks_note);

    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    io.t0 = now_seconds();

    train_result result = trainer_run(&t);
    if (result == TRAIN_FAILED)
        stop_with_checkpoint(&t, EXIT_BAD_INPUT, t.failure);
    if (result == TRAIN_DONE && o->eval_sts && !(o->eval_every > 0 && t.pos.step % o->eval_every == 0))
        trainer_evaluate(&t);
    /* (the ranks agree: one may have had a signal while rank 0 evaluated) */
    long sig = comm_max(cm, stop_signal);
    if (sig)
        stop_with_checkpoint(&t, 128 + (int)sig, sig == SIGINT ? "interrupted" : "terminated");
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (ranks > 1 && !comm_same(cm, weights_digest(enc)))
        die("the ranks' weights differ after training: a collective gave the ranks different "
            "sums");
    if (comm_is_mpi(cm)) {
        comm_stats cs = comm_get_stats(cm);
        long steps = t.pos.step - io.start_step;
        warnx("%d rank%s: %.0f bytes sent into collectives per step, %.3f s in them, %.3f s "
              "of it waiting for other ranks (rank 0)", ranks, ranks == 1 ? "" : "s",
              steps > 0 ? cs.bytes / steps : 0, cs.seconds, cs.waiting);
    }

    if (rank == 0) {
        float *final = xmallocarray(encoder_nparams(enc), sizeof *final);
        encoder_get(enc, BUF_PARAMS, final);
        if (o->keep_best && t.best_step > 0) {
            memcpy(final, t.best_params, encoder_nparams(enc) * sizeof *final);
            warnx("keeping the weights of step %ld (STS Spearman %.6f)", t.best_step,
                  t.best_score);
        }
        if (io.log)
            out_close(io.log, io.log_path);
        model_save(&model, out_dir, final);
        warnx("wrote %s", out_dir);
        free(final);
    }
    trainer_free(&t);
    encoder_close(enc);
    comm_close(cm);
    return 0;
}
