#!/usr/bin/env bats
# Every tool has --help, --version, usage errors with status 2 and a manual
# page; the pages render cleanly; `make install` puts tools and pages under
# PREFIX in DESTDIR; the examples of bertpipe(7) print what the page shows.
# (Each tool's own bats file runs the examples of its page.)
load helper

TOP=$BATS_TEST_DIRNAME/../..

tools() {
    local c
    for c in "$TOP"/cmd/*.c; do basename "$c" .c; done
}

@test "there are tools to check" {
    run tools
    [ "${#lines[@]}" -ge 5 ]
    [[ " ${lines[*]} " == *" nli-filter "* ]]
    [[ " ${lines[*]} " == *" spearman "* ]]
}

@test "every tool: --help prints its usage on stdout and exits 0" {
    for t in $(tools); do
        "$BINDIR/$t" --help >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" ||
            { echo "$t --help: exit $?"; return 1; }
        head -n 1 "$BATS_TEST_TMPDIR/out" | grep -q "^Usage: $t " || { echo "$t --help: no 'Usage: $t'"; return 1; }
        grep -q -- "--version" "$BATS_TEST_TMPDIR/out" || { echo "$t --help: --version not listed"; return 1; }
        [ ! -s "$BATS_TEST_TMPDIR/err" ] || { echo "$t --help wrote to stderr"; return 1; }
    done
}

@test "every tool: --version prints 'TOOL (bertpipe) VERSION' and exits 0" {
    version=$(sed -n 's/^#define BP_VERSION "\(.*\)"/\1/p' "$TOP/lib/util.h")
    [ -n "$version" ]
    for t in $(tools); do
        run "$BINDIR/$t" --version
        [ "$status" -eq 0 ] || { echo "$t --version: exit $status"; return 1; }
        [ "$output" = "$t (bertpipe) $version" ] || { echo "$t --version: '$output'"; return 1; }
    done
}

@test "every tool: an unknown option is a usage error, exit 2, nothing on stdout" {
    for t in $(tools); do
        "$BINDIR/$t" --no-such-option >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" </dev/null && s=0 || s=$?
        [ "$s" -eq 2 ] || { echo "$t --no-such-option: exit $s"; return 1; }
        [ ! -s "$BATS_TEST_TMPDIR/out" ] || { echo "$t: usage error on stdout"; return 1; }
        grep -q "^$t: .*no-such-option" "$BATS_TEST_TMPDIR/err" || { echo "$t: message lacks the option"; return 1; }
    done
}

@test "every tool has a page in section 1 with the sections of the brief, and bertpipe(7) names it" {
    for t in $(tools); do
        page=$TOP/man/man1/$t.1
        [ -f "$page" ] || { echo "$page: missing"; return 1; }
        for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
            grep -Eq "^\.SH \"?$s\"?\$" "$page" || { echo "$page: no .SH $s"; return 1; }
        done
        grep -q "^\.BR $t (1)" "$TOP/man/man7/bertpipe.7" || { echo "bertpipe.7 does not name $t(1)"; return 1; }
    done
}

@test "every page renders without a groff warning" {
    command -v groff >/dev/null || skip "groff is not installed (Debian: groff-base)"
    for page in "$TOP"/man/man*/*.[1-9]; do
        run groff -t -man -ww -z "$page"
        [ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$page: $output"; return 1; }
    done
}

@test "make install PREFIX=... DESTDIR=... installs every tool and page" {
    [ -f "$BINDIR/../libbertpipe.a" ] || skip "BINDIR=$BINDIR is not a build directory of this tree"
    d=$BATS_TEST_TMPDIR/dest
    run make --no-print-directory -C "$TOP" O="$(cd "$BINDIR/.." && pwd)" PREFIX=/opt/bp DESTDIR="$d" install
    [ "$status" -eq 0 ]
    for t in $(tools); do
        [ -x "$d/opt/bp/bin/$t" ] || { echo "$t not installed"; return 1; }
        cmp "$BINDIR/$t" "$d/opt/bp/bin/$t"
        [ -f "$d/opt/bp/share/man/man1/$t.1" ] || { echo "$t.1 not installed"; return 1; }
    done
    [ -f "$d/opt/bp/share/man/man5/tensor-stream.5" ]
    [ -f "$d/opt/bp/share/man/man7/bertpipe.7" ]
    # The installed tools run, and man finds the installed pages.
    run "$d/opt/bp/bin/spearman" --version
    [[ $output == "spearman (bertpipe) "* ]]
    if command -v man >/dev/null; then
        run env MANPAGER=cat MANWIDTH=80 man -M "$d/opt/bp/share/man" 7 bertpipe
        [ "$status" -eq 0 ]
        [[ $output == *"sentence-embedding training and evaluation as Unix filters"* ]]
    fi
}

@test "the examples of bertpipe(7) print what the page shows" {
    python3 -c 'import numpy' 2>/dev/null || skip "numpy is not installed (the last example uses it)"
    cd "$BATS_TEST_TMPDIR"
    ln -s "$FIXTURES/tiny/model" model
    cp "$DATA/stsbenchmark/sts-dev.csv" "$DATA/nli/snli_1.0_devtest.jsonl" .
    run run_man_examples "$TOP/man/man7/bertpipe.7" stdout
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = "ran 8 examples" ]
}
