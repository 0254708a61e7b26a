#!/bin/bash
# The bad-input suite: one TAP test per line of tests/cli/bad-input.cases
# (name, exit status, message pattern, files that must stay unchanged,
# command), run in a directory that tests/cli/bad-input-files.py fills with
# malformed streams, rows, vocabularies, tokenizer files, configs,
# safetensors and torch .bin files (see both files).  Every case checks:
#   - the exit status (0 for the positive controls, 1 bad input, 2 usage);
#   - on failure, exactly one line on stderr, matching the pattern (which
#     names FILE:LINE, FILE or "frame N at byte B");
#   - on success, a pattern, if given, matches a line of stderr;
#   - the files listed are byte-identical afterwards, and no file appeared
#     or disappeared in the directory (no temporary left behind);
#   - no crash (a signal gives a status above 128) within 120 s.
# Needs python3 and ../shared/fixtures/tiny (skips, saying so, without them).
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
BINDIR=${BINDIR:-$root/build/bin}
SHARED=${SHARED:-$root/../shared}
export PATH=$BINDIR:$PATH
cases=$here/bad-input.cases

if ! command -v python3 >/dev/null; then
    echo "1..0 # SKIP python3 not found (bad-input-files.py writes the inputs)"
    exit 0
fi
if [ ! -d "$SHARED/fixtures/tiny/model" ]; then
    echo "1..0 # SKIP $SHARED/fixtures/tiny/model not found"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! python3 "$here/bad-input-files.py" "$work" "$SHARED" >"$work.log" 2>&1; then
    echo "1..1"
    echo "not ok 1 - bad-input-files.py failed"
    sed 's/^/# /' "$work.log"
    rm -f "$work.log"
    exit 1
fi
rm -f "$work.log"
cd "$work" || exit 1
out=$(mktemp -d)
trap 'rm -rf "$work" "$out"' EXIT

n=$(grep -cv -e '^#' -e '^$' "$cases")
echo "1..$n"
i=0
while IFS=$'\t' read -r name status pattern untouched command; do
    [[ -z $name || $name == \#* ]] && continue
    i=$((i + 1))
    why=
    sums_before=
    [ "$untouched" = - ] || sums_before=$(md5sum $untouched 2>&1)
    find . | sort >"$out/files.before"
    timeout 120 bash -c "$command" >"$out/stdout" 2>"$out/stderr" </dev/null
    got=$?
    find . | sort >"$out/files.after"
    lines=$(wc -l <"$out/stderr")
    if [ "$got" -ne "$status" ]; then
        why="exit status $got, expected $status"
    elif [ "$status" -ne 0 ] && [ "$lines" -ne 1 ]; then
        why="$lines lines on stderr, expected one"
    elif [ "$pattern" != - ] && ! grep -Eq -- "$pattern" "$out/stderr"; then
        why="stderr does not match /$pattern/"
    elif [ "$untouched" != - ] && [ "$(md5sum $untouched 2>&1)" != "$sums_before" ]; then
        why="changed: $untouched"
    elif ! cmp -s "$out/files.before" "$out/files.after"; then
        why="files appeared or disappeared: $(diff "$out/files.before" "$out/files.after" | grep '^[<>]' | head -3 | tr '\n' ' ')"
    fi
    if [ -z "$why" ]; then
        echo "ok $i - $name"
    else
        echo "not ok $i - $name"
        echo "#   $command"
        echo "#   $why"
        head -c 600 "$out/stderr" | sed 's/^/#   stderr: /'
    fi
done <"$cases"
