"""In-process speed of the models beside VADER's `polarity_scores`, on tweets the models never trained on, in steady state.

`make bench` prints `speed_table` and `stage_table`. A server that has run for a while has seen most words before and
meets some new ones. Each measurement therefore starts from a fresh copy of the model (unpickled: its caches empty, as in
a new worker), warms it up on 10,000 hold-out tweets, then times 10,000 *other* hold-out tweets. The fast model is timed
twice: trained without the hold-out (on the temporal split's earlier sources, so the timed tweets are new to it in every
way), and as shipped (trained on every tweet: its vocabulary has seen them, its caches have not). The accurate tier was
trained without the hold-out; it keeps no cache, so a few tweets warm it up. The contenders are timed in turn within each
repeat, so drift in the machine's load hits all alike; the tables give medians over the repeats, and the ratio to VADER
as the median of each repeat's own ratio.
"""
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

from sentiment_nb.language import detect_languages
from sentiment_nb.models import classifier_proba
from sentiment_nb.pipeline import freeze_long_lived, predict_pipeline

BATCH = 64
N_WARM = N_TIMED = 10_000
REFERENCE = "VADER `polarity_scores`"
FAST_VS_REFERENCE = {"one_call": 1.5, "batches": 1.2}  # issue 24: the fast model's throughput ÷ VADER's, at least
FAST_MAX_SINGLE_MS = 1.0
ACCURATE_MIN_RATE, ACCURATE_MAX_SINGLE_MS = 400, 15.0


@dataclass
class Contender:
    name: str
    load: Callable[[], Callable[[list[str]], list]]  # a new copy's predict function, as a new worker would have it
    warm: list[str]  # what the copy answers before it is timed
    singles: int = 2_000  # one-tweet calls timed per repeat


def vader_predict() -> Callable[[list[str]], list]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    score = SentimentIntensityAnalyzer().polarity_scores
    return lambda texts: [score(t) for t in texts]


def pipeline_predict(load_model: Callable) -> Callable[[], Callable[[list[str]], list]]:
    """A loader of fresh copies of a model, each answering through `predict_pipeline` as the API does."""
    def load():
        model = load_model()
        return lambda texts: predict_pipeline(texts, model)
    return load


def split_holdout(later) -> tuple[list[str], list[str]]:
    """Disjoint warm-up and timed tweets from the temporal hold-out, in a fixed shuffled order."""
    texts = later.text.sample(frac=1, random_state=24).tolist()
    return texts[:N_WARM], texts[N_WARM:N_WARM + N_TIMED]


def fresh(load: Callable):
    """What `load` returns, once the copies loaded before it are collected (each was frozen: see `serving`)."""
    gc.unfreeze()
    gc.collect()
    return load()


def serving(predict: Callable[[list[str]], list], warm: list[str]) -> Callable[[list[str]], list]:
    """`predict` warmed up on `warm`, then its long-lived objects frozen out of the garbage collector's full scans, as the
    API, `sentiment-nb predict` and the Dask workers run a model (`freeze_long_lived`): a full collection would otherwise
    re-scan the libraries and the model during the timed call (15% of a one-call run)."""
    predict(warm)
    freeze_long_lived()
    return predict


def warmed(contender: Contender) -> Callable[[list[str]], list]:
    return serving(fresh(contender.load), contender.warm)


def measure(contender: Contender, timed: list[str]) -> dict[str, float]:
    """One repeat: tweets/s in one call and in batches of 64 (each on its own fresh copy), and one tweet's median latency."""
    def rate(run) -> float:
        predict = warmed(contender)
        t0 = time.perf_counter()
        run(predict)
        return len(timed) / (time.perf_counter() - t0)
    one_call = rate(lambda predict: predict(timed))
    batches = rate(lambda predict: [predict(timed[i:i + BATCH]) for i in range(0, len(timed), BATCH)])
    predict, latencies = warmed(contender), []
    for text in timed[:contender.singles]:
        t0 = time.perf_counter()
        predict([text])
        latencies.append(time.perf_counter() - t0)
    return {"one_call": one_call, "batches": batches, "single_ms": statistics.median(latencies) * 1e3}


def interleaved(contenders: list[Contender], timed: list[str], repeats: int) -> dict[str, list[dict]]:
    """Each contender measured once per repeat, in turn."""
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    for repeat in range(repeats):
        for contender in contenders:
            r = measure(contender, timed)
            runs[contender.name].append(r)
            print(f"speed {repeat + 1}/{repeats}, {contender.name}: {r['one_call']:,.0f} tweets/s in one call, "
                  f"{r['batches']:,.0f} in batches of {BATCH}, {r['single_ms']:.3f} ms for one", file=sys.stderr)
    return runs


SPEED_ROWS = [("one_call", f"one call over {N_TIMED:,} tweets, tweets/s"), ("batches", f"batches of {BATCH}, tweets/s"),
              ("single_ms", "one tweet per call, median ms")]


def speed_table(runs: dict[str, list[dict]], fast: str, accurate: str) -> tuple[str, list[tuple[str, bool]]]:
    """The Markdown table, and the targets it decides as (target, met) pairs."""
    def median(name, key): return statistics.median(r[key] for r in runs[name])
    lines = [f"| steady state, {N_TIMED:,} unseen hold-out tweets | " + " | ".join(runs) + f" | {fast} ÷ VADER | targets |",
             "|---|" + "---:|" * (len(runs) + 1) + "---|"]
    verdicts = []
    for key, label in SPEED_ROWS:
        speedup = statistics.median(v[key] / f[key] if key == "single_ms" else f[key] / v[key]
                                    for f, v in zip(runs[fast], runs[REFERENCE]))
        if key == "single_ms":
            targets = [(f"{fast} ≤ {FAST_MAX_SINGLE_MS:g} ms", median(fast, key) <= FAST_MAX_SINGLE_MS),
                       (f"{accurate} ≤ {ACCURATE_MAX_SINGLE_MS:g} ms", median(accurate, key) <= ACCURATE_MAX_SINGLE_MS)]
        else:
            targets = [(f"{fast} ≥ {FAST_VS_REFERENCE[key]:g}× VADER", speedup >= FAST_VS_REFERENCE[key]),
                       (f"{accurate} ≥ {ACCURATE_MIN_RATE} tweets/s", median(accurate, key) >= ACCURATE_MIN_RATE)]
        verdicts += [(f"{target}, {label}", met) for target, met in targets]
        cells = [f"{median(name, key):,.{3 if key == 'single_ms' else 0}f}" for name in runs]
        shown = "; ".join(target + ("" if met else " (**missed**)") for target, met in targets)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {speedup:.2f}× | {shown} |")
    return "\n".join(lines), verdicts


def stage_times(load_model: Callable, warm: list[str], timed: list[str], repeats: int) -> list[tuple[str, float]]:
    """Microseconds per tweet in each stage of `predict_pipeline(timed)` on fresh warmed copies (medians over repeats):
    each step of the pipeline, its classifier, language identification, and the rest of `predict_pipeline` (input and
    content checks, calibration, one dict per tweet). A stage without an entry of its own in `run_stages` shows in the rest."""
    runs = [run_stages(load_model, warm, timed) for _ in range(repeats)]
    return [(name, statistics.median(run[i][1] for run in runs) / len(timed) * 1e6) for i, (name, _) in enumerate(runs[0])]


def run_stages(load_model: Callable, warm: list[str], timed: list[str]) -> list[tuple[str, float]]:
    model = fresh(load_model)
    serving(lambda texts: predict_pipeline(texts, model), warm)
    stages, X = [], timed
    for name, step in model.steps[:-1]:
        t0 = time.perf_counter()
        X = step.transform(X)
        stages.append((f"{name}: `{type(step).__name__}`", time.perf_counter() - t0))
    name, classifier = model.steps[-1]
    t0 = time.perf_counter()
    classifier_proba(classifier, X)
    stages.append((f"{name}: `{type(classifier).__name__}`", time.perf_counter() - t0))
    t0 = time.perf_counter()
    detect_languages(timed)
    stages.append((LANGUAGE_STAGE, time.perf_counter() - t0))
    model = fresh(load_model)  # the whole call again, on a copy warmed the same way: what it adds to the stages above
    serving(lambda texts: predict_pipeline(texts, model), warm)
    t0 = time.perf_counter()
    predict_pipeline(timed, model)
    whole = time.perf_counter() - t0
    stages.append(("`predict_pipeline` besides them: input check, content check, calibration, one dict per tweet",
                   max(0.0, whole - sum(s for _, s in stages))))
    return stages


LANGUAGE_STAGE = "language identification: `detect_languages`"


def language_share(stages: list[tuple[str, float]]) -> float:
    """Language identification's share of the whole `predict_pipeline` call, from `stage_times`."""
    return dict(stages)[LANGUAGE_STAGE] / sum(us for _, us in stages)


def stage_table(stages: list[tuple[str, float]]) -> str:
    total = sum(us for _, us in stages)
    lines = ["| stage (one call, steady state) | µs per tweet | share |", "|---|---:|---:|"]
    lines += [f"| {name} | {us:.1f} | {us / total:.0%} |" for name, us in stages]
    lines.append(f"| all of `predict_pipeline` | {total:.1f} | 100% |")
    return "\n".join(lines)
