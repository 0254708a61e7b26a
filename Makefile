# bertpipe - sentence-embedding training as Unix filters.
#
#   make                 build every tool into $(O)/bin (CPU only unless nvcc is found)
#   make check           run all tests through prove(1)
#   make install         PREFIX=/usr/local DESTDIR=
#   make O=/tmp/b        build somewhere else
#   make NVCC=           force a CPU-only build even where nvcc exists
#   make MPICC=          build without MPI even where mpicc exists
#   make fuzz            run every libFuzzer harness FUZZ_TIME seconds (docs/fuzzing.md)
#   make check-sanitize  make check on an ASan+UBSan build in build-asan/ (docs/sanitizers.md)
#   make check-models    the tests that need all-mpnet-base-v2 (scripts/fetch-model.sh all-mpnet-base-v2)

O       ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
SHARED  ?= $(abspath ../shared)
CC      ?= cc
PKG_CONFIG ?= pkg-config
NVCC    ?= $(shell command -v nvcc 2>/dev/null)

PKGS    := jansson libutf8proc openblas
# OpenBLAS built for OpenMP, so that BLAS calls and our own OpenMP loops share
# one pool of threads instead of two pools spinning against each other; the
# run path makes the tools use it whatever the system's default variant is.
OPENBLAS_DIR ?= $(firstword $(wildcard /usr/lib/*/openblas-openmp))
ifneq ($(OPENBLAS_DIR),)
PKG_CONFIG := PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig:$$PKG_CONFIG_PATH $(PKG_CONFIG)
override LDFLAGS += -Wl,-rpath,$(OPENBLAS_DIR)
endif
# CFLAGS, LDFLAGS, LDLIBS and NVCCFLAGS given on the command line (make
# CFLAGS='-O3 -march=native') replace the defaults; what the build needs is
# added to them ("override").
DEFAULT_CFLAGS := -O2 -g -march=x86-64-v2
CFLAGS  ?= $(DEFAULT_CFLAGS)
# Nothing reads floating-point exception flags or errno after a math
# function: -fno-trapping-math lets GCC vectorise the clamps in vmath.h's exp
# and erf, -fno-math-errno the square root in optim.c's AdamW.  The AVX-512
# versions of the kernels (vmath.h's MULTIVERSIONED) use whole 512-bit
# registers: GCC's default of 256 took the softmax's exponentials 1.7 times
# as long (docs/cpu-bf16.md).
override CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wvla -pthread -fopenmp \
           -fno-trapping-math -fno-math-errno -mprefer-vector-width=512 -Ilib \
           $(shell $(PKG_CONFIG) --cflags $(PKGS))
override LDLIBS  += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm -pthread -fopenmp

# oneDNN (libdnnl-dev) for --precision bf16 on the CPU, when its header is
# found (make DNNL= builds without it: bf16 on the CPU then falls back to
# fp32 with a note, as on a CPU without AVX512_BF16).
DNNL ?= $(wildcard /usr/include/oneapi/dnnl/dnnl.h)
ifneq ($(strip $(DNNL)),)
override CFLAGS  += -DBP_HAVE_DNNL
override LDLIBS  += -ldnnl
endif

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
CMD_SRC  := $(wildcard cmd/*.c)
TOOLS    := $(CMD_SRC:cmd/%.c=$(O)/bin/%)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT     := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
CLI_TESTS := $(sort $(wildcard tests/cli/*.bats))
MAN      := $(wildcard man/man*/*.[1-9])
LIBA     := $(O)/libbertpipe.a

# MPI (docs/data-parallel.md): with mpicc on the PATH, mnr-train runs as
# several ranks under mpirun; its compile and link flags come from the
# wrapper (Open MPI's --showme, MPICH's -show).  Only mnr-train uses it
# (--as-needed keeps libmpi out of the other tools).
MPICC   ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(strip $(MPICC)),)
MPI_SHOW := $(shell $(MPICC) --showme 2>/dev/null || $(MPICC) -show 2>/dev/null)
ifneq ($(strip $(MPI_SHOW)),)
override CFLAGS += -DBP_HAVE_MPI $(filter -I% -D%,$(MPI_SHOW))
override LDLIBS += -Wl,--as-needed $(filter -L% -l% -Wl%,$(MPI_SHOW))
endif
endif

# CUDA backend: compiled only when nvcc is found; never needed for the CPU
# build.  It is a shared object that the tools open only when they look for
# a GPU (lib/cuda_backend.h): they link none of CUDA's libraries, and export
# the few functions it calls back (lib/cuda/host-symbols.list).
ifneq ($(strip $(NVCC)),)
CU_SRC   := $(wildcard lib/cuda/*.cu)
endif
ifneq ($(strip $(CU_SRC)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS ?= -O2 -g -std=c++17 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
override NVCCFLAGS += -Ilib -Xcompiler -Wall -Xcompiler -fPIC
CU_OBJ   := $(CU_SRC:%.cu=$(O)/%.o)
CUDA_BACKEND := $(O)/lib/bertpipe/libbertpipe-cuda.so
# The backend's libraries (make CUDA_LIBS=... for a cuBLAS elsewhere; the
# tools' LDLIBS do not reach its link).
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
HOST_SYMBOLS := $(shell sed -n 's/^ *\([a-z_0-9]*\);$$/\1/p' lib/cuda/host-symbols.list)
# What a tool and the backend it opens must agree on: a checksum of the
# library's headers and the host symbols, compared when it is opened.
CUDA_ABI := $(shell cat lib/*.h lib/cuda/host-symbols.list | cksum | cut -d' ' -f1)
override CFLAGS   += -DBP_HAVE_CUDA -DBP_CUDA_ABI='"$(CUDA_ABI)"'
override NVCCFLAGS += -DBP_CUDA_ABI='"$(CUDA_ABI)"'
override LDLIBS   += -ldl -Wl,--dynamic-list=lib/cuda/host-symbols.list \
                     $(HOST_SYMBOLS:%=-Wl,--undefined=%)
# NCCL for the collectives of several GPU ranks (lib/cuda/comm_nccl.cu),
# when the toolkit has it.
ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h),)
override NVCCFLAGS += -DBP_HAVE_NCCL
CUDA_LIBS += -lnccl
endif
endif

.PHONY: all check check-models install clean
all: $(TOOLS) $(UNIT) $(CUDA_BACKEND)

$(O)/lib/%.o: lib/%.c $(wildcard lib/*.h) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(O)/lib/cuda/%.o: lib/cuda/%.cu $(wildcard lib/*.h lib/cuda/*.cuh lib/cuda/*.h) Makefile
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

# (A new host-symbols.list links every program again, through the library.)
$(LIBA): $(LIB_OBJ) $(if $(CU_SRC),lib/cuda/host-symbols.list)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(CUDA_BACKEND): $(CU_OBJ) lib/cuda/backend.map
	@mkdir -p $(@D)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) -Wl,--version-script=lib/cuda/backend.map -o $@ $(CU_OBJ) \
	    $(CUDA_LIBS)

$(O)/bin/%: cmd/%.c $(LIBA) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(O)/tests/%: tests/unit/%.c tests/tap.h $(wildcard tests/unit/*.h) $(LIBA) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# The fuzz harnesses (see "fuzzing" below); defined before check, whose
# prerequisites are expanded as the rule is read.
FUZZ_O    ?= build-fuzz
FUZZ_CC   ?= clang
FUZZ_TIME ?= 600
FUZZ      ?= yes
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Ilib -fno-omit-frame-pointer $(FUZZ_SANITIZE) \
               $(shell $(PKG_CONFIG) --cflags jansson libutf8proc)
FUZZ_LIBS := $(shell $(PKG_CONFIG) --libs jansson libutf8proc) -lm
FUZZ_HARNESSES := npy safetensors torchbin config wordpiece tokenizer_json nli labels weights
FUZZ_LIB_SRC := $(addprefix lib/,util.c input.c npy.c safetensors.c torchbin.c model.c \
                  wordpiece.c nli.c bert_params.c rng.c safetensors_write.c sampler.c bf16.c)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_O)/%.o)
FUZZ_BINS := $(FUZZ_HARNESSES:%=$(FUZZ_O)/bin/%)
# Whether $(FUZZ_CC) links a libFuzzer program (empty when not).
HAVE_LIBFUZZER := $(if $(filter yes,$(FUZZ)),$(shell printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' | \
    $(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null && echo yes))
# ASan: the harnesses abandon what a parser allocated before an error, as a
# tool does when it exits (tests/fuzz/fuzz.h), so leaks are not reported.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Tests find the tools through $$BINDIR and the data through $$SHARED.  Idle
# OpenMP threads sleep instead of spinning, since prove may share the cores.
# The fuzz harnesses' smoke run (tests/cli/fuzz-smoke.bats) finds them
# through $$FUZZ_BINDIR, empty (the test skips, saying why) without clang's
# libFuzzer; FUZZ=no leaves them out.
check: all $(if $(HAVE_LIBFUZZER),fuzz-build)
	BINDIR=$(abspath $(O)/bin) SHARED=$(SHARED) PATH=$(abspath $(O)/bin):$$PATH OMP_WAIT_POLICY=passive \
	    FUZZ_BINDIR=$(if $(HAVE_LIBFUZZER),$(abspath $(FUZZ_O)/bin)) FUZZ_CC=$(FUZZ_CC) \
	    prove --exec '' $(PROVEFLAGS) $(UNIT) $(CLI_TESTS)

# Tests that need the 404 MB all-mpnet-base-v2 (scripts/fetch-model.sh
# all-mpnet-base-v2; they skip, saying so, without it): a few minutes on 2
# cores, so not part of check (nor of check-sanitize).
MODEL_TESTS := $(sort $(wildcard tests/models/*.bats))
check-models: all
	BINDIR=$(abspath $(O)/bin) SHARED=$(SHARED) PATH=$(abspath $(O)/bin):$$PATH OMP_WAIT_POLICY=passive \
	    prove --exec '' $(PROVEFLAGS) $(MODEL_TESTS)

install: $(TOOLS) $(CUDA_BACKEND)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin
	$(if $(CUDA_BACKEND),install -d $(DESTDIR)$(PREFIX)/lib/bertpipe && \
	    install -m 755 $(CUDA_BACKEND) $(DESTDIR)$(PREFIX)/lib/bertpipe)
	for m in $(MAN); do \
	    s=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$s && \
	    install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s || exit 1; done

clean:
	rm -rf $(O)

# The experiment, as pipelines/Makefile runs it (`make demo` is the main job;
# variables such as DEMO_PAIRS, BASE, RUN pass through).
PIPELINE_TARGETS := demo full real-run data base train-mnr train-mnr-triplets train-mnr-symmetric \
                    eval table eval-suite
.PHONY: $(PIPELINE_TARGETS)
$(PIPELINE_TARGETS): $(TOOLS) $(CUDA_BACKEND)
	$(MAKE) -C pipelines $@ BINDIR=$(abspath $(O)/bin)

# Speed against the reference stack, printed side by side (see each script).
.PHONY: bench-tokenize bench-embed bench-train bench-mini-batch
bench-tokenize bench-embed bench-train bench-mini-batch: $(TOOLS) $(CUDA_BACKEND) $(O)/scripts/sgemm-rate
	BINDIR=$(abspath $(O)/bin) SGEMM_RATE=$(abspath $(O)/scripts/sgemm-rate) SHARED=$(SHARED) \
	    scripts/$@.sh

# Data parallelism's overhead on this machine: 1 process of 2 threads, 1 of
# 1 thread, 2 MPI ranks of 1 thread (docs/data-parallel.md).
.PHONY: bench-ranks
bench-ranks: $(TOOLS) $(CUDA_BACKEND)
	BINDIR=$(abspath $(O)/bin) SHARED=$(SHARED) scripts/bench-ranks.sh

# The machine's matrix-product rate, bench-embed's ceiling.
$(O)/scripts/sgemm-rate: scripts/sgemm-rate.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# Attention alone, fp32 against bf16 inference's (AMX tiles where the CPU
# has them), at each length, all-MiniLM-L6-v2's heads and bert-base's
# (docs/cpu-bf16.md).
.PHONY: bench-attention
bench-attention: $(O)/scripts/attention-rate
	$(O)/scripts/attention-rate 12 32 16 32 64 80 96 128 256 512
	$(O)/scripts/attention-rate 12 64 16 32 64 80 96 128 256 512

$(O)/scripts/attention-rate: scripts/attention-rate.c $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# ---- fuzzing: libFuzzer harnesses in tests/fuzz/ (docs/fuzzing.md) ----
#   make fuzz [FUZZ_TIME=600] [FUZZ_JOBS=1]   each harness FUZZ_TIME seconds
#   make fuzz-build                            the harnesses, in $(FUZZ_O)/bin
# The library's parsers are compiled again with clang, ASan and UBSan; the
# corpora grow in $(FUZZ_O)/corpus/NAME from the seeds in tests/fuzz/seeds/NAME
# and, for safetensors and the tokenizer, files of $(SHARED)/fixtures.

.PHONY: fuzz fuzz-build fuzz-corpora
fuzz-build: $(FUZZ_BINS)

$(FUZZ_O)/lib/%.o: lib/%.c $(wildcard lib/*.h) Makefile
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_O)/bin/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_VOCAB='"$(abspath tests/fuzz/vocab.txt)"' \
	    -o $@ $< $(FUZZ_LIB_OBJ) $(FUZZ_LIBS)

# Working corpora: the seeds, plus fixture files from $(SHARED) when present
# (copied into the build directory, never into the tree).
fuzz-corpora:
	@for h in $(FUZZ_HARNESSES); do mkdir -p $(FUZZ_O)/corpus/$$h; \
	    cp -n tests/fuzz/seeds/$$h/* $(FUZZ_O)/corpus/$$h/ 2>/dev/null; done; \
	if [ -d $(SHARED)/fixtures ]; then \
	    for f in $(SHARED)/fixtures/*/model/model.safetensors; do \
	        [ $$(stat -c %s $$f) -le 1048576 ] && cp -n $$f $(FUZZ_O)/corpus/safetensors/$$(echo $$f | md5sum | cut -c1-16); done; \
	    head -c 4000 $(SHARED)/fixtures/tokenizer-golden.jsonl | split -l 4 - $(FUZZ_O)/corpus/wordpiece/golden-; \
	    for f in $(SHARED)/fixtures/*/model/config.json; do cp -n $$f $(FUZZ_O)/corpus/config/$$(echo $$f | md5sum | cut -c1-16); done; \
	fi; true

# The long run: every harness in turn for FUZZ_TIME seconds; a crash stops
# make and leaves crash-* (the input) in $(FUZZ_O)/.
fuzz: fuzz-build fuzz-corpora
	@for h in $(FUZZ_HARNESSES); do \
	    echo "fuzz: $$h for $(FUZZ_TIME) s"; \
	    (cd $(FUZZ_O) && $(FUZZ_ENV) nice bin/$$h -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	        -rss_limit_mb=4096 -print_final_stats=1 $(FUZZ_ARGS) corpus/$$h) 2>&1 | \
	        grep -E '^(#[0-9]+.*(DONE|pulse))|stat::|ERROR|SUMMARY|invariant' || true; \
	    test -z "$$(ls $(FUZZ_O)/crash-* $(FUZZ_O)/timeout-* $(FUZZ_O)/oom-* 2>/dev/null)" || \
	        { echo "fuzz: $$h found a crash: $$(ls $(FUZZ_O)/crash-* $(FUZZ_O)/timeout-* $(FUZZ_O)/oom-* 2>/dev/null)"; exit 1; }; \
	done

# ---- sanitizers: make check on an ASan + UBSan build (docs/sanitizers.md) ----
# Everything (library, tools, unit tests) is built in $(ASAN_O) with
# SANITIZE_FLAGS, CPU only, and make check runs on it; any sanitizer report
# fails the test that triggered it.  ASAN_OPTIONS: detect_leaks=0 because the
# tools end through exit() on errors without freeing (as every C program may),
# and OpenMP's and OpenBLAS's thread pools keep allocations until exit.
ASAN_O ?= build-asan
SANITIZE_FLAGS ?= -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The default optimisation and instruction set, so that the sanitized tools
# print what the man pages show (the vectoriser at -O1 and -O2 differs, and
# the sums that must not depend on it are fixed-order, vmath.h).  The flags
# are also in the environment, for the tests that build against the library
# themselves (tests/cli/gpu-check.bats).
SANITIZE_CFLAGS := $(DEFAULT_CFLAGS) $(SANITIZE_FLAGS)
.PHONY: check-sanitize
check-sanitize:
	$(SANITIZE_ENV) CFLAGS='$(SANITIZE_CFLAGS)' LDFLAGS='$(SANITIZE_FLAGS)' \
	    $(MAKE) check O=$(ASAN_O) NVCC= FUZZ=no \
	    CFLAGS='$(SANITIZE_CFLAGS)' LDFLAGS='$(SANITIZE_FLAGS)'
