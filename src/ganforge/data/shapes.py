"""Procedural coloured shapes with known attributes: offline data for conditional, text-to-image and
unpaired-translation GANs.

Each image holds one shape (circle, square or triangle) of a named colour on a background of another
named colour, with a size ("small"/"large" plus continuous jitter) and a continuous position that also
has a coarse name. Because every attribute is known, a classifier on these images can score whether
a conditional generator (cGAN, arXiv:1411.1784), a text-to-image GAN (arXiv:1605.05396) or a CycleGAN
translator (arXiv:1703.10593, circle <-> square) kept the attributes it was asked to keep.

Geometry, in pixels of the image's own `resolution`: (cx, cy) is the centre of the shape's bounding
box, y grows downwards ("top" = small y), size_px is the side of that square bounding box (circle:
diameter; square: side; triangle: base and height, apex up). Shapes are drawn at 4x and downsampled
with LANCZOS so edges are anti-aliased.
"""
from __future__ import annotations

import types

import numpy as np
from PIL import Image, ImageDraw

from ..errors import GanforgeError

PALETTE = types.MappingProxyType({
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40),
    "white": (245, 245, 245), "black": (15, 15, 15), "purple": (140, 60, 180), "orange": (245, 140, 30),
})
KINDS = ("circle", "square", "triangle")
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right", "center")
# name -> values; a label is the index of a value in its tuple (stable across runs and subsets)
ATTRIBUTES = types.MappingProxyType({
    "kind": KINDS, "color": tuple(PALETTE), "background": tuple(PALETTE), "size": SIZES,
    "position": POSITIONS,
})

_SUPERSAMPLE = 4
_SIZE_RANGE = {"small": (0.22, 0.32), "large": (0.42, 0.55)}   # size_px / resolution
_CENTER_HALF = 0.1       # |cx - 0.5|, |cy - 0.5| below this (both, as fraction of resolution) = "center"
_CORNER_INNER = 0.12     # a corner shape's centre is at least this far from the middle, on both axes


def position_name(cx: float, cy: float, resolution: int) -> str:
    """Coarse name of a centre point: "center" within 10% of the middle on both axes, else its quadrant."""
    dx, dy = cx / resolution - 0.5, cy / resolution - 0.5
    if max(abs(dx), abs(dy)) < _CENTER_HALF:
        return "center"
    return ("top" if dy < 0 else "bottom") + " " + ("left" if dx < 0 else "right")


def _check(resolution: int, kinds) -> None:
    if resolution < 8:
        raise GanforgeError(f"shapes: resolution={resolution} is too small; use 8 or more")
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise GanforgeError(f"shapes: unknown kinds {bad or list(kinds)}; choose from {list(KINDS)}")


def _sample(rng: np.random.Generator, resolution: int, kind: str) -> dict:
    color, background = rng.choice(len(PALETTE), size=2, replace=False)
    size = SIZES[rng.integers(len(SIZES))]
    size_px = float(rng.uniform(*_SIZE_RANGE[size])) * resolution
    position = POSITIONS[rng.integers(len(POSITIONS))]
    half = size_px / 2 / resolution
    if position == "center":
        cx, cy = rng.uniform(0.5 - 0.8 * _CENTER_HALF, 0.5 + 0.8 * _CENTER_HALF, size=2)
    else:
        # the shape stays inside the image: its centre is at least `half` from the border
        lo, hi = half + 0.01, 0.5 - _CORNER_INNER
        cx, cy = rng.uniform(lo, max(lo, hi), size=2)
        cx = 1 - cx if position.endswith("right") else cx
        cy = 1 - cy if position.startswith("bottom") else cy
    attr = {"kind": kind, "color": list(PALETTE)[color], "background": list(PALETTE)[background],
            "size": size, "size_px": size_px, "cx": float(cx) * resolution, "cy": float(cy) * resolution,
            "position": position, "resolution": resolution}
    assert position_name(attr["cx"], attr["cy"], resolution) == position
    return attr


def draw(attr: dict, resolution: int | None = None) -> np.ndarray:
    """Render one attribute dict as uint8 H x W x 3; geometry is rescaled from attr["resolution"]."""
    resolution = resolution or attr["resolution"]
    _check(resolution, (attr["kind"],))
    for key, table in (("color", PALETTE), ("background", PALETTE)):
        if attr[key] not in table:
            raise GanforgeError(f"shapes: unknown {key} {attr[key]!r}; choose from {list(table)}")
    k = _SUPERSAMPLE * resolution / attr.get("resolution", resolution)
    cx, cy, r = attr["cx"] * k, attr["cy"] * k, attr["size_px"] * k / 2
    im = Image.new("RGB", (_SUPERSAMPLE * resolution,) * 2, PALETTE[attr["background"]])
    pen = ImageDraw.Draw(im)
    fill = PALETTE[attr["color"]]
    if attr["kind"] == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif attr["kind"] == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        pen.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    return np.asarray(im.resize((resolution, resolution), Image.LANCZOS), dtype=np.uint8)


def render_shapes(n: int, resolution: int = 32, seed: int = 0,
                  kinds=KINDS) -> tuple[np.ndarray, list[dict]]:
    """n images (uint8 N x H x W x 3) and their attribute dicts, deterministic in `seed`."""
    _check(resolution, kinds)
    if n < 0:
        raise GanforgeError(f"render_shapes: n={n} must be >= 0")
    rng = np.random.default_rng(seed)
    attrs = [_sample(rng, resolution, kinds[rng.integers(len(kinds))]) for _ in range(n)]
    images = np.zeros((n, resolution, resolution, 3), np.uint8)
    for i, attr in enumerate(attrs):
        images[i] = draw(attr, resolution)
    return images, attrs


def render_shape_pair(n: int, resolution: int = 32, seed: int = 0, kinds=("circle", "square")
                      ) -> tuple[np.ndarray, np.ndarray, list[dict], list[dict]]:
    """The same n attribute draws rendered as kinds[0] (domain A) and kinds[1] (domain B):
    (images_a, images_b, attrs_a, attrs_b). An unpaired task shuffles one side; the aligned order lets
    a test measure whether a translator A->B kept colour, background, size and position."""
    if len(kinds) != 2 or kinds[0] == kinds[1]:
        raise GanforgeError(f"render_shape_pair: kinds={kinds!r} must be two different kinds "
                            f"from {list(KINDS)}")
    images_a, attrs_a = render_shapes(n, resolution, seed, kinds=(kinds[0],))
    attrs_b = [dict(a, kind=kinds[1]) for a in attrs_a]
    images_b = np.stack([draw(a, resolution) for a in attrs_b]) if n else np.zeros_like(images_a)
    return images_a, images_b, attrs_a, attrs_b


def attribute_labels(attrs: list[dict]) -> dict[str, np.ndarray]:
    """Integer labels (int64, index into ATTRIBUTES[name]) for every attribute the dicts carry."""
    names = [name for name in ATTRIBUTES if attrs and all(name in a for a in attrs)]
    labels = {}
    for name in names:
        values = ATTRIBUTES[name]
        bad = sorted({a[name] for a in attrs} - set(values))
        if bad:
            raise GanforgeError(f"attribute_labels: unknown {name} values {bad}; "
                                f"known: {list(values)}")
        labels[name] = np.array([values.index(a[name]) for a in attrs], dtype=np.int64)
    return labels
