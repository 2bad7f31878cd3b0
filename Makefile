# The two commands of README.md: `make repro` (main job) and `make test` (tests). Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist

# TensorFlow, one version in two builds: the GPU build when an NVIDIA driver answers (`nvidia-smi -L`), the CPU build
# otherwise. Override: make repro TF=tensorflow-cpu  /  make repro TF='tensorflow[and-cuda]'
TF_VERSION := 2.21.0
TF ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo 'tensorflow[and-cuda]' || echo tensorflow-cpu)
TF_PACKAGE := $(firstword $(subst [, ,$(TF)))
OTHER_TF := $(if $(filter tensorflow,$(TF_PACKAGE)),tensorflow-cpu,tensorflow)
STAMP := $(VENV)/.installed-$(TF_PACKAGE)

.PHONY: install repro test lint dataset browser

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip uninstall -q -y $(OTHER_TF) 2>/dev/null || true
	$(BIN)/pip install -q -r requirements-dev.txt "$(TF)==$(TF_VERSION)"
	$(BIN)/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Fashion-MNIST from Debian when apt is there and the files are not; otherwise the download stage fetches them.
dataset:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

# Headless Chromium (Debian) for the test that renders reports/report.html as a user's browser does.
browser:
	@if ! command -v chromium-headless-shell >/dev/null && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium-headless-shell; \
	fi

repro: dataset $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro

lint: $(STAMP)
	$(BIN)/ruff check .

# Two pytest workers, one test file each at a time (a file's shared fixtures run once), the longest files first
# (tests/conftest.py: LONGEST_FIRST); GPU memory grows on demand so the two workers' TensorFlow processes can share
# one GPU.
test: dataset browser $(STAMP) lint
	PATH=$(CURDIR)/$(BIN):$$PATH TF_FORCE_GPU_ALLOW_GROWTH=true \
		$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=10 tests
