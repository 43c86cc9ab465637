"""CLI subcommands beyond the core ones, one module each: `add(subparsers)` registers the parser and sets
`func=run` via set_defaults; `run(args) -> int`. Every module in this package is enrolled by cli.py.

The checks below run before a command loads anything, so a wrong --out fails in one line at once rather
than in a traceback from PIL / os after the work is done (and before any folder is created)."""
import importlib
import pkgutil
from pathlib import Path

from ..errors import GanforgeError


def modules():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]


def out_file(path, suffixes: tuple[str, ...], what: str) -> Path:
    """--out FILE: a file name ending in one of `suffixes` (what the command writes), not an existing folder."""
    p = Path(path)
    if p.suffix.lower() not in suffixes or p.is_dir():
        names = " or ".join(suffixes)
        raise GanforgeError(f"--out {str(p)!r}: {what}; give a {names} file name")
    return p


def out_dir(path) -> Path:
    """--out DIR: a folder (made if missing), not an existing file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise GanforgeError(f"--out {str(p)!r} is a file; give a folder (it is created if missing)")
    return p
