"""The ceiling `make bench-http` measures the service against: a Flask app that answers every POST /predict with the same
prediction, served by gunicorn with the service's own settings (app/gunicorn.conf.py). No model, no validation, no log.

    gunicorn -c app/gunicorn.conf.py "bench.constant_app:create_app()"      (from the repository)
"""
from flask import Flask, jsonify

ANSWER = {"text": "what a lovely morning :)", "label": "positive", "pred": 2,
          "probabilities": {"negative": 0.021302, "neutral": 0.157044, "positive": 0.821654}}


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False

    @app.post("/predict")
    def predict():
        return jsonify(ANSWER)

    @app.get("/health")
    def health():
        return jsonify({"status": "alive"})

    return app
