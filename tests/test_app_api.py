"""The web service through Flask's test client: every endpoint, every error class, the OpenAPI document."""
import json
import logging

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from app.config import ConfigError, load_settings

JSON = "application/json"
# Our own example tweets (never the corpus).
POSITIVE = "just got the job offer, i am so happy and grateful!! best day ever :)"
NEGATIVE = "my flight got cancelled again, worst airline ever, i hate this so much"
NEUTRAL = "the city council meets on tuesday at 7pm to discuss the new bus routes"


# ---- helpers ----------------------------------------------------------------------------------------------------

def post_raw(client, body: bytes | None, content_type: str | None = JSON, **kwargs):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post("/predict", data=body, headers=headers, **kwargs)


def assert_error(response, status: int, code: str, mentions: str):
    """The one error shape, with the request id that the X-Request-ID header carries, and a message that says `mentions`."""
    assert mentions, "name what the message must say"
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == JSON
    error = response.get_json()["error"]
    assert error["code"] == code
    assert mentions in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


class OpenApiChecker:
    """Validates a response against what the OpenAPI document says for its path, method and status."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, default_specification=DRAFT202012))

    def follow(self, ref: str) -> dict:
        node = self.spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def described_response(self, method: str, path: str, status: int) -> dict:
        if path not in self.spec["paths"]:
            return self.follow("#/components/responses/NotFound")
        operation = self.spec["paths"][path].get(method.lower())
        if operation is None:
            return self.follow("#/components/responses/MethodNotAllowed")
        assert str(status) in operation["responses"], f"{method} {path} answered {status}: not in the OpenAPI document"
        response = operation["responses"][str(status)]
        return self.follow(response["$ref"]) if "$ref" in response else response

    def check(self, method: str, path: str, response) -> None:
        described = self.described_response(method, path, response.status_code)
        assert response.mimetype in described["content"], f"{response.mimetype} is not documented for {method} {path}"
        if response.mimetype == JSON:
            # `#/components/...` references resolve inside the OpenAPI document, registered as urn:openapi.
            schema = json.loads(json.dumps(described["content"][JSON]["schema"]).replace('"#/components/', '"urn:openapi#/components/'))
            Draft202012Validator(schema, registry=self.registry).validate(response.get_json())


@pytest.fixture(scope="module")
def openapi_checker(service_app) -> OpenApiChecker:
    return OpenApiChecker(service_app.test_client().get("/openapi.json").get_json())


@pytest.fixture(scope="module")
def labels(service_app) -> list[str]:
    return list(service_app.extensions["sentiment_model"].manifest["labels"])


# ---- predictions ------------------------------------------------------------------------------------------------

def check_prediction(prediction: dict, text: str, labels: list[str]):
    assert list(prediction) == ["text", "label", "pred", "probabilities", "language", "language_confidence", "supported", "reason"]
    assert prediction["text"] == text
    assert prediction["label"] == labels[prediction["pred"]]
    probabilities = prediction["probabilities"]
    assert set(probabilities) == set(labels)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1.5e-6)  # three values, each rounded to 6 decimals
    assert max(probabilities, key=probabilities.get) == prediction["label"]


def test_single_text_gets_label_pred_and_probabilities(service_client, labels, openapi_checker):
    response = service_client.post("/predict", json={"text": POSITIVE})
    assert response.status_code == 200
    check_prediction(response.get_json(), POSITIVE, labels)
    assert response.get_json()["label"] == "positive"
    assert service_client.post("/predict", json={"text": NEGATIVE}).get_json()["label"] == "negative"
    openapi_checker.check("POST", "/predict", response)


def test_batch_answers_in_request_order_and_agrees_with_single(service_client, labels, openapi_checker):
    texts = [POSITIVE, NEGATIVE, NEUTRAL, "ok 👍 #monday"]
    response = service_client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    openapi_checker.check("POST", "/predict", response)
    predictions = response.get_json()["predictions"]
    assert [p["text"] for p in predictions] == texts
    for text, prediction in zip(texts, predictions):
        check_prediction(prediction, text, labels)
        single = service_client.post("/predict", json={"text": text}).get_json()
        assert single["label"] == prediction["label"]
        assert single["probabilities"] == pytest.approx(prediction["probabilities"])


def test_limits_themselves_are_accepted(service_app, service_client):
    limit = service_app.config["MAX_TEXT_LENGTH"]
    longest = ("so good " * limit)[:limit]
    response = service_client.post("/predict", json={"texts": [longest] * service_app.config["MAX_BATCH_SIZE"]})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == service_app.config["MAX_BATCH_SIZE"]


def test_unicode_text_comes_back_unchanged(service_client):
    text = "café ☕ in Zürich — 🤩🎉 #mood"
    response = service_client.post("/predict", json={"text": text})
    assert response.status_code == 200
    assert response.get_json()["text"] == text
    assert "🤩".encode() in response.get_data()  # sent as UTF-8, not \u escapes


def check_explanation(explained: dict, plain: dict, pipeline):
    """`explain` adds the library's explanation to the very prediction a plain request gets."""
    from sentiment_nb.pipeline import explain_pipeline

    assert list(explained) == [*plain, "explanation"]
    assert {k: explained[k] for k in plain} == plain
    assert explained["explanation"] == explain_pipeline(plain["text"], pipeline)[0]["explanation"]
    assert explained["explanation"][-1]["feature"] == "(intercept)"


def test_explain_adds_an_explanation_to_single_and_batch_predictions(service_app, service_client, openapi_checker):
    pipeline = service_app.extensions["sentiment_model"].pipeline
    single = service_client.post("/predict", json={"text": POSITIVE, "explain": True})
    assert single.status_code == 200
    openapi_checker.check("POST", "/predict", single)
    check_explanation(single.get_json(), service_client.post("/predict", json={"text": POSITIVE}).get_json(), pipeline)
    texts = [POSITIVE, NEGATIVE, NEUTRAL]
    batch = service_client.post("/predict", json={"texts": texts, "explain": True})
    assert batch.status_code == 200
    openapi_checker.check("POST", "/predict", batch)
    plain = service_client.post("/predict", json={"texts": texts}).get_json()["predictions"]
    for explained, prediction in zip(batch.get_json()["predictions"], plain, strict=True):
        check_explanation(explained, prediction, pipeline)
    assert "explanation" not in service_client.post("/predict", json={"text": POSITIVE, "explain": False}).get_json()


def test_explain_with_a_model_that_is_not_linear_is_a_clear_400(service_app, service_client, openapi_checker, monkeypatch):
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    monkeypatch.setattr(service_app.extensions["sentiment_model"], "pipeline", Pipeline([("classify", DecisionTreeClassifier())]))
    response = service_client.post("/predict", json={"texts": [POSITIVE], "explain": True})
    assert_error(response, 400, "explain_unsupported", "explanations are exact only for the linear fast model")
    openapi_checker.check("POST", "/predict", response)


# ---- every error class ------------------------------------------------------------------------------------------

BAD_BODIES = [  # (case, body, content type, status, code, the message names)
    ("malformed JSON", b'{"text": "hi"', JSON, 400, "invalid_json", "line 1"),
    ("empty body", b"", JSON, 400, "invalid_json", "empty"),
    ("invalid UTF-8", b'{"text": "caf\xe9"}', JSON, 400, "invalid_json", "UTF-8"),
    ("UTF-8-encoded surrogate", b'{"text": "\xed\xa0\x80"}', JSON, 400, "invalid_json", "UTF-8"),
    ("NaN", b'{"text": NaN}', JSON, 400, "invalid_json", "NaN"),
    ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "invalid_json", "nested"),
    ("deeply nested inside text", b'{"text": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}", JSON, 400, "invalid_json", "nested too deeply"),
    ("array body", b'["hi"]', JSON, 400, "invalid_body", "array"),
    ("string body", b'"hi"', JSON, 400, "invalid_body", "string"),
    ("null body", b"null", JSON, 400, "invalid_body", "null"),
    ("neither field", b"{}", JSON, 400, "missing_field", "text"),
    ("both fields", b'{"text": "a", "texts": ["b"]}', JSON, 400, "conflicting_fields", "not both"),
    ("unknown field", b'{"txt": "a"}', JSON, 400, "unknown_field", "txt"),
    ("text is a number", b'{"text": 42}', JSON, 400, "invalid_type", "got number"),
    ("text is null", b'{"text": null}', JSON, 400, "invalid_type", "got null"),
    ("text is an object", b'{"text": {"nested": "hi"}}', JSON, 400, "invalid_type", "got object"),
    ("text is a list", b'{"text": ["hi"]}', JSON, 400, "invalid_type", "got array"),
    ("text is a boolean", b'{"text": true}', JSON, 400, "invalid_type", "got boolean"),
    ("texts is a string", b'{"texts": "hi"}', JSON, 400, "invalid_type", "array of strings"),
    ("texts is null", b'{"texts": null}', JSON, 400, "invalid_type", "got null"),
    ("texts is an object", b'{"texts": {"a": "hi"}}', JSON, 400, "invalid_type", "got object"),
    ("texts holds a number", b'{"texts": ["hi", 3]}', JSON, 400, "invalid_type", "texts[1]"),
    ("texts holds null", b'{"texts": [null]}', JSON, 400, "invalid_type", "texts[0]"),
    ("texts holds a list", b'{"texts": ["a", "b", ["c"]]}', JSON, 400, "invalid_type", "texts[2]"),
    ("texts holds an object", b'{"texts": [{"text": "hi"}]}', JSON, 400, "invalid_type", "texts[0]"),
    ("explain is a string", b'{"text": "a", "explain": "true"}', JSON, 400, "invalid_type", "explain must be true or false, got string"),
    ("explain is a number", b'{"texts": ["a"], "explain": 1}', JSON, 400, "invalid_type", "explain must be true or false, got number"),
    ("explain is null", b'{"text": "a", "explain": null}', JSON, 400, "invalid_type", "got null"),
    ("explain without a text", b'{"explain": true}', JSON, 400, "missing_field", "text"),
    ("empty batch", b'{"texts": []}', JSON, 400, "empty_batch", "empty"),
    ("NUL in text", b'{"text": "a\\u0000b"}', JSON, 400, "invalid_text", "NUL"),
    ("NUL in a batch item", b'{"texts": ["fine", "bad\\u0000"]}', JSON, 400, "invalid_text", "texts[1]"),
    ("lone high surrogate", b'{"text": "smile \\ud83d"}', JSON, 400, "invalid_text", "U+D83D"),
    ("lone low surrogate", b'{"texts": ["\\ude00 x"]}', JSON, 400, "invalid_text", "texts[0]"),
    ("100k-item batch", json.dumps({"texts": ["hi"] * 100_000}).encode(), JSON, 413, "batch_too_large", "100000"),
    ("plain text", b'{"text": "hi"}', "text/plain", 415, "unsupported_media_type", "text/plain"),
    ("form", b"text=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "form"),
    ("no content type", b'{"text": "hi"}', None, 415, "unsupported_media_type", "no Content-Type"),
]


@pytest.mark.parametrize("body, content_type, status, code, mentions",
                         [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES])
def test_bad_request_gets_a_clear_json_error(service_client, openapi_checker, body, content_type, status, code, mentions):
    response = post_raw(service_client, body, content_type)
    assert_error(response, status, code, mentions)
    openapi_checker.check("POST", "/predict", response)


def test_surrogate_pairs_are_fine(service_client):
    response = post_raw(service_client, b'{"text": "smile \\ud83d\\ude00"}')
    assert response.status_code == 200
    assert response.get_json()["text"] == "smile 😀"


def test_over_the_configured_limits_is_413(service_app, service_client, openapi_checker):
    config = service_app.config
    cases = [
        ({"text": "a" * (config["MAX_TEXT_LENGTH"] + 1)}, "text_too_long", f"limit is {config['MAX_TEXT_LENGTH']}"),
        ({"texts": ["ok", "b" * (config["MAX_TEXT_LENGTH"] + 1)]}, "text_too_long", "texts[1]"),
        ({"texts": ["hi"] * (config["MAX_BATCH_SIZE"] + 1)}, "batch_too_large", f"limit is {config['MAX_BATCH_SIZE']}"),
        ({"text": "x" * (config["MAX_CONTENT_LENGTH"] + 1)}, "payload_too_large", f"{config['MAX_CONTENT_LENGTH']} bytes"),
    ]
    for body, code, mentions in cases:
        response = service_client.post("/predict", json=body)
        assert_error(response, 413, code, mentions)
        openapi_checker.check("POST", "/predict", response)


def test_limits_follow_the_configuration(service_app, service_client, monkeypatch):
    monkeypatch.setitem(service_app.config, "MAX_BATCH_SIZE", 2)
    monkeypatch.setitem(service_app.config, "MAX_TEXT_LENGTH", 10)
    assert service_client.post("/predict", json={"texts": ["a", "b"]}).status_code == 200
    assert_error(service_client.post("/predict", json={"texts": ["a", "b", "c"]}), 413, "batch_too_large", "limit is 2")
    assert_error(service_client.post("/predict", json={"text": "eleven chars"}), 413, "text_too_long", "limit is 10")


def test_unknown_path_and_wrong_method_are_json(service_client, openapi_checker):
    missing = service_client.get("/predictions")
    assert_error(missing, 404, "not_found", "/predictions")
    openapi_checker.check("GET", "/predictions", missing)
    wrong = service_client.get("/predict")
    assert_error(wrong, 405, "method_not_allowed", "POST")
    assert "POST" in wrong.headers["Allow"]
    openapi_checker.check("GET", "/predict", wrong)
    assert_error(service_client.delete("/health"), 405, "method_not_allowed", "GET")


class ExplodingPipeline:
    """A model that fails inside the request, the way a bug would."""

    def __getattr__(self, name):
        raise RuntimeError("secret internals: /srv/model/weights.bin offset 0x2a")


def test_unexpected_exception_is_json_500_with_request_id_and_no_internals(service_app, service_client, monkeypatch,
                                                                           openapi_checker, caplog):
    monkeypatch.setattr(service_app.extensions["sentiment_model"], "pipeline", ExplodingPipeline())
    response = service_client.post("/predict", json={"text": POSITIVE}, headers={"X-Request-ID": "trace-500"})
    error = assert_error(response, 500, "internal_error", "trace-500")
    assert error["request_id"] == "trace-500"
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)
    openapi_checker.check("POST", "/predict", response)
    logged = [r for r in caplog.records if r.name == "app.errors"]
    assert logged and logged[0].exc_info and logged[0].fields["request_id"] == "trace-500"  # the details stay server-side
    monkeypatch.undo()
    assert service_client.post("/predict", json={"text": POSITIVE}).status_code == 200


# ---- health, readiness, model, OpenAPI ------------------------------------------------------------------------

def test_health_is_the_one_probe(service_client, openapi_checker):
    response = service_client.get("/health")
    assert (response.status_code, response.get_json()) == (200, {"status": "alive"})
    openapi_checker.check("GET", "/health", response)
    # no /ready: it could never answer anything but 200 (see test_app_http.py for why /health is enough)
    assert_error(service_client.get("/ready"), 404, "not_found", "no endpoint at /ready")


def test_model_endpoint_serves_the_manifest_beside_the_pickle(service_client, served_model_path, openapi_checker):
    response = service_client.get("/model")
    assert response.status_code == 200
    openapi_checker.check("GET", "/model", response)
    manifest = json.loads(served_model_path.with_suffix(".json").read_text(encoding="utf-8"))
    assert response.get_json() == manifest
    assert {"sha256", "labels", "versions", "metrics", "training_data", "created"} <= set(manifest)
    assert manifest["training_data"]["rows"] > 0


def test_openapi_document_is_valid_and_states_the_limits(service_app, service_client):
    response = service_client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate_openapi_spec(spec)
    config = service_app.config
    batch = spec["components"]["schemas"]["BatchRequest"]["properties"]["texts"]
    assert batch["maxItems"] == config["MAX_BATCH_SIZE"]
    assert batch["items"]["maxLength"] == config["MAX_TEXT_LENGTH"]
    assert str(config["MAX_CONTENT_LENGTH"]) in spec["components"]["responses"]["PayloadTooLarge"]["description"]
    assert set(spec["paths"]["/predict"]["post"]["responses"]) == {"200", "400", "413", "415", "500", "503"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_conform_to_the_openapi_document(service_app, mode):
    """Schemathesis builds requests from the document (valid ones, then invalid ones); every response must match it."""
    # Invalid requests must be refused with a documented 4xx; "over a limit" is 413 here, which Schemathesis does not assume.
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415]}}})
    schema = schemathesis.openapi.from_wsgi("/openapi.json", service_app, config=config)

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case):
        case.call_and_validate()

    answers_as_documented()


# ---- request log, request ids, configuration --------------------------------------------------------------------

def request_log_lines(caplog) -> list[dict]:
    return [r.fields for r in caplog.records if r.name == "app.requests"]


def test_one_log_line_per_request_without_tweet_text(service_client, caplog):
    caplog.set_level(logging.INFO, logger="app.requests")
    service_client.post("/predict", json={"texts": [POSITIVE, NEGATIVE]}, headers={"X-Request-ID": "batch-42"})
    service_client.post("/predict", data=b"{", content_type=JSON)
    first, second = request_log_lines(caplog)
    assert first["request_id"] == "batch-42"
    assert {k: first[k] for k in ("method", "path", "status", "n_texts")} == \
        {"method": "POST", "path": "/predict", "status": 200, "n_texts": 2}
    assert first["latency_ms"] > 0
    assert second["status"] == 400
    assert "job offer" not in caplog.text and "flight" not in caplog.text


def test_log_texts_setting_puts_texts_in_the_log_line(service_app, service_client, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="app.requests")
    monkeypatch.setitem(service_app.config, "LOG_TEXTS", True)
    service_client.post("/predict", json={"text": POSITIVE})
    assert request_log_lines(caplog)[0]["texts"] == [POSITIVE]


def test_request_id_is_kept_when_plain_and_replaced_when_not(service_client):
    kept = service_client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"
    replaced = service_client.get("/health", headers={"X-Request-ID": 'x" injected=1 ' + "y" * 100})
    assert len(replaced.headers["X-Request-ID"]) == 32 and "injected" not in replaced.headers["X-Request-ID"]


def test_settings_come_from_the_environment_and_are_checked():
    assert load_settings(environ={"MAX_BATCH_SIZE": "50", "LOG_TEXTS": "yes"})["MAX_BATCH_SIZE"] == 50
    assert load_settings(environ={})["MAX_BATCH_SIZE"] == 1000
    assert load_settings({"MAX_BATCH_SIZE": 7}, environ={"MAX_BATCH_SIZE": "50"})["MAX_BATCH_SIZE"] == 7
    with pytest.raises(ConfigError, match="MAX_BATCH_SIZE must be a positive integer, got 'lots'"):
        load_settings(environ={"MAX_BATCH_SIZE": "lots"})
    with pytest.raises(ConfigError, match="LOG_TEXTS"):
        load_settings(environ={"LOG_TEXTS": "maybe"})


# ---- the demo page ----------------------------------------------------------------------------------------------

def test_demo_page_is_self_contained(service_client):
    page = service_client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    for needle in ('id="text"', 'id="predict"', 'id="label"', 'id="probabilities"', 'id="batch-texts"'):
        assert needle in html
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    for asset in ("/static/demo.css", "/static/demo.js"):
        assert asset in html
        served = service_client.get(asset)
        assert served.status_code == 200
        assert b"http://" not in served.data and b"https://" not in served.data and b"@import" not in served.data
