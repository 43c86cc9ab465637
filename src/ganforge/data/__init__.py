"""Data specs (DESIGN §6): `name` or `name:ARG`, resolved by a registry to (Data, DataInfo).

Each module below registers the specs it loads (`@DATASETS.register("name")`, next to its loader); the batch
keys, `Data`, the two-domain types and `Domain` are in base.py.
"""
from __future__ import annotations

from ..registry import DATASETS
from .base import Batches, Data, DataInfo
from .images import resize_uint8, set_channels

# the spec modules, one a format or a task family (importing one registers its specs)
from . import toy          # noqa: F401 toy:gauss1d, toy:ring, toy:grid
from . import tabular      # noqa: F401 csv:PATH
from . import images       # noqa: F401 digits, digits:stacked, folder:PATH
from . import archives     # noqa: F401 mnist:DIR, cifar10:DIR
from . import paired       # noqa: F401 paired:DIR, unpaired:DIR
from . import photos       # noqa: F401 photos:TASK
from . import shapeswap    # noqa: F401 shapeswap:A2B
from . import specs_shapes  # noqa: F401 shapes, shapes:RES (and its variants, e.g. shapes:captions)
from . import specs_text   # noqa: F401 shapes:captions
from . import specs_fonts  # noqa: F401 fonts, fonts:N

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
    return data, info
