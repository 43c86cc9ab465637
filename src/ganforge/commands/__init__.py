"""The commands that read a trained run, one module each: the library function the Python API exports
(`ganforge.sample`, `export`, `interpolate`, `style_mix`, `translate`, `upscale`, `invert`) and `run(args)`,
the CLI's call of it. Their arguments are declared in cli.py, which imports no torch; cli.py imports the module
of the one command it runs (a subcommand's `_module` default). This package's own module stays torch-free too.

The checks below run before a command loads anything, so a wrong --out fails in one line at once rather
than in a traceback from PIL / os after the work is done (and before any folder is created)."""
from pathlib import Path

from ..errors import GanforgeError


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
