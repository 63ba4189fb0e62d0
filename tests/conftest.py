"""The pytest fixtures the tests share; the helpers behind them are in tests/support.py.

Web-service fixtures (used by tests/test_app*.py) are named `served_model_path` and `service_*`.
"""
import os
from pathlib import Path

import pytest

from tests.support import CHROMIUM, CHROMIUM_ARGS, ROOT, children_of, gunicorn_command, start_server, wait_until


@pytest.fixture(scope="session")
def served_model_path() -> Path:
    """The model the service tests run against: $SENTIMENT_MODEL, else the shipped models/pipeline.pkl."""
    path = Path(os.environ.get("SENTIMENT_MODEL") or ROOT / "models" / "pipeline.pkl")
    assert path.exists(), f"no trained model at {path}: the shipped one is in the repository, `make train` rewrites it"
    return path


@pytest.fixture(scope="module")
def corpus():
    """The shared SemEval corpus, which the scale tests resample; they are skipped where it is absent, and fail under CI."""
    from sentiment_nb.data import semeval_path, shared_corpus

    found = shared_corpus()
    if found is None:
        pytest.skip(f"{semeval_path()} not found: the scale tests resample the shared SemEval corpus")
    return found


@pytest.fixture(scope="session")
def service_app(served_model_path):
    """The Flask app built by `create_app`, serving the shipped model (loaded once per session)."""
    from app import create_app

    return create_app({"SENTIMENT_MODEL": str(served_model_path)})


@pytest.fixture
def service_client(service_app):
    return service_app.test_client()


@pytest.fixture(scope="session")
def service_gunicorn(served_model_path, tmp_path_factory):
    """The real gunicorn, configured as `make serve` runs it, on a free 127.0.0.1 port; stopped after the session."""
    server = start_server(gunicorn_command(), tmp_path_factory.mktemp("gunicorn") / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path)})
    # /health answers once the first worker is up; the master forks the next a moment later, and tests that count
    # the workers must see them all
    workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
    wait_until(lambda: len(children_of(server.process.pid)) == workers, what=f"gunicorn's {workers} workers")
    yield server
    assert server.stop() == 0, f"gunicorn did not exit cleanly on SIGTERM:\n{server.log()[-3000:]}"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright: one per test module; skipped where either is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (`make setup` installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra has it)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_terminal_summary(terminalreporter, config):
    """The order the tests ran in, printed last (also under -q), so a failure that depends on it can be run again."""
    if config.pluginmanager.hasplugin("randomly") and config.getoption("randomly_seed", None) is not None:
        terminalreporter.write_line(f"tests in random order, seed {config.getoption('randomly_seed')}: "
                                    "--randomly-seed=... repeats it, -p no:randomly runs them in file order (add --reverse for the reverse)")
