# sagepush developer commands. `make` lists them; `make test` is the CI gate (.ci/run calls it).
# Every recipe runs through uv; when uv is not on PATH it is installed from PyPI with pip into .local/uv.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-print-directory

# ---------------------------------------------------------------- tools
UV_VERSION ?= 0.13.9
CHECKOV_VERSION ?= 3.3.30
BANDIT_VERSION ?= 1.9.4
PIP_AUDIT_VERSION ?= 2.10.1
LOCAL_UV := $(CURDIR)/.local/uv/bin/uv
ifeq ($(origin UV),undefined)
  UV := $(shell uv --version >/dev/null 2>&1 && command -v uv)
  ifeq ($(UV),)
    UV := $(LOCAL_UV)
  endif
endif
UV_RUN := $(UV) run --frozen
# Tests and scripts that start uv themselves use this one (uv run also names itself in $UV).
export UV
# Installs compile bytecode, so no tool, test subprocess or CLI start compiles its dependencies again (this machine
# sets PYTHONDONTWRITEBYTECODE=1, and uv compiles nothing by default).
export UV_COMPILE_BYTECODE := 1

# Region for the offline template checks only (nothing is deployed by them).
TEMPLATE_REGION ?= us-east-1
# The Lambda runtime's interpreter, needed on PATH by `sam build`.
LAMBDA_PYTHON ?= 3.13
PYENV_LAMBDA_PYTHON ?= 3.13.0

PYTEST_ARGS ?= --timeout=900
SAM_BUILD_ARGS ?=

# Git directories (a clone, a bare clone or a mirror) of the framework containers' repositories, for
# `make framework-packages`: aws/sagemaker-scikit-learn-container, aws/sagemaker-xgboost-container and
# aws/deep-learning-containers. Each one left empty is cloned from GitHub into a temporary directory.
SKLEARN_CONTAINER_GIT ?=
XGBOOST_CONTAINER_GIT ?=
DLC_GIT ?=
FRAMEWORK_PACKAGES = $(UV_RUN) python scripts/generate_framework_packages.py \
	$(if $(SKLEARN_CONTAINER_GIT),--sklearn-git "$(SKLEARN_CONTAINER_GIT)") \
	$(if $(XGBOOST_CONTAINER_GIT),--xgboost-git "$(XGBOOST_CONTAINER_GIT)") \
	$(if $(DLC_GIT),--dlc-git "$(DLC_GIT)")

export SAM_CLI_TELEMETRY := 0

# Runs pytest on $(1); "no tests collected" (exit 5) is an error that says so, never a silent pass or a bare 5.
define pytest
	@rc=0; $(UV_RUN) pytest $(PYTEST_ARGS) $(1) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "error: pytest collected no tests under $(1)" >&2; exit 1; fi; \
	exit "$$rc"
endef

# Prints the path of a python$(LAMBDA_PYTHON) interpreter: one already on PATH, pyenv's $(PYENV_LAMBDA_PYTHON),
# one uv knows, or one uv installs.
define find_lambda_python
	probe='import sys; print(sys.executable)'; \
	if py=$$(python$(LAMBDA_PYTHON) -c "$$probe" 2>/dev/null); then :; \
	elif py=$$(PYENV_VERSION=$(PYENV_LAMBDA_PYTHON) python$(LAMBDA_PYTHON) -c "$$probe" 2>/dev/null); then :; \
	elif py=$$($(UV) python find --no-project '==$(LAMBDA_PYTHON).*' 2>/dev/null); then :; \
	elif $(UV) python install $(LAMBDA_PYTHON) >&2 && py=$$($(UV) python find --no-project '==$(LAMBDA_PYTHON).*'); then :; \
	else echo "error: sam build needs python$(LAMBDA_PYTHON) (PATH, pyenv $(PYENV_LAMBDA_PYTHON) or uv python install)" >&2; exit 1; fi; \
	echo "$$py"
endef

.PHONY: help uv dev fmt lint lint-py lint-template lint-deps unit integration e2e burst corpus test bench bench-check images \
	framework-packages build demo clean

help: ## list the targets
	@echo "usage: make <target>"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z][a-z0-9-]*:.*## / {printf "  %-19s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

uv: ## make sure uv runs (installs the pinned uv from PyPI into .local/uv when it is not on PATH)
	@if ! "$(UV)" --version >/dev/null 2>&1; then \
	  echo "uv not on PATH: installing uv==$(UV_VERSION) into .local/uv"; \
	  PIP_USER=0 python3 -m pip install --quiet --disable-pip-version-check --target "$(CURDIR)/.local/uv" "uv==$(UV_VERSION)"; \
	fi
	@"$(UV)" --version

dev: uv ## create .venv from uv.lock (dev group included); install git hooks where pre-commit exists
	$(UV) sync --frozen
	@if [ -z "$${CI:-}" ] && [ -f .pre-commit-config.yaml ] && [ -d .git ] && command -v pre-commit >/dev/null 2>&1; then \
	  pre-commit install; \
	fi

fmt: uv ## fix imports and lint findings ruff can fix, then format
	$(UV_RUN) ruff check --fix .
	$(UV_RUN) ruff format .

lint: lint-py lint-template lint-deps ## every static check: ruff, mypy, bandit, template checks, lock consistency

lint-py: uv ## ruff check, ruff format --check, mypy --strict (pyproject), import layers (lint-imports), bandit
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) mypy
	$(UV_RUN) lint-imports --no-cache --no-logo
	$(UV) tool run --from 'bandit==$(BANDIT_VERSION)' bandit --quiet --severity-level medium -r layers/sagepush/sagepush functions cli

lint-template: uv ## sam validate --lint, cfn-lint with the serverless rules, checkov (skips explained in template.yaml)
	$(UV_RUN) sam validate --lint --template template.yaml --region $(TEMPLATE_REGION)
	$(UV_RUN) cfn-lint --regions $(TEMPLATE_REGION) -a cfn_lint_serverless.rules -- template.yaml
	$(UV) tool run --from 'checkov==$(CHECKOV_VERSION)' checkov --file template.yaml --framework cloudformation \
	  --skip-download --compact --quiet

lint-deps: uv ## uv.lock matches pyproject.toml; the layer's requirements.txt is uv.lock's, hashes included; pip-audit
	$(UV) lock --check
	@# The layer's requirements.txt is generated from uv.lock (every package with its hashes): any difference fails.
	$(UV_RUN) python scripts/layer_requirements.py --check --uv "$(UV)"
	@# Says "NOT audited" (and fails under SAGEPUSH_REQUIRE_AUDIT=1) when no advisory source answers; see the script.
	$(UV_RUN) python scripts/audit_lock.py --uv "$(UV)" --pip-audit $(PIP_AUDIT_VERSION)

unit: dev ## pytest tests/unit
	$(call pytest,tests/unit)

integration: dev ## pytest tests/integration (moto server on 127.0.0.1)
	$(call pytest,tests/integration)

e2e: dev ## pytest tests/e2e (the local stack end to end)
	$(call pytest,tests/e2e)

burst: dev ## the full bursts (500 uploads, 5 000 state events; then the same under faults); make test runs a fifth
	@# One local stack per burst: after a 500-upload burst, the next one's drain can wait on a delivery that never
	@# ends (docs/reliability.md, "Under load"), so each runs in its own session.
	SAGEPUSH_BURST_UPLOADS=$${SAGEPUSH_BURST_UPLOADS:-500} $(UV_RUN) pytest $(PYTEST_ARGS) -m burst -k "not faults" tests/integration/test_burst.py
	SAGEPUSH_BURST_UPLOADS=$${SAGEPUSH_BURST_UPLOADS:-500} $(UV_RUN) pytest $(PYTEST_ARGS) -m burst -k faults tests/integration/test_burst.py

corpus: export SAGEPUSH_CORPUS_REQUIRED := 1
corpus: dev ## the corpus of upstream SageMaker projects (tests/corpus) and torch_distributed, PyTorch ones included
	@# -m '' lifts pyproject's `-m 'not corpus_slow'`; a project whose upstream files cannot be had fails here.
	$(call pytest,-m '' tests/e2e/test_corpus.py tests/e2e/test_torch_distributed.py)

test: dev lint ## what CI runs and README names: every static check, then pytest over tests/
	$(call pytest,tests)

bench: dev ## benchmarks, as ratios against references measured in the same run; fails on any missed target
	$(UV_RUN) python -m bench

bench-check: dev ## the quick benchmarks; fails on a ratio more than 25 % behind its target (for a quiet machine)
	$(UV_RUN) python -m bench --quick --only staging,memory,init,stack --slack 1.25 --output bench/quick-results.json

images: uv ## regenerate the training and inference image data from the newest SageMaker SDK on PyPI (keeps what v2 knew), then framework-packages
	$(UV_RUN) python scripts/generate_images.py
	@# Exit status 3: GitHub unreachable. The image table is new all the same; the packages stay as committed.
	@rc=0; $(FRAMEWORK_PACKAGES) || rc=$$?; \
	if [ "$$rc" -eq 3 ]; then echo "warning: framework-packages.json kept as it was: GitHub unreachable" >&2; \
	elif [ "$$rc" -ne 0 ]; then exit "$$rc"; fi

framework-packages: uv ## regenerate the framework images' Python and packages from their Dockerfiles (GitHub, or the *_GIT dirs)
	$(FRAMEWORK_PACKAGES)

build: uv ## sam build for the python3.13 arm64 runtime (settings from samconfig.toml)
	@py=$$($(find_lambda_python)); echo "sam build with $$py"; \
	PATH="$$(dirname "$$py"):$$PATH" $(UV_RUN) sam build --template template.yaml $(SAM_BUILD_ARGS)

demo: dev ## train examples/sklearn-iris on a local moto stack, deploy its model and ask it for a prediction
	$(UV_RUN) sagepush local demo examples/sklearn-iris --predict 5.1,3.5,1.4,0.2

clean: ## remove build output and tool caches (keeps .venv and .local)
	rm -rf .aws-sam build dist .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.venv -prune -o -path ./.local -prune -o -type d -name __pycache__ -exec rm -rf {} +
