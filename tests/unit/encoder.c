/* The encoder interface (encoder.h): option parsing and the device probe
 * where there may be no GPU (a reason, never a crash; --device cuda without
 * one dies with one line), and the CPU implementation against direct calls
 * of the reference it wraps (bert.c, optim.c): embeddings, a training
 * forward and backward that adds into the gradients, the optimizer over the
 * model's and a loss head's ranges, embeddings of the weights it made, and
 * the buffer copies.  Where a usable GPU is present, its fp32 embeddings
 * and gradients are checked against the CPU's (the full GPU checks are
 * tests/gpu/check.sh). */
#include "bert_fixture.h"
#include "child.h"
#include "encoder.h"
#include "rng.h"
#include "util.h"

#include <math.h>
#include <string.h>

static bert_model small_model(void)
{
    bert_model m;
    memset(&m, 0, sizeof m);
    m.cfg = (bert_config){.vocab_size = 100, .hidden = 32, .layers = 2, .heads = 4,
                          .intermediate = 64, .max_positions = 16, .type_vocab = 2,
                          .ln_eps = 1e-12, .hidden_dropout = 0.1f, .attn_dropout = 0.1f,
                          .initializer_range = 0.02f};
    size_t off[P_COUNT + 1];
    m.nparams = bert_param_offsets(&m.cfg, off);
    m.params = xmallocarray(m.nparams, sizeof *m.params);
    rng_t r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < m.nparams; i++)
        m.params[i] = (float)(0.1 * rng_normal(&r));
    for (int l = 0; l < m.cfg.layers; l++)
        for (int j = 0; j < m.cfg.hidden; j++) {
            m.params[off[P_ATTN_LN_W] + l * m.cfg.hidden + j] += 1;
            m.params[off[P_FFN_LN_W] + l * m.cfg.hidden + j] += 1;
        }
    m.pooling = POOL_MEAN;
    return m;
}

enum { B = 5, T = 16, H = 32, EXTRA = 6 };
static int32_t ids[B * T], lens[B] = {1, 16, 7, 3, 12}, rows[B] = {0, 1, 2, 3, 4},
                               cols[B] = {0, 0, 1, 1, 2};

static void open_cuda(const void *arg)
{
    encoder_settings s = {.device = DEVICE_CUDA, .doing = "testing"};
    encoder_open(arg, &s);
}

static void check_options(void)
{
    char why[256] = "";
    int have = gpu_available(why, sizeof why);
    ok(why[0] != 0, "gpu_available says why: %d, '%s'", have, why);
    char again[256] = "";
    ok(gpu_available(again, sizeof again) == have && !strcmp(why, again),
       "the probe gives the same answer twice");
    ok(gpu_available(NULL, 0) == have, "the probe takes no buffer");
    char tiny[8];
    gpu_available(tiny, sizeof tiny);
    ok(strlen(tiny) == 7, "a short buffer is truncated and terminated");
#ifndef BP_HAVE_CUDA
    ok(!strcmp(why, "built without CUDA"), "built without CUDA: '%s'", why);
#endif
    device_kind d = DEVICE_CPU;
    ok(device_parse("auto", &d) == 0 && d == DEVICE_AUTO && device_parse("cuda", &d) == 0 &&
           d == DEVICE_CUDA && device_parse("cpu", &d) == 0 && d == DEVICE_CPU,
       "--device auto, cuda, cpu");
    ok(device_parse("gpu", &d) == -1 && device_parse("", &d) == -1, "--device gpu and '': unknown");
    precision p = PRECISION_BF16;
    ok(precision_parse("fp32", &p) == 0 && p == PRECISION_FP32, "--precision fp32");
    ok(precision_parse("bf16", &p) == 0 && p == PRECISION_BF16, "--precision bf16");
    ok(precision_parse("fp16", &p) == -1 && precision_parse("BF16", &p) == -1,
       "--precision fp16 and BF16: unknown");
    ok(!strcmp(precision_name(PRECISION_FP32), "fp32") &&
           !strcmp(precision_name(PRECISION_BF16), "bf16"), "precision names");
    if (!have) {
        bert_model m = small_model();
        char err[512];
        int status = run_in_child(open_cuda, &m, err, sizeof err);
        ok(status == 1 && !strncmp(err, "test-encoder: --device cuda: ", 29) &&
               strchr(err, '\n') == err + strlen(err) - 1,
           "--device cuda without a GPU: exit %d, '%.*s'", status, (int)strcspn(err, "\n"), err);
        model_free(&m);
    }
}

/* The encoder on device against bert.c and optim.c called directly. */
static void check_against_reference(device_kind device, double tol)
{
    const char *name = device == DEVICE_CPU ? "cpu" : "cuda";
    bert_model m = small_model();
    const bert_config *c = &m.cfg;
    optim_range head_ranges[2] = {{.offset = 0, .numel = 4, .decay = 1},
                                  {.offset = 4, .numel = 2, .decay = 0}};
    encoder_settings s = {.device = device, .precision = PRECISION_FP32, .doing = "testing",
                          .training = 1, .batch_size = 2, .max_sequences = B, .max_len = T,
                          .extra = EXTRA, .extra_ranges = head_ranges, .n_extra_ranges = 2};
    encoder *e = encoder_open(&m, &s);
    size_t n = encoder_nparams(e);
    ok(n == m.nparams + EXTRA && encoder_on_gpu(e) == (device == DEVICE_CUDA),
       "%s: %zu parameters, the model's and the head's", name, n);

    /* Inference. */
    float ref[B * H], got[B * H];
    bert_acts *a = bert_acts_new(c, B, T, 1);
    bert_forward(c, m.params, ids, lens, B, T, a, NULL);
    bert_pool(a, POOL_MEAN, ref);
    encoder_embed(e, ids, lens, B, T, 0, got);
    /* Other batch sizes: other rounding in the matrix products. */
    ok(max_abs_diff(ref, got, B * H) <= tol + 1e-6, "%s: embeddings in batches of 2 = bert_forward's, %.3g",
       name, max_abs_diff(ref, got, B * H));

    /* A training step's gradients, added into what is there. */
    dropout_keys keys = {.seed = 9, .step = 4, .row = rows, .column = cols};
    bert_forward(c, m.params, ids, lens, B, T, a, &keys);
    bert_pool(a, POOL_MEAN, ref);
    float *dpooled = xmallocarray(B * H, sizeof *dpooled);
    for (int i = 0; i < B * H; i++)
        dpooled[i] = (float)sin(i);
    float *grads = xcalloc(n, sizeof *grads);
    bert_pool_backward(a, POOL_MEAN, dpooled);
    bert_backward(c, m.params, grads, a);

    encoder_zero_grads(e);
    for (int k = 0; k < 2; k++) {
        encoder_forward(e, ids, lens, B, T, &keys, 0);
        encoder_read_pooled(e, got);
        encoder_write_pooled_grad(e, dpooled);
        encoder_backward(e);
    }
    ok(max_abs_diff(ref, got, B * H) <= tol, "%s: pooled embeddings with dropout = bert_forward's, "
       "%.3g", name, max_abs_diff(ref, got, B * H));
    float *egrads = xmallocarray(n, sizeof *egrads);
    encoder_get(e, BUF_GRADS, egrads);
    double worst = 0, largest = 0;
    for (size_t i = 0; i < m.nparams; i++) {
        worst = fmax(worst, fabs(egrads[i] - 2 * grads[i]));
        largest = fmax(largest, fabs(grads[i]));
    }
    ok(worst <= 1e-5 * largest + tol, "%s: two backward passes add up: max error %.3g (largest "
       "%.3g)", name, worst, largest);

    /* The optimizer over the model's ranges and the head's, as adam_step. */
    float *head_grads = egrads + m.nparams;
    for (int i = 0; i < EXTRA; i++)
        head_grads[i] = 0.5f * (i + 1);
    encoder_set(e, BUF_GRADS, egrads);
    float *params = xmallocarray(n, sizeof *params);
    encoder_get(e, BUF_PARAMS, params);
    ok(!memcmp(params, m.params, m.nparams * sizeof *params) && max_abs_diff(params + m.nparams,
       (const float[EXTRA]){0}, EXTRA) == 0, "%s: the weights start as the model's, the head at 0",
       name);
    for (int i = 0; i < EXTRA; i++)
        params[m.nparams + i] = 0.25f;
    encoder_set(e, BUF_PARAMS, params);
    /* Sequences enough to embed that the CPU keeps the weights in the
     * products' layout (gemm_packs; encoder_cpu.c's PACK_MIN_TOKENS). */
    enum { TILES = 1024 };
    int32_t *many_ids = xmallocarray((size_t)TILES * B * T, sizeof *many_ids),
            *many_lens = xmallocarray((size_t)TILES * B, sizeof *many_lens);
    for (int k = 0; k < TILES; k++) {
        memcpy(many_ids + (size_t)k * B * T, ids, sizeof ids);
        memcpy(many_lens + (size_t)k * B, lens, sizeof lens);
    }
    float *many = xmallocarray((size_t)TILES * B * H, sizeof *many);
    encoder_embed(e, many_ids, many_lens, (int64_t)TILES * B, T, 0, many);
    adam_config adam = adam_defaults();
    double norm = encoder_optimizer_step(e, &adam, 1e-3, 1.0, 1);

    int nb = optim_bert_ranges(c, NULL);
    optim_range *r = xmallocarray(nb + 2, sizeof *r);
    optim_bert_ranges(c, r);
    for (int i = 0; i < 2; i++) {
        r[nb + i] = head_ranges[i];
        r[nb + i].offset += m.nparams;
    }
    float *m1 = xcalloc(n, sizeof *m1), *m2 = xcalloc(n, sizeof *m2);
    double want = grad_norm(egrads, r, nb + 2);
    adam_step(&adam, r, nb + 2, params, egrads, m1, m2, 1, 1e-3, grad_clip(want, 1.0));
    float *after = xmallocarray(n, sizeof *after);
    encoder_get(e, BUF_PARAMS, after);
    ok(fabs(norm - want) <= 1e-6 * want && max_abs_diff(after, params, n) <= tol,
       "%s: clipping and AdamW over the model's and the head's ranges: norm %.9g (%.9g), weights "
       "%.3g", name, norm, want, max_abs_diff(after, params, n));
    ok(after[m.nparams] != 0.25f && after[m.nparams + 5] != 0.25f, "%s: the head is trained", name);
    /* Embedding after the step: the new weights' (what embedding kept of
     * the old ones, gemm_packs on the CPU, made again). */
    bert_forward(c, params, ids, lens, B, T, a, NULL);
    bert_pool(a, POOL_MEAN, ref);
    encoder_embed(e, many_ids, many_lens, (int64_t)TILES * B, T, 0, many);
    ok(max_abs_diff(ref, many, B * H) <= tol + 1e-6, "%s: embeddings after a step = "
       "bert_forward's with the new weights, %.3g", name, max_abs_diff(ref, many, B * H));
    free(many_ids);
    free(many_lens);
    free(many);
    encoder_get(e, BUF_MOMENT1, after);
    ok(max_abs_diff(after, m1, n) <= tol, "%s: first moments", name);
    encoder_set(e, BUF_MOMENT2, m1);
    encoder_get(e, BUF_MOMENT2, after);
    ok(!memcmp(after, m1, n * sizeof *after), "%s: moments set and read back", name);
    encoder_zero_grads(e);
    encoder_get(e, BUF_GRADS, after);
    ok(max_abs_diff(after, (float[1]){0}, 1) == 0 && max_abs_diff(after + n - 1, (float[1]){0}, 1) == 0,
       "%s: gradients zeroed", name);

    free(after);
    free(m1);
    free(m2);
    free(r);
    free(params);
    free(egrads);
    free(grads);
    free(dpooled);
    bert_acts_free(a);
    encoder_close(e);
    model_free(&m);
}

int main(void)
{
    util_init("test-encoder");
    rng_t r;
    rng_seed(&r, 5);
    for (int i = 0; i < B * T; i++)
        ids[i] = i % T < lens[i / T] ? (int32_t)rng_below(&r, 100) : -1;
    check_options();
    check_against_reference(DEVICE_CPU, 0);
    if (gpu_available(NULL, 0))
        check_against_reference(DEVICE_CUDA, 1e-5);
    else
        ok(1, "# SKIP no usable GPU here: the CUDA encoder is checked by tests/gpu/check.sh");
    return done_testing();
}
