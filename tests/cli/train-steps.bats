#!/usr/bin/env bats
# pipelines/train.sh's record of a training run: the table's step count is
# the number of step objects in mnr-train's JSON Lines log, read with jq;
# evaluation objects ({"step": N, "eval_sts_spearman": R}) are not steps.
load helper

TOP=$BATS_TEST_DIRNAME/../..
TINY=$FIXTURES/tiny/model

@test "train.sh: steps are the log's step objects, evaluations not counted" {
    d=$BATS_TEST_TMPDIR
    cut -f6,7 "$DATA/stsbenchmark/sts-dev.csv" | head -n 48 >"$d/pairs.tsv"
    wp-tokenize -m "$TINY" --max-length 32 <"$d/pairs.tsv" >"$d/pairs.tok"
    head -n 20 "$DATA/stsbenchmark/sts-dev.csv" >"$d/sts.csv"
    run "$TOP/pipelines/train.sh" "$d/run" mnr "$TINY" "$d/pairs.tok" --batch-size 16 \
        --eval-sts "$d/sts.csv" --eval-every 1
    [ "$status" -eq 0 ]
    log=$d/run/train/mnr.log
    steps=$(jq .steps "$d/run/train/mnr.json")
    # As many as the last step's number, and as the evaluations (one a step).
    [ "$steps" -ge 2 ]
    [ "$steps" -eq "$(grep '"loss"' "$log" | tail -n 1 | jq .step)" ]
    [ "$steps" -eq "$(grep -c '"eval_sts_spearman"' "$log")" ]
    [ "$(jq .rows "$d/run/train/mnr.json")" -eq 48 ]
}
