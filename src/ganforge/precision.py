"""What stays in fp32 under mixed precision: one rule for the whole package (docs/performance.md#precision).

Under autocast only matrix products and convolutions run in bf16/fp16 (where the speed is); their
activations flow on in that dtype. Everything that *reduces* many numbers into a few is computed in fp32,
because bf16 keeps 8 significant bits: a loss or a mean over 10^4 terms, or a squared norm, rounds to
steps of 0.4% of its value, and fp16 overflows above 65,504. So:

- losses (losses.py: every adversarial loss and reconstruction distance, hence the perceptual feature
  distance too) take their inputs through `wide()`, as @fp32 below;
- gradient penalties and norms of gradients (regularizers.py), normalisations (PixelNorm, instance norm,
  demodulation, virtual batch norm) and softmax/logsumexp compute in fp32;
- the trainer back-propagates `loss.float()` and keeps the optimizer state in fp32.

`guard_convs` works around an oneDNN defect on CPUs with AMX: the bf16 backward-weights kernel
(brgconv_bwd_w:avx10_1_512_amx in ONEDNN_VERBOSE) sometimes leaves garbage, often NaN, in the weight
gradient of kernel taps that only ever see zero padding (a 3x3 padded conv on a 1x1 map, pix2pix's
innermost U-Net conv on a 2x2 map, SRResNet's 9x9 head on a 2x2 input). Those convs run in fp32, unless
conv_grad routes them (its GEMM weight gradient windows only zeros there, so those taps get exactly 0).
"""
from __future__ import annotations

import functools
import types

import torch
from torch import Tensor, nn


def wide(x):
    """x in fp32, or unchanged if it is already fp32/fp64 or not a floating tensor."""
    if isinstance(x, Tensor) and x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
        return x.float()
    return x


def fp32(fn):
    """Decorator: every tensor argument of `fn` goes through wide() (the loss functions' rule)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*(wide(a) for a in args), **{k: wide(v) for k, v in kwargs.items()})
    return wrapper


def padding_only_tap(size: int, kernel: int, stride: int, pad: int, dilation: int) -> bool:
    """True when some kernel tap along one axis of `size` input pixels meets only padding at every output
    position (so its weight gradient is exactly 0)."""
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    return any(all(not 0 <= o * stride - pad + i * dilation < size for o in range(out)) for i in range(kernel))


def _pads(conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    return conv.padding


def _guarded_conv_forward(self: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    key = tuple(x.shape[-2:])
    degenerate = self._padding_only.get(key)
    if degenerate is None:
        degenerate = self._padding_only[key] = any(
            padding_only_tap(n, k, s, p, d)
            for n, k, s, p, d in zip(key, self.kernel_size, self.stride, _pads(self), self.dilation))
    if degenerate and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return nn.Conv2d._conv_forward(self, wide(x), wide(weight), wide(bias))
    return nn.Conv2d._conv_forward(self, x, weight, bias)


def guard_convs(net: nn.Module) -> int:
    """Make every nn.Conv2d of `net` run in fp32 under CPU autocast when one of its taps meets only padding
    (see the module docstring); returns how many convs were guarded. Idempotent; survives deepcopy (EMA)."""
    count = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros" and "_padding_only" not in m.__dict__:
            m._padding_only = {}
            m._conv_forward = types.MethodType(_guarded_conv_forward, m)
            count += 1
    return count
