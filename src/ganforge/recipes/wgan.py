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
# The 2-D mixtures: c = 0.01 bounds this MLP critic's slope by ~0.03 (each of its 4 layers' spectral norm is at most
# c * sqrt(fan_in * fan_out)), so its estimate W stayed ~2e-4 and G, at RMSProp 5e-5, barely moved in 5,000 steps:
# a fuzzy ring. c = 0.1 lets W reach the distance (1.9 falling to 0.2), lr 5e-4 lets G follow it, and the lr
# decaying to 0 over the second half puts the points on the modes; an EMA of G (0.999) lags them and blurs them
# (high quality 12% vs 59% on seed 0), so there is none (docs/stable.md, Results).
RING = {**POINTS, "clip": 0.1, "g_lr": 5e-4, "d_lr": 5e-4, "lr_decay_start": 0.5, "steps": 4000}


@RECIPES.register("wgan")
class WGAN(BackboneRecipe):
    name = "wgan"
    Config = WGANConfig
    smoke = {"resolution": 8, "g_width": 8, "d_width": 8}
    presets = {
        "digits": {},
        "ring": {"data": "toy:ring", **RING},
        "ring-paper": {"data": "toy:ring", **POINTS, "steps": 5000},   # Algorithm 1's c, lr: the fuzzy ring
        "grid": {"data": "toy:grid", **POINTS, "steps": 5000},
    }
