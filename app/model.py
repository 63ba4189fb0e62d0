"""The model the service answers with: loaded once, verified by the core, warmed up before the server binds its port."""
from dataclasses import dataclass, field
from typing import Any

from sentiment_nb.pipeline import (NotExplainable, default_model_path, explain_pipeline, linear_classifier, load_pipeline, model_id,
                                   predict_pipeline, read_manifest)

from .coalesce import Coalescer
from .config import StartupError

# Our own example tweets, one per class, so the warm-up exercises the whole pipeline.
WARM_UP_TEXTS = [
    "what a lovely morning, coffee and sunshine :) #happy",
    "my train is late AGAIN, worst commute ever @transit",
    "the meeting moved to 3pm on thursday http://example.com/agenda",
]


class ModelLoadError(StartupError):
    """The model cannot be served; the message says which file and why, on one line."""


@dataclass
class ServedModel:
    pipeline: Any
    manifest: dict
    path: str
    timeout: float | None = None  # seconds a single tweet waits for its answer before a 503 (PREDICT_TIMEOUT); None: no limit
    coalescer: Coalescer = field(init=False)
    explain_coalescer: Coalescer = field(init=False)

    def __post_init__(self):
        self.coalescer = Coalescer(self.predict_now)
        self.explain_coalescer = Coalescer(self.explain_now)

    @property
    def model_id(self) -> str:
        """`name@sha256-prefix`, sent as the `X-Model` header so every answer says which model gave it."""
        return model_id(self.manifest)

    def predict_now(self, texts: list[str]) -> list[dict]:
        return predict_pipeline(texts, pipeline=self.pipeline)

    def predict(self, texts: list[str]) -> list[dict]:
        """Predictions for `texts`; single tweets share pipeline calls with concurrent requests."""
        return self.coalescer.predict(texts, self.timeout) if len(texts) == 1 else self.predict_now(texts)

    def explain_now(self, texts: list[str]) -> list[dict]:
        return explain_pipeline(texts, pipeline=self.pipeline)

    def explain(self, texts: list[str]) -> list[dict]:
        """`predict` with explanations, single tweets coalesced the same way; `NotExplainable` (a 400) for a model that is not linear."""
        return self.explain_coalescer.predict(texts, self.timeout) if len(texts) == 1 else self.explain_now(texts)

    def warm_up(self) -> None:
        """Predict once end to end, so lazy initialisation happens before clients arrive, not in their requests."""
        labels = {p["label"] for p in self.predict_now(WARM_UP_TEXTS)}
        if not labels <= set(self.manifest["labels"]):
            raise ValueError(f"the model predicts {sorted(labels)}, its manifest lists {self.manifest['labels']}")
        try:
            linear_classifier(self.pipeline)
        except NotExplainable:
            return
        self.explain_now(WARM_UP_TEXTS[:1])  # builds the feature names once, before gunicorn forks its workers


def load_served_model(path: str | None = None,  # the pickled pipeline; None: the core's default (shipped) model
                      timeout: float | None = None,  # PREDICT_TIMEOUT: seconds a single tweet waits for its answer
                      ) -> ServedModel:
    """The verified, warmed-up model, or a `ModelLoadError` that stops start-up."""
    path = str(path or default_model_path())
    try:
        served = ServedModel(load_pipeline(path), read_manifest(path), path, timeout)
        served.warm_up()
    except Exception as err:  # whatever the cause, the service must not start half-alive
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise ModelLoadError(f"cannot serve the model {path}: {reason}") from err
    return served
