"""The outputs saved in the notebooks (`make nbs-outputs`): every notebook shows results, they stay small enough to diff,
and none of them republishes the SemEval corpus's tweets."""
import base64, html, json, re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parent.parent / "nbs"
NOTEBOOKS = sorted(NBS.glob("*.ipynb"))
MAX_PNG_BYTES = 150_000
MAX_TEXT_LINES = 80
MAX_HTML_CHARS = 25_000
SHINGLE = 7  # words in a row that an output may share with a corpus tweet before it counts as a copy


def outputs(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [out for cell in cells if cell["cell_type"] == "code" for out in cell.get("outputs", [])]


def joined(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def shown_texts(out: dict) -> list[str]:
    "What a reader sees of one output, as text: streams, plain text, HTML and markdown with their tags and entities removed."
    data = out.get("data", {})
    texts = [joined(out["text"])] if "text" in out else []
    texts += [joined(data[m]) for m in ("text/plain", "text/markdown") if m in data]
    if "text/html" in data: texts.append(html.unescape(re.sub(r"<[^>]+>", " ", joined(data["text/html"]))))
    return texts


def shingles(text: str) -> set[int]:
    words = re.findall(r"\w+", text.lower())
    return {hash(tuple(words[i:i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_keeps_outputs_for_its_reader(notebook):
    assert outputs(notebook), f"{notebook.name} has no saved outputs: run `make nbs-outputs`"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_stay_small(notebook):
    for i, out in enumerate(outputs(notebook)):
        data = out.get("data", {})
        if "image/png" in data:
            size = len(base64.b64decode(joined(data["image/png"])))
            assert size <= MAX_PNG_BYTES, f"{notebook.name}, output {i}: a {size:,}-byte PNG (at most {MAX_PNG_BYTES:,})"
        for text in [joined(out.get("text", "")), joined(data.get("text/plain", ""))]:
            assert text.count("\n") <= MAX_TEXT_LINES, f"{notebook.name}, output {i}: {text.count(chr(10))} lines of text"
        assert len(joined(data.get("text/html", ""))) <= MAX_HTML_CHARS, f"{notebook.name}, output {i}: HTML too long to diff"
        assert "application/vnd.jupyter.widget-view+json" not in data, f"{notebook.name}, output {i}: a saved widget view (dead without its state)"


def test_saved_outputs_show_no_corpus_tweet(corpus):
    "The corpus may not be redistributed, so no saved output may repeat 7 words in a row of one of its tweets."
    copied = set().union(*map(shingles, corpus.text))
    leaks = [f"{notebook.name}, output {i}" for notebook in NOTEBOOKS for i, out in enumerate(outputs(notebook))
             if any(shingles(text) & copied for text in shown_texts(out))]
    assert not leaks, f"saved outputs repeat corpus tweets (not quoted here either): {leaks}"
