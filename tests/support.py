"""What the process-level tests share, and the benchmarks reuse: our own tweets and the files they come in, copies of a
model to break and a model that fails on cue, the `sentiment-nb` console script as a subprocess, the real servers on a
free loopback port, their processes and connections as /proc shows them, and their /metrics parsed.

The pytest fixtures built on these live in tests/conftest.py. Library contracts are tested in the notebooks, with
their own examples; nothing here is part of the installed package.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sklearn.base import BaseEstimator, TransformerMixin


ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the browser tests; gitignored

# Debian's Chromium, which the browser tests drive with Playwright
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# ---- Tweets written for the tests (no real tweets from any corpus), and the files they come in

POSITIVE = ["I love this phone, best purchase ever :)", "Soooo happy right now 😍 #blessed",
            "What a great game tonight, congrats to the team!", "Finally some sunshine, feeling wonderful",
            "This album is amazing, on repeat all day"]
NEGATIVE = ["Worst customer service ever, never again :(", "My flight got cancelled AGAIN, I hate this airline",
            "So sad and angry about the news today 😢", "This update is terrible, my battery dies in an hour",
            "Stuck in traffic for two hours, awful commute"]
NEUTRAL = ["The meeting moved to 3pm tomorrow", "Bus 42 leaves from platform 2", "Reading the report on the new tax rules",
           "Heading to the office, back at 5", "The store opens at 9 on Sundays"]
LABELLED = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE] + [(t, "neutral") for t in NEUTRAL]
SENTIMENT140_POLARITY = {"negative": "0", "neutral": "2", "positive": "4"}


def write_semeval(path: Path, rows=LABELLED) -> Path:
    """(text, label) pairs as a SemEval-style TSV: id, label, text, source."""
    lines = ["id\tlabel\ttext\tsource"] + [f"{i}\t{label}\t{text}\ttest" for i, (text, label) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sentiment140(path: Path, rows=LABELLED) -> Path:
    """(text, label) pairs in Sentiment140's layout: no header; polarity, id, date, query, user, text; quoted; latin-1.
    Characters latin-1 lacks arrive as their UTF-8 bytes, the mojibake the real file has too."""
    with open(path, "w", encoding="latin-1", newline="") as f:
        out = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for i, (text, label) in enumerate(rows):
            out.writerow([SENTIMENT140_POLARITY[label], i, "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", f"user{i % 997}",
                          text.encode("utf-8").decode("latin-1")])
    return path


def resample_tweets(df, n: int, random_state: int = 0):
    """`n` rows drawn with replacement from labelled tweets: a corpus of any size from the shared one."""
    return df.sample(n, replace=True, random_state=random_state, ignore_index=True)


# ---- Copies of a model (with its manifest) to break

def copy_model(model: Path, folder: Path) -> Path:
    """The pickle and its manifest copied into the new `folder`; the copy's path."""
    folder.mkdir()
    for source in (model, model.with_suffix(".json")):
        shutil.copy(source, folder / source.name)
    return folder / model.name


class FaultyStep(TransformerMixin, BaseEstimator):
    """A first pipeline step for fault tests: passes the tweets on; fails a call that has `poison` in it; holds a call that
    has `hold` in it until the file `release` exists (two minutes at most). Each call appends its tweets to the file `calls`,
    as one JSON line, so a test can see how requests were batched."""

    def __init__(self, poison: str = "", hold: str = "", release: str = "", calls: str = ""):
        self.poison, self.hold, self.release, self.calls = poison, hold, release, calls

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        X = list(X)
        if self.calls:
            with open(self.calls, "a", encoding="utf-8") as f:
                f.write(json.dumps(X) + "\n")
        if self.hold and self.hold in X:
            wait_until(lambda: Path(self.release).exists(), timeout=120, what=f"{self.release} to appear")
        if self.poison and self.poison in X:
            raise ValueError(f"the model fails on {self.poison!r}")
        return X


def faulty_model(folder: Path, **faults) -> Path:
    """The shipped model behind a `FaultyStep(**faults)`, saved with its manifest into the new `folder`; the pickle's path."""
    from sklearn.pipeline import Pipeline

    from sentiment_nb.pipeline import SHIPPED_MODEL, load_pipeline, save_pipeline

    folder.mkdir()
    save_pipeline(Pipeline([("faults", FaultyStep(**faults)), *load_pipeline(SHIPPED_MODEL).steps]), folder / "pipeline.pkl")
    return folder / "pipeline.pkl"


def edit_manifest(path: Path, **changes) -> None:
    """Change fields of the manifest beside `path`; a dict value updates the field's dict (e.g. `versions`)."""
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    for key, value in changes.items():
        manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")


# ---- The `sentiment-nb` console script, run as a real subprocess, as a user would

CLI = str(BIN / "sentiment-nb")


def run_cli(*args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


# ---- The real servers, on 127.0.0.1 and a free port, stopped with SIGTERM

def gunicorn_command() -> list[str]:
    """What `make serve` runs (from the repository, where its config file is)."""
    return [str(BIN / "gunicorn"), "-c", str(ROOT / "app" / "gunicorn.conf.py"), "app:create_app()"]


def dev_server_command(debug: bool = False) -> list[str]:
    """Flask's development server on the installed `app` package, as `make dev-serve` runs it (that one with --debug)."""
    return [str(BIN / "flask"), "--app", "app", "run", *(["--debug"] if debug else [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout: float = 30, what: str = "the condition") -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(0.01)


def get_status(url: str, timeout: float = 2) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def metric_samples(exposition: str) -> dict[tuple[str, frozenset], float]:
    """A /metrics answer parsed by prometheus_client's own parser: (sample name, its labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(exposition) for sample in family.samples}


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log_path: Path  # the server's stdout and stderr
    seconds_to_ready: float | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, as `docker stop` sends it; the exit code once the process is gone (SIGKILL after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(command: list[str], log_path: Path, env: dict[str, str] | None = None, ready_timeout: float = 180,
                 wait_ready: bool = True, cwd: Path = ROOT) -> Server:
    """`command` serving on 127.0.0.1 and a free port (HOST/PORT for gunicorn, FLASK_RUN_HOST/FLASK_RUN_PORT for
    `flask run`); by default returns once /health says 200."""
    port = free_port()
    environment = {**os.environ, **(env or {}), "HOST": "127.0.0.1", "PORT": str(port),
                   "FLASK_RUN_HOST": "127.0.0.1", "FLASK_RUN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    if not wait_ready:
        return server
    deadline = started + ready_timeout
    while time.perf_counter() < deadline and process.poll() is None:
        if get_status(server.url + "/health", timeout=1) == 200:
            server.seconds_to_ready = time.perf_counter() - started
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{command} did not become ready within {ready_timeout}s (exit {process.returncode}):\n"
                       f"{server.log()[-3000:]}")


# ---- Processes and connections as /proc shows them (a container's too, seen from the host)

def children_of(parent: int) -> list[int]:
    """Pids of the live processes whose parent is `parent` (the kernel here has no /proc/PID/task/TID/children); a child
    that has died but is not reaped yet (a zombie) does not count."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the command name may contain spaces and parentheses
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[1]) == parent and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return sorted(children)


def client_connections(pid: int, port: int) -> int:
    """Established connections to `port` that process `pid` holds (a container's too, with host networking)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += os.readlink(fd) in inodes
        except OSError:
            continue  # closed meanwhile
    return held


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
