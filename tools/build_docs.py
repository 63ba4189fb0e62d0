"""Build the offline docs site: every notebook in nbs/ as one HTML page, with nbconvert and tools/docs_template/.

No Quarto and nothing from the network: the pages load only the site's own style.css and pygments.css, images are
inlined. The README (tools/nb2readme.py) uses the same rules: `#| hide` cells are left out and `#|` directive lines are
stripped from the code shown; Quarto's `#| include: false`, `#| echo: false` and `#| output: false` are honoured too, and a
`show_doc(...)` cell shows only its saved API entry. index.ipynb is the home page (index.html); the navigation bar
lists it first, then the other notebooks in file-name order, each titled by its first `# ` heading.

The site is built into a temporary folder beside the destination and renamed into place, so a failed build leaves
an existing site untouched.
Usage: python tools/build_docs.py [--settings settings.ini] [--nbs nbs] [--out _docs]
"""
import argparse
import configparser
import posixpath
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent / "docs_template"
ROOT = Path(__file__).resolve().parent.parent
HOME = "index"
# The first of these an output has is shown; anything else (widget views, JavaScript, LaTeX needing MathJax) never
# renders, so a widget falls back to its text/html or text/plain.
DISPLAY_PRIORITY = ["text/html", "image/png", "image/svg+xml", "image/jpeg", "text/markdown", "text/plain"]
PYGMENTS_STYLE = "friendly"


class DocsError(Exception):
    "A notebook that cannot be read or rendered; the message names it."


# ---- Settings and the pages to write

def read_settings(path: Path) -> dict:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path, encoding="utf-8"):
        raise DocsError(f"{path}: settings file not found")
    return dict(parser["DEFAULT"])


def discover_notebooks(nbs_dir: Path) -> list[Path]:
    "The notebooks to publish: the home page first, then the rest in file-name order (nbdev skips `_` and `.` names)."
    found = sorted(p for p in nbs_dir.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    return sorted(found, key=lambda p: p.stem != HOME)


def page_file(notebook: Path) -> str:
    return f"{notebook.stem}.html"


def read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(path, as_version=4)
    except Exception as err:  # JSON, schema and I/O errors alike: the build must name the notebook
        raise DocsError(f"cannot read notebook {path}: {type(err).__name__}: {err}") from err


def notebook_title(nb, default: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return default


# ---- Directives and what each cell shows

DIRECTIVE = re.compile(r"^#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def cell_directives(source: str) -> dict[str, str]:
    "The `#|` directives of a cell (`#| hide` -> {'hide': ''}, `#| echo: false` -> {'echo': 'false'})."
    found = {}
    for line in source.splitlines():
        match = DIRECTIVE.match(line)
        if match:
            found[match[1]] = match[2].lower()
    return found


def strip_directives(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.startswith("#|")).strip()


def is_hidden(directives: dict[str, str]) -> bool:
    return "hide" in directives or directives.get("include") == "false"


def is_show_doc(code: str) -> bool:
    lines = [line for line in code.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("show_doc(") for line in lines)


def is_displayable(output) -> bool:
    "Streams and errors always render; rich outputs when one of their formats is in DISPLAY_PRIORITY."
    if output.output_type in ("stream", "error"):
        return True
    return any(mime in output.get("data", {}) for mime in DISPLAY_PRIORITY)


# nbdev's show_doc writes Pandoc link attributes (`[source](url){target="_blank" ...}`) that Markdown would print.
PANDOC_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)\{[^}]*\}")


def drop_pandoc_link_attributes(markdown: str) -> str:
    return PANDOC_LINK.sub(lambda m: f'<a class="source-link" href="{m[2]}">{m[1]}</a>', markdown)


def prepare_code_cell(cell):
    "The cell as the page shows it, or None when nothing of it is shown."
    directives = cell_directives(cell.source)
    if is_hidden(directives):
        return None
    code = strip_directives(cell.source)
    outputs = [] if directives.get("output") == "false" else [o for o in cell.outputs if is_displayable(o)]
    for output in outputs:
        markdown = output.get("data", {}).get("text/markdown")
        if markdown is not None:
            output.data["text/markdown"] = drop_pandoc_link_attributes(markdown)
    show_input = bool(code) and directives.get("echo") != "false" and not is_show_doc(code)
    if not show_input and not outputs:
        return None
    cell.source, cell.outputs = code, outputs
    cell.metadata["docs"] = {"show_input": show_input, "api": is_show_doc(code)}
    return cell


def prepare_notebook(nb):
    "Hidden cells dropped, directives stripped, outputs filtered; widget state removed (no widget manager is loaded)."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell = prepare_code_cell(cell)
        elif cell.cell_type == "markdown":
            cell = None if is_hidden(cell_directives(cell.source)) else cell
        else:
            cell = None  # raw cells are meant for other formats
        if cell is not None:
            cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb


# ---- Links in rendered Markdown

HREF = re.compile(r'(<a\s[^>]*?href=")([^"]*)(")')


def rewrite_href(href: str, link_base: str, pages: set[str], repo_url: str) -> str:
    """A link to a notebook points at its page; any other path inside the repository at the repository's copy of it.
    URLs, in-page anchors and absolute paths are left as they are. `link_base` is the notebook's folder, relative
    to the repository (README.md's notebook links from the repository's root)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
        return href
    path = posixpath.normpath(posixpath.join(link_base, parts.path))
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    folder, name = posixpath.split(path)
    stem, suffix = posixpath.splitext(name)
    if suffix == ".ipynb" and stem in pages and folder in ("", "nbs"):
        return f"{stem}.html{fragment}"
    if path.startswith(".."):
        return href  # outside the repository: nothing better to point at
    return f"{repo_url}/{path}{fragment}"


@jinja2.pass_context
def site_links(context, html: str) -> str:
    site = context["resources"]["site"]
    return HREF.sub(lambda m: m[1] + rewrite_href(m[2], site["link_base"], site["page_stems"], site["repo_url"]) + m[3],
                    html)


# ---- Rendering

def make_exporter():
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.HTMLExporter.extra_template_basedirs = [str(TEMPLATE_DIR.parent)]
    config.HTMLExporter.template_name = TEMPLATE_DIR.name
    config.HTMLExporter.exclude_input_prompt = True
    config.HTMLExporter.exclude_output_prompt = True
    config.HTMLExporter.anchor_link_text = "#"
    config.NbConvertBase.display_data_priority = DISPLAY_PRIORITY
    config.CoalesceStreamsPreprocessor.enabled = True  # consecutive prints are one block, `\r` progress bars collapsed
    exporter = HTMLExporter(config=config)
    exporter.register_filter("site_links", site_links)
    return exporter


def write_assets(out: Path) -> None:
    from pygments.formatters import HtmlFormatter

    shutil.copy(TEMPLATE_DIR / "style.css", out / "style.css")
    (out / "pygments.css").write_text(HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight") + "\n",
                                      encoding="utf-8")
    (out / ".nojekyll").touch()  # GitHub Pages: serve the files as they are


def render_page(exporter, nb, site: dict) -> str:
    try:
        html, _ = exporter.from_notebook_node(nb, resources={"site": site})
    except Exception as err:
        raise DocsError(f"cannot render {site['source']}: {type(err).__name__}: {err}") from err
    return html


def repository_url(settings: dict) -> str:
    return f"{settings['git_url'].rstrip('/')}/blob/{settings.get('branch', 'main')}"


def build_site(nbs_dir: Path, out: Path, settings: dict, root: Path = ROOT) -> list[Path]:
    """Write the site into `out`, replacing it only once every page is written; the pages written."""
    notebooks = discover_notebooks(nbs_dir)
    if not notebooks:
        raise DocsError(f"no notebooks in {nbs_dir}")
    read = {path: read_notebook(path) for path in notebooks}
    pages = [{"file": page_file(p), "title": notebook_title(nb, p.stem)} for p, nb in read.items()]
    repo_url = repository_url(settings)
    nbs_rel = posixpath.relpath(nbs_dir.resolve().as_posix(), root.resolve().as_posix())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the site from a web server running as another user
    try:
        exporter = make_exporter()
        written = []
        for (path, nb), page in zip(read.items(), pages):
            source = f"{nbs_rel}/{path.name}"
            site = {"project": settings.get("title", settings.get("repo", "")), "pages": pages, "file": page["file"],
                    "title": page["title"], "is_home": path.stem == HOME, "source": source,
                    "source_url": f"{repo_url}/{source}", "repo_url": repo_url,
                    "page_stems": {p.stem for p in notebooks},
                    "link_base": "" if path.name == settings.get("readme_nb") else nbs_rel}
            (staging / page["file"]).write_text(render_page(exporter, prepare_notebook(nb), site), encoding="utf-8")
            written.append(out / page["file"])
        write_assets(staging)
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def replace_folder(new: Path, old: Path) -> None:
    "Swap `new` in for `old` with renames, so `old` is never half-written."
    if old.exists():
        retired = Path(tempfile.mkdtemp(prefix=f"{old.name}.old.", suffix=".tmp", dir=old.parent))
        old.rename(retired / old.name)
        try:
            new.rename(old)
        except BaseException:
            (retired / old.name).rename(old)
            raise
        shutil.rmtree(retired)
    else:
        new.rename(old)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline docs site from the notebooks (nbconvert, no Quarto).")
    parser.add_argument("--settings", type=Path, default=ROOT / "settings.ini")
    parser.add_argument("--nbs", type=Path, help="notebook folder (default: nbs_path in settings.ini)")
    parser.add_argument("--out", type=Path, help="site folder (default: doc_path in settings.ini)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        settings = read_settings(args.settings)
        root = args.settings.resolve().parent
        nbs_dir = args.nbs or root / settings.get("nbs_path", "nbs")
        out = args.out or root / settings.get("doc_path", "_docs")
        written = build_site(nbs_dir, out, settings, root)
    except DocsError as err:
        print(f"build_docs: {err}", file=sys.stderr)
        return 1
    print(f"{len(written)} pages written to {out}/ in {time.perf_counter() - started:.1f}s "
          f"({', '.join(p.name for p in written)}); open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
