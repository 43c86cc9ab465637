"""Building blocks of Progressive GAN and StyleGAN / StyleGAN2.

- Equalized learning rate, ProGAN (Karras et al. 2018, arXiv:1710.10196) §4.1: weights are stored as
  N(0, 1) and scaled at run time by He's constant c = gain / sqrt(fan_in), so Adam, which is invariant
  to a parameter's scale, moves every effective weight by about lr * c. StyleGAN (arXiv:1812.04948,
  App. C) adds a learning-rate multiplier: c becomes gain / sqrt(fan_in) * lr_mul and the stored init
  N(0, 1 / lr_mul^2), so the effective init is still He's while the effective steps shrink by lr_mul.
- PixelNorm, ProGAN §4.2: b_xy = a_xy / sqrt(1/N sum_j (a^j_xy)^2 + eps), eps = 1e-8.
- MinibatchStdDev, ProGAN §3: the standard deviation of every feature over a group of samples,
  averaged into one extra feature map (num_features > 1 splits the channels, as StyleGAN's code does).
- NoiseInjection, StyleGAN §2: single-channel Gaussian noise, added with a learned per-channel scale.
- AdaIN, StyleGAN eq. 1: AdaIN(x_i, y) = y_s,i (x_i - mu(x_i)) / sigma(x_i) + y_b,i, y = A(w).
- ModulatedConv2d, StyleGAN2 (Karras et al. 2020, arXiv:1912.04958) §2.2:
  eq. 1 w'_ijk = s_i w_ijk;  eq. 2-3 w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GanforgeError
from ..precision import wide

HE_GAIN = math.sqrt(2.0)  # He's gain for layers followed by a (leaky) ReLU


def _check_lr_mul(lr_mul: float) -> float:
    if not lr_mul > 0:
        raise GanforgeError(f"lr_mul must be > 0 (got {lr_mul}); use e.g. 0.01 for StyleGAN's mapping net")
    return float(lr_mul)


def _random_noise(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class EqualizedLinear(nn.Module):
    """y = x (c W)^T + lr_mul b with c = gain / sqrt(in_features) * lr_mul (ProGAN §4.1)."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 *, bias: bool = True, gain: float = HE_GAIN):
        super().__init__()
        self.lr_mul = _check_lr_mul(lr_mul)
        self.in_features, self.out_features = in_features, out_features
        self.scale = gain / math.sqrt(in_features) * self.lr_mul
        # stored / lr_mul: the effective weight c * W starts at He's N(0, gain^2 / fan_in) for any lr_mul
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / self.lr_mul)
        # likewise the effective bias lr_mul * b starts at bias_init
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / self.lr_mul)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.linear(x, self.weight * self.scale, bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, lr_mul={self.lr_mul}, scale={self.scale:.4g}"


class EqualizedConv2d(nn.Module):
    """conv2d(x, c W) + lr_mul b with c = gain / sqrt(in_channels * k * k) * lr_mul (ProGAN §4.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | None = None, *, bias: bool = True, gain: float = HE_GAIN,
                 lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.lr_mul = _check_lr_mul(lr_mul)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding  # default keeps H x W at stride 1
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size) * self.lr_mul
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / self.lr_mul)
        self.bias = nn.Parameter(torch.full((out_channels,), bias_init / self.lr_mul)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        return F.conv2d(x, self.weight * self.scale, bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, scale={self.scale:.4g}")


class PixelNorm(nn.Module):
    """Normalize every pixel's feature vector to unit mean square over channels (ProGAN §4.2)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(wide(x).square().mean(dim=1, keepdim=True) + self.eps)   # fp32 statistic


class MinibatchStdDev(nn.Module):
    """Append num_features maps holding the group standard deviation of the features (ProGAN §3).

    Sample i belongs to group i mod (N / G), G = min(group_size, N); G must divide N.
    """

    def __init__(self, group_size: int = 4, num_features: int = 1, eps: float = 1e-8):
        super().__init__()
        if group_size < 1 or num_features < 1:
            raise GanforgeError(f"MinibatchStdDev needs group_size >= 1 and num_features >= 1 "
                                f"(got {group_size}, {num_features})")
        self.group_size, self.num_features, self.eps = group_size, num_features, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g, f = min(self.group_size, n), self.num_features
        if n % g:
            raise GanforgeError(f"MinibatchStdDev: batch size {n} is not a multiple of the group size {g}; "
                                f"use a batch size divisible by {g} or a group_size that divides {n}")
        if c % f:
            raise GanforgeError(f"MinibatchStdDev: {c} channels cannot be split into num_features={f} "
                                f"groups; use a num_features that divides {c}")
        y = wide(x).reshape(g, n // g, f, c // f, h, w)     # statistics in fp32 (precision.py)
        y = (y - y.mean(dim=0)).square().mean(dim=0)        # biased variance over the group
        y = (y + self.eps).sqrt().mean(dim=(2, 3, 4))       # std averaged over channels and pixels
        y = y.reshape(n // g, f, 1, 1).repeat(g, 1, h, w)   # row i gets its group i mod (n / g)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class NoiseInjection(nn.Module):
    """x + s_c * noise, noise ~ N(0, 1) of shape N x 1 x H x W, s learned per channel, zero init (StyleGAN §2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        if noise is None:
            noise = _random_noise((n, 1, h, w), x, generator)
        elif (noise.dim() != 4 or noise.shape[1] != 1 or tuple(noise.shape[2:]) != (h, w)
              or noise.shape[0] not in (1, n)):
            raise GanforgeError(f"noise of shape {tuple(noise.shape)} does not fit features "
                                f"{tuple(x.shape)}; pass noise of shape ({n} or 1) x 1 x {h} x {w}")
        return x + self.weight.view(1, -1, 1, 1) * noise


class AdaIN(nn.Module):
    """Instance-normalize x, then scale and shift every channel by the style y = A(w) (StyleGAN eq. 1)."""

    def __init__(self, channels: int, w_dim: int, eps: float = 1e-8):
        super().__init__()
        # the learned affine A: scale bias init 1 so that at init AdaIN is close to plain instance norm
        self.to_scale = EqualizedLinear(w_dim, channels, bias_init=1.0, gain=1.0)
        self.to_bias = EqualizedLinear(w_dim, channels, bias_init=0.0, gain=1.0)
        self.eps = eps

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = wide(x)                                          # statistics in fp32 (precision.py)
        # the biased variance as the mean square of the centred x: the same statistic as x.var(unbiased=False),
        # whose forward and backward over H, W of channels_last activations ran 2-3x slower on CPU
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x = x * torch.rsqrt(x.square().mean(dim=(2, 3), keepdim=True) + self.eps)
        return self.to_scale(w)[:, :, None, None] * x + self.to_bias(w)[:, :, None, None]


class ModulatedConv2d(nn.Module):
    """Per-sample convolution with weights modulated by s = A(w) and, optionally, demodulated.

    StyleGAN2 §2.2 eq. 1-3. The N per-sample kernels run as one grouped convolution (groups = N), as in
    the paper's implementation. up=True doubles H and W (bilinear) before the convolution. No bias: the
    generator adds it after the noise, as in StyleGAN2's layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False, eps: float = 1e-8):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.up, self.eps = demodulate, up, eps
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)  # equalized lr
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0, gain=1.0)  # s = A(w), init ~1

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """The N x out x in x k x k kernels w'' (or w' without demodulation) for styles w (N x w_dim)."""
        s = self.affine(w)
        weight = self.weight[None] * self.scale * s[:, None, :, None, None]                         # eq. 1
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + self.eps)  # eq. 2-3
        return weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        weight = self.modulated_weight(w)
        k = self.kernel_size
        out = F.conv2d(x.reshape(1, n * c, *x.shape[2:]), weight.reshape(n * self.out_channels, c, k, k),
                       padding=k // 2, groups=n)
        return out.reshape(n, self.out_channels, *out.shape[2:])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"demodulate={self.demodulate}, up={self.up}")
