#!/usr/bin/env bats
# mnr-train --loss softmax (sentence-transformers' SoftmaxLoss) and the
# article's hand-written loop's settings, against sentence-transformers and a
# PyTorch transcription of the loop (tests/py/st_softmax.py says how the
# gradients and the initial classifier are read from the runs); --labels,
# --sampler, the classifier in checkpoints (bit-identical resume) and out of
# the model directory; the options' errors.  One thread, the CPU.
load helper
bats_require_minimum_version 1.5.0

PY=$BATS_TEST_DIRNAME/../py
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

setup_file() {
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    cd "$BATS_FILE_TMPDIR"
    for m in tiny head64; do
        python3 "$PY/fixture_stream.py" "$FIXTURES/$m/reference.safetensors" "$m.npy" train
    done
    # labels of the 18 (tiny) or 24 (head64) rows: every class in every
    # batch, unevenly
    printf '%s\n' 0 1 2 2 0 1 1 1 0 2 2 0 2 0 0 1 2 1 1 0 2 0 0 1 >lab24.txt
    head -n 18 lab24.txt >lab.txt
    # the tiny model with a Normalize module after pooling, as
    # all-MiniLM-L6-v2 has: the classifier then sees unit vectors
    mkdir norm norm/1_Pooling norm/2_Normalize
    cp "$FIXTURES"/tiny/model/* norm/
    cp "$FIXTURES"/tiny/st-saved/1_Pooling/config.json norm/1_Pooling/
    cat >norm/modules.json <<'EOF'
[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
EOF
    echo '{"max_seq_length": 128, "do_lower_case": false}' >norm/sentence_bert_config.json
}

setup() {
    cd "$BATS_TEST_TMPDIR"
    S=$BATS_FILE_TMPDIR
}

need_streams() {
    [ -f "$S/tiny.npy" ] || skip "python3 with numpy and safetensors is not installed"
}

need_st() {
    python3 -c 'import sentence_transformers, torch' 2>/dev/null ||
        skip "sentence-transformers (and torch) are not installed: the parity is not checked"
}

train() {
    mnr-train --threads 1 --device cpu "$@"
}

# The three runs st_softmax.py reads, in the current directory, on stream $1
# with options $2... (the loss and the settings under test): the initial
# classifier (lr 0), the gradients of batch 0 (see st_softmax.py) and three
# steps with the settings under test ($STEP_OPTS).
parity_runs() {
    local model=$1 stream=$2 rows B
    shift 2
    cp "$stream" t.npy
    read -r rows B < <(python3 "$PY/streams.py" frames t.npy | awk '{ r += $1 } NR == 1 { b = $1 } END { print r, b }')
    head -n "$rows" "$S/lab24.txt" >lab.txt
    train -m "$model" -o init --batch-size $B --no-shuffle --max-steps 1 --lr 0 \
        --checkpoint-every 1 "$@" t.npy 2>/dev/null
    train -m "$model" -o grad --batch-size $B --no-shuffle --max-steps 1 --optimizer adam \
        --weight-decay 0 --max-grad-norm 0 --warmup 0 --adam-eps 1e8 --lr 1e11 \
        --checkpoint-every 1 "$@" t.npy 2>/dev/null
    train -m "$model" -o steps --batch-size $B --no-shuffle --max-steps 3 --checkpoint-every 3 \
        --log steps.jsonl $STEP_OPTS "$@" t.npy 2>/dev/null
}

# parity STEP_OPTS MODE VARIANT MODEL STREAM OPTION...: the runs above with
# STEP_OPTS, then st_softmax.py MODE MODEL . [VARIANT] must print OK.
parity() {
    need_streams
    need_st
    local step_opts=$1 mode=$2 variant=$3
    shift 3
    STEP_OPTS=$step_opts parity_runs "$@"
    run --separate-stderr python3 "$PY/st_softmax.py" "$mode" "$1" . $variant
    echo "$output"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [ "$output" = OK ]
}

# sentence-transformers' recipe: AdamW at lr 1e-3, eps 1e-6, weight decay
# 0.01, 2 warmup steps of 10, clipping at 1.
ST_OPTS="--lr 1e-3 --adam-eps 1e-6 --warmup 2 --schedule-steps 10"

@test "softmax: loss, gradients and 3 AdamW steps match sentence-transformers' SoftmaxLoss (tiny)" {
    parity "$ST_OPTS" st "" "$FIXTURES/tiny/model" "$S/tiny.npy" --loss softmax --labels lab.txt
}

@test "softmax: the same on head64 (head size 64, as bert-base)" {
    parity "$ST_OPTS" st "" "$FIXTURES/head64/model" "$S/head64.npy" --loss softmax --labels lab.txt
}

@test "softmax: --softmax-multiply (u * v features) matches sentence-transformers" {
    parity "$ST_OPTS" st "multiply" "$FIXTURES/tiny/model" "$S/tiny.npy" --loss softmax --labels lab.txt --softmax-multiply
}

@test "softmax: a model with a Normalize module gives the classifier unit vectors, as sentence-transformers" {
    parity "$ST_OPTS" st "" "$S/norm" "$S/tiny.npy" --loss softmax --labels lab.txt
}

# The article's loop: Adam without weight decay, int(0.1 * 10) = 1 warmup
# step of 10, no clipping, plain batches; torch.optim.Adam's eps 1e-8 is
# mnr-train's default.  lr 1e-3 instead of the article's 2e-5, so that three
# steps move the weights measurably.
LOOP_OPTS="--optimizer adam --weight-decay 0 --max-grad-norm 0 --sampler plain --lr 1e-3 --warmup 1 --schedule-steps 10"

@test "loop settings, MNR: mnr-train matches the article's PyTorch loop (padded to 128) for 3 steps" {
    parity "$LOOP_OPTS" loop-mnr "" "$FIXTURES/tiny/model" "$S/tiny.npy" --scale 20 --sampler plain
}

@test "loop settings, softmax: mnr-train matches the article's PyTorch loop (padded to 128) for 3 steps" {
    parity "$LOOP_OPTS" loop-softmax "" "$FIXTURES/head64/model" "$S/head64.npy" --loss softmax --labels lab.txt
}

@test "softmax: the classifier starts as torch.nn.Linear does, from the seed, and stays out of the model directory" {
    need_streams
    cp "$S/lab.txt" .
    for seed in 42 42 7; do
        train -m "$FIXTURES/tiny/model" -o "s$seed" --batch-size 6 --max-steps 1 --lr 0 \
            --checkpoint-every 1 --seed $seed --loss softmax --labels lab.txt "$S/tiny.npy" 2>/dev/null
        mv "s$seed.checkpoint" "c$seed.$RANDOM"
    done
    run python3 - <<'EOF'
import glob
import numpy as np
from safetensors.numpy import load_file
heads = {p: load_file(p + "/optimizer.safetensors")["head"] for p in sorted(glob.glob("c*"))}
a, b = [h for p, h in heads.items() if p.startswith("c42.")]
c = [h for p, h in heads.items() if p.startswith("c7.")][0]
F = 3 * 32
bound = 1 / np.sqrt(F)
assert a.shape == (3 * F + 3,), a.shape
assert (a == b).all(), "same seed, other classifier"
assert not (a == c).any(), "other seed, same values"
assert np.abs(a).max() <= bound and np.abs(a).max() > 0.95 * bound, (np.abs(a).max(), bound)
assert abs(a.mean()) < 0.02 and abs(a.std() - bound / np.sqrt(3)) < 0.01, (a.mean(), a.std())
print("OK")
EOF
    echo "$output"; echo "$stderr"
    [ "$output" = OK ]
    # the model directory has the encoder only, as sentence-transformers saves it
    run python3 -c 'import sys; from safetensors.numpy import load_file; print(sorted(k for k in load_file(sys.argv[1]) if not k.startswith(("embeddings", "encoder", "pooler"))))' s42/model.safetensors
    [ "$output" = "[]" ]
}

@test "softmax: a run stopped and resumed ends bit-identical to one run (classifier in the checkpoint)" {
    need_streams
    cp "$S/lab.txt" .
    train -m "$FIXTURES/tiny/model" -o whole --batch-size 6 --epochs 2 --lr 1e-3 --loss softmax \
        --labels lab.txt --checkpoint-every 100 --log whole.jsonl "$S/tiny.npy" 2>/dev/null
    train -m "$FIXTURES/tiny/model" -o part --batch-size 6 --epochs 2 --lr 1e-3 --loss softmax \
        --labels lab.txt --max-steps 4 --schedule-steps 6 --checkpoint-every 4 --log part.jsonl "$S/tiny.npy" 2>/dev/null
    train --resume part.checkpoint -o part --labels lab.txt --log part.jsonl --max-steps 6 \
        "$S/tiny.npy" 2>/dev/null
    cmp whole/model.safetensors part/model.safetensors
    diff <(sed 's/,"examples_per_s":[^}]*//' whole.jsonl) <(sed 's/,"examples_per_s":[^}]*//' part.jsonl)
    run python3 -c 'import json; s = json.load(open("part.checkpoint/state.json"))["options"]; print(s["loss"], s["sampler"], s["softmax_multiply"])'
    [ "$output" = "softmax plain False" ]
    # other labels are other input
    sed '1s/.*/2/' lab.txt >other.txt
    run train --resume part.checkpoint -o part --labels other.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [[ "$output" == *"the input differs from the one this checkpoint was trained on"* ]]
    run train --resume part.checkpoint -o part --labels lab.txt --loss mnr "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--loss differs from the checkpoint's"* ]]
}

@test "--sampler plain cuts the order into consecutive batches; no-duplicates skips repeated texts" {
    need_streams
    # rows 0-2 share an anchor: NO_DUPLICATES makes 3 batches of 1, plain one of 3
    python3 - <<'EOF'
import numpy as np
a = np.full((3, 2, 5), -1, dtype="<i4")
a[:, 0] = [101, 2000, 2001, 2002, 102]
for i in range(3):
    a[i, 1, :4] = [101, 3000 + i, 3001, 102]
np.save("dup.npy", a)
EOF
    printf '0\n1\n2\n' >l3.txt
    train -m "$FIXTURES/tiny/model" -o a --batch-size 3 --log a.jsonl dup.npy 2>/dev/null
    train -m "$FIXTURES/tiny/model" -o b --batch-size 3 --sampler plain --log b.jsonl dup.npy 2>/dev/null
    train -m "$FIXTURES/tiny/model" -o c --batch-size 3 --loss softmax --labels l3.txt --log c.jsonl dup.npy 2>/dev/null
    train -m "$FIXTURES/tiny/model" -o d --batch-size 3 --loss softmax --labels l3.txt \
        --sampler no-duplicates --log d.jsonl dup.npy 2>/dev/null
    [ "$(grep -c '"loss"' a.jsonl)" -eq 3 ]
    [ "$(grep -c '"loss"' b.jsonl)" -eq 1 ]
    [ "$(grep -c '"loss"' c.jsonl)" -eq 1 ]
    [ "$(grep -c '"loss"' d.jsonl)" -eq 3 ]
}

@test "softmax options and labels: usage errors and bad label files" {
    need_streams
    cp "$S/lab.txt" .
    m=(-m "$FIXTURES/tiny/model" -o out)
    run train "${m[@]}" --loss softmax "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [ "$output" = "mnr-train: --loss softmax needs --labels FILE" ]
    run train "${m[@]}" --labels lab.txt "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [ "$output" = "mnr-train: --labels is for --loss softmax" ]
    run train "${m[@]}" --loss softmax --labels lab.txt --symmetric "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [ "$output" = "mnr-train: --symmetric and --scale are MNR's, not the softmax loss's" ]
    run train "${m[@]}" --loss hinge "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [ "$output" = "mnr-train: --loss: 'hinge' is not mnr or softmax" ]
    run train "${m[@]}" --sampler random "$S/tiny.npy"
    [ "$status" -eq 2 ]
    [ "$output" = "mnr-train: --sampler: 'random' is not no-duplicates or plain" ]
    run train "${m[@]}" --softmax-multiply "$S/tiny.npy"
    [ "$status" -eq 2 ]
    head -n 17 lab.txt >short.txt
    run train "${m[@]}" --loss softmax --labels short.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: short.txt:18: 17 labels for 18 training rows" ]
    { cat lab.txt; echo 0; } >long.txt
    run train "${m[@]}" --loss softmax --labels long.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: long.txt:19: more labels than the 18 training rows" ]
    sed '5s/.*/3/' lab.txt >bad.txt
    run train "${m[@]}" --loss softmax --labels bad.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: bad.txt:5: '3' is not a label from 0 to 2" ]
    # a NUL byte does not end the number early
    sed '7s/.*/1\x00junk/' lab.txt >nul.txt
    run train "${m[@]}" --loss softmax --labels nul.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: nul.txt:7: '1' is not a label from 0 to 2" ]
    run train "${m[@]}" --loss softmax --labels missing.txt "$S/tiny.npy"
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: missing.txt: No such file or directory" ]
    python3 "$PY/fixture_stream.py" "$FIXTURES/tiny/reference.safetensors" tri.npy triplets
    run train "${m[@]}" --loss softmax --labels lab.txt tri.npy
    [ "$status" -eq 1 ]
    [ "$output" = "mnr-train: tri.npy: 3 columns: the softmax loss takes pairs (premise, hypothesis)" ]
    [ ! -e out ]
}

@test "--help and mnr-train(1) name the loss and sampler options and the article's loop" {
    run mnr-train --help
    page=$BATS_TEST_DIRNAME/../../man/man1/mnr-train.1
    for opt in --loss --labels --softmax-multiply --sampler; do
        [[ "$output" == *"$opt"* ]] || { echo "help lacks $opt"; return 1; }
        sed 's/\\-/-/g' "$page" | grep -q -- "^\\.B[RI]* $opt" || { echo "man page lacks $opt"; return 1; }
    done
    # the loop's settings, as the page spells them
    sed 's/\\-/-/g' "$page" | grep -qx -- "--optimizer adam --weight-decay 0 --lr 2e-5 --warmup 0.1 --max-grad-norm 0 --sampler plain --scale 20"
}

@test "softmax with --mini-batch (cached passes) trains as without it, to rounding" {
    need_streams
    cp "$S/lab.txt" .
    for mb in 0 4; do
        train -m "$FIXTURES/tiny/model" -o "m$mb" --batch-size 6 --lr 1e-3 --loss softmax \
            --labels lab.txt --mini-batch $mb --checkpoint-every 3 --log "m$mb.jsonl" "$S/tiny.npy" 2>/dev/null
    done
    run python3 - <<'EOF'
import json
import numpy as np
from safetensors.numpy import load_file
losses = [[json.loads(l)["loss"] for l in open(f"m{mb}.jsonl")] for mb in (0, 4)]
assert len(losses[0]) == 3 and np.allclose(losses[0], losses[1], rtol=1e-6, atol=0), losses
for f in ("m0/model.safetensors", "m0.checkpoint/optimizer.safetensors"):
    a, b = load_file(f), load_file(f.replace("m0", "m4"))
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= 1e-5, (f, k, np.abs(a[k] - b[k]).max())
print("OK")
EOF
    echo "$output"
    [ "$output" = OK ]
}
