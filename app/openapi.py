"""The OpenAPI 3.1 document served at /openapi.json; the configured limits and the model's labels are filled in."""
from typing import Any


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: dict, example: Any = None) -> dict:
    media = {"schema": schema} | ({"example": example} if example is not None else {})
    return {"application/json": media}


def error_response(description: str, codes: dict[str, str]) -> dict:
    """A response in the Error shape; `codes` maps each `error.code` it can carry to when."""
    listing = "\n".join(f"- `{code}`: {when}" for code, when in codes.items())
    first = next(iter(codes))
    return {"description": f"{description}\n\n{listing}",
            "content": json_content(ref("schemas", "Error"),
                                    {"error": {"code": first, "message": codes[first], "request_id": "4f1c2a9e0b7d4c3e8a61f0d2b5c7e9a1"}})}


def build_openapi(max_content_length: int, max_text_length: int, max_batch_size: int, labels: list[str],
                  metrics: bool = True,  # the METRICS setting: whether /metrics is served
                  ) -> dict:
    text = {"type": "string", "maxLength": max_text_length, "pattern": r"^[^\u0000]*$",
            "description": f"a tweet: at most {max_text_length} characters, no NUL characters or unpaired surrogates"}
    explain = {"type": "boolean", "default": False,
               "description": ("true: each prediction also carries an `explanation`. Only the linear fast model can be explained "
                               "exactly; a service serving another model answers 400 `explain_unsupported`")}
    schemas = {
        "SingleRequest": {"type": "object", "required": ["text"], "additionalProperties": False,
                          "properties": {"text": text, "explain": explain}},
        "BatchRequest": {"type": "object", "required": ["texts"], "additionalProperties": False,
                         "properties": {"texts": {"type": "array", "items": text, "minItems": 1, "maxItems": max_batch_size},
                                        "explain": explain}},
        "Prediction": {
            "type": "object", "required": ["text", "label", "pred", "probabilities", "language", "language_confidence", "supported", "reason"],
            "properties": {
                "text": {"type": "string", "description": "the text as sent"},
                "label": {"type": "string", "enum": labels},
                "pred": {"type": "integer", "minimum": 0, "maximum": len(labels) - 1,
                         "description": f"index of `label` in {labels}"},
                "probabilities": {"type": "object", "required": labels, "additionalProperties": False,
                                  "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in labels},
                                  "description": ("calibrated: on tweets the model was not trained on, answers given with "
                                                  "probability p were right about a share p of the time")},
                "language": {"type": "string", "pattern": "^[a-z]{2,3}$",
                             "description": "the text's language, ISO 639-1 (`en`, `es`, …), or `und` for a text without letters"},
                "language_confidence": {"type": "number", "minimum": 0, "maximum": 1,
                                        "description": ("how sure `language` is: for English recognised by its words, the share of "
                                                        "its words that are English; else the language identifier's probability")},
                "supported": {"type": "boolean",
                              "description": "false when the text is confidently in a language the model was not trained on: do not trust the label"},
                "reason": {"type": ["string", "null"], "enum": ["no_content", "unsupported_language", None],
                           "description": ("why the label is not a judgement of the text, else null: `no_content` (no letter, emoji "
                                           "or emoticon: the answer is the class prior) or `unsupported_language`")},
                "explanation": {
                    "type": "array", "minItems": 1, "items": ref("schemas", "ExplanationPart"),
                    "description": ("only with `\"explain\": true`. What pushed the tweet toward `label`: up to 8 features, largest "
                                    "absolute weight first; then `(N other features)`, the sum of the rest, when any were left out; "
                                    "last `(intercept)`. A feature's weight is its value times (the label's coefficient minus the mean "
                                    "coefficient of the other labels), so the weights add up exactly to the label's margin: its score "
                                    "minus the mean score of the other labels, i.e. log p(label) minus the mean log-probability of the "
                                    "others. Positive: toward `label`; negative: away from it")},
            },
        },
        "ExplanationPart": {
            "type": "object", "required": ["feature", "weight"], "additionalProperties": False,
            "properties": {"feature": {"type": "string", "description": ("as a person reads it: a word or word pair of the normalized "
                                                                         "tweet (`not … good`: negated; `good … but`: before a contrast; "
                                                                         "`:)`, `:(`, `URL`, `@user`: placeholders), a lexicon score "
                                                                         "(`lexicon: sum of valence`), `(N other features)` or `(intercept)`")},
                           "weight": {"type": "number", "description": "its part of the label's margin"}},
        },
        "BatchPredictions": {"type": "object", "required": ["predictions"],
                             "properties": {"predictions": {"type": "array", "items": ref("schemas", "Prediction"),
                                                            "description": "one per text, in request order"}}},
        "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        # `metrics` only when the model was validated: `train --valid-size 0` and out-of-core training without a validation share skip it
        "Manifest": {"type": "object", "required": ["sha256", "labels", "versions", "training_data", "created"],
                     "properties": {"sha256": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                                    "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "metrics": {"type": "object"}, "training_data": {"type": "object"},
                                    "created": {"type": "string"}}},
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": False,
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "request_id"], "additionalProperties": False,
                "properties": {"code": {"type": "string", "description": "stable, for programs"},
                               "message": {"type": "string", "description": "what was wrong and where, for people"},
                               "request_id": {"type": "string", "description": "also in the X-Request-ID header and the log line"}}}},
        },
    }
    responses = {
        "BadRequest": error_response("The body is not a valid prediction request.", {
            "invalid_json": ("the body is empty, not UTF-8, not JSON, uses NaN/Infinity, is nested too deeply "
                             "or has an integer over 4,300 digits"),
            "invalid_body": "the JSON is not an object",
            "missing_field": 'neither "text" nor "texts" was sent',
            "conflicting_fields": 'both "text" and "texts" were sent',
            "unknown_field": 'a field other than "text", "texts" or "explain" was sent',
            "invalid_type": '"text" is not a string, "texts" is not an array of strings, or "explain" is not a boolean',
            "invalid_text": "a text contains a NUL character or an unpaired surrogate",
            "empty_batch": '"texts" is an empty array',
            "unreadable_body": "the body's framing is broken (e.g. malformed chunked encoding)",
            "bad_request": "the request could not be read (e.g. the client hung up mid-body)",
            "explain_unsupported": '"explain" is true but the served model is not linear (the accurate tier): its predictions cannot be split exactly into parts per feature',
        }),
        "PayloadTooLarge": error_response("The request is over a configured limit.", {
            "payload_too_large": f"the body is over MAX_CONTENT_LENGTH ({max_content_length} bytes)",
            "text_too_long": f"a text is over MAX_TEXT_LENGTH ({max_text_length} characters)",
            "batch_too_large": f'"texts" has more than MAX_BATCH_SIZE ({max_batch_size}) items',
        }),
        "UnsupportedMediaType": error_response("The body is not sent as JSON.", {
            "unsupported_media_type": "Content-Type is not application/json"}),
        "NotFound": error_response("No such endpoint.", {"not_found": "the path is none of those listed here"}),
        "MethodNotAllowed": error_response("The endpoint exists but not for this method; the Allow header lists the methods.", {
            "method_not_allowed": "the method is not one listed for this path"}),
        "ServiceUnavailable": {**error_response("No answer in time; the Retry-After header says when to try again.", {
            "prediction_timeout": "a single tweet waited longer than PREDICT_TIMEOUT for the model, which is busy with or stuck on earlier work"}),
            "headers": {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}},
        "InternalError": error_response("A bug on our side; the message carries the request id, never internals.", {
            "internal_error": "an unexpected exception; quote the request id when reporting it"}),
    }
    errors = {"500": ref("responses", "InternalError")}

    def get(summary: str, ok: dict, **more: dict) -> dict:
        return {"get": {"summary": summary, "responses": {"200": ok, **more, **errors}}}

    model_header = {"description": "the model that answered: its manifest's name (`fast` or `accurate`) @ the first 12 hex digits "
                                   "of its pickle's sha256, e.g. `fast@0123456789ab`",
                    "schema": {"type": "string", "pattern": "^[a-z0-9_-]+@[0-9a-f]{12}$"}}
    example_prediction = {"text": "loving the sunshine today :)", "label": labels[-1], "pred": len(labels) - 1,
                          "probabilities": {label: round(1 / len(labels), 3) for label in labels}, "language": "en",
                          "language_confidence": 1.0, "supported": True, "reason": None}
    paths = {
        "/predict": {"post": {
            "summary": "Classify one tweet (`text`) or a batch (`texts`); with `\"explain\": true`, say why",
            "requestBody": {"required": True, "content": json_content(
                {"oneOf": [ref("schemas", "SingleRequest"), ref("schemas", "BatchRequest")]},
                {"text": "loving the sunshine today :)"})},
            "responses": {
                "200": {"description": "The prediction for `text`, or `{predictions: [...]}` for `texts`",
                        "headers": {"X-Model": model_header},
                        "content": json_content({"oneOf": [ref("schemas", "Prediction"), ref("schemas", "BatchPredictions")]},
                                                example_prediction)},
                "400": ref("responses", "BadRequest"),
                "413": ref("responses", "PayloadTooLarge"),
                "415": ref("responses", "UnsupportedMediaType"),
                "503": ref("responses", "ServiceUnavailable"),
                **errors,
            },
        }},
        "/health": get("Alive and ready: the one probe", {"description": "alive", "content": json_content(ref("schemas", "Status"))}),
        "/model": get("The served model's manifest", {"description": "name, labels, library versions, files, metrics, training data, sha256",
                                                      "headers": {"X-Model": model_header},
                                                      "content": json_content(ref("schemas", "Manifest"))}),
        "/openapi.json": get("This document", {"description": "OpenAPI 3.1", "content": json_content({"type": "object"})}),
        "/": get("Demo page", {"description": "a self-contained HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}),
    }
    if metrics:
        exposition = {"schema": {"type": "string"}}
        paths["/metrics"] = get("Prometheus metrics, added up over all workers", {
            "description": ("requests by endpoint, method and status; latency by endpoint; predictions by label and by language; batch sizes; "
                            "the served model; live workers. Prometheus text format, or OpenMetrics when the Accept header asks for it"),
            "content": {"text/plain": exposition, "application/openmetrics-text": exposition}})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sentiment-nb",
            "version": "1",
            "description": ("Tweet sentiment as a service. Every error is JSON `{\"error\": {\"code\", \"message\", \"request_id\"}}`; "
                            "a path not listed answers 404 `not_found`, a method not listed answers 405 `method_not_allowed` "
                            "with an Allow header. Requests that are not valid HTTP (a garbled request line, a URI over 4 KiB, a header over "
                            "8 KiB) are refused by the server itself, in the same shape: 400, 414, 431. "
                            "Every response carries `X-Request-ID`. `/health` is the one probe, for liveness and readiness alike: "
                            "the server binds its port only once the model is loaded, verified and warmed up, so any answer at all "
                            "means predictions work."),
        },
        "paths": paths,
        "components": {"schemas": schemas, "responses": responses},
    }
