"""Write the course notebooks (NN_name.ipynb) from their sources in notebooks/src/ (NN_name.py).

    python notebooks/build.py            # rewrite every .ipynb from its source, outputs empty
    python notebooks/build.py --check    # exit 1 naming each .ipynb that differs from its source

A source is a plain Python file in the "percent" format: `# %% [markdown]` starts a markdown cell (each line
of it begins with `# `), `# %%` a code cell. The .ipynb files are committed with no outputs, so a diff shows
only what changed in the text; tests/test_notebooks.py runs them (slow) and checks they match (fast). Edit the
source and rebuild; an edit made in Jupyter is carried back by copying the cell into the source.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def cells(text: str) -> list[tuple[str, str]]:
    """[(kind, source)] of a percent-format file: kind "markdown" or "code"."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            out.append(("markdown" if "[markdown]" in line else "code", []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' cell marker: {line!r}")
    result = []
    for kind, lines in out:
        if kind == "markdown":
            bad = [ln for ln in lines if ln and not ln.startswith("#")]
            if bad:
                raise ValueError(f"a markdown line that does not start with '#': {bad[0]!r}")
            lines = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        result.append((kind, "\n".join(lines)))
    return result


def notebook(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": KERNEL, "language_info": {"name": "python"}}
    for i, (kind, text) in enumerate(cells(source.read_text())):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell["id"] = f"{source.stem[:2]}-{i:02d}"     # stable ids: rebuilding changes nothing that was not edited
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(source: Path) -> str:
    return nbformat.writes(notebook(source)) + "\n"


def sources() -> list[Path]:
    return sorted((HERE / "src").glob("[0-9][0-9]_*.py"))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for src in sources():
        target = HERE / f"{src.stem}.ipynb"
        text = render(src)
        if check:
            if not target.is_file() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
