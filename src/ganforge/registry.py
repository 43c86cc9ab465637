"""Decorator registries: recipes, datasets, feature extractors. Registering enrolls a name everywhere."""
from __future__ import annotations

import difflib
from typing import Callable

from .errors import GanforgeError


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable:
        def deco(obj):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if isinstance(obj, type) and "name" not in obj.__dict__:
                obj.name = name      # a recipe says its name once, here (not inherited from a parent recipe)
            self[name] = obj
            return obj
        return deco

    def get_or_fail(self, name: str):
        if name not in self:
            raise GanforgeError(f"unknown {self.kind} {name!r}{suggest(name, self)}; "
                                f"`ganforge list` shows them all")
        return self[name]


def suggest(name: str, choices) -> str:
    # words in another order first ("lr_d" -> "d_lr"), then plain string similarity
    tokens = sorted(name.lower().replace("-", "_").split("_"))
    same = [c for c in choices if sorted(c.lower().replace("-", "_").split("_")) == tokens]
    close = same or difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


RECIPES = Registry("recipe")
DATASETS = Registry("data spec")
FEATURES = Registry("feature extractor")
