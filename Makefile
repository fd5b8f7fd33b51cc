# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed only where the venv has none, so a CUDA build installed first is kept (README,
# "GPU machines"); TORCH is what goes in otherwise (the CPU build on the project's machines).
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-slurm lint clean toyworld-weights

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

demo: setup
	$(BIN)/snakemake --cores all

test: setup
	$(BIN)/python -m pytest

# The workflow through a real one-node Slurm (root, Debian; scripts/slurm/): install Slurm, start
# it, run tests/test_slurm.py (`snakemake --profile profiles/slurm`), and stop it, also when the test
# fails. SLURM_ACCOUNTING=--accounting adds slurmdbd and MariaDB, so that jobs are checked with sacct.
SLURM_ACCOUNTING ?=

test-slurm: setup
	bash scripts/slurm/install.sh $(SLURM_ACCOUNTING)
	bash -c 'trap "bash scripts/slurm/stop.sh" EXIT; bash scripts/slurm/start.sh $(SLURM_ACCOUNTING) && VIDMP3_SLURM_TEST=required $(BIN)/python -m pytest tests/test_slurm.py'

# The linters live in their own venv (requirements-lint.txt), so the project's environment stays as pinned.
LINT_VENV := .venv-lint

$(LINT_VENV)/.installed: requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet -r requirements-lint.txt
	touch $@

# snakemake --lint, ruff (lint, then the format check) and snakefmt, all in check mode: they report, they
# never rewrite (run `ruff format` and `snakefmt` yourself on what you changed).
lint: setup $(LINT_VENV)/.installed
	$(BIN)/snakemake --lint
	$(LINT_VENV)/bin/ruff check .
	$(LINT_VENV)/bin/ruff format --check .
	$(LINT_VENV)/bin/snakefmt --check Snakefile rules

# Rebuild the shipped ToyWorld weights from scratch (about 30 min on 2 cores): the classifier, the
# text-to-image model and the motion module are retrained (rules/toyworld.smk), exported as float16 to
# results/toyworld/weights, and that folder replaces vidmp3/toyworld/weights.
TOYWORLD_WEIGHTS := vidmp3/toyworld/weights

toyworld-weights: setup
	$(BIN)/snakemake --cores all --forcerun toyworld_classifier toyworld_image toyworld_motion -- results/toyworld/weights
	rm -rf $(TOYWORLD_WEIGHTS).new
	cp -r results/toyworld/weights $(TOYWORLD_WEIGHTS).new
	rm -rf $(TOYWORLD_WEIGHTS)
	mv $(TOYWORLD_WEIGHTS).new $(TOYWORLD_WEIGHTS)

clean:
	rm -rf results .snakemake
