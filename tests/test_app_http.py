"""The real servers over real HTTP on 127.0.0.1: gunicorn as `make serve` runs it, and Flask's dev server as `make dev-serve` does."""
import json
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support import dev_server_command, get_status, gunicorn_command, start_server

pytestmark = pytest.mark.timeout(180)

# Our own example tweets (never the corpus).
POSITIVE = "finally home after a long week, pizza and my favourite show, life is good :)"
NEGATIVE = "the update deleted all my photos, i am so angry and sad right now"
NEUTRAL = "the library opens at 9am on weekdays and 10am on saturdays"


def post(server, body, content_type: str = "application/json", headers: dict | None = None) -> requests.Response:
    headers = {"Content-Type": content_type, **(headers or {})}
    return requests.post(server.url + "/predict", data=body, headers=headers, timeout=60)


def post_json(server, payload, **kwargs) -> requests.Response:
    return post(server, json.dumps(payload).encode(), **kwargs)


def request_log(server) -> list[dict]:
    """The structured request lines in the server's output."""
    return [line for line in map(json.loads, filter(lambda l: l.startswith("{"), server.log().splitlines()))
            if line.get("message") == "request"]


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
    assert set(single.json()) == {"text", "label", "pred", "probabilities"}
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
    body, status = HOSTILE[name]
    response = post(service_gunicorn, chunks(body) if transfer == "chunked" else body)
    assert response.status_code == status, response.text[:300]
    assert "error" in response.json()
    assert post_json(service_gunicorn, {"text": POSITIVE}).status_code == 200


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
    time.sleep(0.2)
    lines = {line["request_id"]: line for line in request_log(service_gunicorn)}
    assert {k: lines["log-check-1"][k] for k in ("method", "path", "status", "n_texts")} == \
        {"method": "POST", "path": "/predict", "status": 200, "n_texts": 2}
    assert lines["log-check-1"]["latency_ms"] > 0
    assert lines["log-check-2"]["status"] == 400
    assert sum(line["request_id"] == "log-check-1" for line in request_log(service_gunicorn)) == 1
    assert POSITIVE not in service_gunicorn.log() and "pizza" not in service_gunicorn.log()


def test_workers_survived_everything(service_gunicorn):
    """Runs after the hostile-input tests: no worker crashed, timed out or was replaced."""
    log = service_gunicorn.log()
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log
    master = service_gunicorn.process.pid
    workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert log.count("Booting worker") == len(workers)  # none was replaced


def test_sigterm_lets_the_in_flight_request_finish_then_exits_cleanly(served_model_path, tmp_path):
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(served_model_path)})
    try:
        body = json.dumps({"text": POSITIVE}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body[:10])
            time.sleep(0.5)  # the request is now inside a worker, waiting for the rest of its body
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
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


def test_make_serve_runs_gunicorn_and_stops_on_sigterm(served_model_path, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    server = start_server(["make", "--no-print-directory", "serve"], tmp_path / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path)})
    try:
        assert post_json(server, {"text": POSITIVE}).json()["label"] == "positive"
        assert "Using worker: gthread" in server.log()
    finally:
        server.stop()  # make passes SIGTERM on to gunicorn, then dies of it itself
    assert "Shutting down: Master" in server.log()
