/* The CUDA backend's plan-cache key (lib/cuda/matmul_plan.h), host code that
 * runs anywhere: the buckets of the token dimension, that the products of
 * batches with different token counts share a key while the alignments
 * cuBLASLt chooses kernels by stay exact, and the bias alignment rule. */
#include "../tap.h"
#include "cuda/matmul_plan.h"

#include <stdint.h>

/* The products of one linear layer of width in -> out over n tokens, as
 * lib/cuda/gpu.cu asks for them (forward with bias, input gradient, weight
 * gradient), bf16 operands at the addresses given. */
static matmul_shape forward(int n, int in, int out, uintptr_t x, uintptr_t w, uintptr_t y,
                            uintptr_t bias)
{
    matmul_shape s = {.M = n, .N = out, .K = in, .transB = 1, .batch = 1, .tab = 1, .tc = 1,
                      .ab_bytes = 2, .c_bytes = 2, .a = (void *)x, .b = (void *)w,
                      .c = (void *)y, .bias = (void *)bias};
    return s;
}

static matmul_shape weight_grad(int n, int in, int out)
{
    matmul_shape s = {.M = out, .N = in, .K = n, .transA = 1, .batch = 1, .tab = 1, .tc = 0,
                      .ab_bytes = 2, .c_bytes = 4, .a = (void *)0x10000,
                      .b = (void *)0x20000, .c = (void *)0x30000};
    return s;
}

/* The attention scores of B sequences padded to T tokens, heads heads of
 * dimension d: batch B * heads of [T, d] x [d, T]. */
static matmul_shape scores(int B, int heads, int T, int d)
{
    matmul_shape s = {.M = T, .N = T, .K = d, .transB = 1, .batch = B * heads,
                      .stride_a = (long long)T * d, .stride_b = (long long)T * d,
                      .stride_c = (long long)T * T, .tab = 1, .tc = 0, .ab_bytes = 2,
                      .c_bytes = 4, .a = (void *)0x100000, .b = (void *)0x200000,
                      .c = (void *)0x300000};
    return s;
}

static int same(matmul_shape a, matmul_shape b, int exact)
{
    matmul_plan_key x = matmul_plan_key_make(&a, exact), y = matmul_plan_key_make(&b, exact);
    return matmul_plan_key_equal(&x, &y);
}

int main(void)
{
    /* plan_bucket: never below d, at most 12.5% above, idempotent, monotone. */
    int bad = 0;
    long long prev = 0;
    for (long long d = 1; d <= 100000; d++) {
        long long b = plan_bucket(d);
        if (b < d || 8 * b > 9 * d + 8 || plan_bucket(b) != b || b < prev)
            bad++;
        prev = b;
    }
    ok(!bad, "plan_bucket(d) >= d, <= 1.125 d, its own bucket, monotone, for d up to 100000");
    ok(plan_bucket(15) == 15 && plan_bucket(17) == 18 && plan_bucket(33) == 36 &&
           plan_bucket(700) == 704 && plan_bucket(1025) == 1152 && plan_bucket(2049) == 2304,
       "plan_bucket: 15 17 33 700 1025 2049 -> %lld %lld %lld %lld %lld %lld", plan_bucket(15),
       plan_bucket(17), plan_bucket(33), plan_bucket(700), plan_bucket(1025), plan_bucket(2049));
    static const int bert_dims[] = {32, 64, 128, 256, 384, 512, 768, 1024, 1152, 1536, 2304,
                                    3072, 4096};
    int moved = 0;
    for (size_t i = 0; i < sizeof bert_dims / sizeof *bert_dims; i++)
        moved += plan_bucket(bert_dims[i]) != bert_dims[i];
    ok(!moved, "BERT's hidden, head, intermediate and QKV widths are their own buckets");

    /* The token counts of a training run (batch 32 of 10 to 40 tokens: 320
     * to 1280) fall in few buckets: 8 per octave, 17 here, against 961
     * exact shapes. */
    int buckets = 0;
    for (int n = 320; n <= 1280; n++)
        buckets += n == 320 || plan_bucket(n) != plan_bucket(n - 1);
    ok(buckets == 17, "token counts 320..1280: %d buckets", buckets);

    /* One key for the batches of one bucket, for each product of a layer. */
    ok(same(forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000),
            forward(1020, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000), 0),
       "forward with bias: 993 and 1020 tokens share a plan");
    ok(!same(forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000),
             forward(1020, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000), 1),
       "... but not an exact key");
    ok(!same(forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000),
             forward(1030, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000), 0),
       "forward: 1030 tokens is the next bucket");
    ok(same(weight_grad(993, 768, 3072), weight_grad(1020, 768, 3072), 0),
       "weight gradient (tokens in K): 993 and 1020 tokens share a plan");
    matmul_shape s = forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000);
    matmul_plan_key k = matmul_plan_key_make(&s, 0);
    ok(k.M == 1024 && k.N == 3072 && k.K == 768 && k.batch == 1 && k.bias && !k.exact,
       "forward key: M %d N %d K %d batch %d", k.M, k.N, k.K, k.batch);

    /* Attention: the padded length T (a multiple of 8) changes all three
     * dimensions, the leading dimensions and the strides: T = 136 and 144
     * share bucket 144, and their alignments (strides 256-byte aligned,
     * leading dimensions of 16 bytes or more). */
    ok(same(scores(32, 12, 136, 64), scores(32, 12, 144, 64), 0),
       "attention scores: padded lengths 136 and 144 share a plan");
    matmul_shape t136 = scores(32, 12, 136, 64);
    matmul_plan_key kt = matmul_plan_key_make(&t136, 0);
    ok(kt.M == 144 && kt.N == 144 && kt.K == 64 && kt.batch == 384 && kt.align_a == 256 &&
           kt.align_c == 256,
       "attention key: M %d N %d K %d batch %d, alignments %u %u", kt.M, kt.N, kt.K, kt.batch,
       kt.align_a, kt.align_c);
    /* An unpadded odd length: a 37-float row (148 bytes) aligns to 4 bytes,
     * which the key keeps; 40 (160 bytes) to 16 or more, which it does not. */
    matmul_shape odd = scores(1, 1, 37, 64), even = scores(1, 1, 40, 64);
    matmul_plan_key ko = matmul_plan_key_make(&odd, 0), ke = matmul_plan_key_make(&even, 0);
    ok(ko.M == 40 && ke.M == 40 && ko.align_c == 4 && ke.align_c == 256 && !same(odd, even, 0),
       "scores of 37 tokens (alignment %u) not keyed with 40 (%u)", ko.align_c, ke.align_c);
    ok(matmul_plan_key_make(&(matmul_shape){.batch = 383}, 0).batch == 384,
       "the batch count is bucketed too (383 -> 384)");

    /* Alignments of the addresses. */
    ok(!same(forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4000),
             forward(993, 768, 3072, 0x1002, 0x2000, 0x3000, 0x4000), 0),
       "an operand 2-byte aligned is not keyed with one 256-byte aligned");
    s = forward(993, 768, 3072, 0x1000, 0x2000, 0x3000, 0x4010);
    ok(matmul_plan_key_make(&s, 0).align_c == 16, "the bias's alignment counts as the result's");
    ok(plan_align(0) == 256 && plan_align(0x1234500) == 256 && plan_align(6) == 2 &&
           plan_align(0x30) == 16,
       "plan_align: 0, 0x1234500, 6, 0x30 -> 256 256 2 16");
    ok(plan_bias_aligned((void *)0x4010) && !plan_bias_aligned((void *)0x4008) &&
           !plan_bias_aligned((void *)0x4002),
       "a bias is taken by the epilogue at 16-byte alignment only");
    return done_testing();
}
