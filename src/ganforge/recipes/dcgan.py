"""`dcgan` - Radford et al. 2015 (arXiv:1511.06434): the deep convolutional GAN, Adam 2e-4 / beta1 0.5.

The default of `ganforge train`: DCGAN on scikit-learn's digits, upsampled to 16x16.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import GanforgeError
from ..models.dcgan import DCGANDiscriminator, DCGANGenerator, check_resolution
from ..registry import RECIPES
from .adversarial import AdversarialConfig, AdversarialRecipe


@dataclass
class DCGANConfig(AdversarialConfig):
    data: str = "digits"
    resolution: int = 16
    g_width: int = 64           # ngf: G's channels at the last hidden stage (doubling towards 4x4)
    d_width: int = 64           # ndf: D's channels at the first stage (doubling towards 4x4)
    d_norm: str = "batch"       # batch | instance | layer | none (none for WGAN-GP critics)
    extra_layers: int = 0       # 3x3 stride-1 layers at G's last and D's first stage (WGAN code's n_extra_layers)
    # the paper's 2e-4 for both players, except D on the default data: D masters the 1,437 digits quickly
    # and half its lr keeps G's gradient informative (digit score 6.85 vs 5.89 at 1,500 steps, docs/dcgan.md)
    d_lr: float = 1e-4
    steps: int = 1500
    batch_size: int = 64

    def check(self) -> None:
        super().check()
        if self.extra_layers < 0:
            raise GanforgeError(f"config key 'extra_layers' must be >= 0; got {self.extra_layers}")


def image_nets_check(recipe) -> None:
    info = recipe.info
    if info.kind != "image":
        raise GanforgeError(f"{recipe.name} works on images; {info.spec!r} holds {info.kind}. "
                            f"Use the `gan` recipe (MLP) for points and tables")
    try:
        check_resolution(info.shape[-1], recipe.name)
    except ValueError as e:
        raise GanforgeError(f"{e}: set resolution=32 (or another power of two)") from None


@RECIPES.register("dcgan")
class DCGAN(AdversarialRecipe):
    name = "dcgan"
    Config = DCGANConfig
    presets = {
        "digits": {},                       # the defaults (kept as a name: runs and docs use it)
        "digits32": {"resolution": 32, "steps": 3000},
        # the issue-15 baseline on shapes (docs/dcgan.md, "shapes"): with the paper's settings D wins by step ~300
        # and G collapses to one noise pattern; DiffAugment and annealed instance noise keep D's signal about
        # colours and shapes, G at twice D's lr keeps up with it, EMA samples (with standing BN statistics)
        "shapes": {"data": "shapes", "resolution": 32, "steps": 6000, "g_lr": 4e-4, "d_lr": 2e-4,
                   "diff_augment": "color,translation,cutout", "instance_noise": 0.1, "ema_decay": 0.999},
        "mnist": {"data": "mnist:data/mnist", "resolution": 32, "steps": 10000, "d_lr": 2e-4},
        "cifar10": {"data": "cifar10:data/cifar10", "resolution": 32, "batch_size": 128, "steps": 50000,
                    "d_lr": 2e-4},
        "folder64": {"data": "folder:images", "resolution": 64, "steps": 20000, "d_lr": 2e-4},
    }

    def build_nets(self, info) -> nn.ModuleDict:
        image_nets_check(self)
        c, (ch, res, _) = self.cfg, info.shape
        return nn.ModuleDict({
            "G": DCGANGenerator(c.z_dim, res, ch, c.g_width, extra_layers=c.extra_layers),
            "D": DCGANDiscriminator(res, ch, c.d_width, norm=c.d_norm, extra_layers=c.extra_layers),
        })
