"""SRGAN's networks: the SRResNet generator and the VGG-style discriminator.

Ledig et al. 2017, arXiv:1609.04802, Fig. 4 and Sec. 2.2:
- G (SRResNet): k9n64s1 conv + PReLU; B = 16 residual blocks [k3n64s1, BN, PReLU, k3n64s1, BN] + x;
  k3n64s1 + BN and a global (elementwise-sum) skip from the first conv; per factor 2 one sub-pixel stage
  [k3n256s1, PixelShuffle x2 (Shi et al. 2016, arXiv:1609.05158), PReLU]; k9n3s1 out. `icnr=True` starts
  the sub-pixel convs without checkerboard (ICNR, Aitken et al. 2017; not in the paper).
- D: k3n64s1 + LeakyReLU(0.2), then 7 blocks [conv3, BN, LeakyReLU] with n = 64, 128, 128, 256, 256, 512,
  512 and strides 2,1,2,1,2,1,2; Dense(1024), LeakyReLU, Dense(1). D returns the logit; the paper's
  sigmoid belongs to the loss. The loss l^SR = l^SR_X + 1e-3 l^SR_Gen (Eq. 3) and EPSR's weighting
  (Vasu et al. 2018) are the recipe's business, with perceptual.py's feature nets.

Images are in [-1, 1] on both sides (the paper fed LR in [0, 1]); G ends in tanh to stay in range.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .image2image import ArchitectureError


class SRResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.PReLU(width),
                                  nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def icnr_(conv: nn.Conv2d, factor: int = 2) -> None:
    """ICNR (Aitken et al. 2017, arXiv:1707.02937): the sub-pixel conv before PixelShuffle(factor) starts
    as a conv to 1/factor^2 as many channels, each copied to its factor^2 sub-pixels, so the shuffled output
    is nearest-neighbour upsampling of that conv's output: no checkerboard at initialisation."""
    out, inp, kh, kw = conv.weight.shape
    base = torch.empty(out // factor ** 2, inp, kh, kw)
    nn.init.kaiming_uniform_(base, a=5 ** 0.5)   # nn.Conv2d's default initialisation
    with torch.no_grad():
        conv.weight.copy_(base.repeat_interleave(factor ** 2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[::factor ** 2].repeat_interleave(factor ** 2))


class SRResNet(nn.Module):
    """SRResNet G: N x C x h x w low-resolution images -> N x C x (scale h) x (scale w) (Ledig Fig. 4)."""

    def __init__(self, channels: int = 3, width: int = 64, blocks: int = 16, scale: int = 4, icnr: bool = False):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ArchitectureError(f"SRResNet upsamples by pixel-shuffle x2 stages, so scale must be a power "
                                    f"of two >= 2 (the paper: 4, also 2), got {scale}")
        if blocks < 1:
            raise ArchitectureError(f"SRResNet needs blocks >= 1 (the paper uses 16), got {blocks}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, 1, 4), nn.PReLU(width))
        self.body = nn.Sequential(*[SRResidualBlock(width) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))
        ups: list[nn.Module] = []
        for _ in range(scale.bit_length() - 1):  # log2(scale) stages of x2
            # conv to 4x channels, then PixelShuffle(2) rearranges them into a 2x larger map
            ups += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU(width)]
            if icnr:
                icnr_(ups[-3])
        self.up = nn.Sequential(*ups)
        self.tail = nn.Sequential(nn.Conv2d(width, channels, 9, 1, 4), nn.Tanh())

    def forward(self, lr: Tensor) -> Tensor:
        h = self.head(lr)
        h = h + self.body(h)  # the global skip: residual blocks learn only the high-frequency correction
        return self.tail(self.up(h))


class SRDiscriminator(nn.Module):
    """SRGAN D for `resolution` x `resolution` HR images -> N logits; the dense head is sized from the resolution.

    Widths w, w, 2w, 2w, 4w, 4w, 8w, 8w (w = 64 in the paper) and Dense(16 w): the paper's 1024 at w = 64.
    Four stride-2 convs take side s to ceil(s / 16) (96 -> 6 in the paper, 8 -> 1).
    """

    def __init__(self, channels: int = 3, width: int = 64, resolution: int = 96):
        super().__init__()
        if resolution < 4:
            raise ArchitectureError(f"SRDiscriminator needs a resolution >= 4, got {resolution}")
        self.resolution = resolution
        seq: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        c_prev, side = width, resolution
        for j, mult in enumerate((1, 2, 2, 4, 4, 8, 8)):
            stride = 2 if j % 2 == 0 else 1
            seq += [nn.Conv2d(c_prev, width * mult, 3, stride, 1), nn.BatchNorm2d(width * mult),
                    nn.LeakyReLU(0.2)]
            c_prev = width * mult
            side = (side + 1) // 2 if stride == 2 else side
        self.features = nn.Sequential(*seq)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_prev * side * side, 16 * width), nn.LeakyReLU(0.2),
                                  nn.Linear(16 * width, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise ArchitectureError(f"SRDiscriminator was built for {self.resolution}x{self.resolution} "
                                    f"images, got {tuple(x.shape[-2:])}")
        return self.head(self.features(x)).squeeze(1)
