"""TweetNormalizer on tweet syntax, negation and lemmas, and the offline NLTK data route (the edge cases are in nbs/01_preprocess.ipynb)."""
from pathlib import Path

import pytest

from sentiment_nb.preprocess import (NEGATIVE, POSITIVE, TweetNormalizer, ensure_nltk_data, lexnames_from_man, mark_negation,
                                     wordnet_available, wordnet_from_debian, wordnet_lemmatizer, DEBIAN_WORDNET)


@pytest.fixture(scope="module")
def norm():
    return TweetNormalizer()


def test_emoji_only_and_long_text(norm):
    assert norm.transform(["😂😂😂"]) == [f"{POSITIVE} 😂 {POSITIVE} 😂 {POSITIVE} 😂"]
    assert norm.transform(["a" * 10_000]) == ["aa"]
    long_mixed = ("good " * 2000).strip()
    assert norm.transform([long_mixed])[0].split() == ["good"] * 2000


def test_non_english_and_mixed_scripts_keep_their_words(norm):
    fr, ar, ja = norm.transform(["Ça va très bien 😊", "مرحبا بالعالم", "東京は雨 ☔ but I'm fine"])
    assert "très" in fr.split() and POSITIVE in fr.split()
    assert ar  # Arabic letters are tokens too, not dropped
    assert "☔" in ja.split() and "fine" in ja.split()


def test_tweet_specific_tokens(norm):
    out = norm.transform(["@united my flight &amp; bags LOST http://t.co/abc #fail :( nooooo"])[0].split()
    assert out[:2] == ["_user_", "my"] and "&" in out and "_url_" in out and "fail" in out
    assert NEGATIVE in out and "noo" in out


def test_negation_marks_the_sentiment_words_it_applies_to(norm):
    out = norm.transform(["I don't like it. Not bad though, never boring"])[0].split()
    assert "don't" in out and "like_neg" in out and "it" in out  # a negated positive keeps its negator
    assert "not" not in out and "bad_neg" in out and "never" not in out and "boring_neg" in out  # a negated negative does not
    assert mark_negation("good . not bad") == "good . bad_neg"
    assert mark_negation("good . not good") == "good . not good_neg"


def test_lemmatization_with_cache(norm):
    assert norm.transform(["cats tweets geese does boss"]) == ["cat tweet goose does boss"]
    assert norm._lemmas["tweets"] == "tweet"


def test_rejects_non_strings_by_position(norm):
    with pytest.raises(TypeError, match=r"texts\[2\] is int, expected str"):
        norm.transform(["a", "b", 3])
    with pytest.raises(TypeError, match="single str"):
        norm.transform("a tweet")


def test_nltk_data_available_after_ensure():
    ensure_nltk_data()
    assert wordnet_available()


def test_wordnet_assembled_from_debian_packages_works_offline(tmp_path, monkeypatch):
    if not (DEBIAN_WORDNET / "index.sense").exists():
        pytest.skip("Debian packages wordnet-base and wordnet-sense-index are not installed")
    import nltk
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + nltk.data.path)  # NLTK only reads corpora under its data paths
    dest = wordnet_from_debian(tmp_path)
    assert (dest / "lexnames").read_text().splitlines()[3] == "03\tnoun.Tops\t1"
    assert not (dest / "lexnames").is_symlink() and not (dest / "data.noun").is_symlink()
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    wn = WordNetCorpusReader(str(dest), None)
    assert wn.morphy("geese", "n") == "goose"
    assert len(lexnames_from_man().splitlines()) == 45


def test_wordnet_reassembled_over_an_old_copy_replaces_it_whole(tmp_path):
    if not (DEBIAN_WORDNET / "index.sense").exists():
        pytest.skip("Debian packages wordnet-base and wordnet-sense-index are not installed")
    dest = wordnet_from_debian(tmp_path)
    (dest / "stale-file").write_text("from an older copy")
    assert wordnet_from_debian(tmp_path) == dest
    assert not (dest / "stale-file").exists() and (dest / "lexnames").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["wordnet"]  # no staging or old copy left beside it


def test_fast_wordnet_lemmatizer_gives_nltks_lemmas():
    """The reader that skips NLTK's sense-key map must lemmatize exactly as `WordNetLemmatizer`:
    every irregular noun WordNet lists, every noun lemma's plural-looking forms, and a few non-words."""
    ensure_nltk_data()
    import nltk
    from nltk.stem import WordNetLemmatizer
    wordnet = Path(str(nltk.data.find("corpora/wordnet")))
    irregular = [line.split()[0] for line in (wordnet / "noun.exc").read_text().splitlines()]
    nouns = [line.split()[0] for line in (wordnet / "index.noun").read_text().splitlines() if not line.startswith(" ")]
    words = irregular + [w + suffix for w in nouns[::20] for suffix in ("s", "es", "ies")] + ["lolz", "sooo", "2day", "_url_"]
    assert len(irregular) > 2000 and len(words) > 10_000
    fast, nltks = wordnet_lemmatizer(), WordNetLemmatizer().lemmatize
    assert [fast(w) for w in words] == [nltks(w) for w in words]
    assert fast("geese") == "goose" and fast("churches") == "church"
