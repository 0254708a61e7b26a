# bertpipe - sentence-embedding training as Unix filters.
#
#   make                 build every tool into $(O)/bin (CPU only unless nvcc is found)
#   make check           run all tests through prove(1)
#   make install         PREFIX=/usr/local DESTDIR=
#   make O=/tmp/b        build somewhere else
#   make NVCC=           force a CPU-only build even where nvcc exists

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
CFLAGS  ?= -O2 -g -march=x86-64-v2
# Nothing reads floating-point exception flags or errno after a math
# function: -fno-trapping-math lets GCC vectorise the clamps in vmath.h's exp
# and erf, -fno-math-errno the square root in optim.c's AdamW.
override CFLAGS  += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wvla -pthread -fopenmp \
           -fno-trapping-math -fno-math-errno -Ilib \
           $(shell $(PKG_CONFIG) --cflags $(PKGS))
override LDLIBS  += $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm -pthread -fopenmp

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(O)/%.o)
CMD_SRC  := $(wildcard cmd/*.c)
TOOLS    := $(CMD_SRC:cmd/%.c=$(O)/bin/%)
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT     := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
CLI_TESTS := $(sort $(wildcard tests/cli/*.bats))
MAN      := $(wildcard man/man*/*.[1-9])
LIBA     := $(O)/libbertpipe.a

# CUDA backend: compiled only when nvcc is found; never needed for the CPU build.
ifneq ($(strip $(NVCC)),)
CU_SRC   := $(wildcard lib/cuda/*.cu)
endif
ifneq ($(strip $(CU_SRC)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS ?= -O2 -g -std=c++17 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
override NVCCFLAGS += -Ilib -Xcompiler -Wall
CU_OBJ   := $(CU_SRC:%.cu=$(O)/%.o)
override CFLAGS   += -DBP_HAVE_CUDA -I$(CUDA_HOME)/include
override LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
endif

.PHONY: all check install clean
all: $(TOOLS) $(UNIT)

$(O)/lib/%.o: lib/%.c $(wildcard lib/*.h) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(O)/lib/cuda/%.o: lib/cuda/%.cu $(wildcard lib/*.h lib/cuda/*.cuh lib/cuda/*.h) Makefile
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

$(LIBA): $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(O)/bin/%: cmd/%.c $(LIBA) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

$(O)/tests/%: tests/unit/%.c tests/tap.h $(wildcard tests/unit/*.h) $(LIBA) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)

# Tests find the tools through $$BINDIR and the data through $$SHARED.  Idle
# OpenMP threads sleep instead of spinning, since prove may share the cores.
check: all
	BINDIR=$(abspath $(O)/bin) SHARED=$(SHARED) PATH=$(abspath $(O)/bin):$$PATH OMP_WAIT_POLICY=passive \
	    prove --exec '' $(PROVEFLAGS) $(UNIT) $(CLI_TESTS)

install: $(TOOLS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin
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
$(PIPELINE_TARGETS): $(TOOLS)
	$(MAKE) -C pipelines $@ BINDIR=$(abspath $(O)/bin)

# Speed against the reference stack, printed side by side (see each script).
.PHONY: bench-tokenize bench-embed bench-train
bench-tokenize bench-embed bench-train: $(TOOLS) $(O)/scripts/sgemm-rate
	BINDIR=$(abspath $(O)/bin) SGEMM_RATE=$(abspath $(O)/scripts/sgemm-rate) SHARED=$(SHARED) \
	    scripts/$@.sh

# The machine's matrix-product rate, bench-embed's ceiling.
$(O)/scripts/sgemm-rate: scripts/sgemm-rate.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)
