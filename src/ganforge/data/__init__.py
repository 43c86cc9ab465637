"""Data specs (DESIGN §6): `name` or `name:ARG`, resolved by a registry to (Data, DataInfo).

Each module named in MODULES registers the specs it loads (`@DATASETS.register("name")`, next to its loader);
the batch keys, `Data`, the two-domain types and `Domain` are in base.py.
"""
from __future__ import annotations

# spec name (before the `:`) -> the module in this package that loads it (its `@DATASETS.register(name)`).
# registry.DATASETS imports a module the first time one of its specs is resolved, so a run on one data set does
# not pay for the other spec modules (docs/performance.md, start-up). Defined before the imports below, which
# register digits and folder while this package is still being imported. tests/test_layering.py checks the table.
MODULES = {
    "toy": "toy",                          # toy:gauss1d, toy:ring, toy:grid
    "csv": "tabular",                      # csv:PATH
    "digits": "images",                    # digits, digits:stacked
    "folder": "images",                    # folder:PATH
    "mnist": "archives",                   # mnist:DIR
    "cifar10": "archives",                 # cifar10:DIR
    "paired": "paired",                    # paired:DIR
    "unpaired": "paired",                  # unpaired:DIR
    "photos": "photos",                    # photos:TASK
    "shapeswap": "shapeswap",              # shapeswap:A2B
    "shapes": "specs_shapes",              # shapes, shapes:RES (and its variants, e.g. shapes:captions)
    "shapes:captions": "specs_text",       # shapes:captions
    "fonts": "specs_fonts",                # fonts, fonts:N
}

from ..registry import DATASETS  # noqa: E402
from .base import Batches, Data, DataInfo  # noqa: E402
from .images import resize_uint8, set_channels  # noqa: E402

__all__ = ["Batches", "Data", "DataInfo", "resolve", "DATASETS"]


def resolve(spec: str, *, split: str = "train", resolution: int | None = None, channels: int | None = None,
            skip_bad: bool = False, download: bool = False) -> tuple[Data, DataInfo]:
    """Load a data spec. Images come back at `resolution` (native when None) with `channels` (native when None)."""
    name, _, arg = spec.partition(":")
    loader = DATASETS.get_or_fail(name)
    data, info = loader(arg, split=split, resolution=resolution, channels=channels, skip_bad=skip_bad,
                        download=download)
    if info.kind == "image" and (resolution or channels):
        data.x = set_channels(resize_uint8(data.x, resolution or data.x.shape[-1]), channels)
        info.shape = tuple(data.x.shape[1:])
    if info.kind == "image":
        info.extra.setdefault("images", len(data))    # the health warnings count epochs with it (ada.OverfitWatch)
    return data, info
