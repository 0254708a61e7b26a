#!/usr/bin/env bats
# mnr-train under mpirun (docs/data-parallel.md): N ranks with global batch B
# train as one process with batch B (2 and 4 ranks, shared memory and TCP,
# the fixture models with dropout 0.1, pairs, triplets, --symmetric, the
# softmax loss with its labels, a last
# short batch that leaves ranks without rows, --mini-batch, --eval-sts), the
# ranks share the work, input from stdin, resuming with another number of
# ranks, failures of any kind end the job (bad input, a non-finite loss, a
# killed rank), a signal to one rank stops them all, a build without MPI
# refuses to run as one of several ranks, and the pipeline's LAUNCH.
# Skips, saying so, only where MPI (mpirun) is not installed.
load helper
bats_require_minimum_version 1.5.0

TINY=$FIXTURES/tiny
HEAD64=$FIXTURES/head64
PY=$BATS_TEST_DIRNAME/../py
TOP=$BATS_TEST_DIRNAME/../..
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# Open MPI refuses to start as root unless told.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often forbid the cross-memory attach that Open MPI's shared
# memory uses for large messages (CAP_SYS_PTRACE); copying through the
# shared segment works everywhere.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}

setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        dropout_copy "$FIXTURES/$m/model" "$m.drop"
    done
    PYTHONPATH=$PY python3 - <<'EOF'
import numpy as np
from streams import save_rows as save

rng = np.random.default_rng(11)


def seq(n, vocab):
    return [101] + list(rng.integers(1000, vocab, size=n - 2)) + [102]


def rows(n, C, vocab, lo=5, hi=30):
    return [[seq(rng.integers(lo, hi), vocab) for _ in range(C)] for _ in range(n)]


# 36 pairs: batches of 8 give 4 full batches and one of 4 rows
save("tiny.pairs.npy", rows(36, 2, 30000), 3)
# 38 triplets: batches of 12 give 3 full batches and one of 2 rows, which
# leaves two of 4 ranks without rows
save("tiny.triplets.npy", rows(38, 3, 30000), 2)
# head64's vocabulary has 4096 ids
save("head64.pairs.npy", rows(40, 2, 4000))
save("head64.triplets.npy", rows(30, 3, 4000))
# longer sequences, so that the encoder's work dominates a step
save("head64.long.npy", rows(160, 2, 4000, 90, 128))
EOF
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    S=$BATS_FILE_TMPDIR
    command -v mpirun >/dev/null || skip "MPI is not installed (mpirun not found)"
    [ -f "$S/tiny.pairs.npy" ] || skip "python3 with numpy and safetensors is not installed"
}

# mpirun as the tests run it: any number of ranks on this machine.
mpi() {
    mpirun --oversubscribe "$@"
}

# One process and N ranks on the same options and input: the same training.
# At the default lr (2e-5): at 1e-3 AdamW's first steps multiply the rounding
# of gradients near eps by up to lr / (4 eps) = 250, and weights of builds
# that round otherwise (the sanitizer build's -O1) leave the bound although
# the training is the same (docs/mini-batch.md).
# same_training N "MPIRUN OPTION..." INPUT MNR-TRAIN OPTION...  (INPUT
# stdin:FILE: the ranks read FILE on standard input, as mpirun forwards it)
same_training() {
    local n=$1 mpiopts=$2 input=$3 in=/dev/null
    shift 3
    mnr-train --threads 1 --device cpu --adam-eps 1e-6 --lr 2e-5 -o one --log one.jsonl "$@" \
        "${input#stdin:}" 2>one.err || { cat one.err; return 1; }
    if [[ $input == stdin:* ]]; then
        in=${input#stdin:} input=-
    fi
    # shellcheck disable=SC2086
    mpi -np "$n" $mpiopts mnr-train --threads 1 --device cpu --adam-eps 1e-6 --lr 2e-5 -o many \
        --log many.jsonl "$@" "$input" <"$in" 2>many.err || { cat many.err; return 1; }
    grep -q "; $n ranks$" many.err || { echo "no '$n ranks' in the start line"; cat many.err; return 1; }
    # every step says how many ranks computed it, as its last key
    [ "$(jq -c -s "map(select(has(\"loss\")) | keys_unsorted[-1] == \"ranks\" and .ranks == $n) | unique" many.jsonl)" = "[true]" ] ||
        { echo "a step without \"ranks\": $n as its last key"; cat many.jsonl; return 1; }
    python3 "$PY/compare_runs.py" one.jsonl many.jsonl one/model.safetensors many/model.safetensors
}

@test "2 ranks train as one process: tiny with dropout, pairs, a last short batch (shared memory)" {
    run same_training 2 "" "$S/tiny.pairs.npy" -m "$S/tiny.drop" --batch-size 8 --max-steps 5
    echo "$output"
    [ "$status" -eq 0 ]
    # rank 0 alone speaks: one start line, one line per step
    [ "$(grep -c 'rows of 2 columns' many.err)" -eq 1 ]
    [ "$(grep -c '^mnr-train: step ./5 ' many.err)" -eq 5 ]
    [ "$(wc -l <many.jsonl)" -eq 5 ]
}

@test "2 ranks train as one process: head64 with dropout, triplets, --symmetric, input on stdin" {
    run same_training 2 "" "stdin:$S/head64.triplets.npy" -m "$S/head64.drop" --batch-size 6 \
        --epochs 2 --max-steps 5 --symmetric
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "2 ranks train as one process: the softmax loss, its labels shared by rank 0 (tiny with dropout)" {
    python3 -c 'import random; r = random.Random(1); print("\n".join(str(r.randrange(3)) for _ in range(36)))' >labels.txt
    run same_training 2 "" "$S/tiny.pairs.npy" -m "$S/tiny.drop" --loss softmax --labels labels.txt \
        --batch-size 8 --max-steps 5
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "2 ranks over TCP (--mca pml ob1 --mca btl self,tcp) train as one process" {
    run same_training 2 "--mca pml ob1 --mca btl self,tcp" "$S/tiny.pairs.npy" -m "$S/tiny.drop" \
        --batch-size 8 --max-steps 5
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "4 ranks train as one process: tiny with dropout, triplets, ranks without rows in the last batch" {
    run same_training 4 "" "$S/tiny.triplets.npy" -m "$S/tiny.drop" --batch-size 12 --epochs 2 \
        --max-steps 5
    echo "$output"
    [ "$status" -eq 0 ]
    # the 5th step is the first of epoch 2: the short batch (2 rows) was step 4
    grep -q '"step":4,"epoch":1,' many.jsonl && grep -q '"step":5,"epoch":2,' many.jsonl
}

@test "4 ranks train as one process: head64 with dropout, pairs" {
    run same_training 4 "" "$S/head64.pairs.npy" -m "$S/head64.drop" --batch-size 8 --max-steps 5
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--mini-batch under 2 and 4 ranks: cached passes over each rank's rows train as one process" {
    # spans of 3 sequences do not divide a rank's 4 (or 2) rows of a column
    run same_training 2 "" "$S/tiny.pairs.npy" -m "$S/tiny.drop" --batch-size 8 --max-steps 5 \
        --mini-batch 3
    echo "$output"
    [ "$status" -eq 0 ]
    run same_training 4 "" "$S/tiny.triplets.npy" -m "$S/tiny.drop" --batch-size 12 --epochs 2 \
        --max-steps 5 --mini-batch 2 --symmetric
    echo "$output"
    [ "$status" -eq 0 ]
    # and against one process without --mini-batch
    mnr-train --threads 1 --device cpu --adam-eps 1e-6 --lr 2e-5 -o plain --log plain.jsonl \
        -m "$S/tiny.drop" --batch-size 12 --epochs 2 --max-steps 5 --symmetric \
        "$S/tiny.triplets.npy" 2>/dev/null
    run python3 "$PY/compare_runs.py" plain.jsonl many.jsonl plain/model.safetensors many/model.safetensors
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--eval-sts under 2 ranks: rank 0 evaluates, the log has its lines, Spearman as one process's" {
    head -n 300 "$DATA/stsbenchmark/sts-dev.csv" >sts300.csv
    run same_training 2 "" "$S/tiny.pairs.npy" -m "$S/tiny.drop" --batch-size 8 --max-steps 5 \
        --eval-sts sts300.csv --eval-every 2
    echo "$output"
    [ "$status" -eq 0 ]
    # evaluations after steps 2, 4 and at the end (5), once each, by rank 0
    [ "$(jq -c -s 'map(select(has("eval_sts_spearman")) | .step)' many.jsonl)" = "[2,4,5]" ]
    [ "$(grep -c 'STS Spearman' many.err)" -eq 3 ]
    run python3 - <<'EOF'
import json
ev = lambda f: [l["eval_sts_spearman"] for l in map(json.loads, open(f)) if "eval_sts_spearman" in l]
a, b = ev("one.jsonl"), ev("many.jsonl")
print(a, b)
assert len(a) == 3 and all(abs(x - y) < 1e-5 for x, y in zip(a, b)), (a, b)
EOF
    echo "$output"
    [ "$status" -eq 0 ]
}

# CPU seconds of a command and everything it waited for.
cpu_seconds() {
    python3 -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f" % (u.ru_utime + u.ru_stime) if r.returncode == 0 else "failed")' "$@"
}

@test "the ranks share the work: their CPU time per step together is about one process's, not N times it" {
    # Runs of 2 and 10 steps: the difference is the CPU time of 8 steps,
    # without the start (MPI, reading, writing).  Waiting ranks sleep
    # (comm_mpi.c), so that CPU time is work.
    args=(--device cpu --threads 1 -m "$HEAD64/model" --batch-size 16 "$S/head64.long.npy")
    declare -A cpu
    for n in 1 2 4; do
        for steps in 2 10; do
            if [ $n = 1 ]; then
                c=$(cpu_seconds mnr-train "${args[@]}" -o "o$n.$steps" --max-steps $steps)
            else
                c=$(cpu_seconds mpirun --oversubscribe -np $n mnr-train "${args[@]}" -o "o$n.$steps" --max-steps $steps)
            fi
            [ "$c" != failed ] || { echo "$n ranks, $steps steps failed"; return 1; }
            cpu[$n.$steps]=$c
        done
    done
    run python3 - "${cpu[1.2]}" "${cpu[1.10]}" "${cpu[2.2]}" "${cpu[2.10]}" "${cpu[4.2]}" "${cpu[4.10]}" <<'EOF'
import sys
v = [float(x) for x in sys.argv[1:]]
one = v[1] - v[0]
bad = 0
for n, (a, b) in ((2, v[2:4]), (4, v[4:6])):
    ratio = (b - a) / one
    print(f"{n} ranks: {b - a:.2f} CPU s for 8 steps, one process {one:.2f}: ratio {ratio:.2f} "
          f"(each rank doing the whole batch: {n})")
    bad += ratio > 1.6
sys.exit(bad)
EOF
    echo "$output"
    [ "$status" -eq 0 ]
}

state_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/state.json" "$2"
}

@test "resume with another number of ranks: 2 ranks to step 3, then 4 ranks or one process, equal a straight run; 2 ranks bit for bit" {
    common=(--device cpu --threads 1 --adam-eps 1e-6 --lr 2e-5 --schedule-steps 8)
    mpi -np 2 mnr-train "${common[@]}" -m "$S/tiny.drop" --batch-size 8 --epochs 2 -o a \
        --max-steps 3 --checkpoint-every 3 --log a.jsonl "$S/tiny.pairs.npy" 2>/dev/null
    [ "$(state_field a.checkpoint step)" -eq 3 ]
    cp a.jsonl b4.jsonl && cp a.jsonl b1.jsonl
    mpi -np 4 mnr-train "${common[@]}" --resume a.checkpoint -o b4 --max-steps 7 --log b4.jsonl \
        "$S/tiny.pairs.npy" 2>/dev/null
    mnr-train "${common[@]}" --resume a.checkpoint -o b1 --max-steps 7 --log b1.jsonl \
        "$S/tiny.pairs.npy" 2>/dev/null
    mnr-train "${common[@]}" -m "$S/tiny.drop" --batch-size 8 --epochs 2 -o s --max-steps 7 \
        --log s.jsonl "$S/tiny.pairs.npy" 2>/dev/null
    run python3 "$PY/compare_runs.py" s.jsonl b4.jsonl s/model.safetensors b4/model.safetensors
    echo "$output"
    [ "$status" -eq 0 ]
    run python3 "$PY/compare_runs.py" s.jsonl b1.jsonl s/model.safetensors b1/model.safetensors
    echo "$output"
    [ "$status" -eq 0 ]
    # the log says which steps ran on how many ranks
    [ "$(jq -c -s 'map(.ranks)' b4.jsonl)" = "[2,2,2,4,4,4,4]" ]
    # with the same number of ranks: bit for bit the straight run
    mpi -np 2 mnr-train "${common[@]}" --resume a.checkpoint -o b2 --max-steps 7 \
        "$S/tiny.pairs.npy" 2>/dev/null
    mpi -np 2 mnr-train "${common[@]}" -m "$S/tiny.drop" --batch-size 8 --epochs 2 -o s2 \
        --max-steps 7 "$S/tiny.pairs.npy" 2>/dev/null
    cmp b2/model.safetensors s2/model.safetensors
    # a batch size that the ranks do not divide is a usage error
    # (Open MPI's note on MPI_ABORT may come before or after rank 0's line)
    run mpi -np 4 mnr-train "${common[@]}" -m "$S/tiny.drop" --batch-size 6 -o c "$S/tiny.pairs.npy"
    echo "$output"
    [ "$status" -eq 2 ]
    [ "$(grep -c '^mnr-train: ' <<<"$output")" -eq 1 ]
    grep -qx 'mnr-train: --batch-size 6 is not a multiple of the 4 ranks (each takes an equal share of a batch)' <<<"$output"
    [ ! -e c ]
}

@test "bad input under mpirun: rank 0's one line, exit 1, nothing written, no rank waits" {
    run --separate-stderr timeout 60 mpirun -q --oversubscribe -np 2 mnr-train --device cpu \
        -m "$TINY/model" -o out no-such.npy
    echo "$stderr"
    [ "$status" -eq 1 ]
    [ "$(grep -c '^mnr-train: ' <<<"$stderr")" -eq 1 ]
    [[ "$stderr" == *"mnr-train: no-such.npy: No such file or directory"* ]]
    [ ! -e out ]
    run --separate-stderr timeout 60 mpirun -q --oversubscribe -np 2 mnr-train --device cpu \
        -m "$TINY/model" -o out --bogus "$S/tiny.pairs.npy"
    [ "$status" -eq 2 ]
    [ "$(grep -c '^mnr-train: ' <<<"$stderr")" -eq 1 ]
    # --help and --version: once
    run --separate-stderr timeout 60 mpirun --oversubscribe -np 2 mnr-train --version
    [ "$status" -eq 0 ]
    [ "$output" = "mnr-train (bertpipe) 0.1.0" ]
}

@test "a non-finite loss under mpirun: every rank stops, exit 1, rank 0's checkpoint of the last good state" {
    run --separate-stderr timeout 120 mpirun --oversubscribe -np 2 mnr-train --device cpu \
        --threads 1 -m "$TINY/model" -o out --batch-size 8 --no-shuffle --lr 1e30 --warmup 0 \
        --max-grad-norm 0 --log log.jsonl "$S/tiny.pairs.npy"
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" =~ "mnr-train: step 2: the "(loss|gradient norm)" is "(NaN|infinite)"; training stopped; the state after step 1 is in out.checkpoint" ]]
    [ "$(state_field out.checkpoint step)" -eq 1 ]
    [ ! -e out ]
}

# The process of rank $2 among the descendants of process $1.
rank_pid() {
    local p
    for p in $(pgrep -P "$1"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

@test "a killed rank ends the job with an error within 60 s; the last checkpoint is intact and resumes" {
    mpirun --oversubscribe -np 2 mnr-train --device cpu --threads 1 -m "$S/tiny.drop" -o big \
        --batch-size 8 --epochs 100000 --lr 1e-4 --schedule-steps 1000000 --checkpoint-every 2 \
        --log big.jsonl "$S/tiny.pairs.npy" 2>big.err &
    local job=$! i pid=
    for i in $(seq 1200); do
        [ -f big.checkpoint/state.json ] && [ "$(wc -l <big.jsonl)" -ge 5 ] && break
        sleep 0.05
    done
    pid=$(rank_pid "$job" 1) || { kill "$job"; echo "rank 1 not found"; return 1; }
    kill -KILL "$pid"
    local t0=$SECONDS status=0
    for i in $(seq 600); do
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$job" 2>/dev/null; then
        kill -KILL "$job"
        echo "the job still ran 60 s after rank 1 was killed"
        return 1
    fi
    wait "$job" || status=$?
    echo "exit $status after $((SECONDS - t0)) s"
    tail -n 3 big.err
    [ "$status" -ne 0 ]
    [ ! -e big ]
    k=$(state_field big.checkpoint step)
    [ "$k" -ge 2 ]
    mnr-train --device cpu --threads 1 --resume big.checkpoint -o r --max-steps $((k + 1)) \
        "$S/tiny.pairs.npy" 2>/dev/null
    [ -f r/model.safetensors ]
}

@test "SIGTERM to one rank: every rank stops after the same step, rank 0's checkpoint, exit 143" {
    mpirun --oversubscribe -np 2 mnr-train --device cpu --threads 1 -m "$S/tiny.drop" -o sig \
        --batch-size 8 --epochs 100000 --lr 1e-4 --schedule-steps 1000000 --log sig.jsonl \
        "$S/tiny.pairs.npy" 2>sig.err &
    local job=$! i status=0
    for i in $(seq 1200); do
        [ -f sig.jsonl ] && [ "$(wc -l <sig.jsonl)" -ge 3 ] && break
        sleep 0.05
    done
    pid=$(rank_pid "$job" 1) || { kill "$job"; echo "rank 1 not found"; return 1; }
    kill -TERM "$pid"
    wait "$job" || status=$?
    echo "exit $status"
    grep -v '^mnr-train: step' sig.err
    [ "$status" -eq 143 ]
    k=$(state_field sig.checkpoint step)
    grep -q "^mnr-train: terminated; the state after step $k is in sig.checkpoint" sig.err
    [ "$(wc -l <sig.jsonl)" -eq "$k" ]
    [ ! -e sig ]
}

@test "a build without MPI refuses to run as one of several ranks, with one line" {
    CC=${CC:-cc}
    command -v "$CC" >/dev/null || skip "no C compiler ($CC) to build the check"
    cat >main.c <<'EOF'
#include "comm.h"
#include "util.h"
#include <stdio.h>
int main(int argc, char **argv)
{
    util_init("mnr-train");
    comm *c = comm_open(&argc, &argv);
    printf("rank %d of %d\n", comm_rank(c), comm_size(c));
    comm_close(c);
    return 0;
}
EOF
    # comm.c and its dependencies, compiled without BP_HAVE_MPI
    "$CC" -std=gnu11 -I"$TOP/lib" -o nompi main.c "$TOP"/lib/{comm,comm_mpi,util,sampler,npy,rng,input}.c -lm
    run ./nompi
    [ "$status" -eq 0 ] && [ "$output" = "rank 0 of 1" ]
    run env OMPI_COMM_WORLD_SIZE=1 ./nompi
    [ "$status" -eq 0 ] && [ "$output" = "rank 0 of 1" ]
    for var in OMPI_COMM_WORLD_SIZE PMI_SIZE; do
        run env "$var=4" ./nompi
        echo "$output"
        [ "$status" -eq 1 ]
        [ "$output" = "mnr-train: $var=4: started as one of 4 MPI ranks, but built without MPI (each rank would train alone on the same output); rebuild with mpicc on the PATH" ]
    done
}

@test "pipelines: LAUNCH (RANKS= in pipelines/Makefile) runs the training step under mpirun" {
    mkdir data
    cp "$S/tiny.pairs.npy" data/pairs.tok
    seq 36 >data/pairs.tsv
    LAUNCH="mpirun --oversubscribe -np 2" run "$TOP/pipelines/train.sh" run mnr "$TINY/model" \
        data/pairs.tok --device cpu --threads 1 --batch-size 8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(jq -c -s 'map(.ranks) | unique' run/train/mnr.log)" = "[2]" ]
    [ "$(jq .steps run/train/mnr.json)" -eq 5 ]
    [ -f run/models/mnr/model.safetensors ]
    # the Makefile's RANKS becomes that LAUNCH
    # (without the variables of an outer make, such as make check-sanitize's)
    [ "$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$TOP/pipelines" \
        -f Makefile -f - RANKS=3 BINDIR=/nonexistent show-launch <<<'show-launch: ; @echo "$$LAUNCH"')" = "mpirun -np 3" ]
}
