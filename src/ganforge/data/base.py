"""Data specs -> in-memory tensors + a JSON-able description (DESIGN §6).

Everything ganforge trains on fits in memory once decoded, so a data set is held as one normalized tensor
(images in [-1, 1], stored as uint8 until batched) and batches are drawn by index: no per-step decoding, and
the batch order is a pure function of (seed, epoch, position), which makes resume exact.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor


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
        x = self.x[idx]
        if x.dtype == torch.uint8:              # images: decode to [-1, 1] per batch, not per step in a loop
            x = x.float().div_(127.5).sub_(1.0)
        out = {"real": x}
        if self.y is not None:
            out["label"] = self.y[idx]
        return out


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
