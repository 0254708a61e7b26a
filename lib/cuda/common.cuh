/* common.cuh - what every CUDA file of the backend shares: error checks,
 * float/bf16 conversions, reductions, launch sizes and the dropout hash.
 * Everything runs on the legacy default stream, so kernels, cuBLASLt calls
 * and copies are ordered without events. */
#ifndef BP_CUDA_COMMON_CUH
#define BP_CUDA_COMMON_CUH

#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "gpu.h"
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

/* Counter-based masks: element idx of dropout site `site` is kept when the
 * top 32 bits of a hash of (seed, site, idx) reach the threshold p * 2^32 (as
 * the CPU compares its 32-bit draws).  The backward pass recomputes the mask
 * instead of storing it.  Not the CPU's stream of draws: masks differ from
 * bert.c's, with the same distribution. */
__host__ __device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

struct dropout_site {
    uint64_t key;      /* mix64(seed, site) */
    uint32_t threshold;
    float scale;       /* 1 / (1 - p) */
};

static inline dropout_site dropout_site_make(uint64_t seed, uint64_t site, float p)
{
    dropout_site d;
    d.key = mix64(seed ^ mix64(site * 0x9e3779b97f4a7c15ULL + 1));
    d.threshold = (uint32_t)((double)p * 4294967296.0);
    d.scale = 1.0f / (1.0f - p);
    return d;
}

__device__ __forceinline__ bool dropout_keep(const dropout_site &d, uint64_t idx)
{
    return (uint32_t)(mix64(d.key + idx * 0x9e3779b97f4a7c15ULL) >> 32) >= d.threshold;
}

#endif
