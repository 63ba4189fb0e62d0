"""The real servers over real HTTP on 127.0.0.1: gunicorn as `make serve` runs it, and Flask's dev server as `make dev-serve` does."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from jsonschema import Draft202012Validator

from sentiment_nb.accurate import ACCURATE_MODEL
from sentiment_nb.pipeline import SHIPPED_MODEL, load_pipeline, predict_pipeline
from tests.support import (ROOT, children_of, client_connections, dev_server_command, faulty_model, free_port, get_status,
                           gunicorn_command, run_cli, start_server, wait_until, write_semeval)

pytestmark = pytest.mark.timeout(600)  # real servers on a shared machine: starting one under load has taken over a minute

# Our own example tweets (never the corpus).
POSITIVE = "finally home after a long week, pizza and my favourite show, life is good :)"
NEGATIVE = "the update deleted all my photos, i am so angry and sad right now"
NEUTRAL = "the library opens at 9am on weekdays and 10am on saturdays"


def post(server, body, content_type: str = "application/json", headers: dict | None = None, timeout: float = 60) -> requests.Response:
    headers = {"Content-Type": content_type, **(headers or {})}
    return requests.post(server.url + "/predict", data=body, headers=headers, timeout=timeout)


def post_json(server, payload, **kwargs) -> requests.Response:
    return post(server, json.dumps(payload).encode(), **kwargs)


def request_log(server) -> list[dict]:
    """The structured request lines in the server's output."""
    return [line for line in map(json.loads, filter(lambda l: l.startswith("{"), server.log().splitlines()))
            if line.get("message") == "request"]


class WorkersWatch:
    """gunicorn's workers and the marks a lost one leaves in the log, as they were when the watch began."""

    def __init__(self, server):
        self.server = server
        self.workers, self.marks = children_of(server.process.pid), self.lost_marks()

    def lost_marks(self) -> dict[str, int]:
        log = self.server.log()
        return {mark: log.count(mark) for mark in ("Booting worker", "WORKER TIMEOUT", "Traceback", "was sent SIG")}

    def assert_none_lost(self):
        assert children_of(self.server.process.pid) == self.workers and self.lost_marks() == self.marks, self.server.log()[-3000:]


def assert_json_error(response: requests.Response, status: int, code: str):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_gunicorn_serves_single_and_batch_predictions(service_gunicorn):
    single = post_json(service_gunicorn, {"text": POSITIVE})
    assert single.status_code == 200
    assert single.json()["label"] == "positive"
    assert set(single.json()) == {"text", "label", "pred", "probabilities", "language", "language_confidence", "supported", "reason"}
    batch = post_json(service_gunicorn, {"texts": [POSITIVE, NEGATIVE, NEUTRAL]})
    assert batch.status_code == 200
    predictions = batch.json()["predictions"]
    assert [p["text"] for p in predictions] == [POSITIVE, NEGATIVE, NEUTRAL]
    assert predictions[0]["label"] == "positive" and predictions[1]["label"] == "negative"
    for path in ("/health", "/model", "/openapi.json", "/"):
        assert requests.get(service_gunicorn.url + path, timeout=10).status_code == 200, path


def test_gunicorn_explains_what_it_predicts(service_gunicorn, served_model_path):
    from sentiment_nb.pipeline import explain_pipeline, load_pipeline

    explained = post_json(service_gunicorn, {"texts": [POSITIVE, NEGATIVE], "explain": True})
    assert explained.status_code == 200
    assert explained.json()["predictions"] == explain_pipeline([POSITIVE, NEGATIVE], load_pipeline(served_model_path))
    assert_json_error(post_json(service_gunicorn, {"text": POSITIVE, "explain": "yes"}), 400, "invalid_type")


def test_gunicorn_became_ready_quickly(service_gunicorn):
    assert service_gunicorn.seconds_to_ready < 30  # the 10 s target is measured by `make bench-http`


def test_the_first_answer_gunicorn_gives_is_a_ready_one(served_model_path, tmp_path):
    """Why /health is the one probe: until the model is loaded and warm the port is not bound (connections are refused),
    and the moment /health first answers, a prediction works too. There is no state in which a separate /ready could say 503."""
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(served_model_path)}, wait_ready=False)
    try:
        deadline = time.monotonic() + 60
        while (status := get_status(server.url + "/health", timeout=5)) is None:  # None: connection refused
            assert server.process.poll() is None and time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.01)
        first = post_json(server, {"text": POSITIVE})
        assert status == 200 and first.status_code == 200 and first.json()["label"] == "positive", (status, first.text)
    finally:
        assert server.stop() == 0, server.log()[-3000:]


def test_malformed_oversized_and_misdirected_requests_get_json_errors(service_gunicorn):
    assert_json_error(post(service_gunicorn, b'{"text": '), 400, "invalid_json")
    assert_json_error(post(service_gunicorn, b'{"text": "hi"}', content_type="text/plain"), 415, "unsupported_media_type")
    assert_json_error(post_json(service_gunicorn, {"texts": ["hi"] * 1001}), 413, "batch_too_large")
    assert_json_error(post_json(service_gunicorn, {"text": "a" * 1001}), 413, "text_too_long")
    assert_json_error(post_json(service_gunicorn, {"text": "a" * 5_000_000}), 413, "payload_too_large")
    assert_json_error(requests.get(service_gunicorn.url + "/nowhere", timeout=10), 404, "not_found")
    assert_json_error(requests.put(service_gunicorn.url + "/predict", timeout=10), 405, "method_not_allowed")


def chunks(data: bytes, size: int = 65536):
    for start in range(0, len(data), size):
        yield data[start:start + size]


HOSTILE = {  # name -> (body, expected status)
    "invalid UTF-8": (b'{"text": "\xff\xfe caf\xe9"}', 400),
    "NUL byte": (b'{"text": "nul \\u0000 here"}', 400),
    "raw NUL byte": (b'{"text": "nul \x00 here"}', 400),
    "lone surrogate": (b'{"texts": ["ok", "\\udead"]}', 400),
    "UTF-8-encoded surrogate": (b'{"text": "\xed\xb3\xbf"}', 400),
    "100k-item batch": (json.dumps({"texts": ["short tweet"] * 100_000}).encode(), 413),
    "deeply nested arrays": (b"[" * 1_000_000, 400),
    "deeply nested objects": (b'{"text": ' * 200_000, 400),
    "body over the limit": (b'{"text": "' + b"x" * 6_000_000 + b'"}', 413),
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_hostile_input_ends_in_4xx_and_the_next_request_is_served(service_gunicorn, name, transfer):
    watch = WorkersWatch(service_gunicorn)
    body, status = HOSTILE[name]
    response = post(service_gunicorn, chunks(body) if transfer == "chunked" else body)
    assert response.status_code == status, response.text[:300]
    assert "error" in response.json()
    assert post_json(service_gunicorn, {"text": POSITIVE}).status_code == 200
    watch.assert_none_lost()  # no worker crashed, timed out or was replaced


def raw_exchange(server, request: bytes) -> tuple[bytes, bytes]:
    """Send bytes as they are (no HTTP client in between); (status line and headers, body) of the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return head, body


UNPARSABLE_HTTP = {  # name -> (raw request, expected status)
    "garbage request line": (b"HELLO THERE\r\n\r\n", 400),
    "URI over 4 KiB": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414),
    "header over 8 KiB": (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    "broken chunked body": (b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("path, content_type", [("/predict", "text/plain"), ("/nowhere", "application/json"), ("/health", "application/json")])
def test_a_refused_large_body_leaves_the_connection_usable(service_gunicorn, path, content_type):
    """415, 404 and 405 answered without reading a 100 KB body: the client's next request on the same connection still works."""
    with requests.Session() as session:
        refused = session.post(service_gunicorn.url + path, data=b"x" * 100_000, headers={"Content-Type": content_type}, timeout=30)
        assert refused.status_code in (404, 405, 415)
        assert session.post(service_gunicorn.url + "/predict", json={"text": POSITIVE}, timeout=30).status_code == 200


@pytest.mark.parametrize("name", list(UNPARSABLE_HTTP))
def test_requests_gunicorn_cannot_parse_get_json_errors_too(service_gunicorn, name):
    request, status = UNPARSABLE_HTTP[name]
    head, body = raw_exchange(service_gunicorn, request)
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"Content-Type: application/json" in head
    error = json.loads(body)["error"]
    assert error["code"] and error["message"] and error["request_id"]
    assert post_json(service_gunicorn, {"text": POSITIVE}).status_code == 200


def test_concurrent_clients_all_get_correct_answers(service_gunicorn):
    texts = [POSITIVE, NEGATIVE, NEUTRAL] * 80
    expected = {t: post_json(service_gunicorn, {"text": t}).json()["label"] for t in set(texts)}
    with requests.Session() as session, ThreadPoolExecutor(16) as pool:
        def classify(text):
            response = session.post(service_gunicorn.url + "/predict", json={"text": text}, timeout=60)
            return response.status_code, response.json()["label"]
        answers = list(pool.map(classify, texts))
    assert answers == [(200, expected[t]) for t in texts]


def test_one_structured_log_line_per_request_and_no_tweet_text(service_gunicorn):
    post_json(service_gunicorn, {"texts": [POSITIVE, NEGATIVE]}, headers={"X-Request-ID": "log-check-1"})
    post(service_gunicorn, b"{", headers={"X-Request-ID": "log-check-2"})
    wait_until(lambda: {"log-check-1", "log-check-2"} <= {line["request_id"] for line in request_log(service_gunicorn)},
               what="both request log lines")  # a worker writes its line after sending the answer
    lines = {line["request_id"]: line for line in request_log(service_gunicorn)}
    assert {k: lines["log-check-1"][k] for k in ("method", "path", "status", "n_texts")} == \
        {"method": "POST", "path": "/predict", "status": 200, "n_texts": 2}
    assert lines["log-check-1"]["latency_ms"] > 0
    assert lines["log-check-2"]["status"] == 400
    assert sum(line["request_id"] == "log-check-1" for line in request_log(service_gunicorn)) == 1
    assert POSITIVE not in service_gunicorn.log() and "pizza" not in service_gunicorn.log()


def test_sigterm_lets_the_in_flight_request_finish_then_exits_cleanly(served_model_path, tmp_path):
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(served_model_path)})
    try:
        body = json.dumps({"text": POSITIVE}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10])
            wait_until(lambda: sum(client_connections(w, int(port)) for w in children_of(server.process.pid)) == 1,
                       what="a worker to take the request, which waits for the rest of its body")
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: get_status(server.url + "/health", timeout=1) is None,
                       what="the workers to stop listening: they are shutting down")
            conn.sendall(body[10:])
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), reply[:300]
        assert json.loads(payload)["label"] == "positive"
        assert server.process.wait(timeout=30) == 0
        assert "Shutting down: Master" in server.log()
        assert get_status(server.url + "/health", timeout=1) is None
    finally:
        server.stop()


def test_flask_dev_server_serves_the_installed_app_from_any_directory(served_model_path, tmp_path):
    """`flask --app app run --debug`, as `make dev-serve` runs it, from a directory that holds no `app`: it is installed.
    (Its refusal of a broken model is tested with gunicorn's in tests/test_startup_integrity.py.)"""
    server = start_server(dev_server_command(debug=True), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(served_model_path)},
                          cwd=tmp_path)
    try:
        response = post_json(server, {"text": NEGATIVE})
        assert response.status_code == 200 and response.json()["label"] == "negative"
        assert_json_error(post(server, b"not json"), 400, "invalid_json")
    finally:
        server.stop()


def test_sigterm_answers_a_request_still_waiting_in_the_kernels_queue(served_model_path, tmp_path):
    """A worker does not always take a new connection at once (app/worker.py: while it hands connections back to a new
    sibling, or for a moment while all its threads are busy), so one can still wait in the kernel's queue at SIGTERM.
    Its request was sent before the signal: the stopping worker takes it and answers it instead of resetting it."""
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "1"})
    try:
        port, (worker,) = int(server.url.rsplit(":", 1)[1]), children_of(server.process.pid)
        os.kill(worker, signal.SIGWINCH)  # the hand-back signal: the worker takes no new connection for 2 s
        time.sleep(0.2)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(post_json, server, {"text": POSITIVE}, timeout=60)
            time.sleep(0.3)
            assert client_connections(worker, port) == 0  # connected and sent, not taken
            server.process.send_signal(signal.SIGTERM)
            answer = waiting.result()
        assert answer.status_code == 200 and answer.json()["label"] == "positive", answer.text
        assert server.process.wait(timeout=30) == 0
    finally:
        server.stop()


def test_a_worker_with_every_thread_busy_still_takes_a_connection_that_waited(tmp_path):
    """A busy worker leaves a new connection to a sibling with a free thread, but when there is none it takes it after
    a moment (MAX_WAIT_S), behind its other requests: a client never waits for keep-alive clients to pause."""
    release = tmp_path / "release"
    model = faulty_model(tmp_path / "model", hold=HOLD, release=str(release))
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(model), "WEB_CONCURRENCY": "1", "THREADS": "1", "PREDICT_TIMEOUT": "60"})
    try:
        port, (worker,) = int(server.url.rsplit(":", 1)[1]), children_of(server.process.pid)
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(post_json, server, {"text": HOLD}, timeout=60)
            wait_until(lambda: client_connections(worker, port) == 1, what="the worker's one thread to take the held request")
            waiting = pool.submit(post_json, server, {"text": POSITIVE}, timeout=60)
            wait_until(lambda: client_connections(worker, port) == 2, timeout=5,
                       what="the busy worker to take the second connection while the first request still holds its thread")
            release.touch()
            assert held.result().status_code == 200
            assert waiting.result().json()["label"] == "positive"
    finally:
        release.touch()
        server.stop()


def test_make_serve_runs_gunicorn_and_stops_on_sigterm(served_model_path, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    server = start_server(["make", "--no-print-directory", "serve"], tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path)})
    try:
        assert post_json(server, {"text": POSITIVE}).json()["label"] == "positive"
        assert "Using worker: app.worker.ThreadWorkerTakingItsShare" in server.log()
    finally:
        server.stop()  # make passes SIGTERM on to gunicorn, then dies of it itself
    assert "Shutting down: Master" in server.log()


def test_keep_alive_connections_opened_at_once_spread_over_the_workers(served_model_path, tmp_path):
    """16 clients connect at the same moment and keep their connections. gunicorn's own gthread worker lets whichever
    worker wakes first take most of them (16/0 and 15/1 splits were common), and with the GIL that worker's one core
    serves them all. A worker that takes a connection only while it has a free thread leaves the rest to the other."""
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "2", "THREADS": "4"})
    port, master = int(server.url.rsplit(":", 1)[1]), server.process.pid
    try:
        wait_until(lambda: len(children_of(master)) == 2, what="both workers")
        workers = children_of(master)
        splits = []
        for _ in range(3):  # three bursts: gthread alone splits one evenly now and then, seldom three times running
            sessions = [requests.Session() for _ in range(16)]
            start = threading.Barrier(len(sessions))

            def connect_and_ask(session):
                start.wait(timeout=30)
                for _ in range(3):
                    response = session.post(server.url + "/predict", json={"text": POSITIVE}, timeout=60)
                    assert response.status_code == 200, response.text

            with ThreadPoolExecutor(len(sessions)) as pool:
                list(pool.map(connect_and_ask, sessions))
            splits.append([client_connections(pid, port) for pid in workers])
            for session in sessions:
                session.close()
            wait_until(lambda: sum(client_connections(pid, port) for pid in workers) == 0, what="the connections to close")
        assert all(sum(split) == 16 and min(split) >= 4 for split in splits), splits
    finally:
        server.stop()


def test_a_replaced_worker_gets_a_share_of_the_keep_alive_connections_back(served_model_path, tmp_path):
    """A killed worker's clients reconnect before its replacement is up, and the survivor would keep them all. Here one
    worker holds every connection (the other is stopped while they open, then killed); once the replacement is ready,
    the survivor closes every second connection after its next answer and the clients' reconnections reach the new one."""
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), "WEB_CONCURRENCY": "2"})
    port, master = int(server.url.rsplit(":", 1)[1]), server.process.pid
    sessions = [requests.Session() for _ in range(12)]

    def one_request_each(pool):
        for response in pool.map(lambda session: session.post(server.url + "/predict", json={"text": POSITIVE}, timeout=60),
                                 sessions):
            assert response.status_code == 200, response.text

    try:
        wait_until(lambda: len(children_of(master)) == 2, what="both workers")
        keeper, stopped = children_of(master)
        with ThreadPoolExecutor(len(sessions)) as pool:
            os.kill(stopped, signal.SIGSTOP)
            one_request_each(pool)
            assert client_connections(keeper, port) == len(sessions)
            os.kill(stopped, signal.SIGKILL)
            wait_until(lambda: stopped not in children_of(master) and len(children_of(master)) == 2, what="a replacement")
            new_worker = next(pid for pid in children_of(master) if pid != keeper)
            deadline = time.monotonic() + 15
            while client_connections(new_worker, port) < len(sessions) // 4 and time.monotonic() < deadline:
                one_request_each(pool)
            held = {"survivor": client_connections(keeper, port), "replacement": client_connections(new_worker, port)}
        assert held["replacement"] >= len(sessions) // 4, held  # without the hand-back: 0 for good
    finally:
        for session in sessions:
            session.close()
        server.stop()


# ---- one request's trouble stays its own ----

POISON, HOLD = "this tweet makes the model fail", "this tweet holds the model"


def coalesced_with_others(calls_file, text: str) -> bool:
    """Whether the model was ever called with `text` and another tweet together."""
    calls = [json.loads(line) for line in calls_file.read_text(encoding="utf-8").splitlines()]
    return any(text in call and len(call) > 1 for call in calls)


def test_a_text_the_model_fails_on_fails_only_its_own_request(tmp_path):
    """Single tweets that arrive while the model is busy share its next call. When that call fails, the others still get
    their answers (the model's own, as alone) and only the request whose text fails gets the error."""
    texts = [POSITIVE, NEGATIVE, NEUTRAL, POISON, "the bus is late again", "what a lovely surprise"]
    expected = {p["text"]: p["label"] for p in predict_pipeline([t for t in texts if t != POISON], load_pipeline(SHIPPED_MODEL))}
    calls, release = tmp_path / "calls.jsonl", tmp_path / "release"
    model = faulty_model(tmp_path / "model", poison=POISON, hold=HOLD, release=str(release), calls=str(calls))
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(model), "WEB_CONCURRENCY": "1", "THREADS": "16"})
    try:
        port, (worker,) = int(server.url.rsplit(":", 1)[1]), children_of(server.process.pid)
        for _ in range(3):  # until the failing text shared a call with others, which is what this test is about
            release.unlink(missing_ok=True)
            with ThreadPoolExecutor(len(texts) + 1) as pool:
                held = pool.submit(post_json, server, {"text": HOLD})
                wait_until(lambda: HOLD in calls.read_text(encoding="utf-8"), what="the model to be busy")
                answers = [pool.submit(post_json, server, {"text": text}) for text in texts]
                wait_until(lambda: client_connections(worker, port) == len(texts) + 1, what="the worker to take every request")
                release.touch()
                assert held.result().status_code == 200
                for text, answer in zip(texts, (a.result() for a in answers)):
                    if text == POISON:
                        assert_json_error(answer, 500, "internal_error")
                    else:
                        assert answer.status_code == 200 and answer.json()["label"] == expected[text], (text, answer.text)
            if coalesced_with_others(calls, POISON):
                return
        pytest.fail(f"in three tries the failing text never shared a call with others: {calls.read_text()}")
    finally:
        release.touch()
        server.stop()


def test_a_request_stuck_behind_the_model_gets_a_json_503_in_bounded_time(tmp_path):
    release = tmp_path / "release"
    model = faulty_model(tmp_path / "model", hold=HOLD, release=str(release))
    server = start_server(gunicorn_command(), tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(model), "WEB_CONCURRENCY": "1", "PREDICT_TIMEOUT": "1"})
    try:
        for text in (HOLD, POSITIVE):  # the second waits behind the first, which holds the model
            began = time.monotonic()
            response = post_json(server, {"text": text}, timeout=15)
            assert_json_error(response, 503, "prediction_timeout")
            assert time.monotonic() - began < 5 and response.headers["Retry-After"] == "1"
            assert "no prediction within 1 s (PREDICT_TIMEOUT)" in response.json()["error"]["message"]
        release.touch()
        assert post_json(server, {"text": POSITIVE}).json()["label"] == "positive"
    finally:
        release.touch()
        assert server.stop() == 0


def test_the_model_endpoint_matches_its_schema_for_a_model_trained_without_validation(tmp_path):
    """`train --valid-size 0` writes a manifest without `metrics`; /model must still answer as /openapi.json says."""
    out = tmp_path / "model" / "pipeline.pkl"
    trained = run_cli("train", write_semeval(tmp_path / "train.tsv"), "--out", out, "--valid-size", "0")
    assert trained.returncode == 0, trained.stderr
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(out)})
    try:
        manifest = requests.get(server.url + "/model", timeout=10).json()
        assert "metrics" not in manifest
        document = requests.get(server.url + "/openapi.json", timeout=10).json()
        Draft202012Validator({**document["components"]["schemas"]["Manifest"], "components": document["components"]}).validate(manifest)
    finally:
        server.stop()


# ---- start-up and shutdown ----

def test_a_taken_port_is_reported_before_the_model_loads(tmp_path):
    """Nothing is loaded when the port is taken: not even a model that does not exist is looked at."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "SENTIMENT_MODEL": str(tmp_path / "no-such-model.pkl")}
        began = time.monotonic()
        done = subprocess.run(gunicorn_command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); stop what listens there, "
                           "or choose another HOST/PORT\n")
    print(f"\ntaken port reported after {time.monotonic() - began:.2f} s")


@pytest.mark.parametrize("tier", ["fast", "accurate"])
def test_sigterm_stops_either_tier_within_2_s_with_exit_0(tmp_path, tier):
    """Both workers have predicted, so each holds what the model loads per process (the accurate tier: an ONNX Runtime
    session, inherited from the master and its own); they must still exit at once, neither killed nor aborted."""
    model = {"fast": SHIPPED_MODEL, "accurate": ACCURATE_MODEL}[tier]
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(model)})
    try:
        with ThreadPoolExecutor(8) as pool:
            assert all(r.status_code == 200 for r in pool.map(lambda i: post_json(server, {"text": f"{POSITIVE} {i}"}), range(40)))
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)
        seconds = time.monotonic() - began
    finally:
        server.stop()
    print(f"\n{tier} tier: exit {code} {seconds:.2f} s after SIGTERM")
    log = server.log()
    assert code == 0 and seconds <= 2, (code, seconds, log[-3000:])
    assert "was sent SIG" not in log and "terminate called" not in log and log.count("Worker exiting") == 2, log[-3000:]


# Starts gunicorn as its console script does, in a gunicorn that lacks the private function app/gunicorn.conf.py replaces.
WITHOUT_WRITE_ERROR = ("import sys, gunicorn.util\n"
                       "del gunicorn.util.write_error\n"
                       "from gunicorn.app.wsgiapp import run\n"
                       "sys.argv[0] = 'gunicorn'\n"
                       "sys.exit(run())\n")


def test_start_up_stops_loudly_when_gunicorn_no_longer_has_the_error_writer_it_replaces(tmp_path):
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-c", WITHOUT_WRITE_ERROR, *gunicorn_command()[1:]], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"gunicorn started without its JSON parse errors:\n{err[-2000:]}")
    assert process.returncode == 1
    assert err.endswith("no longer sends its parse errors through gunicorn.util.write_error; app/gunicorn.conf.py cannot "
                        "answer them in JSON\n"), err
