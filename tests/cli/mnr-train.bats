#!/usr/bin/env bats
# mnr-train(1): the fixtures' three training steps and losses through the
# command, NO_DUPLICATES batches, bit-identical resumption, signals, a
# non-finite loss, --max-length, random initialisation, STS evaluation and
# --keep-best, loading by transformers / sentence-transformers, errors, bf16
# on the product kernels of a CPU without AMX tiles, and
# the man page's EXAMPLES.  Runs use the small fixture models, one thread.
load helper
bats_require_minimum_version 1.5.0

TINY=$FIXTURES/tiny
HEAD64=$FIXTURES/head64
PY=$BATS_TEST_DIRNAME/../py
MAN_PAGE=$BATS_TEST_DIRNAME/../../man/man1/mnr-train.1
STS_DEV=$DATA/stsbenchmark/sts-dev.csv
# Idle OpenMP threads must not spin on a shared, loaded machine (the runs with
# all cores: the fixture test and the man page's examples).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# Token streams built once with numpy: the fixtures' batches, synthetic rows
# for the tiny model's vocabulary, and a copy of the tiny model with dropout.
setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        for s in train pairs triplets; do
            python3 "$PY/fixture_stream.py" "$FIXTURES/$m/reference.safetensors" "$m.$s.npy" "$s"
        done
    done
    # Two random MPNet models and their references, made now by transformers
    # and sentence-transformers (mk_mpnet_fixture.py prints SKIP without them).
    mkdir mpnet
    python3 "$PY/mk_mpnet_fixture.py" mpnet >mpnet.out 2>&1 || true
    if [ "$(tail -n 1 mpnet.out)" = OK ]; then
        for m in mpnet-tiny mpnet-head64; do
            for s in train pairs triplets; do
                python3 "$PY/fixture_stream.py" "mpnet/$m/reference.safetensors" "$m.$s.npy" "$s"
            done
        done
    fi
    dropout_copy "$TINY/model" drop
    head -n 300 "$STS_DEV" >sts300.csv
    PYTHONPATH=$PY python3 - <<'EOF'
import numpy as np
from streams import save_rows as save

rng = np.random.default_rng(5)


def seq(n):
    return [101] + list(rng.integers(1000, 30000, size=n - 2)) + [102]


# 36 pairs: batches of 8 give 5 steps an epoch (the last one of 4 rows)
save("syn.npy", [[seq(rng.integers(5, 30)), seq(rng.integers(5, 30))] for _ in range(36)], 3)
# three rows with the same anchor: NO_DUPLICATES gives three batches of one
a = seq(8)
save("dup.npy", [[a, seq(9)], [a, seq(10)], [a, seq(11)]])
# sequences up to 140 tokens (tiny has 128 positions), and the same cut to
# 64 as --max-length 64 cuts them: the first 63 ids, then the last
long_rows = [[seq(130 + i % 11), seq(20 + 10 * i)] for i in range(12)]
save("long.npy", long_rows)
save("cut.npy", [[s[:63] + s[-1:] if len(s) > 64 else s for s in r] for r in long_rows])
# malformed streams
save("one-column.npy", [[seq(6)] for _ in range(4)])
save("empty-seq.npy", [[seq(6), []], [seq(5), seq(7)]])
with open("mixed.npy", "wb") as f:
    np.save(f, np.full((2, 2, 4), 5, dtype="<i4"))
    np.save(f, np.full((2, 3, 4), 5, dtype="<i4"))
data = open("syn.npy", "rb").read()
open("truncated.npy", "wb").write(data[:-7])
open("nothing.npy", "wb").close()
EOF
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    S=$BATS_FILE_TMPDIR
}

need_streams() {
    [ -f "$S/syn.npy" ] || skip "python3 with numpy and safetensors is not installed"
}

# The first step's loss (--lr 0) of pairs, triplets and symmetric MNR for
# each fixture NAME of DIR (streams $S/NAME.{pairs,triplets}.npy) against
# its reference's loss.* (1e-6 relative).
first_step_losses() { # DIR NAME...
    local dir=$1 m v B stream opt
    shift
    for m in "$@"; do
        B=$(python3 -c 'import numpy, sys; print(numpy.load(sys.argv[1]).shape[0])' "$S/$m.pairs.npy")
        for v in pairs triplets symmetric; do
            stream=$S/$m.pairs.npy opt=()
            [ $v = triplets ] && stream=$S/$m.triplets.npy
            [ $v = symmetric ] && opt=(--symmetric)
            train -m "$dir/$m/model" -o "out.$m.$v" --batch-size "$B" --no-shuffle --lr 0 \
                --max-steps 1 --log "$m.$v.jsonl" "${opt[@]}" "$stream" 2>/dev/null
        done
    done
    python3 - "$dir" "$@" <<'EOF'
import json, sys
from safetensors.numpy import load_file
bad = 0
for m in sys.argv[2:]:
    ref = load_file(f"{sys.argv[1]}/{m}/reference.safetensors")
    for v in ("pairs", "triplets", "symmetric"):
        got = json.loads(open(f"{m}.{v}.jsonl").readline())["loss"]
        want = float(ref[f"loss.{v}"][0])
        rel = abs(got - want) / want
        print(f"{m} loss.{v}: {got:.12g} vs {want:.12g}, relative error {rel:.2g}")
        bad += rel > 1e-6
sys.exit(bad)
EOF
}

# The MPNet fixtures of setup_file; a skip with mk_mpnet_fixture.py's reason
# when the Python stack is missing, a failure when the script failed.
need_mpnet() {
    need_streams
    if [ ! -f "$S/mpnet-tiny.train.npy" ]; then
        cat "$S/mpnet.out"
        grep -q '^SKIP' "$S/mpnet.out" && skip "$(grep '^SKIP' "$S/mpnet.out" | cut -c6-)"
        return 1
    fi
    MPNET=$S/mpnet
}

# The runs: one thread (the test machine is shared), the CPU named.
train() {
    mnr-train --threads 1 --device cpu "$@"
}

# Log lines without the timing, for comparisons.
steps_of() {
    sed 's/,"examples_per_s":[^}]*//' "$1"
}

state_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1/state.json" "$2"
}

@test "--help and --version" {
    run mnr-train --help
    [ "$status" -eq 0 ]
    [[ "${lines[0]}" == "Usage: mnr-train -m MODEL_DIR -o OUT_DIR [OPTION]... [FILE]..." ]]
    for opt in --batch-size --epochs --max-steps --lr --warmup --schedule-steps --scale \
        --symmetric --optimizer --weight-decay --adam-eps --max-grad-norm --seed --no-shuffle \
        --max-length --drop-last --device --precision --threads --log --checkpoint-every --resume \
        --init-from-config --eval-sts --eval-every --keep-best; do
        [[ "$output" == *"$opt"* ]] || { echo "help lacks $opt"; return 1; }
        sed 's/\\-/-/g' "$MAN_PAGE" | grep -q -- "^\\.B[RI]* $opt" ||
            { echo "man page lacks $opt"; return 1; }
    done
    run mnr-train --version
    [ "$status" -eq 0 ]
    [[ "$output" == *"0.1.0"* ]]
    run bash -c 'mnr-train --help >/dev/full'
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: stdout: write error: No space left on device" ]
}

@test "tiny fixture: three AdamW steps give train.losses, grad_norms, lrs and after.* weights" {
    need_streams
    # batch size 6: the fixture's batches have 6 rows (the sampler keeps them:
    # no text repeats within them)
    run --separate-stderr mnr-train -m "$TINY/model" -o out --batch-size 6 --no-shuffle \
        --lr 1e-3 --warmup 2 --schedule-steps 10 --max-steps 3 --weight-decay 0.01 \
        --adam-eps 1e-6 --max-grad-norm 1 --log log.jsonl "$S/tiny.train.npy"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ "$stderr" == *"mnr-train: --device auto: training on the CPU"* ]]
    [[ "$stderr" == *"mnr-train: step 3/3 loss 1.649622"* ]]
    run python3 "$PY/check_fixture_train.py" "$TINY/reference.safetensors" log.jsonl out/model.safetensors
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "head64 fixture: three AdamW steps give train.losses, grad_norms, lrs and after.* weights" {
    need_streams
    run train -m "$HEAD64/model" -o out --batch-size 8 --no-shuffle --lr 1e-3 --warmup 2 \
        --schedule-steps 10 --max-steps 3 --weight-decay 0.01 --adam-eps 1e-6 --max-grad-norm 1 \
        --log log.jsonl "$S/head64.train.npy"
    [ "$status" -eq 0 ]
    run python3 "$PY/check_fixture_train.py" "$HEAD64/reference.safetensors" log.jsonl out/model.safetensors
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "MPNet: three AdamW steps of both random models give transformers' losses, grad_norms, lrs and weights" {
    need_mpnet
    for m in mpnet-tiny mpnet-head64; do
        B=$(python3 -c 'import numpy, sys; print(numpy.load(sys.argv[1]).shape[0])' "$S/$m.train.npy")
        run train -m "$MPNET/$m/model" -o "out.$m" --batch-size "$B" --no-shuffle --lr 1e-3 --warmup 2 \
            --schedule-steps 10 --max-steps 3 --weight-decay 0.01 --adam-eps 1e-6 --max-grad-norm 1 \
            --log "$m.jsonl" "$S/$m.train.npy"
        [ "$status" -eq 0 ]
        run python3 "$PY/check_fixture_train.py" "$MPNET/$m/reference.safetensors" "$m.jsonl" "out.$m/model.safetensors"
        echo "$m: $output"
        [ "$status" -eq 0 ]
    done
}

@test "MPNet: loss.pairs, loss.triplets and loss.symmetric (--lr 0) of both random models" {
    need_mpnet
    run first_step_losses "$MPNET" mpnet-tiny mpnet-head64
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "MPNet: the output loads in transformers and sentence-transformers with the embeddings embed gives" {
    need_mpnet
    train -m "$MPNET/mpnet-tiny/model" -o out --batch-size 6 --lr 1e-3 --max-steps 3 \
        "$S/mpnet-tiny.triplets.npy" 2>/dev/null
    [ "$(jq -r .model_type out/config.json)" = mpnet ]
    embed --threads 1 -m out "$S/mpnet-tiny.triplets.npy" >emb.npy 2>/dev/null
    run python3 "$PY/check_trained.py" out "$S/mpnet-tiny.triplets.npy" emb.npy
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "loss.pairs, loss.triplets and loss.symmetric: the first step's loss (--lr 0) of both fixtures" {
    need_streams
    run first_step_losses "$FIXTURES" tiny head64
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "log: one JSON object per step with step, loss, lr, grad_norm, examples_per_s, ranks in %.17g" {
    need_streams
    train -m "$TINY/model" -o out --batch-size 8 --log log.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(wc -l <log.jsonl)" -eq 5 ]
    run python3 - <<'EOF'
import json
steps = [json.loads(l) for l in open("log.jsonl")]
assert [s["step"] for s in steps] == [1, 2, 3, 4, 5], steps
for s in steps:
    assert list(s) == ["step", "epoch", "loss", "lr", "grad_norm", "examples_per_s", "ranks"], s
    assert s["ranks"] == 1, s  # one process (several under mpirun: tests/cli/mpi.bats)
    assert s["epoch"] == 1 and s["loss"] > 0 and s["grad_norm"] > 0 and s["examples_per_s"] > 0
# warmup 0.1 of 5 steps is ceil(0.5) = 1 step: lr 0, then linear decay from 2e-5
assert [s["lr"] for s in steps] == [0, 2e-5, 2e-5 * 3 / 4, 2e-5 * 2 / 4, 2e-5 / 4], steps
line = open("log.jsonl").readline()
assert '"lr":0,' in line and len(line.split('"loss":')[1].split(",")[0]) >= 17, line
EOF
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "NO_DUPLICATES: rows sharing a text wait for the next batch; the steps come from the sampler" {
    need_streams
    # three rows with the same anchor: three batches of one row, whose loss is 0
    run --separate-stderr train -m "$TINY/model" -o out --batch-size 3 --no-shuffle --log log.jsonl "$S/dup.npy"
    [ "$status" -eq 0 ]
    [ "$(wc -l <log.jsonl)" -eq 3 ]
    [ "$(grep -c '"loss":0,' log.jsonl)" -eq 3 ]
    # --drop-last drops all three partial batches: nothing to train on
    run --separate-stderr train -m "$TINY/model" -o out2 --batch-size 3 --drop-last "$S/dup.npy"
    [ "$status" -eq 1 ]
    [ "$stderr" = "mnr-train: no batch to train on: 3 rows, batch size 3 and --drop-last" ]
    [ ! -e out2 ]
    # 36 rows in batches of 8: 5 steps an epoch, 4 with --drop-last
    train -m "$TINY/model" -o out3 --batch-size 8 --epochs 2 --drop-last --log drop.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(wc -l <drop.jsonl)" -eq 8 ]
    [ "$(grep -c '"epoch":2' drop.jsonl)" -eq 4 ]
}

@test "runs are deterministic in --seed; dropout from config.json is applied" {
    need_streams
    train -m "$S/drop" -o a --batch-size 8 --max-steps 3 --log a.jsonl "$S/syn.npy" 2>/dev/null
    train -m "$S/drop" -o b --batch-size 8 --max-steps 3 --log b.jsonl "$S/syn.npy" 2>/dev/null
    cmp a/model.safetensors b/model.safetensors
    [ "$(steps_of a.jsonl)" = "$(steps_of b.jsonl)" ]
    train -m "$S/drop" -o c --batch-size 8 --max-steps 3 --seed 43 "$S/syn.npy" 2>/dev/null
    ! cmp -s a/model.safetensors c/model.safetensors
    # the same batches without dropout give another first loss
    train -m "$TINY/model" -o d --batch-size 8 --max-steps 1 --log d.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(head -n 1 a.jsonl | cut -d, -f3)" != "$(cut -d, -f3 d.jsonl)" ]
    # and no dropout, no shuffle: the same batches whatever the seed
    train -m "$TINY/model" -o e --batch-size 8 --max-steps 2 --no-shuffle --seed 1 "$S/syn.npy" 2>/dev/null
    train -m "$TINY/model" -o f --batch-size 8 --max-steps 2 --no-shuffle --seed 2 "$S/syn.npy" 2>/dev/null
    cmp e/model.safetensors f/model.safetensors
    # Adam with no weight decay is AdamW with none
    train -m "$TINY/model" -o g --batch-size 8 --max-steps 2 --optimizer adam --weight-decay 0 --max-grad-norm 0 "$S/syn.npy" 2>/dev/null
    train -m "$TINY/model" -o h --batch-size 8 --max-steps 2 --optimizer adamw --weight-decay 0 --max-grad-norm 0 "$S/syn.npy" 2>/dev/null
    cmp g/model.safetensors h/model.safetensors
}

@test "resume: N steps, checkpoint, N more equal 2N straight (dropout, shuffle, an epoch boundary)" {
    need_streams
    common=(-m "$S/drop" --batch-size 8 --epochs 3 --lr 1e-3 --schedule-steps 8)
    train "${common[@]}" -o a --max-steps 4 --checkpoint-every 4 --log a.jsonl "$S/syn.npy" 2>/dev/null
    [ -f a.checkpoint/optimizer.safetensors ] && [ -f a.checkpoint/model.safetensors ]
    [ "$(state_field a.checkpoint step)" -eq 4 ]
    run --separate-stderr train --resume a.checkpoint -o b --max-steps 8 --log b.jsonl "$S/syn.npy"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"steps 5 to 8 of a 8-step schedule"* ]]
    train "${common[@]}" -o s --max-steps 8 --log s.jsonl "$S/syn.npy" 2>/dev/null
    cmp b/model.safetensors s/model.safetensors
    [ "$(steps_of b.jsonl)" = "$(steps_of s.jsonl | tail -n 4)" ]
    [ "$(steps_of a.jsonl)" = "$(steps_of s.jsonl | head -n 4)" ]
    grep -q '"step":6,"epoch":2,' b.jsonl
    # the checkpoint is a model directory too
    train -m a.checkpoint -o c --max-steps 1 --lr 0 "$S/syn.npy" 2>/dev/null
    # options that decide the batches cannot change; others may
    run train --resume a.checkpoint -o b2 --batch-size 4 "$S/syn.npy"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--batch-size differs from the checkpoint's"* ]]
    run train --resume a.checkpoint -o b3 --max-steps 5 --lr 1e-4 --log b3.jsonl "$S/syn.npy"
    [ "$status" -eq 0 ]
    # warmup ceil(0.1 * 8) = 1 step: step 5 has 1e-4 * (8 - 4) / (8 - 1)
    grep -q '"step":5,"epoch":1,.*"lr":5.7142857142857142e-05,' b3.jsonl
    run train --resume a.checkpoint -o b5 --max-steps 3 "$S/syn.npy"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-steps 3: the checkpoint is at step 4 already"* ]]
    # resumed at its last step: nothing to train, the checkpoint's model written
    run --separate-stderr train --resume a.checkpoint -o b6 --max-steps 4 "$S/syn.npy"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"no steps left: the checkpoint is at step 4 of 4"* ]]
    cmp b6/model.safetensors a/model.safetensors
    # another input
    run train --resume a.checkpoint -o b4 "$S/dup.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"a.checkpoint: the input differs from the one this checkpoint was trained on"* ]]
}

# Start a long run in the background and send it SIG once its log has 2 steps.
interrupt_run() {
    local sig=$1 out=$2
    mnr-train --threads 1 -m "$S/drop" -o "$out" --batch-size 8 --epochs 1000 --lr 1e-4 \
        --schedule-steps 10000 --log "$out.jsonl" "$S/syn.npy" 2>"$out.err" &
    local pid=$! i
    for i in $(seq 600); do
        [ -f "$out.jsonl" ] && [ "$(wc -l <"$out.jsonl")" -ge 2 ] && break
        sleep 0.05
    done
    kill "-$sig" "$pid"
    wait "$pid" || echo $?
}

@test "SIGINT: a checkpoint at the next step boundary, exit 130; resuming gives the straight run" {
    need_streams
    run interrupt_run INT big
    [ "$output" = 130 ]
    cat big.err
    k=$(state_field big.checkpoint step)
    [[ "$(tail -n 1 big.err)" == "mnr-train: interrupted; the state after step $k is in big.checkpoint (continue with --resume big.checkpoint)" ]]
    [ ! -e big ]
    [ "$(wc -l <big.jsonl)" -eq "$k" ]
    train --resume big.checkpoint -o r --max-steps $((k + 2)) --log r.jsonl "$S/syn.npy" 2>/dev/null
    mnr-train --threads 1 -m "$S/drop" -o s --batch-size 8 --epochs 1000 --lr 1e-4 \
        --schedule-steps 10000 --max-steps $((k + 2)) --log s.jsonl "$S/syn.npy" 2>/dev/null
    cmp r/model.safetensors s/model.safetensors
    [ "$(steps_of r.jsonl)" = "$(steps_of s.jsonl | tail -n 2)" ]
}

@test "SIGTERM: a checkpoint, exit 143" {
    need_streams
    run interrupt_run TERM big
    [ "$output" = 143 ]
    [[ "$(tail -n 1 big.err)" == "mnr-train: terminated; the state after step "*" is in big.checkpoint (continue with --resume big.checkpoint)" ]]
    [ -f big.checkpoint/state.json ]
}

@test "a non-finite loss stops training, exit 1, with a checkpoint of the last good state" {
    need_streams
    # a learning rate of 1e30 takes the weights to 1e30 in one step; the next
    # forward pass overflows
    run --separate-stderr train -m "$TINY/model" -o out --batch-size 6 --no-shuffle --lr 1e30 \
        --warmup 0 --max-grad-norm 0 --log log.jsonl "$S/tiny.train.npy"
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "${stderr##*$'\n'}" =~ ^"mnr-train: step 2: the "(loss|gradient norm)" is "(NaN|infinite)"; training stopped; the state after step 1 is in out.checkpoint (continue with --resume out.checkpoint)"$ ]]
    [ ! -e out ]
    [ "$(wc -l <log.jsonl)" -eq 1 ]
    [ "$(state_field out.checkpoint step)" -eq 1 ]
    [ "$(state_field out.checkpoint batch_in_epoch)" -eq 1 ]
    # the checkpoint holds the weights after step 1, before the bad step
    train -m "$TINY/model" -o one --batch-size 6 --no-shuffle --lr 1e30 --warmup 0 \
        --max-grad-norm 0 --max-steps 1 "$S/tiny.train.npy" 2>/dev/null
    cmp one/model.safetensors out.checkpoint/model.safetensors
}

@test "--max-length N keeps the first N-1 ids and the last; longer sequences are an error without it" {
    need_streams
    train -m "$TINY/model" -o a --batch-size 4 --max-length 64 --log a.jsonl "$S/long.npy" 2>/dev/null
    train -m "$TINY/model" -o b --batch-size 4 --log b.jsonl "$S/cut.npy" 2>/dev/null
    cmp a/model.safetensors b/model.safetensors
    [ "$(steps_of a.jsonl)" = "$(steps_of b.jsonl)" ]
    run train -m "$TINY/model" -o c "$S/long.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"long.npy: frame 1 at byte 0: row 0 column 0: 130 tokens, more than the model's 128 positions (see --max-length)" ]]
    run train -m "$TINY/model" -o c --max-length 129 "$S/long.npy"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-length 129 is more than the model's 128 positions"* ]]
}

@test "--init-from-config: random weights as transformers initialises them, vocabulary beside the config" {
    need_streams
    train --init-from-config "$TINY/model/config.json" -o r --max-steps 1 --lr 0 "$S/syn.npy" 2>/dev/null
    train --init-from-config "$TINY/model/config.json" -o r2 --max-steps 1 --lr 0 "$S/syn.npy" 2>/dev/null
    train --init-from-config "$TINY/model/config.json" -o r3 --max-steps 1 --lr 0 --seed 7 "$S/syn.npy" 2>/dev/null
    cmp r/model.safetensors r2/model.safetensors
    ! cmp -s r/model.safetensors r3/model.safetensors
    cmp r/vocab.txt "$TINY/model/vocab.txt"
    run python3 - <<'EOF'
import numpy as np
from safetensors.numpy import load_file
w = load_file("r/model.safetensors")
for name, t in w.items():
    if name.endswith("LayerNorm.weight"):
        assert (t == 1).all(), name
    elif name.endswith("bias"):
        assert (t == 0).all(), name
    elif t.size >= 1000:  # normal(0, 0.02)
        assert abs(t.mean()) < 2e-3 and abs(t.std() / 0.02 - 1) < 0.05, (name, t.mean(), t.std())
assert (w["embeddings.word_embeddings.weight"][0] == 0).all(), "pad_token_id row"
EOF
    echo "$output"
    [ "$status" -eq 0 ]
    # and training from it
    train --init-from-config "$TINY/model/config.json" -o t --max-steps 2 --lr 1e-3 "$S/syn.npy" 2>/dev/null
    ! cmp -s r/model.safetensors t/model.safetensors
}

@test "--eval-sts: Spearman of the model's cosines on 300 STS dev pairs, in the log" {
    need_streams
    train -m "$TINY/model" -o out --max-steps 1 --lr 0 --eval-sts "$S/sts300.csv" --log log.jsonl "$S/syn.npy" 2>err
    grep -q '^mnr-train: step 1: STS Spearman 0.3644' err
    # the weights are the untrained model's: the fixture's cosines give scipy's answer
    run python3 - "$TINY/sts-dev.cosine.txt" "$S/sts300.csv" <<'EOF'
import json, sys
import numpy as np
from scipy import stats
cos = np.loadtxt(sys.argv[1])[:300]
gold = [float(l.split("\t")[4]) for l in open(sys.argv[2])]
want = stats.spearmanr(cos, gold)[0]
lines = [json.loads(l) for l in open("log.jsonl")]
assert lines[-1].keys() == {"step", "eval_sts_spearman"} and lines[-1]["step"] == 1, lines
got = lines[-1]["eval_sts_spearman"]
print(f"spearman {got!r}, scipy on the fixture's cosines {want!r}")
sys.exit(1 if abs(got - want) > 1e-6 else 0)
EOF
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "--keep-best: the output holds the weights of the best evaluation" {
    need_streams
    common=(-m "$TINY/model" --batch-size 8 --epochs 2 --lr 2e-3 --eval-sts "$S/sts300.csv")
    train "${common[@]}" -o best --eval-every 3 --keep-best --log log.jsonl "$S/syn.npy" 2>/dev/null
    # evaluations at steps 3, 6, 9 and 10 (the end)
    [ "$(grep -c eval_sts log.jsonl)" -eq 4 ]
    best=$(python3 -c '
import json
ev = [json.loads(l) for l in open("log.jsonl") if "eval" in l]
print(max(ev, key=lambda e: (e["eval_sts_spearman"], -e["step"]))["step"])')
    echo "best step $best"
    train "${common[@]}" -o ref --schedule-steps 10 --max-steps "$best" "$S/syn.npy" 2>/dev/null
    cmp best/model.safetensors ref/model.safetensors
    run train -m "$TINY/model" -o x --keep-best "$S/syn.npy"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--eval-every and --keep-best need --eval-sts"* ]]
}

@test "the output loads in transformers and sentence-transformers with the embeddings embed gives" {
    need_streams
    python3 -c 'import sentence_transformers, transformers' 2>/dev/null ||
        skip "sentence-transformers or transformers is not installed"
    train -m "$TINY/model" -o out --batch-size 6 --lr 1e-3 --max-steps 3 "$S/tiny.triplets.npy" 2>/dev/null
    args=(out "$S/tiny.triplets.npy")
    if command -v embed >/dev/null; then
        embed --threads 1 -m out "$S/tiny.triplets.npy" >emb.npy 2>/dev/null
        args+=(emb.npy)
    fi
    run python3 "$PY/check_trained.py" "${args[@]}"
    echo "$output"
    [ "$status" -eq 0 ]
    command -v embed >/dev/null || skip "embed is not built: compared transformers with sentence-transformers only"
}

@test "input errors: malformed streams, columns, ids, empty sequences, missing model, output" {
    need_streams
    run train -m "$TINY/model" -o out "$S/truncated.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == "mnr-train: $S/truncated.npy: frame 3 at byte 5824: truncated frame"* ]]
    run train -m "$TINY/model" -o out "$S/one-column.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"one-column.npy: frame 1 at byte 0: 1 column: training needs at least 2 (anchor, positive)" ]]
    run train -m "$TINY/model" -o out "$S/mixed.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"mixed.npy: frame 2 at byte 192: 3 columns, the frames before have 2" ]]
    run train -m "$HEAD64/model" -o out "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"syn.npy: frame 1 at byte 0: row 0 column 0: token id "*" outside the vocabulary (4096)" ]]
    run train -m "$TINY/model" -o out "$S/empty-seq.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"empty-seq.npy: frame 1 at byte 0: row 0 column 1 is empty" ]]
    run train -m "$TINY/model" -o out <"$S/nothing.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: stdin: no training rows" ]
    run train -m "$TINY/model" -o out no-such.npy
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: no-such.npy: No such file or directory" ]
    run train -m no-such-model -o out "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == "mnr-train: no-such-model"* ]]
    run train -m "$TINY/model" -o no-such-dir/out "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == "mnr-train: no-such-dir: cannot create the output directory there: No such file or directory" ]]
    touch plain-file
    run train -m "$TINY/model" -o plain-file/out "$S/syn.npy"
    [ "$status" -eq 1 ]
    run train -m "$TINY/model" -o out --log no-such-dir/log "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"mnr-train: no-such-dir/log: No such file or directory" ]]
    run train --resume no-such-checkpoint -o out "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == "mnr-train: no-such-checkpoint/state.json"* ]]
    [ ! -e out ]
}

@test "outputs: only a model directory the tool wrote is replaced, never a file, other files or the input" {
    need_streams
    echo keep >plain
    mkdir other && echo mine >other/notes.txt
    cp "$S/syn.npy" input.npy
    for target in plain other input.npy; do
        run train -m "$TINY/model" -o "$target" --max-steps 1 input.npy
        [ "$status" -eq 1 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == "mnr-train: $target: exists and is not a model directory this tool wrote; refusing to replace it" ]]
    done
    [ "$(cat plain)" = keep ] && [ "$(cat other/notes.txt)" = mine ] && cmp input.npy "$S/syn.npy"
    # a checkpoint path holding something else is refused too
    mkdir x.checkpoint && echo mine >x.checkpoint/notes.txt
    run train -m "$TINY/model" -o x --max-steps 1 input.npy
    [ "$status" -eq 1 ]
    [[ "$output" == "mnr-train: x.checkpoint: exists and is not a checkpoint this tool wrote; refusing to replace it" ]]
    # positive controls: a model directory it wrote (also the one of an
    # earlier version: the same files) and a checkpoint are replaced
    train -m "$TINY/model" -o out --max-steps 2 --checkpoint-every 1 input.npy 2>/dev/null
    train -m "$TINY/model" -o out --max-steps 1 --checkpoint-every 1 --lr 0 input.npy 2>/dev/null
    [ "$(state_field out.checkpoint step)" -eq 1 ]
    cmp out/model.safetensors out.checkpoint/model.safetensors
    # leftovers of a killed run (a process that is gone) are removed
    mkdir out.tmp.999999999 out.checkpoint.old.999999999 out.tmp.1x
    train -m "$TINY/model" -o out --max-steps 1 input.npy 2>/dev/null
    [ ! -e out.tmp.999999999 ] && [ ! -e out.checkpoint.old.999999999 ] && [ -d out.tmp.1x ]
}

@test "resume: the log is cut back to the checkpoint's step; --checkpoint-every is kept" {
    need_streams
    common=(-m "$S/drop" --batch-size 8 --epochs 2 --lr 1e-3 --schedule-steps 7)
    train "${common[@]}" -o a --max-steps 5 --checkpoint-every 3 --log a.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(state_field a.checkpoint step)" -eq 3 ] && [ "$(wc -l <a.jsonl)" -eq 5 ]
    train --resume a.checkpoint -o b --max-steps 7 --log a.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(jq -s 'map(.step)' -c a.jsonl)" = "[1,2,3,4,5,6,7]" ]
    # the resumed run wrote its own checkpoint at step 6 without being told again
    [ "$(state_field b.checkpoint step)" -eq 6 ]
    train "${common[@]}" -o s --max-steps 7 --log s.jsonl "$S/syn.npy" 2>/dev/null
    [ "$(steps_of a.jsonl)" = "$(steps_of s.jsonl)" ]
    cmp b/model.safetensors s/model.safetensors
}

@test "a log that cannot be written stops the run before the model is written" {
    need_streams
    [ -w /dev/full ] || skip "no /dev/full"
    run train -m "$TINY/model" -o out --max-steps 2 --log /dev/full "$S/syn.npy"
    [ "$status" -eq 1 ]
    [[ "${lines[-1]}" == "mnr-train: /dev/full: write error: No space left on device" ]]
    [ ! -e out ]
}

@test "usage errors exit 2" {
    for args in "-o out" "-m $TINY/model" "-m $TINY/model -o out --bogus" \
        "-m $TINY/model -o out --batch-size 0" "-m $TINY/model -o out --lr -1" \
        "-m $TINY/model -o out --warmup abc" "-m $TINY/model -o out --warmup 1.5" \
        "-m $TINY/model -o out --optimizer sgd" "-m $TINY/model -o out --max-length 1" \
        "-m $TINY/model -o out --device tpu" "-m $TINY/model -o out --eval-every 5" \
        "-m $TINY/model --init-from-config $TINY/model/config.json -o out" \
        "-m $TINY/model -o out --scale 0" "-m $TINY/model -o out --epochs"; do
        run mnr-train $args
        echo "$args: $output"
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]  # one line, as every diagnostic
    done
}

# Whether this build and machine can train on the GPU: --device cuda gets past
# the device check, which comes once the model and the input are read (a
# step on the synthetic rows).
gpu_usable() {
    ! mnr-train --device cuda -m "$TINY/model" -o "$BATS_TEST_TMPDIR/probe.out" --max-steps 1 \
        "$S/syn.npy" 2>&1 | grep -q -- '--device cuda: '
}

@test "--device and --precision without a GPU: auto says CPU and why, cuda is one error line" {
    need_streams
    gpu_usable && skip "a usable GPU is present (the GPU checks are tests/gpu/check.sh)"
    # auto names the CPU and the reason; bf16 without AVX512_BF16 (forced here
    # by BERTPIPE_CPU_BF16=0) is a note on the CPU, not an error
    run --separate-stderr env BERTPIPE_CPU_BF16=0 mnr-train -m "$TINY/model" -o out --threads 1 \
        --max-steps 1 --precision bf16 "$S/syn.npy"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [ "${stderr_lines[0]}" = "mnr-train: --device auto: training on the CPU (built without CUDA; 1 thread)" ] ||
        [[ "${stderr_lines[0]}" == "mnr-train: --device auto: training on the CPU (no CUDA device"*"; 1 thread)" ]]
    [ "${stderr_lines[1]}" = "mnr-train: --precision bf16: computing in fp32 on the CPU (BERTPIPE_CPU_BF16=0)" ]
    [ -f out/model.safetensors ]
    # explicit cpu and fp32: no device line, no note
    run --separate-stderr train -m "$TINY/model" -o out2 --max-steps 1 --precision fp32 "$S/syn.npy"
    [ "$status" -eq 0 ]
    [[ "$stderr" != *"--device"* && "$stderr" != *"--precision"* ]]
    # cuda: exit 1, one line, nothing written
    run --separate-stderr mnr-train -m "$TINY/model" -o out3 --device cuda --precision fp32 "$S/syn.npy"
    [ "$status" -eq 1 ]
    [ "${#stderr_lines[@]}" -eq 1 ]
    [[ "$stderr" == "mnr-train: --device cuda: "* ]]
    [ ! -e out3 ]
    # --precision: a usage error for anything but fp32 and bf16, or no argument
    for args in "--precision fp16" "--precision BF16" "--precision"; do
        run mnr-train -m "$TINY/model" -o out4 $args
        echo "$args: $output"
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]  # one line, as every diagnostic
    done
    run mnr-train -m "$TINY/model" -o out4 --precision fp16
    [ "${lines[0]}" = "mnr-train: --precision: 'fp16' is not fp32 or bf16" ]
}

@test "progress: a line per step for short runs when stderr is not a terminal" {
    need_streams
    run --separate-stderr train -m "$TINY/model" -o out --batch-size 8 "$S/syn.npy"
    [ "$status" -eq 0 ]
    [ "$(grep -c '^mnr-train: step [1-5]/5 loss [0-9.]* [0-9.]* it/s elapsed [0-9:]* eta [0-9:]*$' <<<"$stderr")" -eq 5 ]
    [[ "$stderr" == *"mnr-train: 36 rows of 2 columns; steps 1 to 5 of a 5-step schedule (warmup 1)"* ]]
    [[ "${stderr##*$'\n'}" == "mnr-train: wrote out" ]]
}

# The man page's EXAMPLES run in a directory holding the tiny model (as
# "model"), the SNLI and STS files; each command's output must be the text
# below it.
setup_man_examples() {
    cd "$BATS_TEST_TMPDIR"
    ln -s "$TINY/model" model
    ln -s "$DATA/nli/snli_1.0_devtest.jsonl" snli_1.0_devtest.jsonl
    ln -s "$STS_DEV" sts-dev.csv
}

@test "man page examples" {
    setup_man_examples
    run run_man_examples "$MAN_PAGE" stdout
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ran $(man_examples "$MAN_PAGE" | grep -c '^\$ ') examples" ]
}

# A CPU with AVX512_BF16 but no AMX tiles (the issue's AMD Zen 4, or an Intel
# one whose Linux grants no tiles) trains through other product kernels
# (oneDNN's vdpbf16ps ones): tests/unit/cpu_bf16.c's 100 steps again with
# oneDNN held to them (NO_TILES, helper.bash), the same bounds on the losses.
@test "bf16 training without AMX tiles (oneDNN held to AVX512_BF16): 100 steps within 2% + 0.01 of fp32" {
    unit=$BINDIR/../tests/cpu_bf16
    [ -x "$unit" ] || skip "$unit is not built (make)"
    run env SHARED="$SHARED" "${NO_TILES[@]}" "$unit"
    [[ "$output" != "1..0 # SKIP"* ]] || skip "${output#1..0 # SKIP }"
    grep '^# step ' <<<"$output" | sed 's/^/# without tiles: /' >&3
    [ "$status" -eq 0 ]  # the unit's exit status: 0 only if all its checks passed
    [[ "$output" == *"ok "*"bf16 ran: "* ]]
}
