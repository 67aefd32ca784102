# diffaug - build, test, benchmark.
#
#   make                 library + CLI (build/diffaug); CUDA backend too when nvcc is found
#   make test            Check suites (fast + model tags) with TAP output and a summary
#   make test-slow       the slow-tagged suites (full-size models)
#   make test-gpu        the GPU suite; fails loudly when there is no GPU (DIFFAUG_REQUIRE_GPU=1)
#   make test-gpu-sanitize  the GPU suite under compute-sanitizer memcheck, then racecheck
#   make bench-gpu       CUDA kernel benchmarks on SD 1.5 shapes, then the full UNet step (refuses without a GPU)
#   make test SANITIZE=1 the suites under AddressSanitizer + UBSan (build-san/)
#   make fuzz            libFuzzer for FUZZ_SECONDS (default 60) over FUZZ_TARGET=safetensors (default) or wordpiece
#   make bench           CPU kernel benchmarks beside OpenBLAS
#   make demo            all three recipes on tiny random-weight models + a synthetic dataset, in $(BUILD)/demo
#   make deps            install missing Debian packages (root) or print the apt-get line
#   make print-config    every detected piece of the build
#
# Options: PORTABLE=1 (generic x86-64, no -march=native), NO_CUDA=1, CUDA_ARCH="90" (list of
# compute capabilities), SANITIZE=1, CC=...

CC       ?= gcc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_ARCH ?= 90
PKG_CONFIG ?= pkg-config

ifeq ($(SANITIZE),1)
  BUILD ?= build-san
  OPT   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
else ifeq ($(PORTABLE),1)
  BUILD ?= build-portable
  OPT   := -O3 -g
else
  # a CPU-only build gets its own directory: objects compiled with DIFFAUG_HAVE_CUDA must not be reused
  BUILD ?= $(if $(filter 1,$(NO_CUDA)),build-nocuda,build)
  OPT   := -O3 -g
endif

ifeq ($(PORTABLE),1)
  ARCHFLAGS := -march=x86-64 -mtune=generic
  SIMD_LEVEL := generic x86-64 (SSE2)
else
  ARCHFLAGS := -march=native
  SIMD_LEVEL := $(shell $(CC) -march=native -dM -E - </dev/null 2>/dev/null | grep -q __AVX512F__ && echo AVX-512 || ($(CC) -march=native -dM -E - </dev/null 2>/dev/null | grep -q __AVX2__ && echo AVX2 || echo SSE))
endif

PNG_CFLAGS  := $(shell $(PKG_CONFIG) --cflags libpng 2>/dev/null)
PNG_LIBS    := $(shell $(PKG_CONFIG) --libs libpng 2>/dev/null || echo -lpng)
JPEG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libjpeg 2>/dev/null)
JPEG_LIBS   := $(shell $(PKG_CONFIG) --libs libjpeg 2>/dev/null || echo -ljpeg)
CHECK_CFLAGS:= $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS  := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm -pthread)

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(ARCHFLAGS) -fopenmp $(WARN) -Iengine -Ikernels/cpu -Ikernels/cuda \
           $(PNG_CFLAGS) $(JPEG_CFLAGS)
LDLIBS  := $(PNG_LIBS) $(JPEG_LIBS) -lz -fopenmp -lm -lpthread $(LDSAN)

# ---- CUDA detection -------------------------------------------------------------------------
ifeq ($(NO_CUDA),1)
  HAVE_CUDA := 0
else ifneq ($(NVCC),)
  HAVE_CUDA := 1
else
  HAVE_CUDA := 0
endif
ifeq ($(HAVE_CUDA),1)
  CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CUDA_GENCODE := $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
                  -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
  NVCCFLAGS  := -O3 -std=c++17 $(CUDA_GENCODE) -DDIFFAUG_CUDA_ARCHS="\"$(foreach a,$(CUDA_ARCH),sm_$(a)) compute_$(lastword $(CUDA_ARCH))\"" -Xcompiler -fPIC,-Wall -Iengine -Ikernels/cpu -Ikernels/cuda -lineinfo
  CFLAGS     += -DDIFFAUG_HAVE_CUDA=1 -I$(CUDA_HOME)/include
  LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
  CUDA_SRC   := $(wildcard kernels/cuda/*.cu)
else
  CUDA_SRC   :=
endif
HAVE_CUBLAS := $(shell test -e $(CUDA_HOME)/lib64/libcublas.so && echo yes || echo no)

# ---- sources ------------------------------------------------------------------------------------
# engine/*_cuda.c files talk to the CUDA runtime and are compiled only in a CUDA build.
ENGINE_SRC  := $(filter-out %_cuda.c,$(wildcard engine/*.c engine/augment/*.c))
ifeq ($(HAVE_CUDA),1)
  ENGINE_SRC += $(wildcard engine/*_cuda.c)
endif
KERNEL_SRC  := $(wildcard kernels/cpu/*.c)
TOOL_SRC    := $(wildcard tools/*.c)
TEST_SRC    := $(wildcard tests/test_*.c)
TESTLIB_SRC := $(filter-out tests/test_%.c,$(wildcard tests/*.c))
BENCH_SRC   := $(wildcard bench/bench_*.c)

LIB_OBJ   := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENGINE_SRC) $(KERNEL_SRC)) \
             $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_SRC))
TOOL_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(TOOL_SRC))
TESTLIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRC))
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

LIB  := $(BUILD)/libdiffaug.a
CLI  := $(BUILD)/diffaug

.PHONY: all deps deps-bench deps-fuzz test test-slow test-gpu test-gpu-sanitize test-build fuzz bench bench-build \
        bench-gpu print-config clean cuda-check demo
.DEFAULT_GOAL := all
.SECONDARY:

all: $(CLI)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Itests -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(CLI): $(TOOL_OBJ) $(LIB)
	$(CC) $(CFLAGS) -o $@ $(TOOL_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(TESTLIB_OBJ) $(LIB) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ibench -o $@ $< $(LIB) $(LDLIBS) $(BENCH_LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- dependencies ------------------------------------------------------------------------------
deps:
	@tools/deps.sh core

deps-bench:
	@tools/deps.sh bench

deps-fuzz:
	@tools/deps.sh fuzz

# ---- tests -------------------------------------------------------------------------------------
test-build: $(CLI) $(TEST_BIN)

# CK_EXCLUDE_TAGS keeps the slow (full-size) and gpu suites out of the default run.
test: deps
	@$(MAKE) --no-print-directory test-build
	@DIFFAUG=$(CLI) CK_EXCLUDE_TAGS="slow gpu" tests/run.sh $(BUILD)/tests

test-slow: deps
	@$(MAKE) --no-print-directory test-build
	@DIFFAUG=$(CLI) CK_INCLUDE_TAGS="slow" tests/run.sh $(BUILD)/tests

# test-gpu asks for a GPU (DIFFAUG_REQUIRE_GPU=1): with none, `diffaug devices --require-gpu` says why
# and the suite's tests fail instead of skipping. Plain `make test` skips the gpu tag entirely.
test-gpu: deps
	@$(MAKE) --no-print-directory test-build
	@$(CLI) devices --require-gpu || echo "test-gpu: NO USABLE GPU - every gpu test will fail (DIFFAUG_REQUIRE_GPU=1)"
	@DIFFAUG=$(CLI) CK_INCLUDE_TAGS="gpu" DIFFAUG_REQUIRE_GPU=1 tests/run.sh $(BUILD)/tests

# compute-sanitizer over the gpu suite in one process (CK_FORK=no) with a sync after every launch
# (DIFFAUG_CUDA_SYNC=1) so a fault names its launcher; memcheck then racecheck (shared memory).
COMPUTE_SANITIZER ?= $(or $(shell command -v compute-sanitizer 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/compute-sanitizer),$(wildcard $(CUDA_HOME)/compute-sanitizer/compute-sanitizer),compute-sanitizer)
SANITIZE_ENV := CK_FORK=no CK_INCLUDE_TAGS=gpu DIFFAUG_REQUIRE_GPU=1 DIFFAUG_CUDA_SYNC=1 DIFFAUG=$(CLI)
test-gpu-sanitize: deps
ifeq ($(HAVE_CUDA),1)
	@$(MAKE) --no-print-directory test-build
	@command -v $(COMPUTE_SANITIZER) >/dev/null || { echo "test-gpu-sanitize: compute-sanitizer not found (set COMPUTE_SANITIZER=path; it ships with the CUDA toolkit)"; exit 1; }
	@$(CLI) devices --require-gpu
	$(SANITIZE_ENV) $(COMPUTE_SANITIZER) --tool memcheck --leak-check full --error-exitcode 1 $(BUILD)/tests/test_gpu
	$(SANITIZE_ENV) $(COMPUTE_SANITIZER) --tool racecheck --error-exitcode 1 $(BUILD)/tests/test_gpu
else
	@echo "test-gpu-sanitize: this build has no CUDA backend (nvcc not found, or NO_CUDA=1)"; exit 1
endif

# ---- the tensor-core kernels on the host (tests/emu; every build, GPU or not) ----------------------
# kernels/cuda/attention_tc.cu and conv_tc.cu compiled by the host C++ compiler against a small CUDA
# emulation, so `make test` exercises their index math and masks without nvcc or a GPU.
EMU_OBJ := $(BUILD)/obj/tests/emu/tc_kernels_emu.o
$(EMU_OBJ): tests/emu/tc_kernels_emu.cpp tests/emu/cuda_emu.h kernels/cuda/attention_tc.cu kernels/cuda/conv_tc.cu \
            kernels/cuda/dcuda.h kernels/cpu/kcommon.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 -g -pthread -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Wshadow \
	  -DDCU_EMULATE -Iengine -Ikernels/cpu -Ikernels/cuda -Itests/emu -c $< -o $@
$(BUILD)/tests/test_cuda_emu: $(BUILD)/obj/tests/test_cuda_emu.o $(EMU_OBJ) $(TESTLIB_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(EMU_OBJ) $(TESTLIB_OBJ) $(LIB) $(CHECK_LIBS) $(LDLIBS) -lstdc++ -pthread

# ---- demo ----------------------------------------------------------------------------------------
# The whole augmentation pipeline on tiny random-weight models (seconds on 2 cores): a synthetic
# 3-class dataset, then DiffuseMix, DiffCoRe-Mix (on SD 1.x, labelled deviations, and on a CosXL-style
# tiny SDXL file: EDM Euler v-prediction, no deviation) and SGID (prompts from a tiny BLIP captioner)
# over it, each with its manifest and a
# contact sheet (original | generated | hybrid | final). Random weights give noise-like images;
# weights/README.md has the real files and command lines. OMP_WAIT_POLICY=passive: on a busy
# 2-core host libgomp's spinning barriers made tiny models 10x slower (docs/RECIPES.md).
DEMO := $(BUILD)/demo
DEMO_VOCAB ?= ../shared/data/clip-tokenizer
DEMO_STEPS ?= 8
DEMO_ENV := OMP_WAIT_POLICY=passive
demo: deps
	@$(MAKE) --no-print-directory all
	@test -f $(DEMO_VOCAB)/vocab.json || { echo "demo: no CLIP tokenizer in $(DEMO_VOCAB) (vocab.json + merges.txt); set DEMO_VOCAB=DIR"; exit 1; }
	@start=$$(date +%s); set -e; rm -rf $(DEMO) && mkdir -p $(DEMO)/models; \
	$(CLI) mkmodel --config tiny-ip2p --layout diffusers --vocab $(DEMO_VOCAB) -o $(DEMO)/models/tiny-ip2p; \
	$(CLI) mkmodel --config tiny-sd15 --layout diffusers --vocab $(DEMO_VOCAB) -o $(DEMO)/models/tiny-sd15; \
	$(CLI) mkmodel --config tiny-clip-vit-b32 --layout diffusers --vocab $(DEMO_VOCAB) -o $(DEMO)/models/tiny-clip; \
	$(CLI) mkmodel --config tiny-sdxl --layout single --cosxl -o $(DEMO)/models/tiny-cosxl.safetensors; \
	$(CLI) mkmodel --config tiny-blip --layout diffusers --vocab tests/data/blip/vocab -o $(DEMO)/models/tiny-blip; \
	$(CLI) mkmodel --config tiny-sdxl --layout diffusers --seed 1 -o $(DEMO)/models/tiny-sdxl-vae; \
	$(CLI) mkdataset --classes 3 --per-class 4 --size 64 --seed 1 -o $(DEMO)/dataset; \
	$(CLI) sheet --cols 4 --cell 96 -o $(DEMO)/dataset.png $(DEMO)/dataset/*/*; \
	echo "== DiffuseMix (InstructPix2Pix edits + 20 px ramp hybrid + fractal blend)"; \
	$(DEMO_ENV) $(CLI) augment --recipe diffusemix --model $(DEMO)/models/tiny-ip2p --input $(DEMO)/dataset \
	    --output $(DEMO)/diffusemix --prompts "snowy,watercolor art" --size 64 --steps $(DEMO_STEPS) \
	    --batch 4 --intermediates --sheet 6; \
	echo "== DiffCoRe-Mix (context text-to-image + CLIP filter + pixel/patch mixing)"; \
	$(DEMO_ENV) $(CLI) augment --recipe diffcoremix --model $(DEMO)/models/tiny-sd15 --clip $(DEMO)/models/tiny-clip \
	    --input $(DEMO)/dataset --output $(DEMO)/diffcoremix --noun shape --budget 1 --size 64 --steps $(DEMO_STEPS) \
	    --batch 4 --intermediates --sheet 6; \
	echo "== DiffCoRe-Mix on CosXL (tiny SDXL with the edm_vpred markers: EDM Euler v-prediction, CFG 12; --vae as the fp16-fix VAE)"; \
	$(DEMO_ENV) $(CLI) augment --recipe diffcoremix --model $(DEMO)/models/tiny-cosxl.safetensors --tokenizer $(DEMO_VOCAB) \
	    --vae $(DEMO)/models/tiny-sdxl-vae/vae --clip $(DEMO)/models/tiny-clip --input $(DEMO)/dataset \
	    --output $(DEMO)/diffcoremix-cosxl --noun shape --budget 1 --size 64 --steps $(DEMO_STEPS) --ref-first \
	    --batch 4 --intermediates --sheet 6; \
	if grep -q '"deviations":\[\]' $(DEMO)/diffcoremix-cosxl/manifest.jsonl; then echo "   (manifest: no deviation)"; \
	else echo "demo: the CosXL DiffCoRe-Mix manifest records a deviation"; exit 1; fi; \
	echo "== SGID (BLIP caption per image, img2img, guidance from CLIP similarity)"; \
	$(DEMO_ENV) $(CLI) augment --recipe sgid --model $(DEMO)/models/tiny-sd15 --clip $(DEMO)/models/tiny-clip \
	    --blip $(DEMO)/models/tiny-blip --input $(DEMO)/dataset --output $(DEMO)/sgid --size 64 --steps $(DEMO_STEPS) \
	    --batch 4 --sheet 6; \
	echo; echo "demo finished in $$(( $$(date +%s) - start )) s:"; \
	echo "  dataset      $(DEMO)/dataset  (sheet $(DEMO)/dataset.png)"; \
	for r in diffusemix diffcoremix diffcoremix-cosxl sgid; do \
	  echo "  $$r outputs $(DEMO)/$$r  manifest $(DEMO)/$$r/manifest.jsonl  summary $(DEMO)/$$r/summary.json  sheet $(DEMO)/$$r/sheet.png"; \
	done; \
	echo; \
	echo "These models have RANDOM weights: the generated images are noise-like by design; the run shows the"; \
	echo "pipeline (prompts, hybrids, fractal blends, CLIP filter, mixing, manifests, resume), not image quality."; \
	echo "For real augmentations download InstructPix2Pix, SD 1.5 and CLIP ViT-B/32 (weights/README.md) and run e.g."; \
	echo "  $(CLI) augment --recipe diffusemix --model ~/models/instruct-pix2pix --input DATA --output OUT --prompts 'Autumn,snowy'"
	@echo "  (weights/README.md lists the DiffCoRe-Mix and SGID command lines too)"

# ---- fuzzing (clang + libFuzzer) ---------------------------------------------------------------
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?= safetensors
FUZZ_DIR := build-fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iengine -Ikernels/cpu
# per target: the sources under test and the libFuzzer options (dictionary, input size)
FUZZ_SRC_safetensors  := engine/safetensors.c engine/json.c engine/util.c
FUZZ_OPTS_safetensors := -max_len=4096 -dict=tests/fuzz/safetensors.dict
FUZZ_SRC_wordpiece    := engine/wordpiece.c engine/unicode.c engine/json.c engine/util.c
FUZZ_OPTS_wordpiece   := -max_len=4096 -dict=tests/fuzz/wordpiece.dict
FUZZ_TARGETS := safetensors wordpiece
fuzz: deps-fuzz
	@case " $(FUZZ_TARGETS) " in *" $(FUZZ_TARGET) "*) ;; \
	  *) echo "make fuzz: unknown FUZZ_TARGET '$(FUZZ_TARGET)' (one of: $(FUZZ_TARGETS))" >&2; exit 2 ;; esac
	@mkdir -p $(FUZZ_DIR)/corpus/$(FUZZ_TARGET) $(FUZZ_DIR)/artifacts/$(FUZZ_TARGET)
	clang $(FUZZ_CFLAGS) -o $(FUZZ_DIR)/fuzz_$(FUZZ_TARGET) tests/fuzz/fuzz_$(FUZZ_TARGET).c $(FUZZ_SRC_$(FUZZ_TARGET))
	cp -n tests/fuzz/corpus/$(FUZZ_TARGET)/* $(FUZZ_DIR)/corpus/$(FUZZ_TARGET)/ 2>/dev/null || true
	$(FUZZ_DIR)/fuzz_$(FUZZ_TARGET) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTS_$(FUZZ_TARGET)) \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$(FUZZ_TARGET)/ $(FUZZ_DIR)/corpus/$(FUZZ_TARGET)

# ---- benchmarks --------------------------------------------------------------------------------
BENCH_LIBS := $(shell $(PKG_CONFIG) --libs openblas 2>/dev/null || echo -lopenblas)
bench-build: $(BENCH_BIN)

bench: deps deps-bench
	@$(MAKE) --no-print-directory bench-build
	@bench/run.sh $(BUILD)/bench

# ---- GPU benchmarks (CUDA builds only; bench/gpu stays out of `make bench`'s CPU table) --------
BENCH_GPU := $(BUILD)/bench/bench_gpu
BENCH_GPU_UNET := $(BUILD)/bench/bench_unet_gpu
$(BENCH_GPU): bench/gpu/bench_gpu.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)
$(BENCH_GPU_UNET): bench/gpu/bench_unet_gpu.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# per-op kernels first, then the full SD 1.5 UNet step (batch 2 and 16, f16 and bf16; writes two
# 1.7 GB random-weight models to DIFFAUG_BENCH_DIR, default /tmp)
bench-gpu:
ifeq ($(HAVE_CUDA),1)
	@$(MAKE) --no-print-directory $(BENCH_GPU) $(BENCH_GPU_UNET)
	@$(BENCH_GPU)
	@echo
	@$(BENCH_GPU_UNET)
else
	@echo "bench-gpu: this build has no CUDA backend (nvcc not found, or NO_CUDA=1)"; exit 1
endif

# ---- CUDA compile check (CI) -------------------------------------------------------------------
cuda-check:
ifeq ($(HAVE_CUDA),1)
	@$(MAKE) --no-print-directory $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_SRC)) $(BUILD)/obj/engine/backend_cuda.o $(BENCH_GPU) $(BENCH_GPU_UNET) $(BUILD)/tests/test_gpu && echo "cuda: every .cu file compiled for sm_$(CUDA_ARCH); backend_cuda.c, bench_gpu, bench_unet_gpu and test_gpu built and linked"
else
	@echo "cuda: nvcc not found (or NO_CUDA=1); CUDA compile check skipped"
endif

print-config:
	@echo "diffaug build configuration"
	@echo "  build dir     $(BUILD)"
	@echo "  cc            $(CC) ($(shell $(CC) -dumpfullversion 2>/dev/null))"
	@echo "  cflags        $(OPT) $(ARCHFLAGS)"
	@echo "  simd          $(SIMD_LEVEL)"
	@echo "  openmp        $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes || echo no)"
	@echo "  libpng        $(shell $(PKG_CONFIG) --modversion libpng 2>/dev/null || echo missing)"
	@echo "  libjpeg       $(shell $(PKG_CONFIG) --modversion libjpeg 2>/dev/null || echo missing)"
	@echo "  check         $(shell $(PKG_CONFIG) --modversion check 2>/dev/null || echo missing)"
	@echo "  openblas      $(shell $(PKG_CONFIG) --modversion openblas 2>/dev/null || echo 'missing (bench peer only)')"
	@echo "  nvcc          $(if $(NVCC),$(NVCC) ($(shell $(NVCC) --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')),not found)"
	@echo "  cuda backend  $(if $(filter 1,$(HAVE_CUDA)),yes (arch $(CUDA_ARCH): sm + compute PTX),no)"
	@echo "  cublas        $(if $(filter 1,$(HAVE_CUDA)),$(HAVE_CUBLAS),n/a)"
	@echo "  clang (fuzz)  $(shell command -v clang >/dev/null && clang -dumpversion || echo missing)"

clean:
	rm -rf build build-nocuda build-san build-portable build-fuzz
