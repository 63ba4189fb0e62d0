"""What the service says beside a label, through Flask's test client, real gunicorn and the CLI: the language of each text,
whether the model supports it, and the reason an answer is not a judgement of the text (no content, another language)."""
import csv
import json

import pytest
import requests

from tests.support import metric_samples, run_cli

# Our own texts (never the corpus).
ENGLISH = "the new phone arrived today and it works great, really happy with it"
SPANISH = "me encanta este teléfono nuevo, la batería dura todo el día"
JAPANESE = "この新しい電話は本当に最高です"
NOTHING = ["", "   ", "12345", "!!! ...", "★ → §"]


def predict(client, **body):
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_text_without_content_gets_the_prior_and_says_why(service_app, service_client):
    prior = service_app.extensions["sentiment_model"].pipeline.prior_
    labels = service_app.extensions["sentiment_model"].manifest["labels"]
    for text in NOTHING:
        answer = predict(service_client, text=text)
        assert (answer["label"], answer["reason"], answer["language"], answer["supported"]) == ("neutral", "no_content", "und", True), answer
        assert [round(p, 6) for p in prior] == [answer["probabilities"][label] for label in labels]


def test_other_languages_are_flagged_and_english_is_not(service_client):
    answers = predict(service_client, texts=[ENGLISH, SPANISH, JAPANESE, "lol same"])["predictions"]
    assert [(a["language"], a["supported"], a["reason"]) for a in answers] == [
        ("en", True, None), ("es", False, "unsupported_language"), ("ja", False, "unsupported_language"), ("en", True, None)]
    assert all(0 <= a["language_confidence"] <= 1 for a in answers)


def test_the_openapi_document_requires_the_new_fields(service_client):
    prediction = service_client.get("/openapi.json").get_json()["components"]["schemas"]["Prediction"]
    assert {"language", "language_confidence", "supported", "reason"} <= set(prediction["required"])
    assert prediction["properties"]["reason"]["enum"] == ["no_content", "unsupported_language", None]


def test_metrics_count_predictions_by_language(service_client):
    def by_language():
        samples = metric_samples(service_client.get("/metrics").get_data(as_text=True))
        return {tuple(sorted(dict(labels).items())): v for (name, labels), v in samples.items() if name == "sentiment_predictions_language_total"}
    before = by_language()
    predict(service_client, texts=[SPANISH, SPANISH, ENGLISH, ""])
    after = by_language()
    def gained(language, supported):
        key = (("language", language), ("supported", supported))
        return after.get(key, 0) - before.get(key, 0)
    assert (gained("es", "false"), gained("en", "true"), gained("und", "true")) == (2, 1, 1)


@pytest.mark.slow
def test_real_gunicorn_answers_an_empty_tweet_with_the_prior(service_gunicorn):
    response = requests.post(service_gunicorn.url + "/predict", json={"text": ""}, timeout=30)
    assert response.status_code == 200
    assert (response.json()["label"], response.json()["reason"]) == ("neutral", "no_content")


@pytest.mark.slow
def test_the_cli_writes_the_language_fields_for_each_row(tmp_path, served_model_path):
    source = tmp_path / "tweets.csv"
    with open(source, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], [ENGLISH], [SPANISH], [""]])
    result = run_cli("predict", "--input", str(source), "--output", str(tmp_path / "out.jsonl"), "--model", str(served_model_path))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["language"], r["supported"], r["reason"]) for r in rows] == [("en", True, None), ("es", False, "unsupported_language"),
                                                                          ("und", True, "no_content")]
