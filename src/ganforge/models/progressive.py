"""Progressive GAN generator and discriminator, grown from 4x4 to the target resolution.

Karras et al. 2018, "Progressive Growing of GANs for Improved Quality, Stability, and Variation",
arXiv:1710.10196. Stage k works at 4 * 2^k pixels. §2 and Fig. 2: a new block fades in smoothly:
    G: out = (1 - alpha) * up(toRGB_{k-1}(h_{k-1})) + alpha * toRGB_k(block_k(h_{k-1}))
    D: h   = (1 - alpha) * fromRGB_{k-1}(down(x))   + alpha * block_k(fromRGB_k(x))
with alpha rising linearly from 0 to 1 over a phase of images, and the real images blended the same
way (`downscale_to`). Nearest-neighbour up-sampling and 2x2 average pooling (Fig. 2). §3 minibatch
standard deviation before D's last block, §4.1 equalized learning rate everywhere, §4.2 PixelNorm
after every conv of G, leaky ReLU 0.2, linear outputs (Table 2). The loss (WGAN-GP plus drift
1e-3 * E[D(real)^2]) belongs to the recipe.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GanforgeError
from ..nn.style import EqualizedConv2d, EqualizedLinear, MinibatchStdDev, PixelNorm


def stage_widths(resolution: int, width: int, max_width: int) -> list[int]:
    """Channels at stages 0 (4x4) .. log2(resolution) - 2: `width` at full resolution, doubling at
    every halving, capped at `max_width` (ProGAN Table 2 shape, scaled)."""
    if not (isinstance(resolution, int) and resolution >= 4 and resolution & (resolution - 1) == 0):
        raise GanforgeError(f"resolution must be a power of two >= 4 (got {resolution!r}); "
                            f"resize the data, e.g. to 32 or 64")
    if width < 1 or max_width < 1:
        raise GanforgeError(f"width and max_width must be >= 1 (got {width}, {max_width})")
    num_stages = resolution.bit_length() - 2  # 4 -> 1 stage, 8 -> 2, ...
    return [min(width * 2 ** (num_stages - 1 - k), max_width) for k in range(num_stages)]


def check_stage(stage: int | None, alpha: float, max_stage: int) -> tuple[int, float]:
    """Validate (stage, alpha); stage None means the full resolution."""
    stage = max_stage if stage is None else stage
    if not 0 <= stage <= max_stage:
        raise GanforgeError(f"stage {stage} is out of range: this network has stages 0..{max_stage} "
                            f"(4x4..{4 * 2 ** max_stage}x{4 * 2 ** max_stage})")
    if not 0.0 <= alpha <= 1.0:
        raise GanforgeError(f"fade-in alpha must be in [0, 1] (got {alpha})")
    return stage, float(alpha)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def output_block(width: int, mbstd_group: int, mbstd_features: int) -> nn.Sequential:
    """D's 4x4 head (ProGAN Table 2): minibatch stddev, 3x3 conv, dense, dense to one logit."""
    return nn.Sequential(
        MinibatchStdDev(mbstd_group, mbstd_features),
        EqualizedConv2d(width + mbstd_features, width, 3), _lrelu(),
        nn.Flatten(), EqualizedLinear(width * 16, width), _lrelu(),
        EqualizedLinear(width, 1, gain=1.0))


class _GInput(nn.Module):
    """z -> 4x4 features: PixelNorm(z), dense (Table 2's 4x4 conv on a 1x1 input), 3x3 conv."""

    def __init__(self, z_dim: int, width: int):
        super().__init__()
        self.width = width
        self.norm_z, self.norm_h = PixelNorm(), PixelNorm()
        self.dense = EqualizedLinear(z_dim, width * 16)
        self.conv = nn.Sequential(EqualizedConv2d(width, width, 3), _lrelu(), PixelNorm())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(self.norm_z(z)).view(-1, self.width, 4, 4)
        return self.conv(self.norm_h(F.leaky_relu(h, 0.2)))


def _g_block(in_width: int, out_width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        EqualizedConv2d(in_width, out_width, 3), _lrelu(), PixelNorm(),
        EqualizedConv2d(out_width, out_width, 3), _lrelu(), PixelNorm())


def _d_block(in_width: int, out_width: int) -> nn.Sequential:
    return nn.Sequential(
        EqualizedConv2d(in_width, in_width, 3), _lrelu(),
        EqualizedConv2d(in_width, out_width, 3), _lrelu(),
        nn.AvgPool2d(2))


class ProGenerator(nn.Module):
    """G(z, stage, alpha) -> N x channels x (4 * 2^stage)^2 images (linear output, as in the paper)."""

    def __init__(self, z_dim: int, resolution: int, channels: int, width: int = 64, max_width: int = 256):
        super().__init__()
        widths = stage_widths(resolution, width, max_width)
        self.z_dim, self.resolution, self.channels = z_dim, resolution, channels
        self.max_stage = len(widths) - 1
        self.blocks = nn.ModuleList([_GInput(z_dim, widths[0])] +
                                    [_g_block(widths[k - 1], widths[k]) for k in range(1, len(widths))])
        # toRGB is linear: gain 1 (ProGAN's reference code)
        self.to_rgb = nn.ModuleList([EqualizedConv2d(c, channels, 1, gain=1.0) for c in widths])

    def forward(self, z: torch.Tensor, stage: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        stage, alpha = check_stage(stage, alpha, self.max_stage)
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise GanforgeError(f"ProGenerator expects z of shape N x {self.z_dim} (got {tuple(z.shape)})")
        h = prev = self.blocks[0](z)
        for k in range(1, stage + 1):
            prev, h = h, self.blocks[k](h)
        out = self.to_rgb[stage](h)
        if stage > 0 and alpha < 1.0:
            old = F.interpolate(self.to_rgb[stage - 1](prev), scale_factor=2, mode="nearest")
            out = old + alpha * (out - old)
        return out


class ProDiscriminator(nn.Module):
    """D(x, stage, alpha) -> N logits (higher = more real) for x at 4 * 2^stage pixels."""

    def __init__(self, resolution: int, channels: int, width: int = 64, max_width: int = 256,
                 mbstd_group: int = 4, mbstd_features: int = 1):
        super().__init__()
        widths = stage_widths(resolution, width, max_width)
        self.resolution, self.channels = resolution, channels
        self.max_stage = len(widths) - 1
        self.from_rgb = nn.ModuleList([nn.Sequential(EqualizedConv2d(channels, c, 1), _lrelu()) for c in widths])
        # blocks[k] maps stage k to stage k - 1; blocks[0] is the 4x4 head
        self.blocks = nn.ModuleList([output_block(widths[0], mbstd_group, mbstd_features)] +
                                    [_d_block(widths[k], widths[k - 1]) for k in range(1, len(widths))])

    def forward(self, x: torch.Tensor, stage: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        stage, alpha = check_stage(stage, alpha, self.max_stage)
        size = 4 * 2 ** stage
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, size, size):
            raise GanforgeError(f"ProDiscriminator at stage {stage} expects N x {self.channels} x {size} x {size} "
                                f"images (got {tuple(x.shape)}); bring reals there with downscale_to")
        h = self.from_rgb[stage](x)
        if stage > 0:
            h = self.blocks[stage](h)
            if alpha < 1.0:
                old = self.from_rgb[stage - 1](F.avg_pool2d(x, 2))
                h = old + alpha * (h - old)
        for k in range(stage - 1, 0, -1):
            h = self.blocks[k](h)
        return self.blocks[0](h).squeeze(1)


def progan_schedule(step: int, resolution: int, images_per_phase: int, batch_size: int) -> tuple[int, float]:
    """(stage, alpha) after `step` updates of `batch_size` images: a pure function, so resume is exact.

    Phases of `images_per_phase` images each (ProGAN §2, App. A: 800k): stabilize 4x4, then per new
    resolution a fade-in (alpha = images into the phase / images_per_phase) and a stabilize phase
    (alpha = 1); after the last one the full resolution stays, alpha = 1.
    """
    max_stage = len(stage_widths(resolution, 1, 1)) - 1
    if step < 0 or images_per_phase < 1 or batch_size < 1:
        raise GanforgeError(f"progan_schedule needs step >= 0, images_per_phase >= 1 and batch_size >= 1 "
                            f"(got {step}, {images_per_phase}, {batch_size})")
    phase, into = divmod(step * batch_size, images_per_phase)  # integers: no drift over long runs
    stage = (phase + 1) // 2
    if stage > max_stage:
        return max_stage, 1.0
    fading = phase % 2 == 1
    return stage, into / images_per_phase if fading else 1.0


def downscale_to(real: torch.Tensor, stage: int, alpha: float) -> torch.Tensor:
    """Real images at stage k's 4 * 2^k pixels (average pooling), blended during the fade-in with their
    lower-resolution version up-sampled, as G's output is (ProGAN §2; `process_reals` in the reference)."""
    if not 0.0 <= alpha <= 1.0:
        raise GanforgeError(f"fade-in alpha must be in [0, 1] (got {alpha})")
    size = 4 * 2 ** stage if stage >= 0 else 0
    if real.dim() != 4 or real.shape[2] != real.shape[3] or size < 4 or real.shape[2] % size:
        raise GanforgeError(f"downscale_to: cannot bring images of shape {tuple(real.shape)} to stage {stage} "
                            f"({size}x{size}); pass square N x C x H x H images with H a multiple of {size}")
    x = F.avg_pool2d(real, real.shape[2] // size) if real.shape[2] != size else real
    if stage > 0 and alpha < 1.0:
        low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = low + alpha * (x - low)
    return x
