"""Generated and hostile requests against the real gunicorn on loopback: no server errors, every answer as documented.

1. Schemathesis reads the service's own /openapi.json and drives every operation with its examples, boundary
   (coverage) cases and generated valid and invalid requests, checking each response with all its checks: no
   server error, status, content type, headers and body as documented, invalid input rejected, valid accepted.
   Invalid input must get one of the documented refusals (400, 404, 405, 413, 415) — schemathesis's own default
   list lacks 413, which this API documents for requests over its limits. Run twice: with the shipped limits,
   and with small limits (8 texts of 280 characters, 64 KiB) so that thousands of requests, their boundaries
   included, fit in well under a minute.
2. Hypothesis sends what a schema cannot describe: random bytes, broken and mutated JSON, numbers thousands
   of digits long, deep nesting, NaN, BOMs, other encodings and content types. Each answer must be a status the
   spec lists for POST /predict, with the documented body and error code.
3. Below HTTP: mutated raw requests on a socket (broken request lines, headers, lengths, chunking). gunicorn
   answers those itself, in the API's JSON error shape, with a 4xx, or closes a request that never ends; the one
   5xx allowed is 501 for a transfer coding it does not implement, as RFC 9112 asks. The service keeps serving.

Runs are derandomized (fixed seed, no example database) and bounded in examples and time.
"""
import collections
import json
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import unquote

import jsonschema
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.engine import events, from_schema

from tests.support import children_of, gunicorn_command, start_server

pytestmark = pytest.mark.slow

SMALL_LIMITS = {"MAX_BATCH_SIZE": "8", "MAX_TEXT_LENGTH": "280", "MAX_CONTENT_LENGTH": str(64 * 1024)}
DOCUMENTED_REFUSALS = ["400", "404", "405", "413", "415"]


@pytest.fixture(scope="module")
def small_limits_gunicorn(served_model_path, tmp_path_factory):
    """gunicorn as `make serve` runs it, with small request limits set through the environment."""
    server = start_server(gunicorn_command(), tmp_path_factory.mktemp("gunicorn-small-limits") / "server.log",
                          env={"SENTIMENT_MODEL": str(served_model_path), **SMALL_LIMITS})
    yield server
    server.stop()


def openapi_document(base_url: str) -> dict:
    response = requests.get(base_url + "/openapi.json", timeout=10)
    response.raise_for_status()
    return response.json()


@dataclass
class FuzzRun:
    requests: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    operations: set = field(default_factory=set)
    failures: list = field(default_factory=list)  # one line per failed check or engine error

    def summary(self) -> str:
        return f"{self.requests} requests over {len(self.operations)} operations, statuses {dict(sorted(self.statuses.items()))}"


def run_schemathesis(base_url: str, max_examples: int) -> FuzzRun:
    """Every schemathesis phase and check against `base_url`, driven by the document it serves."""
    config = schemathesis.Config.from_dict({
        "seed": 0,
        "base-url": base_url,
        "generation": {"max-examples": max_examples, "mode": "all", "deterministic": True, "database": "none"},
        "checks": {"negative_data_rejection": {"expected-statuses": DOCUMENTED_REFUSALS},
                   "positive_data_acceptance": {"expected-statuses": ["2xx"]}},
    })
    # Loaded from the document itself, not its URL: by URL, schemathesis leaves out the operation serving it.
    schema = schemathesis.openapi.from_dict(openapi_document(base_url), config=config)
    run = FuzzRun()
    for event in from_schema(schema).execute():
        if isinstance(event, (events.ScenarioFinished, events.FuzzScenarioFinished)):
            record_scenario(run, event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"schemathesis error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            run.failures.append(f"schemathesis stopped: {event.exception!r}")
    return run


def record_scenario(run: FuzzRun, recorder) -> None:
    for interaction in recorder.interactions.values():
        run.requests += 1
        run.operations.add(recorder.label)
        run.statuses[interaction.response.status_code if interaction.response else "no response"] += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                run.failures.append(f"{recorder.label} {check.name}: {failure.title}: {str(failure)[:400]} "
                                    f"(reproduce: {check.failure_info.code_sample[:600]})")


def all_operations(document: dict) -> set[str]:
    return {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}


def assert_clean(run: FuzzRun, document: dict, at_least: int) -> None:
    print(f"\nschemathesis: {run.summary()}")
    assert not run.failures, "\n".join(run.failures[:10])
    assert not [s for s in run.statuses if s == "no response" or s >= 500], run.summary()
    assert run.operations == all_operations(document)
    assert run.requests >= at_least, run.summary()


@pytest.mark.timeout(300)
def test_schemathesis_with_the_shipped_limits(service_gunicorn):
    """Requests as large as the shipped limits allow (1,000 texts of 1,000 characters); fewer of them."""
    run = run_schemathesis(service_gunicorn.url, max_examples=400)
    assert_clean(run, openapi_document(service_gunicorn.url), at_least=400)


@pytest.mark.timeout(300)
def test_schemathesis_thousands_of_requests_with_small_limits(small_limits_gunicorn):
    document = openapi_document(small_limits_gunicorn.url)
    assert document["components"]["schemas"]["BatchRequest"]["properties"]["texts"]["maxItems"] == 8  # the limits reach the spec
    run = run_schemathesis(small_limits_gunicorn.url, max_examples=2_000)
    assert_clean(run, document, at_least=2_000)


# ---- 2. what a schema cannot describe ----

VALID_BODIES = [{"text": "loving the sunshine today :)"}, {"texts": ["so tired of this rain", "meeting at 3pm"]}]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=()), max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(["text", "texts", "x", ""]) | st.text(max_size=5),
                                                                inner, max_size=4),
    max_leaves=25)


def json_bytes(value) -> bytes:
    """JSON as a careless client writes it: NaN and Infinity allowed, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def mutated(body: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """`body` with bytes overwritten, inserted or deleted at the given positions."""
    data = bytearray(body)
    for kind, position, byte in edits:
        i = position % (len(data) + 1)
        if kind == 0 and i < len(data):
            data[i] = byte
        elif kind == 1:
            data.insert(i, byte)
        elif i < len(data):
            del data[i]
    return bytes(data)


NASTY_BODIES = st.one_of(
    st.binary(max_size=2_000),
    st.builds(lambda v: json_bytes({"text": v}), JSON_VALUES),
    st.builds(lambda v: json_bytes({"texts": v}), JSON_VALUES),
    st.builds(json_bytes, JSON_VALUES),
    st.builds(lambda sign, n, key: f'{{"{key}": {sign}{"7" * n}}}'.encode(),  # up to past Python's int conversion limit
              st.sampled_from(["", "-", "0.", "1e"]), st.integers(1, 10_000), st.sampled_from(["text", "texts"])),
    st.builds(lambda n, key: (f'{{"{key}": ' + "[" * n).encode(), st.integers(1, 200_000), st.sampled_from(["text", "texts"])),
    st.builds(lambda body, cut: json_bytes(body)[:cut], st.sampled_from(VALID_BODIES), st.integers(0, 60)),
    st.builds(mutated, st.sampled_from(VALID_BODIES).map(json_bytes),
              st.lists(st.tuples(st.integers(0, 2), st.integers(0, 100), st.integers(0, 255)), min_size=1, max_size=6)),
    st.builds(lambda body, encoding: json.dumps(body, ensure_ascii=False).encode(encoding),
              st.sampled_from(VALID_BODIES), st.sampled_from(["utf-8-sig", "utf-16", "utf-32", "latin-1"])),
)
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16", "APPLICATION/JSON",
    "application/vnd.api+json", "application/merge-patch+json", "text/plain", "text/json", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/json\u00e9", "", None])


def documented_codes(document: dict, status: int) -> set[str]:
    """The `error.code`s the spec lists for POST /predict answering `status`."""
    response = document["paths"]["/predict"]["post"]["responses"][str(status)]
    name = response["$ref"].rsplit("/", 1)[1]
    return set(re.findall(r"^- `(\w+)`", document["components"]["responses"][name]["description"], flags=re.M))


def response_validator(document: dict, status: int) -> jsonschema.Draft202012Validator:
    """A validator for the body the spec documents for POST /predict answering `status`."""
    response = document["paths"]["/predict"]["post"]["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = {**response["content"]["application/json"]["schema"], "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def predict_spec(service_gunicorn):
    document = openapi_document(service_gunicorn.url)
    statuses = [int(s) for s in document["paths"]["/predict"]["post"]["responses"]]
    return {s: (response_validator(document, s), documented_codes(document, s) if s >= 400 else None) for s in statuses}


@pytest.mark.timeout(300)
@settings(max_examples=1_500, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=NASTY_BODIES, content_type=CONTENT_TYPES)
@example(body=b'{"text": ' + b"7" * 5_000 + b"}", content_type="application/json")  # was a 500: int() refuses 4,300+ digits
def test_hostile_bodies_get_a_documented_answer(service_gunicorn, predict_spec, body, content_type):
    # A connection of its own: gunicorn closes one whose unread body exceeds 64 KiB (e.g. after a 415), although
    # its answer announced keep-alive; that is a transport matter, this test is about the answers.
    headers = {"Connection": "close"} | ({} if content_type is None else {"Content-Type": content_type})
    response = requests.post(service_gunicorn.url + "/predict", data=body, headers=headers, timeout=30)
    assert response.status_code < 500 and response.status_code in predict_spec, f"{response.status_code} {response.text[:300]}"
    validator, codes = predict_spec[response.status_code]
    answer = response.json()
    validator.validate(answer)
    if codes is not None:
        assert answer["error"]["code"] in codes, answer
    assert response.headers["X-Request-ID"]


# ---- 3. below HTTP ----

RAW_REQUESTS = [
    b'POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n'
    b'{"text": "what a great day"}',
    b'POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
    b'1c\r\n{"text": "what a great day"}\r\n0\r\n\r\n',
    b"GET /model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
]
GATEWAY_ANSWERS = {400, 404, 405, 413, 414, 415, 431}  # what a mangled request may get, besides 200


def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`, close our side, read everything the server says until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # a request that is not finished now never will be
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def first_response(answer: bytes) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names) and body of the first response in `answer` (a mangled request can turn into several)."""
    head, _, rest = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    body = rest[:int(headers["content-length"])]
    assert len(body) == int(headers["content-length"]), "the answer ended before its body did"
    return int(lines[0].split(" ", 2)[1]), headers, body


@pytest.fixture(scope="module")
def documented_200s(service_gunicorn):
    """Per (method, path) the service documents, the media types of its 200 and a validator of its JSON body."""
    document = openapi_document(service_gunicorn.url)
    documented = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation["responses"]["200"]["content"]
            schema = content.get("application/json", {}).get("schema")
            documented[method.upper(), path] = (set(content), schema and jsonschema.Draft202012Validator(
                {**schema, "components": document["components"]}))
    return documented


def requested(raw: bytes) -> tuple[str, str]:
    """The method and the path (query left out, %-escapes decoded, as the server routes it) of the request in `raw`."""
    method, _, rest = raw.split(b"\r\n", 1)[0].partition(b" ")
    target = rest.rpartition(b" ")[0] or rest
    return method.decode("latin-1"), unquote(target.split(b"?", 1)[0].decode("latin-1"))


@pytest.fixture(scope="module")
def gunicorn_workers(service_gunicorn):
    """The service's workers now; a mangled request must never cost one of them."""
    return children_of(service_gunicorn.process.pid)


@pytest.mark.timeout(300)
@settings(max_examples=400, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=st.builds(mutated, st.sampled_from(RAW_REQUESTS),
                     st.lists(st.tuples(st.integers(0, 2), st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=5))
       | st.binary(max_size=300)
       | st.builds(lambda n: b"GET /" + b"a" * n + b" HTTP/1.1\r\n\r\n", st.integers(4_000, 20_000))
       | st.builds(lambda n: b"GET / HTTP/1.1\r\nX-Big: " + b"a" * n + b"\r\n\r\n", st.integers(8_000, 200_000)))
def test_mangled_http_gets_a_json_4xx_or_a_closed_connection(service_gunicorn, documented_200s, gunicorn_workers, raw):
    port = int(service_gunicorn.url.rsplit(":", 1)[1])
    answer = exchange(port, raw)
    # An unfinished request line or header block gets no answer, which is right, but so would a request that crashed its
    # worker: the workers must be the ones the service started with.
    assert children_of(service_gunicorn.process.pid) == gunicorn_workers, service_gunicorn.log()[-3000:]
    if not answer:
        return
    status, headers, body = first_response(answer)
    if status == 200:  # the mutation left a valid request: the answer must be the one documented for it
        method, path = requested(raw)
        assert (method, path) in documented_200s, f"a 200 for {method} {path}, which the service does not document"
        media, validator = documented_200s[method, path]
        kind = headers["content-type"].split(";")[0]
        assert kind in media, headers
        if kind == "application/json":
            validator.validate(json.loads(body))
        return
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "request_id"}, error
    if status == 501:
        assert "transfer coding" in error["message"].lower(), error
    else:
        assert status in GATEWAY_ANSWERS, (status, error)


def test_still_serving_after_the_garbage(service_gunicorn):
    response = requests.post(service_gunicorn.url + "/predict", json={"text": "still here and happy :)"}, timeout=10)
    assert response.status_code == 200 and response.json()["label"] in {"negative", "neutral", "positive"}
