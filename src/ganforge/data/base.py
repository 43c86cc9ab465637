"""Data specs -> in-memory tensors + a JSON-able description (DESIGN §6).

Everything ganforge trains on fits in memory once decoded, so a data set is held as one normalized tensor
(images in [-1, 1], stored as uint8 until batched) and batches are drawn by index: no per-step decoding, and
the batch order is a pure function of (seed, epoch, position), which makes resume exact.

Batch keys (what `Data.batch` returns and recipes read):
- "real": the samples a generator learns to output. For two-domain data (`PairedData`, `UnpairedData`:
  paired:, unpaired:, photos:, shapeswap:) it is domain B, the translation target.
- "cond": domain A, what a translator is given (pix2pix's input, SRGAN's LR image, CycleGAN's domain A).
- "label" (class ids), "attributes" (shapes), "text" (caption token ids): where the data has them.

Also here: `Domain`, a second image data set brought to the trained data's shape (DANN's source, SimGAN's
synthetic images).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import GanforgeError


def decode(x: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1]; anything else (points, table rows) as it is."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


def need_arg(name: str, arg: str, usage: str) -> None:
    """A spec that cannot go without its argument (`folder` alone): say what to write instead."""
    if not arg:
        raise GanforgeError(f"data spec {name!r} needs a path: {usage}")


@dataclass
class DataInfo:
    """Everything a recipe needs to build its networks, without the data (stored in config.json)."""
    spec: str
    kind: str                              # "image" | "points" | "table"
    shape: tuple[int, ...]                 # one sample: (C, H, W) or (d,)
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)   # toy modes, table columns, attributes...

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataInfo":
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


class Data:
    """Samples `x` (uint8 images or float vectors) and optional int64 `y`, indexed as a whole.

    `skipped`: the input files left out as unreadable (skip_bad=true), as their names or only a count;
    `.skipped` is then the count and `.skipped_names` the names ([] when only a count was given)."""

    def __init__(self, x: Tensor, y: Tensor | None = None, skipped: int | list[str] = 0):
        self.x, self.y = x, y
        self.skipped_names = [str(s) for s in skipped] if isinstance(skipped, (list, tuple)) else []
        self.skipped = len(skipped) if isinstance(skipped, (list, tuple)) else int(skipped)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        out = {"real": decode(self.x[idx])}      # images: decoded to [-1, 1] per batch, not per step in a loop
        if self.y is not None:
            out["label"] = self.y[idx]
        return out


class PairedData(Data):
    """Aligned samples: A[i] is the input for target B[i]. x holds B (the batch's "real"), a holds A ("cond")."""

    def __init__(self, a: Tensor, b: Tensor, skipped: int | list[str] = 0):
        super().__init__(b, None, skipped)
        self.a = a

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        return {"real": decode(self.x[idx]), "cond": decode(self.a[idx])}


class UnpairedData(Data):
    """Two unaligned domains. Sample i is (A[i mod n_A], B[perm(i) mod n_B]) for a seeded permutation of
    max(n_A, n_B) indices: every image of both domains is seen each epoch, in a fresh order each epoch
    (Batches shuffles i), and the batch is a pure function of the indices, so resume stays exact."""

    def __init__(self, a: Tensor, b: Tensor, seed: int = 0, skipped: int | list[str] = 0):
        super().__init__(b, None, skipped)
        self.a, n = a, max(len(a), len(b))
        self.index_a = torch.arange(n) % len(a)
        self.index_b = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) % len(b)

    def __len__(self) -> int:
        return len(self.index_a)

    def batch(self, idx: Tensor) -> dict[str, Tensor]:
        return {"real": decode(self.x[self.index_b[idx]]), "cond": decode(self.a[self.index_a[idx]])}


def pair_info(spec: str, a: Tensor, b: Tensor, **extra) -> DataInfo:
    """DataInfo of two-domain images: `shape` is B's (the output), extra["cond_shape"] A's (the input)."""
    return DataInfo(spec, "image", tuple(b.shape[1:]), extra={"cond_shape": list(a.shape[1:]), **extra})


class Batches:
    """Endless seeded shuffling over a Data; state_dict() is two ints, so resume replays the same order.

    With world_size > 1 each rank takes an interleaved shard of every epoch's permutation (same seed on all
    ranks), like torch's DistributedSampler.
    """

    def __init__(self, data: Data, batch_size: int, seed: int, device, rank: int = 0, world_size: int = 1):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.device, self.rank, self.world_size = device, rank, world_size
        self.epoch, self.pos = 0, 0
        self._order: Tensor | None = None

    def _epoch_order(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.data)
        reps = -(-self.batch_size * self.world_size // n)   # tiny data: repeat so one batch fits
        perm = torch.cat([torch.randperm(n, generator=g) for _ in range(reps)])
        return perm[self.rank::self.world_size]

    def __next__(self) -> dict[str, Tensor]:
        if self._order is None:
            self._order = self._epoch_order()
        if self.pos + self.batch_size > len(self._order):   # drop the ragged tail: equal batch sizes
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._epoch_order()
        idx = self._order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        batch = self.data.batch(idx)
        nb = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=nb) for k, v in batch.items()}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict[str, int]) -> None:
        self.epoch, self.pos, self._order = int(s["epoch"]), int(s["pos"]), None


class Domain:
    """A second image data set brought to the trained data's (C, H, W): DANN's labelled source domain,
    SimGAN's synthetic images (their configs name it: dann's `source`, simgan's `synthetic`). `draw` samples
    with replacement from the global torch RNG (saved in checkpoints, so resumed runs draw the same images)
    or from an explicit generator."""

    def __init__(self, spec: str, shape: tuple[int, ...], split: str = "train"):
        from . import resolve

        if len(shape) != 3:
            raise GanforgeError(f"a second domain needs image data; the trained data has shape {tuple(shape)}")
        data, info = resolve(spec, split=split, resolution=shape[-1], channels=shape[0])
        if info.kind != "image" or tuple(data.x.shape[1:]) != tuple(shape):
            raise GanforgeError(f"data spec {spec!r} gives {info.kind} of shape {tuple(data.x.shape[1:])}, "
                                f"not images of shape {tuple(shape)}; give an image spec (fonts, digits, folder:PATH)")
        self.spec, self.info, self.x, self.y = spec, info, data.x, data.y

    def __len__(self) -> int:
        return self.x.shape[0]

    def images(self, idx: Tensor | None = None) -> Tensor:
        """Images (all, or at idx) as float in [-1, 1]."""
        return decode(self.x if idx is None else self.x[idx]).float()

    def draw(self, n: int, device, generator: torch.Generator | None = None):
        """(n images on `device`, their labels or None)."""
        idx = torch.randint(len(self), (n,), generator=generator)
        y = self.y[idx].to(device) if self.y is not None else None
        return self.images(idx).to(device), y
