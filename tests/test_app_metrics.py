"""GET /metrics: in one process through Flask's test client, and added up over real gunicorn workers on 127.0.0.1
(prometheus_client's multiprocess mode), through a worker's SIGKILL and until gunicorn removes its folder on exit."""
import json
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from app import create_app
from app.config import StartupError
from app.metrics import multiprocess_mode
from tests.support import gunicorn_command, metric_samples, start_server

pytestmark = pytest.mark.timeout(180)

# Our own example tweets (never the corpus).
TWEETS = ["so proud of my little sister, she graduated today!! :)", "the new phone update is a disaster, nothing works",
          "train to leeds leaves at 10:15 from platform 4", "best pancakes in town, i am in love with this cafe",
          "cannot believe they cancelled the show, so annoyed", "reading chapter three of the manual tonight",
          "my dog learned to fetch the newspaper, what a legend", "stuck on hold for an hour, worst support ever"]


def counted(samples: dict, name: str, **labels) -> float:
    """The value of one sample (0 when it was never counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def predictions(samples: dict) -> Counter:
    """sentiment_predictions_total by label."""
    return Counter({dict(key)["label"]: value for (name, key), value in samples.items() if name == "sentiment_predictions_total"})


def predictions_gained(after: dict, before: dict) -> dict[str, float]:
    """What each label gained between two scrapes; labels that did not move are left out, any that went down stay in."""
    gained = predictions(after)
    gained.subtract(predictions(before))
    return {label: n for label, n in gained.items() if n}


def monotonic_samples(samples: dict) -> dict:
    """The samples that may only grow: counters and histogram buckets, counts and sums."""
    return {key: value for key, value in samples.items()
            if key[0].endswith(("_total", "_bucket", "_count", "_sum"))}


# ---- one process: Flask's test client ---------------------------------------------------------------------------

def scrape_client(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return metric_samples(response.get_data(as_text=True))


def test_one_process_counts_requests_predictions_and_batches(service_app, service_client):
    before = scrape_client(service_client)
    answers = [service_client.post("/predict", json={"text": text}).get_json()["label"] for text in TWEETS[:3]]
    batch = service_client.post("/predict", json={"texts": TWEETS[3:8]}).get_json()["predictions"]
    answers += [p["label"] for p in batch]
    assert service_client.post("/predict", data=b"{", content_type="application/json").status_code == 400
    assert service_client.get("/no/such/path/" + "x" * 200).status_code == 404
    assert service_client.open("/predict", method="BREW").status_code == 405
    after = scrape_client(service_client)

    assert predictions_gained(after, before) == Counter(answers)
    for labels, n in [({"endpoint": "/predict", "method": "POST", "status": "200"}, 4),
                      ({"endpoint": "/predict", "method": "POST", "status": "400"}, 1),
                      ({"endpoint": "unmatched", "method": "GET", "status": "404"}, 1),  # never the path sent
                      ({"endpoint": "/predict", "method": "other", "status": "405"}, 1)]:  # never the method sent
        assert counted(after, "sentiment_requests_total", **labels) - counted(before, "sentiment_requests_total", **labels) == n
    assert counted(after, "sentiment_batch_size_count") - counted(before, "sentiment_batch_size_count") == 1
    assert counted(after, "sentiment_batch_size_sum") - counted(before, "sentiment_batch_size_sum") == 5
    assert (counted(after, "sentiment_request_duration_seconds_count", endpoint="/predict")
            - counted(before, "sentiment_request_duration_seconds_count", endpoint="/predict")) == 6  # refusals too
    manifest = service_app.extensions["sentiment_model"].manifest
    assert counted(after, "sentiment_model_info", sha256=manifest["sha256"], created=manifest["created"],
                   sklearn=manifest["versions"]["scikit-learn"]) == 1
    assert counted(after, "sentiment_workers") == 1


def test_an_answer_that_fails_after_predicting_counts_no_label(service_client, monkeypatch):
    before = scrape_client(service_client)

    def broken_jsonify(*args, **kwargs):
        raise RuntimeError("the answer could not be shaped")

    monkeypatch.setattr("app.routes.jsonify", broken_jsonify)
    assert service_client.post("/predict", json={"texts": TWEETS[:4]}).status_code == 500
    monkeypatch.undo()
    after = scrape_client(service_client)
    assert predictions(after) == predictions(before)
    assert counted(after, "sentiment_batch_size_count") == counted(before, "sentiment_batch_size_count")
    labels = {"endpoint": "/predict", "method": "POST", "status": "500"}
    assert counted(after, "sentiment_requests_total", **labels) == counted(before, "sentiment_requests_total", **labels) + 1


def test_metrics_setting_off_leaves_out_the_endpoint(served_model_path):
    app = create_app({"SENTIMENT_MODEL": str(served_model_path), "METRICS": "0"})
    client = app.test_client()
    assert client.post("/predict", json={"text": TWEETS[0]}).status_code == 200
    assert client.get("/metrics").get_json()["error"]["code"] == "not_found"
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]


def test_a_multiprocess_folder_set_too_late_stops_start_up(served_model_path, tmp_path, monkeypatch):
    """prometheus_client is imported already (in this process, without the variable): each worker would count alone."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(StartupError, match="set after prometheus_client was imported"):
        create_app({"SENTIMENT_MODEL": str(served_model_path)})


def test_a_multiprocess_folder_that_is_not_one_stops_start_up(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(StartupError, match="is not a directory"):
        multiprocess_mode()


# ---- real gunicorn, 2 workers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def metrics_tmpdir(tmp_path_factory) -> Path:
    """The TMPDIR of `metrics_gunicorn`, where it makes its multiprocess folder."""
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def metrics_gunicorn(served_model_path, metrics_tmpdir, tmp_path_factory):
    """gunicorn as `make serve` runs it, with 2 workers."""
    server = start_server(gunicorn_command(), tmp_path_factory.mktemp("gunicorn") / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "2", "TMPDIR": str(metrics_tmpdir)})
    yield server
    server.stop()


def scrape(server) -> dict:
    response = requests.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return metric_samples(response.text)


def predict_all(server, bodies: list[dict]) -> list[str]:
    """The labels the answers gave, sent 8 at a time on fresh connections, so that both workers take some."""
    def ask(body):
        response = requests.post(server.url + "/predict", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer = response.json()
        return [p["label"] for p in answer.get("predictions", [answer])]

    with ThreadPoolExecutor(8) as pool:
        return [label for labels in pool.map(ask, bodies) for label in labels]


def workers(server) -> list[int]:
    master = server.process.pid
    return sorted(map(int, Path(f"/proc/{master}/task/{master}/children").read_text().split()))


def multiprocess_folder(tmpdir: Path) -> Path:
    """The one folder gunicorn made in its TMPDIR."""
    (folder,) = tmpdir.iterdir()
    return folder


def per_process(folder: Path, kind: str, name: str) -> dict[int, float]:
    """pid -> the sum of `name`'s samples in that process's own file of `kind` (e.g. counter, gauge_livesum)."""
    return {int(db.stem.rsplit("_", 1)[1]): sum(s.value for metric in MultiProcessCollector.merge([str(db)])
                                                for s in metric.samples if s.name == name)
            for db in folder.glob(f"{kind}_*.db")}


def test_metrics_add_up_every_workers_requests_exactly(metrics_gunicorn, metrics_tmpdir, served_model_path):
    server, folder = metrics_gunicorn, multiprocess_folder(metrics_tmpdir)
    before = scrape(server)
    singles = [{"text": TWEETS[i % len(TWEETS)]} for i in range(40)]
    batches = [{"texts": TWEETS[: 2 + i % 6]} for i in range(12)]
    labels, rounds = [], 0
    # One worker may take every connection of a round; until both have answered, the sum proves nothing.
    while rounds == 0 or len([n for n in per_process(folder, "counter", "sentiment_predictions_total").values() if n]) < 2:
        assert rounds < 10, "one worker answered every request of 10 rounds"
        labels += predict_all(server, singles + batches)
        rounds += 1
    refused = [requests.post(server.url + "/predict", data=b"{", headers={"Content-Type": "application/json"}, timeout=10),
               requests.post(server.url + "/predict", data=b"{", headers={"Content-Type": "application/json"}, timeout=10),
               requests.post(server.url + "/predict", data=b"text=hi", headers={"Content-Type": "text/plain"}, timeout=10),
               requests.get(server.url + "/predictions", timeout=10),
               requests.get(server.url + "/predict", timeout=10)]
    assert [r.status_code for r in refused] == [400, 400, 415, 404, 405]
    after = scrape(server)

    gained = predictions_gained(after, before)
    assert gained == Counter(labels)
    batch_tweets = sum(len(b["texts"]) for b in batches)
    assert sum(gained.values()) == rounds * (len(singles) + batch_tweets)
    for series, n in [({"endpoint": "/predict", "method": "POST", "status": "200"}, rounds * (len(singles) + len(batches))),
                      ({"endpoint": "/predict", "method": "POST", "status": "400"}, 2),
                      ({"endpoint": "/predict", "method": "POST", "status": "415"}, 1),
                      ({"endpoint": "unmatched", "method": "GET", "status": "404"}, 1),
                      ({"endpoint": "/predict", "method": "GET", "status": "405"}, 1)]:
        assert counted(after, "sentiment_requests_total", **series) - counted(before, "sentiment_requests_total", **series) == n, series
    assert counted(after, "sentiment_batch_size_count") - counted(before, "sentiment_batch_size_count") == rounds * len(batches)
    assert counted(after, "sentiment_batch_size_sum") - counted(before, "sentiment_batch_size_sum") == rounds * batch_tweets
    manifest = json.loads(served_model_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert counted(after, "sentiment_model_info", sha256=manifest["sha256"], created=manifest["created"],
                   sklearn=manifest["versions"]["scikit-learn"]) == 1
    assert counted(after, "sentiment_workers") == 2


def test_counters_never_go_down_when_a_worker_is_sigkilled(metrics_gunicorn, metrics_tmpdir):
    server, folder = metrics_gunicorn, multiprocess_folder(metrics_tmpdir)
    predict_all(server, [{"text": text} for text in TWEETS * 2])
    before = scrape(server)
    old = workers(server)
    answered = per_process(folder, "counter", "sentiment_predictions_total")
    victim = max(old, key=lambda pid: answered.get(pid, 0))
    assert answered[victim] > 0, answered  # its counts are the ones that could be lost
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not ((new := set(workers(server)) - set(old)) and per_process(folder, "gauge_livesum", "sentiment_workers").get(min(new))):
        assert time.monotonic() < deadline, f"no replacement worker counted itself:\n{server.log()[-2000:]}"
        time.sleep(0.1)
    after = scrape(server)
    assert counted(after, "sentiment_workers") == 2  # the dead one no longer counts, its replacement does
    for key, value in monotonic_samples(before).items():
        assert after.get(key, 0.0) >= value, key
    assert predictions(after) == predictions(before)

    labels = predict_all(server, [{"text": text} for text in TWEETS] + [{"texts": TWEETS}])
    later = scrape(server)
    for key, value in monotonic_samples(after).items():
        assert later.get(key, 0.0) >= value, key
    assert predictions_gained(later, after) == Counter(labels)


def test_a_reload_keeps_counting_in_the_same_folder(metrics_gunicorn, metrics_tmpdir):
    """SIGHUP re-reads app/gunicorn.conf.py and replaces every worker; the preloaded app still reads the first folder."""
    server, folder = metrics_gunicorn, multiprocess_folder(metrics_tmpdir)
    before = scrape(server)
    old = workers(server)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    # Done when the new workers have counted themselves and the master has forgotten the old ones.
    while {pid for pid, n in per_process(folder, "gauge_livesum", "sentiment_workers").items() if n} != set(workers(server)) - set(old):
        assert time.monotonic() < deadline, f"the new workers did not count themselves or the old ones still count:\n{server.log()[-2000:]}"
        time.sleep(0.1)
    labels = predict_all(server, [{"text": text} for text in TWEETS])
    after = scrape(server)
    assert predictions_gained(after, before) == Counter(labels)
    assert counted(after, "sentiment_workers") == 2
    assert multiprocess_folder(metrics_tmpdir) == folder


def test_the_multiprocess_folder_is_private_and_gone_when_gunicorn_exits(served_model_path, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "2", "TMPDIR": str(tmpdir)})
    try:
        folder = multiprocess_folder(tmpdir)
        assert folder.stat().st_mode & 0o777 == 0o700
        assert requests.post(server.url + "/predict", json={"text": TWEETS[0]}, timeout=10).status_code == 200
        assert any(folder.glob("counter_*.db"))
    finally:
        assert server.stop() == 0
    assert not any(tmpdir.iterdir())


def test_the_multiprocess_folder_is_gone_when_start_up_fails(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    server = start_server(gunicorn_command(), tmp_path / "server.log", wait_ready=False,
                          env={"SENTIMENT_MODEL": str(tmp_path / "missing.pkl"), "TMPDIR": str(tmpdir)})
    assert server.process.wait(timeout=60) != 0
    assert "cannot serve the model" in server.log()
    assert not any(tmpdir.iterdir())
