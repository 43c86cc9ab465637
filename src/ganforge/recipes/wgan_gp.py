"""`wgan_gp` - WGAN with gradient penalty (Gulrajani et al. 2017, arXiv:1704.00028), Algorithm 1.

L = E f(fake) - E f(real) + lambda E[(||grad_x_hat f(x_hat)||_2 - 1)^2], x_hat = eps real + (1 - eps) fake,
eps ~ U[0, 1] per sample (eq. 3), lambda = 10, n_critic = 5, Adam lr 1e-4 betas (0, 0.9). No BatchNorm in
the critic (§4: it makes the penalty invalid), layer norm instead (d_norm=layer). Variants: gp_one_sided=true
(max(0, ||g|| - 1)^2, §4), gp_center=0 (zero-centred penalty). The penalty runs in fp32 under autocast and
works for points, 1- and 3-channel images (regularizers.gradient_penalty).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import RECIPES
from .backbone import BackboneConfig, BackboneRecipe


@dataclass
class WGANGPConfig(BackboneConfig):
    loss: str = "wasserstein"
    gp_weight: float = 10.0     # lambda
    d_steps: int = 5            # n_critic
    d_norm: str = "layer"
    g_lr: float = 1e-4
    d_lr: float = 1e-4
    betas: tuple[float, ...] = (0.0, 0.9)
    steps: int = 3000


POINTS = {"z_dim": 16, "hidden": 128, "batch_size": 256}
# The 2-D mixtures: lambda = 10 holds the critic's slope at 1 everywhere, too flat to place points within the
# modes' std of 0.01 (the authors' gan_toy.py takes LAMBDA = .1 for toy data: "smaller lambda seems to help for
# toy tasks specifically"), and lr 1e-4 moves G too little in a few thousand steps: lambda 0.1, Adam 5e-4
# (0.5, 0.9) as in gan_toy.py, the lr decaying to 0 over the second half (docs/stable.md, Results).
RING = {**POINTS, "gp_weight": 0.1, "g_lr": 5e-4, "d_lr": 5e-4, "betas": (0.5, 0.9), "lr_decay_start": 0.5,
        "steps": 6000}


@RECIPES.register("wgan_gp")
class WGANGP(BackboneRecipe):
    name = "wgan_gp"
    Config = WGANGPConfig
    smoke = {"resolution": 8, "g_width": 8, "d_width": 8}
    presets = {
        "digits": {},
        "digits-resnet": {"arch": "resnet", "g_width": 64, "d_width": 64, "d_norm": "layer"},
        "ring": {"data": "toy:ring", **RING},
        "ring-paper": {"data": "toy:ring", **POINTS, "steps": 5000},   # the paper's lambda, lr, betas
        "grid": {"data": "toy:grid", **POINTS, "steps": 5000},
    }
