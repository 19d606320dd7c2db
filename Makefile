# The README's commands: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
MAX_JOBS ?= 2
# The CUDA kernels are built where torch sees a GPU, or with FORCE_CUDA=1 (CI sets it wherever
# nvcc exists, so a CUDA compile error fails CI even without a GPU).  CUDA_HOME defaults to
# /usr/local/cuda when it is there: torch's own guess (/usr/local) fails to link.
FORCE_CUDA ?= 0
CUDA_HOME ?= $(shell [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda)
BUILD_ENV := FORCE_CUDA=$(FORCE_CUDA) $(if $(CUDA_HOME),CUDA_HOME=$(CUDA_HOME))
STAMP := $(VENV)/.deps-installed
# Rebuilt only when a source or the CUDA choice changes.
EXT_STAMP := $(VENV)/.ext-built-cuda$(FORCE_CUDA)
EXT_SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h') setup.py pyproject.toml

.PHONY: install build test demo bench gpu-check clean

# pydensecrf2 is a test oracle only (never imported by the package); it builds from source, ~40 s.
# matplotlib draws the plots (a PIL fallback exists) and brings the real photograph the CRF tests
# compare on (its sample grace_hopper.jpg).
$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch numpy pillow pytest hypothesis ninja pybind11 setuptools wheel
	$(PIP) install -q pydensecrf2 || echo "note: pydensecrf2 (optional CRF test oracle) not installed"
	$(PIP) install -q matplotlib || echo "note: matplotlib (optional: plots, and the real photograph of the CRF tests) not installed"
	touch $(STAMP)

install: $(STAMP) build

# The editable install builds deeplab_caffe._C and makes `import deeplab_caffe` work.
$(EXT_STAMP): $(STAMP) $(EXT_SOURCES)
	rm -f $(VENV)/.ext-built-cuda*
	$(BUILD_ENV) MAX_JOBS=$(MAX_JOBS) $(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import deeplab_caffe as dc; print('deeplab_caffe build:', dc.build_info())"
	touch $@

build: $(EXT_STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py

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
	rm -rf build *.egg-info deeplab_caffe/_C*.so
