# The two commands: `make demo` and `make test`. Both set everything up from nothing (so does `make docs`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PRESET ?= quick
JOBS ?= 2  # papers in 2 worker processes: faster than 1 on the 2-core CPU (README, "The two commands")

.PHONY: demo test setup setup-dev data bench dry-runs gpu-check check-torch docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU wheel of torch 2.13.0; an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,video,hf,lora,docs]'
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

# Optional real data from Debian packages (fonts for the glyph set, Fashion-MNIST, espeak-ng voices);
# best effort, needs root.
data:
	@bash scripts/install-system-data.sh

# the main job needs the core install and the real video clips of the SqueezeTime claims, nothing of the dev tools
$(VENV)/.installed-demo: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[video]'
	touch $@

demo: $(VENV)/.installed-demo
	-@bash scripts/install-system-data.sh
	$(BIN)/paperzoo reproduce --preset $(PRESET) --jobs $(JOBS)

test: setup-dev
	-@bash scripts/install-system-data.sh
	$(BIN)/python -m pytest -q --durations=15

# every benchmark, each in its own process, ending with the table of goals (results in runs/bench-<time>.json)
bench: setup-dev
	$(BIN)/paperzoo bench

# every paper's --dry-run at standard and full that the suite leaves out, one paper at a time (more than an hour on 2 cores)
dry-runs: setup-dev
	$(BIN)/python -m pytest -q -m every_paper_dry_run tests/test_dry_run.py

# every CUDA path once, <= 8 minutes on one GPU; without a GPU, a labelled CPU dry run at tiny sizes
gpu-check: setup-dev
	$(BIN)/python scripts/gpu_check.py

# paperzoo installed beside another torch (its own venv, `pip install -e .`), its core tests run, the outcome recorded
# in docs/results/dependencies.json; TORCH=2.13.0 VENV_CHECK=.venv re-checks the Makefile's own venv as it is
TORCH ?= 2.14.1
check-torch: $(VENV)/.installed-dev
	$(BIN)/python scripts/check_torch_version.py $(if $(VENV_CHECK),--venv $(VENV_CHECK) --no-install,--torch $(TORCH))

# the docs site into site/ (open site/index.html), numbers rendered from docs/results/*.json as it builds
docs: setup-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs .pytest_cache site
