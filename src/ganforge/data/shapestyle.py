"""`shapeswap:plain2striped` (and `striped2plain`): an offline unpaired *appearance* task for CycleGAN
(Zhu et al. 2017, arXiv:1703.10593), the kind of change the paper shows it does well (colour and texture:
horse <-> zebra, Sec. 5.2), next to `shapeswap:circles2squares`, the geometric change it documents failing
(Sec. 5.3).

Domain A: one flat-coloured shape (data/shapes.py's renderer: kind, colour, background, size, position).
Domain B: the same kind of draw, but the shape is filled with diagonal stripes (45 degrees, a period of 6/32
of the image side, half of each period) in a stripe colour derived from the shape's colour: 40% of it
(darker) or 60% of the way to white (lighter), whichever stands further from the background among the two
that differ from the shape colour by >= 90 (of 255). Every shape/background pair then keeps >= 100 between
stripe and background and >= 111 between stripe and shape, so the stripes are visible and a mask taken from
the background colour counts them as shape (`shape_mask`).

Training: A and B are independent draws (different seeds), so no image of A has its counterpart in B: the
task is truly unpaired (Eq. 1-3 see only the two marginals). Test split: aligned pairs, the same attributes
drawn both ways from a seed no training draw uses, so a translation can be scored against its input (the
shape kept, `mask_iou`) and against a classifier of the two domains (`share_judged`).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from .base import Data, DataInfo, PairedData, UnpairedData, pair_info
from .images import to_nchw
from .shapes import PALETTE, draw, render_shapes

TEXTURES = ("plain", "striped")
STRIPE_PERIOD = 6 / 32          # of the image side: 6 px at 32 px
_DARK, _LIGHT, _MIN_CONTRAST = 0.4, 0.6, 90.0
_SUPERSAMPLE = 4
MASK_TOLERANCE = 0.3            # [-1, 1] units; half the closest two palette colours' distance (orange, yellow)


def parse_style(task: str) -> tuple[str, str] | None:
    """`plain2striped` -> ("plain", "striped"); None when the task names no texture (a kind swap)."""
    src, sep, dst = task.partition("2")
    if not sep or src not in TEXTURES or dst not in TEXTURES:
        return None
    if src == dst:
        raise GanforgeError(f"shapeswap:{task} maps a texture to itself; use shapeswap:plain2striped "
                            f"or shapeswap:striped2plain")
    return src, dst


def stripe_colour(color: str, background: str) -> tuple[int, int, int]:
    """The stripes' RGB for a shape of `color` on `background` (module docstring)."""
    c, bg = np.array(PALETTE[color], float), np.array(PALETTE[background], float)
    cands = [x for x in (c * _DARK, c + (255 - c) * _LIGHT) if np.linalg.norm(x - c) >= _MIN_CONTRAST]
    best = max(cands, key=lambda x: np.linalg.norm(x - bg))
    return tuple(int(round(v)) for v in best)


@functools.lru_cache(maxsize=8)   # one pattern per resolution: the stripes are fixed in image coordinates
def _stripes(resolution: int) -> np.ndarray:
    """H x W share of each pixel under a stripe (anti-aliased: averaged over a 4x supersampled grid)."""
    k = _SUPERSAMPLE * resolution
    y, x = np.mgrid[0:k, 0:k] + 0.5
    u = (x + y) / math.sqrt(2) / (STRIPE_PERIOD * k)          # 45 degrees, in periods
    on = (u % 1.0 < 0.5).astype(np.float32)
    return on.reshape(resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE).mean((1, 3))


def draw_textured(attr: dict, texture: str, resolution: int | None = None) -> np.ndarray:
    """One shapes attribute dict as uint8 H x W x 3, plain (shapes.draw as is) or striped."""
    if texture not in TEXTURES:
        raise GanforgeError(f"unknown texture {texture!r}; choose from {list(TEXTURES)}")
    resolution = resolution or attr["resolution"]
    if texture == "plain":
        return draw(attr, resolution)
    lo, hi = PALETTE["black"][0], PALETTE["white"][0]   # the anti-aliased coverage of the shape, 0..1
    cover = (draw(dict(attr, color="white", background="black"), resolution)[..., :1].astype(np.float32)
             - lo) / (hi - lo)
    s = _stripes(resolution)[..., None]
    fill = (1 - s) * np.array(PALETTE[attr["color"]], np.float32) + s * np.array(
        stripe_colour(attr["color"], attr["background"]), np.float32)
    out = (1 - cover) * np.array(PALETTE[attr["background"]], np.float32) + cover * fill
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def render_textured(n: int, resolution: int, seed: int, texture: str) -> tuple[np.ndarray, list[dict]]:
    """n shapes draws (all kinds) rendered with `texture`: uint8 N x H x W x 3 and the attribute dicts."""
    images, attrs = render_shapes(n, resolution, seed)
    if texture != "plain" and n:
        images = np.stack([draw_textured(a, texture, resolution) for a in attrs])
    return images, attrs


def style_test_set(task: str, resolution: int = 32, n: int = 256, seed: int = 1):
    """Aligned held-out pairs (A uint8 N x 3 x H x W, B likewise, the attribute dicts): one draw, both
    textures, from seed 10_000 + seed (training draws use 2 * seed and 2 * seed + 1)."""
    textures = parse_style(task)
    if textures is None:
        raise GanforgeError(f"style_test_set: {task!r} is not a texture task; use plain2striped or "
                            f"striped2plain")
    images, attrs = render_shapes(n, resolution, 10_000 + seed)
    striped = np.stack([draw_textured(x, "striped", resolution) for x in attrs])
    a, b = (to_nchw(images if t == "plain" else striped) for t in textures)
    return a, b, attrs


def load_style(task: str, split: str, resolution: int, seed: int = 0, n: int = 1000) -> tuple[Data, DataInfo]:
    textures = parse_style(task)
    extra = {"task": f"shapeswap:{task}", "textures": list(textures)}
    if split == "train":   # two independent draws: no image of A has its counterpart in B
        a, b = (to_nchw(render_textured(n, resolution, seed * 2 + d, textures[d])[0]) for d in (0, 1))
        return UnpairedData(a, b, seed=seed), pair_info(f"shapeswap:{task}", a, b, paired=False, **extra)
    a, b, _ = style_test_set(task, resolution)
    return PairedData(a, b), pair_info(f"shapeswap:{task}", a, b, paired=True, **extra)


# -- measures on N x 3 x H x W images in [-1, 1] (benchmarks/image2image.py, the cyclegan-style section) -----

def _check_images(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise GanforgeError(f"{name}: expected N x 3 x H x W images; got shape {tuple(x.shape)}")
    return x.detach().float().cpu()


def shape_mask(x: torch.Tensor, tolerance: float = MASK_TOLERANCE) -> torch.Tensor:
    """Boolean N x H x W foreground: pixels further than `tolerance` (RGB distance, [-1, 1] units) from the
    background colour, taken as the per-channel median of the 1-px border (the renderer keeps every shape
    inside it). The same rule for plain and striped images; stripes stand >= 100/255 from the background,
    so they count as shape."""
    x = _check_images(x, "shape_mask")
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], dim=-1)
    bg = border.median(dim=-1).values[..., None, None]
    return (x - bg).pow(2).sum(1).sqrt() > tolerance


def mask_iou(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image IoU of shape_mask(x) and shape_mask(y) (1 where both are empty)."""
    mx, my = shape_mask(x), shape_mask(y)
    inter, union = (mx & my).flatten(1).sum(1).float(), (mx | my).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def texture_energy(x: torch.Tensor) -> torch.Tensor:
    """Per image mean squared difference from the 3x3 mean, over the shape's interior (the mask eroded by
    two pixels, so no 3x3 window reaches an anti-aliased edge): ~0 for a flat fill, large for stripes."""
    x = _check_images(x, "texture_energy")
    inner = -F.max_pool2d(-shape_mask(x)[:, None].float(), 5, stride=1, padding=2)   # erosion
    local = (x - F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)).pow(2).sum(1, keepdim=True)
    return (local * inner).flatten(1).sum(1) / inner.flatten(1).sum(1).clamp(min=1)


def share_judged(classify, x: torch.Tensor, target: int, batch: int = 256) -> float:
    """Share of images that `classify` (images -> N x K logits) puts in class `target`."""
    x = _check_images(x, "share_judged")
    if len(x) == 0:
        raise GanforgeError("share_judged: no images to judge")
    with torch.no_grad():
        pred = torch.cat([classify(b).argmax(1) for b in x.split(batch)])
    if not 0 <= target < int(classify(x[:1]).shape[1]):
        raise GanforgeError(f"share_judged: target={target} is not a class of the classifier")
    return (pred == target).float().mean().item()
