# Thin driver over CMake: `make demo` and `make test` do all set-up on a fresh machine.
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test test-emu fuzz bench clean format

all: build

deps:
	@bash scripts/install_deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/denserl train configs/demo.json

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The CUDA tests on the CPU: the CUDA sources compiled for tests/emu's emulation of the GPU,
# in a build folder of their own (they check the kernels' results, not their speed)
# EMU_ASAN=1: built with AddressSanitizer and UBSan's alignment check, so a kernel's access
# past its buffers, or a vector load or store at an address its type's size does not divide
# (a misaligned-address fault on a GPU), is reported
EMU_BUILD ?= build-emu
EMU_FLAGS :=
ifeq ($(EMU_ASAN),1)
EMU_BUILD := $(EMU_BUILD)-asan
EMU_SAN := -fsanitize=address,alignment -fno-sanitize-recover=alignment
EMU_FLAGS := -DCMAKE_C_FLAGS="$(EMU_SAN)" -DCMAKE_CXX_FLAGS="$(EMU_SAN)" \
	-DCMAKE_EXE_LINKER_FLAGS="$(EMU_SAN)"
endif
EMU_TESTS := $(sort $(basename $(notdir $(wildcard tests/test_cuda_*.c)))) test_gpu_model test_comm
EMU_RUN := $(EMU_TESTS) test_gpu_train test_cuda_attention_reverse test_cuda_attention_bf16_smem163 \
	test_cuda_attention_bf16_smem99 test_gpu_model_smem99 test_gpu_steady_state test_gpu_memplan \
	test_gpu_zero_master

test-emu: deps
	cmake -S . -B $(EMU_BUILD) -DCMAKE_BUILD_TYPE=Release -DDENSERL_CUDA=OFF \
		-DDENSERL_CUDA_EMU=ON $(EMU_FLAGS) $(CMAKE_FLAGS)
	cmake --build $(EMU_BUILD) -j $(JOBS) --target $(EMU_TESTS) denserl
	cd $(EMU_BUILD) && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -j $(JOBS) \
		-R '^($(subst $(eval) ,|,$(strip $(EMU_RUN))))$$'

# coverage-guided fuzzing of the parsers of untrusted input (tests/fuzz/run.sh); not in CI
FUZZ_SECONDS ?= 60
fuzz:
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: build
	bash benchmarks/cpu_bench.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD) $(EMU_BUILD) $(EMU_BUILD)-asan
