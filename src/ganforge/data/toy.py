"""`toy:gauss1d`, `toy:ring`, `toy:grid`: toy point data, the 1-D Gaussian of the GAN paper's Figure 1
and the PacGAN mode-collapse mixtures.

PacGAN (Lin et al. 2018, arXiv:1712.04086) protocol: ring = 8 Gaussians on a circle of radius 1 with std 0.01;
grid = 25 Gaussians at {-4,-2,0,2,4}^2 with std 0.05; 100,000 training points.
"""
from __future__ import annotations

import math

import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo

GAUSS1D = {"mean": 2.0, "std": 0.5}      # p_data of `toy:gauss1d`
TOY_POINTS = 100_000


def toy_means(name: str) -> tuple[list[list[float]], float]:
    if name == "ring":
        return [[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)], 0.01
    if name == "grid":
        return [[float(a), float(b)] for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], 0.05
    raise KeyError(name)


def load_toy(name: str, split: str = "train") -> tuple[Data, DataInfo]:
    # train and test are independent draws of the same distribution
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    spec = f"toy:{name}"
    if name == "gauss1d":
        x = GAUSS1D["mean"] + GAUSS1D["std"] * torch.randn(TOY_POINTS, 1, generator=g)
        return Data(x), DataInfo(spec, "points", (1,), extra={"density": dict(GAUSS1D)})
    means, std = toy_means(name)
    m = torch.tensor(means)
    k = torch.randint(len(means), (TOY_POINTS,), generator=g)
    x = m[k] + std * torch.randn(TOY_POINTS, 2, generator=g)
    return Data(x, k), DataInfo(spec, "points", (2,), num_classes=len(means), extra={"means": means, "std": std})


TOY_NAMES = ("gauss1d", "ring", "grid")


@DATASETS.register("toy")
def _toy(arg, *, split, resolution, channels, skip_bad, download):
    if arg not in TOY_NAMES:
        raise GanforgeError(f"unknown toy data {arg!r}; use one of " + ", ".join(f"toy:{n}" for n in TOY_NAMES))
    return load_toy(arg, split)
