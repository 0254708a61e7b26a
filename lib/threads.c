#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

static int nthreads, sharers = 1;

void threads_share(int processes)
{
    sharers = processes > 1 ? processes : 1;
}

void threads_set(int n)
{
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > sharers ? (int)(cores / sharers) : 1;
    }
    nthreads = n;
    omp_set_num_threads(n);
    /* One level: code that hands whole tasks to threads (encoder_cpu.c) runs the
     * loops inside them on the calling thread. */
    omp_set_max_active_levels(1);
    openblas_set_num_threads(n);
}

int threads_count(void)
{
    if (!nthreads)
        threads_set(0);
    return nthreads;
}
