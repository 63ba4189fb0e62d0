"""The sentiment-nb web service: `create_app()` builds it, gunicorn serves it (`make serve`, app/gunicorn.conf.py).

Installed with the project, so from any directory of its environment:
    gunicorn -c app/gunicorn.conf.py "app:create_app()"     production (`make serve`; the config path is the repository's)
    flask --app app run --debug                           Flask's development server (`make dev-serve`)
"""
from flask import Flask

from sentiment_nb.pipeline import freeze_long_lived

from .config import load_settings
from .errors import install_error_handler
from .metrics import install_metrics
from .model import load_served_model
from .openapi import build_openapi
from .requestlog import install_request_log
from .routes import api


def create_app(config: dict | None = None,  # settings that win over the environment (see app/config.py for each)
               ) -> Flask:
    """The Flask app with the model loaded, verified and warmed up; raises if the model cannot be served."""
    settings = load_settings(config)
    app = Flask(__name__)
    app.config.update(settings)
    app.json.sort_keys = False  # keep the tutorial's key order: text, label, pred, probabilities
    app.json.ensure_ascii = False  # emoji stay emoji; validation has rejected what UTF-8 cannot carry
    served = load_served_model(settings["SENTIMENT_MODEL"], settings["PREDICT_TIMEOUT"])
    freeze_long_lived()  # full collections stop pausing requests to re-scan the model, forked workers stop copying its pages
    app.extensions["sentiment_model"] = served
    app.extensions["openapi"] = build_openapi(settings["MAX_CONTENT_LENGTH"], settings["MAX_TEXT_LENGTH"],
                                              settings["MAX_BATCH_SIZE"], list(served.manifest["labels"]),
                                              metrics=settings["METRICS"])
    install_request_log(app)
    if settings["METRICS"]:
        install_metrics(app, served.manifest)
    install_error_handler(app)
    app.after_request(forbid_content_sniffing)
    app.register_blueprint(api)
    return app


def forbid_content_sniffing(response):
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
