"""Dependencies point one way (DESIGN §2): building blocks never import the layers built on them."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ganforge"
LEAVES = {"errors", "registry", "download", "precision"}     # importable from anywhere

# package -> top-level ganforge modules it must not import
FORBIDDEN = {
    "nn": {"models", "recipes", "training", "cli", "api", "commands", "data", "metrics", "losses"},
    "models": {"recipes", "training", "cli", "api", "commands", "metrics"},
    "precision.py": {"models", "recipes", "training", "cli", "api", "commands", "data", "metrics", "nn", "losses",
                     "regularizers"},
    "losses.py": {"models", "recipes", "training", "cli", "api", "commands", "data", "metrics", "nn"},
    "regularizers.py": {"recipes", "training", "cli", "api", "commands", "data", "metrics"},
    "data": {"models", "recipes", "training", "cli", "api", "commands", "metrics", "nn"},
    "recipes": {"cli", "commands"},
    "training": {"cli", "commands"},
    # metrics score generators and folders; the run folder is read through runs.py, never through api/training
    "metrics": {"recipes", "training", "cli", "commands", "api"},
    # runs.py reads run folders for api, metrics and commands alike, so it sits below all of them
    "runs.py": {"training", "cli", "commands", "metrics"},
}


def _import_names(path: Path) -> list[tuple[str, int]]:
    """(top-level ganforge name, line) of every import in the file: module level and inside functions."""
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(SRC).parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - node.level + 1])
                mod = (base + (node.module.split(".") if node.module else []))
                out.append((mod[0] if mod else (node.names[0].name), node.lineno))
                if not node.module and not base:
                    out += [(a.name, node.lineno) for a in node.names]
            elif node.module and node.module.startswith("ganforge."):
                out.append((node.module.split(".")[1], node.lineno))
            elif node.module == "ganforge":
                out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], node.lineno) for a in node.names if a.name.startswith("ganforge.")]
    return out


def _imports(path: Path) -> set[str]:
    return {name for name, _ in _import_names(path)} - LEAVES


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_layering(unit):
    files = [SRC / unit] if unit.endswith(".py") else sorted((SRC / unit).rglob("*.py"))
    bad = {str(f.relative_to(SRC)): sorted(_imports(f) & FORBIDDEN[unit]) for f in files}
    assert not {k: v for k, v in bad.items() if v}


def _unit_graph() -> dict[str, dict[str, list[str]]]:
    """unit -> unit it imports -> where ("file:line"). A unit is a subpackage (nn, models, recipes, training,
    data, metrics, commands) or a top-level module; names that are no unit (`from . import __version__`,
    a constant of the package) are left out."""
    units = {p.name if p.is_dir() else p.stem: p for p in SRC.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    graph: dict[str, dict[str, list[str]]] = {u: {} for u in units}
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC)
        unit = rel.parts[0] if len(rel.parts) > 1 else f.stem
        for name, line in _import_names(f):
            if name in units and name != unit:
                graph[unit].setdefault(name, []).append(f"{rel}:{line}")
    return graph


def _cycle(graph: dict[str, dict[str, list[str]]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    path: list[str] = []

    def visit(u):
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return path[path.index(v):] + [v]
            if v not in state and (found := visit(v)):
                return found
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_no_import_cycle_between_units():
    """The whole import graph, function-local imports included: a local import hides a cycle from Python's
    import machinery, not from the design."""
    graph = _unit_graph()
    cycle = _cycle(graph)
    where = [f"{a} -> {b} ({', '.join(graph[a][b][:3])})" for a, b in zip(cycle, cycle[1:])] if cycle else []
    assert cycle is None, "import cycle: " + " -> ".join(cycle or []) + "\n  " + "\n  ".join(where)


def test_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": []}, "b": {"c": []}, "c": {}}) is None
