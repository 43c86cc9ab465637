"""Named evaluation protocols: how 8-bit images reach a pretrained extractor, and the metric conventions that
go with them, each reproducing one reference implementation end to end (tested against the installed package).

Why several: the same generator scores different FIDs under different resizes (Parmar et al. 2022, "On Aliased
Resizing and Surprising Subtleties in GAN Evaluation", arXiv:2104.11222); on ganforge's test set pytorch-fid's
resize and TensorFlow's differed by 8.1 % in FID. A number is only comparable to numbers computed the same way,
so the protocol is chosen by name and recorded with the result.

- `pytorch-fid` (Seitzer, pytorch-fid 0.3): v / 255, torch bilinear resize with half-pixel centres
  (align_corners=False, no antialias), then 2x - 1.
- `tf`: the original TensorFlow 1 graph of Heusel et al. 2017 (arXiv:1706.08500) as torch-fidelity reproduces it:
  TF1's bilinear resize (source = destination * in / out, no half-pixel offset), then (v - 128) / 128; the
  Inception Score uses the logits without the fc bias (Salimans et al.'s code multiplies pool3 by the softmax
  weights only); KID subsets are drawn with np.random.RandomState(seed), as torch-fidelity draws them.
- `clean` (Parmar et al. 2022, clean-fid's mode "clean"): PIL bicubic resize of each channel as a float image
  (antialiased, not re-quantised), clipped to [0, 255], then (v - 128) / 128.

DINOv2 (FD-DINOv2, Stein et al. 2023, arXiv:2306.04675) takes 224x224 inputs with the ImageNet mean / std; its
input under each protocol is the one of the package that defines FD-DINOv2 that way (DINOV2 below):
- `pytorch-fid`: dgm-eval's default (Stein et al.'s own code, built on pytorch-fid, whose Inception input it keeps):
  torchvision's Resize((224, 224), BICUBIC) on the PIL image, i.e. PIL's 8-bit bicubic (antialiased, rounded back
  to 8 bits), then v / 255 and the mean / std;
- `tf`: torch-fidelity's FeatureExtractorDinoV2: TF1 bilinear, then the mean / std scaled to 0..255;
- `clean`: dgm-eval's --clean_resize: clean-fid's PIL float bicubic per channel, clipped, v / 255, the mean / std.

Every ganforge image source holds 8-bit levels (generated images are rounded to 8 bits, folders are PNGs), so
`levels` recovers the exact 0..255 values the reference packages read from PNG files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import GanforgeError
from ..registry import suggest


@dataclass(frozen=True)
class Protocol:
    name: str
    resize: str             # what the resize is, in words (recorded)
    reference: str          # the package this protocol equals end to end
    is_logits: str          # "biased" (fc with bias) or "unbiased" (pool3 @ W, the original IS code)
    kid_sampler: str        # stats.kid's sampler
    comparable_to: str      # which published numbers (docs/metrics.md's table)


PROTOCOLS = {
    "pytorch-fid": Protocol(
        "pytorch-fid", "v / 255; torch bilinear, align_corners=False (half-pixel centres), no antialias; 2x - 1",
        "pytorch-fid", "biased", "default_rng",
        "FIDs computed with pytorch-fid (the default of most PyTorch GAN repositories since 2019)"),
    "tf": Protocol(
        "tf", "TF1 bilinear (source = destination * in / out, no half-pixel offset), no antialias; (v - 128) / 128",
        "torch-fidelity", "unbiased", "RandomState",
        "FID / IS / KID of the original TensorFlow code (TTUR fid.py, improved-gan IS, StyleGAN/StyleGAN2 "
        "metrics), torch-fidelity, torchmetrics and clean-fid's legacy_tensorflow mode"),
    "clean": Protocol(
        "clean", "PIL bicubic per channel on float images (antialiased, not re-quantised), clipped to [0, 255]; "
                 "(v - 128) / 128",
        "clean-fid", "biased", "default_rng",
        "clean-fid's default mode 'clean' (its leaderboards and reference statistics)"),
}
# what each extractor's network expects after the resize: "inception" -> [-1, 1] as above; "imagenet" -> the
# torchvision ImageNet mean / std (DINOv2's input)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMS = ("inception", "imagenet")


@dataclass(frozen=True)
class DINOv2Input:
    resize: str             # the 224x224 input, in words (recorded)
    reference: str          # the package whose DINOv2 input this is
    comparable_to: str


DINOV2 = {
    "pytorch-fid": DINOv2Input(
        "PIL bicubic of the 8-bit RGB image (antialiased, rounded to 8 bits: torchvision's Resize on a PIL image); "
        "v / 255; ImageNet mean / std",
        "dgm-eval (layer6ai-labs, commit 74c79f7) DINOv2Encoder, default",
        "FD-DINOv2 of dgm-eval's default pipeline (Stein et al. 2023's code, run without --clean_resize)"),
    "tf": DINOv2Input(
        "TF1 bilinear (source = destination * in / out), no antialias; ImageNet mean / std scaled to 0..255",
        "torch-fidelity 0.4 FeatureExtractorDinoV2",
        "FD-DINOv2 computed with torch-fidelity (feature_extractor dinov2-vit-*-14)"),
    "clean": DINOv2Input(
        "PIL bicubic per channel on float images (antialiased, not re-quantised), clipped to [0, 255]; v / 255; "
        "ImageNet mean / std",
        "dgm-eval (layer6ai-labs, commit 74c79f7) DINOv2Encoder with --clean_resize",
        "FD-DINOv2 of dgm-eval run with --clean_resize"),
}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise GanforgeError(f"unknown protocol {name!r}{suggest(name, list(PROTOCOLS))}; choose from "
                            f"{', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def levels(images: torch.Tensor) -> torch.Tensor:
    """Images N x C x H x W in [-1, 1] holding 8-bit levels -> float32 0..255 (exact integers), 3 channels."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GanforgeError(f"pretrained image extractors take images N x C x H x W with C = 1 or 3, "
                            f"got shape {tuple(images.shape)}")
    v = ((images.float().clamp(-1, 1) + 1) * 127.5).round()
    # a grey PNG is read as RGB by every reference package: the same value in the three channels
    return v.repeat(1, 3, 1, 1) if v.shape[1] == 1 else v


def resize_tf1_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """TensorFlow 1's tf.image.resize_bilinear(align_corners=False): output pixel d samples input coordinate
    d * in / out (TF1's image_resizer_state.h), linear between floor and floor + 1 (clamped at the border),
    first along the width then the height, in float32 like the reference."""
    def axis(n_in: int):
        src = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.float()

    (ylo, yhi, dy), (xlo, xhi, dx) = axis(x.shape[2]), axis(x.shape[3])
    ylo, yhi, xlo, xhi = (t.to(x.device) for t in (ylo, yhi, xlo, xhi))
    dx, dy = dx.to(x.device).view(1, 1, 1, size), dy.to(x.device).view(1, 1, size, 1)
    top, bottom = x[:, :, ylo, :], x[:, :, yhi, :]
    row0 = top[:, :, :, xlo] + (top[:, :, :, xhi] - top[:, :, :, xlo]) * dx
    row1 = bottom[:, :, :, xlo] + (bottom[:, :, :, xhi] - bottom[:, :, :, xlo]) * dx
    return row0 + (row1 - row0) * dy


def resize_pil_bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    """clean-fid's resize: each channel a PIL 'F' (float32) image, Image.BICUBIC (PIL antialiases when it
    shrinks), no rounding back to 8 bits, clipped to [0, 255]."""
    a = x.detach().cpu().numpy().astype(np.float32)
    out = np.empty((a.shape[0], a.shape[1], size, size), dtype=np.float32)
    for i in range(a.shape[0]):
        for c in range(a.shape[1]):
            img = Image.fromarray(a[i, c], mode="F").resize((size, size), resample=Image.BICUBIC)
            out[i, c] = np.asarray(img).clip(0, 255)
    return torch.from_numpy(out).to(x.device)


def resize_pil_bicubic_8bit(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's Resize((size, size), BICUBIC) on a PIL RGB image (what dgm-eval's data loader holds): PIL's
    8-bit bicubic (antialiased when it shrinks), rounded and clamped to 0..255 by PIL. x: N x 3 x H x W levels."""
    a = x.detach().cpu().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample=Image.BICUBIC)) for im in a])
    return torch.from_numpy(out.transpose(0, 3, 1, 2).copy()).float().to(x.device)


def _imagenet(t: torch.Tensor, scale: float) -> torch.Tensor:
    mean = torch.tensor([scale * m for m in IMAGENET_MEAN], dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
    std = torch.tensor([scale * s for s in IMAGENET_STD], dtype=t.dtype, device=t.device).view(1, 3, 1, 1)
    return (t - mean) / std


def prepare(images: torch.Tensor, protocol: str, size: int, norm: str = "inception") -> torch.Tensor:
    """Images in [-1, 1] (8-bit levels, C = 1 or 3) -> the extractor's input N x 3 x size x size: norm
    "inception" -> [-1, 1] as the protocol's Inception reference; "imagenet" -> its DINOv2 reference (DINOV2)."""
    p = get(protocol)
    if norm not in NORMS:
        raise GanforgeError(f"unknown input normalisation {norm!r}; choose from {', '.join(NORMS)}")
    v = levels(images)
    if p.name == "pytorch-fid":
        if norm == "imagenet":     # dgm-eval: PIL's 8-bit bicubic, ToTensor (v / 255), Normalize
            return _imagenet(resize_pil_bicubic_8bit(v, size) / 255, 1.0)
        # pytorch-fid's ToTensor (v / 255), resize, then its normalize_input (2x - 1), in that order
        t = F.interpolate(v / 255, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        return 2 * t - 1
    if p.name == "tf":
        t = resize_tf1_bilinear(v, size)
        # torch-fidelity normalises the 0..255 values with the mean / std times 255
        return (t - 128) / 128 if norm == "inception" else _imagenet(t, 255.0)
    t = resize_pil_bicubic(v, size)
    # dgm-eval --clean_resize: the float resize / 255, then Normalize
    return (t - 128) / 128 if norm == "inception" else _imagenet(t / 255, 1.0)
