# The two commands of README.md: `make repro` (main job) and `make test` (tests). Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: repro test lint dataset

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Fashion-MNIST from Debian when apt is there and the files are not; otherwise the download stage fetches them.
dataset:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

repro: dataset $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro

lint: $(VENV)/.installed
	$(BIN)/ruff check .

test: dataset $(VENV)/.installed lint
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q tests
