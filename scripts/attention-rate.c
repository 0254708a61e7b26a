/* attention-rate - attention's forward pass alone (bert.h's bert_attention)
 * in fp32 and as bf16 inference computes it (on AMX tiles where
 * bert_attention_on_amx says so), at each sequence length, on random
 * queries, keys and values: the time of each, the best of REPEAT calls, in
 * one process, so that both sides see the same machine.
 *
 *   attention-rate HEADS HEAD_DIM LENGTH...
 *
 * Each length gets as many sequences as make about 8192 tokens; threads
 * as OMP_NUM_THREADS (or the cores).  Prints a line per length: fp32 and
 * bf16 microseconds per token, their ratio, and whether the tiles ran. */
#include "bert.h"
#include "rng.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

enum { TOKENS = 8192, REPEAT = 5 };

/* The best of REPEAT calls, in seconds. */
static double best_time(float *ctx, uint16_t *ctx16, const float *qkv, const int *start, int B,
                        int H, int heads)
{
    double best = 1e30;
    for (int r = 0; r < REPEAT; r++) {
        double t0 = now_seconds();
        bert_attention(ctx, ctx16, qkv, NULL, 0, start, B, H, heads);
        double t = now_seconds() - t0;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    util_init("attention-rate");
    if (argc < 4)
        die("usage: attention-rate HEADS HEAD_DIM LENGTH...");
    int heads = atoi(argv[1]), d = atoi(argv[2]), H = heads * d;
    if (heads < 1 || d < 1)
        die("HEADS and HEAD_DIM must be positive");
    printf("tokens  sequences  fp32 us/token  bf16 us/token  bf16/fp32  AMX tiles\n");
    for (int a = 3; a < argc; a++) {
        int n = atoi(argv[a]);
        if (n < 1)
            die("%s: not a length", argv[a]);
        int B = TOKENS / n > 0 ? TOKENS / n : 1, N = B * n;
        int *start = xmallocarray((size_t)B + 1, sizeof *start);
        for (int b = 0; b <= B; b++)
            start[b] = b * n;
        float *qkv = xmallocarray((size_t)N * 3 * H, sizeof *qkv),
              *ctx = xmallocarray((size_t)N * H, sizeof *ctx);
        uint16_t *ctx16 = xmallocarray((size_t)N * H, sizeof *ctx16);
        rng_t r;
        rng_seed(&r, (uint64_t)n);
        for (size_t i = 0; i < (size_t)N * 3 * H; i++)
            qkv[i] = (float)rng_normal(&r);
        double fp32 = best_time(ctx, NULL, qkv, start, B, H, heads),
               bf16 = best_time(ctx, ctx16, qkv, start, B, H, heads);
        printf("%-7d %9d %14.3f %14.3f %10.3f  %s\n", n, B, fp32 / N * 1e6, bf16 / N * 1e6,
               bf16 / fp32, bert_attention_on_amx(d, n) ? "yes" : "no");
        fflush(stdout);
        free(start);
        free(qkv);
        free(ctx);
        free(ctx16);
    }
    return 0;
}
