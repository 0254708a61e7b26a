# gpu.mk - builds the GPU check programs tests/gpu/*.c with the project's
# own compiler flags and library, read together with the Makefile:
#
#   make -f Makefile -f tests/gpu/gpu.mk O=DIR all gpu-checks
#
# They are not part of `make all` or `make check` (they need a GPU and the
# fixtures); tests/gpu/check.sh builds and runs them.

GPU_CHECK_SRC := $(wildcard tests/gpu/*.c)
GPU_CHECKS    := $(GPU_CHECK_SRC:tests/gpu/%.c=$(O)/gpu-checks/%)

.PHONY: gpu-checks
gpu-checks: $(GPU_CHECKS) $(CUDA_BACKEND)

$(O)/gpu-checks/%: tests/gpu/%.c $(wildcard tests/gpu/*.h) tests/unit/bert_fixture.h tests/tap.h \
                   $(LIBA) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS)
