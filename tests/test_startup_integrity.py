"""The real service refuses to start on a model it must not unpickle: one clear line, a non-zero exit, no port.

Each case copies the served model (with its manifest) to a folder of its own, breaks it one way, and starts
gunicorn exactly as `make serve` does with SENTIMENT_MODEL pointing there; the Flask development server, as
`make dev-serve` runs it (from another directory: `app` is installed), runs the same `create_app` checks and shows
its exit on one case. What `load_pipeline` checks, and that `save_pipeline` is atomic even when killed mid-write,
are library contracts, tested in nbs/03_pipeline.ipynb; this is the service's start-up end to end.
"""
import hashlib
import pickle
import subprocess
from pathlib import Path

import pytest

from tests.support import copy_model, dev_server_command, edit_manifest, get_status, gunicorn_command, start_server

pytestmark = pytest.mark.slow
EXIT_TIMEOUT_S = 90


class WritesAFile:
    """Unpickling this creates the file `marker`: proof that a pickle's code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def tampered(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def truncated_with_a_matching_manifest(path: Path) -> None:
    truncated(path)
    edit_manifest(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def manifest_of_another_file(path: Path) -> None:
    edit_manifest(path, file="other.pkl", sha256=hashlib.sha256(b"another model altogether").hexdigest())


def other_scikit_learn(path: Path) -> None:
    edit_manifest(path, versions={"scikit-learn": "0.24.2"})


def manifest_missing(path: Path) -> None:
    path.with_suffix(".json").unlink()


def manifest_not_json(path: Path) -> None:
    path.with_suffix(".json").write_text('{"sha256": "trailing comma",}')


def model_missing(path: Path) -> None:
    path.unlink()


def malicious_without_manifest(path: Path) -> None:
    path.write_bytes(pickle.dumps(WritesAFile(path.parent / "pwned")))
    path.with_suffix(".json").unlink()


def malicious_under_the_real_manifest(path: Path) -> None:
    path.write_bytes(pickle.dumps(WritesAFile(path.parent / "pwned")))


CASES = {  # how the model is broken -> what the one error line must say
    tampered: "does not match its manifest",
    truncated: "does not match its manifest",
    truncated_with_a_matching_manifest: "corrupt pickle",
    manifest_of_another_file: "does not match its manifest",
    other_scikit_learn: "pickled with scikit-learn 0.24.2",
    manifest_missing: "manifest missing; refusing to unpickle",
    manifest_not_json: "manifest is not valid JSON",
    model_missing: "model file missing",
    malicious_without_manifest: "manifest missing; refusing to unpickle",
    malicious_under_the_real_manifest: "does not match its manifest",
}


SERVERS = {"gunicorn": gunicorn_command, "flask dev server": lambda: dev_server_command(debug=True)}


@pytest.mark.timeout(EXIT_TIMEOUT_S + 30)
@pytest.mark.parametrize("server, break_model", [("gunicorn", case) for case in CASES] + [("flask dev server", tampered)],
                         ids=[f"gunicorn-{f.__name__}" for f in CASES] + ["flask dev server-tampered"])
def test_the_server_refuses_a_model_it_must_not_unpickle(served_model_path, tmp_path, server, break_model):
    path = copy_model(served_model_path, tmp_path / "model")
    break_model(path)
    (tmp_path / "elsewhere").mkdir()
    started = start_server(SERVERS[server](), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(path)}, wait_ready=False,
                           cwd=tmp_path / "elsewhere")
    try:
        exit_code = started.process.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        started.stop()
        pytest.fail(f"{server} kept running with a broken model:\n{started.log()[-2000:]}")
    log = started.log()
    output = [line for line in log.splitlines() if line.strip()]
    assert exit_code != 0, log
    assert len(output) == 1 and "Traceback" not in log, log  # the one line, and nothing else
    assert output[0].startswith(f"Error: cannot serve the model {path}: ModelIntegrityError: {path.parent}/"), output[0]
    assert CASES[break_model] in output[0], output[0]
    assert get_status(started.url + "/health", timeout=1) is None  # it never listened
    assert not (path.parent / "pwned").exists(), "the pickle's code ran"
