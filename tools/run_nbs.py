"""Run notebooks in the project's kernel and save their outputs (`make nbs-outputs`): the outputs a reader of the notebooks,
README and docs site sees.

Notebooks run as a user runs them: in the `sentiment-nb` kernel, from `nbs/`, on the full data where it is available
(`IN_TEST` is unset). Each notebook is written whole, and only when every cell ran: a failing notebook keeps its old outputs.
Widget views are not saved (without their state they cannot render): a widget output keeps the static HTML it carries
beside them, and one without (a progress bar) is dropped.
Usage: python tools/run_nbs.py [NOTEBOOK ...]   (default: every notebook in nbs/)
"""
import argparse, os, sys, time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NBS = Path(__file__).resolve().parent.parent / "nbs"
KERNEL = "sentiment-nb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def without_widget_view(out):
    "`out` without its widget view: its HTML fallback if it has one, else nothing (a progress bar's text is its first frame)."
    data = out.get("data", {})
    if WIDGET_VIEW not in data: return out
    if "text/html" not in data: return None
    del data[WIDGET_VIEW]
    return out


def drop_widget_views(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code": cell.outputs = [o for o in map(without_widget_view, cell.outputs) if o is not None]


def run_notebook(path: Path, timeout: int) -> nbformat.NotebookNode:
    "`path` executed top to bottom in the project's kernel, in its own folder."
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    drop_widget_views(nb)
    return nb


def save_notebook(nb, path: Path) -> None:
    from sentiment_nb.cli import replace_when_complete  # written whole or not at all
    with replace_when_complete(path) as f: nbformat.write(nb, f)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every notebook in nbs/)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take")
    args = parser.parse_args(argv)
    os.environ.pop("IN_TEST", None)  # the kernel inherits this environment: full data
    failed = []
    for path in args.notebooks or sorted(NBS.glob("*.ipynb")):
        start = time.perf_counter()
        try: nb = run_notebook(path, args.timeout)
        except CellExecutionError as e:
            failed.append(path.name)
            print(f"{path.name}: FAILED, outputs left as they were\n{e}", file=sys.stderr)
            continue
        save_notebook(nb, path)
        outputs = sum(len(c.outputs) for c in nb.cells if c.cell_type == "code")
        print(f"{path.name}: {outputs} outputs in {time.perf_counter() - start:.0f} s", flush=True)
    if failed: print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
