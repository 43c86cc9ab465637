"""DCGAN (Radford et al. 2015, arXiv:1511.06434), sized by arguments: any power-of-two resolution >= 8.

Architecture guidelines of the paper's §3: strided convolutions instead of pooling, transposed convolutions
in G, BatchNorm in both nets except G's output and D's input, ReLU in G with a tanh output, LeakyReLU(0.2)
in D, weights from N(0, 0.02). Widths double as resolution halves, as in pytorch/examples (ngf=ndf=64).

`extra_layers` adds 3x3 stride-1 conv + norm + activation layers at G's last hidden stage and D's first stage,
the `n_extra_layers` of the WGAN reference code (Arjovsky et al. 2017, martinarjovsky/WassersteinGAN). They give
the nets depth where resolution gives none: at 8x8 each net is otherwise one hidden layer deep.
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from ..nn.layers import norm2d


def check_resolution(resolution: int, name: str = "DCGAN") -> int:
    """`name`: the recipe whose nets need it (progan, stylegan, cgan ... share this check) for the message."""
    n = int(math.log2(resolution)) if resolution > 0 else 0
    if resolution < 8 or 2 ** n != resolution:
        raise ValueError(f"{name} needs a power-of-two resolution >= 8; got {resolution}")
    return n - 2          # number of x2 stages between 4x4 and the output


def dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) for conv weights; BatchNorm gamma N(1, 0.02), beta 0 (the paper's §4 init)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _norm(kind: str, c: int) -> nn.Module:
    return norm2d(kind, c)


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, resolution: int, channels: int, width: int = 64, max_width: int = 512,
                 extra_layers: int = 0):
        super().__init__()
        stages = check_resolution(resolution)
        widths = [min(width * 2 ** (stages - 1 - i), max_width) for i in range(stages)]   # 4x4 ... res/2
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(widths[-1], widths[-1], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[-1]),
                       nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Conv stack down to 4x4 (`features`), then one linear `head` = the paper's final 4x4 valid conv."""

    def __init__(self, resolution: int, channels: int, width: int = 64, max_width: int = 512, norm: str = "batch",
                 extra_layers: int = 0):
        super().__init__()
        stages = check_resolution(resolution)
        widths = [min(width * 2 ** i, max_width) for i in range(stages)]                  # res/2 ... 4x4
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(widths[0], widths[0], 3, 1, 1, bias=False), _norm(norm, widths[0]),
                       nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), _norm(norm, b), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)
        self.feature_dim = widths[-1] * 16
        self.head = nn.Linear(self.feature_dim, 1)
        self.apply(dcgan_init)

    def features(self, x: Tensor) -> Tensor:
        # flattened in (h, w, c) order: a view of the channels_last activations the trainer runs, so their
        # gradient comes back channels_last as well; a (c, h, w) flatten handed the last LeakyReLU a contiguous
        # gradient, and its backward on mixed layouts was ~50x slower (docs/performance.md)
        return self.body(x).permute(0, 2, 3, 1).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
