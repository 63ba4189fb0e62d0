"""The `sentiment-nb` console script, run as a real subprocess."""
import json, os, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from sentiment_nb.pipeline import default_model_path, load_pipeline, predict_pipeline, read_manifest
from tests.cli import run_cli
from tests.tweets import LABELLED, NEGATIVE, POSITIVE, write_semeval, write_sentiment140


def run(*args, **kw):
    return run_cli(*args, timeout=300, **kw)


@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().exists():
        pytest.skip("no shipped model")
    return default_model_path()


def test_train_then_evaluate_on_our_tweets(tmp_path):
    data = write_semeval(tmp_path / "train.tsv", LABELLED * 6)
    out = tmp_path / "m" / "pipeline.pkl"
    r = run("train", data, "--out", out, "--valid-size", "0")
    assert r.returncode == 0, r.stderr
    assert "training" in r.stderr  # the progress bar
    m = read_manifest(out)
    assert m["training_data"]["rows"] == len(LABELLED) and m["training_data"]["files"][0]["name"] == "train.tsv"
    r = run("evaluate", write_sentiment140(tmp_path / "s140.csv", [(t.encode("latin-1", "ignore").decode("latin-1"), l) for t, l in LABELLED]), "--model", out)
    assert r.returncode == 0, r.stderr
    assert "macro_recall" in r.stdout


def test_train_out_of_core_validates_and_reports_its_model(tmp_path):
    data = write_semeval(tmp_path / "train.tsv", LABELLED * 8)
    out = tmp_path / "m" / "pipeline.pkl"
    r = run("train", "--out-of-core", data, "--out", out, "--chunksize", "50")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stderr and "macro recall" in r.stderr, r.stderr
    m = read_manifest(out)
    assert m["recipe"]["out_of_core"] and m["metrics"]["valid_rows"] + m["training_data"]["rows"] == len(LABELLED) * 8
    assert [p["label"] for p in predict_pipeline([POSITIVE[0], NEGATIVE[0]], load_pipeline(out))] == ["positive", "negative"]


def test_predict_csv_keeps_columns_and_matches_the_library(tmp_path, shipped):
    src = tmp_path / "in.csv"
    texts = POSITIVE + NEGATIVE
    pd.DataFrame({"id": range(len(texts)), "user": "me", "text": texts}).to_csv(src, index=False)
    r = run("predict", "--input", src, "--output", tmp_path / "out.csv", "--chunksize", "3")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert out.columns.tolist() == ["id", "user", "text", "label", "p_negative", "p_neutral", "p_positive"]
    assert out.id.tolist() == list(range(len(texts)))
    assert out.label.tolist() == [p["label"] for p in predict_pipeline(texts, load_pipeline(shipped))]


def test_predict_jsonl_to_stdout(tmp_path, shipped):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(POSITIVE)), encoding="utf-8")
    r = run("predict", "--input", src)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [row["n"] for row in rows] == list(range(len(POSITIVE))) and all(row["label"] for row in rows)


def test_predict_memory_stays_flat_on_a_big_file(tmp_path, shipped):
    """200k lines scored in 10k-line chunks: peak RSS must not grow with the input (compared with 20k lines)."""
    def peak_rss_mb(n):
        src = tmp_path / f"big{n}.txt"
        src.write_text("".join(f"{POSITIVE[i % 5]} {i}\n" for i in range(n)), encoding="utf-8")
        code = f"import resource, sentiment_nb.cli as c; c.predict_file({str(src)!r}, {str(tmp_path / f'o{n}.csv')!r}, progress=False); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert sum(1 for _ in open(tmp_path / f"o{n}.csv")) == n + 1
        return int(r.stdout.split()[-1]) / 1024
    small, big = peak_rss_mb(20_000), peak_rss_mb(200_000)
    assert big < small * 1.25, (small, big)


@pytest.mark.parametrize("args, message", [
    (["predict", "--input", "missing.csv"], "missing.csv: no such file"),
    (["predict", "--input", "notes.pdf"], "no such file"),
    (["train", "missing.tsv"], "missing.tsv: no such file"),
    (["evaluate", "x.tsv", "--model", "nope.pkl"], "no such file"),
])
def test_errors_are_one_line_and_exit_1(tmp_path, args, message):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_model_refused(tmp_path):
    (tmp_path / "x.txt").write_text("hello\n")
    (tmp_path / "m.pkl").write_bytes(b"not a pickle")
    r = run("predict", "--input", tmp_path / "x.txt", "--model", tmp_path / "m.pkl")
    assert r.returncode == 1 and "manifest missing" in r.stderr


def test_nltk_data_command():
    r = run("nltk-data")
    assert r.returncode == 0 and "WordNet" in r.stdout
