"""What a new user reads and runs first: the README's commands and the answers it shows for them, `make help`, and a
quiet `make setup` (its install of the project says nothing a newcomer would read as a failure)."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sentiment_nb.preprocess import DEBIAN_WORDNET
from tests.support import ROOT, run_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_blocks(markdown: str) -> list[str]:
    """The contents of the markdown's fenced code blocks, in order."""
    return re.findall(r"^```[a-z]*\n(.*?)^```$", markdown, flags=re.M | re.S)


def commands_and_answers(program: str) -> list[tuple[list[str], str]]:
    """Each README command that runs `program`, as its arguments, with the block right after it: what it prints."""
    blocks = fenced_blocks(README)
    found = []
    for block, after in zip(blocks, blocks[1:]):
        command = block.replace("\\\n", " ").strip()
        if "\n" not in command and shlex.split(command)[0].endswith(program):
            found.append((shlex.split(command), after.strip()))
    return found


def without_request_id(answer: dict) -> dict:
    return {**answer, "error": {k: v for k, v in answer["error"].items() if k != "request_id"}} if "error" in answer else answer


def test_the_readme_shows_the_answers_the_service_gives(service_gunicorn):
    examples = commands_and_answers("curl")
    assert len(examples) >= 4, examples
    for args, shown in examples:
        body = json.loads(args[args.index("-d") + 1])
        given = requests.post(service_gunicorn.url + "/predict", json=body, timeout=30).json()
        assert without_request_id(json.loads(shown)) == without_request_id(given), body


def test_the_readme_shows_the_explanation_the_cli_prints():
    ((args, shown),) = commands_and_answers("sentiment-nb")
    printed = run_cli(*args[1:])
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == shown


def test_every_docker_command_has_the_advice_for_a_machine_without_a_bridge_network_beside_it():
    for block in fenced_blocks(README):
        for line in block.splitlines():
            if re.match(r"docker (build|run)\b", line) and "--network host" not in line:
                assert "--network host" in block, f"no --network host advice beside: {line}"


def test_make_help_shows_values_not_make_variables_or_internal_issue_numbers():
    shown = subprocess.run(["make", "--no-print-directory", "help", "PORT=8123"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "$(" not in shown.stdout and not re.search(r"\bissue\b", shown.stdout), shown.stdout
    assert "make serve         gunicorn serving the shipped model on 127.0.0.1:8123" in shown.stdout
    assert "JupyterLab on 127.0.0.1:8888" in shown.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_installing_the_project_prints_no_warnings(tmp_path):
    """`make setup` installs the project editable, as here; its build must say nothing but what pip itself reports about
    this machine's package index (the lines pip starts with `WARNING: Location`)."""
    subprocess.run([sys.executable, "-m", "venv", tmp_path / "venv"], check=True, timeout=300)
    # as `make setup` does first: the pip that comes with the venv hides what the build prints (at 5d422bb, 129 lines of
    # setuptools warnings that the upgraded pip shows)
    upgraded = subprocess.run([tmp_path / "venv" / "bin" / "pip", "install", "-q", "--upgrade", "pip"],
                              capture_output=True, text=True, timeout=600)
    assert upgraded.returncode == 0, upgraded.stderr
    installed = subprocess.run([tmp_path / "venv" / "bin" / "pip", "install", "-q", "--no-deps", "-e", ROOT],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    said = [line for line in (installed.stdout + installed.stderr).splitlines()
            if line.strip() and not line.startswith(("WARNING: Location ", "[notice]"))]
    assert said == [], "\n".join(said[:40])
    assert Path(tmp_path / "venv" / "bin" / "sentiment-nb").exists()


def test_nltk_data_on_a_machine_without_wordnet_tries_no_download(tmp_path):
    """`make setup` runs `sentiment-nb nltk-data`. Where NLTK finds no WordNet, the data comes from Debian's WordNet packages,
    offline; the downloader, which fails here and prints `[nltk_data] Error loading wordnet`, is never tried first."""
    if not DEBIAN_WORDNET.exists():
        pytest.skip("Debian's WordNet packages are not installed (`make setup` installs them)")
    # A venv of its own, so that NLTK does not find the WordNet installed in this one, that imports this one's packages
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True, timeout=300)
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    (site / "project.pth").write_text("\n".join([str(ROOT), *filter(None, sys.path)]) + "\n", encoding="utf-8")
    data = tmp_path / "nltk_data"
    env = {**os.environ, "NLTK_DATA": str(data), "HOME": str(tmp_path)}
    command = [tmp_path / "venv" / "bin" / "python", "-c", "from sentiment_nb.cli import main; main()", "nltk-data"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[nltk_data]" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert (data / "corpora" / "wordnet" / "index.noun").exists(), sorted(p.name for p in data.rglob("*"))[:20]
