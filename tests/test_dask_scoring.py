"""Dask scoring at full size and through the real CLI, against a real `distributed.LocalCluster` on 127.0.0.1.

The library's contracts (formats, partitions, failures, output written whole or not at all) are tested in
nbs/05a_dask_scoring.ipynb on tens of thousands of tweets; here, a million, and `sentiment-nb predict --engine dask`.
"""
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sentiment_nb.accurate import ACCURATE_MODEL
from sentiment_nb.dask_scoring import dask_client, predict_dask
from sentiment_nb.data import semeval_path
from sentiment_nb.out_of_core import train_out_of_core
from sentiment_nb.pipeline import default_model_path, file_sha256, load_pipeline, predict_pipeline, read_manifest
from tests.support import LABELLED, edit_manifest, resample_tweets, run_cli

pytestmark = pytest.mark.slow
PROBABILITIES = ["p_negative", "p_neutral", "p_positive"]
LANGUAGE_FIELDS = ["language", "language_confidence", "supported", "reason"]


@pytest.fixture(scope="module")
def model_path(corpus, tmp_path_factory) -> Path:
    """The shipped model, which the API serves; where there is none yet, an out-of-core one trained on the corpus."""
    if default_model_path().exists():
        return default_model_path()
    path = tmp_path_factory.mktemp("model") / "pipeline.pkl"
    train_out_of_core(semeval_path(), path, progress=False)
    return path


@pytest.fixture(scope="module")
def cluster_address():
    """A running two-worker cluster the tests join by address, as `--scheduler tcp://HOST:PORT` does; closed afterwards."""
    with dask_client(n_workers=2) as client:
        yield client.scheduler.address


def write_archive(df: pd.DataFrame, folder: Path, files: int) -> pd.DataFrame:
    """Tweets as `files` CSV files with a zero-padded string id beside the text; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = pd.DataFrame({"id": [f"{i:010d}" for i in range(len(df))], "text": df.text.to_numpy()})
    for n, rows in enumerate(np.array_split(np.arange(len(archive)), files)):
        archive.iloc[rows].to_csv(folder / f"tweets-{n}.csv", index=False)
    return archive


@pytest.mark.timeout(1800)
def test_a_million_tweets_on_a_local_cluster_match_predict_pipeline(corpus, model_path, tmp_path):
    archive = write_archive(resample_tweets(corpus, 1_000_000, random_state=7), tmp_path / "in", files=4)
    out = tmp_path / "out"
    summary = predict_dask(str(tmp_path / "in" / "tweets-*.csv"), out, model_path=model_path, n_workers=2, progress=False)

    assert summary["complete"] and summary["failed_partitions"] == [], summary["failed_partitions"]
    assert summary["rows"] == len(archive) == 1_000_000
    assert summary["workers"] == 2 and summary["partitions"] >= 8
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == summary["partitions"]
    assert sum(pq.read_metadata(p).num_rows for p in parts) == len(archive)
    assert (out / "_SUCCESS").exists() and not list(tmp_path.glob(".out.*"))
    assert json.loads((out / "_summary.json").read_text())["rows"] == len(archive)

    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["id", "text", "label", *PROBABILITIES, *LANGUAGE_FIELDS]
    assert sorted(scored.id) == list(archive.id)  # every input row exactly once, ids unchanged
    sample = scored.sample(2_000, random_state=0)
    expected = predict_pipeline(sample.text.tolist(), load_pipeline(model_path))
    assert sample.label.tolist() == [p["label"] for p in expected]
    np.testing.assert_allclose(sample[PROBABILITIES].to_numpy(), [[p["probabilities"][c] for c in ("negative", "neutral", "positive")] for p in expected], atol=1e-6)


@pytest.mark.parametrize("kind", ["csv", "tsv", "txt", "jsonl", "parquet"])
def test_every_input_kind_keeps_its_columns(kind, model_path, cluster_address, tmp_path):
    texts = [text for text, _ in LABELLED]
    frame = pd.DataFrame({"id": [f"{i:04d}" for i in range(len(texts))], "text": texts})
    path = tmp_path / f"tweets.{kind}"
    if kind in ("csv", "tsv"): frame.to_csv(path, sep="," if kind == "csv" else "\t", index=False)
    elif kind == "txt": path.write_text("".join(t + "\n" for t in texts), encoding="utf-8"); frame = frame[["text"]]
    elif kind == "jsonl": frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else: frame.to_parquet(path, index=False)

    summary = predict_dask(path, tmp_path / "out", model_path=model_path, scheduler=cluster_address, out_format="csv", progress=False)
    assert summary["complete"] and summary["rows"] == len(texts)
    scored = pd.concat(pd.read_csv(p, dtype={"id": str}, keep_default_na=False) for p in sorted((tmp_path / "out").glob("part-*.csv")))
    assert list(scored.columns) == [*frame.columns, "label", *PROBABILITIES, *LANGUAGE_FIELDS]
    assert scored.text.tolist() == texts and (kind == "txt" or scored.id.tolist() == frame.id.tolist())
    assert scored.label.tolist() == [p["label"] for p in predict_pipeline(texts, load_pipeline(model_path))]


def test_cli_dask_engine_summarises_refuses_a_used_output_and_overwrites_on_request(model_path, cluster_address, tmp_path):
    pd.DataFrame({"id": ["001", "002"], "text": ["good morning", "bad night"]}).to_csv(tmp_path / "t.csv", index=False)
    args = ["predict", "--engine", "dask", "--scheduler", cluster_address, "--model", model_path,
            "--input", tmp_path / "t.csv", "--output", tmp_path / "out", "--output-format", "csv"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "labelled 2 tweets in 1 partitions on 2 workers" in first.stderr and (tmp_path / "out" / "_SUCCESS").exists()
    again = run_cli(*args)
    assert again.returncode == 1 and "output directory is not empty" in again.stderr and "Traceback" not in again.stderr, again.stderr
    assert run_cli(*args, "--overwrite").returncode == 0


def test_cli_dask_engine_exits_1_and_writes_nothing_when_a_partition_fails(model_path, cluster_address, tmp_path):
    rows = ["id,text", *(f"{i},tweet number {i} of a long and tedious day" for i in range(100_000))]
    rows.insert(80_000, "x,one field,too many")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    r = run_cli("predict", "--engine", "dask", "--scheduler", cluster_address, "--model", model_path, "--input", tmp_path / "t.csv",
                "--output", tmp_path / "out", "--retries", "0")
    assert r.returncode == 1, r.stderr
    failed, error = r.stderr.splitlines()[-2:]
    assert failed.startswith("failed: partition ") and f"{tmp_path / 't.csv'} rows " in failed and "ParserError" in failed, r.stderr
    assert error.startswith(f"sentiment-nb predict: error: {tmp_path / 'out'} not written: 1 of ") and "ParserError" in error, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_cli_dask_engine_reads_csv_with_line_breaks_whole_on_request(model_path, cluster_address, tmp_path):
    pd.DataFrame({"text": ["first line\nsecond line", "one line"] * 40_000}).to_csv(tmp_path / "t.csv", index=False)
    args = ["predict", "--engine", "dask", "--scheduler", cluster_address, "--model", model_path, "--input", tmp_path / "t.csv"]
    refused = run_cli(*args, "--output", tmp_path / "o1")
    assert refused.returncode == 1 and "quoted tweets hold line breaks" in refused.stderr and not (tmp_path / "o1").exists(), refused.stderr
    whole = run_cli(*args, "--output", tmp_path / "o2", "--blocksize", "none")
    assert whole.returncode == 0, whole.stderr
    assert pd.read_parquet(tmp_path / "o2").text.str.contains("\n").sum() == 40_000


@pytest.mark.timeout(600)
def test_a_quoted_line_break_at_90_percent_of_a_50_mb_csv_is_found_before_splitting(model_path, cluster_address, tmp_path):
    """Splitting at line breaks would cut that tweet in two: the whole file is checked, not a sample of its head."""
    rows = 1_050_000
    lines = [f"{i:07d},tweet number {i} of a long and tedious day\n" for i in range(rows)]
    lines[int(rows * 0.9)] = f'{int(rows * 0.9):07d},"a tweet that goes on\non a second line"\n'
    src = tmp_path / "t.csv"
    src.write_text("id,text\n" + "".join(lines))
    assert src.stat().st_size > 50e6
    out = tmp_path / "out"
    args = ["predict", "--engine", "dask", "--scheduler", cluster_address, "--model", model_path, "--input", src]
    refused = run_cli(*args, "--output", out, timeout=300)
    assert refused.returncode == 1 and "quoted tweets hold line breaks" in refused.stderr, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


# ---- a standing cluster and models that share a pickle ----

def protobuf_fields(data: bytes, start: int, end: int):
    """(field number, value) of the protobuf message in data[start:end]; a length-delimited value as its (start, end)."""
    def varint(i):
        value = shift = 0
        while True:
            byte = data[i]
            value, shift, i = value | (byte & 0x7F) << shift, shift + 7, i + 1
            if byte < 0x80:
                return value, i
    i = start
    while i < end:
        key, i = varint(i)
        kind = key & 7
        if kind == 0:
            value, i = varint(i)
        elif kind == 2:
            size, i = varint(i)
            value, i = (i, i + size), i + size
        else:  # fixed 64 or 32 bits
            width = 8 if kind == 1 else 4
            value, i = (i, i + width), i + width
        yield key >> 3, value


def onnx_initializer(data: bytes, name: str) -> slice:
    """Where the raw bytes of the initializer `name` lie in an ONNX model (ModelProto.graph.initializer[].raw_data)."""
    graph = next(value for number, value in protobuf_fields(data, 0, len(data)) if number == 7)
    for number, tensor in protobuf_fields(data, *graph):
        if number == 5:
            parts = dict(protobuf_fields(data, *tensor))
            if data[slice(*parts[8])].decode() == name:
                return slice(*parts[9])
    raise KeyError(name)


def accurate_with_other_weights(folder: Path) -> Path:
    """A copy of the accurate tier whose classification head leans to `negative` (model.onnx changed, its manifest updated):
    the same pickle as the shipped tier, another model."""
    shutil.copytree(ACCURATE_MODEL.parent, folder)
    onnx = folder / "model.onnx"
    data = bytearray(onnx.read_bytes())
    bias = onnx_initializer(bytes(data), "m.classifier.bias")
    negative, neutral, positive = struct.unpack("<3f", data[bias])
    data[bias] = struct.pack("<3f", negative + 6, neutral, positive)
    onnx.write_bytes(bytes(data))
    files = [{**f, "sha256": file_sha256(onnx)} if f["name"] == "model.onnx" else f for f in read_manifest(folder / "pipeline.pkl")["files"]]
    edit_manifest(folder / "pipeline.pkl", files=files)
    return folder / "pipeline.pkl"


@pytest.mark.timeout(600)
def test_a_standing_cluster_scores_each_model_with_its_own_files(cluster_address, tmp_path):
    """Two accurate tiers with the same pickle and different weights, scored one after the other on the same cluster: each
    run must label with its own model, not with the first one the workers loaded."""
    shipped, other = ACCURATE_MODEL, accurate_with_other_weights(tmp_path / "other")
    assert other.read_bytes() == shipped.read_bytes()
    texts = [text for text, _ in LABELLED]
    expected = {model: [p["label"] for p in predict_pipeline(texts, load_pipeline(model))] for model in (shipped, other)}
    assert expected[shipped] != expected[other], expected  # the two models do label these tweets differently
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "tweets.csv", index=False)
    for n, model in enumerate((shipped, other)):
        out = tmp_path / f"out-{n}"
        summary = predict_dask(tmp_path / "tweets.csv", out, model_path=model, scheduler=cluster_address, out_format="csv", progress=False)
        assert summary["complete"], summary
        scored = pd.concat(pd.read_csv(p) for p in sorted(out.glob("part-*.csv")))
        assert scored.label.tolist() == expected[model], n
