#!/usr/bin/env bats
# scripts/bench-mini-batch.sh (make bench-mini-batch) runs end to end at toy
# size on the tiny fixture model: its table, and a goal line.
# The figures themselves are measured by hand (docs/mini-batch.md).
load helper

@test "bench-mini-batch: uncached, cached and sentence-transformers' rows at toy size" {
    python3 -c 'import torch, sentence_transformers' 2>/dev/null ||
        skip "sentence-transformers is not installed (python3 -m pip install sentence-transformers)"
    [ -x /usr/bin/time ] || skip "GNU time is not installed (apt-get install time)"
    run env MODEL="$FIXTURES/tiny/model" BATCHES=8 MINI=4 THREADS=1 BINDIR="$BINDIR" \
        SHARED="$SHARED" "$BATS_TEST_DIRNAME/../../scripts/bench-mini-batch.sh"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ ${lines[2]} == " batch  uncached_GiB uncached_pairs/s"* ]]
    # batch, then three (GiB, pairs/s) pairs of numbers and the buffers
    [[ ${lines[3]} =~ ^\ +8(\ +[0-9]+\.[0-9]+){7}$ ]]
    [ "$(grep -c '^goal \(met\|missed\): ' <<<"$output")" -eq 1 ]
}
