"""`lsgan` - least squares GAN (Mao et al. 2017, arXiv:1611.04076), eq. 2 with a = 0, b = 1, c = 1:

min_D 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2,   min_G 1/2 E (D(G(z)) - 1)^2.

The quadratic loss keeps penalising fakes that D already classifies correctly but that lie far from the data,
so G's gradient does not vanish (§3.2). DCGAN nets, Adam 2e-4 beta1 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import RECIPES
from .backbone import BackboneConfig, BackboneRecipe


@dataclass
class LSGANConfig(BackboneConfig):
    loss: str = "lsgan"
    steps: int = 1500


POINTS = {"z_dim": 16, "hidden": 128, "batch_size": 256, "g_lr": 1e-3, "d_lr": 1e-3}


@RECIPES.register("lsgan")
class LSGAN(BackboneRecipe):
    name = "lsgan"
    Config = LSGANConfig
    smoke = {"resolution": 8, "g_width": 8, "d_width": 8}
    presets = {
        "digits": {},
        "ring": {"data": "toy:ring", **POINTS, "steps": 5000},
        "grid": {"data": "toy:grid", **POINTS, "steps": 5000},
    }
