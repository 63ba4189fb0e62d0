"""`make nbs-outputs` (tools/run_nbs.py): notebooks run in the project's kernel and saved with their outputs, whole or
not at all, without widget views that cannot render once the kernel is gone. On notebooks of our own, in a temp folder."""
import json, os, subprocess, sys

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def write_notebook(path, *sources):
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": s}
             for i, s in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "sentiment-nb", "display_name": "sentiment-nb",
                                "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")
    return path


def run_nbs(*paths, env=None):
    return subprocess.run([sys.executable, "tools/run_nbs.py", *map(str, paths)], cwd=ROOT, capture_output=True, text=True,
                          timeout=150, env=env)


def outputs(path):
    "Each cell's outputs, multi-line strings joined (nbformat saves them as lists of lines)."
    join = lambda value: "".join(value) if isinstance(value, list) else value
    def joined(out):
        return {**out, **({"text": join(out["text"])} if "text" in out else {}),
                **({"data": {mime: join(v) for mime, v in out["data"].items()}} if "data" in out else {})}
    return [[joined(out) for out in cell["outputs"]] for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def test_outputs_are_saved_and_widget_views_left_out(tmp_path):
    nb = write_notebook(tmp_path / "ok.ipynb",
                        "import os, sys\nprint(os.getcwd(), sys.prefix, os.environ.get('IN_TEST'))",
                        "import ipywidgets as w\nw.IntSlider(3)",  # a bare widget, like a progress bar: nothing to show without its state
                        "from IPython.display import display\n"
                        "class WithFallback:\n    def _repr_mimebundle_(self, **kw):\n"
                        "        return {**w.IntSlider(4)._repr_mimebundle_(**kw), 'text/html': '<b>static four</b>'}\n"
                        "WithFallback()")
    user_data = tmp_path / "user-data"  # a kernel of the project's name for the user, from a clone since removed
    (user_data / "kernels" / "sentiment-nb").mkdir(parents=True)
    (user_data / "kernels" / "sentiment-nb" / "kernel.json").write_text(json.dumps(
        {"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "other", "language": "python"}))
    result = run_nbs(nb, env={**os.environ, "JUPYTER_DATA_DIR": str(user_data)})
    assert result.returncode == 0, result.stderr[-3000:]
    printed, bare, fallback = outputs(nb)
    cwd, prefix, in_test = printed[0]["text"].split()
    assert (cwd, in_test) == (str(tmp_path), "None")  # run from its own folder, on the full data
    assert prefix == sys.prefix  # in the project's kernel
    assert bare == []
    assert sorted(fallback[0]["data"]) == ["text/html", "text/plain"] and fallback[0]["data"]["text/html"] == "<b>static four</b>"


def test_a_failing_notebook_keeps_its_old_outputs_and_the_others_still_run(tmp_path):
    broken = write_notebook(tmp_path / "broken.ipynb", "print('before')", "raise ValueError('a broken cell')")
    before = broken.read_bytes()
    fine = write_notebook(tmp_path / "fine.ipynb", "print('fine')")
    result = run_nbs(broken, fine)
    assert result.returncode == 1
    assert "broken.ipynb: FAILED, outputs left as they were" in result.stderr and "a broken cell" in result.stderr
    assert broken.read_bytes() == before
    assert outputs(fine)[0][0]["text"] == "fine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ipynb", "fine.ipynb"]  # no partial file left
