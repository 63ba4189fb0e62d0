"""The notebooks in JupyterLab, started as users start it (`make lab`), driven through its UI in Debian's Chromium.

JupyterLab's user-level state (config, settings, workspaces, runtime and data files) goes to a temporary folder, where a
user setting turns autosave off: running the notebooks in a test must never rewrite them, and the tests check it did not.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ARTIFACTS, CHROMIUM, ROOT, free_port, get_status

NBS = ROOT / "nbs"
KERNEL_NAME, KERNEL_DISPLAY_NAME = "sentiment-nb", "Python (sentiment-nb)"
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'  # tracebacks, warnings
# Our own tweets (never the corpus); the explorer test types the first one the model under test labels positive.
POSITIVE_CANDIDATES = ["had the best time at the lake with my family today :)", "this new album is amazing, love every song",
                       "what a lovely surprise from my sister today", "great game tonight, proud of the team"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
browser_tests = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make setup` installs it)")


# ---- The kernel the notebooks name, without JupyterLab

def test_the_kernel_spec_runs_the_venv_and_normalizes_a_tweet_with_wordnet():
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel named {KERNEL_NAME!r}: `make kernel` registers it")
    assert spec.display_name == KERNEL_DISPLAY_NAME
    code = ("import sys\nfrom sentiment_nb.preprocess import TweetNormalizer\nprint(sys.prefix)\n"
            "print(TweetNormalizer().fit([]).transform(['The dogs were chasing geese :)'])[0])")
    manager, client = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=60)
    try:
        printed = run_in_kernel(client, code)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    prefix, normalized = printed.splitlines()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()  # the venv's Python, so the venv's nltk_data
    assert "goose" in normalized.split(), normalized  # lemmatized: WordNet was found


def run_in_kernel(client, code: str) -> str:
    """What `code` printed; fails on an error."""
    printed = []

    def keep(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            pytest.fail("\n".join(message["content"]["traceback"]))

    reply = client.execute_interactive(code, output_hook=keep, timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(printed)


# ---- JupyterLab as `make lab` runs it, on a free port, stopped with everything it started

@dataclass
class Lab:
    process: subprocess.Popen  # `make lab`, leader of its own process group
    state: Path  # JupyterLab's user-level state, this server's only
    url: str = ""
    token: str = ""
    seconds_to_answer: float | None = None

    @property
    def log_path(self) -> Path:
        return self.state / "lab.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def api(self, path: str) -> dict:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


def lab_environment(state: Path) -> dict[str, str]:
    """The caller's environment with every folder JupyterLab writes user-level state to moved into `state`."""
    folders = {"JUPYTER_CONFIG_DIR": "config", "JUPYTERLAB_SETTINGS_DIR": "settings",
               "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_DATA_DIR": "data"}
    return {**os.environ, **{name: str(state / folder) for name, folder in folders.items()}, "PYTHONUNBUFFERED": "1"}


def write_user_setting(settings_dir: Path, plugin_id: str, values: dict) -> None:
    """A user setting, as the Settings Editor saves it (user settings win over the defaults and overrides.json)."""
    package, plugin = plugin_id.split(":")
    path = settings_dir / package / f"{plugin}.jupyterlab-settings"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values), encoding="utf-8")


def write_test_settings(settings_dir: Path) -> None:
    write_user_setting(settings_dir, "@jupyterlab/docmanager-extension:plugin", {"autosave": False})
    # Answers the "get notified about Jupyter news?" toast, which would cover part of the screenshots.
    write_user_setting(settings_dir, "@jupyterlab/apputils-extension:notification", {"fetchNews": "false"})


def keep_checkpoints_in(config_dir: Path, folder: Path) -> None:
    """Opening a notebook makes JupyterLab checkpoint it, by default into nbs/.ipynb_checkpoints (gitignored)."""
    config_dir.mkdir(parents=True)
    config = {"FileCheckpoints": {"checkpoint_dir": str(folder)}}  # absolute: one folder for all
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config), encoding="utf-8")


def shadow_user_kernel(data_dir: Path) -> None:
    """A kernel of the project's name registered for the user by another clone, since removed: `make lab` must not use it."""
    spec = {"argv": ["/nonexistent/other-clone/.venv/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (another clone)", "language": "python"}
    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def start_lab(state: Path, ready_timeout: float = 90) -> Lab:
    """`make lab` on a free port; returns once the tokenized URL it prints answers."""
    environment = lab_environment(state)
    shadow_user_kernel(Path(environment["JUPYTER_DATA_DIR"]))
    write_test_settings(Path(environment["JUPYTERLAB_SETTINGS_DIR"]))
    keep_checkpoints_in(Path(environment["JUPYTER_CONFIG_DIR"]), state / "checkpoints")
    port = free_port()
    lab = Lab(None, state)
    started = time.perf_counter()
    with open(lab.log_path, "wb") as log:
        lab.process = subprocess.Popen(["make", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=environment, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    token_url = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)")
    while time.perf_counter() - started < ready_timeout and lab.process.poll() is None:
        if match := token_url.search(lab.log()):
            lab.url, lab.token = f"http://127.0.0.1:{port}", match.group(1)
            if get_status(f"{lab.url}/api/status?token={lab.token}", timeout=1) == 200:
                lab.seconds_to_answer = time.perf_counter() - started
                return lab
        time.sleep(0.1)
    stop_lab(lab)
    raise RuntimeError(f"`make lab` did not answer within {ready_timeout}s (exit {lab.process.returncode}):\n{lab.log()[-3000:]}")


def processes_of(state: Path) -> list[int]:
    """Every live process started with this server's environment: make, Jupyter, and the kernels (own sessions)."""
    marker = f"JUPYTER_RUNTIME_DIR={state / 'runtime'}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return [pid for pid in found if pid != os.getpid()]


def wait_until_gone(state: Path, timeout: float) -> list[int]:
    deadline = time.perf_counter() + timeout
    while (left := processes_of(state)) and time.perf_counter() < deadline:
        time.sleep(0.2)
    return left


def stop_lab(lab: Lab, timeout: float = 30) -> list[int]:
    """Ctrl-C as in a terminal: SIGINT to the process group, which Jupyter answers by shutting its kernels down.
    (SIGTERM would reach Jupyter twice, from us and relayed by make, and the second one cuts the kernels' shutdown
    short.) Whatever is left after `timeout` is killed; returns the pids that had to be."""
    if lab.process.poll() is None:
        os.killpg(lab.process.pid, signal.SIGINT)
    left = wait_until_gone(lab.state, timeout)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    lab.process.wait(timeout)
    return left


def notebook_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(NBS.glob("*.ipynb"))}


@contextmanager
def running_lab(state: Path):
    """`make lab` for the `with` block; after it, the notebooks must be as they were and nothing may be left running."""
    before, had_checkpoints = notebook_files(), (NBS / ".ipynb_checkpoints").exists()
    lab = start_lab(state)
    print(f"make lab answered after {lab.seconds_to_answer:.1f} s")
    try:
        yield lab
    finally:
        killed = stop_lab(lab)
    assert not killed, f"still running {len(killed)} processes after SIGINT (killed): {lab.log()[-3000:]}"
    assert notebook_files() == before, "running the notebooks in JupyterLab changed them"
    assert had_checkpoints or not (NBS / ".ipynb_checkpoints").exists(), "JupyterLab left nbs/.ipynb_checkpoints"


def test_make_lab_fails_clearly_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(["make", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=lab_environment(tmp_path),
                                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode != 0
    assert f"port {port} is not available" in result.stderr, result.stderr[-3000:]


# ---- The notebook page, used as a user does

@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()


def open_notebook(page, lab: Lab, name: str) -> None:
    """Opens `name` and waits for its kernel: the toolbar's kernel indicator names it, and it is idle."""
    page.goto(lab.notebook_url(name))
    kernel_name = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName")
    wait_until(page, """name => document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName')
                        ?.textContent.trim() === name""", KERNEL_DISPLAY_NAME, timeout_ms=60_000,
               explain=lambda: f"the kernel indicator shows {kernel_name.all_text_contents()}, not {KERNEL_DISPLAY_NAME!r}")
    page.wait_for_selector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)


def choose_from_menu(page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def wait_until(page, predicate: str, arg=None, *, timeout_ms: int = 30_000, explain) -> None:
    """Waits for the JavaScript `predicate`; on a timeout, fails with `explain()`: what the page showed instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(predicate, arg=arg, timeout=timeout_ms)
    except PlaywrightTimeout:
        pytest.fail(f"timed out after {timeout_ms / 1000:.0f} s: {explain()}")


def run_all_cells(page, timeout_ms: int = 180_000) -> None:
    """Edit > Clear Outputs of All Cells, then Run > Run All Cells; waits until every code cell has run, or an error
    stopped the run. (Clearing first: a notebook saved with outputs shows execution counts before anything runs.)"""
    choose_from_menu(page, "Edit", "editmenu:clear-all")
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                              .every(prompt => prompt.textContent.trim() === '[ ]:')""")
    choose_from_menu(page, "Run", "runmenu:run-all")
    wait_until(page, """stderr => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
        const idle = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]');
        const stopped = document.querySelectorAll(stderr).length > 0 && idle && !prompts.includes('[*]:');
        return prompts.every(p => /^\\[\\d+\\]:$/.test(p)) || stopped;
    }""", STDERR_OUTPUT, timeout_ms=timeout_ms,
               explain=lambda: f"cells not all run, prompts {page.locator('.jp-CodeCell .jp-InputPrompt').all_text_contents()}")


def assert_ran_without_errors(page) -> None:
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
    stderr = page.locator(STDERR_OUTPUT).all_text_contents()
    assert not stderr, "error (or stderr) output:\n" + "\n---\n".join(stderr)
    assert all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts), prompts


def cells_meant_to_show_output(page) -> list[int]:
    """Indices of the code cells whose output the docs show: all but those nbdev's `#| hide` or `#| output: false`
    keep out of them."""
    sources = page.locator(".jp-CodeCell").evaluate_all(
        "cells => cells.map(cell => [...cell.querySelectorAll('.cm-line')].map(line => line.textContent).join('\\n'))")
    hidden = re.compile(r"^#\|\s*(hide\s*$|output:\s*false)", re.MULTILINE)
    return [i for i, source in enumerate(sources) if not hidden.search(source)]


def assert_autosave_is_off(lab: Lab) -> None:
    settings = lab.api("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert settings["settings"]["autosave"] is False, settings["settings"]


def assert_offline(lab: Lab) -> None:
    """`make lab`'s flags: the server fetches no news feed and checks for no update."""
    assert lab.api("/lab/api/news")["news"] == []
    assert lab.api("/lab/api/update")["notification"] is None


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


@browser_tests
def test_index_runs_all_through_the_ui_on_the_project_kernel(tmp_path, page):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    with running_lab(tmp_path) as lab:
        assert_autosave_is_off(lab)
        assert_offline(lab)
        started = time.perf_counter()
        open_notebook(page, lab, "index.ipynb")
        code_cells = page.locator(".jp-CodeCell")
        assert code_cells.count() >= 1, "nbs/index.ipynb has no code cell"
        run_all_cells(page)
        assert_ran_without_errors(page)
        for i in cells_meant_to_show_output(page):
            assert code_cells.nth(i).locator(".jp-OutputArea-output").count() >= 1, f"code cell {i + 1} shows no output"
        code_cells.first.scroll_into_view_if_needed()
        page.locator(".jp-OutputArea-output table").first.wait_for()  # a pandas table
        screenshot(page, "jupyterlab-index.png")
        print(f"index.ipynb: opened, run and checked in {time.perf_counter() - started:.1f} s")
    assert all(url.startswith(lab.url) for url in requested), [u for u in requested if not u.startswith(lab.url)]


@pytest.fixture(scope="module")
def positive_tweet(served_model_path) -> str:
    from sentiment_nb.pipeline import load_pipeline, predict_pipeline

    predictions = predict_pipeline(POSITIVE_CANDIDATES, load_pipeline(served_model_path))
    positive = [p["text"] for p in predictions if p["label"] == "positive"]
    assert positive, f"the model labels none of the candidate tweets positive: {predictions}"
    return positive[0]


@browser_tests
@pytest.mark.skipif(not (NBS / "08_explore.ipynb").exists(), reason="nbs/08_explore.ipynb (the explorer) is not written yet")
def test_explorer_labels_a_typed_tweet_and_filters_the_worst_errors(tmp_path, page, positive_tweet):
    with running_lab(tmp_path) as lab:
        started = time.perf_counter()
        open_notebook(page, lab, "08_explore.ipynb")
        run_all_cells(page)
        assert_ran_without_errors(page)

        view = page.locator(".sentiment-explorer-view")
        view.wait_for(state="attached")  # empty until a tweet is typed
        shown_before = view.inner_html()
        page.fill(".sentiment-explorer-text input", positive_tweet)
        page.press(".sentiment-explorer-text input", "Enter")
        wait_until(page, """before => {
            const view = document.querySelector('.sentiment-explorer-view');
            return view.innerHTML !== before && view.querySelector('[data-label="positive"]') !== null;
        }""", shown_before, explain=lambda: f"{positive_tweet!r} not shown as positive; the view: {view.inner_html()[:2000]}")
        assert view.locator(".sentiment-bar").count() == 3

        rows = page.locator(".sentiment-explorer-errors table tr[data-true]")
        rows.first.wait_for()
        page.select_option(".sentiment-explorer-true select", "negative")
        shown_classes = 'rows => rows.map(row => row.dataset.true)'
        wait_until(page, """() => {
            const rows = [...document.querySelectorAll('.sentiment-explorer-errors table tr[data-true]')];
            return rows.length > 0 && rows.every(row => row.dataset.true === 'negative');
        }""", explain=lambda: f"true class 'negative' chosen, rows' true classes: {rows.evaluate_all(shown_classes)}")

        view.scroll_into_view_if_needed()
        screenshot(page, "jupyterlab-explorer.png")
        print(f"08_explore.ipynb: opened, run and checked in {time.perf_counter() - started:.1f} s")
