"""What a run leaves behind besides checkpoints: metrics.jsonl, loss plots, sample files."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .. import viz


def sample_suffix(kind: str) -> str:
    return ".csv" if kind == "table" else ".png"


def write_samples(x: torch.Tensor, info, path: Path, real: torch.Tensor | None = None, nrow: int | None = None) -> Path:
    """Images -> grid PNG; 1-D/2-D points -> plot PNG; table rows -> CSV in the original columns."""
    if info.kind == "image":
        return viz.save_grid(x, path, nrow=nrow)
    if info.kind == "points":
        return viz.save_points(x, path, real=real, title=f"{len(x)} generated points")
    from ..data.tabular import write_csv
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, x.float().cpu(), info.extra["columns"])
    return Path(path)


class RunLog:
    """metrics.jsonl rows (one per log step) plus the loss plot drawn from them."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.history: list[dict] = []
        if self.path.exists():
            rows = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            # rows written after the checkpoint we resume from are replayed by the resumed run
            self.history = [r for r in rows if resume_step is None or r["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in self.history))

    def write(self, row: dict) -> None:
        self.history.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def plot(self) -> Path | None:
        return viz.save_losses(self.history, self.path.parent / "plots" / "losses.png")


def finite(row: dict) -> list[str]:
    return [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
