# riskpo-mm: two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

.PHONY: setup setup-gpu test demo demo-grpo bench clean

setup: $(STAMP)

# CPU install. openrlhf pins flash-attn (needs CUDA to build), so it goes in with
# --no-deps; its real runtime needs are in setup.cfg.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -e '.[test]'
	$(BIN)/pip install --no-deps openrlhf==0.11.2
	touch $(STAMP)

# GPU machines: adds flash-attn and vLLM (the Ray engine needs vLLM).
setup-gpu: setup
	$(BIN)/pip install -e '.[gpu]'

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/riskpo-mm train --config configs/demo/geometry_tiny_cpu.yaml

demo-grpo: setup
	$(BIN)/riskpo-mm train --config configs/demo/geometry_tiny_cpu_grpo.yaml

bench: setup
	for b in advantage rewards data train_step; do $(BIN)/python -m riskpo_mm.bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis runs
