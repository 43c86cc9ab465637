"""Decorator registries: recipes, datasets, feature extractors. Registering enrolls a name everywhere.

The built-in recipes and data specs are *declared* in a table (`MODULES`, name -> module, in recipes/__init__.py
and data/__init__.py) and their module is imported the first time its object is asked for. Why: importing
all 16 families and 10 spec modules costs more than a quarter of a second on top of torch, and `import
ganforge`, `ganforge --help` or `ganforge train dcgan` need none or one of them. The names are known without
any import, so `name in RECIPES`, `sorted(RECIPES)`, `get_or_fail`'s suggestions and `ganforge list`'s data
specs cost nothing; `RECIPES[name]`, `.items()` and `.values()` import what they return. A name registered
with `@register` (a user's recipe) is an ordinary entry beside the declared ones.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import MutableMapping
from typing import Callable

from .errors import GanforgeError


class Registry(MutableMapping):
    def __init__(self, kind: str, table: str | None = None):
        self.kind = kind
        self._table = table                         # package whose MODULES declares the built-in names
        self._declared: dict[str, str] | None = None   # name -> full module name, read on first use
        self._objects: dict[str, object] = {}

    def declared(self) -> dict[str, str]:
        """name -> module of the built-in entries (none for a registry without a table)."""
        if self._declared is None:
            table = importlib.import_module(self._table).MODULES if self._table else {}
            self._declared = {name: f"{self._table}.{module}" for name, module in table.items()}
        return self._declared

    def register(self, name: str) -> Callable:
        def deco(obj):
            module = self.declared().get(name)
            if module is not None and getattr(obj, "__module__", None) != module:
                raise ValueError(f"{self.kind} {name!r} is a built-in name (declared for {module}); choose another")
            if name in self._objects:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if isinstance(obj, type) and "name" not in obj.__dict__:
                obj.name = name      # a recipe says its name once, here (not inherited from a parent recipe)
            self._objects[name] = obj
            return obj
        return deco

    def get_or_fail(self, name: str):
        if name not in self:
            raise GanforgeError(f"unknown {self.kind} {name!r}{suggest(name, self)}; "
                                f"`ganforge list` shows them all")
        return self[name]

    # -- the mapping: declared names are loaded when their object is read -------------------------------------
    def __getitem__(self, name: str):
        if name not in self._objects and name in self.declared():
            importlib.import_module(self._declared[name])      # its @register call fills the entry
            if name not in self._objects:
                raise ImportError(f"{self._declared[name]} is declared for {self.kind} {name!r} but does not "
                                  f"register it (@register({name!r}) missing, or the MODULES line is wrong)")
        return self._objects[name]

    def __contains__(self, name) -> bool:
        return name in self._objects or name in self.declared()

    def __iter__(self):
        return iter(dict.fromkeys([*self.declared(), *self._objects]))

    def __len__(self) -> int:
        return len(self.declared().keys() | self._objects.keys())

    def __setitem__(self, name: str, obj) -> None:
        self._objects[name] = obj

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._objects.pop(name, None)
        self.declared().pop(name, None)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self)})"


def suggest(name: str, choices) -> str:
    # words in another order first ("lr_d" -> "d_lr"), then plain string similarity
    tokens = sorted(name.lower().replace("-", "_").split("_"))
    same = [c for c in choices if sorted(c.lower().replace("-", "_").split("_")) == tokens]
    close = same or difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


RECIPES = Registry("recipe", table="ganforge.recipes")
DATASETS = Registry("data spec", table="ganforge.data")
FEATURES = Registry("feature extractor")
