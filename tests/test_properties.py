"""Properties of normalization and prediction over arbitrary Unicode, checked with Hypothesis.

What `TweetNormalizer` claims, and what is tested here: one output string per input tweet, tokens separated by single
spaces, no newline leaking between the tweets of a batch, a batch normalized as each tweet alone, the same output
for the same input whatever the instance's caches hold. What it does not claim: idempotence — normalizing twice
marks negations and emoji polarity again (see the last test), so the pipeline normalizes exactly once.

Runs are derandomized (the same examples on every run, no example database), bounded in count and time.
"""
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment_nb.pipeline import class_labels, load_pipeline, predict_pipeline
from sentiment_nb.preprocess import NEGATIVE, TweetNormalizer

LONGEST_TEXT = 20_000
REPEATABLE = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Pieces that exercise each normalization rule and each way text can be strange; written for these tests.
PIECES = [
    # tweet syntax: mentions, hashtags, URLs, emoticons, HTML entities, negations, elongations
    "@user", "@", "#tag", "#", "http://t.co/x1", "https://", "www.", ":)", ":-(", ":D", "<3", "</3", "^_^", "D:", "8)",
    "&amp;", "&lt;3", "&#10;", "&#x0A;", "&NewLine;", "&bogus;", "&", ";", "not", "no", "n't", "don't", "never",
    "sooooo", "!!!", "?", ".", ",", "good", "bad", "love", "hate", "geese", "does", "boss", "CAPS",
    # emoji: plain, skin tone, ZWJ sequence, flag, keycap, variation selector
    "😂", "😍", "😡", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "1\ufe0f\u20e3", "☔\ufe0e", "❤\ufe0f",
    # right-to-left scripts and direction controls
    "مرحبا", "שלום", "\u202e", "\u202d", "\u200f", "\u2067",
    # combining marks, alone and stacked
    "e\u0301", "\u0301", "a\u0336\u0336\u0336", "\u0e49", "\u20dd",
    # control characters and every line or paragraph separator
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\x1c", "\x1e", "\u2028", "\u2029", "\n", "\r", "\r\n", "\t", "\x0b", "\x0c",
    # other spaces, invisible and odd characters
    " ", "\u00a0", "\u3000", "\u200b", "\u200d", "\ufeff", "\ufffd", "İ", "ß", "ﬃ", "Σ", "東京", "Ça", "\U0010ffff",
    # lone surrogates: not UTF-8, so the API refuses them, but a Python str may hold them
    "\ud83d", "\udfff",
]
# Any code point at all, surrogates included: a Python str may hold them and the library must not fall over.
ANY_CHARACTER = st.characters(exclude_categories=())
TWEETISH = st.lists(st.sampled_from(PIECES) | ANY_CHARACTER, max_size=60).map("".join)
ANY_TEXT = st.text(ANY_CHARACTER, max_size=300)


def stretched(text: str, length: int) -> str:
    """Non-empty `text` repeated and cut to exactly `length` characters."""
    return (text * (length // len(text) + 1))[:length]


LONG_TEXT = st.builds(stretched, TWEETISH.filter(bool), st.integers(0, LONGEST_TEXT))
TEXTS = st.one_of(TWEETISH, ANY_TEXT, LONG_TEXT)
BATCHES = st.lists(st.one_of(TWEETISH, ANY_TEXT), max_size=12) | st.lists(TEXTS, max_size=3)


@pytest.fixture(scope="module")
def norm():
    return TweetNormalizer()


@pytest.fixture(scope="module")
def model(served_model_path):
    return load_pipeline(served_model_path)


@settings(max_examples=1000, **REPEATABLE)
@given(batch=BATCHES)
def test_one_single_line_output_per_input(norm, batch):
    out = norm.transform(batch)
    assert len(out) == len(batch) and all(isinstance(o, str) for o in out)
    for o in out:
        assert "\n" not in o and "\r" not in o
        assert o.split(" ") == (o.split() or [""]), "tokens are separated by single spaces, none contains whitespace"


@settings(max_examples=1000, **REPEATABLE)
@given(batch=BATCHES)
def test_a_batch_is_normalized_as_each_tweet_alone(norm, batch):
    assert norm.transform(batch) == [norm.transform([text])[0] for text in batch]


@settings(max_examples=300, **REPEATABLE)
@given(batch=BATCHES)
def test_same_input_same_output_whatever_the_caches_hold(norm, batch):
    unpickled = pickle.loads(pickle.dumps(norm))  # a fresh lemma cache and character table
    first = norm.transform(batch)
    assert norm.transform(batch) == first
    assert unpickled.transform(list(reversed(batch))) == list(reversed(first))


def test_normalizing_twice_marks_again_so_idempotence_is_not_claimed(norm):
    once = norm.transform(["not good", "😂"])
    assert once == ["not good_neg", "😂"]  # an emoji is its own token (00c_emoji)
    assert norm.transform(once) == ["good_neg", "😂"]  # the second pass sees no negator: the mark is not idempotent
    assert norm.transform([":("]) == [NEGATIVE] == norm.transform(norm.transform([":("]))  # some inputs are fixed points


def check_prediction(prediction: dict, text: str, labels: list[str]) -> None:
    assert set(prediction) == {"text", "label", "pred", "probabilities", "language", "language_confidence", "supported", "reason"}
    assert prediction["text"] == text
    assert prediction["label"] in labels and labels[prediction["pred"]] == prediction["label"]
    probabilities = prediction["probabilities"]
    assert list(probabilities) == labels
    assert all(0 <= p <= 1 for p in probabilities.values())
    assert sum(probabilities.values()) == pytest.approx(1, abs=1e-5)  # each rounded to 6 decimals
    assert probabilities[prediction["label"]] >= max(probabilities.values()) - 1e-6


@settings(max_examples=500, **REPEATABLE)
@given(text=TEXTS)
def test_any_text_gets_exactly_one_valid_prediction(model, text):
    labels = class_labels(model)
    out = predict_pipeline(text, model)
    assert len(out) == 1
    check_prediction(out[0], text, labels)
    assert predict_pipeline([text], model) == out


@settings(max_examples=300, **REPEATABLE)
@given(batch=BATCHES)
def test_a_batch_is_predicted_as_each_tweet_alone(model, batch):
    labels = class_labels(model)
    out = predict_pipeline(batch, model)
    assert len(out) == len(batch)
    for prediction, text in zip(out, batch):
        check_prediction(prediction, text, labels)
        alone = predict_pipeline([text], model)[0]
        assert alone["label"] == prediction["label"]
        assert alone["probabilities"] == pytest.approx(prediction["probabilities"], abs=1e-6)
