# The two commands of the README:
#   make demo   - run the quickstart study on the embedded defaults (data fetched on first use)
#   make test   - every test tier: unit, slow (real model + ML-100K), pg, browser
# Both create or reuse the virtual environment .venv themselves.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.13.0: the CPU wheel already on disk on CPU-only dev/CI machines; the normal
# (CUDA) build from PyPI on a user's GPU machine. Pinned so pip never picks a newer build.
TORCH  ?= torch==2.13.0

.PHONY: venv demo test test-fast test-bare lint docs bench browser-deps sparse-deps clean

$(VENV)/.installed: pyproject.toml
	@$(MAKE) --no-print-directory sparse-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/moo-search run studies/quickstart.yaml

# SuiteSparse headers: scikit-sparse (for the sansa backbone, extra "scale") compiles against them
sparse-deps:
	@test -f /usr/include/suitesparse/cholmod.h || { \
	  echo "installing Debian's libsuitesparse-dev for scikit-sparse (the sansa backbone)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsuitesparse-dev) >/dev/null; }

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; }

lint: venv
	$(VENV)/bin/ruff check moo_search tests benchmarks
	$(VENV)/bin/ruff format --check moo_search tests benchmarks
	$(VENV)/bin/mypy moo_search

# the docs site (docs/ -> site/); the reference pages are generated from the code first
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

test: venv browser-deps lint docs test-bare
	$(VENV)/bin/pytest -q --durations=25

# the engine alone (pip install moo-search, no torch/transformers/PEFT/implicit/MLflow) in a
# fresh virtual environment: a zdt1 study, its report and export
test-bare:
	PYTHON=$(PYTHON) bash .ci/bare-install

test-fast: venv
	$(VENV)/bin/pytest -q -m "not slow and not pg and not browser"

bench: venv
	$(PY) benchmarks/bench_trial.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
