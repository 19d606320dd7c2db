# The README's commands: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
MAX_JOBS ?= 2
# The CUDA kernels are built where torch sees a GPU, or with FORCE_CUDA=1 (.ci/run sets it
# wherever nvcc exists, so a CUDA compile error fails CI even without a GPU).  Not by default on a
# machine without a GPU: nvcc takes minutes there, for kernels the emulated build below runs
# anyway, and `make demo` should stay quick.  CUDA_HOME defaults to /usr/local/cuda when it is
# there: torch's own guess (/usr/local) fails to link.
FORCE_CUDA ?= 0
CUDA_HOME ?= $(shell [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda)
BUILD_ENV := FORCE_CUDA=$(FORCE_CUDA) $(if $(CUDA_HOME),CUDA_HOME=$(CUDA_HOME))
STAMP := $(VENV)/.deps-installed
# Rebuilt only when a source or the CUDA choice changes.
EXT_STAMP := $(VENV)/.ext-built-cuda$(FORCE_CUDA)
EXT_SOURCES := $(shell find csrc -path csrc/emu -prune -o \( -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.h' \) -print) setup.py pyproject.toml
# The emulated-CUDA build (deeplab_caffe._emu: the CUDA kernels and glue compiled as C++ against
# the HIP CPU runtime, run on CPU tensors; see setup.py).  Its own stamp and build folder, so a
# CPU-only change does not wait for it and ninja recompiles only what changed (about a minute per
# .cu file on 2 cores).
HIP_CPU_DIR ?= $(abspath ../shared/third_party/hip-cpu)
EMU_STAMP := $(VENV)/.emu-built
EMU_SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.h') setup.py
EMU_BUILD := DEEPLAB_CAFFE_EXT=emu HIP_CPU_DIR=$(HIP_CPU_DIR) MAX_JOBS=$(MAX_JOBS) \
	$(PY) setup.py -q build_ext --inplace --build-temp build/emu
HAVE_TBB := { [ -f /usr/include/tbb/tbb.h ] || [ -f /usr/include/oneapi/tbb.h ]; }
# AddressSanitizer + UndefinedBehaviorSanitizer build of the emulated kernels (make sanitize-emu).
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# Every test parametrized with the emu backend, and tests/test_emu.py.
EMU_TESTS ?= tests

.PHONY: install build emu graphviz sanitize-emu test demo bench gpu-check clean

# pydensecrf2 is a test oracle only (never imported by the package); it builds from source, ~40 s.
# matplotlib draws the plots (a PIL fallback exists) and brings the real photograph the CRF tests
# compare on (its sample grace_hopper.jpg).
$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch numpy pillow scipy pytest hypothesis ninja pybind11 setuptools wheel h5py lmdb
	$(PIP) install -q protobuf six pydot  # deeplab_caffe.pycaffe (caffe_pb2), BVLC's pycaffe tests, caffe.draw
	$(PIP) install -q pydensecrf2 || echo "note: pydensecrf2 (optional CRF test oracle) not installed"
	$(PIP) install -q matplotlib || echo "note: matplotlib (optional: plots, and the real photograph of the CRF tests) not installed"
	$(PIP) install -q plyvel || echo "note: plyvel (optional: LevelDB Data sources) not installed"
	touch $(STAMP)

install: $(STAMP) build

# The editable install builds deeplab_caffe._C and makes `import deeplab_caffe` work.
$(EXT_STAMP): $(STAMP) $(EXT_SOURCES)
	rm -f $(VENV)/.ext-built-cuda*
	$(BUILD_ENV) MAX_JOBS=$(MAX_JOBS) $(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import deeplab_caffe as dc; print('deeplab_caffe build:', dc.build_info())"
	touch $@

build: $(EXT_STAMP)

# Skipped with a message (the emu tests then skip too) where the HIP CPU runtime is absent, or TBB
# is absent and cannot be installed (apt-get, as root).
$(EMU_STAMP): $(STAMP) $(EMU_SOURCES)
	@if [ ! -f "$(HIP_CPU_DIR)/include/hip/hip_runtime.h" ]; then \
	  echo "note: emulated-CUDA build skipped: no HIP CPU runtime at $(HIP_CPU_DIR) (set HIP_CPU_DIR)"; \
	  exit 0; \
	fi; \
	if ! $(HAVE_TBB) && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing libtbb-dev (TBB, for the emulated-CUDA build)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libtbb-dev >/dev/null; \
	fi; \
	if ! $(HAVE_TBB); then \
	  echo "note: emulated-CUDA build skipped: TBB headers not found (apt-get install libtbb-dev)"; \
	  exit 0; \
	fi; \
	echo "building deeplab_caffe._emu (emulated CUDA, about a minute per .cu file)"; \
	$(EMU_BUILD) && $(PY) -c "import deeplab_caffe as dc, sys; sys.exit(not dc.emu.available())" \
	  && touch $@

emu: $(EMU_STAMP)

# One run of the emulated-CUDA tests under ASan + UBSan (own build folder, then the normal build
# is restored).  The Python interpreter is not instrumented, so libasan and libstdc++ are
# preloaded (ASan must come first; libstdc++ so its operator new/delete pair with ASan's);
# ASan cannot follow HIP-CPU's fiber stack switches, hence detect_stack_use_after_return=0.
sanitize-emu: $(STAMP)
	rm -f $(EMU_STAMP) deeplab_caffe/_emu*.so
	DEEPLAB_CAFFE_EMU_CXXFLAGS="$(SAN_FLAGS)" DEEPLAB_CAFFE_EMU_LDFLAGS="$(SAN_FLAGS)" \
	  DEEPLAB_CAFFE_EXT=emu HIP_CPU_DIR=$(HIP_CPU_DIR) MAX_JOBS=$(MAX_JOBS) \
	  $(PY) setup.py -q build_ext --inplace --build-temp build/emu-sanitize
	LD_PRELOAD="$$(g++ -print-file-name=libasan.so) $$(g++ -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:detect_stack_use_after_return=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 \
	  $(PY) -m pytest -q -p no:cacheprovider $(EMU_TESTS) -k emu; \
	status=$$?; rm -f deeplab_caffe/_emu*.so; $(MAKE) --no-print-directory emu; exit $$status

# Graphviz's dot renders caffe.draw's graphs (BVLC's test_draw draws its zoo with it): installed
# with apt-get (as root) when absent; pydot, its Python side, comes with the other packages.
graphviz:
	@if ! command -v dot >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing graphviz (dot, for caffe.draw)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	fi; \
	command -v dot >/dev/null || echo "note: Graphviz's dot not found (apt-get install graphviz): BVLC's test_draw will fail"

test: install emu graphviz
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py --crfrnn

# Full shapes on a GPU; on a CPU-only machine the quick (scaled-down) atrous set and the CRF
# against pydensecrf (when installed).
bench: install
	mkdir -p bench_out
	if $(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  $(PY) tools/bench_atrous.py --json bench_out/bench_atrous.json; \
	  $(PY) tools/bench_crf.py --device cuda --json bench_out/bench_crf.json; \
	else \
	  $(PY) tools/bench_atrous.py --device cpu --quick --json bench_out/bench_atrous.json; \
	  $(PY) tools/bench_crf.py --device cpu --json bench_out/bench_crf.json; \
	fi

gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf build *.egg-info deeplab_caffe/_C*.so deeplab_caffe/_emu*.so $(VENV)/.ext-built-cuda* $(EMU_STAMP)
