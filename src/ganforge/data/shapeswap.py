"""`shapeswap:circles2squares` (any two of circles, squares, triangles): an offline unpaired-translation
task (CycleGAN, arXiv:1703.10593) drawn by the `shapes` renderer (data/shapes.py). `shapeswap:plain2striped`
and `striped2plain` are the appearance tasks of data/shapestyle.py (the same shapes, flat or striped).

Unpaired in training (the two domains are independent draws), aligned in the test split, so a translator can
be scored on whether it changed the kind and kept colour, background, size and position
(metrics/shapeswap.py: `shapeswap_scores` on `shapeswap_test_set`). Every batch is {"real": B, "cond": A}
in [-1, 1] (data/base.py): B the target kind, A the source kind.
"""
from __future__ import annotations

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, PairedData, UnpairedData, pair_info
from .images import to_nchw
from .shapes import render_shape_pair, render_shapes
from .shapestyle import load_style, parse_style

SHAPES_RESOLUTION = 32
SHAPE_KINDS = {"circles": "circle", "squares": "square", "triangles": "triangle"}


def parse_shapeswap(task: str) -> tuple[str, str]:
    src, sep, dst = task.partition("2")
    if not sep or src not in SHAPE_KINDS or dst not in SHAPE_KINDS or src == dst:
        raise GanforgeError(f"unknown shapeswap task {task!r}; use shapeswap:A2B with A, B two of "
                            f"{', '.join(SHAPE_KINDS)} (e.g. shapeswap:circles2squares), or a texture "
                            f"task: shapeswap:plain2striped, shapeswap:striped2plain")
    return SHAPE_KINDS[src], SHAPE_KINDS[dst]


def shapeswap_test_set(task: str, resolution: int = SHAPES_RESOLUTION, n: int = 256, seed: int = 1):
    """Aligned held-out pairs: (A uint8 N x 3 x H x W, B likewise, attribute dicts of B with "source_kind")."""
    kinds = parse_shapeswap(task)
    images_a, images_b, _, attrs_b = render_shape_pair(n, resolution, seed=10_000 + seed, kinds=kinds)
    attrs_b = [dict(a, source_kind=kinds[0]) for a in attrs_b]
    return to_nchw(images_a), to_nchw(images_b), attrs_b


def load_shapeswap(task: str, split: str, resolution: int | None, channels: int | None,
                   seed: int = 0, n: int = 1000) -> tuple[Data, DataInfo]:
    if channels not in (None, 3):
        raise GanforgeError("shapeswap tasks are colour images: drop channels (or use channels=3)")
    res = resolution or SHAPES_RESOLUTION
    if parse_style(task):
        return load_style(task, split, res, seed=seed, n=n)
    kinds = parse_shapeswap(task)
    extra = {"task": f"shapeswap:{task}", "kinds": list(kinds)}
    if split == "train":   # two independent draws: no image of A has its counterpart in B
        a, b = (to_nchw(render_shapes(n, res, seed=seed * 2 + d, kinds=(kinds[d],))[0]) for d in (0, 1))
        return UnpairedData(a, b, seed=seed), pair_info(f"shapeswap:{task}", a, b, paired=False, **extra)
    a, b, _ = shapeswap_test_set(task, res)
    return PairedData(a, b), pair_info(f"shapeswap:{task}", a, b, paired=True, **extra)


@DATASETS.register("shapeswap")
def _shapeswap(arg, *, split, resolution, channels, skip_bad, download):
    return load_shapeswap(arg, split, resolution, channels)
