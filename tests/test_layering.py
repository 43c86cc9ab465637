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
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(SRC).parts[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - node.level + 1])
                mod = (base + (node.module.split(".") if node.module else []))
                out.add(mod[0] if mod else (node.names[0].name))
                if not node.module and not base:
                    out.update(a.name for a in node.names)
            elif node.module and node.module.startswith("ganforge."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ganforge."))
    return out - LEAVES


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_layering(unit):
    files = [SRC / unit] if unit.endswith(".py") else sorted((SRC / unit).rglob("*.py"))
    bad = {str(f.relative_to(SRC)): sorted(_imports(f) & FORBIDDEN[unit]) for f in files}
    assert not {k: v for k, v in bad.items() if v}
