/* matmul_plan.h - the key under which matmul.cu caches cuBLASLt's choice of
 * algorithm for a matrix product.  Plain C with no CUDA, so that
 * tests/unit/matmul_plan.c checks it on any machine.
 *
 * The number of tokens in a batch changes from batch to batch, and with it
 * one dimension of most products (M of the linear layers' forward and input
 * gradient, K of their weight gradient, all three and the strides of the
 * attention products).  Keyed by the exact shape, nearly every training
 * step missed the cache (a heuristic query per product) and the algorithm,
 * so the rounding, changed from batch to batch.  The key therefore holds the
 * dimensions rounded up to a bucket (plan_bucket: 8 steps per octave), and
 * matmul.cu asks the heuristic for the bucket's shape, so that the choice
 * depends on the bucket alone, not on which batch came first (a resumed run
 * chooses as the uninterrupted one did).  Each product checks the cached
 * algorithm against its actual shape (cublasLtMatmulAlgoCheck) and falls
 * back to a plan for the exact shape (exact = 1) where it does not fit.
 *
 * The alignments are those of the actual operands (address and batch
 * stride in bytes, and a leading dimension below 16 bytes of alignment),
 * since cuBLASLt chooses kernels by them: they stay exact in the key.  The
 * attention products' padded length Tp is a multiple of 8 (gpu.cu), so
 * their strides keep their alignment within a bucket. */
#ifndef BP_CUDA_MATMUL_PLAN_H
#define BP_CUDA_MATMUL_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* d rounded up to the next of 8 steps per octave: exact below 16, then to a
 * multiple of 2^(floor(log2 d) - 3) (16..31 even, 32..63 a multiple of 4,
 * ..., 1024..2047 of 128), at most 12.5% above d.  The dimensions of BERT
 * models (64, 384, 768, 1152, 1536, 2304, 3072, ...) are their own buckets. */
static inline long long plan_bucket(long long d)
{
    if (d < 16)
        return d;
    int lg = 0;
    for (long long x = d; x > 1; x >>= 1)
        lg++;
    long long step = 1LL << (lg - 3);
    return (d + step - 1) / step * step;
}

/* The largest power of two, at most 256, dividing x (256 for 0). */
static inline unsigned plan_align(unsigned long long x)
{
    x |= 256;
    return (unsigned)(x & (~x + 1));
}

/* A product as matmul.cu sees it (row-major C[M, N] = op(A)[M, K] op(B)[K, N],
 * see matmul_args in backend.cuh), with the element sizes in bytes. */
typedef struct {
    int M, N, K, transA, transB, batch;
    long long stride_a, stride_b, stride_c;
    int tab, tc;             /* element types (elem_type) */
    size_t ab_bytes, c_bytes; /* their sizes */
    const void *a, *b, *c, *bias;
} matmul_shape;

typedef struct {
    int M, N, K, batch;                /* bucketed; exact when exact */
    int transA, transB, tab, tc, bias, exact;
    long long stride_a, stride_b, stride_c; /* exact keys only, else 0 */
    unsigned align_a, align_b, align_c; /* of the operands as matmul_shape names them */
} matmul_plan_key;

/* Alignment of a matrix of the product: that of its address and, when
 * batch > 1, of its batch stride in bytes (the addresses of the later
 * matrices), lowered to that of its leading dimension in bytes when that is
 * below 16 (the most a kernel asks of a leading dimension; above it the
 * leading dimension changes nothing, so that the attention products of
 * padded lengths 136 and 144, say, share their bucket's plan). */
static inline unsigned plan_operand_align(const void *p, long long ld, long long stride,
                                          size_t esize, int batch)
{
    unsigned long long x = (uintptr_t)p;
    if (batch > 1)
        x |= (unsigned long long)(stride * (long long)esize);
    unsigned a = plan_align(x), l = plan_align((unsigned long long)(ld * (long long)esize));
    return l < 16 && l < a ? l : a;
}

/* The key of shape s: its dimensions bucketed (exact = 0) or as they are
 * (exact = 1), with its types, operations, epilogue and alignments.  The
 * bias's alignment counts as the result's. */
static inline matmul_plan_key matmul_plan_key_make(const matmul_shape *s, int exact)
{
    matmul_plan_key k;
    memset(&k, 0, sizeof k);
    int batch = s->batch > 1 ? s->batch : 1;
    k.M = exact ? s->M : (int)plan_bucket(s->M);
    k.N = exact ? s->N : (int)plan_bucket(s->N);
    k.K = exact ? s->K : (int)plan_bucket(s->K);
    k.batch = exact ? batch : (int)plan_bucket(batch);
    k.transA = s->transA;
    k.transB = s->transB;
    k.tab = s->tab;
    k.tc = s->tc;
    k.bias = s->bias != NULL;
    k.exact = exact;
    if (exact && batch > 1) {
        k.stride_a = s->stride_a;
        k.stride_b = s->stride_b;
        k.stride_c = s->stride_c;
    }
    /* Leading dimensions of the row-major matrices: A is [M, K] ([K, M] when
     * transA), B [K, N] ([N, K] when transB), C [M, N]. */
    k.align_a = plan_operand_align(s->a, s->transA ? s->M : s->K, s->stride_a, s->ab_bytes, batch);
    k.align_b = plan_operand_align(s->b, s->transB ? s->K : s->N, s->stride_b, s->ab_bytes, batch);
    k.align_c = plan_operand_align(s->c, s->N, s->stride_c, s->c_bytes, batch);
    if (s->bias) {
        unsigned ab = plan_align((uintptr_t)s->bias);
        k.align_c = k.align_c < ab ? k.align_c : ab;
    }
    return k;
}

/* Field by field: a struct copied by value need not keep its padding. */
static inline int matmul_plan_key_equal(const matmul_plan_key *x, const matmul_plan_key *y)
{
    return x->M == y->M && x->N == y->N && x->K == y->K && x->batch == y->batch &&
           x->transA == y->transA && x->transB == y->transB && x->tab == y->tab &&
           x->tc == y->tc && x->bias == y->bias && x->exact == y->exact &&
           x->stride_a == y->stride_a && x->stride_b == y->stride_b &&
           x->stride_c == y->stride_c && x->align_a == y->align_a && x->align_b == y->align_b &&
           x->align_c == y->align_c;
}

/* cuBLASLt's bias epilogue needs a 16-byte aligned bias vector: matmul.cu
 * copies one that is not into an aligned buffer first. */
enum { PLAN_BIAS_ALIGN = 16 };

static inline int plan_bias_aligned(const void *bias)
{
    return (uintptr_t)bias % PLAN_BIAS_ALIGN == 0;
}

#endif
