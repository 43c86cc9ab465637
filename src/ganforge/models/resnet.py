"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018, arXiv:1802.05957, appendix B, Table 4:
the CIFAR-10 ResNet, itself the WGAN-GP ResNet of Gulrajani et al. 2017, arXiv:1704.00028), sized by
arguments: any power-of-two resolution >= 8, any channel count and width.

G: z -> linear -> 4x4 x width -> one up-block per doubling (BN, ReLU, nearest x2, conv3x3, BN, ReLU, conv3x3;
shortcut nearest x2 + conv1x1) -> BN, ReLU, conv3x3, tanh.
D: an "optimized" first down-block (conv3x3, ReLU, conv3x3, avgpool; shortcut avgpool + conv1x1), down-blocks
(ReLU, conv3x3, ReLU, conv3x3, avgpool; shortcut conv1x1 + avgpool) until 8x8 (4x4 for 8x8 inputs), two more
blocks at that size, ReLU, global sum pooling (`features`) and a linear `head`. With `spectral=True` every
conv and linear layer of D is divided by its spectral norm (eq. 8; kernels reshaped to [out, in*k*k]).
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.layers import norm2d, spectral_norm


def check_resolution(resolution: int) -> int:
    n = int(math.log2(resolution)) if resolution > 0 else 0
    if resolution < 8 or 2 ** n != resolution:
        raise ValueError(f"the ResNet nets need a power-of-two resolution >= 8; got {resolution}")
    return n


def _init(m: nn.Module) -> None:
    # Xavier uniform as the reference code: gain sqrt(2) on the 3x3 convs of the residual path, 1 elsewhere
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        gain = math.sqrt(2) if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) else 1.0
        nn.init.xavier_uniform_(m.weight, gain)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _norm(kind: str, c: int) -> nn.Module:
    return norm2d(kind, c, ("batch", "layer", "none"))


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.b1, self.c1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2, self.c2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.b1(x)), scale_factor=2, mode="nearest")
        h = self.c2(F.relu(self.b2(self.c1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False, norm: str = "none"):
        super().__init__()
        self.down, self.first = down, first
        self.n1 = nn.Identity() if first else _norm(norm, c_in)
        self.c1, self.n2, self.c2 = nn.Conv2d(c_in, c_out, 3, 1, 1), _norm(norm, c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.learn_shortcut = down or c_in != c_out
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if self.learn_shortcut else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # the first block sees the image itself: no ReLU before its first conv (SNGAN's OptimizedBlock)
        h = self.c1(x if self.first else F.relu(self.n1(x)))
        h = self.c2(F.relu(self.n2(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.first:   # avgpool before the 1x1 conv on the image (cheaper, as in the reference code)
            s = self.shortcut(F.avg_pool2d(x, 2))
        else:
            s = self.shortcut(x)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, resolution: int, channels: int, width: int = 256):
        super().__init__()
        ups = check_resolution(resolution) - 2
        self.width = width
        self.linear = nn.Linear(z_dim, 4 * 4 * width)
        self.blocks = nn.Sequential(*[GBlock(width, width) for _ in range(ups)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())
        self.apply(_init)

    def forward(self, z: Tensor) -> Tensor:
        h = self.linear(z.flatten(1)).view(z.shape[0], self.width, 4, 4)
        return self.out(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, width: int = 128, spectral: bool = True,
                 norm: str = "none"):
        super().__init__()
        n = check_resolution(resolution)
        final = 2 if resolution == 8 else 3                 # 4x4 for 8x8 inputs, else 8x8
        blocks = [DBlock(channels, width, down=True, first=True)]
        blocks += [DBlock(width, width, down=True, norm=norm) for _ in range(n - final - 1)]
        blocks += [DBlock(width, width, down=False, norm=norm) for _ in range(2)]
        self.body = nn.Sequential(*blocks)
        self.feature_dim = width
        self.head = nn.Linear(width, 1)
        self.apply(_init)
        if spectral:
            for m in list(self.modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    spectral_norm(m)

    def features(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x)).sum(dim=(2, 3))         # global sum pooling, as SNGAN

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)
