"""Out-of-core training at a size the notebook does not reach under test, and its model served by the app unchanged.

The library's contracts (sharding, fitting, validation, the manifest, refused inputs) are tested in
nbs/05_out_of_core.ipynb; here, a 20,000-tweet Sentiment140 file sorted by polarity, as the real one is.
"""
import pytest

from sentiment_nb.out_of_core import train_out_of_core
from sentiment_nb.pipeline import file_sha256, load_pipeline
from tests.support import LABELLED, resample_tweets, write_sentiment140

pytestmark = pytest.mark.slow


@pytest.mark.timeout(900)
def test_out_of_core_training_on_a_sorted_sentiment140_file(corpus, tmp_path):
    tweets = resample_tweets(corpus, 20_000, random_state=3).sort_values("label", kind="stable")
    path = write_sentiment140(tmp_path / "s140.csv", zip(tweets.text, tweets.label))
    manifest = train_out_of_core(path, tmp_path / "m" / "pipeline.pkl", fmt="sentiment140", chunksize=2_000, valid=0.2, progress=False)

    pipeline = load_pipeline(tmp_path / "m" / "pipeline.pkl")  # verified against the manifest it wrote
    assert list(pipeline.classes_) == manifest["labels"] == ["negative", "neutral", "positive"]
    assert [name for name, _ in pipeline.steps] == ["normalize", "features", "classify"]
    data = manifest["training_data"]
    assert data["rows"] + manifest["metrics"]["valid_rows"] == 20_000
    assert data["files"] == [{"name": "s140.csv", "sha256": file_sha256(path)}]
    assert manifest["recipe"]["shards"] == 8
    # fed in file order (all negatives, then neutrals, then positives) partial_fit ends up predicting one class: 0.33
    assert manifest["metrics"]["macro_recall"] > 0.6, manifest["metrics"]


def test_the_app_serves_an_out_of_core_model_unchanged(tmp_path):
    from app import create_app

    path = tmp_path / "s140.csv"
    write_sentiment140(path, LABELLED * 20)
    train_out_of_core(path, tmp_path / "m" / "pipeline.pkl", chunksize=100, valid=0.25, epochs=2, progress=False)
    client = create_app({"SENTIMENT_MODEL": str(tmp_path / "m" / "pipeline.pkl")}).test_client()
    body = client.post("/predict", json={"texts": ["I love this phone, best purchase ever :)", "Worst customer service ever, never again :("]}).get_json()
    assert [p["label"] for p in body["predictions"]] == ["positive", "negative"]
    assert client.get("/health").status_code == 200
