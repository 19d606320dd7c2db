# The README's commands: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
MAX_JOBS ?= 2
# Compile (and link) the CUDA sources wherever a CUDA toolkit is installed, GPU or not.
CUDA_HOME ?= $(shell [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda)
ifneq ($(CUDA_HOME),)
BUILD_ENV := FORCE_CUDA=$(or $(FORCE_CUDA),1) CUDA_HOME=$(CUDA_HOME)
endif
STAMP := $(VENV)/.deps-installed

.PHONY: install build test test-fast demo bench gpu-check clean

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch numpy pillow pytest ninja pybind11 setuptools wheel
	# Test oracle only (never imported by the package): builds from source, ~40 s.
	$(PIP) install -q pydensecrf2 || echo "note: pydensecrf2 (optional CRF test oracle) not installed"
	touch $(STAMP)

install: $(STAMP) build

# Rebuilds only what changed (ninja); the editable install makes `import deeplab_caffe` work.
build: $(STAMP)
	$(BUILD_ENV) MAX_JOBS=$(MAX_JOBS) $(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import deeplab_caffe as dc; print('deeplab_caffe build:', dc.build_info())"

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py

# Full shapes on a GPU; on a CPU-only machine the quick (scaled-down) set.
bench: install
	mkdir -p bench_out
	if $(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  $(PY) tools/bench_atrous.py --json bench_out/bench_atrous.json; \
	else \
	  $(PY) tools/bench_atrous.py --device cpu --quick --json bench_out/bench_atrous.json; \
	fi

gpu-check:
	bash tools/gpu_check.sh

clean:
	rm -rf build *.egg-info deeplab_caffe/_C*.so
