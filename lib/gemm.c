/* gemm.c - gemm.h: OpenBLAS and oneDNN's matmul primitive.
 *
 * oneDNN primitives are made for one shape; each thread keeps the ones it
 * made (token rows in fixed blocks and a padded remainder, see BLOCK_ROWS,
 * so a handful per layer shape serve every batch).  The embedding workers
 * each run their own products single-threaded (they call from inside an
 * OpenMP region, where oneDNN's OpenMP does not nest).  Weights given with
 * a gemm_packs are read in the layout the primitive chose (format "any"),
 * reordered once into the store and shared by the threads. */
#include "gemm.h"
#include "util.h"
#include "vmath.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int gemm_bf16_available(const char **why)
{
    const char *env = getenv("BERTPIPE_CPU_BF16");
    if (env && !strcmp(env, "0")) {
        if (why)
            *why = "BERTPIPE_CPU_BF16=0";
        return 0;
    }
#ifndef BP_HAVE_DNNL
    if (why)
        *why = "built without oneDNN";
    return 0;
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        return 1;
#endif
    if (why)
        *why = "this CPU has no AVX512_BF16";
    return 0;
}

/* The products' count (gemm_products_counted): arithmetic in floating
 * point operations and time in nanoseconds, added to by every thread. */
static int counting;
static pthread_once_t counting_once = PTHREAD_ONCE_INIT;
static int64_t counted_flop, counted_ns;

static void counting_init(void)
{
    const char *env = getenv("BERTPIPE_PRODUCT_RATE");
    counting = env && !strcmp(env, "1");
}

/* The time now when products are counted, else 0. */
static double count_start(void)
{
    pthread_once(&counting_once, counting_init);
    return counting ? now_seconds() : 0;
}

static void count_end(double start, int M, int N, int K)
{
    if (!counting)
        return;
    __atomic_add_fetch(&counted_ns, (int64_t)((now_seconds() - start) * 1e9), __ATOMIC_RELAXED);
    __atomic_add_fetch(&counted_flop, 2 * (int64_t)M * N * K, __ATOMIC_RELAXED);
}

int gemm_products_counted(double *gflop, double *seconds)
{
    pthread_once(&counting_once, counting_init);
    *gflop = __atomic_load_n(&counted_flop, __ATOMIC_RELAXED) * 1e-9;
    *seconds = __atomic_load_n(&counted_ns, __ATOMIC_RELAXED) * 1e-9;
    return counting;
}

#ifdef BP_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void check(dnnl_status_t s, const char *what)
{
    if (s != dnnl_success)
        die("oneDNN: %s failed (status %d)", what, (int)s);
}

static void make_engine(void)
{
    check(dnnl_engine_create(&engine, dnnl_cpu, 0), "engine_create");
}

/* A primitive for one shape. */
typedef struct {
    int ta, tb;
    dnnl_dim_t M, N, K;
    int lda, ldb, ldc;
    float beta;
    int bias; /* an f32 bias row [N] added to every row of C */
    int gelu; /* GELU applied to the result (after bias and sum) */
    int c_bf16; /* C in bf16, else f32 */
    int f32; /* A and B in f32, else bf16 */
    int packed; /* B in the layout the primitive chose (wei_md), from gemm_packs */
    dnnl_memory_desc_t wei_md;
    dnnl_primitive_t prim;
} matmul_entry;

enum { CACHE_SLOTS = 256 };

/* The token count varies from call to call, and a primitive made for each
 * shape costs about a millisecond (its JIT code); so the rows of the token
 * dimension go in blocks of BLOCK_ROWS, and the remainder, up to a
 * multiple of GEMM_ROW_ROOM, is computed in the caller's rows to spare
 * (room) or copied into zero-padded scratch rows: a handful of
 * shapes per layer, each made once per thread.  (oneDNN's primitives with
 * the row count given at run time go through its JIT GEMM, which measured
 * 10 to 100 times slower here in training.) */
enum { BLOCK_ROWS = 256 };

/* Per thread: its stream and its primitives (replaced round-robin). */
static _Thread_local dnnl_stream_t stream;
static _Thread_local matmul_entry cache[CACHE_SLOTS];
static _Thread_local int cache_next;
static _Thread_local bf16 *scratch_a, *scratch_b;
static _Thread_local char *pad_a, *pad_b;
static _Thread_local size_t cap_a, cap_b, cap_pad_a, cap_pad_b, cap_pad_c;
static _Thread_local char *pad_c;

static void *grow(void *buf, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return buf;
    free(buf);
    *cap = n;
    return xmallocarray(n, size);
}

/* rows of cols elements of size bytes (ld elements apart) into out (cols
 * apart), zeros after them up to padded rows. */
static void pad_rows(char *out, const char *in, int rows, int padded, int cols, int ld,
                     size_t size)
{
    size_t row = cols * size;
    for (int r = 0; r < rows; r++)
        memcpy(out + r * row, in + (size_t)r * ld * size, row);
    memset(out + rows * row, 0, (size_t)(padded - rows) * row);
}

/* An operand of rows x cols (*ld apart) in bf16: x16 when given, else x
 * converted into the buffer *buf (grown as needed, to room rows if more),
 * *ld then cols. */
static const bf16 *operand(const float *x, const bf16 *x16, int rows, int cols, int room, int *ld,
                           bf16 **buf, size_t *cap)
{
    if (x16)
        return x16;
    *buf = grow(*buf, cap, (size_t)(room > rows ? room : rows) * cols, sizeof **buf);
    bf16_rows_from_float(*buf, cols, x, *ld, rows, cols);
    *ld = cols;
    return *buf;
}

/* The memory descriptors of e's operands with M and K as given. */
static void describe(const matmul_entry *e, dnnl_dim_t M, dnnl_dim_t K, dnnl_memory_desc_t *src,
                     dnnl_memory_desc_t *wei, dnnl_memory_desc_t *dst)
{
    dnnl_dims_t src_dims = {M, K}, wei_dims = {K, e->N}, dst_dims = {M, e->N};
    dnnl_dims_t src_strides = {e->ta ? 1 : e->lda, e->ta ? e->lda : 1};
    dnnl_dims_t wei_strides = {e->tb ? 1 : e->ldb, e->tb ? e->ldb : 1};
    dnnl_dims_t dst_strides = {e->ldc, 1};
    dnnl_data_type_t operands = e->f32 ? dnnl_f32 : dnnl_bf16;
    check(dnnl_memory_desc_init_by_strides(src, 2, src_dims, operands, src_strides), "src md");
    check(dnnl_memory_desc_init_by_strides(wei, 2, wei_dims, operands, wei_strides), "wei md");
    check(dnnl_memory_desc_init_by_strides(dst, 2, dst_dims, e->c_bf16 ? dnnl_bf16 : dnnl_f32,
                                           dst_strides),
          "dst md");
}

static void entry_make(matmul_entry *e)
{
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    describe(e, e->M, e->K, &src_md, &wei_md, &dst_md);
    if (e->packed) {
        dnnl_dims_t wei_dims = {e->K, e->N};
        check(dnnl_memory_desc_init_by_tag(&wei_md, 2, wei_dims, e->f32 ? dnnl_f32 : dnnl_bf16,
                                           dnnl_format_tag_any),
              "packed wei md");
    }
    dnnl_matmul_desc_t desc;
    dnnl_memory_desc_t bias_md;
    if (e->bias) {
        dnnl_dims_t bias_dims = {1, e->N};
        check(dnnl_memory_desc_init_by_tag(&bias_md, 2, bias_dims, dnnl_f32, dnnl_ab), "bias md");
    }
    check(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, e->bias ? &bias_md : NULL, &dst_md),
          "matmul_desc_init");
    dnnl_primitive_attr_t attr;
    check(dnnl_primitive_attr_create(&attr), "attr_create");
    if (e->beta != 0 || e->gelu) {
        dnnl_post_ops_t po;
        check(dnnl_post_ops_create(&po), "post_ops_create");
        if (e->beta != 0)
            check(dnnl_post_ops_append_sum(po, e->beta), "append_sum");
        if (e->gelu)
            check(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f),
                  "append_eltwise");
        check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL), "matmul primitive_desc");
    dnnl_primitive_attr_destroy(attr);
    if (e->packed)
        e->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    check(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
    dnnl_primitive_desc_destroy(pd);
}

static matmul_entry *lookup(const matmul_entry *want)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        matmul_entry *e = &cache[i];
        if (e->prim && e->ta == want->ta && e->tb == want->tb && e->M == want->M &&
            e->N == want->N && e->K == want->K && e->lda == want->lda && e->ldb == want->ldb &&
            e->ldc == want->ldc && e->beta == want->beta && e->bias == want->bias &&
            e->gelu == want->gelu && e->c_bf16 == want->c_bf16 && e->f32 == want->f32 &&
            e->packed == want->packed)
            return e;
    }
    matmul_entry *e = &cache[cache_next];
    cache_next = (cache_next + 1) % CACHE_SLOTS;
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    *e = *want;
    entry_make(e);
    return e;
}

/* A weight matrix in a primitive's layout. */
typedef struct {
    const void *B;          /* the weights, as the products are given them */
    dnnl_memory_desc_t md;  /* the layout */
    void *packed;
} packed_weight;

struct gemm_packs {
    pthread_mutex_t lock;
    packed_weight *w;
    size_t n, cap;
};

gemm_packs *gemm_packs_new(void)
{
    gemm_packs *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void gemm_packs_clear(gemm_packs *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        free(p->w[i].packed);
    if (p)
        p->n = 0;
}

void gemm_packs_free(gemm_packs *p)
{
    if (!p)
        return;
    gemm_packs_clear(p);
    free(p->w);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* B (laid out as plain) in the layout want, reordered into packs the first
 * time it is asked for. */
static const void *packed_weights(gemm_packs *p, const void *B, const dnnl_memory_desc_t *plain,
                                  const dnnl_memory_desc_t *want)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        if (p->w[i].B == B && dnnl_memory_desc_equal(&p->w[i].md, want)) {
            void *found = p->w[i].packed;
            pthread_mutex_unlock(&p->lock);
            return found;
        }
    size_t bytes = dnnl_memory_desc_get_size(want);
    void *packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!packed)
        die("out of memory (%zu bytes)", bytes);
    dnnl_memory_t from, to;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t reorder;
    check(dnnl_memory_create(&from, plain, engine, (void *)B), "memory_create");
    check(dnnl_memory_create(&to, want, engine, packed), "memory_create");
    check(dnnl_reorder_primitive_desc_create(&pd, plain, engine, want, engine, NULL),
          "reorder primitive_desc");
    check(dnnl_primitive_create(&reorder, pd), "reorder primitive");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    check(dnnl_primitive_execute(reorder, stream, 2, args), "reorder execute");
    check(dnnl_stream_wait(stream), "stream_wait");
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 32;
        p->w = xrealloc(p->w, p->cap * sizeof *p->w);
    }
    p->w[p->n++] = (packed_weight){B, *want, packed};
    pthread_mutex_unlock(&p->lock);
    return packed;
}

/* One product of shape at A, B, C (and bias, when the shape has one); B
 * from packs when the shape is packed. */
static void run(const matmul_entry *shape, const void *A, const void *B, void *C,
                const float *bias, gemm_packs *packs)
{
    matmul_entry *e = lookup(shape);
    dnnl_memory_desc_t md[4];
    describe(e, e->M, e->K, &md[0], &md[1], &md[2]);
    if (e->packed) {
        B = packed_weights(packs, B, &md[1], &e->wei_md);
        md[1] = e->wei_md;
    }
    int nargs = 3;
    if (e->bias) {
        dnnl_dims_t bias_dims = {1, e->N};
        check(dnnl_memory_desc_init_by_tag(&md[3], 2, bias_dims, dnnl_f32, dnnl_ab), "bias md");
        nargs = 4;
    }
    dnnl_memory_t mem[4];
    void *ptr[4] = {(void *)A, (void *)B, C, (void *)bias};
    for (int i = 0; i < nargs; i++)
        check(dnnl_memory_create(&mem[i], &md[i], engine, ptr[i]), "memory_create");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]},
                               {DNNL_ARG_DST, mem[2]}, {DNNL_ARG_BIAS, nargs == 4 ? mem[3] : NULL}};
    check(dnnl_primitive_execute(e->prim, stream, nargs, args), "matmul execute");
    check(dnnl_stream_wait(stream), "stream_wait");
    for (int i = 0; i < nargs; i++)
        dnnl_memory_destroy(mem[i]);
}

#endif

#ifdef BP_HAVE_DNNL
/* C[M, N] = op(A) op(B) + beta C through oneDNN, A and B in f32 (f32) or
 * bf16, and bias (NULL: none; only without ta) added to every row of C;
 * then, with gelu, GELU of every element.  C is f32, or bf16 with c_bf16. */
static void product(int f32, int ta, int tb, int M, int N, int K, const void *A, int lda,
                    const void *B, int ldb, float beta, void *C, int ldc, const float *bias,
                    int gelu, int c_bf16, int room, gemm_packs *packs)
{
    if (M == 0 || N == 0)
        return;
    pthread_once(&engine_once, make_engine);
    if (!stream)
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "stream_create");
    matmul_entry shape = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                          .ldc = ldc, .beta = beta, .bias = bias != NULL, .gelu = gelu,
                          .c_bf16 = c_bf16, .f32 = f32, .packed = packs && tb && !ta};
    if (ta && tb) {
        run(&shape, A, B, C, bias, packs);
        return;
    }
    /* The token dimension: M (rows of A and C), or K (rows of A and B) in a
     * weight gradient (ta), whose blocks after the first add to C. */
    size_t size = f32 ? sizeof(float) : sizeof(bf16), c_size = c_bf16 ? sizeof(bf16) : sizeof(float);
    const char *Ab = A, *Bb = B;
    char *Cb = C;
    int along_k = ta, tokens = along_k ? K : M, done = 0;
    size_t a_step = lda * size, b_step = along_k ? ldb * size : 0,
           c_step = along_k ? 0 : ldc * c_size;
    for (; done + BLOCK_ROWS <= tokens; done += BLOCK_ROWS) {
        if (along_k) {
            shape.K = BLOCK_ROWS;
            shape.beta = done ? 1.0f : beta;
        } else {
            shape.M = BLOCK_ROWS;
        }
        run(&shape, Ab + done * a_step, Bb + done * b_step, Cb + done * c_step, bias, packs);
    }
    int rows = tokens - done, padded = gemm_rows_with_room(rows);
    if (!rows)
        return;
    if (room && !along_k) {
        /* A and C have rows to spare: the padded rows in place, whatever
         * they hold (each result row depends on its own row of A only). */
        shape.M = padded;
        run(&shape, Ab + done * a_step, B, Cb + done * c_step, bias, packs);
        return;
    }
    /* A's remaining rows, zero-padded (lda: A's columns, packed). */
    int a_cols = ta ? M : K;
    pad_a = grow(pad_a, &cap_pad_a, (size_t)padded * a_cols * size, 1);
    pad_rows(pad_a, Ab + done * a_step, rows, padded, a_cols, lda, size);
    shape.lda = a_cols;
    if (along_k) {
        /* Zero rows of both operands add nothing to C. */
        pad_b = grow(pad_b, &cap_pad_b, (size_t)padded * N * size, 1);
        pad_rows(pad_b, Bb + done * b_step, rows, padded, N, ldb, size);
        shape.K = padded;
        shape.ldb = N;
        shape.beta = done ? 1.0f : beta;
        run(&shape, pad_a, pad_b, C, bias, packs);
        return;
    }
    /* C's remaining rows through scratch rows (with their old values when
     * they are added to). */
    char *c = Cb + done * c_step;
    size_t row_bytes = N * c_size;
    pad_c = grow(pad_c, &cap_pad_c, (size_t)padded * row_bytes, 1);
    for (int r = 0; r < rows && beta != 0; r++)
        memcpy(pad_c + r * row_bytes, c + (size_t)r * ldc * c_size, row_bytes);
    shape.M = padded;
    shape.ldc = N;
    run(&shape, pad_a, B, pad_c, bias, packs);
    for (int r = 0; r < rows; r++)
        memcpy(c + (size_t)r * ldc * c_size, pad_c + r * row_bytes, row_bytes);
}

/* product in bf16, A and B converted here unless A16 and B16 are given. */
static void product_bf16(int ta, int tb, int M, int N, int K, const float *A, const bf16 *A16,
                         int lda, const float *B, const bf16 *B16, int ldb, float beta, void *C,
                         int ldc, const float *bias, int gelu, int c_bf16, int room,
                         gemm_packs *packs)
{
    if (M == 0 || N == 0)
        return;
    /* (A converted here has room for the padded rows too) */
    A16 = operand(A, A16, ta ? K : M, ta ? M : K, room && !ta ? gemm_rows_with_room(M) : 0, &lda,
                  &scratch_a, &cap_a);
    /* (weights converted here are in scratch, not where packs knows them) */
    if (!B16)
        packs = NULL;
    B16 = operand(B, B16, tb ? N : K, tb ? K : N, 0, &ldb, &scratch_b, &cap_b);
    product(0, ta, tb, M, N, K, A16, lda, B16, ldb, beta, C, ldc, bias, gelu, c_bf16, room, packs);
}
#endif

void gemm(gemm_precision p, int ta, int tb, int M, int N, int K, const float *A, const bf16 *A16,
          int lda, const float *B, const bf16 *B16, int ldb, float beta, float *C, int ldc)
{
    if (p == GEMM_FP32) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#ifndef BP_HAVE_DNNL
    die("gemm: bf16 products need oneDNN, and this build has none");
#else
    product_bf16(ta, tb, M, N, K, A, A16, lda, B, B16, ldb, beta, C, ldc, NULL, 0, 0, 0, NULL);
#endif
}

void gemm_bias(gemm_precision p, int M, int N, int K, const float *A, const bf16 *A16, int lda,
               const float *B, const bf16 *B16, int ldb, const float *bias, float *C, int ldc,
               int room, gemm_packs *packs)
{
    double start = count_start();
    if (p == GEMM_FP32) {
#ifdef BP_HAVE_DNNL
        product(1, 0, 1, M, N, K, A, lda, B, ldb, 0.0f, C, ldc, bias, 0, 0, room, packs);
#else
        /* OpenBLAS has no bias: C starts as it, and the product adds to it. */
#pragma omp parallel for schedule(static) if ((size_t)M * N >= 1 << 17)
        for (int r = 0; r < M; r++)
            memcpy(C + (size_t)r * ldc, bias, N * sizeof *bias);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C,
                    ldc);
#endif
    } else {
#ifndef BP_HAVE_DNNL
        die("gemm: bf16 products need oneDNN, and this build has none");
#else
        /* oneDNN adds the bias as it writes C: one pass over C less. */
        product_bf16(0, 1, M, N, K, A, A16, lda, B, B16, ldb, 0.0f, C, ldc, bias, 0, 0, room,
                     packs);
#endif
    }
    count_end(start, M, N, K);
}

#ifndef BP_HAVE_DNNL
gemm_packs *gemm_packs_new(void)
{
    return NULL;
}

void gemm_packs_clear(gemm_packs *packs)
{
    (void)packs;
}

void gemm_packs_free(gemm_packs *packs)
{
    (void)packs;
}
#endif

int gemm_fuses_gelu(void)
{
#ifdef BP_HAVE_DNNL
    return 1;
#else
    return 0;
#endif
}

void gemm_bias_gelu(gemm_precision p, int M, int N, int K, const float *A, const bf16 *A16, int lda,
                    const float *B, const bf16 *B16, int ldb, const float *bias, void *C, int ldc,
                    int room, gemm_packs *packs)
{
#ifndef BP_HAVE_DNNL
    die("gemm: products with GELU need oneDNN, and this build has none");
#else
    double start = count_start();
    if (p == GEMM_FP32)
        product(1, 0, 1, M, N, K, A, lda, B, ldb, 0.0f, C, ldc, bias, 1, 0, room, packs);
    else
        product_bf16(0, 1, M, N, K, A, A16, lda, B, B16, ldb, 0.0f, C, ldc, bias, 1, 1, room,
                     packs);
    count_end(start, M, N, K);
#endif
}
