/* comm_nccl.cu - comm.h's collectives on GPU memory through NCCL (built with
 * BP_HAVE_NCCL, when the CUDA toolkit has nccl.h): one GPU per rank, the
 * local rank's; MPI only carries NCCL's unique id from rank 0 to the others
 * (as llm.c does).  Everything runs on the legacy default stream, as the rest
 * of the backend, and each call waits for its result (the trainer reads the
 * buffers right after).  Compiles here; has not run on a GPU yet. */
#include "common.cuh"

extern "C" {
#include "comm.h"
}

#ifdef BP_HAVE_NCCL

#include <nccl.h>

static void nccl_check(ncclResult_t r, const char *file, int line)
{
    if (r != ncclSuccess)
        die("nccl: %s:%d: %s", file, line, ncclGetErrorString(r));
}
#define NCCL_CHECK(call) nccl_check((call), __FILE__, __LINE__)

static ncclComm_t nccl_of(comm *c)
{
    return (ncclComm_t)c->gpu_impl;
}

static void nccl_allgatherv(comm *c, float *buf, const size_t *counts, const size_t *displs)
{
    /* NCCL has no all-gather of unequal blocks: each rank broadcasts its own
     * block in place, grouped into one launch. */
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < c->size; r++)
        if (counts[r])
            NCCL_CHECK(ncclBroadcast(buf + displs[r], buf + displs[r], counts[r], ncclFloat, r,
                                     nccl_of(c), 0));
    NCCL_CHECK(ncclGroupEnd());
    CUDA_CHECK(cudaStreamSynchronize(0));
}

static void nccl_allreduce(comm *c, float *buf, size_t n)
{
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, nccl_of(c), 0));
    CUDA_CHECK(cudaStreamSynchronize(0));
}

static void nccl_close(comm *c)
{
    ncclCommDestroy(nccl_of(c));
}

static const comm_ops nccl_ops = {
    NULL, NULL, NULL, NULL, nccl_allgatherv, nccl_allreduce, nccl_close,
};

extern "C" int comm_nccl_init(comm *c)
{
    int devices = 0;
    CUDA_CHECK(cudaGetDeviceCount(&devices));
    if (devices < 1)
        die("--device cuda: no CUDA device on this machine");
    if (c->local_size > devices)
        die("%d ranks on this machine but %d GPU%s: one GPU per rank", c->local_size, devices,
            devices == 1 ? "" : "s");
    CUDA_CHECK(cudaSetDevice(c->local_rank));
    ncclUniqueId id;
    if (c->rank == 0)
        NCCL_CHECK(ncclGetUniqueId(&id));
    if (c->size > 1)
        c->host->bcast(c, &id, sizeof id);
    ncclComm_t nc;
    NCCL_CHECK(ncclCommInitRank(&nc, c->size, id, c->rank));
    c->gpu_impl = nc;
    c->gpu = &nccl_ops;
    return 0;
}

#endif
