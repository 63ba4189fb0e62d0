"""Service settings: each one an environment variable with a documented default."""
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import click


class StartupError(click.ClickException, RuntimeError):
    """The service cannot start. Both launchers print the message as one `Error: …` line and exit non-zero:
    gunicorn reports a RuntimeError that way, and the `flask` command a ClickException."""


class ConfigError(StartupError):
    """A setting has a value the service cannot run with; the message names it."""


def positive_int(name: str, raw: Any) -> int:
    """`raw` as an integer > 0, or a `ConfigError` naming the setting."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {raw!r}")
    return value


def flag(name: str, raw: Any) -> bool:
    """`raw` as a boolean: 1/true/yes/on or 0/false/no/off (any case)."""
    if isinstance(raw, bool):
        return raw
    words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False, "": False}
    try:
        return words[str(raw).strip().lower()]
    except KeyError:
        raise ConfigError(f"{name} must be one of 1/0, true/false, yes/no, on/off, got {raw!r}") from None


def optional_path(name: str, raw: Any) -> str | None:
    """`raw` as a path string; empty means "use the default"."""
    return str(raw) if raw not in (None, "") else None


@dataclass(frozen=True)
class Setting:
    name: str  # environment variable and Flask config key
    default: Any
    parse: Callable[[str, Any], Any]


SETTINGS = (
    # Path of the pickled pipeline (its manifest sits beside it); default: the core's, i.e. the shipped models/pipeline.pkl.
    Setting("SENTIMENT_MODEL", None, optional_path),
    # Largest request body in bytes, 4 MiB: a full batch of tweets with room to spare. Larger: 413 payload_too_large.
    Setting("MAX_CONTENT_LENGTH", 4 * 1024 * 1024, positive_int),
    # Longest text in characters; a tweet has at most 280. Longer: 413 text_too_long.
    Setting("MAX_TEXT_LENGTH", 1_000, positive_int),
    # Most texts in one request. More: 413 batch_too_large.
    Setting("MAX_BATCH_SIZE", 1_000, positive_int),
    # Put the submitted texts in the request log lines; off by default, so tweets stay out of the logs.
    Setting("LOG_TEXTS", False, flag),
    # Seconds a single-tweet request waits for the model, which answers concurrent ones together; then 503 prediction_timeout.
    Setting("PREDICT_TIMEOUT", 10, positive_int),
    # Count requests and predictions and serve them at GET /metrics (Prometheus); 0 turns both off (/metrics is then 404).
    Setting("METRICS", True, flag),
)


def load_settings(overrides: Mapping[str, Any] | None = None,  # explicit values, e.g. from tests; win over the environment
                  environ: Mapping[str, str] = os.environ,
                  ) -> dict[str, Any]:
    """Every setting from `overrides`, else the environment, else its default; parsed and checked."""
    overrides = dict(overrides or {})
    settings = {}
    for s in SETTINGS:
        raw = overrides.pop(s.name, environ.get(s.name, s.default))
        settings[s.name] = s.default if raw is s.default else s.parse(s.name, raw)
    return {**settings, **overrides}
