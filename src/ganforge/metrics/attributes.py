"""Bundled shapes attribute classifier: scores whether a conditional / text-to-image generator drew what it
was asked for (the evaluation of Reed et al. 2016, arXiv:1605.05396, made measurable on our own data).

A small CNN trained on real `shapes` images (scripts/train_shapes_attributes.py) with one softmax head per
attribute: kind (3), color (8), background (8), size (2), position (5); value order = data/shapes.ATTRIBUTES.
`attribute_accuracy` compares its predictions with the attributes a caption asked for, counting only the
attributes each caption mentions (captions may leave size, position or background out).

Input protocol: float N x 3 x H x W in [-1, 1], brought to 32x32 ("area" when larger, bilinear when
smaller). The weights' per-attribute test accuracy on real images and their sha256 are in
weights/shapes_attributes.json.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..download import load_bundled
from ..errors import GanforgeError

RESOLUTION = 32
# name -> number of values, in data/shapes.ATTRIBUTES order (kept here: metrics import nothing of the package)
HEADS = {"kind": 3, "color": 8, "background": 8, "size": 2, "position": 5}
VALUES = {"kind": ("circle", "square", "triangle"),
          "color": ("red", "green", "blue", "yellow", "white", "black", "purple", "orange"),
          "background": ("red", "green", "blue", "yellow", "white", "black", "purple", "orange"),
          "size": ("small", "large"),
          "position": ("top left", "top right", "bottom left", "bottom right", "center")}


def weights_path() -> Path:
    return Path(__file__).resolve().parent / "weights" / "shapes_attributes.safetensors"


def report() -> dict:
    """The json written with the weights (per-attribute test accuracy, protocol, command)."""
    return json.loads(weights_path().with_suffix(".json").read_text())


def to_classifier_input(x: Tensor) -> Tensor:
    if x.dim() != 4 or x.shape[1] != 3:
        raise GanforgeError(f"the attribute classifier takes N x 3 x H x W RGB images in [-1, 1]; "
                            f"got shape {tuple(x.shape)}")
    h = x.shape[-1]
    if h == RESOLUTION:
        return x.float()
    mode = {"mode": "area"} if h > RESOLUTION else {"mode": "bilinear", "align_corners": False}
    return F.interpolate(x.float(), size=(RESOLUTION, RESOLUTION), **mode)


class AttributeClassifier(nn.Module):
    """Conv 32-64-64 on 32x32 (three 2x2 pools) -> 64 features -> one logit block per attribute."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),     # 16x16
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 8x8
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 4x4: position needs the layout
            nn.Flatten(), nn.Linear(64 * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, sum(HEADS.values()))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        logits = self.head(self.body(to_classifier_input(x)))
        return dict(zip(HEADS, logits.split(list(HEADS.values()), dim=1)))


def load_attribute_classifier() -> AttributeClassifier:
    return load_bundled(AttributeClassifier(), weights_path(), "attribute classifier",
                        "regenerate them with `python scripts/train_shapes_attributes.py`")


def classifier_sha256() -> str:
    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


def _batches(model: AttributeClassifier, images: Tensor, batch_size: int):
    """The model's logits dict for each batch of `images`, on the model's device."""
    device = next(model.parameters()).device
    for start in range(0, images.shape[0], batch_size):
        yield model(images[start:start + batch_size].to(device))


@torch.no_grad()
def predict(model: AttributeClassifier, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """name -> predicted value index (int64, CPU) for every image."""
    out: dict[str, list[Tensor]] = {k: [] for k in HEADS}
    for logits in _batches(model, images, batch_size):
        for k, v in logits.items():
            out[k].append(v.argmax(1).cpu())
    return {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for k, v in out.items()}


def attribute_accuracy(model: AttributeClassifier, images: Tensor, wanted: list[dict]) -> dict[str, float]:
    """Per attribute: the fraction of images whose predicted value equals the one asked for, over the images
    whose request names that attribute (`wanted[i]` maps names to value strings, e.g. parse_attributes(caption));
    "mean" averages the attributes, "all" is the fraction of images right on every attribute they name."""
    if images.shape[0] != len(wanted) or not wanted:
        raise GanforgeError(f"attribute_accuracy needs one request per image (> 0); got {images.shape[0]} images "
                            f"and {len(wanted)} requests")
    pred = predict(model, images)
    hits: dict[str, list[bool]] = {k: [] for k in HEADS}
    every = []
    for i, want in enumerate(wanted):
        ok = True
        for name, value in want.items():
            if name not in HEADS:
                continue
            if value not in VALUES[name]:
                raise GanforgeError(f"unknown {name} value {value!r}; known: {list(VALUES[name])}")
            hit = VALUES[name][int(pred[name][i])] == value
            hits[name].append(hit)
            ok &= hit
        every.append(ok)
    acc = {k: sum(v) / len(v) for k, v in hits.items() if v}
    acc["mean"] = sum(acc.values()) / len(acc)
    acc["all"] = sum(every) / len(every)
    return acc


@torch.no_grad()
def kind_recognition(model: AttributeClassifier, images: Tensor, threshold: float = 0.9,
                     batch_size: int = 256) -> dict[str, float]:
    """Does an unconditional generator draw shapes at all? "recognised" is the fraction of images whose kind
    head gives one of circle / square / triangle a softmax probability >= `threshold`; "share/<kind>" is the
    fraction of the recognised images of each kind (a generator that draws one kind only scores 1, 0, 0)."""
    if images.shape[0] == 0 or not 0 < threshold < 1:
        raise GanforgeError(f"kind_recognition needs images (got {images.shape[0]}) and 0 < threshold < 1 "
                            f"(got {threshold})")
    probs = torch.cat([logits["kind"].float().softmax(1).cpu() for logits in _batches(model, images, batch_size)])
    conf, kind = probs.max(1)
    sure = conf >= threshold
    out = {"recognised": sure.float().mean().item()}
    for i, name in enumerate(VALUES["kind"]):
        out[f"share/{name}"] = (kind[sure] == i).float().mean().item() if sure.any() else 0.0
    return out


def pairwise_distance(images: Tensor) -> float:
    """Mean root-mean-square pixel distance over all pairs of images (N >= 2): how much a set of images varies.
    text2image's samples of one caption against the real images that fit that caption: a generator that
    ignores its noise draws one image per caption and scores 0."""
    if images.shape[0] < 2:
        raise GanforgeError(f"pairwise_distance needs at least 2 images; got {images.shape[0]}")
    x = images.float().flatten(1)
    d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / x.shape[1] ** 0.5   # exact 0 on equal rows
    n = x.shape[0]
    return (d.sum() / (n * (n - 1))).item()
