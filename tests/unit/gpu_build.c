/* The GPU API where there may be no GPU: the device probe answers cleanly
 * (no crash, a reason), --device and --precision parsing, and every entry
 * point that needs a device dying with one line and exit 1.  Where a usable
 * GPU is present, a small random model's fp32 embeddings are checked
 * against the CPU encoder instead (the full checks are tests/gpu/check.sh). */
#include "../tap.h"
#include "bert.h"
#include "gpu.h"
#include "rng.h"
#include "util.h"

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child with stderr captured into msg; returns its exit status
 * (-1 when it did not exit normally). */
static int run_child(void (*fn)(void), char *msg, size_t n)
{
    int fd[2];
    fflush(stdout);
    if (pipe(fd))
        die("pipe failed");
    pid_t pid = fork();
    if (pid < 0)
        die("fork failed");
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < n && (r = read(fd[0], msg + len, n - 1 - len)) > 0)
        len += r;
    msg[len] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int one_line(const char *msg, const char *prefix)
{
    size_t n = strlen(msg);
    return n > 0 && msg[n - 1] == '\n' && !memchr(msg, '\n', n - 1) &&
           !strncmp(msg, prefix, strlen(prefix));
}

static const bert_config small = {.vocab_size = 100, .hidden = 32, .layers = 2, .heads = 4,
                                  .intermediate = 64, .max_positions = 16, .type_vocab = 2,
                                  .ln_eps = 1e-12, .initializer_range = 0.02f};

static void select_cuda(void)
{
    gpu_select("cuda", "testing", GPU_FP32, 0);
}

static void create_model(void)
{
    size_t off[P_COUNT + 1];
    float *params = xcalloc(bert_param_offsets(&small, off), sizeof *params);
    gpu_model_create(&small, params, GPU_FP32, 0);
}

static void check_no_device(const char *why)
{
#ifdef BP_HAVE_CUDA
    ok(!strncmp(why, "no CUDA device", 14) || strstr(why, "compute capability"),
       "built with CUDA, no usable device: '%s'", why);
#else
    ok(!strcmp(why, "built without CUDA"), "built without CUDA: '%s'", why);
#endif
    char msg[1024];
    int status = run_child(select_cuda, msg, sizeof msg);
    ok(status == 1 && one_line(msg, "test-gpu-build: --device cuda: "),
       "--device cuda without a GPU: exit %d, '%.*s'", status, (int)strcspn(msg, "\n"), msg);
    status = run_child(create_model, msg, sizeof msg);
    ok(status == 1 && one_line(msg, "test-gpu-build: "),
       "gpu_model_create without a GPU: exit %d, '%.*s'", status, (int)strcspn(msg, "\n"), msg);
}

/* fp32 embeddings of a random model against bert_forward + bert_pool. */
static void check_small_model(void)
{
    size_t off[P_COUNT + 1];
    size_t n = bert_param_offsets(&small, off);
    float *params = xmallocarray(n, sizeof *params);
    rng_t r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++)
        params[i] = (float)(0.1 * rng_normal(&r));
    for (int l = 0; l < small.layers; l++)
        for (int j = 0; j < small.hidden; j++) {
            params[off[P_ATTN_LN_W] + l * small.hidden + j] += 1;
            params[off[P_FFN_LN_W] + l * small.hidden + j] += 1;
        }
    enum { B = 5, T = 16 };
    int32_t ids[B * T], lens[B] = {1, 16, 7, 3, 12};
    for (int i = 0; i < B * T; i++)
        ids[i] = i % T < lens[i / T] ? (int32_t)rng_below(&r, small.vocab_size) : -1;
    float cpu[B * 32], gpu[B * 32];
    bert_acts *a = bert_acts_new(&small, B, T, 0);
    gpu_model *g = gpu_model_create(&small, params, GPU_FP32, 0);
    for (int mode = POOL_MEAN; mode <= POOL_MAX; mode++) {
        bert_forward(&small, params, ids, lens, B, T, a, NULL);
        bert_pool(a, mode, cpu);
        gpu_embed(g, ids, lens, B, T, mode, 0, gpu);
        double e = 0;
        for (int i = 0; i < B * small.hidden; i++)
            e = fmax(e, fabs(cpu[i] - gpu[i]));
        ok(e <= 1e-5, "fp32 %s pooling of a random model: max difference %.3g from the CPU",
           mode == POOL_MEAN ? "mean" : mode == POOL_CLS ? "cls" : "max", e);
    }
    gpu_model_free(g);
    bert_acts_free(a);
    free(params);
}

int main(void)
{
    util_init("test-gpu-build");
    char why[256] = "";
    int have = gpu_available(why, sizeof why);
    ok(why[0] != 0, "gpu_available says why: %d, '%s'", have, why);
    char again[256] = "";
    ok(gpu_available(again, sizeof again) == have && !strcmp(why, again),
       "a second probe gives the same answer");
    ok(gpu_available(NULL, 0) == have, "the probe takes no buffer");
    char tiny[8];
    gpu_available(tiny, sizeof tiny);
    ok(strlen(tiny) == 7, "a short buffer is truncated and terminated");

    ok(gpu_select("cpu", "testing", GPU_FP32, 0) == 0, "--device cpu: the CPU");
    ok(gpu_select("gpu", "testing", GPU_FP32, 0) == -1 && gpu_select("", "testing", GPU_FP32, 0) == -1, "--device gpu and '': unknown");
    ok(gpu_select("auto", "testing", GPU_FP32, 0) == have, "--device auto follows the probe");

    gpu_precision p = GPU_BF16;
    ok(gpu_precision_parse("fp32", &p) == 0 && p == GPU_FP32, "--precision fp32");
    ok(gpu_precision_parse("bf16", &p) == 0 && p == GPU_BF16, "--precision bf16");
    ok(gpu_precision_parse("fp16", &p) == -1 && gpu_precision_parse("BF16", &p) == -1,
       "--precision fp16 and BF16 rejected");
    ok(!strcmp(gpu_precision_name(GPU_FP32), "fp32") && !strcmp(gpu_precision_name(GPU_BF16), "bf16"),
       "precision names");

    if (have)
        check_small_model();
    else
        check_no_device(why);
    return done_testing();
}
