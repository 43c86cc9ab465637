"""`cgan` - conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784) with an optional projection
discriminator (Miyato & Koyama 2018, arXiv:1802.05637, eq. 3: D(x, y) = psi(phi(x)) + embed(y)^T phi(x)).

G(z, y) = G(concat(z, embed(y))). D sees the label either joined to its input (`cond=concat`: embedding
broadcast as extra image channels, or appended to a vector) or through the projection head.
Images use the DCGAN backbone, points and tables the MLP one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import GanforgeError
from ..models.dcgan import DCGANDiscriminator, DCGANGenerator
from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..registry import RECIPES
from .adversarial import AdversarialConfig, AdversarialRecipe
from .dcgan import image_nets_check


@dataclass
class CGANConfig(AdversarialConfig):
    data: str = "digits"
    resolution: int = 16
    cond: str = "concat"        # concat | projection: how D sees the label
    embed_dim: int = 16         # label embedding size (G input and concat D)
    g_width: int = 64
    d_width: int = 64
    hidden: int = 256           # MLP backbone width (points / tables)
    depth: int = 3
    steps: int = 1500

    def check(self) -> None:
        super().check()
        if self.cond not in ("concat", "projection"):
            raise GanforgeError(f"config key 'cond' must be concat or projection; got {self.cond!r}")


class ConditionalG(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, embed_dim: int):
        super().__init__()
        self.embed, self.backbone = nn.Embedding(num_classes, embed_dim), backbone

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.backbone(torch.cat([z, self.embed(labels)], dim=1))


class ConditionalD(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, embed_dim: int, cond: str):
        super().__init__()
        self.backbone, self.cond = backbone, cond
        dim = backbone.feature_dim if cond == "projection" else embed_dim
        self.embed = nn.Embedding(num_classes, dim)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        e = self.embed(labels)
        if self.cond == "projection":
            f = self.backbone.features(x)
            return self.backbone.head(f).squeeze(1) + (e * f).sum(1)
        if x.dim() == 4:    # label embedding as constant extra channels
            e = e[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            return self.backbone(torch.cat([x, e], dim=1))
        return self.backbone(torch.cat([x.flatten(1), e], dim=1))


@RECIPES.register("cgan")
class CGAN(AdversarialRecipe):
    name = "cgan"
    Config = CGANConfig
    conditional = True
    presets = {"digits": {}, "digits-projection": {"cond": "projection"},
               "ring": {"data": "toy:ring", "z_dim": 16, "hidden": 128, "g_lr": 1e-3, "d_lr": 1e-3,
                        "batch_size": 256, "steps": 3000}}

    def build_nets(self, info) -> nn.ModuleDict:
        c = self.cfg
        k = info.num_classes
        if k < 2:
            raise GanforgeError(f"cgan needs labelled data; {info.spec!r} has no classes. Use digits, "
                                f"mnist:DIR, cifar10:DIR, toy:ring or a folder with one sub-folder per class")
        concat_extra = c.embed_dim if c.cond == "concat" else 0
        if info.kind == "image":
            image_nets_check(self)
            ch, res, _ = info.shape
            G = DCGANGenerator(c.z_dim + c.embed_dim, res, ch, c.g_width)
            D = DCGANDiscriminator(res, ch + concat_extra, c.d_width)
        else:
            G = MLPGenerator(c.z_dim + c.embed_dim, info.shape, c.hidden, c.depth)
            D = MLPDiscriminator(info.shape, c.hidden, c.depth, extra_in=concat_extra)
        return nn.ModuleDict({"G": ConditionalG(G, k, c.embed_dim), "D": ConditionalD(D, k, c.embed_dim, c.cond)})

    def generate(self, G, z, labels=None):
        if labels is None:
            raise GanforgeError("cgan samples need labels: pass --label K (or labels=...)")
        return G(z, labels)

    def discriminate(self, nets, x, labels):
        return nets["D"](x, labels)

    def g_labels(self, ctx):
        # uniform labels for the G step: no real batch is consumed
        return torch.randint(self.info.num_classes, (ctx.batch_size,), device=ctx.device)
