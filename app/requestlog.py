"""One structured (JSON) log line per request: method, path, status, latency, number of texts, request id."""
import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, Response, current_app, g, request

log = logging.getLogger("app.requests")
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's own request id is kept only when it is short and plain, so it cannot smuggle content into logs.
CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON object; fields passed as `extra={"fields": {...}}` become keys."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def ensure_log_handler() -> None:
    """Give the `app` loggers a JSON stderr handler unless the host process configured one already."""
    app_log = logging.getLogger("app")
    if not app_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
        app_log.addHandler(handler)
        app_log.setLevel(logging.INFO)


def request_id() -> str:
    """This request's id: the caller's `X-Request-ID` when it is plain, else a fresh one."""
    if "request_id" not in g:
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = supplied if CALLER_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
    return g.request_id


def start_request_timer() -> None:
    g.started = time.perf_counter()


def log_request(response: Response) -> Response:
    texts = g.get("texts", [])
    fields = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "latency_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
        "n_texts": len(texts),
        "request_id": request_id(),
    }
    if current_app.config["LOG_TEXTS"]:
        fields["texts"] = texts
    log.info("request", extra={"fields": fields})
    response.headers[REQUEST_ID_HEADER] = fields["request_id"]
    return response


def install_request_log(app: Flask) -> None:
    ensure_log_handler()
    app.before_request(start_request_timer)
    app.after_request(log_request)
