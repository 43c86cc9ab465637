"""`wgan` - Wasserstein GAN (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875), Algorithm 1.

The critic f_w has no sigmoid and maximises E f_w(x) - E f_w(G(z)) (eq. 3), an estimate of the Wasserstein-1
distance when f_w is K-Lipschitz; weight clipping w <- clip(w, -c, c) after every critic update keeps it so.
n_critic = 5 critic updates per G update, RMSProp lr 5e-5 (momentum-based optimizers were unstable, §4).
The critic's estimate W = E f(real) - E f(fake) is logged as D/W: it should fall as samples improve (§4.2).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import RECIPES
from .backbone import BackboneConfig, BackboneRecipe


@dataclass
class WGANConfig(BackboneConfig):
    loss: str = "wasserstein"
    clip: float = 0.01          # c of Algorithm 1
    d_steps: int = 5            # n_critic
    optimizer: str = "rmsprop"
    g_lr: float = 5e-5
    d_lr: float = 5e-5
    steps: int = 3000


POINTS = {"z_dim": 16, "hidden": 128, "batch_size": 256}


@RECIPES.register("wgan")
class WGAN(BackboneRecipe):
    name = "wgan"
    Config = WGANConfig
    smoke = {"resolution": 8, "g_width": 8, "d_width": 8}
    presets = {
        "digits": {},
        "ring": {"data": "toy:ring", **POINTS, "steps": 5000},
        "grid": {"data": "toy:grid", **POINTS, "steps": 5000},
    }
