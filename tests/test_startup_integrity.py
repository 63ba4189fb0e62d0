"""The real service refuses to start on a model it must not unpickle: one clear line, a non-zero exit, no port.

Each case copies the served model (with its manifest) to a folder of its own, breaks it one way, and starts
gunicorn exactly as `make serve` does with SENTIMENT_MODEL pointing there. The library side (what
`load_pipeline` checks, and that `save_pipeline` is atomic even when killed mid-write) is tested in
tests/test_pipeline.py; this is the service's start-up end to end.
"""
import hashlib
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.servers import get_status, gunicorn_command, start_server

pytestmark = pytest.mark.slow
EXIT_TIMEOUT_S = 90


def copy_model(model: Path, folder: Path) -> Path:
    folder.mkdir()
    for source in (model, model.with_suffix(".json")):
        shutil.copy(source, folder / source.name)
    return folder / model.name


def edit_manifest(path: Path, **changes) -> None:
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    manifest_file.write_text(json.dumps(manifest))


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


@pytest.mark.timeout(EXIT_TIMEOUT_S + 30)
@pytest.mark.parametrize("break_model", CASES, ids=[f.__name__ for f in CASES])
def test_gunicorn_refuses_a_model_it_must_not_unpickle(served_model_path, tmp_path, break_model):
    path = copy_model(served_model_path, tmp_path / "model")
    break_model(path)
    server = start_server(gunicorn_command(), tmp_path / "gunicorn.log", env={"SENTIMENT_MODEL": str(path)}, wait_ready=False)
    try:
        exit_code = server.process.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.stop()
        pytest.fail(f"gunicorn kept running with a broken model:\n{server.log()[-2000:]}")
    log = server.log()
    errors = [line for line in log.splitlines() if "error" in line.lower()]
    assert exit_code != 0, log
    assert len(errors) == 1 and "Traceback" not in log, log
    assert errors[0].startswith(f"Error: cannot serve the model {path}: ModelIntegrityError: {path.parent}/"), errors[0]
    assert CASES[break_model] in errors[0], errors[0]
    assert get_status(server.url + "/health", timeout=1) is None  # it never listened
    assert not (path.parent / "pwned").exists(), "the pickle's code ran"
