"""The course notebooks (notebooks/*.ipynb): each one executed end to end with nbclient (slow), and each one
the same as its source in notebooks/src/ with no outputs stored (fast).

    .venv/bin/pytest -m slow tests/test_notebooks.py     # what .ci/run runs; a few minutes per notebook

Each notebook runs in a fresh temporary working directory (its runs/ and pictures go there) on a kernel of
this very interpreter; the numeric checks inside the notebooks are asserts, so a check that fails fails here.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TIMEOUT = 900        # seconds per cell; each notebook is measured at a few minutes (README, "Course notebooks")


def test_there_is_a_notebook_per_block_of_the_syllabus():
    names = [p.stem for p in NOTEBOOKS]
    assert len(names) == 7, names
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f"notebooks/{name}.ipynb" in readme, f"README's notebook list lacks {name}"


def test_notebooks_match_their_sources_and_hold_no_outputs():
    pytest.importorskip("nbformat")
    r = subprocess.run([sys.executable, str(ROOT / "notebooks" / "build.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} holds outputs"


def test_drawing_a_run_s_pictures_leaves_the_notebook_s_matplotlib_alone(tmp_path):
    # ganforge used to call matplotlib.use("Agg") before each plot it wrote, which switched a notebook's inline
    # backend off: every plt.show() after the first training drew nothing. Now it draws without pyplot.
    code = ("import sys, torch\nfrom ganforge import viz\n"
            "viz.save_points(torch.randn(50, 2), sys.argv[1])\n"
            "viz.save_losses([{'step': 1, 'D/loss': 1.0}, {'step': 2, 'D/loss': 0.5}], sys.argv[2])\n"
            "import matplotlib\nprint(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    paths = [tmp_path / "points.png", tmp_path / "losses.png"]
    out = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": "svg"})
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000, out.stderr
    assert out.stdout.split() == ["svg", "False"], out.stdout + out.stderr


def kernel_check() -> str:
    """A first cell that fails unless the kernel is this interpreter (with this ganforge)."""
    import ganforge

    return (f"import sys, ganforge\nassert sys.prefix == {sys.prefix!r}, sys.prefix\n"
            f"assert ganforge.__file__ == {ganforge.__file__!r}, ganforge.__file__")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_end_to_end(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(kernel_check()))
    monkeypatch.chdir(tmp_path)
    # the kernel is the "python3" kernelspec, which jupyter_client starts with sys.executable (the first cell
    # checks); matplotlib draws without a display; one thread unless the caller set more
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()
    print(f"{path.name}: {time.perf_counter() - t0:.0f} s")
