"""Bundled digits evaluator: a small CNN trained on scikit-learn's 8x8 digits (train split).

It plays the role the Inception network plays for natural images, on our own data:
- `features` (penultimate layer) for FID/KID/precision-recall on digits;
- `digit_score`: the Inception Score formula (Salimans et al. 2016, arXiv:1606.03498, Sec. 4),
  IS = exp( E_x KL( p(y|x) || p(y) ) ), with this classifier in place of Inception;
- `stacked_modes`: mode counting on `digits:stacked` as PacGAN does on Stacked MNIST
  (Lin et al. 2018, arXiv:1712.04086, Sec. 5.1): each channel is classified on its own, the mode is
  100*d0 + 10*d1 + d2 (1,000 modes), and KL = KL(mode histogram || uniform over 1,000) in nats.

Input protocol: float images N x 1 x H x W in [-1, 1], a pixel value v in 0..16 of the data set being
v / 8 - 1 (background -1). The weights come from scripts/train_digits_evaluator.py (split: sample i of
load_digits() is test iff i % 5 == 0); their test accuracy and sha256 are in weights/digits_cnn.json.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..download import load_bundled
from ..errors import GanforgeError
from .stats import inception_score

RESOLUTION = 8          # the data's own resolution: every input is brought back to it
NUM_CLASSES = 10
NUM_STACKED_MODES = 1000
FEATURE_DIM = 128


def weights_path() -> Path:
    """The shipped safetensors file (package data, next to this module)."""
    return Path(__file__).resolve().parent / "weights" / "digits_cnn.safetensors"


def evaluator_sha256() -> str:
    """sha256 of the shipped weights, recorded with every metric computed from them."""
    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


def resize_to_digits(x: Tensor) -> Tensor:
    """N x 1 x H x W -> N x 1 x 8 x 8.

    The classifier only ever saw 8x8 images (the data's own resolution), so larger inputs (a generator
    trained on digits upsampled to 16 or 32) are averaged back down with "area": it is the exact
    inverse of nearest upsampling by an integer factor and an anti-aliased average otherwise, whereas
    bilinear downsampling by 4x would read only a few pixels and alias. Smaller inputs are upsampled
    bilinearly (area would just repeat pixels).
    """
    h, w = x.shape[-2:]
    if (h, w) == (RESOLUTION, RESOLUTION):
        return x
    if h >= RESOLUTION and w >= RESOLUTION:
        return F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="area")
    return F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False)


class DigitsEvaluator(nn.Module):
    """Conv 16-32-64 on 8x8 (two 2x2 pools) -> 128 features -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 4x4
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),      # 2x2
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, FEATURE_DIM), nn.ReLU(),
        )
        # dropout only acts while training the shipped weights; the evaluator runs in eval mode
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, NUM_CLASSES))

    def features(self, x: Tensor) -> Tensor:
        """N x 1 x H x W in [-1, 1] -> N x 128 (post-ReLU penultimate layer)."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise GanforgeError(
                f"DigitsEvaluator takes N x 1 x H x W images, got shape {tuple(x.shape)}; for 3-channel "
                "digits:stacked images use stacked_modes(), which classifies each channel separately")
        return self.body(resize_to_digits(x.float()))

    def logits(self, x: Tensor) -> Tensor:
        """N x 1 x H x W in [-1, 1] -> N x 10 class logits."""
        return self.head(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(x)


def load_digits_evaluator() -> DigitsEvaluator:
    """The shipped evaluator in eval mode, on CPU (move it with .to(device))."""
    return load_bundled(DigitsEvaluator(), weights_path(), "digits evaluator",
                        "reinstall ganforge or regenerate them with `python scripts/train_digits_evaluator.py`")


def _batches(images: Tensor, batch_size: int):
    if batch_size < 1:
        raise GanforgeError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, images.shape[0], batch_size):
        yield images[start:start + batch_size]


def _device(evaluator: nn.Module) -> torch.device:
    return next(evaluator.parameters()).device


@torch.no_grad()
def _predict(evaluator: DigitsEvaluator, images: Tensor, batch_size: int) -> Tensor:
    """N x 1 x H x W -> N predicted digits (on CPU), streamed in batches."""
    device = _device(evaluator)
    preds = [evaluator.logits(b.to(device)).argmax(1).cpu() for b in _batches(images, batch_size)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def class_accuracy(evaluator: DigitsEvaluator, images: Tensor, labels: Tensor,
                   batch_size: int = 512) -> float:
    """Fraction of images whose predicted digit equals its label (conditional GANs: label fidelity)."""
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise GanforgeError(f"class_accuracy needs as many labels as images (> 0), got "
                            f"{images.shape[0]} images and {labels.shape[0]} labels")
    preds = _predict(evaluator, images, batch_size)
    return (preds == labels.cpu().long()).double().mean().item()


@torch.no_grad()
def digit_score(evaluator: DigitsEvaluator, images: Tensor, splits: int = 10,
                batch_size: int = 512) -> tuple[float, float]:
    """Inception Score formula with the digit classifier: (mean, std) over `splits`; 1 <= score <= 10."""
    if splits < 1 or images.shape[0] < splits:
        raise GanforgeError(f"digit_score needs at least `splits` images and splits >= 1, got "
                            f"{images.shape[0]} images and splits={splits}")
    device = _device(evaluator)
    p_yx = torch.cat([F.softmax(evaluator.logits(b.to(device)).double(), dim=1).cpu()
                      for b in _batches(images, batch_size)])
    return inception_score(p_yx.numpy(), splits=splits, from_logits=False)   # the package's one IS


def _kl_to_uniform(histogram: Tensor) -> float:
    """KL(p || uniform) in nats, p = histogram / total; empty bins contribute 0 (0 log 0 = 0)."""
    counts = histogram.double().flatten()
    if counts.sum() <= 0:
        raise GanforgeError("mode histogram is empty: evaluate at least one sample")
    p = counts / counts.sum()
    p = p[p > 0]
    return (p * (p.log() + math.log(counts.numel()))).sum().item()


@torch.no_grad()
def _mode_ids(evaluator: DigitsEvaluator, images: Tensor, batch_size: int) -> Tensor:
    """N x 3 x H x W -> N mode ids 100*d0 + 10*d1 + d2 (channel 0 is the hundreds digit)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise GanforgeError(f"stacked_modes takes N x 3 x H x W digits:stacked images, got shape "
                            f"{tuple(images.shape)}")
    n, _, h, w = images.shape
    return joint_label(_predict(evaluator, images.reshape(n * 3, 1, h, w), batch_size).view(n, 3))


def joint_label(digits: Tensor) -> Tensor:
    """N x C per-channel digits -> N joint labels (C = 3: 100 d0 + 10 d1 + d2, the digits:stacked label)."""
    ids = torch.zeros(digits.shape[0], dtype=torch.long)
    for c in range(digits.shape[1]):
        ids = ids * 10 + digits[:, c].long().cpu()
    return ids


def stacked_modes(evaluator: DigitsEvaluator, images: Tensor, batch_size: int = 512) -> dict:
    """digits:stacked mode coverage (PacGAN, arXiv:1712.04086): {"modes": covered out of 1000, "kl": nats,
    "channel_kl": [KL of each channel's digit histogram to uniform over 10], "dependence": nats}.

    The KL splits exactly as kl = sum(channel_kl) + dependence, the last being the total correlation
    sum_c H(d_c) - H(d0, d1, d2) of the empirical histogram: a generator that favours some digits in a channel
    shows in channel_kl, one whose channels are not independent in dependence. A perfectly uniform generator
    still has dependence ~ (1000 - 1 - 3 x 9) / (2 N) from sampling noise (the Miller-Madow bias).
    """
    ids = _mode_ids(evaluator, images, batch_size)
    histogram = torch.bincount(ids, minlength=NUM_STACKED_MODES)
    kl = _kl_to_uniform(histogram)
    channel_kl = [_kl_to_uniform(torch.bincount(ids // 10 ** (2 - c) % 10, minlength=10)) for c in range(3)]
    return {"modes": int((histogram > 0).sum()), "kl": kl, "channel_kl": channel_kl,
            "dependence": max(kl - sum(channel_kl), 0.0)}   # >= 0 exactly; the max drops rounding
