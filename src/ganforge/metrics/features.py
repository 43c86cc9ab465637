"""Feature extractors for the evaluation protocol, registered in `ganforge.registry.FEATURES`.

An extractor maps a batch of samples (images N x C x H x W in [-1, 1], or points N x d) to
{"features": N x d, "logits": N x K or None}: features feed FID (Heusel et al. 2017, arXiv:1706.08500,
eq. 6), KID (arXiv:1801.01401), precision/recall (arXiv:1904.06991) and density/coverage
(arXiv:2002.09797); logits feed the Inception Score (Salimans et al. 2016, arXiv:1606.03498, Sec. 4).
Every extractor carries a `protocol` dict (name, weights file and SHA-256, preprocessing, feature size)
that is copied into every result computed with it.

- `digits`: the bundled 8x8 digits CNN (metrics/digits.py). A 3-channel image (`digits:stacked`) is
  three digits: each channel goes through the CNN on its own, features are concatenated (3 x 128) and
  the class distribution is the product of the three (1,000 classes, PacGAN's stacked label space).
- `inception`: the FID Inception-v3 (metrics/inception.py), 2048-d pool features, 1008 logits; the images
  are prepared by the named protocol (metrics/protocols.py), whose IS takes the fc logits with or without bias.
- `dinov2`: DINOv2 ViT-L/14 (or ViT-B/14, as the weights file says) class token (metrics/dinov2.py), for
  FD-DINOv2 (Stein et al. 2023, arXiv:2306.04675); no classifier, so no IS.
- `raw`: points and table rows as they are (FID of 2-D mixtures is the Frechet distance of the fits).
- `shapes`: the bundled shapes attribute classifier (metrics/attributes.py), its 64-d penultimate layer (after
  ReLU): FID of `shapes` images on what tells kind, colour, background, size and position apart; no IS.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import GanforgeError
from ..registry import FEATURES
from . import attributes as attributes_mod
from . import digits as digits_mod
from . import protocols
from .dinov2 import load_dinov2
from .inception import fused, load_inception, weights_sha256


class Extractor:
    """Base: `name`, `protocol`, `default_batch`, `kinds` (data kinds it accepts), `__call__`."""
    name = "base"
    kinds: tuple[str, ...] = ("image",)
    default_batch = 500

    def __init__(self, protocol: dict):
        self.protocol = protocol

    def check(self, shape: tuple[int, ...], kind: str) -> None:
        if kind not in self.kinds:
            raise GanforgeError(f"feature extractor {self.name!r} works on {'/'.join(self.kinds)} data, but the "
                                f"samples are {kind} of shape {tuple(shape)}; use --features "
                                f"{'raw' if kind != 'image' else 'digits or inception'}")

    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        raise NotImplementedError


class DigitsFeatures(Extractor):
    name = "digits"
    default_batch = 1000

    def __init__(self, evaluator: digits_mod.DigitsEvaluator, protocol: dict):
        super().__init__(protocol)
        self.net = evaluator

    def check(self, shape, kind):
        super().check(shape, kind)
        if shape[0] not in (1, 3):
            raise GanforgeError(f"the digits extractor takes 1-channel digits or 3-channel digits:stacked "
                                f"images, got {shape[0]} channels; use --features inception")

    @torch.no_grad()
    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        n, c, h, w = x.shape
        feats = self.net.features(x.reshape(n * c, 1, h, w))            # channels classified separately
        out_logits = None
        if logits:
            log_p = F.log_softmax(self.net.head(feats).double(), dim=1).view(n, c, 10)
            # joint label of a stacked image = (d0, d1, d2): log p = sum of the per-channel log p
            joint = log_p[:, 0]
            for k in range(1, c):
                joint = (joint[:, :, None] + log_p[:, k, None, :]).reshape(n, -1)
            out_logits = joint
        return {"features": feats.view(n, -1), "logits": out_logits}

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """N x C x H x W -> N x C predicted digits (one per channel)."""
        n, c, h, w = x.shape
        return self.net.logits(x.reshape(n * c, 1, h, w)).argmax(1).view(n, c)


class InceptionFeatures(Extractor):
    name = "inception"
    default_batch = 50

    def __init__(self, model, protocol: dict):
        super().__init__(protocol)
        self.net = fused(model)      # BN folded, channels_last: the same features ~2x faster (inception.fused)

    def check(self, shape, kind):
        super().check(shape, kind)
        if shape[0] not in (1, 3):
            raise GanforgeError(f"FID Inception takes 1- or 3-channel images, got {shape[0]} channels")

    @torch.no_grad()
    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        out = self.net(x)
        # tf: Salimans et al.'s IS code (and torch-fidelity) softmax pool3 @ W without the fc bias
        key = "logits_unbiased" if protocols.get(self.net.preprocessing).is_logits == "unbiased" else "logits"
        return {"features": out["pool"], "logits": out[key] if logits else None}


class DINOv2Features(Extractor):
    name = "dinov2"
    default_batch = 25

    def __init__(self, model, protocol: dict):
        super().__init__(protocol)
        self.net = model

    def check(self, shape, kind):
        super().check(shape, kind)
        if shape[0] not in (1, 3):
            raise GanforgeError(f"DINOv2 takes 1- or 3-channel images, got {shape[0]} channels")

    @torch.no_grad()
    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        if logits:
            raise GanforgeError("DINOv2 has no classifier: the Inception Score needs --features inception "
                                "(or digits)")
        return {"features": self.net(x)["cls"], "logits": None}


class RawFeatures(Extractor):
    name = "raw"
    kinds = ("points", "table")
    default_batch = 10_000

    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        if logits:
            raise GanforgeError("the raw extractor has no classifier: the Inception Score needs "
                                "--features digits or inception")
        return {"features": x.flatten(1).float(), "logits": None}


@FEATURES.register("digits")
def digits_features(weights=None, device="cpu", **_) -> DigitsFeatures:
    """The shipped digits CNN, or a DigitsEvaluator state dict in safetensors at `weights`."""
    if weights is None:
        net, path, sha = digits_mod.load_digits_evaluator(), digits_mod.weights_path(), digits_mod.evaluator_sha256()
    else:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GanforgeError(f"digits evaluator weights {str(path)!r} do not exist; omit --weights to use the "
                                f"shipped ones, or write new ones with scripts/train_digits_evaluator.py --out DIR")
        net = digits_mod.DigitsEvaluator()
        try:
            net.load_state_dict(load_file(str(path)), strict=True)
        except (SafetensorError, RuntimeError, OSError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise GanforgeError(f"{str(path)!r} is not a digits evaluator safetensors file ({first})") from None
        net.eval().requires_grad_(False)
        sha = weights_sha256(path)
    protocol = {"extractor": "digits", "weights": str(path), "weights_sha256": sha,
                "preprocessing": "images in [-1, 1]; resized to 8x8 (area when larger, bilinear when smaller); "
                                 "3-channel images: each channel separately, features concatenated",
                "feature_dim": digits_mod.FEATURE_DIM, "layer": "penultimate (after ReLU)",
                "logits": "log softmax of the CNN's 10 classes (3 channels: the sum over channels, 1,000 classes)"}
    return DigitsFeatures(net.to(device), protocol)


@FEATURES.register("inception")
def inception_features(weights=None, device="cpu", download=False, cache_dir=None, protocol=None,
                       **_) -> InceptionFeatures:
    """FID Inception-v3 from `weights`, the cache, or (download=True) the pytorch-fid release."""
    p = protocols.get(protocol or "pytorch-fid")
    model = load_inception(weights, cache_dir=cache_dir, download=download, protocol=p.name)
    bias = "with" if p.is_logits == "biased" else "without"
    record = {"extractor": "inception", "weights": model.protocol["weights"],
              "weights_sha256": model.protocol["weights_sha256"], "canonical": model.protocol["canonical"],
              "protocol": p.name, "preprocessing": "1 channel repeated to 3; " + model.protocol["resize"],
              "feature_dim": 2048, "layer": "pool3 (2048-d)",
              "logits": f"fc over 1008 classes, {bias} the fc bias (the IS input)"}
    return InceptionFeatures(model.to(device), record)


@FEATURES.register("dinov2")
def dinov2_features(weights=None, device="cpu", download=False, cache_dir=None, protocol=None,
                    **_) -> DINOv2Features:
    """DINOv2 ViT-L/14 (or the architecture of the `weights` file) from Meta's release, its input prepared as
    the protocol's DINOv2 reference does (metrics/protocols.py DINOV2)."""
    model = load_dinov2(weights, cache_dir=cache_dir, download=download,
                        protocol=protocols.get(protocol or "pytorch-fid").name)
    record = {**model.protocol, "preprocessing": "1 channel repeated to 3; " + model.protocol["resize"],
              "feature_dim": model.norm.normalized_shape[0], "layer": "final LayerNorm class token"}
    return DINOv2Features(model.to(device), record)


@FEATURES.register("raw")
def raw_features(weights=None, **_) -> RawFeatures:
    if weights is not None:
        raise GanforgeError("the raw extractor has no weights; drop --weights")
    return RawFeatures({"extractor": "raw", "weights": None, "weights_sha256": None,
                        "preprocessing": "none: samples used as they are"})


class ShapesFeatures(Extractor):
    name = "shapes"
    default_batch = 500

    def __init__(self, net: attributes_mod.AttributeClassifier, protocol: dict):
        super().__init__(protocol)
        self.net = net

    def check(self, shape, kind):
        super().check(shape, kind)
        if shape[0] != 3:
            raise GanforgeError(f"the shapes extractor takes RGB shapes images (3 channels), got {shape[0]}; "
                                f"use --features digits or inception")

    @torch.no_grad()
    def __call__(self, x: Tensor, logits: bool = False) -> dict[str, Tensor | None]:
        if logits:
            raise GanforgeError("the shapes classifier has five attribute heads, not one class distribution: the "
                                "Inception Score needs --features inception (or digits)")
        return {"features": self.net.body(attributes_mod.to_classifier_input(x)), "logits": None}


@FEATURES.register("shapes")
def shapes_features(weights=None, device="cpu", **_) -> ShapesFeatures:
    """The shipped shapes attribute classifier (scripts/train_shapes_attributes.py)."""
    if weights is not None:
        raise GanforgeError("the shapes extractor uses the shipped attribute classifier; drop --weights")
    net = attributes_mod.load_attribute_classifier().eval().requires_grad_(False)
    protocol = {"extractor": "shapes", "weights": str(attributes_mod.weights_path()),
                "weights_sha256": attributes_mod.classifier_sha256(),
                "preprocessing": "images in [-1, 1]; resized to 32x32 (area when larger, bilinear when smaller)",
                "feature_dim": 64, "layer": "penultimate (after ReLU)", "logits": None}
    return ShapesFeatures(net.to(device), protocol)


def load_extractor(name: str, **kw) -> Extractor:
    return FEATURES.get_or_fail(name)(**kw)
