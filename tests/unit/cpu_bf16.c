/* cpu_bf16 - training in bf16 on the CPU (gemm.h's bf16 products): the 100
 * steps of head64 on synthetic pairs that the GPU checks run
 * (tests/gpu/train100.h), each loss within 2% + 0.01 of the CPU's fp32 one,
 * and not all equal to them (bf16 ran).  Skips, saying why, where the CPU
 * has no AVX512_BF16 (or BERTPIPE_CPU_BF16=0 forces the fallback). */
#include "../gpu/gpu_check.h"
#include "../gpu/train100.h"
#include "gemm.h"

/* The CPU's bf16 has less rounding than the GPU's (attention and the
 * elementwise work stay fp32), so the fp32 allowance of the GPU checks. */
static const double ALLOW_REL = 0.02, ALLOW_ABS = 0.01;

int main(void)
{
    util_init("cpu_bf16");
    const char *why;
    if (!gemm_bf16_available(&why)) {
        char line[128];
        snprintf(line, sizeof line, "bf16 products unavailable (%s)", why);
        skip_all(line);
        return 0;
    }
    char *dir = fixture_path("head64", "model");
    bert_model m;
    model_load(&m, dir);
    double want[STEPS], got[STEPS];
    double t0 = now_seconds();
    train(&m, DEVICE_CPU, PRECISION_FP32, want);
    double t1 = now_seconds();
    train(&m, DEVICE_CPU, PRECISION_BF16, got);
    diag("%d steps: fp32 %.2f s, bf16 %.2f s", STEPS, t1 - t0, now_seconds() - t1);
    compare_losses(got, want, ALLOW_REL, ALLOW_ABS, "CPU", "bf16");
    int differ = 0;
    for (int s = 0; s < STEPS; s++)
        differ += got[s] != want[s];
    ok(differ > 0, "bf16 ran: %d of %d losses differ from fp32", differ, STEPS);
    model_free(&m);
    free(dir);
    done_testing();
    return tap_failed ? 1 : 0;
}
