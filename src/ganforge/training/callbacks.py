"""What fit() does around the steps: the log rows and their running means, the progress bar, periodic
evaluation with checkpoints/best, and what a run leaves behind besides checkpoints (loss plot, sample files;
metrics.jsonl and the `log=` backends are loggers.py's RunLog)."""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch

from .. import __version__
from ..viz import write_samples
from ..errors import Diverged, GanforgeError
from . import checkpoint, distributed
from .loggers import RunLog


def sample_suffix(kind: str) -> str:
    return ".csv" if kind == "table" else ".png"


def finite(row: dict) -> list[str]:
    return [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]


def check_finite(row: dict, step: int) -> None:
    bad = finite(row)
    if bad:
        raise Diverged(step, ", ".join(bad))


class Meter:
    """The sum of every logged value since the last log row, and the images/s over that window."""

    def __init__(self, images: int):
        self.reset(images)

    def reset(self, images: int) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}     # per key: a lazy phase logs only on the steps it runs
        self.t0, self.images0 = time.perf_counter(), images

    def add(self, logs: dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def means(self, dist) -> dict[str, float]:
        """Means since the last row, averaged over the processes too (every rank gets the same numbers)."""
        m = distributed.mean_over_ranks({k: v / self.counts[k] for k, v in self.sums.items()}, dist)
        return {k: v.item() for k, v in m.items()}

    def row(self, step: int, images: int, dist) -> dict:
        dt = time.perf_counter() - self.t0
        return {"step": step, "images_per_s": round((images - self.images0) / max(dt, 1e-9), 1),
                **self.means(dist)}


class Progress:
    """fit()'s progress (rank 0 with progress on): a tqdm bar with the latest losses and images/s on a terminal;
    elsewhere (a log file, a pipe, a scheduler's output) one plain line every `lines`-th of the run and at
    the end, since a bar's carriage-return redraws would fill the file with thousands of updates."""

    def __init__(self, enabled: bool, name: str, total: int, initial: int, stream=None, lines: int = 20):
        self.bar, self.name, self.total, self.step, self.row = None, name, total, initial, {}
        self.stream = stream if stream is not None else sys.stderr
        self.plain = enabled and not (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.every, self.printed = max(1, total // lines), initial
        if enabled and not self.plain:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=name, unit="step", dynamic_ncols=True, file=self.stream)

    def update(self) -> None:
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.plain and self.step % self.every == 0:
            self._line()

    def show(self, row: dict) -> None:
        self.row = {k.replace("/loss", ""): f"{v:.3f}" for k, v in row.items() if k.endswith("/loss")} \
            | {"img/s": f"{row['images_per_s']:.0f}"}
        if "D/resolution" in row:   # a growing GAN (progan): where the growth is, so a short run shows it stopped
            self.row |= {"res": f"{row['D/resolution']:.0f}px", "alpha": f"{row.get('D/alpha', 1.0):.2f}"}
        if self.bar is not None:
            self.bar.set_postfix(self.row)

    def _line(self) -> None:
        values = " ".join(f"{k}={v}" for k, v in self.row.items())
        print(f"{self.name} step {self.step}/{self.total} ({100 * self.step // max(self.total, 1)}%) {values}".rstrip(),
              file=self.stream, flush=True)
        self.printed = self.step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.plain and self.printed != self.step:
            self._line()


class SigtermAsInterrupt:
    """SIGTERM (what schedulers and `kill` send) stops fit() as Ctrl-C does, so a checkpoint is saved: the first
    one raises KeyboardInterrupt in the loop and puts the previous handler back (a second one then acts as it
    would have, e.g. while that checkpoint is written, which is atomic). Only the main thread takes signals:
    elsewhere this does nothing."""

    def __init__(self):
        self.old = None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGTERM, self._interrupt)

    def _interrupt(self, signum, frame):
        self.restore()
        raise KeyboardInterrupt("SIGTERM")

    def restore(self) -> None:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
            self.old = None


class EvalEvery:
    """eval_every=N: score the sampler every N steps (metrics.periodic.PeriodicEval forks the RNG, so training
    is unchanged), log the row, and keep checkpoints/best when the score improved."""

    def __init__(self, recipe, cfg):
        self.recipe, self.every = recipe, cfg.eval_every
        # the evaluation stack (extractors, scipy) is imported by the runs that evaluate (eval_every > 0) only:
        # for the others it would be most of what the training API adds to `import torch` (docs/performance.md)
        from ..metrics.periodic import PeriodicEval
        self.periodic = PeriodicEval(recipe, metric=cfg.eval_metric, num=cfg.eval_num)

    def due(self, step: int, end: int) -> bool:
        return step % self.every == 0 or step == end

    def __call__(self, G: torch.nn.Module, step: int, log: RunLog, run_dir: Path) -> None:
        was = G.training
        row = self.periodic(G.eval())
        G.train(was)
        log.write({"step": step, **row})
        if self.periodic.improved(row):
            meta = {"recipe": self.recipe.name, "ganforge_version": __version__, "eval": row}
            checkpoint.save_best(run_dir, step, checkpoint.flatten({self.recipe.sampler: G}), meta)


def diverged(e: Diverged, run_dir: Path) -> GanforgeError:
    """The one message for a NaN/inf: what went, the checkpoint that is still good (only one that exists: a run
    can diverge before its first), and what to change."""
    try:
        kept = f"the last good checkpoint is {checkpoint.latest(run_dir)}"
    except GanforgeError:
        kept = "no checkpoint was written before it (the same `ganforge train` command starts it again)"
    return GanforgeError(f"{e}; {kept}; lower the learning rates (g_lr/d_lr) or try loss=hinge / gp_weight / "
                         f"r1_gamma")


def finish(summary: dict, log: RunLog | None, run_dir: Path, rank: int) -> dict:
    """fit()'s summary: rank 0 adds its loss plot, checkpoint and last log row and writes summary.json; the
    other ranks of a torchrun job return theirs without files."""
    if log is None:
        return {**summary, "rank": rank, "loss_plot": None, "checkpoint": None, "last_log": {}}
    plot = log.plot()
    log.close()
    summary.update({"loss_plot": str(plot) if plot else None, "checkpoint": str(checkpoint.latest(run_dir)),
                    "last_log": log.history[-1] if log.history else {}, "warnings": log.warnings})
    checkpoint.write_json_atomic(run_dir / "summary.json", summary)
    return summary


@torch.no_grad()
def sample_grid(recipe, G: torch.nn.Module, nets, fixed: tuple, real, run_dir: Path, step: int,
                log: RunLog | None = None) -> Path:
    """samples/step-NNNNNN: the sampler on the fixed inputs (in eval mode: BatchNorm uses running statistics, and
    sampling changes no state, so a resume stays exact), also sent to `log`'s backend; then the recipe's own
    pictures under plots/."""
    was = G.training
    x = recipe.generate(G.eval(), *fixed)
    G.train(was)
    path = run_dir / "samples" / f"step-{step:06d}{sample_suffix(recipe.info.kind)}"
    write_samples(x.float(), recipe.info, path, real=real)
    if log is not None:
        log.image("samples", path, step)
    recipe.on_sample_step(nets, run_dir / "plots", step)
    return path
