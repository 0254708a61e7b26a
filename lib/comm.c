/* comm.c - comm.h's dispatch, the single process, statistics and the batch
 * slicing; MPI is in comm_mpi.c, NCCL in lib/cuda/comm_nccl.cu. */
#include "comm.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* A launcher's word for the number of ranks (Open MPI, then MPICH/PMI and
 * Slurm's PMI), or 0 when none says so. */
static long launcher_size(const char **var)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *s = getenv(vars[i]);
        long n;
        if (s && parse_long(s, 1, 1L << 30, &n) == 0) {
            *var = vars[i];
            return n;
        }
    }
    return 0;
}

comm *comm_open(int *argc, char ***argv)
{
    comm *c = xcalloc(1, sizeof *c);
    c->size = c->local_size = 1;
    const char *var = NULL;
    long n = launcher_size(&var);
    if (n >= 1 && comm_mpi_init(c, argc, argv) == 0)
        return c;
    if (n > 1)
        die("%s=%ld: started as one of %ld MPI ranks, but built without MPI (each rank would "
            "train alone on the same output); rebuild with mpicc on the PATH", var, n, n);
    return c;
}

void comm_close(comm *c)
{
    /* NCCL's communicator before MPI's */
    if (c && c->gpu)
        c->gpu->close(c);
    if (c && c->host)
        c->host->close(c);
    free(c);
}

int comm_rank(const comm *c) { return c ? c->rank : 0; }
int comm_size(const comm *c) { return c ? c->size : 1; }
int comm_local_rank(const comm *c) { return c ? c->local_rank : 0; }
int comm_local_size(const comm *c) { return c ? c->local_size : 1; }
int comm_is_mpi(const comm *c) { return c && c->mpi; }

/* Collectives run only with several ranks (a single MPI rank skips them
 * too) - except through NCCL, whose path a single GPU rank runs so that one
 * GPU checks it. */
static int collective(const comm *c)
{
    return c && c->host && c->size > 1;
}

static double started(void)
{
    return now_seconds();
}

static void count(comm *c, double t0, double bytes)
{
    c->stats.calls++;
    c->stats.bytes += bytes;
    c->stats.seconds += now_seconds() - t0;
}

void comm_bcast(comm *c, void *buf, size_t bytes)
{
    if (!collective(c) || !bytes)
        return;
    double t0 = started();
    c->host->bcast(c, buf, bytes);
    count(c, t0, (double)bytes);
}

double comm_sum(comm *c, double x)
{
    if (!collective(c))
        return x;
    double t0 = started();
    c->host->allreduce_double(c, &x, 1);
    count(c, t0, sizeof x);
    return x;
}

long comm_max(comm *c, long x)
{
    if (!collective(c))
        return x;
    double t0 = started();
    uint64_t v = (uint64_t)x;
    c->host->allreduce_max_u64(c, &v, 1);
    count(c, t0, sizeof v);
    return (long)v;
}

int comm_any(comm *c, int flag)
{
    return comm_max(c, flag != 0) != 0;
}

void comm_barrier(comm *c)
{
    if (collective(c))
        c->host->barrier(c);
}

int comm_same(comm *c, uint64_t h)
{
    if (!collective(c))
        return 1;
    uint64_t x[2] = {h, ~h}; /* the maxima of h and of ~h: both h when all agree */
    c->host->allreduce_max_u64(c, x, 2);
    return x[0] == h && ~x[1] == h;
}

void comm_share_train_data(comm *c, train_data *d)
{
    if (!collective(c))
        return;
    int64_t head[6] = {d->columns, d->rows, d->ntokens, d->texts, d->max_len, d->labels != NULL};
    comm_bcast(c, head, sizeof head);
    if (c->rank != 0) {
        train_data_init(d, (int)head[0]);
        d->rows = head[1];
        d->ntokens = d->cap_tokens = head[2];
        d->texts = (int32_t)head[3];
        d->max_len = (int)head[4];
        d->cap_seqs = d->rows * d->columns;
        d->tokens = xmallocarray(d->ntokens ? d->ntokens : 1, sizeof *d->tokens);
        d->start = xmallocarray(d->cap_seqs, sizeof *d->start);
        d->len = xmallocarray(d->cap_seqs, sizeof *d->len);
        d->text = xmallocarray(d->cap_seqs, sizeof *d->text);
        if (head[5])
            d->labels = xmallocarray(d->rows ? d->rows : 1, sizeof *d->labels);
    }
    size_t seqs = (size_t)(d->rows * d->columns);
    comm_bcast(c, d->tokens, (size_t)d->ntokens * sizeof *d->tokens);
    comm_bcast(c, d->start, seqs * sizeof *d->start);
    comm_bcast(c, d->len, seqs * sizeof *d->len);
    comm_bcast(c, d->text, seqs * sizeof *d->text);
    if (d->labels)
        comm_bcast(c, d->labels, (size_t)d->rows * sizeof *d->labels);
}

/* The ops for buffers where on_gpu says, or NULL when nothing is to be done. */
static const comm_ops *ops_for(const comm *c, int on_gpu)
{
    if (on_gpu && c && c->gpu)
        return c->gpu;
    if (on_gpu && collective(c))
        die("comm: a GPU buffer in a collective before comm_use_gpu");
    return collective(c) ? c->host : NULL;
}

/* The ranks' arrival at a collective of floats, timed apart from it: the
 * transfer that follows then finds every rank there (comm_mpi.c). */
static double arrive(comm *c)
{
    double t0 = now_seconds();
    if (collective(c))
        c->host->barrier(c);
    double t1 = now_seconds();
    c->stats.waiting += t1 - t0;
    c->stats.seconds += t1 - t0;
    return t1;
}

void comm_allgatherv(comm *c, float *buf, const size_t *counts, const size_t *displs, int on_gpu)
{
    const comm_ops *ops = ops_for(c, on_gpu);
    if (!ops)
        return;
    double t0 = arrive(c);
    ops->allgatherv(c, buf, counts, displs);
    count(c, t0, (double)counts[c->rank] * sizeof *buf);
}

void comm_allreduce(comm *c, float *buf, size_t n, int on_gpu)
{
    const comm_ops *ops = ops_for(c, on_gpu);
    if (!ops || !n)
        return;
    double t0 = arrive(c);
    ops->allreduce(c, buf, n);
    count(c, t0, (double)n * sizeof *buf);
}

void comm_use_gpu(comm *c)
{
    /* (a single rank needs no NCCL: its collectives are no-ops) */
    if (c && comm_nccl_init(c) != 0 && c->size > 1)
        die("--device cuda with MPI ranks needs NCCL, and this build has none (CUDA's "
            "nccl.h and libnccl were not found when it was built)");
}

comm_stats comm_get_stats(const comm *c)
{
    return c ? c->stats : (comm_stats){0};
}

#ifndef BP_HAVE_CUDA
/* (lib/cuda_backend.c has it in a build with CUDA) */
int comm_nccl_init(comm *c)
{
    return -1;
}
#endif

void comm_slice(int B, int n, int r, int *first, int *count)
{
    int base = B / n, extra = B % n;
    *count = base + (r < extra);
    *first = r * base + (r < extra ? r : extra);
}
