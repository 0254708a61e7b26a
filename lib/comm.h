/* comm.h - the processes that train one model together (data parallelism):
 * who this process is among them and the few collectives a training step
 * needs.  Three implementations sit behind one interface:
 *   - the single process: size 1, every collective a no-op (no MPI at all);
 *   - MPI (comm_mpi.c, built when mpicc is found) for host memory, used
 *     when an MPI launcher (mpirun, mpiexec, srun) started the process;
 *   - NCCL (lib/cuda/comm_nccl.cu) for buffers in GPU memory, on top of an
 *     MPI comm, which only carries NCCL's unique id.
 * Every rank calls the collectives in the same order with the same sizes.
 * Any rank's die() ends the whole job (MPI_Abort), so that no rank waits for
 * a peer that is gone; the launcher ends the job when a rank is killed. */
#ifndef BP_COMM_H
#define BP_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

typedef struct comm comm;

/* The processes of this run: MPI's when an MPI launcher started this one,
 * else the single process.  A build without MPI started as one of several
 * ranks (OMPI_COMM_WORLD_SIZE, PMI_SIZE) dies with one line, instead of N
 * independent runs racing on the same output.  On ranks other than 0,
 * warnx() is silenced (rank 0 speaks for the job) and a fatal error's line
 * names the rank. */
comm *comm_open(int *argc, char ***argv);
/* Waits for every rank (MPI_Finalize), then frees c. */
void comm_close(comm *c);

/* NULL stands for the single process in every call below. */
int comm_rank(const comm *c);
int comm_size(const comm *c);
/* Ranks on this machine, and this one's index among them (its GPU). */
int comm_local_rank(const comm *c);
int comm_local_size(const comm *c);
/* 1 when an MPI launcher started the run (even as a single rank). */
int comm_is_mpi(const comm *c);

/* ---- collectives on host memory ----------------------------------------- */

/* bytes of buf from rank 0 to every rank. */
void comm_bcast(comm *c, void *buf, size_t bytes);
/* The sum over the ranks, the same on every rank. */
double comm_sum(comm *c, double x);
/* The largest x (x >= 0) of the ranks. */
long comm_max(comm *c, long x);
/* Nonzero on every rank when flag is nonzero on any. */
int comm_any(comm *c, int flag);
void comm_barrier(comm *c);
/* 1 when h is the same on every rank (e.g. a digest of the weights). */
int comm_same(comm *c, uint64_t h);

/* Rank 0's training rows (read from files or standard input) to every rank:
 * d is rank 0's on rank 0, and filled (as train_data_read leaves it, but
 * for the text table, which only reading uses) on the others. */
void comm_share_train_data(comm *c, train_data *d);

/* ---- collectives on float buffers (GPU memory when on_gpu) -------------- */

/* In place: rank r's floats buf[displs[r] .. displs[r] + counts[r]) reach
 * every rank (counts may be 0). */
void comm_allgatherv(comm *c, float *buf, const size_t *counts, const size_t *displs, int on_gpu);
/* In place: buf[0..n) becomes the sum over the ranks. */
void comm_allreduce(comm *c, float *buf, size_t n, int on_gpu);

/* GPU buffers go through NCCL from here on (also for a single rank, whose
 * collectives then run NCCL's path on one GPU: mnr-train does it for any
 * run started by mpirun): selects the GPU of this local rank (before any
 * other CUDA call) and sets up the NCCL communicator.  Dies when the build
 * has no NCCL and there are several ranks. */
void comm_use_gpu(comm *c);

/* Since comm_open: collective calls, bytes each rank sent into them (its
 * share of a gather, the whole buffer of a reduction), seconds spent in
 * them, and of those the seconds the gathers and reductions of floats waited
 * for the last rank to arrive (a barrier before each: what is left is the
 * transfer). */
typedef struct {
    long calls;
    double bytes, seconds, waiting;
} comm_stats;
comm_stats comm_get_stats(const comm *c);

/* Rank r's share of a batch of B rows split over n ranks as evenly as
 * possible: rows *first .. *first + *count - 1 (the first B % n ranks take
 * one row more; *count may be 0). */
void comm_slice(int B, int n, int r, int *first, int *count);

/* ---- the implementations ------------------------------------------------ */

typedef struct {
    void (*bcast)(comm *c, void *buf, size_t bytes);
    void (*allreduce_double)(comm *c, double *x, int n);
    void (*allreduce_max_u64)(comm *c, uint64_t *x, int n);
    void (*barrier)(comm *c);
    void (*allgatherv)(comm *c, float *buf, const size_t *counts, const size_t *displs);
    void (*allreduce)(comm *c, float *buf, size_t n);
    void (*close)(comm *c);
} comm_ops;

struct comm {
    int rank, size, local_rank, local_size, mpi;
    const comm_ops *host;  /* MPI */
    const comm_ops *gpu;   /* NCCL, after comm_use_gpu */
    void *host_impl, *gpu_impl;
    comm_stats stats;
};

/* Set up c as MPI's comm (comm_mpi.c): 0, or -1 in a build without MPI. */
int comm_mpi_init(comm *c, int *argc, char ***argv);
/* Attach NCCL (lib/cuda/comm_nccl.cu): 0, or -1 in a build without it. */
int comm_nccl_init(comm *c);

#endif
