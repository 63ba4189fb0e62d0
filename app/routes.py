"""The HTTP endpoints; each one parses and validates, asks the model, shapes the answer."""
from flask import Blueprint, Response, current_app, g, jsonify, request

from .model import ServedModel
from .validation import parse_predict_request

api = Blueprint("api", __name__)

# The demo page's own files are all it may load: it works offline and nothing leaves the page.
DEMO_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def served_model() -> ServedModel:
    return current_app.extensions["sentiment_model"]


@api.post("/predict")
def predict():
    config = current_app.config
    parsed = parse_predict_request(request, config["MAX_TEXT_LENGTH"], config["MAX_BATCH_SIZE"])
    g.texts = parsed.texts
    served = served_model()
    predictions = served.explain(parsed.texts) if parsed.explain else served.predict(parsed.texts)
    g.predictions, g.batch = predictions, parsed.batch  # for the metrics, counted once the answer is known to be a success
    response = jsonify({"predictions": predictions} if parsed.batch else predictions[0])
    response.headers["X-Model"] = served.model_id
    return response


@api.get("/health")
def health():
    # The one probe, for liveness and readiness alike: gunicorn binds its port only after the master has loaded,
    # verified and warmed up the model (preload_app), so any answer at all comes from a process ready to predict.
    return jsonify({"status": "alive"})


@api.get("/model")
def model_manifest():
    served = served_model()
    response = jsonify(served.manifest)
    response.headers["X-Model"] = served.model_id
    return response


@api.get("/openapi.json")
def openapi_document():
    return jsonify(current_app.extensions["openapi"])


@api.get("/")
def demo_page() -> Response:
    response = current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = DEMO_PAGE_POLICY
    return response
