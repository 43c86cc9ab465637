"""R3GAN's networks (Huang, Gokaslan, Kuleshov & Tompkin 2024, arXiv:2501.05441, §4 and Figure 3): a plain
modernised ResNet in both players, with no normalisation layer anywhere.

- Residual blocks are 1-3-1 inverted bottlenecks (ConvNeXt-style): 1x1 conv to `expansion` x the width, a
  grouped 3x3 conv (`group_size` channels per group), 1x1 conv back; a leaky ReLU (0.2) with its own bias after
  each of the first two convs.
- Fix-up initialisation (Zhang et al. 2019, arXiv:1901.09321, as §4 of the paper uses it): the last conv of
  every block starts at zero, so every block is the identity at step 0; the others are drawn N(0, g^2 / fan_in)
  with g the leaky ReLU gain times L^(-1/4), L the number of residual blocks in the net (three convs per block:
  L^(-1/(2m-2)) with m = 3).
- Resolution changes between stages: G upsamples bilinearly (after a 1x1 conv when the width changes), D
  downsamples with the [1, 3, 3, 1] / 8 binomial filter (the antialiased bilinear kernel) before its 1x1 conv.
- G starts from a learned 4x4 basis modulated by a linear map of z, and ends in a 1x1 conv without tanh; D
  starts with a 1x1 conv and ends in a depthwise 4x4 conv and a linear `head`.
- Class-conditional: G concatenates a linear embedding of the one-hot label to z; D's head gives an embedding
  whose dot product with the label's embedding is the logit (projection, Miyato & Koyama 2018).

Widths are listed from 4x4 upwards for G; D mirrors them. The reference code's fp16 stages are not kept
(precision is the trainer's choice here).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SLOPE = 0.2
GAIN = math.sqrt(2 / (1 + SLOPE ** 2))   # the leaky ReLU's variance-preserving gain (He init)


def msr(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """N(0, gain^2 / fan_in) weights, zero bias; gain 0 gives a zero layer (the fix-up last conv)."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in)) if gain else nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(cin: int, cout: int, k: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), SLOPE)


class Block(nn.Module):
    """x + conv1x1(act(conv3x3_grouped(act(conv1x1(x))))), the last conv zero at initialisation."""

    def __init__(self, width: int, expansion: int, group_size: int, num_blocks: int):
        super().__init__()
        wide = width * expansion
        if wide > group_size and wide % group_size:
            raise ValueError(f"R3GAN block: expanded width {wide} is not a multiple of group_size {group_size}")
        groups = max(1, wide // group_size)     # fewer channels than one group: a dense 3x3 conv
        gain = GAIN * num_blocks ** -0.25
        self.expand = conv(width, wide, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(wide)
        self.spatial = conv(wide, wide, 3, groups=groups, gain=gain)
        self.act2 = BiasedLeakyReLU(wide)
        self.project = conv(wide, width, 1, gain=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.act2(self.spatial(self.act1(self.expand(x)))))


class Blur(nn.Module):
    """Depthwise [1, 3, 3, 1] / 8 per axis with stride 2: the antialiased bilinear downsample, twice
    differentiable (R1/R2 differentiate D's gradient)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = torch.outer(k, k) / k.sum() ** 2
        self.register_buffer("kernel", k.expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=x.shape[1])


def check_widths(widths, resolution: int) -> list[int]:
    stages = int(math.log2(resolution)) - 1
    if resolution < 4 or 2 ** (stages + 1) != resolution:
        raise ValueError(f"r3gan needs a power-of-two resolution >= 4; got {resolution}")
    widths = list(widths)
    if len(widths) == 1:
        widths = widths * stages
    if len(widths) != stages:
        raise ValueError(f"r3gan at {resolution}x{resolution} has {stages} stages (4x4 to {resolution}x{resolution}); "
                         f"got {len(widths)} widths {widths}")
    return widths


class R3Generator(nn.Module):
    def __init__(self, z_dim: int, resolution: int, channels: int, widths=(64,), blocks: int = 2, expansion: int = 2,
                 group_size: int = 16, num_classes: int = 0):
        super().__init__()
        widths = check_widths(widths, resolution)
        n_blocks = blocks * len(widths)
        self.embed = msr(nn.Linear(num_classes, z_dim, bias=False)) if num_classes else None
        cin = z_dim * (2 if num_classes else 1)
        self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.modulate = msr(nn.Linear(cin, widths[0], bias=False))
        self.stages = nn.ModuleList()
        for i, w in enumerate(widths):
            stage = nn.Module()
            stage.widen = conv(widths[i - 1], w) if i and widths[i - 1] != w else nn.Identity()
            stage.blocks = nn.Sequential(*[Block(w, expansion, group_size, n_blocks) for _ in range(blocks)])
            self.stages.append(stage)
        self.to_image = conv(widths[-1], channels)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(F.one_hot(labels, self.embed.in_features).to(z.dtype))], 1)
        x = self.basis.unsqueeze(0).to(z.dtype) * self.modulate(z)[:, :, None, None]
        for i, stage in enumerate(self.stages):
            if i:
                x = F.interpolate(stage.widen(x), scale_factor=2, mode="bilinear", align_corners=False)
            x = stage.blocks(x)
        return self.to_image(x)


class R3Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, widths=(64,), blocks: int = 2, expansion: int = 2,
                 group_size: int = 16, num_classes: int = 0):
        super().__init__()
        widths = check_widths(widths, resolution)[::-1]       # D mirrors G: from full resolution down to 4x4
        n_blocks = blocks * len(widths)
        self.from_image = conv(channels, widths[0])
        self.stages = nn.ModuleList()
        for i, w in enumerate(widths):
            stage = nn.Module()
            stage.blocks = nn.Sequential(*[Block(w, expansion, group_size, n_blocks) for _ in range(blocks)])
            if i + 1 < len(widths):
                stage.down = Blur(w)
                stage.narrow = conv(w, widths[i + 1]) if widths[i + 1] != w else nn.Identity()
            self.stages.append(stage)
        self.basis = msr(nn.Conv2d(widths[-1], widths[-1], 4, groups=widths[-1], bias=False))
        self.head = msr(nn.Linear(widths[-1], widths[-1] if num_classes else 1, bias=False))
        self.embed = (msr(nn.Linear(num_classes, widths[-1], bias=False), 1 / math.sqrt(widths[-1]))
                      if num_classes else None)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.from_image(x)
        for i, stage in enumerate(self.stages):
            x = stage.blocks(x)
            if i + 1 < len(self.stages):
                x = stage.narrow(stage.down(x))
        out = self.head(self.basis(x).flatten(1))
        if self.embed is not None:
            out = (out * self.embed(F.one_hot(labels, self.embed.in_features).to(out.dtype))).sum(1, keepdim=True)
        return out.flatten()
