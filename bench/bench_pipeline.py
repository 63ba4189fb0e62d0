"""Benchmark the shipped recipe: accuracy on the held-out split, throughput, latency, training time, size.

Run with `make bench`. Prints a Markdown table (medians of repeated runs) for the README.
Needs the shared SemEval corpus (../shared/data/semeval2017-task4a/train.tsv or $SENTIMENT_NB_DATA).
"""
import argparse, pickle, statistics, sys, time

import numpy as np

from sentiment_nb.data import load_semeval, semeval_path, train_valid_split
from sentiment_nb.models import sentiment_metrics
from sentiment_nb.pipeline import default_model_path, load_pipeline, predict_pipeline, train_pipeline


def timed(f):
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5, help="batch timings to take the median of")
    ap.add_argument("--single", type=int, default=2000, help="single-tweet calls to time")
    args = ap.parse_args()
    if not semeval_path().exists(): sys.exit(f"{semeval_path()} not found: the benchmark needs the shared corpus")
    df = load_semeval(semeval_path())
    train, valid = train_valid_split(df)

    print(f"training on {len(train):,} tweets (80% split) ...", file=sys.stderr)
    model = train_pipeline(train.text, train.label)
    metrics = sentiment_metrics(valid.label, model.predict(valid.text.tolist()))

    print(f"training on all {len(df):,} tweets ...", file=sys.stderr)
    train_all_s = timed(lambda: train_pipeline(df.text, df.label, progress=False))

    shipped = load_pipeline()
    batch = (df.text.tolist() * 2)[:10_000]
    predict_pipeline(batch, shipped)  # warm-up: WordNet, caches
    batch_s = statistics.median(timed(lambda: predict_pipeline(batch, shipped)) for _ in range(args.repeats))
    singles = df.text.sample(args.single, random_state=1).tolist()
    for t in singles[:200]: predict_pipeline(t, shipped)
    single_ms = statistics.median(timed(lambda t=t: predict_pipeline(t, shipped)) * 1e3 for t in singles)
    size_mb = default_model_path().stat().st_size / 1e6

    rows = [("Macro-averaged recall, held-out stratified 20% (random_state 0)", f"{metrics['macro_recall']:.4f}", ">= 0.68"),
            ("Accuracy / macro-F1 / F1(pos,neg) on the same split", f"{metrics['accuracy']:.3f} / {metrics['macro_f1']:.3f} / {metrics['f1_pn']:.3f}", ""),
            ("`predict_pipeline`, 10,000 tweets in one call", f"{len(batch) / batch_s:,.0f} tweets/s", ">= 25,000 tweets/s"),
            ("`predict_pipeline`, one tweet (median of %d)" % len(singles), f"{single_ms:.3f} ms", "<= 1 ms"),
            ("Training on all %s tweets" % f"{len(df):,}", f"{train_all_s:.1f} s", "<= 90 s"),
            ("`models/pipeline.pkl` size", f"{size_mb:.1f} MB", "<= 25 MB")]
    print("| measure | result | target |\n|---|---|---|")
    for r in rows: print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
