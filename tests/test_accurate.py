"""The accurate tier, selected where users select a model: gunicorn with SENTIMENT_MODEL, the CLI's and the Dask engine's --model.

Each entry point must give our own labelled tweets their labels (an oracle independent of the model), and the other
texts the labels the library gives in-process (the same model, whichever way it is called)."""
import json
import shutil
import urllib.error
import urllib.request

import pandas as pd
import pytest

from sentiment_nb.accurate import ACCURATE_MODEL
from sentiment_nb.pipeline import SHIPPED_MODEL, load_pipeline, model_id, predict_pipeline, read_manifest
from tests.support import LABELLED, gunicorn_command, run_cli, start_server

# Our own tweets, and edge cases a tokenizer must survive: empty, emoji only, other scripts, long, entities.
GOLD = {text: label for text, label in LABELLED}
TEXTS = [*GOLD] + ["", "   ", "😂😂😂", "東京は雨 ☔ but I'm fine 🙂", "Привет мир, это ужасно",
                                         "&amp;&lt;3 &#10; &bogus;", "a" * 900, "@@@@ #### http:// www.", "no", "n't"]


@pytest.fixture(scope="module")
def accurate():
    return load_pipeline(ACCURATE_MODEL)


@pytest.fixture(scope="module")
def accurate_gunicorn(tmp_path_factory):
    server = start_server(gunicorn_command(), tmp_path_factory.mktemp("accurate") / "server.log",
                          env={"SENTIMENT_MODEL": str(ACCURATE_MODEL)})
    yield server
    assert server.stop() == 0, server.log()[-3000:]


def post(url: str, body: dict):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers, json.loads(response.read())


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers, json.loads(response.read())


def test_the_api_serves_the_accurate_model_and_says_so(accurate_gunicorn, accurate):
    expected = model_id(read_manifest(ACCURATE_MODEL))
    assert expected.startswith("accurate@")
    headers, single = post(accurate_gunicorn.url + "/predict", {"text": "not bad at all :)"})
    assert headers["X-Model"] == expected and single["label"] == predict_pipeline("not bad at all :)", accurate)[0]["label"]
    headers, batch = post(accurate_gunicorn.url + "/predict", {"texts": TEXTS})
    assert headers["X-Model"] == expected
    assert [p["label"] for p in batch["predictions"][:len(GOLD)]] == list(GOLD.values())
    assert [p["label"] for p in batch["predictions"]] == [p["label"] for p in predict_pipeline(TEXTS, accurate)]
    headers, manifest = get(accurate_gunicorn.url + "/model")
    assert headers["X-Model"] == expected and manifest["name"] == "accurate"
    assert {f["name"] for f in manifest["files"]} == {"model.onnx", "tokenizer.json"}


def test_the_api_refuses_to_explain_the_accurate_model(accurate_gunicorn):
    request = urllib.request.Request(accurate_gunicorn.url + "/predict", json.dumps({"text": "not bad at all :)", "explain": True}).encode(),
                                     {"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 400
    error = json.loads(refused.value.read())["error"]
    assert error["code"] == "explain_unsupported" and "exact only for the linear fast model" in error["message"], error


def test_the_default_api_still_serves_the_fast_model(service_gunicorn):
    headers, _ = post(service_gunicorn.url + "/predict", {"text": "hello"})
    assert headers["X-Model"] == model_id(read_manifest(SHIPPED_MODEL)) and headers["X-Model"].startswith("fast@")


def test_gunicorn_refuses_to_start_on_damaged_weights(tmp_path):
    copy = tmp_path / "accurate"
    shutil.copytree(ACCURATE_MODEL.parent, copy)
    weights = bytearray((copy / "model.onnx").read_bytes()); weights[-100] ^= 0xFF; (copy / "model.onnx").write_bytes(bytes(weights))
    server = start_server(gunicorn_command(), tmp_path / "server.log", env={"SENTIMENT_MODEL": str(copy / "pipeline.pkl")},
                          wait_ready=False)
    assert server.process.wait(60) != 0
    assert "model.onnx: sha256" in server.log()


def test_cli_predict_with_the_accurate_model(tmp_path, accurate):
    source = tmp_path / "tweets.csv"
    pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}).to_csv(source, index=False)
    r = run_cli("predict", "--input", source, "--output", tmp_path / "out.csv", "--model", ACCURATE_MODEL)
    assert r.returncode == 0, r.stderr
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out.label.tolist()[:len(GOLD)] == list(GOLD.values())
    assert out.label.tolist() == [p["label"] for p in predict_pipeline([str(t) for t in out.text], accurate)]


def test_dask_engine_with_the_accurate_model(tmp_path):
    texts = [text for text, _ in LABELLED] * 20
    source = tmp_path / "tweets.csv"
    pd.DataFrame({"text": texts}).to_csv(source, index=False)
    r = run_cli("predict", "--engine", "dask", "--input", source, "--output", tmp_path / "out", "--model", ACCURATE_MODEL,
                "--output-format", "csv", "--workers", "2", "--blocksize", "1kB")
    assert r.returncode == 0, r.stderr
    out = pd.concat(pd.read_csv(f) for f in sorted((tmp_path / "out").glob("*.csv")))
    assert len(out) == len(texts)
    assert (out.label == out.text.map(GOLD)).all()


def test_cli_refuses_an_accurate_model_whose_tokenizer_is_missing(tmp_path):
    copy = tmp_path / "accurate"
    shutil.copytree(ACCURATE_MODEL.parent, copy)
    (copy / "tokenizer.json").unlink()
    (tmp_path / "x.txt").write_text("hello\n")
    r = run_cli("predict", "--input", tmp_path / "x.txt", "--model", copy / "pipeline.pkl")
    assert r.returncode == 1 and "tokenizer.json: file missing" in r.stderr and r.stdout == ""
