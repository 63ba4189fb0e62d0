"""Prometheus metrics at GET /metrics: requests, latency, predictions per label and per language, batch sizes, the served model, workers.

Recorded in one place, after each request, from what the request left in `flask.g` (`predictions`, `batch`).
Under gunicorn (app/gunicorn.conf.py) prometheus_client runs in its multiprocess mode: every worker writes its numbers
to files in PROMETHEUS_MULTIPROC_DIR and the worker that answers /metrics adds up all of them, replaced workers' too.
Elsewhere (Flask's dev server, `create_app()` in tests) the one process keeps them in a registry of the app's own.
"""
import os
import time
from collections import Counter as tally

from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from prometheus_client.exposition import choose_encoder

from .config import StartupError

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# A single tweet takes about a millisecond, a batch of 1,000 tens of milliseconds (the accurate tier: about a second).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
# Label values come only from these bounded sets, so no request can add time series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "unmatched"  # the endpoint label of a path the app has no route for


def multiprocess_mode() -> bool:
    """Whether the numbers of several processes are kept in files and added up: PROMETHEUS_MULTIPROC_DIR names a folder."""
    if MULTIPROC_DIR not in os.environ:
        return False
    if not os.path.isdir(os.environ[MULTIPROC_DIR]):
        raise StartupError(f"{MULTIPROC_DIR} ({os.environ[MULTIPROC_DIR]!r}) is not a directory")
    return True


def check_this_process_counts_in_files() -> None:
    """prometheus_client keeps a process's numbers in PROMETHEUS_MULTIPROC_DIR's files (named after the process id) only if
    the variable was set before it was first imported; a metric was just set, so its file must be there."""
    if not any(name.endswith(f"_{os.getpid()}.db") for name in os.listdir(os.environ[MULTIPROC_DIR])):
        raise StartupError(f"{MULTIPROC_DIR} was set after prometheus_client was imported, so each worker would count "
                           "only its own requests; set it before (app/gunicorn.conf.py does)")


class ServiceMetrics:
    """The service's metrics, their recording after each request, and their exposition."""

    def __init__(self, manifest: dict, multiprocess_files: bool):
        # In multiprocess mode the metrics live in files, not in a registry: /metrics reads the files of all workers.
        registry = None if multiprocess_files else CollectorRegistry()
        self.requests = Counter("sentiment_requests", "HTTP requests answered, by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=registry)
        self.duration = Histogram("sentiment_request_duration_seconds", "Time from the request's arrival in the app to its "
                                  "answer, by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
        self.predictions = Counter("sentiment_predictions", "Tweets classified and answered, by predicted label (each "
                                   "tweet of a batch counts)", ["label"], registry=registry)
        # Bounded: the language identifier's ~100 ISO codes and `und`, each with supported true or false.
        self.languages = Counter("sentiment_predictions_language", "Tweets classified and answered, by detected language and "
                                 "whether the model supports it", ["language", "supported"], registry=registry)
        self.batch_size = Histogram("sentiment_batch_size", 'Tweets per answered batch request ("texts")',
                                    buckets=BATCH_SIZE_BUCKETS, registry=registry)
        # "max": the master sets it before forking and outlives every worker.
        self.model_info = Gauge("sentiment_model_info", "The served model (always 1): its pickle's sha256, when it was "
                                "created, the scikit-learn that made it", ["sha256", "created", "sklearn"],
                                multiprocess_mode="max", registry=registry)
        # "livesum": each serving process counts 1 while it lives (gunicorn's child_exit hook forgets dead workers).
        self.workers = Gauge("sentiment_workers", "Processes serving requests: gunicorn's live workers, else 1",
                             multiprocess_mode="livesum", registry=registry)
        self.model_info.labels(sha256=manifest["sha256"], created=manifest.get("created", ""),
                               sklearn=manifest.get("versions", {}).get("scikit-learn", "")).set(1)
        if multiprocess_files:
            check_this_process_counts_in_files()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            self.count_this_process()
        self.registry = registry
        self.route_paths: frozenset[str] | None = None  # the app's fixed paths, known once the first request arrives

    def count_this_process(self) -> None:
        """Count the calling process in `sentiment_workers` (a gunicorn worker calls this once it is ready)."""
        self.workers.set(1)

    def start_timer(self) -> None:
        g.metrics_started = time.perf_counter()

    def endpoint(self) -> str:
        """The route's rule, also for a method it does not allow; `unmatched` for a path no route has."""
        if request.url_rule is not None:
            return request.url_rule.rule
        if self.route_paths is None:
            self.route_paths = frozenset(rule.rule for rule in current_app.url_map.iter_rules() if not rule.arguments)
        return request.path if request.path in self.route_paths else UNMATCHED

    def record(self, response: Response) -> Response:
        endpoint = self.endpoint()
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(endpoint, method, str(response.status_code)).inc()
        self.duration.labels(endpoint).observe(time.perf_counter() - g.get("metrics_started", time.perf_counter()))
        predictions = g.get("predictions") if 200 <= response.status_code < 300 else None  # a failed answer counts no label
        if predictions:
            for label, n in tally(p["label"] for p in predictions).items():
                self.predictions.labels(label).inc(n)
            for (language, supported), n in tally((p["language"], p["supported"]) for p in predictions).items():
                self.languages.labels(language, str(supported).lower()).inc(n)
            if g.get("batch"):
                self.batch_size.observe(len(predictions))
        return response

    def exposition(self) -> Response:
        """All the metrics in the format the scraper asks for: Prometheus text, or OpenMetrics."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(self.registry), content_type=content_type)


def install_metrics(app: Flask, manifest: dict) -> ServiceMetrics:
    """Record every request's metrics and serve them at GET /metrics."""
    disable_created_metrics()  # multiprocess mode has no `_created` series: leave them out in one process too
    metrics = ServiceMetrics(manifest, multiprocess_mode())
    app.extensions["metrics"] = metrics
    app.before_request(metrics.start_timer)
    app.after_request(metrics.record)
    app.add_url_rule("/metrics", "metrics", metrics.exposition, methods=["GET"])
    return metrics


def count_worker(app: Flask) -> None:
    """gunicorn's post_worker_init hook: a new worker is ready to serve; nothing to do when metrics are off."""
    if "metrics" in app.extensions:
        app.extensions["metrics"].count_this_process()
