"""The `sentiment-nb` console script, run as a real subprocess."""
import json, os, re, shutil, signal, subprocess, sys, threading, time, urllib.request
from pathlib import Path

import pandas as pd
import pytest

from sentiment_nb.pipeline import default_model_path, file_sha256, load_pipeline, predict_pipeline, read_manifest
from tests.support import (CLI, LABELLED, NEGATIVE, POSITIVE, copy_model, edit_manifest, run_cli, start_server, write_semeval,
                           write_sentiment140)


def run(*args, **kw):
    return run_cli(*args, timeout=300, **kw)


@pytest.fixture(scope="module")
def shipped():
    assert default_model_path().exists(), f"{default_model_path()}: the shipped model is in the repository; `make train` rewrites it"
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


def test_check_prints_the_behaviour_report_of_the_shipped_model(shipped):
    r = run("check")
    missed = read_manifest(shipped)["behaviour"]["targets_missed"]  # the shipped models miss some (tests/test_behaviour.py lists them)
    assert r.returncode == (1 if missed else 0), r.stdout + r.stderr
    assert "mean failure rate over" in r.stdout and r.stdout.count("MISSED") == len(missed), r.stdout


def test_check_fails_a_model_that_misses_the_behaviour_targets(tmp_path):
    swapped = {"positive": "negative", "negative": "positive", "neutral": "neutral"}
    data = write_semeval(tmp_path / "train.tsv", [(text, swapped[gold]) for text, gold in LABELLED * 6])  # learns sentiment backwards
    out = tmp_path / "m" / "pipeline.pkl"
    assert run("train", data, "--out", out, "--valid-size", "0").returncode == 0
    r = run("check", "--model", out)
    assert r.returncode == 1 and "MISSED" in r.stdout, r.stdout + r.stderr
    assert r.stderr.startswith("sentiment-nb check: error: the model misses "), r.stderr


def test_explain_prints_a_table_per_tweet_that_matches_the_library(shipped):
    from sentiment_nb.accurate import ACCURATE_MODEL
    from sentiment_nb.cli import explanation_table
    from sentiment_nb.pipeline import explain_pipeline

    texts = [POSITIVE[0], NEGATIVE[0]]
    r = run("explain", *texts, "--top", "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "\n\n".join(map(explanation_table, explain_pipeline(texts, load_pipeline(shipped), top=4))) + "\n"
    r = run("explain", POSITIVE[0], "--model", ACCURATE_MODEL)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("sentiment-nb explain: error: explanations are exact only for the linear fast model"), r.stderr


def test_predict_csv_keeps_columns_and_matches_the_library(tmp_path, shipped):
    src = tmp_path / "in.csv"
    texts = POSITIVE + NEGATIVE
    pd.DataFrame({"id": range(len(texts)), "user": "me", "text": texts}).to_csv(src, index=False)
    r = run("predict", "--input", src, "--output", tmp_path / "out.csv", "--chunksize", "3")
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    assert out.columns.tolist() == ["id", "user", "text", "label", "p_negative", "p_neutral", "p_positive", "language", "language_confidence", "supported", "reason"]
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
    (["predict", "--input", "missing.csv"], "sentiment-nb predict: error: missing.csv: no such file"),
    (["predict", "--input", "notes.pdf"],
     "sentiment-nb predict: error: notes.pdf: unsupported input type '.pdf'; use one of .csv, .tsv, .tab, .txt, .jsonl, .ndjson, .parquet, .parq, .pq"),
    (["predict", "--input", "tweets.txt", "--output", "out.pdf"], "sentiment-nb predict: error: out.pdf: unsupported output type '.pdf'; use .csv, .tsv or .jsonl"),
    (["train", "missing.tsv", "--out", "m.pkl"], "sentiment-nb train: error: missing.tsv: no such file"),
    (["evaluate", "x.tsv", "--model", "nope.pkl"], "sentiment-nb evaluate: error: x.tsv: no such file"),
])
def test_errors_are_one_line_and_exit_1(tmp_path, args, message):
    (tmp_path / "notes.pdf").write_text("%PDF-1.7 not tweets\n")  # exists: the type is what is wrong
    (tmp_path / "tweets.txt").write_text("hello\n")
    r = run(*args, cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, message + "\n")


def test_bad_model_refused(tmp_path):
    (tmp_path / "x.txt").write_text("hello\n")
    (tmp_path / "m.pkl").write_bytes(b"not a pickle")
    r = run("predict", "--input", tmp_path / "x.txt", "--model", tmp_path / "m.pkl")
    assert r.returncode == 1 and "manifest missing" in r.stderr


def test_nltk_data_command():
    """`make setup` provisioned WordNet already, so the command finds it and writes nothing."""
    r = run("nltk-data")
    assert (r.returncode, r.stdout) == (0, "WordNet already available to NLTK\n"), r.stderr


# ---- every write all or nothing: an existing output keeps its bytes whatever goes wrong --------------------------------

KEPT = b"id,text,label\n1,yesterday's labelled tweet,positive\n"


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.partial"))


def write_tweets(path: Path, rows: int, bad_row: int | None = None) -> Path:
    """`rows` tweets as `id,text` CSV, written in one go (a million rows in about a second); `bad_row` gets a third field."""
    lines = [f'{i},"{POSITIVE[i % 5] if i % 2 else NEGATIVE[i % 5]} #{i}"\n' for i in range(rows)]
    if bad_row is not None:
        lines[bad_row] = f'{bad_row},"one field","too many"\n'
    path.write_text("id,text\n" + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def kept(tmp_path) -> Path:
    out = tmp_path / "out.csv"
    out.write_bytes(KEPT)
    return out


@pytest.mark.parametrize("case", ["missing input", "no text column", "unsupported extension"])
def test_a_bad_input_leaves_the_output_untouched_and_prints_no_progress_bar(tmp_path, kept, case):
    src = {"missing input": tmp_path / "missing.csv", "no text column": tmp_path / "in.csv", "unsupported extension": tmp_path / "in.xlsx"}[case]
    if case != "missing input":
        src.write_text("id,txt\n1,hello\n")
    before = file_sha256(kept)
    r = run("predict", "--input", src, "--output", kept, "--overwrite")  # even allowed to replace it, a bad input must not
    assert r.returncode == 1
    assert r.stderr.startswith(f"sentiment-nb predict: error: {src}: ") and r.stderr.count("\n") == 1, r.stderr  # no progress bar before it
    assert file_sha256(kept) == before and partials(tmp_path) == []


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, kept, shipped):
    src = tmp_path / "in.txt"
    src.write_text("what a lovely day\n")
    r = run("predict", "--input", src, "--output", kept)
    assert (r.returncode, r.stderr) == (1, f"sentiment-nb predict: error: {kept}: output file exists; pass overwrite=True (--overwrite) to replace it\n")
    assert kept.read_bytes() == KEPT
    r = run("predict", "--input", src, "--output", kept, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(kept).text.tolist() == ["what a lovely day"] and partials(tmp_path) == []


def test_a_malformed_row_half_way_through_200k_rows_leaves_the_output_untouched(tmp_path, kept, shipped):
    src = write_tweets(tmp_path / "in.csv", 200_000, bad_row=100_000)
    before = file_sha256(kept)
    r = run("predict", "--input", src, "--output", kept, "--overwrite")
    assert r.returncode == 1
    assert r.stderr.rstrip().endswith(f"sentiment-nb predict: error: {src}: Error tokenizing data. C error: Expected 2 fields in line 100002, saw 3"), r.stderr[-500:]
    assert "predicting: 100000 tweets" in r.stderr  # it got half-way before the bad row
    assert file_sha256(kept) == before and partials(tmp_path) == []


def run_until(args: list, seen, timeout: float = 300) -> subprocess.Popen:
    """Start the CLI and return it, still running, once `seen(stderr so far)` holds; fails if it exits first."""
    process = subprocess.Popen([CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr, found = bytearray(), threading.Event()

    def read():
        for block in iter(lambda: process.stderr.read1(4096), b""):
            stderr.extend(block)
            if seen(stderr.decode("utf-8", "replace")):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        process.kill()
        process.wait(10)
        pytest.fail(f"never reached the point to interrupt it (exit {process.returncode}):\n{stderr.decode()[-2000:]}")
    return process


def rows_done(stderr: str) -> int:
    counts = [int(c) for c in re.findall(r"predicting: (\d+) tweets", stderr)]
    return max(counts, default=0)


@pytest.fixture(scope="module")
def million_tweets(tmp_path_factory) -> Path:
    return write_tweets(tmp_path_factory.mktemp("million") / "in.csv", 1_000_000)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"])
def test_a_predict_interrupted_half_way_through_a_million_rows_leaves_the_output_untouched(tmp_path, kept, shipped, million_tweets, sig):
    before = file_sha256(kept)
    process = run_until(["predict", "--input", million_tweets, "--output", kept, "--overwrite"], lambda err: rows_done(err) >= 500_000)
    process.send_signal(sig)
    code = process.wait(60)
    assert file_sha256(kept) == before
    if sig == signal.SIGKILL:
        # nothing runs on SIGKILL: the partial file stays, named after the dead process, until the next run to this name
        assert code == -signal.SIGKILL and partials(tmp_path) == [p.name for p in tmp_path.glob(f".out.csv.{process.pid}-*.partial")] != []
        small = tmp_path / "small.txt"
        small.write_text("a new day\n")
        r = run("predict", "--input", small, "--output", kept, "--overwrite")
        assert r.returncode == 0, r.stderr
        assert pd.read_csv(kept).text.tolist() == ["a new day"]
    else:
        # SIGTERM (docker stop, kill) and SIGINT (Ctrl-C) unwind: the partial file is removed on the way out
        assert code == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGINT), code
    assert partials(tmp_path) == []


def model_files(folder: Path) -> dict:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while training", "while writing the model"])
def test_train_killed_leaves_the_old_model_loadable(tmp_path, moment):
    out = tmp_path / "models" / "pipeline.pkl"
    old = run("train", write_semeval(tmp_path / "old.tsv", LABELLED * 4), "--out", out, "--valid-size", "0")
    assert old.returncode == 0, old.stderr
    before = model_files(out.parent)
    rows = [(f"{text} #{i}", label) for i in range(200) for text, label in LABELLED]  # 3,000 tweets: a few seconds of training
    args = ["train", write_semeval(tmp_path / "new.tsv", rows), "--out", out, "--overwrite"]
    if moment == "while training":
        process = run_until(args, lambda err: "training:" in err)
    else:  # the moment the new pickle's temporary file appears beside the old one
        process = subprocess.Popen([CLI, *map(str, args), "--valid-size", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not list(out.parent.glob(".pipeline.pkl.*")):
            assert process.poll() is None and time.monotonic() < deadline, "train finished or stalled before it wrote the model"
            time.sleep(0.001)
    process.kill()
    assert process.wait(60) == -signal.SIGKILL
    assert {name: sha for name, sha in model_files(out.parent).items() if not name.startswith(".")} == before
    assert read_manifest(out)["sha256"] == before["pipeline.pkl"]
    assert [p["label"] for p in predict_pipeline([POSITIVE[0], NEGATIVE[0]], load_pipeline(out))] == ["positive", "negative"]


# ---- a command never replaces more than the model it was told to write ----------------------------------------------

def folder_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_says_where_the_model_goes_names_the_targets_it_misses_and_replaces_it_only_with_overwrite(tmp_path):
    swapped = {"positive": "negative", "negative": "positive", "neutral": "neutral"}  # learns sentiment backwards: misses targets
    data = write_semeval(tmp_path / "train.tsv", [(text, swapped[gold]) for text, gold in LABELLED * 6])
    out = tmp_path / "m" / "pipeline.pkl"
    r = run("train", data, "--out", out, "--valid-size", "0")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == f"training a model for {out}", lines[0]
    warning = next(i for i, line in enumerate(lines) if line.startswith("warning: the model misses "))
    assert lines[warning].endswith(f"behaviour target(s) (sentiment-nb check --model {out} shows every test):"), lines[warning]
    assert read_manifest(out)["behaviour"]["targets_missed"] == [line.strip() for line in lines[warning + 1:]] != []
    before = folder_hashes(out.parent)
    again = run("train", data, "--out", out, "--valid-size", "0")
    assert (again.returncode, again.stderr) == (1, f"sentiment-nb train: error: {out}: a model exists there; pass overwrite=True (--overwrite) to replace it\n")
    assert folder_hashes(out.parent) == before
    # Other labels, so the replacement shows in the bytes: training on the same data again may write the same pickle.
    corrected = write_semeval(tmp_path / "corrected.tsv", LABELLED * 6)
    assert run("train", corrected, "--out", out, "--valid-size", "0", "--overwrite").returncode == 0
    assert read_manifest(out)["sha256"] == file_sha256(out) != before["pipeline.pkl"]


def test_train_without_out_never_writes_where_sentiment_model_points(tmp_path, shipped):
    """`SENTIMENT_MODEL=models/accurate/pipeline.pkl` serves the accurate tier; a `train` run in the same shell must not
    write a fast model over its pickle. Without --out it aims at the shipped model, which it may not replace unasked."""
    from sentiment_nb.accurate import ACCURATE_MODEL

    served = tmp_path / "accurate"
    shutil.copytree(ACCURATE_MODEL.parent, served)
    before, shipped_before = folder_hashes(served), file_sha256(shipped)
    r = run("train", write_semeval(tmp_path / "train.tsv", LABELLED * 6), "--valid-size", "0",
            env={**os.environ, "SENTIMENT_MODEL": str(served / "pipeline.pkl")})
    assert (r.returncode, r.stderr) == (1, f"sentiment-nb train: error: {shipped}: a model exists there; pass overwrite=True (--overwrite) to replace it\n")
    assert folder_hashes(served) == before and file_sha256(shipped) == shipped_before


@pytest.fixture
def models_folder(tmp_path) -> Path:
    """A copy of the repository's models/: the fast model, its manifest, its word polarity and the accurate tier."""
    from sentiment_nb.pipeline import SHIPPED_MODEL

    shutil.copytree(SHIPPED_MODEL.parent, tmp_path / "models")
    return tmp_path / "models"


def test_train_accurate_never_replaces_a_folder_that_holds_anything_but_the_tier(tmp_path, models_folder):
    before = folder_hashes(models_folder)
    r = run("train-accurate", write_semeval(tmp_path / "train.tsv"), "--out", models_folder / "pipeline.pkl", "--overwrite")
    assert (r.returncode, r.stderr) == (1, f"sentiment-nb train-accurate: error: {models_folder}: holds accurate, word_polarity.tsv.gz, "
                                           "which the accurate tier's folder would replace; give it a folder of its own, such as "
                                           f"{models_folder / 'accurate' / 'pipeline.pkl'}\n")
    assert folder_hashes(models_folder) == before


def test_train_accurate_aims_at_the_shipped_tier_from_any_folder_and_replaces_it_only_with_overwrite(tmp_path):
    from sentiment_nb.accurate import ACCURATE_MODEL

    before = folder_hashes(ACCURATE_MODEL.parent)
    r = run("train-accurate", write_semeval(tmp_path / "train.tsv"), cwd=tmp_path)
    assert (r.returncode, r.stderr) == (1, f"sentiment-nb train-accurate: error: {ACCURATE_MODEL}: a model exists there; "
                                           "pass overwrite=True (--overwrite) to replace it\n")
    assert folder_hashes(ACCURATE_MODEL.parent) == before and list(tmp_path.iterdir()) == [tmp_path / "train.tsv"]


def test_serve_takes_a_model_path_relative_to_the_folder_it_runs_in(tmp_path, shipped):
    model = copy_model(shipped, tmp_path / "m")
    edit_manifest(model, created="the copy in m/")  # tells it from the shipped model
    server = start_server([CLI, "serve", "--model", "m/pipeline.pkl"], tmp_path / "server.log", cwd=tmp_path)
    try:
        with urllib.request.urlopen(server.url + "/model", timeout=10) as answer:
            assert json.loads(answer.read())["created"] == "the copy in m/"
    finally:
        assert server.stop() == 0


# Runs `sentiment-nb nltk-data` as on a machine where NLTK finds no WordNet anywhere but the folder it installs into.
FRESH_NLTK = ("import os, sys, nltk\n"
              "nltk.data.path[:] = [os.environ['NLTK_DATA']]\n"
              "from sentiment_nb.cli import main\n"
              "main(['nltk-data'])\n")


def test_nltk_data_installs_debians_wordnet_without_trying_the_network(tmp_path):
    env = {**os.environ, "NLTK_DATA": str(tmp_path / "nltk_data")}
    r = subprocess.run([sys.executable, "-c", FRESH_NLTK], capture_output=True, text=True, timeout=300, env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"WordNet installed into {tmp_path / 'nltk_data'}\n", "")
    assert (tmp_path / "nltk_data" / "corpora" / "wordnet" / "data.noun").is_file()


# A process that keeps its model between calls, as a notebook kernel does: it labels each line it reads with the default model.
KEEPS_ITS_MODEL = ("import sys\n"
                   "from sentiment_nb.pipeline import predict_pipeline\n"
                   "for line in sys.stdin:\n"
                   "    print(predict_pipeline(line.strip())[0]['label'], flush=True)\n")


def test_a_running_process_predicts_with_the_model_train_just_wrote(tmp_path):
    out = tmp_path / "m" / "pipeline.pkl"
    assert run("train", write_semeval(tmp_path / "right.tsv", LABELLED * 6), "--out", out, "--valid-size", "0").returncode == 0
    process = subprocess.Popen([sys.executable, "-c", KEEPS_ITS_MODEL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "SENTIMENT_MODEL": str(out)})

    def label(text: str) -> str:
        process.stdin.write(text + "\n")
        process.stdin.flush()
        return process.stdout.readline().strip()

    try:
        assert label(POSITIVE[0]) == "positive"
        swapped = {"positive": "negative", "negative": "positive", "neutral": "neutral"}
        backwards = write_semeval(tmp_path / "backwards.tsv", [(text, swapped[gold]) for text, gold in LABELLED * 6])
        assert run("train", backwards, "--out", out, "--valid-size", "0", "--overwrite").returncode == 0
        assert label(POSITIVE[0]) == "negative"  # the model now in the file, which learnt sentiment backwards
    finally:
        process.stdin.close()
        process.wait(60)
