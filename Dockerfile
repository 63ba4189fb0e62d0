# sentiment-nb: the verified scikit-learn pipeline behind gunicorn, with everything it needs inside.
#   docker build -t sentiment-nb .
#   docker run -p 5000:5000 sentiment-nb
# Plain Dockerfile syntax, no BuildKit-only features, so the legacy builder builds it too. Without
# `RUN --mount` a runtime stage could install wheels only after COPYing them into a layer of its own
# (76 MB for good), so the build stage installs the wheels into /opt/venv and the runtime copies that.
# The base is pinned to Debian bookworm: the build installs bookworm's WordNet packages.

# ---- build: wheels for the exact runtime pins, installed into a venv; WordNet for NLTK ----
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_PROGRESS_BAR=off \
    PYTHONDONTWRITEBYTECODE=1

# Debian's WordNet, from which `sentiment-nb nltk-data` assembles NLTK's corpora/wordnet:
# the data is baked in here so the container never downloads anything at run time.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# settings.ini `requirements` is the runtime pin list (setup.py reads the same key). The venv keeps
# what serving runs: the libraries' test suites, type stubs, C/Cython sources, ONNX Runtime's export and
# quantisation tooling (9 MB, used only by `make accurate`), the compiled download accelerator of the model
# hub client that `tokenizers` requires (11 MB; `pip check` has passed, and serving imports neither),
# scikit-learn's sample datasets and pip stay behind.
COPY settings.ini ./
RUN python -c "import configparser; c = configparser.ConfigParser(delimiters=['=']); c.read('settings.ini'); print('\n'.join(c['DEFAULT']['requirements'].split()))" > requirements.txt \
 && python -m pip wheel --wheel-dir /wheels -r requirements.txt \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels -r requirements.txt \
 && /opt/venv/bin/pip check \
 && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
 && find /opt/venv -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.pxi' \
      -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -delete \
 && cd /opt/venv/lib/python3.11/site-packages \
 && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools hf_xet/hf_xet.abi3.so \
      sklearn/datasets/data sklearn/datasets/images sklearn/datasets/descr \
 && cd /src \
 && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools

# What serving needs, world-readable whatever the work tree's modes (a model written by
# `save_pipeline` is 0600), with bytecode compiled now: the container may run read-only.
COPY sentiment_nb/ /srv/sentiment-nb/sentiment_nb/
COPY app/ /srv/sentiment-nb/app/
COPY models/ /srv/sentiment-nb/models/
WORKDIR /srv/sentiment-nb
RUN chmod -R a+rX,go-w . && /opt/venv/bin/python -m compileall -q sentiment_nb app

# The project's own `sentiment-nb nltk-data`, made readable by the runtime user (it assembles the
# corpus in a private temporary folder); the lemmatizer must work from it.
ENV NLTK_DATA=/usr/local/share/nltk_data
RUN /opt/venv/bin/python -c "from sentiment_nb.cli import main; main(['nltk-data'])" \
 && chmod -R a+rX "$NLTK_DATA" \
 && /opt/venv/bin/python -c "from nltk.stem import WordNetLemmatizer; assert WordNetLemmatizer().lemmatize('geese') == 'goose'"

# ---- runtime: the venv, the NLTK data and the three folders serving needs; no root ----
FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/sentiment-nb \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NLTK_DATA=/usr/local/share/nltk_data \
    HOST=0.0.0.0 \
    PORT=5000

RUN groupadd --gid 10001 sentiment \
 && useradd --uid 10001 --gid sentiment --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sentiment

COPY --from=build /opt/venv /opt/venv
COPY --from=build /usr/local/share/nltk_data /usr/local/share/nltk_data

COPY --from=build /srv/sentiment-nb /srv/sentiment-nb
WORKDIR /srv/sentiment-nb

# Numeric, so orchestrators can verify the image does not run as root.
USER 10001:10001
EXPOSE 5000
# No curl in a slim image: Python asks /health on the port gunicorn serves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=2)"]
# Exec form: gunicorn is PID 1 and gets `docker stop`'s SIGTERM itself, for a graceful exit.
CMD ["gunicorn", "--config", "app/gunicorn.conf.py", "app:create_app()"]
