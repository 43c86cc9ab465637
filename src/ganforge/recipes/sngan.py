"""`sngan` - spectral normalization for GANs (Miyato et al. 2018, arXiv:1802.05957).

Every layer of D is divided by its largest singular value, W_SN = W / sigma(W) (eq. 8), sigma estimated by one
power iteration per forward (Algorithm 1, u and v kept between steps), conv kernels reshaped to
[out, in*k*k] (nn.layers.spectral_norm), which bounds D's Lipschitz constant by 1 without a penalty.
Defaults of the paper's ResNet runs: the CIFAR ResNet G (256 channels) and D (128), hinge loss, n_dis 5,
Adam lr 2e-4 betas (0, 0.9), z 128. Points use a spectrally normalised MLP D.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import RECIPES
from .backbone import BackboneConfig, BackboneRecipe


@dataclass
class SNGANConfig(BackboneConfig):
    loss: str = "hinge"
    d_steps: int = 5            # n_dis
    arch: str = "resnet"
    d_spectral: bool = True
    d_norm: str = "none"
    g_width: int = 256
    d_width: int = 128
    z_dim: int = 128
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, ...] = (0.0, 0.9)
    steps: int = 3000


POINTS = {"z_dim": 16, "hidden": 128, "batch_size": 256}


@RECIPES.register("sngan")
class SNGAN(BackboneRecipe):
    name = "sngan"
    Config = SNGANConfig
    smoke = {"resolution": 8, "g_width": 8, "d_width": 8}
    presets = {
        "digits": {"g_width": 64, "d_width": 64},
        "digits-dcgan": {"arch": "dcgan", "d_width": 64, "g_width": 64},   # SN on the standard CNN
        "ring": {"data": "toy:ring", **POINTS, "steps": 5000},
        "grid": {"data": "toy:grid", **POINTS, "steps": 5000},
    }
