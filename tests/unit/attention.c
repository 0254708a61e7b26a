/* attention - bf16 inference's attention (bert_attention with ctx16)
 * against the fp32 attention, at heads of 16 to 128 dimensions and 1 to
 * 512 tokens, with and without MPNet's bias by relative position: where
 * bert_attention_on_amx says the AMX tiles take a sequence, each head's
 * context row within 6e-3 (relative L2) of fp32's, else fp32's rounded to
 * bf16, bit for bit. */
#include "../tap.h"
#include "bert.h"
#include "gemm.h"
#include "rng.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sequence lengths: below, at and past the tiles' blocks of 16 and 32
 * keys, on both sides of the shortest the tiles take (64), and long. */
static const int LENS[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 100, 300, 512};
enum { B = sizeof LENS / sizeof *LENS, HEADS = 2, REL_LEN = 512 };

/* The AMX tiles' error: the output's rounding to bf16 (up to 2^-8 =
 * 3.9e-3 an element; 2.8e-3 at worst for a row of these heads) and the
 * probabilities', rounded to bf16 once (the scores are nearly fp32):
 * 4.2e-3 at worst measured, 1.2e-2 with a row in 16 off by 1%. */
static const double AMX_ROW_REL = 6e-3;

static int cpu_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int found = 0;
    size_t len = strlen(flag);
    while (f && !found && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5))
            for (char *p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
                found = (p[-1] == ' ' || p[-1] == '\t') && (p[len] == ' ' || p[len] == '\n');
    if (f)
        fclose(f);
    return found;
}

/* Whether Linux lets this process use the AMX tiles' state (asking, as
 * bert.c does; a kernel before 5.16, or a hypervisor, may refuse). */
static int linux_grants_tiles(void)
{
#if defined(__x86_64__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

/* One head size, with relvec or without (NULL). */
static void check(int d, const float *relvec, rng_t *r)
{
    int H = HEADS * d, start[B + 1] = {0};
    for (int b = 0; b < B; b++)
        start[b + 1] = start[b] + LENS[b];
    int N = start[B];
    float *qkv = xmallocarray((size_t)N * 3 * H, sizeof *qkv),
          *want = xmallocarray((size_t)N * H, sizeof *want),
          *scratch = xmallocarray((size_t)N * H, sizeof *scratch);
    uint16_t *got = xmallocarray((size_t)N * H, sizeof *got);
    /* Scores of a few units, as trained models have: the softmax peaked. */
    for (size_t i = 0; i < (size_t)N * 3 * H; i++)
        qkv[i] = (float)(rng_normal(r) * (i % (3 * H) < 2 * (size_t)H ? 1.5 : 1.0));
    bert_attention(want, NULL, qkv, relvec, REL_LEN, start, B, H, HEADS);
    bert_attention(scratch, got, qkv, relvec, REL_LEN, start, B, H, HEADS);

    double worst = 0;
    long inexact = 0, rounded_inexact = 0, on_amx = 0;
    for (int b = 0; b < B; b++)
        on_amx += bert_attention_on_amx(d, LENS[b]) ? LENS[b] : 0;
    for (int b = 0; b < B; b++) {
        int amx = bert_attention_on_amx(d, LENS[b]);
        for (int t = start[b]; t < start[b + 1]; t++)
            for (int h = 0; h < HEADS; h++) {
                const float *w = want + (size_t)t * H + h * d;
                const uint16_t *g = got + (size_t)t * H + h * d;
                double diff = 0, norm = 0;
                long differ = 0;
                for (int e = 0; e < d; e++) {
                    double x = (double)bf16_to_float(g[e]) - w[e];
                    diff += x * x;
                    norm += (double)w[e] * w[e];
                    differ += g[e] != bf16_round(w[e]);
                }
                double rel = sqrt(diff / norm);
                worst = amx && rel > worst ? rel : worst;
                *(amx ? &inexact : &rounded_inexact) += differ;
            }
    }
    const char *what = relvec ? "with relative position bias" : "BERT";
    ok(rounded_inexact == 0, "heads of %d dimensions, %s, the %d of %d tokens not on AMX tiles: "
       "fp32's context rounded to bf16 (%ld elements differ)",
       d, what, N - (int)on_amx, N, rounded_inexact);
    if (on_amx)
        ok(worst <= AMX_ROW_REL && inexact > 0,
           "heads of %d dimensions, %s, the %ld tokens on AMX tiles: every context row within %g "
           "of fp32 (worst %.3g), %ld of %ld elements not fp32's rounded",
           d, what, on_amx, AMX_ROW_REL, worst, inexact, on_amx * H);
    free(qkv);
    free(want);
    free(scratch);
    free(got);
}

int main(void)
{
    util_init("test-attention");
    const char *env = getenv("BERTPIPE_CPU_AMX");
    int flags = cpu_has("amx_bf16") && cpu_has("amx_tile") && cpu_has("avx512_bf16"),
        expect_amx = flags && !(env && !strcmp(env, "0")) && linux_grants_tiles();
    ok(bert_attention_on_amx(32, 512) == expect_amx,
       "attention on AMX tiles: %s (the CPU's flags say %s, Linux %s the tiles, "
       "BERTPIPE_CPU_AMX=%s)",
       bert_attention_on_amx(32, 512) ? "yes" : "no", flags ? "AMX" : "no AMX",
       linux_grants_tiles() ? "grants" : "refuses", env ? env : "");
    ok(!bert_attention_on_amx(128, 512) && !bert_attention_on_amx(40, 512) &&
           !bert_attention_on_amx(32, 16),
       "heads of 128 or 40 dimensions, sequences of 16 tokens: never on the tiles");
    rng_t r;
    rng_seed(&r, 11);
    float *relvec = xmallocarray((size_t)HEADS * (2 * REL_LEN - 1), sizeof *relvec);
    for (size_t i = 0; i < (size_t)HEADS * (2 * REL_LEN - 1); i++)
        relvec[i] = (float)rng_normal(&r);
    int dims[] = {16, 32, 48, 64, 128};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        check(dims[i], NULL, &r);
        check(dims[i], relvec, &r);
    }
    free(relvec);
    return done_testing();
}
