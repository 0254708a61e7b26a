/* common.cuh - what every CUDA file of the backend shares: error checks,
 * float/bf16 conversions, reductions, launch sizes and dropout masks.
 * Everything runs on the legacy default stream, so kernels, cuBLASLt calls
 * and copies are ordered without events. */
#ifndef BP_CUDA_COMMON_CUH
#define BP_CUDA_COMMON_CUH

#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "dropout.h"

extern "C" {
#include "gpu.h"
#include "loss.h"
#include "util.h"
}

typedef __nv_bfloat16 bf16;

/* Fatal CUDA and cuBLAS errors, named by the file and line of the call. */
static inline void cuda_check(cudaError_t e, const char *file, int line)
{
    if (e != cudaSuccess)
        die("cuda: %s:%d: %s", file, line, cudaGetErrorString(e));
}

static inline void cublas_check(cublasStatus_t s, const char *file, int line)
{
    if (s != CUBLAS_STATUS_SUCCESS)
        die("cuda: %s:%d: cuBLAS: %s", file, line, cublasGetStatusString(s));
}

#define CUDA_CHECK(call) cuda_check((call), __FILE__, __LINE__)
#define CUBLAS_CHECK(call) cublas_check((call), __FILE__, __LINE__)

/* After each kernel launch: a bad configuration is reported here.  With
 * BP_CUDA_SYNC=1 in the environment every launch is also waited for, so that
 * a fault is reported at the kernel that caused it (for debugging). */
void cuda_launch_check(const char *file, int line);
#define LAUNCH_CHECK() cuda_launch_check(__FILE__, __LINE__)

/* Device memory that dies on failure, naming what it was for. */
void *cuda_alloc(size_t bytes, const char *what);
void cuda_free(void *p);

/* ---- element types ------------------------------------------------------ */

__device__ __forceinline__ float to_f(float x)
{
    return x;
}

__device__ __forceinline__ float to_f(bf16 x)
{
    return __bfloat162float(x);
}

template <class T> __device__ __forceinline__ T from_f(float x);

template <> __device__ __forceinline__ float from_f<float>(float x)
{
    return x;
}

template <> __device__ __forceinline__ bf16 from_f<bf16>(float x)
{
    return __float2bfloat16(x); /* round to nearest even */
}

/* ---- reductions ---------------------------------------------------------- */

template <class V> __device__ __forceinline__ V warp_sum(V x)
{
    for (int o = 16; o > 0; o >>= 1)
        x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

/* Sum over a block of at most 1024 threads (a multiple of 32); every thread
 * gets the result.  The order is fixed, so the result is deterministic. */
template <class V> __device__ V block_sum(V x)
{
    __shared__ V part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    x = warp_sum(x);
    __syncthreads(); /* part may still be read by a previous call */
    if (lane == 0)
        part[warp] = x;
    __syncthreads();
    V s = lane < nwarps ? part[lane] : V(0);
    return warp_sum(s);
}

/* ---- launch sizes -------------------------------------------------------- */

enum { THREADS = 256, WARPS_PER_BLOCK = THREADS / 32 };

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned grid_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    const size_t max_blocks = (size_t)1 << 18;
    return b < 1 ? 1 : b > max_blocks ? (unsigned)max_blocks : (unsigned)b;
}

/* Blocks for one warp per row. */
static inline unsigned grid_for_rows(size_t rows)
{
    return (unsigned)((rows + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK);
}

#define GRID_STRIDE(i, n)                                                                        \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                      \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- dropout ------------------------------------------------------------- */

/* Masks are dropout.h's function of position, the same as the CPU's; the
 * backward pass recomputes them instead of storing them.  A site of a pass:
 * everything the keep decision of element i of a [rows, width] activation
 * (hidden sites) or of the [B * heads, Tp, Tp] probabilities (attention)
 * needs. */
struct dropout_mask {
    uint64_t seed, step;
    uint32_t layer, site, threshold;
    float scale;                  /* 1 / (1 - p) */
    const int32_t *row, *column;  /* [sequences]: the dropout keys */
    const int32_t *seq, *pos;     /* [tokens]: sequence and position of each row */
    const int *start;             /* [sequences + 1] */
    int width;                    /* H for hidden sites, heads for attention */
    int Tp;                       /* attention: padded length */
};

__device__ __forceinline__ bool dropout_keep_at(const dropout_mask &d, size_t i)
{
    if (d.site != DROP_ATTENTION) {
        size_t r = i / d.width;
        int s = d.seq[r];
        uint64_t key = dropout_key(d.seed, d.step, d.row[s], d.column[s], d.layer, d.site);
        return dropout_keep(key, (uint64_t)d.pos[r] * d.width + i % d.width, d.threshold);
    }
    size_t per = (size_t)d.Tp * d.Tp, bh = i / per;
    int q = (int)(i / d.Tp % d.Tp), k = (int)(i % d.Tp);
    int b = (int)(bh / d.width), h = (int)(bh % d.width), n = d.start[b + 1] - d.start[b];
    if (q >= n || k >= n)
        return false; /* padding: its probabilities are zero */
    uint64_t key = dropout_key(d.seed, d.step, d.row[b], d.column[b], d.layer, DROP_ATTENTION);
    return dropout_keep(key, ((uint64_t)h * n + q) * n + k, d.threshold);
}

#endif
