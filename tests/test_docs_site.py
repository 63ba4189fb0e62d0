"""The docs site (`make docs`, tools/build_docs.py): built from the notebooks, served from 127.0.0.1 and read in Debian's
Chromium through its navigation bar; and the builder's rules, checked on a small notebook project of our own."""
import functools
import http.server
import importlib.util
import json
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT, free_port
from tests.test_app_browser import ARTIFACTS

pytestmark = pytest.mark.timeout(120)

# What a page shows of an output, in the builder's order; an output with none of these (a bare widget view) shows nothing.
SHOWN_MIMES = {"text/html", "image/png", "image/svg+xml", "image/jpeg", "text/markdown", "text/plain"}
REPO_URL = "https://github.com/sentiment-nb/sentiment-nb/blob/main"


@pytest.fixture(scope="module")
def build_docs():
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "tools" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- What the notebooks say the site must show, read from their JSON (not through the builder)

def source(cell) -> str:
    return "".join(cell["source"])


def is_hidden(cell) -> bool:
    return any(line.replace(" ", "") in ("#|hide", "#|include:false") for line in source(cell).splitlines())


def shown_output_count(nb: dict) -> int:
    "Saved outputs of the visible cells a reader sees: consecutive prints to the same stream are one block."
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or is_hidden(cell):
            continue
        previous_stream = None
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                count += output["name"] != previous_stream
                previous_stream = output["name"]
                continue
            previous_stream = None
            count += output["output_type"] == "error" or bool(SHOWN_MIMES & set(output.get("data", {})))
    return count


def first_heading(nb: dict) -> str:
    return next(line[2:].strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                for line in source(cell).splitlines() if line.startswith("# "))


def first_markdown_table_header(nb: dict) -> list[str]:
    for cell in nb["cells"]:
        lines = source(cell).splitlines() if cell["cell_type"] == "markdown" else []
        for line, below in zip(lines, lines[1:]):
            if line.startswith("|") and below.replace("|", "").replace("-", "").replace(":", "").strip() == "":
                return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError("index.ipynb has no Markdown table")


def expected_pages(nbs: Path) -> list[dict]:
    "The home page first, then every notebook in file-name order."
    paths = sorted(nbs.glob("*.ipynb"), key=lambda p: (p.stem != "index", p.name))
    return [{"file": f"{p.stem}.html", "notebook": json.loads(p.read_text(encoding="utf-8"))} for p in paths]


# ---- A small project of our own: notebooks written for these tests, never corpus data

def markdown_cell(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code_cell(text, outputs=()):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": list(outputs), "source": text}


def write_notebook(path: Path, cells) -> Path:
    cells = [{**cell, "id": f"cell-{i}"} for i, cell in enumerate(cells)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


SHOW_DOC_MARKDOWN = ("---\n\n[source](https://github.com/sentiment-nb/sentiment-nb/blob/main/fixture.py#L1)"
                     '{target="_blank" style="float:right; font-size:smaller"}\n\n### greet\n\n'
                     "```python\ndef greet(\n    name:str, # who\n)->str:\n```\n\n*Say hello to `name`.*")


def write_fixture_project(folder: Path) -> Path:
    "settings.ini and nbs/ with a home page and one API notebook; the settings file's path."
    nbs = folder / "nbs"
    nbs.mkdir(parents=True)
    write_notebook(nbs / "index.ipynb", [
        markdown_cell("# Fixture home\n\n> A site of two pages."),
        markdown_cell("| step | notebook |\n|---|---|\n| api | [the API](nbs/01_api.ipynb#greet) |\n\n"
                      "Results: [bench/RESULTS.md](bench/RESULTS.md)."),
    ])
    write_notebook(nbs / "01_api.ipynb", [
        markdown_cell("# Fixture API\n\nBack [home](index.ipynb)."),
        code_cell("#| default_exp api"),
        code_cell("#| export\ndef greet(name: str) -> str:\n    \"Say hello to `name`.\"\n    return f'hello {name}'"),
        code_cell("show_doc(greet)", [{"output_type": "execute_result", "execution_count": 2, "metadata": {},
                                       "data": {"text/markdown": SHOW_DOC_MARKDOWN, "text/plain": "greet(name)"}}]),
        code_cell("#| hide\nsecret_hidden_cell()", [{"output_type": "stream", "name": "stdout", "text": "HIDDEN OUTPUT\n"}]),
        code_cell("print('shown')", [{"output_type": "stream", "name": "stdout", "text": "shown\n"}]),
        code_cell("slider", [{"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
            "text/html": "<p class='widget-fallback'>threshold 0.5</p>", "text/plain": "IntSlider(value=5)"}}]),
        code_cell("bare_widget", [{"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "def", "version_major": 2, "version_minor": 0},
            "text/plain": "Dropdown(options=('a', 'b'))"}}]),
    ])
    settings = folder / "settings.ini"
    settings.write_text("[DEFAULT]\ntitle = fixture\nnbs_path = nbs\ndoc_path = _docs\nreadme_nb = index.ipynb\n"
                        "branch = main\ngit_url = https://github.com/sentiment-nb/sentiment-nb\n", encoding="utf-8")
    return settings


@pytest.fixture
def fixture_site(build_docs, tmp_path) -> Path:
    settings = write_fixture_project(tmp_path)
    assert build_docs.main(["--settings", str(settings)]) == 0
    return tmp_path / "_docs"


# ---- The builder's rules

def test_hidden_cells_are_left_out_and_directive_lines_stripped(fixture_site):
    api = (fixture_site / "01_api.html").read_text(encoding="utf-8")
    assert "secret_hidden_cell" not in api and "HIDDEN OUTPUT" not in api
    assert "#|" not in api and "default_exp" not in api
    assert "greet" in api and "shown" in api


def test_widget_views_fall_back_to_html_or_text(fixture_site):
    api = (fixture_site / "01_api.html").read_text(encoding="utf-8")
    assert "widget-fallback" in api and "Dropdown(options=" in api
    assert "widget-view+json" not in api and "widget-state" not in api and "IntSlider" not in api


def test_links_to_notebooks_point_at_pages_and_other_files_at_the_repository(build_docs, fixture_site):
    pages = {"index", "02_models"}
    rewrite = functools.partial(build_docs.rewrite_href, pages=pages, repo_url=REPO_URL)
    assert rewrite("nbs/02_models.ipynb", link_base="") == "02_models.html"
    assert rewrite("02_models.ipynb#results", link_base="nbs") == "02_models.html#results"
    assert rewrite("bench/RESULTS.md", link_base="") == f"{REPO_URL}/bench/RESULTS.md"
    assert rewrite("../bench/RESULTS.md", link_base="nbs") == f"{REPO_URL}/bench/RESULTS.md"
    for unchanged in ("https://example.org/a.ipynb", "#results", "mailto:dev@example.org", "/absolute"):
        assert rewrite(unchanged, link_base="nbs") == unchanged
    home = (fixture_site / "index.html").read_text(encoding="utf-8")
    assert 'href="01_api.html#greet"' in home and f'href="{REPO_URL}/bench/RESULTS.md"' in home
    assert 'href="index.html">home</a>' in (fixture_site / "01_api.html").read_text(encoding="utf-8")


def test_an_unreadable_notebook_fails_the_build_and_leaves_the_site_untouched(build_docs, tmp_path, capsys):
    settings = write_fixture_project(tmp_path)
    assert build_docs.main(["--settings", str(settings)]) == 0
    site = tmp_path / "_docs"
    before = {p.name: p.read_bytes() for p in site.iterdir()}
    (tmp_path / "nbs" / "02_broken.ipynb").write_text('{"cells": [', encoding="utf-8")

    assert build_docs.main(["--settings", str(settings)]) == 1
    assert "02_broken.ipynb" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in site.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_docs", "nbs", "settings.ini"]  # no partial site left


# ---- The site in a real browser

@contextmanager
def static_server(folder: Path):
    "`folder` served on 127.0.0.1 and a free port by a thread; stopped on exit."
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def offline_page(browser, base_url: str):
    "A page that may load only from `base_url`: any other request is refused and reported, like console errors."
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    elsewhere, console_errors = [], []

    def only_local(route):
        if route.request.url.startswith(base_url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        yield page
        assert elsewhere == [], f"requests beyond the local server (a CDN?): {elsewhere}"
        assert console_errors == []
    finally:
        page.close()


def heading_text(locator) -> str:
    return locator.text_content().removesuffix("#").strip()  # the heading's anchor link reads "#"


def test_every_page_is_reached_through_the_navigation_bar_and_renders_offline(build_docs, browser, tmp_path):
    site = tmp_path / "_docs"
    build_docs.build_site(ROOT / "nbs", site, build_docs.read_settings(ROOT / "settings.ini"), ROOT)
    expected = expected_pages(ROOT / "nbs")
    ARTIFACTS.mkdir(exist_ok=True)
    with static_server(site) as url, offline_page(browser, url) as page:
        page.goto(url + "/")
        nav = page.locator(".site-nav a")
        assert [nav.nth(i).get_attribute("href") for i in range(nav.count())] == [p["file"] for p in expected]
        assert [nav.nth(i).text_content() for i in range(nav.count())] == [first_heading(p["notebook"]) for p in expected]

        for i, want in enumerate(expected):
            page.locator(".site-nav a").nth(i).click()
            page.wait_for_url(f"{url}/{want['file']}")
            assert page.locator(".site-nav a.current").get_attribute("href") == want["file"]
            assert heading_text(page.locator("main h1").first) == first_heading(want["notebook"])
            outputs = page.locator("main .nb-output")
            assert outputs.count() == shown_output_count(want["notebook"]), want["file"]
            if outputs.count():
                assert outputs.first.is_visible()
            if want["file"] == "index.html":
                header = page.locator("main .cell.markdown table").first.locator("th")  # not a table an output shows
                assert [header.nth(j).text_content() for j in range(header.count())] == \
                    first_markdown_table_header(want["notebook"])
                page.screenshot(path=str(ARTIFACTS / "docs-home.png"), full_page=True)
            if want["file"] == "02_models.html":
                page.screenshot(path=str(ARTIFACTS / "docs-models.png"), full_page=True)


def test_a_saved_show_doc_entry_renders_as_an_api_entry(fixture_site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    with static_server(fixture_site) as url, offline_page(browser, url) as page:
        page.goto(url + "/01_api.html")
        entry = page.locator(".api-entry")
        assert entry.count() == 1
        assert heading_text(entry.locator("h3")) == "greet"
        assert "def greet(" in entry.locator("pre").text_content()
        assert entry.locator(".nb-input").count() == 0  # the show_doc(...) call itself is not shown
        assert entry.locator("a.source-link").get_attribute("href").startswith("https://github.com/sentiment-nb/")
        assert "{target=" not in entry.text_content()
        assert page.locator("main .nb-output").count() == 4  # show_doc, print, two widgets' fallbacks; not the hidden cell
        page.screenshot(path=str(ARTIFACTS / "docs-fixture-api.png"), full_page=True)
