"""The protocol record written with every evaluation: enough to say which published numbers a result can be
compared with and to reproduce it (docs/metrics.md, "The protocol recorded with every result").

Besides the extractor and its weights' SHA-256, it holds the named protocol and what it is comparable to, each
image set's file count and a SHA-256 of the exact 8-bit pixels that reached the extractor, how the reference
was prepared (for `folder:` data: PIL bicubic short-side resize and centre crop, and how many images it
actually resized), the library versions that change the numbers (torch, numpy, scipy, Pillow), the feature
dtype, the CPU thread count and, on a GPU, that TF32 was off.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import PIL
import scipy
import torch
from PIL import Image

from .. import __version__
from ..data.images import IMAGE_EXTS
from . import protocols
from .stats import KID_SAMPLERS

KID_SUBSETS, KID_SUBSET_SIZE, NN_K, IS_SPLITS = 100, 1000, 3, 10


class PixelHash:
    """SHA-256 over the 8-bit levels of every image batch, in evaluation order (points: their float32 bytes)."""

    def __init__(self):
        self.h, self.count = hashlib.sha256(), 0

    def update(self, x: torch.Tensor, kind: str) -> None:
        a = (((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8) if kind == "image" else x.float())
        self.h.update(a.contiguous().cpu().numpy().tobytes())
        self.count += x.shape[0]

    def summary(self) -> dict:
        what = "8-bit pixels, N x C x H x W in evaluation order" if self.count else None
        return {"count": self.count, "content_sha256": self.h.hexdigest(), "hashed": what}


@contextlib.contextmanager
def no_tf32(device: torch.device):
    """TF32 matmuls / convolutions change Inception features at the 1e-3 level on Ampere and later GPUs:
    evaluation runs with both switched off, and the previous setting is restored."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def environment(device: torch.device) -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "pillow": PIL.__version__, "torch_threads": torch.get_num_threads(), "device": str(device),
            "feature_dtype": "float32 features, float64 statistics",
            "tf32": False if device.type == "cuda" else "n/a (CPU)"}


def folder_resizes(path: Path, side: int) -> dict:
    """How ganforge.data's folder reader prepared a `folder:` reference, and how many images it resized."""
    files = [p for p in sorted(Path(path).rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    sizes = []
    for p in files:
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
        except Exception:  # noqa: BLE001  (an unreadable file is the data reader's error, reported there)
            continue
    resized = sum(s != (side, side) for s in sizes)
    return {"preprocessing": f"PIL: short side resized to {side} with Image.BICUBIC, then the centre "
                             f"{side}x{side} crop (ganforge.data's folder reader); v -> v / 127.5 - 1",
            "resized": resized > 0, "resized_images": resized, "files": len(files)}


def comparable(protocol: str, features: str | None) -> str:
    if features in ("inception", "dinov2"):
        p = protocols.get(protocol)
        what = protocols.DINOV2[p.name].comparable_to if features == "dinov2" else p.comparable_to
        return f"{what}, with the canonical weights and the same reference set and N"
    return (f"only other ganforge numbers with the {features} extractor on the same reference and N "
            f"(no published FID uses it)")


def params(metrics, protocol: str, features: str | None, num: int, ref_n: int, is_logits: str | None) -> dict:
    p = protocols.get(protocol)
    out = {}
    for m in metrics:
        if m == "kid":
            sampler = p.kid_sampler
            assert sampler in KID_SAMPLERS
            out["kid"] = {"subsets": KID_SUBSETS, "subset_size": min(KID_SUBSET_SIZE, num, ref_n),
                          "kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2",
                          "sampler": (f"np.random.{sampler}(seed).choice without replacement, generated then "
                                      f"reference, per subset")}
        elif m == "pr":
            out["pr"] = {"k": NN_K, "ball": "closed, d <= r (Kynkaanniemi et al.'s code, torch-fidelity)"}
        elif m == "dc":
            out["dc"] = {"k": NN_K, "ball": "open, d < r (Naeem et al.'s prdc code)"}
        elif m == "is":
            out["is"] = {"splits": IS_SPLITS, "classifier": features, "split_rule": "rows [i N // 10, (i+1) N // 10)",
                         "order": "as sampled (no shuffle)", "logits": is_logits}
        elif m == "acc":
            out["acc"] = {"labels": "label i % num_classes for sample i", "classifier": "digits"}
    return out


def versions() -> dict:
    return {"ganforge_version": __version__, "torch_version": torch.__version__}
