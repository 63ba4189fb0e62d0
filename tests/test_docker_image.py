"""The Docker image, run for real: containers serve the model on loopback, pass their own healthcheck,
run as non-root, work read-only and offline, honour their environment and stop cleanly.

Needs a Docker engine and a built image named by SENTIMENT_NB_IMAGE: `make docker-test` provides both.
Every container runs with host networking on a free loopback port and is removed afterwards.
"""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import children_of, metric_samples, uid_of

IMAGE = os.environ.get("SENTIMENT_NB_IMAGE")
pytestmark = [
    pytest.mark.skipif(not IMAGE, reason="image tests run through `make docker-test` (needs a Docker engine)"),
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

REPO = Path(__file__).resolve().parent.parent
LABEL = "sentiment-nb-test"  # every container started here carries it, so a wrapper can remove leftovers
READY_LIMIT_S = 10
STOP_LIMIT_S = 2
ADDED_LAYERS_LIMIT_MB = 470  # 319 MB with the fast model alone, plus at most 150 MB for the accurate tier (ONNX Runtime, tokenizers, weights)
# Our own example tweets.
POSITIVE_TWEET = "just got tickets for the concert tonight, best birthday present ever!! :)"
NEGATIVE_TWEET = "my phone died again and support hung up on me, absolutely furious"


def docker(*args: str, timeout: float = 60) -> str:
    """`docker ARGS` -> its stdout; a failure shows docker's own message."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


def inspect(ref: str, template: str) -> object:
    return json.loads(docker("inspect", "--format", "{{json " + template + "}}", ref))


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: object = None, content_type: str = "application/json",
         timeout: float = 10) -> tuple[int, dict]:
    """(status, parsed JSON body) of one request; error statuses are returned, not raised."""
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Container:
    """One container of the image, serving on 127.0.0.1:`port` through the host's network."""

    def __init__(self, *run_args: str, env: dict | None = None, network: str = "host"):
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"HOST": "127.0.0.1", "PORT": str(self.port), **(env or {})}
        env_args = [arg for name, value in env.items() for arg in ("--env", f"{name}={value}")]
        self.started = time.monotonic()
        self.id = docker("run", "--detach", "--label", LABEL, f"--network={network}", *env_args, *run_args, IMAGE)

    def running(self) -> bool:
        return inspect(self.id, ".State.Running")

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", "--tail", "40", self.id], capture_output=True, text=True, timeout=30)
        return done.stdout + done.stderr

    def wait_ready(self, limit: float = 30) -> float:
        """Seconds from `docker run` until /health answers 200; fails with the logs if it never does."""
        while time.monotonic() - self.started < limit:
            try:
                if http("GET", self.url + "/health", timeout=2)[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                if not self.running():
                    pytest.fail(f"container exited before it was ready:\n{self.logs()}")
            time.sleep(0.1)
        pytest.fail(f"not ready within {limit}s:\n{self.logs()}")

    def process_uids(self) -> dict[int, int]:
        """pid -> real uid of the container's main process and its children, read from the host's /proc."""
        main = inspect(self.id, ".State.Pid")
        return {pid: uid_of(pid) for pid in [main, *children_of(main)]}

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "--force", "--volumes", self.id], capture_output=True, timeout=60)


@pytest.fixture
def start():
    """Start containers of the image; all are removed afterwards, whatever the test did."""
    started = []

    def start_container(*run_args, **kwargs) -> Container:
        started.append(Container(*run_args, **kwargs))
        return started[-1]

    yield start_container
    for container in started:
        container.remove()


@pytest.fixture(scope="module")
def served():
    """One container with the image's defaults, ready to answer."""
    container = Container()
    try:
        container.ready_seconds = container.wait_ready()
        yield container
    finally:
        container.remove()


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A copy of the shipped model in a folder the container's user can read, to mount over the shipped one."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("pipeline.pkl", "pipeline.json"):
        shutil.copy(REPO / "models" / name, folder / name)
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    return folder


def test_image_ships_only_what_serving_needs():
    listing = docker("run", "--rm", "--label", LABEL, "--network=none", IMAGE, "python", "-c",
                     "import os; print(' '.join(sorted(os.listdir('.'))))")
    assert listing.split() == ["app", "models", "sentiment_nb"]


def test_image_runs_gunicorn_as_a_non_root_user_on_port_5000():
    config = inspect(IMAGE, ".Config")
    assert config["User"] and config["User"].split(":")[0] not in ("0", "root")
    assert "5000/tcp" in config["ExposedPorts"]
    assert config["Cmd"][0] == "gunicorn" and "app:create_app()" in config["Cmd"]  # exec form: gunicorn is PID 1
    assert "/health" in " ".join(config["Healthcheck"]["Test"])


def test_image_adds_at_most_470_mb_over_its_base():
    base = next(line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines()
                if line.upper().startswith("FROM "))
    added_mb = (inspect(IMAGE, ".Size") - inspect(base, ".Size")) / 1e6
    print(f"\nimage adds {added_mb:.0f} MB over {base}")
    assert added_mb <= ADDED_LAYERS_LIMIT_MB


def test_container_is_ready_within_10_seconds_of_docker_run(served):
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"  # start-up is CPU-bound
    print(f"\ndocker run -> /health 200: {served.ready_seconds:.1f} s ({load})")
    assert served.ready_seconds <= READY_LIMIT_S, load


def test_predict_classifies_tweets(served):
    labels = http("GET", served.url + "/model")[1]["labels"]
    status, prediction = http("POST", served.url + "/predict", {"text": POSITIVE_TWEET})
    assert status == 200
    assert prediction["text"] == POSITIVE_TWEET
    assert prediction["label"] == labels[prediction["pred"]]
    assert set(prediction["probabilities"]) == set(labels)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)  # the API rounds each probability
    status, batch = http("POST", served.url + "/predict", {"texts": [POSITIVE_TWEET, NEGATIVE_TWEET]})
    assert status == 200
    assert [p["text"] for p in batch["predictions"]] == [POSITIVE_TWEET, NEGATIVE_TWEET]


def test_predict_rejects_bad_input_with_a_json_error_and_keeps_serving(served):
    status, body = http("POST", served.url + "/predict", {"text": 42})
    assert status == 400
    assert body["error"]["code"] == "invalid_type" and "text" in body["error"]["message"]
    status, body = http("POST", served.url + "/predict", b"text=hello", content_type="application/x-www-form-urlencoded")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    assert http("POST", served.url + "/predict", {"text": NEGATIVE_TWEET})[0] == 200


def test_healthcheck_turns_healthy(served):
    deadline = time.monotonic() + 60  # the first check runs one interval (10 s) after start
    while (health := inspect(served.id, ".State.Health"))["Status"] != "healthy":
        assert health["Status"] == "starting" and time.monotonic() < deadline, health
        time.sleep(1)
    assert health["Log"][-1]["ExitCode"] == 0


def test_gunicorn_and_its_workers_do_not_run_as_root(served):
    uids = served.process_uids()
    assert len(uids) == 1 + 2, f"master and the default 2 workers expected, got {uids}"
    assert all(uid != 0 for uid in uids.values()), uids


def test_read_only_container_serves_a_mounted_model_with_env_settings(start, model_copy):
    manifest_path = model_copy / "pipeline.json"
    manifest = {**json.loads(manifest_path.read_text()), "created": "mounted by test_docker_image"}
    manifest_path.write_text(json.dumps(manifest))  # tells the mounted model from the shipped one
    container = start("--read-only", "--tmpfs", "/tmp", "--volume", f"{model_copy}:/models:ro",
                      env={"SENTIMENT_MODEL": "/models/pipeline.pkl", "WEB_CONCURRENCY": "1"})
    container.wait_ready()
    assert http("GET", container.url + "/model")[1]["created"] == "mounted by test_docker_image"
    assert http("POST", container.url + "/predict", {"text": POSITIVE_TWEET})[0] == 200
    assert len(container.process_uids()) == 1 + 1  # WEB_CONCURRENCY=1: the master and one worker


def test_a_corrupt_mounted_model_stops_start_up_with_a_clear_message(start, model_copy):
    pickle_path = model_copy / "pipeline.pkl"
    pickle_path.write_bytes(pickle_path.read_bytes()[:-64] + bytes(64))
    container = start("--volume", f"{model_copy}:/models:ro", env={"SENTIMENT_MODEL": "/models/pipeline.pkl"})
    deadline = time.monotonic() + 30
    while container.running():
        assert time.monotonic() < deadline, "a container with a corrupt model kept running"
        time.sleep(0.2)
    assert inspect(container.id, ".State.ExitCode") != 0
    assert "cannot serve the model /models/pipeline.pkl" in container.logs()


def scrape_metrics(url: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return metric_samples(response.read().decode())


@pytest.mark.parametrize("run_args", [("--read-only", "--tmpfs", "/tmp"), ("--read-only",)], ids=["tmpfs-tmp", "no-writable-tmp"])
def test_metrics_add_up_both_workers_in_a_read_only_container(start, run_args):
    """The multiprocess folder is made by the non-root user in /tmp, else (nothing writable there) in /dev/shm."""
    container = start(*run_args)
    container.wait_ready()
    for text in (POSITIVE_TWEET, NEGATIVE_TWEET, POSITIVE_TWEET):
        assert http("POST", container.url + "/predict", {"text": text})[0] == 200
    # The port answers once the first worker is ready; the second counts itself when it is, moments later.
    deadline = time.monotonic() + 20
    while (samples := scrape_metrics(container.url))[("sentiment_workers", frozenset())] != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert samples[("sentiment_workers", frozenset())] == 2
    assert sum(v for (name, _), v in samples.items() if name == "sentiment_predictions_total") == 3
    manifest = json.loads((REPO / "models" / "pipeline.json").read_text())
    (model,) = [dict(labels) for name, labels in samples if name == "sentiment_model_info"]
    assert model["sha256"] == manifest["sha256"]
    assert all(uid != 0 for uid in container.process_uids().values())


# Asked from inside a container without a network: its own loopback, on its own PORT; prints the model and the label.
ASK_INSIDE = (
    "import json, os, time, urllib.request as u\n"
    "url = 'http://127.0.0.1:' + os.environ['PORT']\n"
    "for _ in range(300):\n"
    "    try: u.urlopen(url + '/health', timeout=1); break\n"
    "    except OSError: time.sleep(0.1)\n"
    "body = json.dumps({'text': os.environ['TWEET']}).encode()\n"
    "r = u.urlopen(u.Request(url + '/predict', data=body, headers={'Content-Type': 'application/json'}), timeout=30)\n"
    "print(r.headers['X-Model'], json.load(r)['label'])\n"
)


def predict_inside(container, text: str) -> tuple[str, str]:
    """(X-Model, label) of one tweet, asked by a process inside `container`."""
    done = subprocess.run(["docker", "exec", "--env", f"TWEET={text}", container.id, "python", "-c", ASK_INSIDE],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"asking from inside failed: {done.stderr}\n{container.logs()}"
    model, label = done.stdout.split()
    return model, label


def test_container_without_any_network_serves_from_baked_in_data(start):
    container = start(network="none")
    model, label = predict_inside(container, NEGATIVE_TWEET)
    assert model.startswith("fast@") and label in {"negative", "neutral", "positive"}


@pytest.mark.parametrize("model", ["models/pipeline.pkl", "models/accurate/pipeline.pkl"], ids=["fast", "accurate"])
def test_docker_stop_ends_the_container_cleanly_and_quickly(start, model):
    """Both workers have predicted first, so each holds what its model loads per process (the accurate tier: its own ONNX
    Runtime session beside the one inherited from the master)."""
    container = start(env={"SENTIMENT_MODEL": model})
    container.wait_ready()
    for i in range(20):
        assert http("POST", container.url + "/predict", {"text": f"{POSITIVE_TWEET} {i}"})[0] == 200
    began = time.monotonic()
    docker("stop", "--time", "10", container.id, timeout=30)
    seconds = time.monotonic() - began
    print(f"\ndocker stop, {model}: {seconds:.1f} s, exit {inspect(container.id, '.State.ExitCode')}")
    assert inspect(container.id, ".State.ExitCode") == 0  # gunicorn exited on SIGTERM, not killed after the timeout
    assert seconds <= STOP_LIMIT_S
    logs = container.logs()
    assert "was sent SIG" not in logs and "terminate called" not in logs, logs


def test_the_accurate_tier_is_in_the_image_and_serves_offline_read_only_as_non_root(start):
    manifest = json.loads((REPO / "models" / "accurate" / "pipeline.json").read_text())
    container = start("--read-only", "--tmpfs", "/tmp", network="none",
                      env={"SENTIMENT_MODEL": "models/accurate/pipeline.pkl", "WEB_CONCURRENCY": "1"})
    assert predict_inside(container, NEGATIVE_TWEET) == (f"accurate@{manifest['sha256'][:12]}", "negative")
    assert all(uid != 0 for uid in container.process_uids().values())
