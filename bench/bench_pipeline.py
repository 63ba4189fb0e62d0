"""Benchmark the shipped models against their targets: accuracy on later tweets, behaviour, throughput, latency, training time, size.

Run with `make bench`. Prints Markdown tables: the speed of both models beside VADER's on tweets they never trained on
(bench/speed.py) and where the fast model's time goes; the fast model's accuracy, behaviour, training time and size, and
the claims the model notebook makes about the full-size comparison; then the accurate tier's (models/accurate/, issue
12's targets). Exits 1 when a target is missed or a claim no longer holds.
Needs the shared SemEval corpus (../shared/data/semeval2017-task4a/train.tsv or $SENTIMENT_NB_DATA).
"""
import argparse, pickle, sys, time

from sentiment_nb.behaviour import behaviour_failures, capability_summary, negation_capabilities, run_behaviour
from sentiment_nb.data import TEMPORAL_HOLDOUT, load_semeval, semeval_path, temporal_split
from sentiment_nb.distillation import transfer_set
from sentiment_nb.models import previous_recipe, sentiment_metrics
from sentiment_nb.accurate import ACCURATE_MODEL
from sentiment_nb.pipeline import default_model_path, load_pipeline, model_files, train_pipeline, validation_metrics

from bench.speed import (REFERENCE, Contender, interleaved, language_share, pipeline_predict, speed_table, split_holdout, stage_table,
                         stage_times, vader_predict)

TEMPORAL_TARGET = 0.665


def timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def scored(train, valid, pipeline) -> dict:
    "Fit `pipeline` on `train`, return its metrics on `valid`."
    model = train_pipeline(train.text, train.label, pipeline, progress=False)
    return sentiment_metrics(valid.label, model.predict(valid.text.tolist()))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3, help="speed measurements to take the median of")
    args = ap.parse_args()
    if not semeval_path().exists(): sys.exit(f"{semeval_path()} not found: the benchmark needs the shared corpus")
    df = load_semeval(semeval_path())
    earlier, later = temporal_split(df)

    print("the transfer set: fragments of every tweet, labelled by the accurate tier (cached in .cache/ by `make train`) ...", file=sys.stderr)
    t0 = time.perf_counter(); transfer = transfer_set(df.text, ACCURATE_MODEL, progress=False); labelling_s = time.perf_counter() - t0
    print(f"the recipe on the temporal hold-out ({len(earlier):,} earlier tweets) and the random split, as the manifest measures it ...", file=sys.stderr)
    temporal = validation_metrics(df, progress=False, transfer=transfer)
    random_split = temporal["random_split"]
    print("temporal hold-out: the previous recipe, for the claims ...", file=sys.stderr)
    previous = scored(earlier, later, previous_recipe())
    print(f"training on all {len(df):,} tweets ...", file=sys.stderr)
    train_all_s = timed(lambda: train_pipeline(df.text, df.label, transfer=transfer, progress=False))

    print("the fast recipe on the earlier tweets only, for speed on tweets it never saw ...", file=sys.stderr)
    unseen_blob = pickle.dumps(train_pipeline(earlier.text, earlier.label, transfer=transfer, progress=False))
    speed, stages, speed_verdicts = speed_tables(later, unseen_blob, args.repeats)
    print(speed)
    print(f"\nWhere the fast model's time goes, in one call over the same tweets (trained without the hold-out; median of {args.repeats}):\n")
    print(stage_table(stages) + "\n")

    shipped = load_pipeline()
    behaviour = run_behaviour(shipped)
    capabilities = capability_summary(behaviour).failure_rate
    negation = capabilities[negation_capabilities(behaviour)]
    size_mb = default_model_path().stat().st_size / 1e6

    targets = [  # (measure, result, target, met)
        (f"Macro-averaged recall, temporal hold-out (train: every source but {TEMPORAL_HOLDOUT}; score: {len(later):,} tweets of it)",
         f"{temporal['macro_recall']:.4f}", f">= {TEMPORAL_TARGET}", temporal["macro_recall"] >= TEMPORAL_TARGET),
        ("Macro-averaged recall, stratified random 20% (random_state 0), for comparison", f"{random_split['macro_recall']:.4f}", "", True),
        ("Accuracy / macro-F1 / F1(pos,neg), temporal hold-out",
         f"{temporal['accuracy']:.3f} / {temporal['macro_f1']:.3f} / {temporal['f1_pn']:.3f}", "", True),
        ("Behaviour suite, shipped model: mean failure rate over tests", f"{behaviour.failure_rate.mean():.1%}", "<= 15%",
         behaviour.failure_rate.mean() <= 0.15),
        ("Behaviour suite: worst capability", f"{capabilities.idxmax()} {capabilities.max():.1%}", "<= 30%", capabilities.max() <= 0.30),
        ("Behaviour suite: worst negation capability", f"{negation.idxmax()} {negation.max():.1%}", "<= 25%", negation.max() <= 0.25),
        ("Language identification's share of `predict_pipeline` (the stage table above)",
         f"{language_share(stages):.1%}", "<= 10%", language_share(stages) <= 0.10),
        ("Training on all %s tweets and %s teacher-labelled fragments" % (f"{len(df):,}", f"{len(transfer):,}"), f"{train_all_s:.1f} s", "<= 90 s",
         train_all_s <= 90),
        ("Transfer set: reading it from the cache, or labelling it (once per corpus and teacher)", f"{labelling_s:.1f} s", "", True),
        ("`models/pipeline.pkl` size", f"{size_mb:.1f} MB", "<= 25 MB", size_mb <= 25),
    ]
    print_targets(targets)

    claims = {  # what nbs/02_models.ipynb says about its full-size table
        "the shipped recipe beats the previous one on the temporal hold-out": temporal["macro_recall"] > previous["macro_recall"],
        "the shipped model meets every behaviour target": not behaviour_failures(behaviour),
    }
    print(f"\nprevious recipe, temporal hold-out: macro recall {previous['macro_recall']:.4f}")
    for claim, holds in claims.items(): print(f"claim: {claim}: {'holds' if holds else 'DOES NOT HOLD'}")
    accurate = accurate_targets(later)
    print_targets(accurate, f"\naccurate tier ({ACCURATE_MODEL.relative_to(ACCURATE_MODEL.parent.parent.parent)}):\n")
    missed = ([m for m, _, _, met in targets + accurate if not met] + [c for c, holds in claims.items() if not holds]
              + [t for t, met in speed_verdicts if not met])
    if missed: sys.exit("missed: " + "; ".join(missed))


def print_targets(targets: list, title: str = ""):
    print(f"{title}| measure | result | target |\n|---|---|---|")
    for measure, result, target, met in targets:
        print(f"| {measure} | {result} | {target}{'' if met else ' (missed)'} |")


def speed_tables(later, unseen_blob: bytes, repeats: int) -> tuple[str, list, list]:
    "The speed table (fast model, accurate tier, VADER; bench/speed.py), the fast model's stages, the speed targets' verdicts."
    warm, timed = split_holdout(later)
    fast = "fast model, trained without the hold-out"
    accurate = "accurate tier"
    contenders = [Contender(fast, pipeline_predict(lambda: pickle.loads(unseen_blob)), warm),
                  Contender("fast model, shipped", pipeline_predict(load_pipeline), warm),
                  Contender(accurate, pipeline_predict(lambda: load_pipeline(ACCURATE_MODEL)), warm[:64], singles=200),
                  Contender(REFERENCE, vader_predict, [])]
    print(f"speed: {len(timed):,} hold-out tweets, after {len(warm):,} others, {repeats} repeats ...", file=sys.stderr)
    runs = interleaved(contenders, timed, repeats)
    table, verdicts = speed_table(runs, fast, accurate)
    return table, stage_times(lambda: pickle.loads(unseen_blob), warm, timed, repeats), verdicts


def accurate_targets(later) -> list:
    "The accurate tier on the temporal hold-out (it was trained without it), the behaviour suite, size. Its speed is in the speed table."
    print(f"accurate tier: scoring the {len(later):,} hold-out tweets ...", file=sys.stderr)
    model = load_pipeline(ACCURATE_MODEL)
    metrics = sentiment_metrics(later.label, model.predict(later.text.tolist()))
    behaviour = run_behaviour(model)
    capabilities = capability_summary(behaviour).failure_rate
    negation = capabilities[negation_capabilities(behaviour)]
    size_mb = sum(p.stat().st_size for p in model_files(ACCURATE_MODEL)) / 1e6
    return [
        ("Accurate tier: macro-averaged recall, temporal hold-out", f"{metrics['macro_recall']:.4f}", ">= 0.69", metrics["macro_recall"] >= 0.69),
        ("Accurate tier: accuracy / macro-F1 / F1(pos,neg), temporal hold-out",
         f"{metrics['accuracy']:.3f} / {metrics['macro_f1']:.3f} / {metrics['f1_pn']:.3f}", "", True),
        ("Accurate tier: behaviour suite mean failure rate", f"{behaviour.failure_rate.mean():.1%}", "<= 12%", behaviour.failure_rate.mean() <= 0.12),
        ("Accurate tier: worst capability", f"{capabilities.idxmax()} {capabilities.max():.1%}", "", True),
        ("Accurate tier: worst negation capability", f"{negation.idxmax()} {negation.max():.1%}", "<= 20%", negation.max() <= 0.20),
        ("Accurate tier: files (pickle, manifest, int8 ONNX weights, tokenizer)", f"{size_mb:.1f} MB", "", True),
    ]


if __name__ == "__main__":
    main()
