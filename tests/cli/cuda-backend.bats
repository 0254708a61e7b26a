#!/usr/bin/env bats
# The CUDA backend as a shared object (lib/cuda_backend.h), tested without a
# GPU in a build with CUDA: the tools link no CUDA library and load none on
# the CPU; the backend needs of the tools exactly the functions of
# lib/cuda/host-symbols.list, and every tool exports them; with a stand-in
# for the driver's libcuda.so.1 (an empty shared object) embed and
# mnr-train open the backend, which then reports what the CUDA runtime
# says; a driver that finds no GPU is one line without the backend; a
# backend that is not there is one clear line.

bats_require_minimum_version 1.5.0
load helper

ROOT=$BATS_TEST_DIRNAME/../..
STREAMS=$BATS_TEST_DIRNAME/../py/streams.py
TINY=$FIXTURES/tiny

BACKEND=$BINDIR/../lib/bertpipe/libbertpipe-cuda.so

setup_file() {
    [ -f "$BACKEND" ] || return 0
    cd "$BATS_FILE_TMPDIR"
    mkdir driver
    printf 'int bertpipe_driver_stand_in;\n' >stand-in.c
    ${CC:-cc} -shared -fPIC -o driver/libcuda.so.1 stand-in.c 2>/dev/null || rm -rf driver
    # a driver that finds no GPU: cuInit returns $STAND_IN_CUINIT (0 when
    # unset), cuDeviceGetCount no devices
    mkdir driver-none
    cat >none.c <<'EOF'
#include <stdlib.h>
int cuInit(unsigned flags) { const char *s = getenv("STAND_IN_CUINIT"); return s ? atoi(s) : 0; }
int cuDeviceGetCount(int *count) { *count = 0; return 0; }
EOF
    ${CC:-cc} -shared -fPIC -o driver-none/libcuda.so.1 none.c 2>/dev/null || rm -rf driver-none
    python3 -c 'import numpy, safetensors' 2>/dev/null || return 0
    python3 "$STREAMS" fixture "$TINY/reference.safetensors" tiny.tok tiny.want
}

setup() {
    [ -f "$BACKEND" ] || skip "built without CUDA (no $BACKEND)"
    if nvidia-smi -L >/dev/null 2>&1; then
        skip "a GPU is present: run tests/gpu/check.sh"
    fi
    cd "$BATS_TEST_TMPDIR"
    S=$BATS_FILE_TMPDIR
}

need_numpy() {
    [ -f "$S/tiny.tok" ] || skip "python3 with numpy and safetensors is not installed"
}

# The stand-in driver on the library path (built in setup_file).
need_stand_in() {
    [ -f "$S/driver/libcuda.so.1" ] || skip "no C compiler (${CC:-cc}) to build a stand-in libcuda.so.1"
    export LD_LIBRARY_PATH=$S/driver${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

# The functions of lib/cuda/host-symbols.list, one a line, sorted.
host_symbols() {
    sed -n 's/^ *\([a-z_0-9]*\);$/\1/p' "$ROOT/lib/cuda/host-symbols.list" | sort
}

@test "cuda backend: the tools link no CUDA library; the backend shows only its table" {
    for tool in "$BINDIR"/*; do
        ! ldd "$tool" | grep -E 'libcu(da|dart|blas|blasLt)|libnccl' || { echo "$tool"; false; }
    done
    ldd "$BACKEND" | grep -q libcublasLt
    run nm -D --defined-only "$BACKEND"
    [ "${#lines[@]}" -eq 1 ]
    [[ "${lines[0]}" == *" D bertpipe_cuda_backend" ]]
}

@test "cuda backend: what it needs of the program is host-symbols.list, and every tool exports it" {
    # ldd -r names the symbols that none of the backend's own libraries has
    ldd -r "$BACKEND" 2>&1 | sed -n 's/^undefined symbol: \([a-z_0-9]*\).*/\1/p' | sort >needs
    host_symbols >list
    [ -s list ]
    diff -u list needs
    for tool in "$BINDIR"/*; do
        nm -D --defined-only "$tool" | awk '{ print $3 }' | sort >exports
        comm -23 list exports >missing
        [ ! -s missing ] || { echo "$tool does not export: $(cat missing)"; false; }
    done
}

@test "cuda backend: no driver, no backend loaded: auto says why, cuda is one line" {
    need_numpy
    run --separate-stderr -0 embed -m "$TINY/model" --threads 1 "$S/tiny.tok"
    # (a machine with libcuda.so.1 and no GPU reaches the runtime instead)
    [[ "$stderr" == *"no CUDA driver"* ]] || skip "this machine has a CUDA driver library: $stderr"
    [[ "$stderr" == "embed: --device auto: embedding on the CPU (no CUDA device: no CUDA driver (libcuda.so.1: "*"; 1 thread)" ]]
    run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "embed: --device cuda: no CUDA device: no CUDA driver (libcuda.so.1: "* ]]
}

@test "cuda backend: with a driver library, embed and mnr-train open the backend and report the runtime's answer" {
    need_numpy
    need_stand_in
    run --separate-stderr -0 embed -m "$TINY/model" --threads 1 "$S/tiny.tok"
    [[ "$stderr" == "embed: --device auto: embedding on the CPU (no CUDA device: "*"; 1 thread)" ]]
    [[ "$stderr" != *"no CUDA driver"* && "$stderr" != *"CUDA backend"* ]]
    run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "embed: --device cuda: no CUDA device: "* && "$output" != *"no CUDA driver"* ]]
    run -1 mnr-train -m "$TINY/model" -o out --device cuda "$S/tiny.tok"
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "mnr-train: --device cuda: no CUDA device: "* && "$output" != *"no CUDA driver"* ]]
    [ ! -e out ]
}

@test "cuda backend: a driver that finds no GPU is one line, without loading the backend" {
    need_numpy
    [ -f "$S/driver-none/libcuda.so.1" ] || skip "no C compiler (${CC:-cc}) to build a stand-in libcuda.so.1"
    export LD_LIBRARY_PATH=$S/driver-none${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    # (a backend that is not there: never looked for)
    export BERTPIPE_CUDA_BACKEND=$PWD/none.so
    run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "$output" = "embed: --device cuda: no CUDA device: the CUDA driver finds none" ]
    STAND_IN_CUINIT=100 run -1 mnr-train -m "$TINY/model" -o out --device cuda "$S/tiny.tok"
    [ "$output" = "mnr-train: --device cuda: no CUDA device: the CUDA driver finds none (error 100)" ]
    [ ! -e out ]
    run --separate-stderr -0 embed -m "$TINY/model" --threads 1 "$S/tiny.tok"
    [ "$stderr" = "embed: --device auto: embedding on the CPU (no CUDA device: the CUDA driver finds none; 1 thread)" ]
}

@test "cuda backend: one that is missing or from elsewhere is one line; auto falls back to the CPU" {
    need_numpy
    need_stand_in
    BERTPIPE_CUDA_BACKEND=$PWD/none.so run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == "embed: --device cuda: cannot load the CUDA backend: $PWD/none.so: "* ]]
    # a shared object without the table
    BERTPIPE_CUDA_BACKEND=$S/driver/libcuda.so.1 run --separate-stderr -0 embed -m "$TINY/model" \
        --threads 1 "$S/tiny.tok"
    [[ "$stderr" == "embed: --device auto: embedding on the CPU (cannot use the CUDA backend $S/driver/libcuda.so.1: it is from another build of bertpipe ("*"undefined symbol: bertpipe_cuda_backend); 1 thread)" ]]
    # the backend of a build whose headers differ: its checksum (Makefile's
    # CUDA_ABI) changed in place
    abi=$(cat "$ROOT"/lib/*.h "$ROOT/lib/cuda/host-symbols.list" | cksum | cut -d' ' -f1)
    other=$(printf '%s' "$abi" | tr 0-9 1-90)
    [ "$(grep -c -a "$abi" "$BACKEND")" -eq 1 ]
    sed "s/$abi/$other/" "$BACKEND" >other.so
    BERTPIPE_CUDA_BACKEND=$PWD/other.so run -1 embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [ "$output" = "embed: --device cuda: cannot use the CUDA backend $PWD/other.so: it is from another build of bertpipe" ]
}

@test "cuda backend: make install puts it where the installed tools look" {
    need_numpy
    nvcc=${NVCC:-$(command -v nvcc)}
    [ -n "$nvcc" ] || skip "no nvcc on the PATH or in \$NVCC to tell make install about the backend"
    O=$(dirname "$BINDIR")
    # (everything is built: this only copies)
    make -C "$ROOT" -s install O="$O" NVCC="$nvcc" PREFIX=/opt/bp DESTDIR="$PWD/root" \
        >install.out 2>&1 || { cat install.out; false; }
    [ -x root/opt/bp/bin/embed ] && [ -f root/opt/bp/lib/bertpipe/libbertpipe-cuda.so ]
    need_stand_in
    run -1 root/opt/bp/bin/embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [[ "$output" == "embed: --device cuda: no CUDA device: "* && "$output" != *"CUDA backend"* ]]
    # without it, the installed tools say so
    rm root/opt/bp/lib/bertpipe/libbertpipe-cuda.so
    run -1 root/opt/bp/bin/embed -m "$TINY/model" --device cuda "$S/tiny.tok"
    [[ "$output" == "embed: --device cuda: cannot load the CUDA backend: "*"libbertpipe-cuda.so: "* ]]
}
