"""Benchmark scaling out: Dask batch-scoring throughput, and out-of-core training time, peak memory and recall.

Run with `make bench-scale`. Prints Markdown tables (which `make bench-scale` adds to bench/RESULTS.md) and writes
the raw figures to bench-results/scale.json. Needs the shared SemEval corpus; the large corpora are
resampled from it into a temporary directory (never into the repository) and deleted afterwards.
Every measured run is a fresh process, so each pays its own start-up (model load, WordNet, cluster) and its
peak RSS is its own. Scoring reports end-to-end throughput (start-up included) and throughput while scoring
(from the first partition or chunk to the last, the model loaded and warm). Dask is measured twice: starting its own
local cluster (what `predict --engine dask` does alone) and joining a two-worker cluster that is already running
(`--scheduler`), after one unmeasured job has loaded the model on its workers. The machine's other load shows in the absolute figures: compare ratios within one run.
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


# ---- what each child process runs: one measured job, then its figures as a JSON line on stdout
def child(job: str, src: str, out: str, workers: str, model: str = ""):
    """`workers`: the local cluster's size, or the address of a running scheduler to join; `model`: a pickle, or "" for the default."""
    model = model or None
    t0 = time.perf_counter()
    scoring = None  # seconds spent labelling, once the model is loaded and warm
    if job == "score-local":
        from sentiment_nb.cli import predict_file
        from sentiment_nb.pipeline import load_pipeline, predict_pipeline
        predict_pipeline(["warm-up"], load_pipeline(model))  # WordNet and the model, as each dask worker warms up before scoring
        t1 = time.perf_counter()
        rows = predict_file(src, out, model, progress=False, overwrite=True)  # each repeat replaces the last one's output
        scoring = time.perf_counter() - t1
    elif job == "score-dask":
        from sentiment_nb.dask_scoring import predict_dask
        cluster = {"scheduler": workers} if workers.startswith("tcp://") else {"n_workers": int(workers)}
        summary = predict_dask(src, out, model_path=model, out_format="csv", progress=False, **cluster)
        assert summary["complete"], summary["failed_partitions"]
        rows, scoring = summary["rows"], summary["scoring_seconds"]
    elif job == "train-out-of-core":
        from sentiment_nb.out_of_core import train_out_of_core
        rows = train_out_of_core(src, out, fmt="sentiment140", progress=False)["training_data"]["rows"]
    elif job == "train-full-batch":  # what `sentiment-nb train` fits, once (it also fits on its validation splits first)
        from sentiment_nb.data import load_tweets
        from sentiment_nb.models import build_pipeline
        from sentiment_nb.pipeline import save_pipeline, train_pipeline
        df = load_tweets(src, "sentiment140", dedupe=False)
        save_pipeline(train_pipeline(df.text, df.label, build_pipeline(), progress=False), out)
        rows = len(df)
    else: raise SystemExit(f"unknown job {job}")
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "scoring_seconds": scoring,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(job: str, src, out, workers=0, timeout: float = 3600, model="") -> dict:
    """Run one job in a fresh process; its rows, seconds and peak RSS, or `timed_out`."""
    cmd = [sys.executable, "-m", "bench.bench_scale", "--child", job, str(src), str(out), str(workers), str(model)]
    try: done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired: return {"timed_out": timeout}
    if done.returncode: raise RuntimeError(f"{job} on {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_run(job, src, out, workers, repeats, model="") -> dict:
    runs = [measure(job, src, out if job == "score-local" else f"{out}-{i}", workers, model=model) for i in range(repeats)]
    return {"rows": runs[0]["rows"], "seconds": statistics.median(r["seconds"] for r in runs),
            "scoring_seconds": statistics.median(r["scoring_seconds"] for r in runs), "runs": len(runs)}


def scoring(corpus, tmp: Path, sizes, repeats) -> list[dict]:
    from sentiment_nb.dask_scoring import dask_client
    from tests.support import resample_tweets
    rows = []
    for n in sizes:
        src = tmp / f"archive-{n}.csv"
        archive = resample_tweets(corpus, n, random_state=n)
        pd.DataFrame({"id": [f"{i:012d}" for i in range(n)], "text": archive.text}).to_csv(src, index=False)
        print(f"scoring {n:,} tweets ...", file=sys.stderr)
        single = median_run("score-local", src, tmp / f"scored-{n}.csv", 0, repeats)
        rows.append({"tweets": n, "engine": "single process (`predict --engine local`)", "workers": 1, **single})
        for workers in (1, 2):
            run = median_run("score-dask", src, tmp / f"scored-{n}-w{workers}", workers, repeats)
            rows.append({"tweets": n, "engine": "Dask, starting its LocalCluster", "workers": workers, **run})
        with dask_client(n_workers=2) as running:
            address = running.scheduler.address
            # a first job, not counted, loads the model on the workers; it scores other tweets than the measured file
            warm_up = tmp / "warm-up.csv"
            pd.DataFrame({"text": resample_tweets(corpus, 10_000, random_state=n + 1).text}).to_csv(warm_up, index=False)
            measure("score-dask", warm_up, tmp / f"warm-up-{n}", address)
            run = median_run("score-dask", src, tmp / f"scored-{n}-running", address, repeats)
        rows.append({"tweets": n, "engine": "Dask, joining a running cluster (`--scheduler`)", "workers": 2, **run})
        for r in rows[-4:]:
            r["tweets_per_s"], r["scoring_tweets_per_s"] = r["rows"] / r["seconds"], r["rows"] / r["scoring_seconds"]
            r["vs_single"] = r["tweets_per_s"] / (single["rows"] / single["seconds"])
            r["scoring_vs_single"] = r["scoring_tweets_per_s"] / (single["rows"] / single["scoring_seconds"])
    return rows


def accurate_scoring(corpus, tmp: Path, n: int, repeats: int) -> list[dict]:
    "The accurate tier (models/accurate/): one process against Dask with one worker per core, where its cost per tweet makes them pay."
    from sentiment_nb.accurate import ACCURATE_MODEL
    from tests.support import resample_tweets
    src = tmp / f"accurate-{n}.csv"
    pd.DataFrame({"text": resample_tweets(corpus, n, random_state=n).text}).to_csv(src, index=False)
    print(f"scoring {n:,} tweets with the accurate tier ...", file=sys.stderr)
    single = median_run("score-local", src, tmp / f"accurate-scored-{n}.csv", 0, repeats, ACCURATE_MODEL)
    rows = [{"tweets": n, "engine": "accurate tier, single process", "workers": 1, **single}]
    for workers in (1, 2):
        run = median_run("score-dask", src, tmp / f"accurate-scored-{n}-w{workers}", workers, repeats, ACCURATE_MODEL)
        rows.append({"tweets": n, "engine": "accurate tier, Dask starting its LocalCluster", "workers": workers, **run})
    for r in rows:
        r["tweets_per_s"], r["scoring_tweets_per_s"] = r["rows"] / r["seconds"], r["rows"] / r["scoring_seconds"]
        r["vs_single"] = r["tweets_per_s"] / (single["rows"] / single["seconds"])
        r["scoring_vs_single"] = r["scoring_tweets_per_s"] / (single["rows"] / single["scoring_seconds"])
    return rows


def training(corpus, tmp: Path, sizes, full_batch_max: int, timeout: float) -> list[dict]:
    from tests.support import resample_tweets, write_sentiment140
    rows = []
    for n in sizes:
        tweets = resample_tweets(corpus, n, random_state=n)
        src = write_sentiment140(tmp / f"s140-{n}.csv", zip(tweets.text, tweets.label))
        for path in ("out-of-core", "full-batch"):
            if path == "full-batch" and n > full_batch_max:
                rows.append({"tweets": n, "path": path, "skipped": f"> --full-batch-max {full_batch_max:,}"}); continue
            print(f"training {path} on {n:,} tweets ...", file=sys.stderr)
            rows.append({"tweets": n, "path": path, **measure(f"train-{path}", src, tmp / f"model-{path}-{n}" / "pipeline.pkl", timeout=timeout)})
        src.unlink()
    return rows


def recall(corpus, tmp: Path) -> dict:
    from sentiment_nb.data import train_valid_split
    from sentiment_nb.models import sentiment_metrics
    from sentiment_nb.pipeline import train_pipeline
    from sentiment_nb.out_of_core import train_out_of_core
    train, valid = train_valid_split(corpus)
    train.to_csv(tmp / "train.tsv", sep="\t", index=False)
    print(f"recall: both recipes on the same {len(train):,}-tweet split ...", file=sys.stderr)
    out_of_core = train_out_of_core(tmp / "train.tsv", tmp / "recall" / "pipeline.pkl", valid=valid, progress=False)["metrics"]
    in_memory = sentiment_metrics(valid.label, train_pipeline(train.text, train.label, progress=False).predict(valid.text.tolist()))
    return {"train_rows": len(train), "valid_rows": len(valid), "out_of_core": out_of_core, "in_memory": in_memory}


def tables(results: dict) -> str:
    load = f"load average {results['load_average_at_start'][0]:.1f} at the start, {results['load_average_at_end'][0]:.1f} at the end, {results['cpus']} CPUs"
    lines = [load, "", "| tweets | engine | workers | seconds, end to end | tweets/s, end to end | × single | tweets/s, scoring | × single |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['tweets']:,} | {r['engine']} | {r['workers']} | {r['seconds']:.1f} | {r['tweets_per_s']:,.0f} | {r['vs_single']:.2f} "
              f"| {r['scoring_tweets_per_s']:,.0f} | {r['scoring_vs_single']:.2f} |" for r in results["scoring"]]
    lines += ["", "| tweets | path | seconds | seconds per 100k | peak RSS (MB) |", "|---:|---|---:|---:|---:|"]
    for r in results["training"]:
        if "skipped" in r or "timed_out" in r:
            lines.append(f"| {r['tweets']:,} | {r['path']} | not run ({r.get('skipped') or 'timed out after %d s' % r['timed_out']}) | | |")
        else: lines.append(f"| {r['tweets']:,} | {r['path']} | {r['seconds']:.1f} | {r['seconds'] / r['tweets'] * 1e5:.1f} | {r['peak_rss_mb']:,.0f} |")
    rc = results.get("recall")
    if rc:
        lines += ["", f"| model (trained on {rc['train_rows']:,} tweets) | macro recall | accuracy | macro F1 |", "|---|---:|---:|---:|"]
        for name, m in (("out of core: hashed n-grams + lexicon, SGD (`train --out-of-core`)", rc["out_of_core"]),
                        ("in memory: the shipped recipe (`train`)", rc["in_memory"])):
            lines.append(f"| {name} | {m['macro_recall']:.4f} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--score-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--train-sizes", type=int, nargs="*", default=[50_000, 200_000, 800_000, 1_600_000])
    ap.add_argument("--full-batch-max", type=int, default=1_600_000, help="largest corpus the in-memory path is trained on")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before a training run is given up")
    ap.add_argument("--repeats", type=int, default=1, help="scoring runs per configuration (the median is reported)")
    ap.add_argument("--skip-recall", action="store_true")
    ap.add_argument("--accurate-size", type=int, default=10_000, help="tweets the accurate tier scores (0 skips it)")
    args = ap.parse_args()
    from sentiment_nb.data import load_semeval, semeval_path
    if not semeval_path().exists(): sys.exit(f"{semeval_path()} not found: the benchmark resamples the shared corpus")
    corpus = load_semeval(semeval_path())
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        results = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                   "scoring": scoring(corpus, Path(tmp), args.score_sizes, args.repeats)
                              + (accurate_scoring(corpus, Path(tmp), args.accurate_size, args.repeats) if args.accurate_size else []),
                   "training": training(corpus, Path(tmp), args.train_sizes, args.full_batch_max, args.timeout)}
        if not args.skip_recall: results["recall"] = recall(corpus, Path(tmp))
    results["load_average_at_end"] = os.getloadavg()
    (ROOT / "bench-results").mkdir(exist_ok=True)
    (ROOT / "bench-results" / "scale.json").write_text(json.dumps(results, indent=2))
    print(tables(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]: child(*sys.argv[2:7])
    else: main()
