#!/usr/bin/env bash
# no-dev-packages.sh - here, as root: build and run tests/gpu/check.sh as the
# GPU machine would, without the jansson, utf8proc and OpenBLAS development
# packages, to show that gpu-fixtures/deps (tests/gpu/prepare.sh) is all the
# build needs.  In a private mount namespace (unshare -m) the packages'
# headers, static and development libraries, pkg-config files and the
# OpenBLAS directories are covered (bind mounts of /dev/null and an empty
# directory); nothing outside the namespace changes.  libjansson.so.4 stays:
# the linker itself (binutils) loads it.  Then check.sh --cpu-build (no GPU
# here: the GPU checks FAIL, the build and the host unit test PASS), and ldd
# on the programs, which must not load any of the covered libraries.
#
# Usage: tests/gpu/no-dev-packages.sh   (after prepare.sh --deps-only or
# prepare.sh; O defaults to /tmp/build-gpu-nodev, OUT to $O/logs; a few
# minutes on 2 cores for the first build)
set -eu
cd "$(dirname "$0")/../.."
[ -x gpu-fixtures/deps/pkg-config ] || { echo "no gpu-fixtures/deps: run tests/gpu/prepare.sh --deps-only first" >&2; exit 1; }
O=${O:-/tmp/build-gpu-nodev}
export O OUT=${OUT:-$O/logs}
if [ "${BP_IN_NAMESPACE:-}" != 1 ]; then
    exec env BP_IN_NAMESPACE=1 unshare -m "$0" "$@"
fi
empty=$(mktemp -d)
for d in /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/x86_64-linux-gnu/openblas-pthread \
    /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/x86_64-linux-gnu/openblas-pthread \
    /usr/lib/x86_64-linux-gnu/blas; do
    [ -d "$d" ] && mount --bind "$empty" "$d"
done
# A bind mount over a symbolic link covers its target: the -dev packages'
# libjansson.so would cover the linker's libjansson.so.4, so it is left out.
for f in $(dpkg -L libjansson-dev libutf8proc-dev libutf8proc2 libopenblas-dev 2>/dev/null |
    grep -E '\.(h|a|pc|so(\.[0-9.]+)?)$' | grep -v 'libjansson\.so'); do
    [ -f "$f" ] && mount --bind /dev/null "$f"
done
for f in /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h; do
    [ -e "$f" ] && mount --bind /dev/null "$f"
done
echo "covered: jansson.h $(wc -c </usr/include/jansson.h 2>/dev/null || echo absent) bytes," \
    "pkg-config jansson $(pkg-config --exists jansson 2>/dev/null && echo found || echo missing)"
rc=0
tests/gpu/check.sh --cpu-build "$@" || rc=$?
echo "check.sh exit $rc (expected 1 without a GPU)"
bad=0
for b in "$O"/bin/* "$O"/gpu-checks/*; do
    if ldd "$b" | grep -E 'not found|libjansson|libutf8proc|openblas'; then
        echo "$b: loads a library of the development packages' or misses one" >&2
        bad=1
    fi
done
[ $bad = 0 ] && echo "ldd: no program loads jansson, utf8proc or OpenBLAS; none misses a library"
exit $bad
