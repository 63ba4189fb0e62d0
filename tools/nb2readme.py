"""Render nbs/index.ipynb as README.md: the nbdev convention, without needing Quarto.

Markdown cells are copied as they are, visible code cells become fenced Python blocks followed by their
text outputs (`#| echo: false`: the outputs alone). Which cells are hidden and which lines are directives is decided as for the docs site (tools/build_docs.py).
Usage: python tools/nb2readme.py nbs/index.ipynb README.md
"""
import json, sys
from pathlib import Path

from build_docs import cell_directives, is_hidden, strip_directives  # a sibling script: tools/ is on the path

HEADER = "<!-- Generated from nbs/index.ipynb by tools/nb2readme.py (`make readme`): edit the notebook, not this file. -->\n\n"


def cell_text(cell) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def render_code(cell) -> str:
    source = cell_text(cell)
    directives = cell_directives(source)
    if is_hidden(directives): return ""
    code = strip_directives(source) if directives.get("echo") != "false" else ""  # `#| echo: false`: its output alone
    outputs = []
    for out in cell.get("outputs", []):
        text = out.get("text") or out.get("data", {}).get("text/plain")
        if text: outputs.append("".join(text) if isinstance(text, list) else text)
    block = f"```python\n{code}\n```\n" if code else ""
    return block + ("".join(f"\n```\n{o.rstrip()}\n```\n" for o in outputs))


def render(nb: dict) -> str:
    parts = [cell_text(c).strip() + "\n" if c["cell_type"] == "markdown" else render_code(c) for c in nb["cells"]]
    return HEADER + "\n".join(p for p in parts if p.strip())


if __name__ == "__main__":
    from sentiment_nb.cli import replace_when_complete  # the README is written whole or not at all, like every output

    src, dst = map(Path, sys.argv[1:3])
    text = render(json.loads(src.read_text(encoding="utf-8")))
    with replace_when_complete(dst) as f:
        f.write(text)
