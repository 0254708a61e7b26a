/* gemm.c - gemm.h: OpenBLAS for fp32, oneDNN's matmul primitive for bf16.
 *
 * oneDNN primitives are made for one shape; each thread keeps the ones it
 * made for the shapes it has seen (an encoder has a handful per batch
 * size), with the memory objects whose data pointers change per call.  The
 * embedding workers each run their own products single-threaded (they call
 * from inside an OpenMP region, where oneDNN's OpenMP does not nest). */
#include "gemm.h"
#include "util.h"
#include "vmath.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
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
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        return 1;
#endif
    if (why)
        *why = "this CPU has no AVX512_BF16";
    return 0;
}

MULTIVERSIONED static void to_bf16(bf16 *restrict out, const float *restrict in, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &in[i], sizeof u);
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        out[i] = (bf16)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r);
    }
}

void bf16_from_float(bf16 *out, const float *in, size_t n)
{
    enum { CHUNK = 1 << 16 };
    size_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (size_t c = 0; c < chunks; c++) {
        size_t i = c * CHUNK;
        to_bf16(out + i, in + i, n - i < CHUNK ? n - i : CHUNK);
    }
}

/* rows x cols of in (ld apart) packed into out (cols apart). */
static void pack_bf16(bf16 *out, const float *in, int rows, int cols, int ld)
{
    if (ld == cols) {
        bf16_from_float(out, in, (size_t)rows * cols);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= 1 << 17)
    for (int r = 0; r < rows; r++)
        to_bf16(out + (size_t)r * cols, in + (size_t)r * ld, cols);
}

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

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float beta;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
} matmul_entry;

enum { CACHE_SLOTS = 48 };

/* Per thread: its stream and its primitives (replaced round-robin). */
static _Thread_local dnnl_stream_t stream;
static _Thread_local matmul_entry cache[CACHE_SLOTS];
static _Thread_local int cache_next;
static _Thread_local bf16 *scratch_a, *scratch_b;
static _Thread_local size_t cap_a, cap_b;

static bf16 *scratch(bf16 **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        free(*buf);
        *buf = xmallocarray(n, sizeof **buf);
        *cap = n;
    }
    return *buf;
}

static void entry_free(matmul_entry *e)
{
    if (!e->prim)
        return;
    dnnl_primitive_destroy(e->prim);
    dnnl_memory_destroy(e->src);
    dnnl_memory_destroy(e->wei);
    dnnl_memory_destroy(e->dst);
    e->prim = NULL;
}

static void entry_make(matmul_entry *e)
{
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_dims_t src_dims = {e->M, e->K}, wei_dims = {e->K, e->N}, dst_dims = {e->M, e->N};
    dnnl_dims_t src_strides = {e->ta ? 1 : e->lda, e->ta ? e->lda : 1};
    dnnl_dims_t wei_strides = {e->tb ? 1 : e->ldb, e->tb ? e->ldb : 1};
    dnnl_dims_t dst_strides = {e->ldc, 1};
    check(dnnl_memory_desc_init_by_strides(&src_md, 2, src_dims, dnnl_bf16, src_strides), "src md");
    check(dnnl_memory_desc_init_by_strides(&wei_md, 2, wei_dims, dnnl_bf16, wei_strides), "wei md");
    check(dnnl_memory_desc_init_by_strides(&dst_md, 2, dst_dims, dnnl_f32, dst_strides), "dst md");
    dnnl_matmul_desc_t desc;
    check(dnnl_matmul_desc_init(&desc, &src_md, &wei_md, NULL, &dst_md), "matmul_desc_init");
    dnnl_primitive_attr_t attr;
    check(dnnl_primitive_attr_create(&attr), "attr_create");
    if (e->beta != 0) {
        dnnl_post_ops_t po;
        check(dnnl_post_ops_create(&po), "post_ops_create");
        check(dnnl_post_ops_append_sum(po, e->beta), "append_sum");
        check(dnnl_primitive_attr_set_post_ops(attr, po), "set_post_ops");
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    check(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL), "matmul primitive_desc");
    dnnl_primitive_attr_destroy(attr);
    check(dnnl_primitive_create(&e->prim, pd), "matmul primitive");
    dnnl_primitive_desc_destroy(pd);
    check(dnnl_memory_create(&e->src, &src_md, engine, DNNL_MEMORY_NONE), "memory");
    check(dnnl_memory_create(&e->wei, &wei_md, engine, DNNL_MEMORY_NONE), "memory");
    check(dnnl_memory_create(&e->dst, &dst_md, engine, DNNL_MEMORY_NONE), "memory");
}

static matmul_entry *lookup(int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc,
                            float beta)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        matmul_entry *e = &cache[i];
        if (e->prim && e->ta == ta && e->tb == tb && e->M == M && e->N == N && e->K == K &&
            e->lda == lda && e->ldb == ldb && e->ldc == ldc && e->beta == beta)
            return e;
    }
    matmul_entry *e = &cache[cache_next];
    cache_next = (cache_next + 1) % CACHE_SLOTS;
    entry_free(e);
    *e = (matmul_entry){ta, tb, M, N, K, lda, ldb, ldc, beta, NULL, NULL, NULL, NULL};
    entry_make(e);
    return e;
}

void gemm(gemm_precision p, int ta, int tb, int M, int N, int K, const float *A, const bf16 *A16,
          int lda, const float *B, const bf16 *B16, int ldb, float beta, float *C, int ldc)
{
    if (p == GEMM_FP32) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (M == 0 || N == 0)
        return;
    pthread_once(&engine_once, make_engine);
    if (!stream)
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags), "stream_create");
    if (!A16) {
        int rows = ta ? K : M, cols = ta ? M : K;
        bf16 *a = scratch(&scratch_a, &cap_a, (size_t)rows * cols);
        pack_bf16(a, A, rows, cols, lda);
        A16 = a;
        lda = cols;
    }
    if (!B16) {
        int rows = tb ? N : K, cols = tb ? K : N;
        bf16 *b = scratch(&scratch_b, &cap_b, (size_t)rows * cols);
        pack_bf16(b, B, rows, cols, ldb);
        B16 = b;
        ldb = cols;
    }
    matmul_entry *e = lookup(ta, tb, M, N, K, lda, ldb, ldc, beta);
    check(dnnl_memory_set_data_handle(e->src, (void *)A16), "set_data_handle");
    check(dnnl_memory_set_data_handle(e->wei, (void *)B16), "set_data_handle");
    check(dnnl_memory_set_data_handle(e->dst, C), "set_data_handle");
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, e->wei}, {DNNL_ARG_DST, e->dst}};
    check(dnnl_primitive_execute(e->prim, stream, 3, args), "matmul execute");
    check(dnnl_stream_wait(stream), "stream_wait");
}
