/* matmul.cu - every matrix product of the backend through cuBLASLt, with the
 * algorithm chosen by cuBLASLt's heuristic once per shape and cached; plus
 * the error-checking helpers of common.cuh. */
#include "backend.cuh"

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

/* The heuristic's choice for one problem: the shape, the types, the
 * operations, the epilogue and the alignments it was asked with. */
struct plan_key {
    int M, N, K, transA, transB, tc, tab, bias, batch;
    long long stride_a, stride_b, stride_c;
    unsigned align_a, align_b, align_c;
};

struct plan {
    plan_key key;
    cublasLtMatmulAlgo_t algo;
};

enum { MAX_PLANS = 512 };
static plan plans[MAX_PLANS];
static int nplans, next_evict;

static cudaDataType_t cuda_type(elem_type t)
{
    return t == DT_F32 ? CUDA_R_32F : CUDA_R_16BF;
}

static size_t type_size(elem_type t)
{
    return t == DT_F32 ? 4 : 2;
}

/* Largest power of two (up to 256) dividing the address of every matrix of
 * a batch: cuBLASLt may pick kernels assuming 256-byte alignment otherwise. */
static unsigned alignment(const void *p, long long stride, size_t esize, int batch)
{
    uintptr_t x = (uintptr_t)p | 256;
    if (batch > 1)
        x |= (uintptr_t)(stride * (long long)esize);
    return (unsigned)(x & (~x + 1));
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

/* cuBLAS is column-major: the row-major C[M, N] is the column-major C^T
 * [N, M] = op(B)^T op(A)^T, so B is passed as cuBLAS's first operand and A as
 * its second, each stored as the transpose of what row-major code sees. */
void matmul(const matmul_args &m)
{
    if (!lt) {
        CUBLAS_CHECK(cublasLtCreate(&lt));
        workspace = cuda_alloc(WORKSPACE_BYTES, "the cuBLASLt workspace");
    }
    size_t sab = type_size(m.tab), sc = type_size(m.tc);
    int batch = m.batch > 1 ? m.batch : 1;

    cublasLtMatmulDesc_t op;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t op_first = m.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = m.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                sizeof op_first));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                sizeof op_second));
    if (m.bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bias_type = cuda_type(m.tc);
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &m.bias, sizeof m.bias));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bias_type, sizeof bias_type));
    }

    /* Column-major shapes: first = B^T as stored, second = A^T as stored. */
    cublasLtMatrixLayout_t first, second, out;
    uint64_t first_rows = m.transB ? m.K : m.N, first_cols = m.transB ? m.N : m.K;
    uint64_t second_rows = m.transA ? m.M : m.K, second_cols = m.transA ? m.K : m.M;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&first, cuda_type(m.tab), first_rows, first_cols,
                                            (int64_t)first_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&second, cuda_type(m.tab), second_rows, second_cols,
                                            (int64_t)second_rows));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out, cuda_type(m.tc), m.N, m.M, m.N));
    set_layout_batch(first, batch, m.stride_b);
    set_layout_batch(second, batch, m.stride_a);
    set_layout_batch(out, batch, m.stride_c);

    plan_key key;
    memset(&key, 0, sizeof key);
    key.M = m.M;
    key.N = m.N;
    key.K = m.K;
    key.transA = m.transA;
    key.transB = m.transB;
    key.tc = m.tc;
    key.tab = m.tab;
    key.bias = m.bias != NULL;
    key.batch = batch;
    if (batch > 1) {
        key.stride_a = m.stride_a;
        key.stride_b = m.stride_b;
        key.stride_c = m.stride_c;
    }
    key.align_a = alignment(m.a, m.stride_a, sab, batch);
    key.align_b = alignment(m.b, m.stride_b, sab, batch);
    key.align_c = alignment(m.c, m.stride_c, sc, batch);
    if (m.bias) {
        unsigned align_bias = alignment(m.bias, 0, sc, 1);
        key.align_c = key.align_c < align_bias ? key.align_c : align_bias;
    }

    const plan *found = NULL;
    for (int i = 0; i < nplans && !found; i++)
        if (!memcmp(&plans[i].key, &key, sizeof key))
            found = &plans[i];
    if (!found) {
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
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, op, first, second, out, out,
                                                           pref, 1, &heur, &nres);
        CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        if (st != CUBLAS_STATUS_SUCCESS || nres < 1)
            die("cuda: cuBLASLt has no algorithm for a %dx%dx%d product (batch %d, %s operands, "
                "%s result%s, alignments %u/%u/%u): %s", m.M, m.N, m.K, batch,
                m.tab == DT_F32 ? "fp32" : "bf16", m.tc == DT_F32 ? "fp32" : "bf16",
                m.bias ? ", bias" : "", key.align_a, key.align_b, key.align_c,
                st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "none found");
        int slot = nplans < MAX_PLANS ? nplans++ : next_evict++ % MAX_PLANS;
        plans[slot].key = key;
        plans[slot].algo = heur.algo;
        found = &plans[slot];
    }

    CUBLAS_CHECK(cublasLtMatmul(lt, op, &m.alpha, m.b, first, m.a, second, &m.beta, m.c, out,
                                m.c, out, &found->algo, workspace, WORKSPACE_BYTES, 0));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(first));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(second));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(out));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
}
