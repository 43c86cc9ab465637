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


# -- start-up: the torch-free layer and the lazy tables (docs/performance.md, start-up) -------------------------
# `import ganforge` and the CLI's parser import only these, and these import no third-party package at module
# level: `ganforge --help` and every argument error answer without torch. tests/test_startup.py checks the
# same fact at run time (sys.modules in a fresh process); this check names the import that breaks it.
LIGHT = {"__init__.py", "cli.py", "config.py", "registry.py", "errors.py", "commands/__init__.py",
         "recipes/__init__.py"}
STDLIB_OK = {"__future__", "argparse", "collections", "dataclasses", "difflib", "importlib", "inspect", "pathlib",
             "sys", "types", "typing"}


def _module_level_imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of the imports at the top level of a module (not inside functions)."""
    pkg = ["ganforge", *path.relative_to(SRC).parts[:-1]]
    out = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [f"{mod}.{a.name}" for a in node.names] if not node.module else [mod]
            out += [(n, node.lineno) for n in names]
    return out


@pytest.mark.parametrize("light", sorted(LIGHT))
def test_light_modules_import_no_heavy_module(light):
    light_names = {"ganforge." + p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in LIGHT}
    light_names |= {"ganforge", "ganforge.__version__"}
    bad = []
    for name, line in _module_level_imports(SRC / light):
        top = name.split(".")[0]
        if top == "ganforge" and name not in light_names and name.rpartition(".")[0] not in light_names - {"ganforge"}:
            bad.append(f"{light}:{line} imports {name}")
        elif top != "ganforge" and top not in STDLIB_OK:
            bad.append(f"{light}:{line} imports {name}")
    assert not bad, "a torch-free module imports a heavy one at module level:\n  " + "\n  ".join(bad)


def _declared(package: str) -> dict[str, str]:
    import importlib
    return dict(importlib.import_module(f"ganforge.{package}").MODULES)


@pytest.mark.parametrize("package,registry", [("recipes", "RECIPES"), ("data", "DATASETS")])
def test_each_module_registers_exactly_the_names_its_table_declares(package, registry):
    """A name the table declares is found in its module, and a module that registers a name is in the table
    (a new family forgotten there would be invisible to `ganforge list` and `ganforge train`)."""
    import importlib
    import pkgutil

    from ganforge import registry as reg

    table = getattr(reg, registry)
    for m in pkgutil.iter_modules([str(SRC / package)]):
        importlib.import_module(f"ganforge.{package}.{m.name}")
    found = {name: obj.__module__.rpartition(".")[2] for name, obj in table._objects.items()
             if getattr(obj, "__module__", "").startswith(f"ganforge.{package}.")}
    assert found == _declared(package), f"ganforge/{package}/__init__.py's MODULES and the @register calls differ"


def _lazy_edges() -> dict[str, set[str]]:
    """unit -> units it imports through a lazy table: the public API of __init__.py (`_API`) and the CLI's
    commands (a subcommand's `_module` names commands/<module>.py)."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    table = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_API")
    return {"__init__": {m.split(".")[0] for m in table.values()}, "cli": {"commands", "api"}}


def test_lazy_tables_are_edges_of_the_import_graph():
    """A lazy table imports later, not never: its edges count for the no-cycle rule like any import."""
    graph = _unit_graph()
    for unit, targets in _lazy_edges().items():
        for t in targets:
            graph[unit].setdefault(t, []).append("lazy table")
    cycle = _cycle(graph)
    assert cycle is None, "import cycle through a lazy table: " + " -> ".join(cycle)


# Imports of ganforge modules inside functions hide a dependency from a reader of the module's top: each has
# a reason here; a new one needs one too (or a module-level import).
LOCAL_IMPORTS = {
    ("data/base.py", "resolve"): "Domain reads a spec through data/__init__.py, which imports base.py",
    ("data/specs_text.py", "specs_shapes"): "the caption spec reuses the shapes renderer's loader when it is read",
    ("metrics/__init__.py", "evaluate"): "the metrics package's lazy __getattr__ (its docstring says why)",
    ("metrics/__init__.py", "periodic"): "the metrics package's lazy __getattr__",
    ("metrics/__init__.py", "features"): "the metrics package's lazy __getattr__",
    ("training/callbacks.py", "metrics.periodic"): "the evaluation stack, for runs with eval_every > 0 only",
    ("recipes/base.py", "viz"): "pictures are drawn at sample steps only",
    ("recipes/gan.py", "viz"): "pictures are drawn at sample steps only",
    ("recipes/simgan.py", "viz"): "pictures are drawn at sample steps only",
    ("recipes/dann.py", "viz"): "pictures are drawn at sample steps only",
    ("recipes/text2image.py", "data.specs_text"): "the caption tokenizer, needed when text is encoded",
    ("commands/serve/__init__.py", "app"): "the serve extra (starlette) is imported once it is checked to be installed",
    ("cli.py", "zoo"): "the zoo's manifests (and download.py's torch) for `ganforge list` only: the parser is torch-free",
}


def test_function_local_imports_of_the_package_have_a_reason():
    found = set()
    for f in sorted(SRC.rglob("*.py")):
        for fn in ast.walk(ast.parse(f.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ganforge")):
                    found.add((str(f.relative_to(SRC)), node.module or node.names[0].name))
                elif isinstance(node, ast.Import) and any(a.name.startswith("ganforge") for a in node.names):
                    found.add((str(f.relative_to(SRC)), node.names[0].name))
    missing = found - set(LOCAL_IMPORTS)
    assert not missing, f"function-local imports without a reason in LOCAL_IMPORTS: {sorted(missing)}"
