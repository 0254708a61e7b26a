/* matmul.cu - every matrix product of the backend through cuBLASLt, with the
 * algorithm chosen by cuBLASLt's heuristic once per bucket of shapes and
 * cached (matmul_plan.h); plus the error-checking helpers of common.cuh. */
#include "backend.cuh"
#include "matmul_plan.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

void cuda_launch_check(const char *file, int line)
{
    static int sync = -1;
    if (sync < 0) {
        const char *s = getenv("BP_CUDA_SYNC");
        sync = s && *s && strcmp(s, "0") != 0;
    }
    cuda_check(cudaGetLastError(), file, line);
    if (sync)
        cuda_check(cudaDeviceSynchronize(), file, line);
}

void *cuda_alloc(size_t bytes, const char *what)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        die("cuda: cannot allocate %zu bytes of device memory for %s: %s", bytes, what,
            cudaGetErrorString(e));
    return p;
}

void cuda_free(void *p)
{
    if (p)
        CUDA_CHECK(cudaFree(p));
}

/* 32 MiB, what cuBLAS recommends for Hopper.  The handle and the workspace
 * are made on first use and kept for the life of the process. */
static const size_t WORKSPACE_BYTES = (size_t)32 << 20;

static cublasLtHandle_t lt;
static void *workspace;

/* The plan cache (matmul_plan.h): the heuristic's choice per key, and the
 * last actual shapes it was checked against (cublasLtMatmulAlgoCheck), so
 * that the layers and the columns of a batch, which repeat the same few
 * shapes, check each once. */
enum { REMEMBERED = 4 };

/* The exact keys of the last REMEMBERED shapes (exact = 0: none). */
struct shape_memo {
    matmul_plan_key key[REMEMBERED];
    int next;

    bool has(const matmul_plan_key &k) const
    {
        for (int i = 0; i < REMEMBERED; i++)
            if (matmul_plan_key_equal(&key[i], &k))
                return true;
        return false;
    }
    void add(const matmul_plan_key &k)
    {
        key[next] = k;
        next = (next + 1) % REMEMBERED;
    }
    void drop(const matmul_plan_key &k)
    {
        for (int i = 0; i < REMEMBERED; i++)
            if (matmul_plan_key_equal(&key[i], &k))
                memset(&key[i], 0, sizeof key[i]);
    }
};

struct plan {
    matmul_plan_key key;
    cublasLtMatmulAlgo_t algo;
    shape_memo fits, refused; /* shapes its algorithm was found to fit, and not to */
};

enum { MAX_PLANS = 1024 };
static plan plans[MAX_PLANS];
static int nplans, next_evict;

/* What the cache did, printed at exit when BP_CUDA_PLAN_STATS=1. */
static struct {
    long products, queries, exact_queries, checks, refused;
} stats;

static void print_plan_stats(void)
{
    fprintf(stderr,
            "cuda: matmul plans: %ld products, %ld heuristic queries (%ld for exact shapes), "
            "%ld algorithm checks (%ld refused), %d plans cached\n",
            stats.products, stats.queries, stats.exact_queries, stats.checks, stats.refused,
            nplans);
}

static cudaDataType_t cuda_type(elem_type t)
{
    return t == DT_F32 ? CUDA_R_32F : CUDA_R_16BF;
}

static size_t type_size(elem_type t)
{
    return t == DT_F32 ? 4 : 2;
}

/* The operation descriptor for each combination of transposes, result type
 * and bias epilogue, made once; the bias pointer is set for each product. */
static cublasLtMatmulDesc_t op_desc(int transA, int transB, elem_type tc, const void *bias)
{
    static cublasLtMatmulDesc_t descs[2][2][2][2];
    cublasLtMatmulDesc_t *d = &descs[!!transA][!!transB][tc == DT_F32][bias != NULL];
    if (!*d) {
        CUBLAS_CHECK(cublasLtMatmulDescCreate(d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        /* cuBLAS's first operand is B, its second A (see matmul). */
        cublasOperation_t op_first = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasOperation_t op_second = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                    sizeof op_first));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                    sizeof op_second));
        if (bias) {
            cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
            cudaDataType_t bias_type = cuda_type(tc);
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                        sizeof epi));
            CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                        &bias_type, sizeof bias_type));
        }
    }
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
    return *d;
}

/* A bias vector of n bytes at an address the epilogue cannot take (not
 * 16-byte aligned), copied to a buffer that it can.  Everything runs on the
 * default stream, so the copy for one product follows the previous product
 * that read the buffer. */
static const void *aligned_bias(const void *bias, size_t n)
{
    static void *buf;
    static size_t cap;
    if (n > cap) {
        if (buf) {
            CUDA_CHECK(cudaDeviceSynchronize()); /* a queued product may still read it */
            cuda_free(buf);
        }
        cap = n;
        buf = cuda_alloc(cap, "an aligned copy of a bias vector");
    }
    CUDA_CHECK(cudaMemcpyAsync(buf, bias, n, cudaMemcpyDeviceToDevice, 0));
    return buf;
}

static void set_layout_batch(cublasLtMatrixLayout_t l, int batch, long long stride)
{
    if (batch <= 1)
        return;
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                                                  sizeof batch));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                  &stride, sizeof stride));
}

/* The column-major layouts of a product of the key's or the shape's
 * dimensions: first = B^T as stored, second = A^T as stored, out = C^T. */
struct layouts {
    cublasLtMatrixLayout_t first, second, out;

    layouts(elem_type tab, elem_type tc, int M, int N, int K, int transA, int transB, int batch,
            long long stride_a, long long stride_b, long long stride_c)
    {
        uint64_t first_rows = transB ? K : N, first_cols = transB ? N : K;
        uint64_t second_rows = transA ? M : K, second_cols = transA ? K : M;
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&first, cuda_type(tab), first_rows, first_cols,
                                                (int64_t)first_rows));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&second, cuda_type(tab), second_rows, second_cols,
                                                (int64_t)second_rows));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out, cuda_type(tc), N, M, N));
        set_layout_batch(first, batch, stride_b);
        set_layout_batch(second, batch, stride_a);
        set_layout_batch(out, batch, stride_c);
    }
    ~layouts()
    {
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(first));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(second));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(out));
    }
};

/* The heuristic's best algorithm for op on layouts l with the key's
 * alignments, or a fatal error naming the product when it has none. */
static cublasLtMatmulAlgo_t query(cublasLtMatmulDesc_t op, const layouts &l,
                                  const matmul_plan_key &key, const matmul_args &m)
{
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &WORKSPACE_BYTES, sizeof WORKSPACE_BYTES));
    uint32_t al[3] = {key.align_b, key.align_a, key.align_c}; /* first, second, C/D */
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]));
    cublasLtMatmulHeuristicResult_t heur;
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, op, l.first, l.second, l.out, l.out,
                                                       pref, 1, &heur, &nres);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    stats.queries++;
    stats.exact_queries += key.exact;
    if (st != CUBLAS_STATUS_SUCCESS || nres < 1)
        die("cuda: cuBLASLt has no algorithm for a %dx%dx%d product (%s %dx%dx%d, batch %d, %s "
            "operands, %s result%s, alignments %u/%u/%u): %s", m.M, m.N, m.K,
            key.exact ? "asked as it is," : "asked for its bucket", key.M, key.N, key.K, key.batch,
            m.tab == DT_F32 ? "fp32" : "bf16", m.tc == DT_F32 ? "fp32" : "bf16",
            m.bias ? ", bias" : "", key.align_a, key.align_b, key.align_c,
            st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "none found");
    return heur.algo;
}

static plan *find(const matmul_plan_key &key)
{
    for (int i = 0; i < nplans; i++)
        if (matmul_plan_key_equal(&plans[i].key, &key))
            return &plans[i];
    return NULL;
}

static plan *insert(const matmul_plan_key &key, const cublasLtMatmulAlgo_t &algo)
{
    int slot = nplans < MAX_PLANS ? nplans++ : next_evict++ % MAX_PLANS;
    plans[slot].key = key;
    plans[slot].algo = algo;
    memset(&plans[slot].fits, 0, sizeof plans[slot].fits);
    memset(&plans[slot].refused, 0, sizeof plans[slot].refused);
    return &plans[slot];
}

/* The plan for exact, the product's own shape: the heuristic's choice for
 * it, asked once. */
static plan *exact_plan(cublasLtMatmulDesc_t op, const layouts &l, const matmul_plan_key &exact,
                        const matmul_args &m)
{
    plan *own = find(exact);
    if (!own) {
        own = insert(exact, query(op, l, exact, m));
        own->fits.add(exact);
    }
    return own;
}

/* cuBLAS is column-major: the row-major C[M, N] is the column-major C^T
 * [N, M] = op(B)^T op(A)^T, so B is passed as cuBLAS's first operand and A as
 * its second, each stored as the transpose of what row-major code sees. */
void matmul(const matmul_args &m)
{
    if (!lt) {
        CUBLAS_CHECK(cublasLtCreate(&lt));
        workspace = cuda_alloc(WORKSPACE_BYTES, "the cuBLASLt workspace");
        const char *s = getenv("BP_CUDA_PLAN_STATS");
        if (s && *s && strcmp(s, "0") != 0)
            atexit(print_plan_stats);
    }
    stats.products++;
    int batch = m.batch > 1 ? m.batch : 1;
    const void *bias = m.bias;
    if (bias && !plan_bias_aligned(bias))
        bias = aligned_bias(bias, (size_t)m.N * type_size(m.tc));
    cublasLtMatmulDesc_t op = op_desc(m.transA, m.transB, m.tc, bias);

    matmul_shape s;
    memset(&s, 0, sizeof s);
    s.M = m.M;
    s.N = m.N;
    s.K = m.K;
    s.transA = m.transA;
    s.transB = m.transB;
    s.batch = batch;
    s.stride_a = m.stride_a;
    s.stride_b = m.stride_b;
    s.stride_c = m.stride_c;
    s.tab = m.tab;
    s.tc = m.tc;
    s.ab_bytes = type_size(m.tab);
    s.c_bytes = type_size(m.tc);
    s.a = m.a;
    s.b = m.b;
    s.c = m.c;
    s.bias = bias;
    matmul_plan_key key = matmul_plan_key_make(&s, 0), exact = matmul_plan_key_make(&s, 1);
    layouts l(m.tab, m.tc, m.M, m.N, m.K, m.transA, m.transB, batch, m.stride_a, m.stride_b,
              m.stride_c);

    plan *p = find(key);
    if (!p) {
        /* Chosen for the bucket's shape, packed batches. */
        layouts lb(m.tab, m.tc, key.M, key.N, key.K, m.transA, m.transB, key.batch,
                   (long long)key.M * key.K, (long long)key.K * key.N, (long long)key.M * key.N);
        p = insert(key, query(op, lb, key, m));
    }
    if (!p->fits.has(exact)) {
        int fits = 0;
        if (!p->refused.has(exact)) {
            cublasLtMatmulHeuristicResult_t r;
            memset(&r, 0, sizeof r);
            cublasStatus_t st = cublasLtMatmulAlgoCheck(lt, op, l.first, l.second, l.out, l.out,
                                                        &p->algo, &r);
            stats.checks++;
            fits = st == CUBLAS_STATUS_SUCCESS && r.workspaceSize <= WORKSPACE_BYTES;
            if (fits)
                p->fits.add(exact);
            else {
                stats.refused++;
                p->refused.add(exact);
            }
        }
        if (!fits)
            p = exact_plan(op, l, exact, m);
    }
    cublasStatus_t st = cublasLtMatmul(lt, op, &m.alpha, m.b, l.first, m.a, l.second, &m.beta, m.c,
                                       l.out, m.c, l.out, &p->algo, workspace, WORKSPACE_BYTES, 0);
    if (st != CUBLAS_STATUS_SUCCESS && !p->key.exact) {
        /* Refused at launch although the check passed: the bucket's
         * algorithm is not used for this shape again. */
        stats.refused++;
        p->fits.drop(exact);
        p->refused.add(exact);
        p = exact_plan(op, l, exact, m);
        st = cublasLtMatmul(lt, op, &m.alpha, m.b, l.first, m.a, l.second, &m.beta, m.c, l.out,
                            m.c, l.out, &p->algo, workspace, WORKSPACE_BYTES, 0);
    }
    CUBLAS_CHECK(st);
}
