"""What a /predict request must be, checked in one place; each failure an `ApiError` saying what and where."""
import json
import re
from dataclasses import dataclass
from typing import Any

from flask import Request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .errors import ApiError

# json.loads pairs valid surrogate escapes into one character, so any surrogate left over is unpaired.
UNSERVABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    batch: bool  # the client sent `texts` and gets `{"predictions": [...]}` back
    explain: bool = False  # each prediction also says what pushed it toward its label


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def reject_constant(name: str):
    raise ApiError(400, "invalid_json", f"{name} is not valid JSON")


def read_json_body(request: Request) -> Any:
    """The request body parsed as strict JSON (UTF-8, no NaN/Infinity)."""
    if not request.is_json:
        got = request.mimetype or "no Content-Type"
        raise ApiError(415, "unsupported_media_type", f"send the body as application/json, got {got}")
    try:
        raw = request.get_data(cache=False)  # a Content-Length over MAX_CONTENT_LENGTH gets 413 from Werkzeug here
    except HTTPException:
        raise
    except Exception as err:  # the server could not decode what the client sent, e.g. broken chunked encoding
        raise ApiError(400, "unreadable_body", f"the request body could not be read: {str(err)[:200]}") from None
    if request.content_length is None and len(raw) >= (request.max_content_length or float("inf")):
        # Werkzeug silently cuts a streamed (chunked) body at the limit; one that reaches it may be longer.
        raise RequestEntityTooLarge()
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the body is empty; send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=reject_constant)
    except UnicodeDecodeError as err:
        raise ApiError(400, "invalid_json", f"the body is not valid UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ApiError(400, "invalid_json", f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the JSON is nested too deeply") from None
    except ValueError as err:  # e.g. an integer longer than Python's int conversion limit (4,300 digits)
        raise ApiError(400, "invalid_json", f"the JSON has a value that cannot be read: {str(err).split(':')[0]}") from None


def check_text(value: Any, where: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise ApiError(400, "invalid_type", f"{where} must be a string, got {json_type(value)}")
    if len(value) > max_length:
        raise ApiError(413, "text_too_long", f"{where} has {len(value)} characters; the limit is {max_length}")
    bad = UNSERVABLE_CHARACTER.search(value)
    if bad:
        what = "a NUL character" if bad.group() == "\x00" else f"an unpaired surrogate U+{ord(bad.group()):04X}"
        raise ApiError(400, "invalid_text", f"{where} contains {what} at position {bad.start()}")
    return value


def check_batch(value: Any, max_batch_size: int, max_length: int) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, "invalid_type", f"texts must be an array of strings, got {json_type(value)}")
    if not value:
        raise ApiError(400, "empty_batch", "texts is empty; send at least one string")
    if len(value) > max_batch_size:
        raise ApiError(413, "batch_too_large", f"texts has {len(value)} items; the limit is {max_batch_size}")
    return [check_text(text, f"texts[{i}]", max_length) for i, text in enumerate(value)]


def check_explain(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_type", f"explain must be true or false, got {json_type(value)}")
    return value


def parse_predict_request(request: Request, max_text_length: int, max_batch_size: int) -> PredictRequest:
    """The texts to classify from a `{"text": ...}` or `{"texts": [...]}` body, optionally with `"explain": true`."""
    body = read_json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f'the body must be a JSON object with "text" or "texts", got {json_type(body)}')
    unknown = sorted(set(body) - {"text", "texts", "explain"})
    if unknown:
        raise ApiError(400, "unknown_field", f'unknown field {unknown[0][:40]!r}; send "text" or "texts", and optionally "explain"')
    if "text" in body and "texts" in body:
        raise ApiError(400, "conflicting_fields", 'send either "text" or "texts", not both')
    explain = check_explain(body.get("explain", False))
    if "text" in body:
        return PredictRequest([check_text(body["text"], "text", max_text_length)], batch=False, explain=explain)
    if "texts" in body:
        return PredictRequest(check_batch(body["texts"], max_batch_size, max_text_length), batch=True, explain=explain)
    raise ApiError(400, "missing_field", 'the body has neither "text" nor "texts"')
