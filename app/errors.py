"""The one JSON error shape, and the one handler that turns every exception into it."""
import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sentiment_nb.pipeline import NotExplainable

from .coalesce import PredictionTimeout
from .requestlog import request_id

log = logging.getLogger("app.errors")


class ApiError(Exception):
    """A failed request: HTTP status, a stable code for programs and a message for people."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, request_id: str) -> dict:
    """The shape of every error this service answers."""
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify(error_body(code, message, request_id()))
    response.status_code = status
    return response


def api_error_from_http(err: HTTPException) -> ApiError:
    """Werkzeug's routing and body-size exceptions, in this API's words."""
    if err.code == 404:
        return ApiError(404, "not_found", f"no endpoint at {request.path}; /openapi.json lists them")
    if err.code == 405:
        allowed = ", ".join(sorted(err.valid_methods or ()))
        return ApiError(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}; allowed: {allowed}")
    if err.code == 413:
        limit = request.max_content_length
        return ApiError(413, "payload_too_large", f"the request body is larger than the limit of {limit} bytes")
    return ApiError(err.code or 500, (err.name or "error").lower().replace(" ", "_"), err.description or err.name)


def discard_unread_body() -> None:
    """Read what is left of the request body (never more than MAX_CONTENT_LENGTH) so that gunicorn can keep the
    connection open for the client's next request; an error answered without reading a large body makes it drop the
    connection, and the client's next request on it fails."""
    try:
        request.stream.read()
    except Exception:  # a broken or over-long body: the connection is closed anyway
        pass


def handle_any_exception(err: Exception) -> Response:
    """Every exception becomes the JSON error shape; unexpected ones are logged and answered without internals."""
    if not (isinstance(err, HTTPException) and err.code == 413):
        discard_unread_body()
    if isinstance(err, HTTPException):
        api_error = api_error_from_http(err)
        response = error_response(api_error.status, api_error.code, api_error.message)
        response.headers.extend((k, v) for k, v in err.get_headers() if k.lower() != "content-type")  # e.g. Allow on 405
        return response
    if isinstance(err, NotExplainable):
        return error_response(400, "explain_unsupported", f"{err}; send the request without \"explain\"")
    if isinstance(err, ApiError):
        return error_response(err.status, err.code, err.message)
    if isinstance(err, PredictionTimeout):
        response = error_response(503, "prediction_timeout", f"{err} (PREDICT_TIMEOUT): the model is busy or stuck; try again")
        response.headers["Retry-After"] = "1"
        return response
    log.exception("unhandled exception", extra={"fields": {"request_id": request_id(), "path": request.path}})
    return error_response(500, "internal_error", f"internal error; quote request id {request_id()} when reporting it")


def install_error_handler(app: Flask) -> None:
    app.register_error_handler(Exception, handle_any_exception)
