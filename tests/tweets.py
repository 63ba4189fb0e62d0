"""Tweets written for the tests (no real tweets from any corpus), and helpers to write them in each file format."""
from pathlib import Path

POSITIVE = ["I love this phone, best purchase ever :)", "Soooo happy right now 😍 #blessed", "What a great game tonight, congrats to the team!",
            "Finally some sunshine, feeling wonderful", "This album is amazing, on repeat all day"]
NEGATIVE = ["Worst customer service ever, never again :(", "My flight got cancelled AGAIN, I hate this airline", "So sad and angry about the news today 😢",
            "This update is terrible, my battery dies in an hour", "Stuck in traffic for two hours, awful commute"]
NEUTRAL = ["The meeting moved to 3pm tomorrow", "Bus 42 leaves from platform 2", "Reading the report on the new tax rules",
           "Heading to the office, back at 5", "The store opens at 9 on Sundays"]
LABELLED = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE] + [(t, "neutral") for t in NEUTRAL]

EDGE_CASES = ["", "   ", "😂😂😂", "a" * 10_000, "Ça va très bien, merci ! 😊", "مرحبا بالعالم، يوم جميل", "東京は雨 ☔ but I'm fine 🙂",
              "Привет мир, это ужасно", "e\u0301e\u0301 combining marks", "\u202eright-to-left override", "tab\tand\nnewline\r\nhere",
              "&amp;&lt;3 &#10; &#x0A; &bogus;", "\x00\x07\x1b control chars", "@@@@ #### http:// www.", "no", "n't"]


def write_semeval(path: Path, rows=LABELLED) -> Path:
    lines = ["id\tlabel\ttext\tsource"] + [f"{i}\t{label}\t{text}\ttest" for i, (text, label) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sentiment140(path: Path, rows=LABELLED) -> Path:
    polarity = {"negative": "0", "neutral": "2", "positive": "4"}
    lines = [f'"{polarity[label]}","{i}","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user{i}","{text}"' for i, (text, label) in enumerate(rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1", errors="replace"))
    return path
