/* bert.c - the BERT encoder on the CPU: forward and backward passes over flat
 * parameter and activation buffers, one forward/backward function pair per
 * layer as in llm.c.  This is the reference the CUDA backend mirrors.
 *
 * Activations are packed (no padding rows, see bert.h).  Dense layers are
 * gemm.h's matrix products (OpenBLAS in fp32, oneDNN in bf16, the precision
 * being the activations' setting), called outside any parallel region; everything
 * else is plain loops parallelised with OpenMP.  Sums over rows (LayerNorm
 * statistics, bias and LayerNorm gradients, pooling) accumulate in double
 * and are split among threads by column, not by row, so these loops give
 * the same results at any thread count. */
#include "bert.h"
#include "gemm.h"
#include "util.h"
#include "vmath.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* What one encoder layer keeps for its backward pass; rows are tokens. */
typedef struct {
    float *qkv;                 /* [N, 3H] query | key | value */
    float *att;                 /* softmax probabilities, per sequence [heads, len, len] */
    uint8_t *att_keep;          /* dropout mask of att (training with attention dropout) */
    float *ctx;                 /* [N, H] attention output, heads side by side */
    uint8_t *attn_keep;         /* [N, H] dropout mask after the attention-output dense */
    float *ln1_in;              /* [N, H] residual sum entering the attention LayerNorm */
    float *ln1_mean, *ln1_rstd; /* [N] */
    float *ln1_out;             /* [N, H] */
    float *ffn_pre;             /* [N, I] intermediate dense output, before GELU */
    uint8_t *ffn_keep;          /* [N, H] dropout mask after the FFN-output dense */
    float *ln2_in;              /* [N, H] residual sum entering the output LayerNorm */
    float *ln2_mean, *ln2_rstd; /* [N]; the LayerNorm output is hidden[l + 1] */
} layer_acts;

struct bert_acts {
    bert_config c;
    int max_sequences, max_len, training;
    int B, N;            /* the last forward's batch; N = 0 before any */
    int *start;          /* [B + 1] first row of each sequence */
    size_t *att_start;   /* [B + 1] first float of each sequence's probabilities */
    int *group_start;    /* [B + 1] start of a group of sequences, from its first row */
    size_t *group_att_start; /* [B + 1] att_start of a group, from its first float */
    float p_hidden, p_attn; /* dropout the last forward applied (0 = none) */

    /* Buffers proportional to the token count, cap_tokens rows. */
    int cap_tokens;
    char *token_mem;
    int32_t *ids, *pos;        /* [N] packed token ids and their positions */
    float *emb;                /* [N, H] embedding sum entering the LayerNorm */
    float *emb_mean, *emb_rstd;
    uint8_t *emb_keep;         /* [N, H] dropout mask after the embedding LayerNorm */
    float **hidden;            /* L + 1 pointers to [N, H]; without training two
                                * buffers serve alternate layers */
    layer_acts *layer;         /* L; without training all alias one set */
    float *gelu;               /* [N, I] GELU output (recomputed for the backward pass,
                                * with its derivative: cheaper than keeping L copies) */
    bf16 *operand16;           /* [N, H] without training: the next product's operand in
                                * bf16 (bf16 products), written by what makes it: a
                                * LayerNorm's output, the attention's context */
    float *dhidden, *g1, *g2, *xhat; /* [N, H] backward scratch (training) */
    float *dqkv;               /* [N, 3H] */
    float *dffn;               /* [N, I] */
    float *gelu_grad;          /* [N, I] GELU'(x) of the layer being differentiated */

    /* Attention probabilities and masks, cap_att floats per layer. */
    size_t cap_att;
    char *att_mem;

    /* MPNet's relative position bias (NULL for BERT): relvec [heads,
     * 2 max_len - 1] the bias table by relative position, drel [max_sequences,
     * heads, 2 max_len - 1] its gradient per sequence and head (training). */
    float *relvec;
    double *drel;

    /* The dense layers' precision, and the parameters already in bf16 (laid
     * out as the fp32 ones; NULL: converted in each product). */
    gemm_precision prec;
    const bf16 *params16;
    gemm_packs *packs; /* the weights in the products' layout (NULL: none) */
};

/* ---- layer kernels ------------------------------------------------------ */

/* Whether a loop over this many elements is worth a team of threads: small
 * ones (the test models') cost more to hand out than to run. */
static int worth_threads(size_t elements)
{
    return elements >= 1 << 17;
}

/* The elementwise and attention kernels below are MULTIVERSIONED
 * (vmath.h); OpenMP splits work outside them. */

/* Loops over contiguous elements hand threads chunks of this many. */
enum { ELEMENT_CHUNK = 8192 };

static inline void axpy(float *y, float alpha, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

enum { COLUMN_BLOCK = 64 };

/* column_sums over columns [j0, j0 + w), w <= COLUMN_BLOCK. */
MULTIVERSIONED static void column_block_sums(float *dst, const float *a, const float *b, int n,
                                             int d, int j0, int w)
{
    double acc[COLUMN_BLOCK] = {0};
    for (int i = 0; i < n; i++) {
        const float *ar = a + (size_t)i * d + j0;
        if (b) {
            const float *br = b + (size_t)i * d + j0;
#pragma omp simd
            for (int j = 0; j < w; j++)
                acc[j] += (double)ar[j] * br[j];
        } else {
#pragma omp simd
            for (int j = 0; j < w; j++)
                acc[j] += ar[j];
        }
    }
    for (int j = 0; j < w; j++)
        dst[j0 + j] += (float)acc[j];
}

/* dst[j] += sum over rows i of a[i, j] (times b[i, j] when b is given), in
 * double.  Columns are split among threads, so the sum order is fixed. */
static void column_sums(float *dst, const float *a, const float *b, int n, int d)
{
    int nblocks = (d + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for schedule(static) if (worth_threads((size_t)n * d))
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * COLUMN_BLOCK;
        column_block_sums(dst, a, b, n, d, j0, d - j0 < COLUMN_BLOCK ? d - j0 : COLUMN_BLOCK);
    }
}

/* out[r] = word[ids[r]] + type[0] + position[pos[r]] (Hugging Face's order);
 * type NULL (MPNet): word + position. */
static void embedding_forward(float *out, const int32_t *ids, const int32_t *pos, int n,
                              const float *word, const float *position, const float *type, int H)
{
#pragma omp parallel for schedule(static) if (worth_threads((size_t)n * H))
    for (int r = 0; r < n; r++) {
        const float *w = word + (size_t)ids[r] * H, *p = position + (size_t)pos[r] * H;
        float *o = out + (size_t)r * H;
        if (type)
            for (int j = 0; j < H; j++)
                o[j] = (w[j] + type[j]) + p[j];
        else
            for (int j = 0; j < H; j++)
                o[j] = w[j] + p[j];
    }
}

/* Scatter dout into the rows of the three tables it came from (dtype NULL:
 * no token types); columns are split among threads, so rows sharing a token
 * id never race.  Row pad (>= 0) of the word and position tables gets no
 * gradient, as nn.Embedding(padding_idx=pad) gives none (MPNet). */
static void embedding_backward(float *dword, float *dposition, float *dtype, const float *dout,
                               const int32_t *ids, const int32_t *pos, int n, int H, int pad)
{
    enum { BLOCK = 64 };
    int nblocks = (H + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (worth_threads((size_t)n * H))
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * BLOCK, w = H - j0 < BLOCK ? H - j0 : BLOCK;
        double type_acc[BLOCK] = {0};
        for (int r = 0; r < n; r++) {
            const float *d = dout + (size_t)r * H + j0;
            float *dw = dword + (size_t)ids[r] * H + j0, *dp = dposition + (size_t)pos[r] * H + j0;
            if (pad >= 0) {
                if (ids[r] != pad)
                    for (int j = 0; j < w; j++)
                        dw[j] += d[j];
                if (pos[r] != pad)
                    for (int j = 0; j < w; j++)
                        dp[j] += d[j];
                continue;
            }
            for (int j = 0; j < w; j++) {
                dw[j] += d[j];
                dp[j] += d[j];
                type_acc[j] += d[j];
            }
        }
        if (dtype)
            for (int j = 0; j < w; j++)
                dtype[j0 + j] += (float)type_acc[j];
    }
}

/* One row: x += res (NULL: none), then out = (x - mean) / sqrt(var + eps)
 * * w + b, statistics in double; out16 (NULL: none) gets out in bf16. */
MULTIVERSIONED static void layernorm_row(float *out, bf16 *out16, float *mean, float *rstd,
                                         float *x, const float *res, const float *w,
                                         const float *b, int H, double eps)
{
    if (res)
        axpy(x, 1.0f, res, H);
    double m = sum_fixed(x, H) / H, v = squared_deviations_fixed(x, m, H) / H;
    double s = 1.0 / sqrt(v + eps);
#pragma omp simd
    for (int j = 0; j < H; j++)
        out[j] = (float)((x[j] - m) * s) * w[j] + b[j];
    if (out16) {
#pragma omp simd
        for (int j = 0; j < H; j++)
            out16[j] = bf16_round(out[j]);
    }
    *mean = (float)m;
    *rstd = (float)s;
}

/* out = LayerNorm(in), after in += res (the residual; NULL: none) in place:
 * each row is added while it is in the cache for its statistics, and the
 * sum stays in in, the LayerNorm's input that the backward pass needs.
 * out16 (NULL: none) gets out in bf16 too, for the next product: written
 * while each row is in the cache, not converted in a pass of its own. */
static void layernorm_forward(float *out, bf16 *out16, float *mean, float *rstd, float *in,
                              const float *res, const float *w, const float *b, int n, int H,
                              double eps)
{
#pragma omp parallel for schedule(static) if (worth_threads((size_t)n * H))
    for (int r = 0; r < n; r++)
        layernorm_row(out + (size_t)r * H, out16 ? out16 + (size_t)r * H : NULL, mean + r,
                      rstd + r, in + (size_t)r * H, res ? res + (size_t)r * H : NULL, w, b, H,
                      eps);
}

/* din = d LayerNorm / d in (overwritten); dw, db accumulate.  xhat [n, H]
 * is scratch for the normalised input. */
static void layernorm_backward(float *din, float *dw, float *db, float *xhat, const float *dout,
                               const float *in, const float *mean, const float *rstd,
                               const float *w, int n, int H)
{
#pragma omp parallel for schedule(static) if (worth_threads((size_t)n * H))
    for (int r = 0; r < n; r++) {
        const float *x = in + (size_t)r * H, *dy = dout + (size_t)r * H;
        float *xh = xhat + (size_t)r * H, *dx = din + (size_t)r * H;
        double sum_dn = 0, sum_dn_xh = 0;
        for (int j = 0; j < H; j++) {
            xh[j] = (x[j] - mean[r]) * rstd[r];
            float dn = dy[j] * w[j];
            sum_dn += dn;
            sum_dn_xh += (double)dn * xh[j];
        }
        float mean_dn = (float)(sum_dn / H), mean_dn_xh = (float)(sum_dn_xh / H);
        for (int j = 0; j < H; j++)
            dx[j] = (dy[j] * w[j] - mean_dn - xh[j] * mean_dn_xh) * rstd[r];
    }
    column_sums(dw, dout, xhat, n, H);
    column_sums(db, dout, NULL, n, H);
}

/* A weight tensor: its fp32 values and, when the activations keep the
 * parameters in bf16 too, the same offset there. */
typedef struct {
    const float *f;
    const bf16 *h;
} weight;

static weight weight_at(const bert_acts *a, const float *params, size_t offset)
{
    return (weight){params + offset, a->params16 ? a->params16 + offset : NULL};
}

/* out[n, m] = in[n, k] w[m, k]^T + bias[m]; in16 (NULL: none) is in in
 * bf16, for bf16 products. */
static void matmul_forward(const bert_acts *a, float *out, const float *in, const bf16 *in16,
                           weight w, const float *bias, int n, int k, int m)
{
    gemm_bias(a->prec, n, m, k, in, in16, k, w.f, w.h, k, bias, out, m, 1, a->packs);
}

/* din = dout w (added to din when accumulate, else overwritten);
 * dw += dout^T in; db += column sums of dout. */
static void matmul_backward(const bert_acts *a, float *din, float *dw, float *db,
                            const float *dout, const float *in, weight w, int n, int k, int m,
                            int accumulate)
{
    gemm(a->prec, 0, 0, n, k, m, dout, NULL, m, w.f, w.h, k, accumulate ? 1.0f : 0.0f, din, k);
    gemm(a->prec, 1, 0, m, k, n, dout, NULL, m, in, NULL, k, 1.0f, dw, k);
    column_sums(db, dout, NULL, n, m);
}

/* Exact GELU, x * Phi(x), as torch.nn.functional.gelu by default. */
MULTIVERSIONED static void gelu_kernel(float *out, const float *in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = 0.5f * in[i] * (1.0f + erf_approx(in[i] * (float)M_SQRT1_2));
}

/* The backward pass needs the GELU output again (for the weight gradient of
 * the next dense layer) and its derivative: one pass computes both, so erf
 * runs once per element. */
MULTIVERSIONED static void gelu_with_grad_kernel(float *out, float *grad, const float *in, size_t n)
{
    const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = in[i], cdf = 0.5f * (1.0f + erf_approx(x * (float)M_SQRT1_2));
        out[i] = x * cdf;
        grad[i] = cdf + x * inv_sqrt_2pi * exp_approx(-0.5f * x * x);
    }
}

/* out = GELU(in), and grad = GELU'(in) unless grad is NULL. */
static void gelu_forward(float *out, float *grad, const float *in, size_t n)
{
    size_t chunks = (n + ELEMENT_CHUNK - 1) / ELEMENT_CHUNK;
#pragma omp parallel for schedule(static) if (worth_threads(n))
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * ELEMENT_CHUNK, len = n - i < ELEMENT_CHUNK ? n - i : ELEMENT_CHUNK;
        if (grad)
            gelu_with_grad_kernel(out + i, grad + i, in + i, len);
        else
            gelu_kernel(out + i, in + i, len);
    }
}

/* d *= GELU'(x), given grad = GELU'(x) from gelu_forward. */
static void gelu_backward(float *d, const float *grad, size_t n)
{
#pragma omp parallel for schedule(static) if (worth_threads(n))
    for (size_t i = 0; i < n; i++)
        d[i] *= grad[i];
}

/* The feed-forward block's two products, out[n, H] = GELU(in[n, H] w_in^T
 * + b_in) w_out^T + b_out.  Inference, where the build has the fused
 * product, applies GELU as the first product writes its result (in bf16,
 * rounded to bf16, the second product's operand, in the room of the fp32
 * GELU buffer): no pass of its own over the [n, FF] values.  Otherwise the
 * values before GELU are kept in pre, as the backward pass needs them. */
static void ffn_forward(bert_acts *a, float *out, float *pre, const float *in, const bf16 *in16,
                        weight w_in, const float *b_in, weight w_out, const float *b_out, int n,
                        int H, int FF)
{
    if (!a->training && gemm_fuses_gelu()) {
        int bf16_products = a->prec == GEMM_BF16;
        gemm_bias_gelu(a->prec, n, FF, H, in, in16, H, w_in.f, w_in.h, H, b_in, a->gelu, FF, 1,
                       a->packs);
        gemm_bias(a->prec, n, H, FF, bf16_products ? NULL : a->gelu,
                  bf16_products ? (const bf16 *)a->gelu : NULL, FF, w_out.f, w_out.h, FF, b_out,
                  out, H, 1, a->packs);
        return;
    }
    matmul_forward(a, pre, in, in16, w_in, b_in, n, H, FF);
    gelu_forward(a->gelu, NULL, pre, (size_t)n * FF);
    matmul_forward(a, out, a->gelu, NULL, w_out, b_out, n, FF, H);
}

/* Inverted dropout in place on x[0..n) with its mask into keep: element i
 * is kept as dropout.h decides for index first + i of the site's key. */
MULTIVERSIONED static void dropout_span(float *restrict x, uint8_t *restrict keep, size_t n,
                                        uint64_t key, uint64_t first, uint32_t threshold,
                                        float scale)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        int k = dropout_keep(key, first + i, threshold);
        keep[i] = (uint8_t)k;
        x[i] = k ? x[i] * scale : 0.0f;
    }
}

/* Inverted dropout in place on the packed rows x[N, d] of B sequences
 * (sequence b at rows start[b]..), with its mask into keep: element j of
 * token t of sequence b is kept as dropout.h decides for index t * d + j. */
static void dropout_forward(float *x, uint8_t *keep, const int *start, int B, int d, float p,
                            const dropout_keys *dk, int layer, int site)
{
    float scale = 1.0f / (1.0f - p);
    uint32_t threshold = dropout_threshold(p);
#pragma omp parallel for schedule(static) if (worth_threads((size_t)start[B] * d))
    for (int b = 0; b < B; b++) {
        uint64_t key = dropout_key(dk->seed, dk->step, dk->row[b], dk->column[b], layer, site);
        size_t at = (size_t)start[b] * d;
        dropout_span(x + at, keep + at, (size_t)(start[b + 1] - start[b]) * d, key, 0, threshold,
                     scale);
    }
}

static void dropout_backward(float *dx, const float *dy, const uint8_t *keep, size_t n, float p)
{
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (worth_threads(n))
    for (size_t i = 0; i < n; i++)
        dx[i] = keep[i] ? dy[i] * scale : 0.0f;
}

/* Attention runs per sequence and head, each single-threaded (threads take
 * whole heads): in attention_head_blocked where it applies (below), else
 * as two products through the matrix library per block of queries, near
 * its rate at every length. */

/* Queries per block: a block's scores, [ATT_QUERIES, n], stay in the
 * cache from their product through the softmax to the context's product. */
enum { ATT_QUERIES = 64 };

/* Attention dropout of query i's probability row p [n] in head h: the
 * mask into keep [n], the kept probabilities, scaled, into w (p itself or
 * another row); the mask keyed by head, query and key, as dropout.h's. */
__attribute__((always_inline)) static inline void attention_dropout_row(float *w, uint8_t *keep,
                                                                        const float *p, int n,
                                                                        int i, int h,
                                                                        float p_attn,
                                                                        uint64_t key)
{
    float drop_scale = 1.0f / (1.0f - p_attn);
    uint64_t first = ((uint64_t)h * n + i) * n;
    uint32_t threshold = dropout_threshold(p_attn);
#pragma omp simd
    for (int j = 0; j < n; j++) {
        int k = dropout_keep(key, first + j, threshold);
        keep[j] = (uint8_t)k;
        w[j] = k ? p[j] * drop_scale : 0.0f;
    }
}

/* Scores -> probabilities in place, for the rows of queries i0 .. i0 +
 * rows - 1 (P's rows, n apart): scaled by 1/sqrt(d), rel added (see
 * attention_head_forward), softmax; with keep, the dropout mask of those
 * rows and the dropped out probabilities into w. */
MULTIVERSIONED static void softmax_rows(float *P, uint8_t *keep, float *w, const float *rel,
                                        int i0, int rows, int n, int d, float p_attn, uint64_t key,
                                        int h)
{
    float scale = 1.0f / sqrtf((float)d);
    /* Each loop over a row is an explicit simd loop: gcc 12 at -O2 leaves
     * a max reduction or a loop with a remainder scalar. */
    for (int r = 0; r < rows; r++) {
        int i = i0 + r;
        float *row = P + (size_t)r * n, mx = -INFINITY;
        const float *rel_i = rel ? rel - i : NULL; /* rel_i[j] = rel[j - i] */
        if (rel_i) {
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < n; j++) {
                row[j] = row[j] * scale + rel_i[j];
                mx = row[j] > mx ? row[j] : mx;
            }
        } else {
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < n; j++) {
                row[j] *= scale;
                mx = row[j] > mx ? row[j] : mx;
            }
        }
#pragma omp simd
        for (int j = 0; j < n; j++)
            row[j] -= mx;
    }
    /* The exponentials over the whole block at once (its rows are n apart):
     * sentences' rows of a dozen tokens are shorter than the vector width. */
    size_t block = (size_t)rows * n;
#pragma omp simd
    for (size_t k = 0; k < block; k++)
        P[k] = exp_approx(P[k]);
    for (int r = 0; r < rows; r++) {
        int i = i0 + r;
        float *row = P + (size_t)r * n;
        float inv = (float)(1.0 / sum_fixed(row, n));
#pragma omp simd
        for (int j = 0; j < n; j++)
            row[j] *= inv;
        if (keep)
            attention_dropout_row(w + (size_t)r * n, keep + (size_t)r * n, row, n, i, h, p_attn,
                                  key);
    }
}

/* Heads of a multiple of 16 dimensions up to BLOCKED_HEAD_DIM, in
 * inference and in training, go through attention_head_blocked at every
 * length: BLOCKED_QUERIES queries at a time, their scores against all keys
 * computed in registers and kept in the first-level cache (a row per
 * query) through the softmax to the context's product.  The library's two
 * products per head cost more in calls and packing than in arithmetic at a
 * dozen tokens, and at hundreds its packing copies (14 %) and the
 * softmax's passes over [64, n] blocks in the second-level cache (16 %)
 * took as long as its arithmetic (23 %) in bf16 embed (all-MiniLM-L6-v2,
 * 512 tokens; docs/cpu-bf16.md). */
enum { BLOCKED_HEAD_DIM = 128, BLOCKED_QUERIES = 8, BLOCKED_COPY_VALUES = 64 };

typedef int32_t i32x16 __attribute__((vector_size(64)));

/* The larger of a and b in each lane (vector variables, evaluated twice). */
#define MAX16(a, b) ((f32x16)((((a) > (b)) & (i32x16)(a)) | (~((a) > (b)) & (i32x16)(b))))

/* The largest of x[0 .. 16 nv), nv >= 1, by halves of a vector at the end:
 * gcc's reduction clause ends in a scalar loop over the lanes. */
__attribute__((always_inline)) static inline float max_lanes(const float *x, size_t nv)
{
    f32x16 v, u, w;
    __builtin_memcpy(&v, x, sizeof v);
    u = v;
    /* Two chains: the maximum is exact in any order. */
    size_t b = 1;
    for (; b + 2 <= nv; b += 2) {
        __builtin_memcpy(&w, x + 16 * b, sizeof w);
        v = MAX16(v, w);
        __builtin_memcpy(&w, x + 16 * (b + 1), sizeof w);
        u = MAX16(u, w);
    }
    if (b < nv) {
        __builtin_memcpy(&w, x + 16 * b, sizeof w);
        v = MAX16(v, w);
    }
    v = MAX16(v, u);
    w = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    v = MAX16(v, w);
    w = __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3);
    v = MAX16(v, w);
    w = __builtin_shufflevector(v, v, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1);
    v = MAX16(v, w);
    w = __builtin_shufflevector(v, v, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0);
    v = MAX16(v, w);
    return v[0];
}

/* A row of scaled scores -> the exponentials of the softmax in place, as
 * softmax_rows computes them; returns the factor that makes them the
 * probabilities.  npad (a multiple of 16) entries, those past the first n
 * -inf before and exactly 0 after, so that the fixed-order sum over npad
 * equals the one over n. */
__attribute__((always_inline)) static inline float exponentials_row(float *row, int n,
                                                                     size_t npad)
{
    float mx = max_lanes(row, npad / 16);
    /* The exponentials summed as they are made, in sum_fixed's order: its
     * lanes take 8 elements at a time. */
    f64x8 sum = {0};
    for (int j0 = 0; j0 < (int)npad; j0 += 16) {
        if (j0 + 16 <= n) {
#pragma omp simd
            for (int j = j0; j < j0 + 16; j++)
                row[j] = exp_nonpositive(row[j] - mx);
        } else {
#pragma omp simd
            for (int j = j0; j < j0 + 16; j++)
                row[j] = j < n ? exp_nonpositive(row[j] - mx) : 0.0f;
        }
        f64x8 lo, hi;
        LOAD_F64X8_PAIR(lo, hi, row + j0);
        sum += lo;
        sum += hi;
    }
    return (float)(1.0 / LANES_TOTAL(sum));
}

/* The scores of the BLOCKED_QUERIES queries qr against the 16 NV keys
 * (NV = 1 or 2, a constant) of kt's columns (the keys transposed, rows
 * npad apart) into the same columns of s's rows (npad apart): independent
 * chains of multiply-adds, one register each.  With pad (those columns'
 * part of it), each score is stored times scale plus pad, as the softmax
 * takes it; without, as it is. */
__attribute__((always_inline)) static inline void scores_block(float *s, const float *kt,
                                                               const float *const *qr, int d,
                                                               size_t npad, const int NV,
                                                               float scale, const float *pad)
{
    f32x16 acc[BLOCKED_QUERIES][2], kv[2];
    _Pragma("GCC unroll 8") for (int r = 0; r < BLOCKED_QUERIES; r++)
        _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
            acc[r][b] = (f32x16){0};
    for (int e = 0; e < d; e++) {
        _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
            __builtin_memcpy(&kv[b], kt + e * npad + 16 * b, sizeof kv[b]);
        _Pragma("GCC unroll 8") for (int r = 0; r < BLOCKED_QUERIES; r++)
            _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
                acc[r][b] += qr[r][e] * kv[b];
    }
    f32x16 padv[2];
    _Pragma("GCC unroll 2") for (int b = 0; b < NV && pad; b++)
        __builtin_memcpy(&padv[b], pad + 16 * b, sizeof padv[b]);
    _Pragma("GCC unroll 8") for (int r = 0; r < BLOCKED_QUERIES; r++)
        _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++) {
            f32x16 out = pad ? acc[r][b] * scale + padv[b] : acc[r][b];
            __builtin_memcpy(s + r * npad + 16 * b, &out, sizeof out);
        }
}

/* The context of the BLOCKED_QUERIES probability rows p (npad apart) over
 * n values (rows ld apart), dimensions e0 .. e0 + 16 NV - 1 (NV = 1 or 2, a
 * constant), into out[r] (fp32) or out16[r] (bf16) for the first rows rows. */
__attribute__((always_inline)) static inline void context_block(float *const *out,
                                                                bf16 *const *out16, const float *p,
                                                                const float *v, int n, size_t ld,
                                                                size_t npad, int rows, int e0,
                                                                const int NV)
{
    f32x16 ctx[BLOCKED_QUERIES][2], vj[2];
    _Pragma("GCC unroll 8") for (int r = 0; r < BLOCKED_QUERIES; r++)
        _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
            ctx[r][b] = (f32x16){0};
    for (int j = 0; j < n; j++) {
        _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
            __builtin_memcpy(&vj[b], v + (size_t)j * ld + e0 + 16 * b, sizeof vj[b]);
        _Pragma("GCC unroll 8") for (int r = 0; r < BLOCKED_QUERIES; r++)
            _Pragma("GCC unroll 2") for (int b = 0; b < NV; b++)
                ctx[r][b] += p[r * npad + j] * vj[b];
    }
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < NV; b++) {
            if (!out16) {
                __builtin_memcpy(out[r] + e0 + 16 * b, &ctx[r][b], sizeof ctx[r][b]);
                continue;
            }
            bf16 *o = out16[r] + e0 + 16 * b;
#pragma omp simd
            for (int l = 0; l < 16; l++)
                o[l] = bf16_round(ctx[r][b][l]);
        }
}

/* The rows of a 16 x 16 block (a vector each) transposed in place: four
 * stages, each swapping the off-diagonal s x s blocks of every 2s x 2s
 * block (s = 8, 4, 2, 1), two shuffles per pair of rows; 64 shuffles in
 * place of 256 loads of one element. */
#define SWAP8_LO 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define SWAP8_HI 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define SWAP4_LO 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define SWAP4_HI 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define SWAP2_LO 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define SWAP2_HI 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define SWAP1_LO 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define SWAP1_HI 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define SWAP_BLOCKS(r, s, LO, HI)                                        \
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) if (!(i & (s))) \
    {                                                                    \
        f32x16 a = r[i], b = r[i + (s)];                                 \
        r[i] = __builtin_shufflevector(a, b, LO);                        \
        r[i + (s)] = __builtin_shufflevector(a, b, HI);                  \
    }

__attribute__((always_inline)) static inline void transpose16(f32x16 r[16])
{
    SWAP_BLOCKS(r, 8, SWAP8_LO, SWAP8_HI)
    SWAP_BLOCKS(r, 4, SWAP4_LO, SWAP4_HI)
    SWAP_BLOCKS(r, 2, SWAP2_LO, SWAP2_HI)
    SWAP_BLOCKS(r, 1, SWAP1_LO, SWAP1_HI)
}

/* Whether attention_head_blocked takes heads of d dimensions. */
static int blocked_takes(int d)
{
    return d <= BLOCKED_HEAD_DIM && d % 16 == 0;
}

/* Floats of attention_head_blocked's work for sequences of up to n tokens
 * in heads of d dimensions, 64 bytes of alignment included. */
static size_t blocked_work_floats(int n, int d)
{
    size_t npad = ((size_t)n + 15) / 16 * 16;
    return (2 * (size_t)d + BLOCKED_QUERIES + 1) * npad + 16;
}

/* The head a single thread computes next: its queries' first row (its
 * keys and values follow H and 2H floats on), its context's first row (in
 * fp32 or bf16: out_size bytes an element, H elements a row) and its token
 * count. */
typedef struct {
    const float *q;
    const char *out;
    size_t out_size;
    int n;
} head_next;

/* Rows r0 .. r1 - 1 of the next head's queries, keys and values (to be
 * read) and of its context (to be written) fetched into the second-level
 * cache: those rows, 3H floats apart, missed it at their first touch.
 * Fetched, attention took 14 % less time beside the products' at 128
 * tokens (all-MiniLM-L6-v2, perf; docs/cpu-bf16.md). */
__attribute__((always_inline)) static inline void head_next_fetch(const head_next *nx, size_t ld,
                                                                  int H, int d, int r0, int r1)
{
    for (int t = r0; t < r1; t++) {
        const char *row = (const char *)(nx->q + (size_t)t * ld),
                   *out = nx->out + (size_t)t * H * nx->out_size;
        for (size_t e = 0; e < (size_t)d * sizeof(float); e += 64) {
            __builtin_prefetch(row + e, 0, 2);
            __builtin_prefetch(row + (size_t)H * sizeof(float) + e, 0, 2);
            __builtin_prefetch(row + 2 * (size_t)H * sizeof(float) + e, 0, 2);
        }
        for (size_t e = 0; e < (size_t)d * nx->out_size; e += 64)
            __builtin_prefetch(out + e, 1, 2);
    }
}

/* attention_head_forward for d a multiple of 16 up to BLOCKED_HEAD_DIM:
 * the keys transposed once per head (kt, [d, npad], npad = n rounded up to
 * 16); then, BLOCKED_QUERIES queries at a time, their scores (rows of s,
 * [BLOCKED_QUERIES, npad]), the softmax as softmax_rows computes it (keys
 * past n: a score of -inf, a probability of exactly 0, so that the
 * fixed-order sums over npad equal those over n), and the context, written
 * to c, or to c16 in bf16 when it is given.  P, when given, gets the
 * probabilities; with keep, they are dropped out (p_attn, key, head h; the
 * mask into keep [n, n]) before the context.  work:
 * blocked_work_floats(n, d) floats.  next (or NULL): the head to fetch
 * into the cache meanwhile, a share of its rows with each block of
 * queries.  NPAD: npad when it is a constant (the loops over a row of a
 * sentence of a dozen tokens are then unrolled), else 0. */
__attribute__((always_inline)) static inline void
attention_head_blocked_npad(float *c, bf16 *c16, float *P, uint8_t *keep, float *work,
                            const float *q, const float *k, const float *v, const float *rel,
                            int n, int d, size_t ld, int H, float p_attn, uint64_t key, int h,
                            const head_next *next, const size_t NPAD)
{
    size_t npad = NPAD ? NPAD : ((size_t)n + 15) / 16 * 16;
    float *kt = (float *)(((uintptr_t)work + 63) & ~(uintptr_t)63), *vc = kt + (size_t)d * npad,
          *s = vc + (size_t)d * npad, *pad = s + BLOCKED_QUERIES * npad;
    /* Added to the scaled scores: keys past n get -inf. */
    for (size_t j = 0; j < npad; j++)
        pad[j] = j < (size_t)n ? 0.0f : -INFINITY;
    float scale = 1.0f / sqrtf((float)d);
    /* The keys transposed 16 x 16 at a time; keys past n score 0 before
     * the softmax gives them -inf (their columns zero). */
    for (int j0 = 0; j0 < n; j0 += 16) {
        int keys = n - j0 < 16 ? n - j0 : 16;
        for (int e0 = 0; e0 < d; e0 += 16) {
            f32x16 r[16];
            for (int j = 0; j < 16; j++) {
                r[j] = (f32x16){0};
                if (j < keys)
                    __builtin_memcpy(&r[j], k + (size_t)(j0 + j) * ld + e0, sizeof r[j]);
            }
            transpose16(r);
            for (int e = 0; e < 16; e++)
                __builtin_memcpy(kt + (size_t)(e0 + e) * npad + j0, &r[e], sizeof r[e]);
        }
    }
    /* The values are read once per block of queries: rows 3H apart leave
     * the cache between blocks of a long sequence, so those are copied
     * together first. */
    const float *vals = v;
    size_t ldv = ld;
    if (n > BLOCKED_COPY_VALUES) {
        for (int j = 0; j < n; j++)
            memcpy(vc + (size_t)j * d, v + (size_t)j * ld, d * sizeof *vc);
        vals = vc;
        ldv = d;
    }

    int blocks = (n + BLOCKED_QUERIES - 1) / BLOCKED_QUERIES,
        fetch_rows = next ? (next->n + blocks - 1) / blocks : 0;
    for (int i0 = 0; i0 < n; i0 += BLOCKED_QUERIES) {
        int rows = n - i0 < BLOCKED_QUERIES ? n - i0 : BLOCKED_QUERIES;
        if (next) {
            int f0 = i0 / BLOCKED_QUERIES * fetch_rows;
            head_next_fetch(next, ld, H, d, f0 < next->n ? f0 : next->n,
                            f0 + fetch_rows < next->n ? f0 + fetch_rows : next->n);
        }
        /* Scores; the queries of a block past the last repeat it: their
         * rows are finite and not stored. */
        const float *qr[BLOCKED_QUERIES];
        for (int r = 0; r < BLOCKED_QUERIES; r++)
            qr[r] = q + (size_t)(r < rows ? i0 + r : n - 1) * ld;
        /* (scaled and padded as they are stored, without rel) */
        size_t j0 = 0;
        for (; j0 + 32 <= npad; j0 += 32)
            scores_block(s + j0, kt + j0, qr, d, npad, 2, scale, rel ? NULL : pad + j0);
        if (j0 < npad)
            scores_block(s + j0, kt + j0, qr, d, npad, 1, scale, rel ? NULL : pad + j0);
        /* Softmax of each query's row. */
        for (int r = 0; r < rows; r++) {
            int i = i0 + r;
            float *row = s + r * npad;
            if (rel) {
                const float *rel_i = rel - i; /* rel_i[j] = rel[j - i] */
#pragma omp simd
                for (int j = 0; j < n; j++)
                    row[j] = row[j] * scale + rel_i[j];
#pragma omp simd
                for (size_t j = npad - 16; j < npad; j++)
                    row[j] += pad[j];
            }
            float inv = exponentials_row(row, n, npad);
#pragma omp simd
            for (size_t j = 0; j < npad; j++)
                row[j] *= inv;
            if (P)
                __builtin_memcpy(P + (size_t)i * n, row, n * sizeof *row);
            /* The context of the dropped out probabilities (P keeps them
             * before dropout). */
            if (keep)
                attention_dropout_row(row, keep + (size_t)i * n, row, n, i, h, p_attn, key);
        }
        /* Context, 32 dimensions at a time where d allows. */
        float *out[BLOCKED_QUERIES];
        bf16 *out16[BLOCKED_QUERIES];
        for (int r = 0; r < rows; r++) {
            out[r] = c + (size_t)(i0 + r) * H;
            out16[r] = c16 ? c16 + (size_t)(i0 + r) * H : NULL;
        }
        int e0 = 0;
        for (; e0 + 32 <= d; e0 += 32)
            context_block(out, c16 ? out16 : NULL, s, vals, n, ldv, npad, rows, e0, 2);
        if (e0 < d)
            context_block(out, c16 ? out16 : NULL, s, vals, n, ldv, npad, rows, e0, 1);
    }
}

MULTIVERSIONED static void attention_head_blocked(float *c, bf16 *c16, float *P, uint8_t *keep,
                                                  float *work, const float *q, const float *k,
                                                  const float *v, const float *rel, int n, int d,
                                                  size_t ld, int H, float p_attn, uint64_t key,
                                                  int h, const head_next *next)
{
    if (n <= 16)
        attention_head_blocked_npad(c, c16, P, keep, work, q, k, v, rel, n, d, ld, H, p_attn,
                                    key, h, next, 16);
    else if (n <= 32)
        attention_head_blocked_npad(c, c16, P, keep, work, q, k, v, rel, n, d, ld, H, p_attn,
                                    key, h, next, 32);
    else
        attention_head_blocked_npad(c, c16, P, keep, work, q, k, v, rel, n, d, ld, H, p_attn,
                                    key, h, next, 0);
}

/* ---- attention on AMX tiles (bf16 inference) ---------------------------- */

/* In bf16 inference (the context in bf16, no probabilities kept, no
 * dropout), on CPUs with AMX, attention's two products run on its tiles,
 * whose bf16 rate is many times the FMA units' fp32 rate.  An operand in
 * two bf16 parts is x = hi + lo (hi = x rounded, lo = x - hi rounded):
 * about 16 bits of it instead of bf16's 8.  The scores are the three
 * larger terms of queries and keys in two parts, hi hi + hi lo + lo hi
 * (nearly fp32: the exponential turns a score's error into the
 * probability's relative error), and the context is the probabilities,
 * rounded once to bf16, by the values in two parts; with both products in
 * plain bf16, attention's rounding took all-MiniLM-L6-v2 past the 1e-2
 * bound (docs/cpu-bf16.md). */
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define BP_HAVE_AMX 1
#endif

/* Heads of a multiple of 16 dimensions up to AMX_HEAD_DIM: the context's
 * tiles (16 dimensions each), a probability tile and a value tile's two
 * parts fit in the 8 tiles.  Sequences of AMX_SHORTEST tokens or more:
 * below, putting the operands in the tiles' layout costs about what the
 * products save (make bench-attention, heads of 32 and 64 dimensions:
 * bf16's time over fp32's 0.72 to 1.01 at 48 tokens, 0.80 to 0.93 at 64,
 * 0.65 to 0.79 at 80 to 128; docs/cpu-bf16.md). */
enum { AMX_HEAD_DIM = 64, AMX_SHORTEST = 64 };

static int amx_usable;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

/* AMX_TILE and AMX_BF16 in CPUID leaf 7, AVX512_BF16, and Linux's
 * permission for this process to use the tiles' state (asked once; oneDNN
 * asks the same).  BERTPIPE_CPU_AMX=0 says no, so that the fallback can be
 * tested on any machine. */
static void amx_probe(void)
{
    const char *env = getenv("BERTPIPE_CPU_AMX");
    if (env && !strcmp(env, "0"))
        return;
#if BP_HAVE_AMX
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & 1u << 22) || !(d & 1u << 24))
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16"))
        return;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    amx_usable = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
}

int bert_attention_on_amx(int d, int n)
{
    pthread_once(&amx_once, amx_probe);
    return amx_usable && d % 16 == 0 && d <= AMX_HEAD_DIM && n >= AMX_SHORTEST;
}

/* Sizes of attention_head_amx's work for sequences of up to n tokens:
 * queries in blocks of 16 rows (nq), keys in blocks of 32 (nk), heads in
 * steps of 32 dimensions (t) and in tiles of 16 (e). */
typedef struct {
    size_t nq, nk, t, e;
} amx_sizes;

static amx_sizes amx_sizes_for(int n, int d)
{
    return (amx_sizes){.nq = ((size_t)n + 15) / 16 * 16, .nk = ((size_t)n + 31) / 32 * 32,
                       .t = ((size_t)d + 31) / 32, .e = (size_t)d / 16};
}

/* A tile's bf16 elements: 16 rows of 64 bytes. */
enum { TILE_BF16 = 512 };

/* Bytes of attention_head_amx's work, 64 bytes of alignment included:
 * queries (2 parts of nq x 32t), keys and values in tiles (2 parts each),
 * a block's scores [16, nk] and its probabilities in bf16. */
static size_t amx_work_bytes(int n, int d)
{
    amx_sizes z = amx_sizes_for(n, d);
    size_t q = 2 * z.nq * z.t * 32, k = 2 * (z.nk / 16) * z.t * TILE_BF16,
           v = 2 * (z.nk / 32) * z.e * TILE_BF16, p = 16 * z.nk;
    return (q + k + v + p) * sizeof(bf16) + 16 * z.nk * sizeof(float) + 64;
}

#if BP_HAVE_AMX
#define AMX_TARGET                                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16")))

/* 16 floats rounded to bf16 by AVX512_BF16's conversion (to nearest even,
 * as bf16_round; subnormals to zero). */
AMX_TARGET static inline __m256i bf16x16(__m512 x)
{
    return (__m256i)_mm512_cvtneps_pbh(x);
}

/* 16 bf16 widened back to floats. */
AMX_TARGET static inline __m512 widen_bf16x16(__m256i h)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The 32 floats x0, x1 into their two bf16 parts, in registers, each 32
 * bf16 in x0's then x1's order: hi rounded from x, lo from x - hi. */
AMX_TARGET static inline void split32(__m512i *hi, __m512i *lo, __m512 x0, __m512 x1)
{
    __m512i h = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
    *hi = h;
    *lo = (__m512i)_mm512_cvtne2ps_pbh(
        _mm512_sub_ps(x1, widen_bf16x16(_mm512_extracti64x4_epi64(h, 1))),
        _mm512_sub_ps(x0, widen_bf16x16(_mm512_castsi512_si256(h))));
}

/* The 32 floats of a row from x, columns 0 .. w - 1 (w = 16 or more), and
 * zero past w (and everywhere for a row past the sequence: x NULL), times
 * scale, in two bf16 parts (split32). */
AMX_TARGET static inline void split_row(__m512i *hi, __m512i *lo, const float *x, int w,
                                        __m512 scale)
{
    __m512 x0 = _mm512_setzero_ps(), x1 = x0;
    if (x) {
        x0 = _mm512_mul_ps(_mm512_loadu_ps(x), scale);
        if (w > 16)
            x1 = _mm512_mul_ps(_mm512_loadu_ps(x + 16), scale);
    }
    split32(hi, lo, x0, x1);
}

/* e^x for 16 x <= 0 given as t = x log2(e): 2^t = 2^floor(t) 2^f, f the
 * fraction in [0, 1) (vreduceps), 2^f by a polynomial of degree 4 fitted
 * for relative error (under 3e-6: the tiles round the result to bf16,
 * 2^-9, anyway), 2^floor(t) by scalef, which gives 0 far below and keeps
 * NaN. */
AMX_TARGET static inline __m512 exp2_for_bf16(__m512 t)
{
    __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
           p = _mm512_set1_ps(1.3534121e-2f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.2011482e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4144280e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9300383e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000026f));
    return _mm512_scalef_ps(p, t);
}

/* A row of n scores -> the softmax's exponentials e^(s - max) in bf16
 * into p, nk entries (a multiple of 16), zero past n; returns the factor
 * that makes them the probabilities, 1 / their sum (in float, of the
 * exponentials before rounding).  With rel_i (rel_i[j]: key j's relative
 * position bias), the scores are first made s scale + rel_i[j] in place,
 * as the maximum is taken; without, they are scaled already.  One pass for
 * the maximum, one that makes, sums and rounds each block of 16.  n >= 16
 * (the tiles take no shorter sequence). */
AMX_TARGET static float probabilities_bf16(bf16 *p, float *row, int n, size_t nk,
                                           const float *rel_i, float scale)
{
    int full = n / 16 * 16;
    __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    float m;
    if (rel_i) {
        __m512 sv = _mm512_set1_ps(scale);
        for (int j = 0; j < n; j += 16) {
            __mmask16 in = j < full ? 0xffff : tail;
            __m512 x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(in, row + j), sv,
                                       _mm512_maskz_loadu_ps(in, rel_i + j));
            _mm512_mask_storeu_ps(row + j, in, x);
            mx = _mm512_mask_max_ps(mx, in, mx, x);
        }
        m = _mm512_reduce_max_ps(mx);
    } else {
        float whole = max_lanes(row, full / 16),
              rest = _mm512_reduce_max_ps(_mm512_mask_loadu_ps(mx, tail, row + full));
        m = whole > rest ? whole : rest;
    }
    const float log2e = 1.44269504088896341f;
    __m512 to_base2 = _mm512_set1_ps(log2e), shift = _mm512_set1_ps(m * log2e),
           sum = _mm512_setzero_ps();
    for (int j = 0; j < full; j += 16) {
        __m512 e = exp2_for_bf16(_mm512_fmsub_ps(_mm512_loadu_ps(row + j), to_base2, shift));
        sum = _mm512_add_ps(sum, e);
        _mm256_storeu_si256((__m256i *)(p + j), bf16x16(e));
    }
    for (int j = full; j < (int)nk; j += 16) { /* the tail, and zero past it */
        __mmask16 in = j == full ? tail : 0;
        __m512 t = _mm512_fmsub_ps(_mm512_maskz_loadu_ps(in, row + j), to_base2, shift),
               e = _mm512_maskz_mov_ps(in, exp2_for_bf16(t));
        sum = _mm512_add_ps(sum, e);
        _mm256_storeu_si256((__m256i *)(p + j), bf16x16(e));
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

/* Tile configuration: palette 1, the 8 tiles of 16 rows x 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t bytes_per_row[16];
    uint8_t rows[16];
} amx_config;

/* Tile c += the scores' three terms: queries' parts in tiles qh, ql, the
 * keys' tile pair at kb loaded into 6, 7. */
#define SCORE_TERMS(c, qh, ql, kb)                                                               \
    do {                                                                                         \
        _tile_loadd(6, (kb), 64);                                                                \
        _tile_loadd(7, (kb) + TILE_BF16, 64);                                                    \
        _tile_dpbf16ps(c, qh, 6);                                                                \
        _tile_dpbf16ps(c, qh, 7);                                                                \
        _tile_dpbf16ps(c, ql, 6);                                                                \
    } while (0)

/* The scores of the queries in tiles 2 .. 5 against the 16 keys whose
 * tiles start at kb, in tile c, stored to s (rows ld floats apart). */
#define SCORE_TILE(c, kb, T, s, ld)                                                              \
    do {                                                                                         \
        _tile_zero(c);                                                                           \
        SCORE_TERMS(c, 2, 3, (kb));                                                              \
        if ((T) > 1)                                                                             \
            SCORE_TERMS(c, 4, 5, (kb) + 2 * TILE_BF16);                                          \
        _tile_stored(c, (s), (ld) * sizeof(float));                                              \
    } while (0)

/* The context's tile x (dimensions 16x ..) += the probabilities' block of
 * 32 keys (tile 4) by the values' tile pair at vb (loaded into 6, 7). */
#define CONTEXT_TILE(x, vb)                                                                      \
    do {                                                                                         \
        _tile_loadd(6, (vb), 64);                                                                \
        _tile_loadd(7, (vb) + TILE_BF16, 64);                                                    \
        _tile_dpbf16ps(x, 4, 6);                                                                 \
        _tile_dpbf16ps(x, 4, 7);                                                                 \
    } while (0)

/* attention_head_forward in bf16 inference on AMX tiles, for heads
 * bert_attention_on_amx takes: the context rows into c16 (rows H apart).  work:
 * amx_work_bytes(n, d).  Queries, keys and values are put in tiles' layout
 * once per head (keys and values with pairs of rows interleaved, as the
 * tiles' products take them); then, for each block of 16 queries, their
 * scores (a tile per 16 keys), each row's exponentials rounded to bf16
 * (probabilities_bf16), and the context (a tile per 16 dimensions, over
 * blocks of 32 keys), divided by the exponentials' sum at the end. */
AMX_TARGET static void attention_head_amx(bf16 *c16, void *work, const float *q, const float *k,
                                          const float *v, const float *rel, int n, int d,
                                          size_t ld, int H)
{
    amx_sizes z = amx_sizes_for(n, d);
    size_t nq = z.nq, nk = z.nk, T = z.t, E = z.e;
    bf16 *qt = (bf16 *)(((uintptr_t)work + 63) & ~(uintptr_t)63),
         *kt = qt + 2 * nq * T * 32, *vt = kt + 2 * (nk / 16) * T * TILE_BF16,
         *pt = vt + 2 * (nk / 32) * E * TILE_BF16;
    float *s = (float *)(pt + 16 * nk);

    /* Queries: per block of 16 and step t of 32 dimensions, two tiles (hi,
     * lo) of [16 queries, 32 dimensions]; zero past n and d.  Without rel,
     * scaled here by 1/sqrt(d), so that the scores come out scaled. */
    float scale = 1.0f / sqrtf((float)d);
    __m512 query_scale = _mm512_set1_ps(rel ? 1.0f : scale);
    for (size_t i = 0; i < nq; i++)
        for (size_t t = 0; t < T; t++) {
            bf16 *hi = qt + ((i / 16 * T + t) * 2) * TILE_BF16 + (i % 16) * 32;
            __m512i h, l;
            split_row(&h, &l, i < (size_t)n ? q + i * ld + 32 * t : NULL, d - 32 * (int)t,
                      query_scale);
            _mm512_storeu_si512(hi, h);
            _mm512_storeu_si512(hi + TILE_BF16, l);
        }
    /* Keys: per block of 16 and step t, two tiles of 16 rows (pairs of
     * dimensions), each the 16 keys' pair side by side: each key's pairs
     * (a 32-bit word each) made in a row, the 16 x 16 words transposed. */
    for (size_t j0 = 0; j0 < nk; j0 += 16)
        for (size_t t = 0; t < T; t++) {
            f32x16 hi[16], lo[16];
            for (size_t j = 0; j < 16; j++) {
                __m512i h, l;
                split_row(&h, &l, j0 + j < (size_t)n ? k + (j0 + j) * ld + 32 * t : NULL,
                          d - 32 * (int)t, _mm512_set1_ps(1.0f));
                hi[j] = (f32x16)h;
                lo[j] = (f32x16)l;
            }
            transpose16(hi);
            transpose16(lo);
            bf16 *tile = kt + ((j0 / 16 * T + t) * 2) * TILE_BF16;
            __builtin_memcpy(tile, hi, sizeof hi);
            __builtin_memcpy(tile + TILE_BF16, lo, sizeof lo);
        }
    /* Values: per block of 32 keys and 16 dimensions, two tiles of 16 rows
     * (pairs of keys), each the 16 dimensions' pair side by side: the
     * pair's 32 bf16 interleaved by pairs. */
    __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                     8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (size_t j0 = 0; j0 < nk; j0 += 32)
        for (size_t x = 0; x < E; x++) {
            bf16 *hi = vt + ((j0 / 32 * E + x) * 2) * TILE_BF16;
            for (size_t p = 0; p < 16; p++) {
                __m512 u[2];
                for (size_t w = 0; w < 2; w++) {
                    size_t j = j0 + 2 * p + w;
                    u[w] = j < (size_t)n ? _mm512_loadu_ps(v + j * ld + 16 * x)
                                         : _mm512_setzero_ps();
                }
                __m512i h, l;
                split32(&h, &l, u[0], u[1]);
                _mm512_storeu_si512(hi + 32 * p, _mm512_permutexvar_epi16(pairs, h));
                _mm512_storeu_si512(hi + TILE_BF16 + 32 * p, _mm512_permutexvar_epi16(pairs, l));
            }
        }

    amx_config cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) {
        cfg.bytes_per_row[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    float ctx[16 * AMX_HEAD_DIM], inv[16];
    for (size_t i0 = 0; i0 < (size_t)n; i0 += 16) {
        int rows = n - (int)i0 < 16 ? n - (int)i0 : 16;
        /* Scores: the queries' tiles in 2 .. 5, two blocks of 16 keys at a
         * time in 0 and 1 (nk is a multiple of 32). */
        const bf16 *qb = qt + i0 / 16 * T * 2 * TILE_BF16;
        _tile_loadd(2, qb, 64);
        _tile_loadd(3, qb + TILE_BF16, 64);
        if (T > 1) {
            _tile_loadd(4, qb + 2 * TILE_BF16, 64);
            _tile_loadd(5, qb + 3 * TILE_BF16, 64);
        }
        for (size_t j0 = 0; j0 < nk; j0 += 32) {
            const bf16 *kb = kt + j0 / 16 * T * 2 * TILE_BF16;
            SCORE_TILE(0, kb, T, s + j0, nk);
            SCORE_TILE(1, kb + T * 2 * TILE_BF16, T, s + j0 + 16, nk);
        }
        /* Each query's exponentials into the probabilities' tiles (rows
         * past n: zero), 1 / their sum into inv. */
        for (int r = 0; r < 16; r++) {
            float *row = s + r * nk;
            bf16 *p = pt + r * nk;
            if (r >= rows) {
                memset(p, 0, nk * sizeof *p);
                continue;
            }
            /* rel_i[j] = rel[j - i] */
            inv[r] = probabilities_bf16(p, row, n, nk, rel ? rel - (i0 + r) : NULL, scale);
        }
        /* Context: tiles 0 .. E - 1 over the probabilities' blocks of 32
         * keys. */
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (size_t j0 = 0; j0 < nk; j0 += 32) {
            _tile_loadd(4, pt + j0, nk * sizeof *pt);
            const bf16 *vb = vt + j0 / 32 * E * 2 * TILE_BF16;
            CONTEXT_TILE(0, vb);
            if (E > 1)
                CONTEXT_TILE(1, vb + 2 * TILE_BF16);
            if (E > 2)
                CONTEXT_TILE(2, vb + 4 * TILE_BF16);
            if (E > 3)
                CONTEXT_TILE(3, vb + 6 * TILE_BF16);
        }
        _tile_stored(0, ctx, d * sizeof *ctx);
        if (E > 1)
            _tile_stored(1, ctx + 16, d * sizeof *ctx);
        if (E > 2)
            _tile_stored(2, ctx + 32, d * sizeof *ctx);
        if (E > 3)
            _tile_stored(3, ctx + 48, d * sizeof *ctx);
        for (int r = 0; r < rows; r++) {
            bf16 *out = c16 + (i0 + r) * H;
#pragma omp simd
            for (int e = 0; e < d; e++)
                out[e] = bf16_round(ctx[r * d + e] * inv[r]);
        }
    }
    _tile_release();
}
#else
static void attention_head_amx(bf16 *c16, void *work, const float *q, const float *k,
                               const float *v, const float *rel, int n, int d, size_t ld, int H)
{
    abort(); /* bert_attention_on_amx says no */
}
#endif

/* One head of one sequence of n tokens (q, k, v: rows ld apart), the
 * context rows into c (rows H apart), or, when c16 is given, into c16 in
 * bf16 (c then holds them or not: inference reads only c16).  The softmax
 * probabilities go into P [n, n] when it is given (training keeps them).
 * Heads that attention_head_blocked takes go through it (scratch:
 * blocked_work_floats(n, d) floats); the others are two products per block
 * of ATT_QUERIES queries, the scores in P or scratch [ATT_QUERIES,
 * n], with keep the dropout mask into keep [n, n] and the dropped out
 * probabilities into w [ATT_QUERIES, n].  rel (MPNet;
 * NULL for BERT) is this head's bias by relative position, rel[j - i]
 * added to the score of query i for key j.  next (or NULL): see
 * attention_head_blocked_npad. */
static void attention_head_forward(float *c, bf16 *c16, float *P, float *scratch, uint8_t *keep,
                                   float *w, const float *q, const float *k, const float *v,
                                   const float *rel, int n, int d, size_t ld, int H, float p_attn,
                                   uint64_t key, int h, const head_next *next)
{
    if (blocked_takes(d)) {
        attention_head_blocked(c, c16, P, keep, scratch, q, k, v, rel, n, d, ld, H, p_attn, key, h,
                               next);
        return;
    }
    for (int i0 = 0; i0 < n; i0 += ATT_QUERIES) {
        int rows = n - i0 < ATT_QUERIES ? n - i0 : ATT_QUERIES;
        float *probs = P ? P + (size_t)i0 * n : scratch;
        gemm(GEMM_FP32, 0, 1, rows, n, d, q + i0 * ld, NULL, (int)ld, k, NULL, (int)ld, 0.0f,
             probs, n);
        softmax_rows(probs, keep ? keep + (size_t)i0 * n : NULL, w, rel, i0, rows, n, d, p_attn,
                     key, h);
        gemm(GEMM_FP32, 0, 0, rows, d, n, keep ? w : probs, NULL, n, v, NULL, (int)ld, 0.0f,
             c + (size_t)i0 * H, H);
        if (c16)
            bf16_rows_from_float(c16 + (size_t)i0 * H, H, c + (size_t)i0 * H, H, rows, d);
    }
}

/* Multi-head self-attention of each sequence over its own tokens.
 * qkv [N, 3H] -> ctx [N, H], or ctx16 in bf16 when given (see
 * attention_head_forward); att keeps the softmax probabilities (before
 * dropout; NULL: not kept, as without training); with p_attn > 0 they are
 * dropped out with the mask att_keep.
 * relvec (MPNet; NULL for BERT): [heads, 2 rel_len - 1] score bias by
 * relative position, j - i = 0 at rel_len - 1. */
static void attention_forward(float *ctx, bf16 *ctx16, float *att, uint8_t *att_keep,
                              const float *qkv,
                              const float *relvec, int rel_len, const int *start,
                              const size_t *att_start, int B, int H, int heads, int max_len,
                              float p_attn, const dropout_keys *dk, int layer)
{
    int d = H / heads;
    size_t ld = 3 * (size_t)H;
#pragma omp parallel if (worth_threads(att_start[B] * d))
    {
        /* What attention_head_forward's path for these heads needs, and
         * attention_head_amx's (bf16 inference) for the long sequences. */
        int amx = ctx16 && !att && p_attn <= 0 && bert_attention_on_amx(d, max_len);
        void *amx_work = amx ? xmallocarray(amx_work_bytes(max_len, d), 1) : NULL;
        int blocked = blocked_takes(d), alone = omp_get_num_threads() == 1;
        float *w = !blocked && p_attn > 0
                       ? xmallocarray((size_t)ATT_QUERIES * max_len, sizeof *w)
                       : NULL;
        float *scratch = blocked ? xmallocarray(blocked_work_floats(max_len, d), sizeof *scratch)
                         : att   ? NULL
                                 : xmallocarray((size_t)ATT_QUERIES * max_len, sizeof *scratch);
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < B * heads; bh++) {
            int b = bh / heads, h = bh % heads, n = start[b + 1] - start[b];
            const float *q = qkv + (size_t)start[b] * ld + h * d;
            const float *rel = relvec ? relvec + (size_t)h * (2 * rel_len - 1) + rel_len - 1 : NULL;
            if (amx && bert_attention_on_amx(d, n)) {
                attention_head_amx(ctx16 + (size_t)start[b] * H + h * d, amx_work, q, q + H,
                                   q + 2 * H, rel, n, d, ld, H);
                continue;
            }
            /* A thread alone takes the heads in order: it fetches the next
             * one's rows while it computes this one. */
            head_next next = {0};
            if (alone && bh + 1 < B * heads) {
                int nb = (bh + 1) / heads, nh = (bh + 1) % heads;
                size_t out_at = (size_t)start[nb] * H + nh * d;
                next = (head_next){.q = qkv + (size_t)start[nb] * ld + nh * d,
                                   .out = ctx16 ? (const char *)(ctx16 + out_at)
                                                : (const char *)(ctx + out_at),
                                   .out_size = ctx16 ? sizeof *ctx16 : sizeof *ctx,
                                   .n = start[nb + 1] - start[nb]};
            }
            float *P = att ? att + att_start[b] + (size_t)h * n * n : NULL;
            uint8_t *keep = p_attn > 0 ? att_keep + att_start[b] + (size_t)h * n * n : NULL;
            uint64_t key = keep ? dropout_key(dk->seed, dk->step, dk->row[b], dk->column[b], layer,
                                              DROP_ATTENTION)
                                : 0;
            attention_head_forward(ctx + (size_t)start[b] * H + h * d,
                                   ctx16 ? ctx16 + (size_t)start[b] * H + h * d : NULL, P,
                                   scratch, keep, w, q, q + H, q + 2 * H, rel, n, d, ld, H, p_attn,
                                   key, h, next.q ? &next : NULL);
        }
        free(w);
        free(scratch);
        free(amx_work);
    }
}

void bert_attention(float *ctx, uint16_t *ctx16, const float *qkv, const float *relvec,
                    int rel_len, const int *start, int B, int H, int heads)
{
    size_t *att_start = xmallocarray((size_t)B + 1, sizeof *att_start);
    int max_len = 0;
    att_start[0] = 0;
    for (int b = 0; b < B; b++) {
        int n = start[b + 1] - start[b];
        max_len = n > max_len ? n : max_len;
        att_start[b + 1] = att_start[b] + (size_t)heads * n * n;
    }
    attention_forward(ctx, ctx16, NULL, NULL, qkv, relvec, rel_len, start, att_start, B, H, heads,
                      max_len, 0.0f, NULL, 0);
    free(att_start);
}

/* One head of one sequence of n tokens: dctx rows (H apart) -> dq, dk, dv
 * rows (ld apart, overwritten), from the probabilities P [n, n] and the
 * dropout mask keep (or NULL).  drel (MPNet; NULL for BERT) gets the
 * gradient of the relative position bias: drel[j - i] (overwritten), summed
 * over the scores with that j - i.  w and ds [n, n] are scratch. */
MULTIVERSIONED static void attention_head_backward(float *dq, float *dk, float *dv, double *drel,
                                                   const float *dctx, const float *q,
                                                   const float *k, const float *v, const float *P,
                                                   const uint8_t *keep, float *w, float *ds, int n,
                                                   int d, size_t ld, int H, float p_attn)
{
    float scale = 1.0f / sqrtf((float)d), drop_scale = 1.0f / (1.0f - p_attn);
    const float *weights = P;
    if (keep) { /* the dropped out probabilities the context was made of */
#pragma omp simd
        for (size_t e = 0; e < (size_t)n * n; e++)
            w[e] = keep[e] ? P[e] * drop_scale : 0.0f;
        weights = w;
    }
    gemm(GEMM_FP32, 1, 0, n, d, n, weights, NULL, n, dctx, NULL, H, 0.0f, dv, (int)ld);
    /* ds = gradient of the weights, then of the scores (scaled) */
    gemm(GEMM_FP32, 0, 1, n, n, d, dctx, NULL, H, v, NULL, (int)ld, 0.0f, ds, n);
    if (drel)
        for (int x = -(n - 1); x < n; x++)
            drel[x] = 0;
    for (int i = 0; i < n; i++) {
        const float *row = P + (size_t)i * n;
        float *dp = ds + (size_t)i * n;
        if (keep) {
            const uint8_t *kr = keep + (size_t)i * n;
#pragma omp simd
            for (int j = 0; j < n; j++)
                dp[j] = kr[j] ? dp[j] * drop_scale : 0.0f;
        }
        float fsum = (float)dot_fixed(row, dp, n);
        if (drel) {
            double *drel_i = drel - i; /* drel_i[j] = drel[j - i] */
#pragma omp simd
            for (int j = 0; j < n; j++) {
                float dscore = row[j] * (dp[j] - fsum);
                drel_i[j] += dscore;
                dp[j] = dscore * scale;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++)
                dp[j] = row[j] * (dp[j] - fsum) * scale;
        }
    }
    gemm(GEMM_FP32, 0, 0, n, d, n, ds, NULL, n, k, NULL, (int)ld, 0.0f, dq, (int)ld);
    gemm(GEMM_FP32, 1, 0, n, d, n, ds, NULL, n, q, NULL, (int)ld, 0.0f, dk, (int)ld);
}

/* dctx [N, H] -> dqkv [N, 3H] (overwritten).  drel (MPNet; NULL for BERT):
 * [B, heads, 2 max_len - 1], each sequence's and head's gradient of the bias
 * by relative position (overwritten where j - i occurs). */
static void attention_backward(float *dqkv, double *drel, const float *dctx, const float *qkv,
                               const float *att, const uint8_t *att_keep, const int *start,
                               const size_t *att_start, int B, int H, int heads, int max_len,
                               float p_attn)
{
    int d = H / heads;
    size_t ld = 3 * (size_t)H;
#pragma omp parallel if (worth_threads(att_start[B] * d))
    {
        float *w = p_attn > 0 ? xmallocarray((size_t)max_len * max_len, sizeof *w) : NULL;
        float *ds = xmallocarray((size_t)max_len * max_len, sizeof *ds);
#pragma omp for schedule(dynamic)
        for (int bh = 0; bh < B * heads; bh++) {
            int b = bh / heads, h = bh % heads, n = start[b + 1] - start[b];
            const float *q = qkv + (size_t)start[b] * ld + h * d;
            float *dq = dqkv + (size_t)start[b] * ld + h * d;
            const float *P = att + att_start[b] + (size_t)h * n * n;
            const uint8_t *keep = p_attn > 0 ? att_keep + att_start[b] + (size_t)h * n * n : NULL;
            double *dr = drel ? drel + (size_t)bh * (2 * max_len - 1) + max_len - 1 : NULL;
            attention_head_backward(dq, dq + H, dq + 2 * H, dr, dctx + (size_t)start[b] * H + h * d,
                                    q, q + H, q + 2 * H, P, keep, w, ds, n, d, ld, H, p_attn);
        }
        free(w);
        free(ds);
    }
}

/* ---- activations -------------------------------------------------------- */

/* Place the token buffers for n rows at base (NULL: only measure); returns
 * the bytes needed.  Each buffer starts on a 64-byte boundary. */
static size_t layout_tokens(bert_acts *a, char *base, size_t n)
{
    const bert_config *c = &a->c;
    size_t H = c->hidden, FF = c->intermediate, off = 0;
    int drop_hidden = a->training && c->hidden_dropout > 0;
#define PLACE(ptr, count)                                                                        \
    do {                                                                                         \
        (ptr) = base ? (void *)(base + off) : NULL;                                              \
        off += ((size_t)(count) * sizeof *(ptr) + 63) & ~(size_t)63;                             \
    } while (0)
    PLACE(a->ids, n);
    PLACE(a->pos, n);
    PLACE(a->emb, n * H);
    PLACE(a->emb_mean, n);
    PLACE(a->emb_rstd, n);
    a->emb_keep = NULL;
    if (drop_hidden)
        PLACE(a->emb_keep, n * H);
    for (int l = 0; l <= c->layers; l++)
        if (a->training || l < 2)
            PLACE(a->hidden[l], n * H);
    PLACE(a->gelu, n * FF);
    a->operand16 = NULL;
    if (!a->training)
        PLACE(a->operand16, n * H);
    for (int l = 0; l < (a->training ? c->layers : 1); l++) {
        layer_acts *la = &a->layer[l];
        PLACE(la->qkv, n * 3 * H);
        PLACE(la->ctx, n * H);
        PLACE(la->ln1_in, n * H);
        PLACE(la->ln1_mean, n);
        PLACE(la->ln1_rstd, n);
        PLACE(la->ln1_out, n * H);
        PLACE(la->ffn_pre, n * FF);
        PLACE(la->ln2_in, n * H);
        PLACE(la->ln2_mean, n);
        PLACE(la->ln2_rstd, n);
        la->attn_keep = la->ffn_keep = NULL;
        if (drop_hidden) {
            PLACE(la->attn_keep, n * H);
            PLACE(la->ffn_keep, n * H);
        }
    }
    a->dhidden = a->g1 = a->g2 = a->xhat = a->dqkv = a->dffn = NULL;
    if (a->training) {
        PLACE(a->dhidden, n * H);
        PLACE(a->g1, n * H);
        PLACE(a->g2, n * H);
        PLACE(a->xhat, n * H);
        PLACE(a->dqkv, n * 3 * H);
        PLACE(a->dffn, n * FF);
        PLACE(a->gelu_grad, n * FF);
    }
    return off;
}

/* Attention buffers, cap floats of probabilities per layer. */
static size_t layout_att(bert_acts *a, char *base, size_t cap)
{
    const bert_config *c = &a->c;
    size_t off = 0;
    int drop_attn = a->training && c->attn_dropout > 0;
    for (int l = 0; l < (a->training ? c->layers : 1); l++) {
        PLACE(a->layer[l].att, cap);
        a->layer[l].att_keep = NULL;
        if (drop_attn)
            PLACE(a->layer[l].att_keep, cap);
    }
#undef PLACE
    return off;
}

/* Without training every layer shares the buffers of layer 0, and the
 * hidden states alternate between two buffers. */
static void alias_layers(bert_acts *a)
{
    if (a->training)
        return;
    for (int l = 1; l < a->c.layers; l++)
        a->layer[l] = a->layer[0];
    for (int l = 2; l <= a->c.layers; l++)
        a->hidden[l] = a->hidden[l % 2];
}

/* Make room for n tokens and natt attention floats per layer; buffers grow
 * by at least a quarter so that slowly growing batches reallocate rarely. */
static void reserve(bert_acts *a, int n, size_t natt)
{
    int max_tokens = a->max_sequences * a->max_len;
    if (n > a->cap_tokens) {
        int cap = a->cap_tokens + a->cap_tokens / 4;
        cap = cap < n ? n : cap > max_tokens ? max_tokens : cap;
        /* Every [tokens, width] buffer has the rows to spare that gemm_bias
         * may use (GEMM_ROW_ROOM). */
        cap = gemm_rows_with_room(cap);
        free(a->token_mem);
        a->token_mem = xmalloc(layout_tokens(a, NULL, cap));
        layout_tokens(a, a->token_mem, cap);
        a->cap_tokens = cap;
    }
    if (natt > a->cap_att) {
        size_t cap = a->cap_att + a->cap_att / 4;
        size_t max_att = (size_t)a->c.heads * a->max_sequences * a->max_len * a->max_len;
        cap = cap < natt ? natt : cap > max_att ? max_att : cap;
        free(a->att_mem);
        a->att_mem = xmalloc(layout_att(a, NULL, cap));
        layout_att(a, a->att_mem, cap);
        a->cap_att = cap;
    }
    alias_layers(a);
}

bert_acts *bert_acts_new(const bert_config *c, int max_sequences, int max_len, int training)
{
    if (max_sequences < 1 || max_len < 1)
        die("bert_acts_new: %d sequences of %d tokens", max_sequences, max_len);
    if (c->hidden % c->heads)
        die("bert_acts_new: hidden size %d is not a multiple of %d heads", c->hidden, c->heads);
    if ((int64_t)max_sequences * max_len > INT32_MAX / 4)
        die("bert_acts_new: %d sequences of %d tokens is too many", max_sequences, max_len);
    bert_acts *a = xcalloc(1, sizeof *a);
    a->c = *c;
    a->max_sequences = max_sequences;
    a->max_len = max_len;
    a->training = training;
    a->start = xcalloc(max_sequences + 1, sizeof *a->start);
    a->att_start = xcalloc(max_sequences + 1, sizeof *a->att_start);
    a->group_start = xcalloc(max_sequences + 1, sizeof *a->group_start);
    a->group_att_start = xcalloc(max_sequences + 1, sizeof *a->group_att_start);
    a->hidden = xcalloc(c->layers + 1, sizeof *a->hidden);
    a->layer = xcalloc(c->layers, sizeof *a->layer);
    if (c->rel_buckets) {
        size_t span = 2 * (size_t)max_len - 1;
        a->relvec = xmallocarray(c->heads * span, sizeof *a->relvec);
        if (training)
            a->drel = xmallocarray((size_t)max_sequences * c->heads * span, sizeof *a->drel);
    }
    return a;
}

void bert_acts_free(bert_acts *a)
{
    if (!a)
        return;
    free(a->token_mem);
    free(a->att_mem);
    free(a->start);
    free(a->att_start);
    free(a->group_start);
    free(a->group_att_start);
    free(a->hidden);
    free(a->layer);
    free(a->relvec);
    free(a->drel);
    free(a);
}

void bert_acts_set_precision(bert_acts *a, int bf16_products, const uint16_t *params16,
                             gemm_packs *packs)
{
    a->prec = bf16_products ? GEMM_BF16 : GEMM_FP32;
    a->params16 = bf16_products ? params16 : NULL;
    a->packs = packs;
}

int bert_acts_tokens(const bert_acts *a)
{
    return a->N;
}

int bert_acts_sequences(const bert_acts *a)
{
    return a->B;
}

const int *bert_acts_starts(const bert_acts *a)
{
    return a->start;
}

const float *bert_hidden(const bert_acts *a, int layer)
{
    if (layer < 0 || layer > a->c.layers)
        die("bert_hidden: no layer %d", layer);
    if (!a->training && layer != a->c.layers)
        die("bert_hidden: activations made without training keep only the last layer");
    return a->hidden[layer];
}

float *bert_acts_dhidden(bert_acts *a)
{
    return a->dhidden;
}

/* ---- the encoder -------------------------------------------------------- */

/* Offsets (in floats) of layer l's tensors in the flat parameter buffer. */
typedef struct {
    size_t qkv_w, qkv_b, attn_out_w, attn_out_b, attn_ln_w, attn_ln_b;
    size_t ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b, ffn_ln_w, ffn_ln_b;
} layer_offsets;

static layer_offsets layer_at(const size_t off[P_COUNT + 1], const bert_config *c, int l)
{
    size_t H = c->hidden, FF = c->intermediate;
    return (layer_offsets){
        .qkv_w = off[P_QKV_W] + l * 3 * H * H,
        .qkv_b = off[P_QKV_B] + l * 3 * H,
        .attn_out_w = off[P_ATTN_OUT_W] + l * H * H,
        .attn_out_b = off[P_ATTN_OUT_B] + l * H,
        .attn_ln_w = off[P_ATTN_LN_W] + l * H,
        .attn_ln_b = off[P_ATTN_LN_B] + l * H,
        .ffn_in_w = off[P_FFN_IN_W] + l * FF * H,
        .ffn_in_b = off[P_FFN_IN_B] + l * FF,
        .ffn_out_w = off[P_FFN_OUT_W] + l * H * FF,
        .ffn_out_b = off[P_FFN_OUT_B] + l * H,
        .ffn_ln_w = off[P_FFN_LN_W] + l * H,
        .ffn_ln_b = off[P_FFN_LN_B] + l * H,
    };
}

/* Whether activations made for config a fit a pass with config b. */
static int same_shape(const bert_config *a, const bert_config *b)
{
    return a->hidden == b->hidden && a->layers == b->layers && a->heads == b->heads &&
           a->intermediate == b->intermediate && a->hidden_dropout == b->hidden_dropout &&
           a->attn_dropout == b->attn_dropout && a->rel_buckets == b->rel_buckets;
}

/* The relative position bias of each head by j - i (MPNet), from the shared
 * table [buckets, heads]. */
static void relative_bias_forward(float *relvec, const float *table, int heads, int max_len)
{
    int span = 2 * max_len - 1;
    for (int h = 0; h < heads; h++)
        for (int x = 0; x < span; x++)
            relvec[(size_t)h * span + x] = table[(size_t)bert_rel_bucket(x - (max_len - 1)) * heads + h];
}

/* The gradients by relative position of every sequence and head into the
 * table's gradient, in a fixed order (any thread count gives the same sums). */
static void relative_bias_backward(float *dtable, const double *drel, const int *start, int B,
                                   int heads, int max_len)
{
    int span = 2 * max_len - 1;
#pragma omp parallel for schedule(static) if (worth_threads((size_t)B * heads * span))
    for (int h = 0; h < heads; h++) {
        double acc[32] = {0}; /* bert_rel_bucket's 32 buckets */
        for (int b = 0; b < B; b++) {
            int n = start[b + 1] - start[b];
            const double *dr = drel + ((size_t)b * heads + h) * span + max_len - 1;
            for (int x = -(n - 1); x < n; x++)
                acc[bert_rel_bucket(x)] += dr[x];
        }
        for (int k = 0; k < 32; k++)
            dtable[(size_t)k * heads + h] += (float)acc[k];
    }
}

/* Rows of layer l's activations taken at a time after attention (a
 * multiple of gemm.c's block of rows: the products' shapes, and so their
 * bits, are those of the whole). */
enum { LAYER_ROWS = 256 };

/* Layer l after its attention, for the token rows r0 .. r0 + n - 1 (all of
 * them where there is dropout), whose attention context is ctx: the
 * attention's output product, dropout, the residual and LayerNorm, the
 * feed-forward layers, dropout, the residual and LayerNorm. */
static void layer_after_attention(const bert_config *c, const float *params, bert_acts *a,
                                  const layer_offsets *o, int l, const dropout_keys *dropout,
                                  bf16 *operand16, const float *ctx, int r0, int n)
{
    int H = c->hidden, FF = c->intermediate, B = a->B;
    layer_acts *la = &a->layer[l];
    size_t row = (size_t)r0 * H;
    bf16 *in16 = operand16 ? operand16 + row : NULL;
    /* The values only this block needs: in training, kept for the backward
     * pass at their rows; in inference, in the first rows of their buffers,
     * again for every block (and so in the cache). */
    int at = a->training ? r0 : 0;
    size_t kept = (size_t)at * H;
    float *ln1_in = la->ln1_in + kept, *ln1_out = la->ln1_out + kept, *ln2_in = la->ln2_in + kept;
    matmul_forward(a, ln1_in, ctx, in16, weight_at(a, params, o->attn_out_w),
                   params + o->attn_out_b, n, H, H);
    if (a->p_hidden > 0) /* (then all rows: ln1_in is la->ln1_in) */
        dropout_forward(ln1_in, la->attn_keep, a->start, B, H, a->p_hidden, dropout, l,
                        DROP_ATTENTION_OUT);
    layernorm_forward(ln1_out, in16, la->ln1_mean + at, la->ln1_rstd + at, ln1_in,
                      a->hidden[l] + row, params + o->attn_ln_w, params + o->attn_ln_b, n, H,
                      c->ln_eps);
    ffn_forward(a, ln2_in, la->ffn_pre + (size_t)at * FF, ln1_out, in16,
                weight_at(a, params, o->ffn_in_w), params + o->ffn_in_b,
                weight_at(a, params, o->ffn_out_w), params + o->ffn_out_b, n, H, FF);
    if (a->p_hidden > 0)
        dropout_forward(ln2_in, la->ffn_keep, a->start, B, H, a->p_hidden, dropout, l,
                        DROP_FFN_OUT);
    layernorm_forward(a->hidden[l + 1] + row, in16, la->ln2_mean + at, la->ln2_rstd + at, ln2_in,
                      ln1_out, params + o->ffn_ln_w, params + o->ffn_ln_b, n, H, c->ln_eps);
}

int bert_group_end(const int *start, int B, int b0)
{
    int end = b0 + 1;
    while (end < B && start[end + 1] - start[b0] <= LAYER_ROWS)
        end++;
    return end;
}

/* Layer l in inference: for groups of whole sequences (bert_group_end) at
 * a time, the queries, keys and values, the attention and the rest of the
 * layer, each group's queries, keys, values and context in the first rows
 * of their buffers (in the cache). */
static void layer_in_groups(const bert_config *c, const float *params, bert_acts *a,
                            const layer_offsets *o, int l, bf16 *operand16, int limit)
{
    int H = c->hidden;
    layer_acts *la = &a->layer[l];
    for (int b0 = 0, b1; b0 < a->B; b0 = b1) {
        b1 = bert_group_end(a->start, a->B, b0);
        int r0 = a->start[b0], n = a->start[b1] - r0;
        for (int b = b0; b <= b1; b++) {
            a->group_start[b - b0] = a->start[b] - r0;
            a->group_att_start[b - b0] = a->att_start[b] - a->att_start[b0];
        }
        bf16 *x16 = operand16 ? operand16 + (size_t)r0 * H : NULL;
        matmul_forward(a, la->qkv, a->hidden[l] + (size_t)r0 * H, x16,
                       weight_at(a, params, o->qkv_w), params + o->qkv_b, n, H, 3 * H);
        attention_forward(la->ctx, x16, NULL, NULL, la->qkv, a->relvec, a->max_len,
                          a->group_start, a->group_att_start, b1 - b0, H, c->heads, limit, 0,
                          NULL, l);
        for (int c0 = 0; c0 < n; c0 += LAYER_ROWS)
            layer_after_attention(c, params, a, o, l, NULL, operand16, la->ctx + (size_t)c0 * H,
                                  r0 + c0, n - c0 < LAYER_ROWS ? n - c0 : LAYER_ROWS);
    }
}

void bert_forward(const bert_config *c, const float *params, const int32_t *ids,
                  const int32_t *lens, int B, int T, bert_acts *a, const dropout_keys *dropout)
{
    int H = c->hidden, heads = c->heads;
    if (B < 1 || B > a->max_sequences)
        die("bert_forward: %d sequences, at most %d", B, a->max_sequences);
    if (!same_shape(c, &a->c))
        die("bert_forward: activations made for another configuration");
    if (dropout && !a->training)
        die("bert_forward: dropout needs activations made for training");

    /* Pack the batch. */
    int limit = T < a->max_len ? T : a->max_len;
    limit = limit < bert_max_tokens(c) ? limit : bert_max_tokens(c);
    a->start[0] = 0;
    a->att_start[0] = 0;
    for (int b = 0; b < B; b++) {
        int len = 0;
        if (lens)
            len = lens[b];
        else
            while (len < T && ids[(size_t)b * T + len] >= 0)
                len++;
        if (len < 1 || len > limit)
            die("bert_forward: sequence %d has %d tokens (limits: 1 to %d)", b, len, limit);
        a->start[b + 1] = a->start[b] + len;
        a->att_start[b + 1] = a->att_start[b] + (size_t)heads * len * len;
    }
    int N = a->start[B];
    reserve(a, N, a->training ? a->att_start[B] : 0); /* without training, no probabilities kept */
    a->B = B;
    a->N = N;
    int pad = bert_pad_position(c);
    for (int b = 0; b < B; b++) {
        int count = 0; /* MPNet: the tokens so far that are not <pad> */
        for (int t = 0; t < a->start[b + 1] - a->start[b]; t++) {
            int32_t id = ids[(size_t)b * T + t];
            if (id < 0 || id >= c->vocab_size)
                die("bert_forward: token id %d at sequence %d position %d is outside the "
                    "vocabulary (%d)", id, b, t, c->vocab_size);
            a->ids[a->start[b] + t] = id;
            if (pad < 0)
                a->pos[a->start[b] + t] = t;
            else
                a->pos[a->start[b] + t] = id == pad ? pad : pad + ++count;
        }
    }

    a->p_hidden = dropout ? c->hidden_dropout : 0;
    a->p_attn = dropout ? c->attn_dropout : 0;
    size_t off[P_COUNT + 1];
    bert_param_offsets(c, off);

    embedding_forward(a->emb, a->ids, a->pos, N, params + off[P_WORD_EMB], params + off[P_POS_EMB],
                      c->type_vocab ? params + off[P_TYPE_EMB] : NULL, H);
    if (a->relvec)
        relative_bias_forward(a->relvec, params + off[P_REL_BIAS], heads, a->max_len);
    /* Inference in bf16: each LayerNorm, and the attention, write their
     * output in bf16 too, the operand of the product that follows. */
    bf16 *operand16 = a->prec == GEMM_BF16 && !a->training ? a->operand16 : NULL;
    layernorm_forward(a->hidden[0], operand16, a->emb_mean, a->emb_rstd, a->emb, NULL,
                      params + off[P_EMB_LN_W], params + off[P_EMB_LN_B], N, H, c->ln_eps);
    if (a->p_hidden > 0)
        dropout_forward(a->hidden[0], a->emb_keep, a->start, B, H, a->p_hidden, dropout, 0,
                        DROP_EMBEDDINGS);

    for (int l = 0; l < c->layers; l++) {
        layer_acts *la = &a->layer[l];
        layer_offsets o = layer_at(off, c, l);
        if (!a->training) {
            layer_in_groups(c, params, a, &o, l, operand16, limit);
            continue;
        }
        /* Training: the whole batch at once for the attention (the
         * threads share its heads), then, without dropout (whose masks go
         * by sequence), LAYER_ROWS rows at a time. */
        matmul_forward(a, la->qkv, a->hidden[l], NULL, weight_at(a, params, o.qkv_w),
                       params + o.qkv_b, N, H, 3 * H);
        attention_forward(la->ctx, NULL, la->att, la->att_keep, la->qkv, a->relvec, a->max_len,
                          a->start, a->att_start, B, H, heads, limit, a->p_attn, dropout, l);
        int step = a->p_hidden > 0 ? N : LAYER_ROWS;
        for (int r0 = 0; r0 < N; r0 += step)
            layer_after_attention(c, params, a, &o, l, dropout, NULL, la->ctx + (size_t)r0 * H,
                                  r0, N - r0 < step ? N - r0 : step);
    }
}

void bert_backward(const bert_config *c, const float *params, float *grads, bert_acts *a)
{
    if (!a->training)
        die("bert_backward: activations were made without training");
    if (!a->N)
        die("bert_backward: no forward pass to go back through");
    if (!same_shape(c, &a->c))
        die("bert_backward: activations made for another configuration");
    int N = a->N, H = c->hidden, FF = c->intermediate;
    size_t off[P_COUNT + 1], nH = (size_t)N * H;
    bert_param_offsets(c, off);
    float *dh = a->dhidden; /* gradient of the current layer's output, then its input */

    for (int l = c->layers - 1; l >= 0; l--) {
        layer_acts *la = &a->layer[l];
        layer_offsets o = layer_at(off, c, l);
        /* Output LayerNorm; g1 = d ln2_in, which also flows to ln1_out. */
        layernorm_backward(a->g1, grads + o.ffn_ln_w, grads + o.ffn_ln_b, a->xhat, dh, la->ln2_in,
                           la->ln2_mean, la->ln2_rstd, params + o.ffn_ln_w, N, H);
        const float *d_ffn_out = a->g1;
        if (a->p_hidden > 0) {
            dropout_backward(a->g2, a->g1, la->ffn_keep, nH, a->p_hidden);
            d_ffn_out = a->g2;
        }
        gelu_forward(a->gelu, a->gelu_grad, la->ffn_pre, (size_t)N * FF);
        matmul_backward(a, a->dffn, grads + o.ffn_out_w, grads + o.ffn_out_b, d_ffn_out, a->gelu,
                        weight_at(a, params, o.ffn_out_w), N, FF, H, 0);
        gelu_backward(a->dffn, a->gelu_grad, (size_t)N * FF);
        matmul_backward(a, a->g1, grads + o.ffn_in_w, grads + o.ffn_in_b, a->dffn, la->ln1_out,
                        weight_at(a, params, o.ffn_in_w), N, H, FF, 1);
        /* Attention LayerNorm; dh = d ln1_in, which also flows to the layer input. */
        layernorm_backward(dh, grads + o.attn_ln_w, grads + o.attn_ln_b, a->xhat, a->g1,
                           la->ln1_in, la->ln1_mean, la->ln1_rstd, params + o.attn_ln_w, N, H);
        const float *d_attn_out = dh;
        if (a->p_hidden > 0) {
            dropout_backward(a->g2, dh, la->attn_keep, nH, a->p_hidden);
            d_attn_out = a->g2;
        }
        matmul_backward(a, a->g1, grads + o.attn_out_w, grads + o.attn_out_b, d_attn_out,
                        la->ctx, weight_at(a, params, o.attn_out_w), N, H, H, 0);
        attention_backward(a->dqkv, a->drel, a->g1, la->qkv, la->att, la->att_keep, a->start,
                           a->att_start, a->B, H, c->heads, a->max_len, a->p_attn);
        if (a->drel)
            relative_bias_backward(grads + off[P_REL_BIAS], a->drel, a->start, a->B, c->heads,
                                   a->max_len);
        matmul_backward(a, dh, grads + o.qkv_w, grads + o.qkv_b, a->dqkv, a->hidden[l],
                        weight_at(a, params, o.qkv_w), N, H, 3 * H, 1);
    }

    const float *d_emb_out = dh;
    if (a->p_hidden > 0) {
        dropout_backward(a->g2, dh, a->emb_keep, nH, a->p_hidden);
        d_emb_out = a->g2;
    }
    layernorm_backward(a->g1, grads + off[P_EMB_LN_W], grads + off[P_EMB_LN_B], a->xhat, d_emb_out,
                       a->emb, a->emb_mean, a->emb_rstd, params + off[P_EMB_LN_W], N, H);
    embedding_backward(grads + off[P_WORD_EMB], grads + off[P_POS_EMB],
                       c->type_vocab ? grads + off[P_TYPE_EMB] : NULL, a->g1, a->ids, a->pos, N, H,
                       bert_pad_position(c));
}

/* ---- pooling and normalisation ----------------------------------------- */

/* Row of sequence b's largest value in column j (the first one on ties). */
static int argmax_row(const bert_acts *a, const float *h, int b, int j)
{
    int H = a->c.hidden, best = a->start[b];
    for (int r = a->start[b] + 1; r < a->start[b + 1]; r++)
        if (h[(size_t)r * H + j] > h[(size_t)best * H + j])
            best = r;
    return best;
}

void bert_pool(const bert_acts *a, pooling_mode mode, float *out)
{
    int H = a->c.hidden;
    const float *h = a->hidden[a->c.layers];
#pragma omp parallel for schedule(static) if (worth_threads((size_t)a->N * H))
    for (int b = 0; b < a->B; b++) {
        float *o = out + (size_t)b * H;
        int n = a->start[b + 1] - a->start[b];
        for (int j = 0; j < H; j++) {
            if (mode == POOL_CLS) {
                o[j] = h[(size_t)a->start[b] * H + j];
            } else if (mode == POOL_MAX) {
                o[j] = h[(size_t)argmax_row(a, h, b, j) * H + j];
            } else {
                double s = 0;
                for (int r = a->start[b]; r < a->start[b + 1]; r++)
                    s += h[(size_t)r * H + j];
                o[j] = (float)(s / n);
            }
        }
    }
}

void bert_pool_backward(bert_acts *a, pooling_mode mode, const float *d_pooled)
{
    if (!a->training)
        die("bert_pool_backward: activations were made without training");
    if (!a->N)
        die("bert_pool_backward: no forward pass to go back through");
    int H = a->c.hidden;
    const float *h = a->hidden[a->c.layers];
    float *dh = a->dhidden;
#pragma omp parallel for schedule(static) if (worth_threads((size_t)a->N * H))
    for (int b = 0; b < a->B; b++) {
        const float *d = d_pooled + (size_t)b * H;
        int n = a->start[b + 1] - a->start[b];
        float *rows = dh + (size_t)a->start[b] * H;
        if (mode == POOL_MEAN) {
            for (int t = 0; t < n; t++)
                for (int j = 0; j < H; j++)
                    rows[(size_t)t * H + j] = d[j] / n;
            continue;
        }
        memset(rows, 0, (size_t)n * H * sizeof *rows);
        for (int j = 0; j < H; j++) {
            int r = mode == POOL_CLS ? a->start[b] : argmax_row(a, h, b, j);
            dh[(size_t)r * H + j] = d[j];
        }
    }
}

void l2_normalize(float *out, float *norms, const float *x, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            s += (double)xi[j] * xi[j];
        double norm = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
        norms[i] = (float)norm;
        for (int j = 0; j < d; j++)
            out[(size_t)i * d + j] = (float)(xi[j] / norm);
    }
}

/* y = x / max(|x|, eps): dx = (dy - y (y . dy)) / |x| where |x| > eps, else
 * dy / eps (the clamped divisor is a constant). */
void l2_normalize_backward(float *dx, const float *dout, const float *out, const float *norms,
                           int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *y = out + (size_t)i * d, *dy = dout + (size_t)i * d;
        double ydy = 0;
        if (norms[i] > 1e-12f)
            for (int j = 0; j < d; j++)
                ydy += (double)y[j] * dy[j];
        for (int j = 0; j < d; j++)
            dx[(size_t)i * d + j] = (float)((dy[j] - y[j] * ydy) / norms[i]);
    }
}
