#!/usr/bin/env bash
# prepare.sh - run here (no GPU needed) before a GPU session: fills
# gpu-fixtures/ with what tests/gpu/check.sh reads on the GPU machine, which
# has no ../shared, no network and none of the -dev packages, and prints
# the device run to use.
#
#   gpu-fixtures/fixtures/...     the tiny/head64 fixture files used, and meta.json
#   gpu-fixtures/data/...         STS-B dev and the bert-base-uncased vocabulary
#                                 (laid out as ../shared, so SHARED=gpu-fixtures works)
#   gpu-fixtures/train100.cpu.txt the CPU fp32 losses of tests/gpu/train100.c
#   gpu-fixtures/bertbase.cpu.f32 the CPU fp32 embeddings of tests/gpu/bertbase.c
#   gpu-fixtures/deps/            headers and libraries for building without the
#                                 jansson, utf8proc and OpenBLAS development packages:
#                                 static jansson and utf8proc, netlib BLAS (Debian's
#                                 libblas3, which needs only libc; CPU speed does not
#                                 matter there) and a pkg-config stand-in pointing at
#                                 them, which check.sh uses when pkg-config finds none
#
# gpu-fixtures/ is ignored (.gitignore), and an ignored path does NOT travel
# to the GPU machine by itself: only tracked files, untracked files that git
# does not ignore, and the ignored paths named in the run's `carry` do.  So
# the run must name it: carry ["gpu-fixtures"] (what this script prints at
# the end).  The run sends the checkout of the session that calls it, so run
# this script in that checkout, with the branch to check there.
#
# Usage: tests/gpu/prepare.sh [--deps-only]
#   --deps-only   the fixtures and deps/ without the CPU references (seconds
#                 instead of minutes: enough to test the build with the
#                 pkg-config stand-in, not for check.sh on a GPU)
# SHARED defaults to ../shared, O (the CPU build for the references) to a
# directory in /tmp.  The CPU references take a few minutes on 2 cores (they
# run under nice).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
O=${O:-/tmp/build-gpu-prepare}
DEST=gpu-fixtures

deps_only=0
case ${1:-} in
--deps-only) deps_only=1 ;;
"") ;;
*) echo "prepare.sh: unknown option '$1' (--deps-only)" >&2; exit 2 ;;
esac
git check-ignore -q "$DEST/" || { echo "prepare.sh: $DEST/ is not ignored (.gitignore)" >&2; exit 1; }

copy() {
    for f in "$@"; do
        mkdir -p "$DEST/$(dirname "$f")"
        cp "$SHARED/$f" "$DEST/$f"
    done
}
copy fixtures/meta.json data/stsbenchmark/sts-dev.csv data/vocab/bert-base-uncased-vocab.txt
for m in tiny head64; do
    copy fixtures/$m/reference.safetensors
    for f in "$SHARED"/fixtures/$m/model/*; do copy "fixtures/$m/model/$(basename "$f")"; done
done
copy fixtures/tiny/sts-dev.cosine.txt
# The two random MPNet models, made here by transformers (the device machine
# has no Python stack).
rm -rf "$DEST/fixtures/mpnet-tiny" "$DEST/fixtures/mpnet-head64"
out=$(python3 tests/py/mk_mpnet_fixture.py "$DEST/fixtures" 2>&1 | tail -n 1)
[ "$out" = OK ] || { echo "prepare.sh: tests/py/mk_mpnet_fixture.py: $out" >&2; exit 1; }

# Build dependencies for a machine without the -dev packages.
deps=$DEST/deps
mkdir -p "$deps/include" "$deps/lib"
blas_inc=$(pkg-config --variable=includedir openblas)
cp "$blas_inc/cblas.h" "$blas_inc/openblas_config.h" "$deps/include/"
for h in jansson.h jansson_config.h utf8proc.h; do
    cp "$(echo '#include <'$h'>' | cc -E -M - | tr ' \\' '\n\n' | grep "/$h\$" | head -1)" "$deps/include/"
done
libdir=$(pkg-config --variable=libdir jansson)
cp "$libdir/libjansson.a" "$libdir/libutf8proc.a" "$deps/lib/"
netlib=/usr/lib/x86_64-linux-gnu/blas/libblas.so.3
if [ ! -f "$netlib" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download libblas3 >/dev/null 2>&1 || { apt-get update -qq && apt-get download libblas3; })
    dpkg -x "$tmp"/libblas3_*.deb "$tmp/x"
    netlib=$(ls "$tmp"/x/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.*)
fi
cp "$netlib" "$deps/lib/libblas.so.3"
# threads.c sets OpenBLAS's thread count; netlib BLAS has no threads.
echo 'void openblas_set_num_threads(int n) { (void)n; }' >"$deps/openblas_shim.c"
cc -O2 -c -o "$deps/openblas_shim.o" "$deps/openblas_shim.c"
ar rcs "$deps/lib/libopenblas_shim.a" "$deps/openblas_shim.o"
rm -f "$deps/openblas_shim.c" "$deps/openblas_shim.o"
cat >"$deps/pkg-config" <<'EOF'
#!/bin/sh
# pkg-config stand-in for jansson, libutf8proc and openblas (see tests/gpu/prepare.sh)
d=$(cd "$(dirname "$0")" && pwd)
case "$1" in
--cflags) echo "-I$d/include" ;;
--libs) echo "$d/lib/libjansson.a $d/lib/libutf8proc.a $d/lib/libopenblas_shim.a $d/lib/libblas.so.3 -Wl,-rpath,$d/lib" ;;
--exists) exit 0 ;;
*) exit 1 ;;
esac
EOF
chmod +x "$deps/pkg-config"

# The CPU references, from a CPU-only build of the check programs.
if [ $deps_only = 0 ]; then
    nice make -f Makefile -f tests/gpu/gpu.mk O="$O" NVCC= -j2 gpu-checks >/dev/null
    SHARED=$DEST nice "$O/gpu-checks/train100" cpu "$DEST/train100.cpu.txt"
    SHARED=$DEST BERT_BASE_CONFIG=tests/gpu/bert-base-config.json \
        nice "$O/gpu-checks/bertbase" cpu "$DEST/bertbase.cpu.f32"
fi

# What travels: the tracked and untracked-not-ignored files, and gpu-fixtures/.
kib=$(du -sk "$DEST" | cut -f1)
tree_kib=$(git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null |
    tail -1 | cut -f1)
echo "$DEST/: $((kib / 1024)) MiB; with the working tree $(((kib + tree_kib) / 1024)) MiB of the 64 MiB a run may send"
if [ $deps_only = 1 ]; then
    echo "(--deps-only: no CPU references; check.sh's train100 and bertbase checks need them)"
fi
cat <<'EOF'
The GPU check, as one device run (not yet timed on a GPU: the build with
nvcc -j16, then checks of seconds each, should take a few minutes; 480 s
bounds it and leaves a warm rerun room in the 15 minutes of device time,
where build-gpu/, ignored, is kept between calls and rebuilds only what
changed):

  run  command:   tests/gpu/check.sh
       carry:     ["gpu-fixtures"]
       timeout_s: 480

Its logs (check.log, build.log, summary.txt) come back from $OUT.  Then
give_back, unless you rerun at once.  The compute-sanitizer pass is a run of
its own, when wanted: command tests/gpu/check.sh --sanitize.
EOF
