/* threads.h - one knob for CPU parallelism: OpenMP loops and OpenBLAS. */
#ifndef BP_THREADS_H
#define BP_THREADS_H

/* n <= 0 means all cores (the default, per CONVENTIONS.md). */
void threads_set(int n);
int threads_count(void);
/* The default of threads_set(0) becomes the cores divided among this many
 * processes (the ranks of a job on this machine), at least 1. */
void threads_share(int processes);

#endif
