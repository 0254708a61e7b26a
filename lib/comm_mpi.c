/* comm_mpi.c - comm.h over MPI, for host memory (built with BP_HAVE_MPI,
 * which the Makefile sets when it finds mpicc).
 *
 * Waiting: a rank that waits for its peers (rank 0 reading the input,
 * writing a checkpoint or evaluating, a slower rank) polls a non-blocking
 * request with short sleeps after the first millisecond instead of spinning
 * at full speed as MPI's blocking calls do, so that waiting ranks leave the
 * cores to the ranks computing when they share a machine (and the ranks' CPU
 * time is their work).  The large transfers (gathers and reductions of
 * floats) come after a barrier that every rank has passed (comm.c), so they
 * use the blocking calls: polling slows them down (438 MB on 2 ranks here:
 * 1.34 s blocking, 1.69 s polled with sleeps). */
#include "comm.h"
#include "util.h"

#ifdef BP_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Elements per MPI call: MPI counts are int. */
#define CHUNK (1 << 28)

static int world_rank;

static void wait_for(MPI_Request *req)
{
    double t0 = now_seconds();
    long pause_ns = 10000;
    for (;;) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        if (now_seconds() - t0 > 1e-3) {
            struct timespec ts = {0, pause_ns};
            nanosleep(&ts, NULL);
            if (pause_ns < 200000)
                pause_ns *= 2;
        }
    }
}

static void mpi_bcast(comm *c, void *buf, size_t bytes)
{
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_Request r;
        MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &r);
        wait_for(&r);
    }
}

static void mpi_allreduce_double(comm *c, double *x, int n)
{
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    wait_for(&r);
}

static void mpi_allreduce_max_u64(comm *c, uint64_t *x, int n)
{
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, x, n, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &r);
    wait_for(&r);
}

static void mpi_barrier(comm *c)
{
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait_for(&r);
}

static void mpi_allgatherv(comm *c, float *buf, const size_t *counts, const size_t *displs)
{
    int *cnt = xmallocarray(c->size, sizeof *cnt), *dsp = xmallocarray(c->size, sizeof *dsp);
    for (int r = 0; r < c->size; r++) {
        if (counts[r] > INT_MAX || displs[r] > INT_MAX)
            die("comm: a gathered block of %zu floats at %zu is too large for MPI", counts[r],
                displs[r]);
        cnt[r] = (int)counts[r];
        dsp[r] = (int)displs[r];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, dsp, MPI_FLOAT, MPI_COMM_WORLD);
    free(cnt);
    free(dsp);
}

static void mpi_allreduce(comm *c, float *buf, size_t n)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

static void mpi_close(comm *c)
{
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
        MPI_Finalize();
}

static const comm_ops mpi_ops = {
    .bcast = mpi_bcast, .allreduce_double = mpi_allreduce_double,
    .allreduce_max_u64 = mpi_allreduce_max_u64, .barrier = mpi_barrier,
    .allgatherv = mpi_allgatherv, .allreduce = mpi_allreduce, .close = mpi_close,
};

/* die() on any rank: its line (naming the rank, except rank 0, which speaks
 * for the job; a usage error is every rank's, so rank 0 alone says it), the
 * temporary outputs removed, then the whole job ended. */
static void die_abort(int status, const char *line)
{
    if (world_rank == 0) {
        fprintf(stderr, "%s\n", line);
    } else if (status != EXIT_USAGE) {
        size_t n = strlen(progname);
        const char *rest = !strncmp(line, progname, n) && !strncmp(line + n, ": ", 2) ? line + n + 2
                                                                                     : line;
        fprintf(stderr, "%s: rank %d: %s\n", progname, world_rank, rest);
    }
    fflush(stderr);
    if (status == EXIT_BAD_INPUT)
        remove_pending_outputs();
    MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

/* A process that returns from main without comm_close still finalizes (an
 * MPI process that exits without it ends the job as a failure). */
static void finalize_at_exit(void)
{
    mpi_close(NULL);
}

int comm_mpi_init(comm *c, int *argc, char ***argv)
{
    int provided;
    /* Only the main thread calls MPI (OpenMP threads compute in between). */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    atexit(finalize_at_exit);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    world_rank = c->rank;
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    c->mpi = 1;
    c->host = &mpi_ops;
    set_die_handler(die_abort);
    if (c->rank != 0)
        warnx_quiet(1);
    return 0;
}

#else

int comm_mpi_init(comm *c, int *argc, char ***argv)
{
    return -1;
}

#endif
