"""Loaders: each format, deduplication, the split, and every error naming file, line and expectation."""
import pandas as pd
import pytest

from sentiment_nb.data import (LABELS, DataFormatError, detect_format, load_semeval, load_sentiment140, load_tweets,
                               read_tweet_chunks, semeval_path, train_valid_split)
from tests.support import LABELLED, write_semeval, write_sentiment140


def test_semeval_and_sentiment140_give_the_same_frame(tmp_path):
    a = load_semeval(write_semeval(tmp_path / "a.tsv"))
    b = load_sentiment140(write_sentiment140(tmp_path / "b.csv", [(t.replace("😍", "").replace("😢", ""), l) for t, l in LABELLED]))
    assert list(a.columns) == ["text", "label", "source"] and list(b.columns) == ["text", "label"]  # SemEval names each tweet's set
    assert a.label.tolist() == b.label.tolist() == [l for _, l in LABELLED]
    assert set(a.label) == set(LABELS)


def test_plain_csv_with_extra_columns_and_any_column_order(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text('label,lang,text\nPositive,en,"good, really good"\nnegative,en,bad\n', encoding="utf-8")
    df = load_tweets(p)
    assert df.to_dict("records") == [{"text": "good, really good", "label": "positive"}, {"text": "bad", "label": "negative"}]
    assert detect_format(p) == "csv"


def test_duplicates_removed_keeping_first(tmp_path):
    rows = [("same text", "positive"), ("other", "neutral"), ("same text", "negative")]
    df = load_semeval(write_semeval(tmp_path / "d.tsv", rows))
    assert df[["text", "label"]].to_dict("records") == [{"text": "same text", "label": "positive"}, {"text": "other", "label": "neutral"}]
    assert len(load_tweets(tmp_path / "d.tsv", dedupe=False)) == 3


def test_chunks_stream_every_row(tmp_path):
    p = write_semeval(tmp_path / "c.tsv")
    chunks = list(read_tweet_chunks(p, chunksize=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 3]
    assert pd.concat(chunks).text.tolist() == [t for t, _ in LABELLED]


@pytest.mark.parametrize("name, content, fmt, message", [
    ("empty.tsv", b"", None, "empty.tsv: file is empty"),
    ("only_header.tsv", b"id\tlabel\ttext\n", None, "no tweets found"),
    ("short_row.tsv", b"id\tlabel\ttext\n1\tpositive\tok\n2\tnegative\n", None, "short_row.tsv:3: expected 3 columns (id, label, text), found 2"),
    ("long_row.csv", b"text,label\nok,positive\nx,neutral,extra\n", None, "long_row.csv:3: expected 2 columns"),
    ("label.csv", b"text,label\nnice,positive\nhmm,mixed\n", None, "label.csv:3: unknown label 'mixed', expected one of negative, neutral, positive"),
    ("bytes.tsv", b"label\ttext\npositive\tfine\nnegative\tbad \xc3\x28 bytes\n", None, "bytes.tsv:3: bytes b'\\xc3' at column 14 are not valid utf-8"),
    ("header.csv", b"tweet,sentiment\nhello,positive\n", None, "header.csv:1: header ['tweet', 'sentiment'] needs 'text' and 'label' columns"),
    ("s140_cols.csv", b'"4","1","d","q","u","ok"\n"0","2","d","q","u"\n', "sentiment140", "s140_cols.csv:2: expected 6 columns (polarity, id, date, query, user, text), found 5"),
    ("s140_label.csv", b'"1","1","d","q","u","meh"\n', "sentiment140", "s140_label.csv:1: unknown label '1', expected one of 0, 2, 4"),
])
def test_errors_name_file_line_and_expectation(tmp_path, name, content, fmt, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DataFormatError, match=None) as e:
        load_tweets(p, fmt)
    assert message in str(e.value)
    assert str(tmp_path) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv: no such file"):
        load_tweets(tmp_path / "nope.tsv")
    with pytest.raises(DataFormatError, match="is a directory"):
        load_tweets(tmp_path)


def test_sentiment140_is_latin1(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes('"4","1","d","q","u","café crème, très bon"\n'.encode("latin-1"))
    assert load_sentiment140(p).text[0] == "café crème, très bon"


def test_split_is_stratified_and_reproducible():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": ["negative"] * 20 + ["neutral"] * 50 + ["positive"] * 30})
    tr, va = train_valid_split(df)
    assert va.label.value_counts().to_dict() == {"neutral": 10, "positive": 6, "negative": 4}
    assert set(tr.text).isdisjoint(va.text)
    assert train_valid_split(df)[1].text.tolist() == va.text.tolist()


def test_shared_corpus_loads_as_documented():
    if not semeval_path().exists():
        pytest.skip(f"shared corpus not present at {semeval_path()}")
    df = load_semeval(semeval_path())
    assert 49_000 < len(df) <= 49_570
    assert set(df.label) == set(LABELS)
    assert df.text.is_unique
