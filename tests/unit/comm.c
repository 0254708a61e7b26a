/* comm.h without a launcher: the single process (every collective leaves
 * its data as it is, with or without a comm), and comm_slice, which splits
 * a batch over the ranks (tests/cli/mpi.bats runs the ranks themselves). */
#include "../tap.h"
#include "comm.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static void slices(void)
{
    int bad = 0;
    for (int B = 0; B <= 40 && !bad; B++)
        for (int n = 1; n <= 9 && !bad; n++) {
            int next = 0, lo = B, hi = 0;
            for (int r = 0; r < n; r++) {
                int first, count;
                comm_slice(B, n, r, &first, &count);
                /* contiguous, in rank order, covering 0..B-1 */
                bad |= first != next || count < 0;
                next = first + count;
                lo = count < lo ? count : lo;
                hi = count > hi ? count : hi;
                /* the first B % n ranks take the extra rows */
                bad |= count != B / n + (r < B % n);
            }
            bad |= next != B || hi - lo > 1;
            if (bad)
                diag("B %d over %d ranks", B, n);
        }
    ok(!bad, "comm_slice: B = 0..40 rows over 1..9 ranks, contiguous, as even as possible, "
       "the first B %% n ranks one row more");
    int first, count;
    comm_slice(32, 4, 3, &first, &count);
    ok(first == 24 && count == 8, "a full batch of 32 over 4 ranks: rank 3 has rows 24..31");
    comm_slice(2, 4, 2, &first, &count);
    ok(first == 2 && count == 0, "a last batch of 2 rows over 4 ranks: rank 2 has none");
}

static void single(comm *c, const char *what)
{
    float buf[6] = {1, 2, 3, 4, 5, 6}, want[6];
    memcpy(want, buf, sizeof buf);
    size_t counts[1] = {2}, displs[1] = {3};
    comm_allgatherv(c, buf, counts, displs, 0);
    comm_allreduce(c, buf, 6, 0);
    comm_bcast(c, buf, sizeof buf);
    comm_barrier(c);
    ok(!memcmp(buf, want, sizeof buf), "%s: gather, reduce and broadcast leave the data", what);
    ok(comm_rank(c) == 0 && comm_size(c) == 1 && comm_local_rank(c) == 0 &&
       comm_local_size(c) == 1 && !comm_is_mpi(c), "%s: rank 0 of 1, not MPI", what);
    ok(comm_sum(c, 2.5) == 2.5 && comm_max(c, 7) == 7 && comm_any(c, 0) == 0 &&
       comm_any(c, 3) == 1 && comm_same(c, 42), "%s: sum, max, any and same of one value", what);
    ok(comm_get_stats(c).calls == 0, "%s: no collective counted", what);
}

int main(int argc, char **argv)
{
    util_init("comm");
    slices();
    /* this test runs without a launcher, which comm_open must find */
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_SIZE");
    comm *c = comm_open(&argc, &argv);
    single(c, "comm_open without a launcher");
    comm_close(c);
    single(NULL, "NULL");
    done_testing();
    return tap_failed ? 1 : 0;
}
