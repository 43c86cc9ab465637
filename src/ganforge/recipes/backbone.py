"""The networks of the stable-training families (wgan, wgan_gp, sngan, lsgan): MLPs for points and tables,
DCGAN or SNGAN-ResNet nets for images (`arch`), normalization and spectral norm in D as config keys."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import GanforgeError
from ..models.dcgan import DCGANDiscriminator, DCGANGenerator, check_resolution
from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..models.resnet import ResNetDiscriminator, ResNetGenerator
from ..nn.layers import spectral_norm
from .adversarial import AdversarialConfig, AdversarialRecipe
from .base import Nets


@dataclass
class BackboneConfig(AdversarialConfig):
    data: str = "digits"
    resolution: int = 16
    arch: str = "dcgan"         # images: dcgan | resnet (SNGAN's) | mlp; points and tables always use the MLP
    g_width: int = 64           # dcgan: G's channels at the last hidden stage; resnet: channels of every block
    d_width: int = 64           # dcgan: D's channels at the first stage; resnet: channels of every block
    d_norm: str = "batch"       # batch | layer | instance (dcgan only) | none: normalization inside D
    d_spectral: bool = False    # spectral normalization of every D layer (Miyato 2018)
    hidden: int = 128           # MLP width
    depth: int = 3              # MLP hidden layers

    def check(self) -> None:
        super().check()
        if self.arch not in ("dcgan", "resnet", "mlp"):
            raise GanforgeError(f"config key 'arch' must be dcgan, resnet or mlp; got {self.arch!r}")
        norms = ("batch", "layer", "instance", "none") if self.arch == "dcgan" else ("batch", "layer", "none")
        if self.d_norm not in norms:
            raise GanforgeError(f"config key 'd_norm' must be one of {', '.join(norms)} for arch={self.arch}; "
                                f"got {self.d_norm!r}")


class BackboneRecipe(AdversarialRecipe):
    """MLP nets for points/tables; DCGAN or SNGAN-ResNet nets for images (`arch`)."""
    Config = BackboneConfig

    def build_nets(self, info) -> Nets:
        c = self.cfg
        arch = c.arch if info.kind == "image" else "mlp"
        if arch != "mlp":
            try:
                check_resolution(info.shape[-1], self.name)
            except ValueError as e:
                raise GanforgeError(f"{e}: set resolution=16 (or another power of two)") from None
        ch = info.shape[0]
        if arch == "resnet":
            G = ResNetGenerator(c.z_dim, info.shape[-1], ch, c.g_width)
            D = ResNetDiscriminator(info.shape[-1], ch, c.d_width, spectral=c.d_spectral, norm=c.d_norm)
            return nn.ModuleDict({"G": G, "D": D})
        if arch == "dcgan":
            G = DCGANGenerator(c.z_dim, info.shape[-1], ch, c.g_width)
            D = DCGANDiscriminator(info.shape[-1], ch, c.d_width, norm=c.d_norm)
        else:
            G = MLPGenerator(c.z_dim, info.shape, c.hidden, c.depth, tanh=info.kind == "image")
            D = MLPDiscriminator(info.shape, c.hidden, c.depth)
        if c.d_spectral:
            for m in list(D.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    spectral_norm(m)
        return nn.ModuleDict({"G": G, "D": D})
