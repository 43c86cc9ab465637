"""CLI subcommands beyond the core ones, one module each: `add(subparsers)` registers the parser and sets
`func=run` via set_defaults; `run(args) -> int`. Every module in this package is enrolled by cli.py."""
import importlib
import pkgutil


def modules():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
