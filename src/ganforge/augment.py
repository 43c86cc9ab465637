"""DiffAugment: Zhao et al. 2020, arXiv:2006.10738 (section 3, Figure 4): differentiable augmentations T.

D sees T(real) and T(fake) (fresh random T per call), and G's loss is taken through T(G(z)), so the
augmentations must be differentiable with respect to the images. The three policies and their ranges follow
the authors' reference code (DiffAugment_pytorch.py) for images in [-1, 1]:

- ``color``: brightness + U(-0.5, 0.5); saturation: channel deviations from the pixel mean x U(0, 2);
  contrast: deviations from the image mean x U(0.5, 1.5);
- ``translation``: integer shift of up to 1/8 of the size per axis, vacated pixels filled with 0;
- ``cutout``: a square of half the size per axis, centred uniformly (clipped at the border), set to 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import GanforgeError
from .regularizers import instance_noise

__all__ = ["POLICIES", "parse_policy", "diff_augment", "d_input", "check_d_input"]

POLICIES = ("color", "translation", "cutout")  # application order within one call


class UnknownPolicyError(GanforgeError, ValueError):
    """A policy name that is not in POLICIES (a GanforgeError for the CLI, a ValueError for callers)."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color, translation" -> ("color", "translation"); "" -> ().

    Unknown names raise, naming the valid ones; recipes can call this when they build, to fail early.
    """
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise UnknownPolicyError(f"unknown DiffAugment policy {unknown[0]!r}; valid policies: "
                                 f"{', '.join(POLICIES)} (comma-separated, or '' for none)")
    return names


def _uniform(n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N x 1 x 1 x 1 draws of U[0, 1), made on the generator's device so they do not depend on x's."""
    device = generator.device if generator is not None else x.device
    return torch.rand(n, 1, 1, 1, generator=generator, device=device).to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """n integers in [low, high] inclusive."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high + 1, (n,), generator=generator, device=device).to(x.device)


def _color(x: Tensor, g: torch.Generator | None) -> Tensor:
    n = x.shape[0]
    x = x + (_uniform(n, x, g) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, x, g) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, x, g) + 0.5) + mean


def _translation(x: Tensor, g: torch.Generator | None, ratio: float = 0.125) -> Tensor:
    n, _, h, w = x.shape
    max_y, max_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty, tx = _randint(-max_y, max_y, n, x, g), _randint(-max_x, max_x, n, x, g)
    # out[i, j] = x[i + ty, j + tx] where that lies inside, else 0 (the reference code's zero padding)
    rows = torch.arange(h, device=x.device) + ty[:, None]  # N x H
    cols = torch.arange(w, device=x.device) + tx[:, None]  # N x W
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # N x H x W
    batch = torch.arange(n, device=x.device)[:, None, None]
    shifted = x.permute(0, 2, 3, 1)[batch, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return shifted.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def _cutout(x: Tensor, g: torch.Generator | None, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # centre ranges of the reference code: [0, h] for an even size, [0, h - 1] for an odd one; the square
    # is clipped to the image, so it always covers at least a quarter of its own area
    cy = _randint(0, h - size_y % 2, n, x, g)
    cx = _randint(0, w - size_x % 2, n, x, g)
    y0, x0 = cy - size_y // 2, cx - size_x // 2
    rows = torch.arange(h, device=x.device)[None, :]  # 1 x H
    cols = torch.arange(w, device=x.device)[None, :]
    in_y = (rows >= y0[:, None]) & (rows < (y0 + size_y)[:, None])  # N x H
    in_x = (cols >= x0[:, None]) & (cols < (x0 + size_x)[:, None])
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # N x H x W
    return x * keep[:, None].to(x.dtype)


_FNS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> Tensor:
    """Apply the comma-separated ``policy`` to a batch of images N x C x H x W; differentiable in x.

    Each example gets its own random parameters. Deterministic given ``generator`` (draws are made on the
    generator's device). ``policy=""`` returns x unchanged.
    """
    names = parse_policy(policy)
    if not names:
        return x
    if x.ndim != 4:
        raise GanforgeError(f"diff_augment expects images N x C x H x W, got shape {tuple(x.shape)}; "
                            f"use policy='' for non-image data")
    for name in POLICIES:  # fixed order, whatever the order in the string
        if name in names:
            x = _FNS[name](x, generator)
    return x


def d_input(x: Tensor, policy: str, noise: float, step: int, steps: int) -> Tensor:
    """An image as D sees it in the recipes without AdversarialRecipe's full `d_view` (progan, stylegan,
    text2image): the DiffAugment `policy`, then instance noise (Sonderby et al. 2017) of std `noise` falling
    linearly to 0 at `steps`. Both off: x itself."""
    if policy:
        x = diff_augment(x, policy)
    return instance_noise(x, noise * max(0.0, 1.0 - step / steps))


def check_d_input(cfg) -> None:
    """The config keys `diff_augment` and `instance_noise` that d_input reads."""
    parse_policy(cfg.diff_augment)
    if cfg.instance_noise < 0:
        raise GanforgeError(f"config key 'instance_noise' must be >= 0; got {cfg.instance_noise}")
