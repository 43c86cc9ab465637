"""`shapes`, `shapes:32`, `shapes:64`: procedurally rendered coloured shapes with their attributes (offline).

One shape (circle / square / triangle) of a named colour on a background of another, with a size and a
position (data/shapes.py). Made for Progressive GAN (arXiv:1710.10196) and StyleGAN (arXiv:1812.04948) on a
CPU: coarse styles (position, size, kind), middle (edges) and fine (colour) each have something to hold.
The train split is 20,000 images rendered from seed 0, the test split 5,000 from seed 1, so the two never
share a draw and every run sees the same bytes. The class label is the shape's kind; every attribute is
kept (`ShapesData.attrs`, the dicts; `ShapesData.attributes`, an int64 N x 5 table in the column order of
`info.extra["attributes"]`), and each batch carries its rows as "attributes" so other families (conditional,
text-to-image) can condition on or score them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo
from .images import to_nchw
from .shapes import ATTRIBUTES, KINDS, attribute_labels, render_shapes

SPLITS = {"train": (20_000, 0), "test": (5_000, 1)}    # split -> (images, render seed)
DEFAULT_RESOLUTION = 32


class ShapesData(Data):
    """Images (uint8 N x 3 x H x W), kind labels, and every attribute: a batch also holds "attributes"."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, attrs: list[dict], attributes: torch.Tensor):
        super().__init__(x, y)
        self.attrs, self.attributes = attrs, attributes

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(idx)
        out["attributes"] = self.attributes[idx]
        return out


def shapes_info(spec: str, resolution: int) -> DataInfo:
    return DataInfo(spec, "image", (3, resolution, resolution), num_classes=len(KINDS), class_names=list(KINDS),
                    extra={"attributes": {name: list(values) for name, values in ATTRIBUTES.items()},
                           "label": "kind"})


def load_shapes(resolution: int = DEFAULT_RESOLUTION, split: str = "train", n: int | None = None,
                spec: str | None = None) -> tuple[ShapesData, DataInfo]:
    """Render the `shapes` split at `resolution` (deterministic; n < the split size takes its first n)."""
    if split not in SPLITS:
        raise GanforgeError(f"shapes has splits {', '.join(SPLITS)}; got {split!r}")
    size, seed = SPLITS[split]
    n = size if n is None else n
    if not 0 < n <= size:
        raise GanforgeError(f"shapes: n={n} must be in 1..{size} for the {split} split")
    # render_shapes draws every attribute before any pixel, but its rng interleaves per image: the first
    # n of a split are the same images whatever n is, so a small n is a prefix of the full split
    images, attrs = render_shapes(n, resolution, seed)
    x = to_nchw(images)
    labels = attribute_labels(attrs)
    attributes = torch.from_numpy(np.stack([labels[name] for name in ATTRIBUTES], axis=1))
    y = attributes[:, list(ATTRIBUTES).index("kind")].clone()
    return ShapesData(x, y, attrs, attributes), shapes_info(spec or f"shapes:{resolution}", resolution)


def parse_resolution(arg: str, resolution: int | None) -> int:
    """`shapes` -> the config's resolution or 32; `shapes:64` -> 64 (a config resolution still wins, rendered
    sharp at that size rather than resized)."""
    if arg:
        try:
            native = int(arg)
        except ValueError:
            native = 0
        if native < 8:
            raise GanforgeError(f"shapes:{arg} is not a resolution; use shapes, shapes:32 or shapes:64 "
                                f"(any size >= 8 works)")
    else:
        native = DEFAULT_RESOLUTION
    return resolution or native


@DATASETS.register("shapes")
def _shapes(arg, *, split, resolution, channels, skip_bad, download):
    variant, _, rest = arg.partition(":")
    if variant and not variant.isdigit():
        # `shapes:VARIANT[:ARG]` goes to a loader another family registered as "shapes:VARIANT"
        # (e.g. shapes:captions), which receives ARG and builds on load_shapes
        loader = DATASETS.get(f"shapes:{variant}")
        if loader is None:
            known = sorted(k.partition(":")[2] for k in DATASETS if k.startswith("shapes:"))
            raise GanforgeError(f"unknown shapes variant {variant!r}; use shapes, shapes:32, shapes:64"
                                + "".join(f", shapes:{k}" for k in known))
        return loader(rest, split=split, resolution=resolution, channels=channels, skip_bad=skip_bad,
                      download=download)
    res = parse_resolution(arg, resolution)
    return load_shapes(res, split, spec="shapes" + (f":{arg}" if arg else ""))
