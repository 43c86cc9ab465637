"""Where a run's log rows go: metrics.jsonl always, and the `log=` backend beside it.

One interface (Logger): `write(row)` gets every log row ({"step": n, "D/loss": ..., "D/acc_real": ...}: the
phases' losses and health signals, images/s, and the periodic evaluation's "eval/..." scores), `image(tag, path,
step)` every sample grid, `close()` the end of fit(). RunLog fans out to metrics.jsonl, which keeps the run folder
self-contained (resume and `ganforge eval` read it), and to the backend `log=` names in BACKENDS. A backend
whose package is an optional extra sets `package` (the import and the extra share its name); wandb or mlflow
would be one more class here, one more value in config.TrainConfig.log and one more extra in pyproject.toml.
Only rank 0 of a torchrun job writes; a resume drops what was logged after the checkpoint it starts from.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .. import viz
from ..config import to_dict
from ..errors import GanforgeError
from . import checkpoint


class Logger:
    """The interface every backend implements; constructed as cls(run_dir, resume_step, hparams)."""
    package: str | None = None          # an optional extra of the same name installs it

    def write(self, row: dict) -> None:
        raise NotImplementedError

    def image(self, tag: str, path: Path, step: int) -> None:
        """A picture written to `path` (PNG; sample files of tables are CSV, which a backend skips)."""

    def close(self) -> None:
        """Flush and release what the backend holds."""


class Jsonl(Logger):
    """metrics.jsonl: one JSON row per log step (and one per evaluation); `history` holds them all."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, hparams: dict | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.history: list[dict] = []
        if self.path.exists():
            rows = []
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:   # a row half-written by a killed run: the resumed run writes it again
                    continue
            # rows written after the checkpoint we resume from are replayed by the resumed run
            self.history = [r for r in rows if isinstance(r, dict) and (resume_step is None
                                                                         or r.get("step", 0) <= resume_step)]
            checkpoint.write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.history))

    def write(self, row: dict) -> None:
        self.history.append(row)
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            raise GanforgeError(f"cannot append to {self.path} ({e.strerror}); free some space or fix the folder's "
                                f"permissions, then `ganforge resume {self.path.parent}`") from None


def _hparam(v):
    """TensorBoard's hparams hold numbers and strings: lists, None and booleans are shown as their JSON."""
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else json.dumps(v)


class TensorBoard(Logger):
    """RUN/tensorboard/: one event file with every row's scalars, the sample grids and the config as hparams.

    Each session writes a new file that begins with what the earlier files hold up to the step it resumes from,
    then deletes them: a fresh reader sees each step once, in order. The file opens with a SessionLog START at
    step 0 (purge_step=0), so a TensorBoard already watching the folder also drops what it had read."""
    package = "tensorboard"

    def __init__(self, run_dir: Path, resume_step: int | None, hparams: dict):
        try:   # an optional extra, heavy to import: only runs with log=tensorboard load it
            from torch.utils.tensorboard import SummaryWriter
            from torch.utils.tensorboard.summary import hparams as hparams_summary
        except ImportError as e:
            raise missing("tensorboard", e) from None
        folder = Path(run_dir) / "tensorboard"
        old = sorted(folder.glob("*tfevents*"), key=lambda p: (p.stat().st_mtime, p.name))   # as written
        kept = _events_up_to(old, resume_step or 0)
        self.writer = SummaryWriter(str(folder), purge_step=0)
        for event in kept:
            self.writer.file_writer.add_event(event, step=event.step, walltime=event.wall_time)
        # only the session start (the hparams' values): TensorBoard then takes the metrics from the scalars
        self.writer.file_writer.add_summary(hparams_summary({k: _hparam(v) for k, v in hparams.items()}, {})[1])
        self.writer.flush()
        for p in old:          # after the copy above is on disk: a crash in between leaves duplicates, not gaps
            p.unlink()

    def write(self, row: dict) -> None:
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, row["step"])
        self.writer.flush()      # a run that stops (NaN, Ctrl-C, kill) keeps every row it logged

    def image(self, tag: str, path: Path, step: int) -> None:
        if Path(path).suffix == ".png":
            with Image.open(path) as im:
                self.writer.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _events_up_to(files: list[Path], step: int) -> list:
    """The summaries in `files` (oldest first) at steps 1..step, each (tag, step) once (the newest copy wins),
    in step order; the old sessions' hparams are left out, as the new session writes its own."""
    # imported with the writer above; the raw loader: events as written (its EventFileLoader rewrites scalars)
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    latest: dict = {}
    for f in files:
        for record in RawEventFileLoader(str(f)).Load():   # stops quietly at a record cut off by a killed run
            e = Event.FromString(record)
            if e.HasField("summary") and 0 < e.step <= step and not any(
                    v.metadata.plugin_data.plugin_name == "hparams" for v in e.summary.value):
                latest[(e.step, tuple(v.tag for v in e.summary.value))] = e
    return sorted(latest.values(), key=lambda e: e.step)


BACKENDS: dict[str, type[Logger] | None] = {"jsonl": None, "tensorboard": TensorBoard}   # None: metrics.jsonl alone


def missing(extra: str, e: Exception | None = None) -> GanforgeError:
    why = f"cannot be imported ({e})" if e is not None else "is not installed"
    return GanforgeError(f"log={extra} needs the {extra} package, which {why}; pip install 'ganforge[{extra}]'")


def backend(name: str) -> type[Logger] | None:
    """The backend class of `log=name`, refusing one whose package is missing (before anything is written)."""
    cls = BACKENDS[name]
    if cls is not None and cls.package and importlib.util.find_spec(cls.package) is None:
        raise missing(cls.package)
    return cls


class RunLog:
    """What fit() logs to: metrics.jsonl, the `log=` backend beside it, and the loss plot drawn at the end.

    Built with the Trainer (every rank checks the backend, so a missing package is one error before the run
    folder is written); `open(step)` starts this session's files on rank 0 and returns None on the others."""

    def __init__(self, run_dir: Path, recipe, writes: bool = True):
        self.run_dir, self.writes = Path(run_dir), writes
        self.backend = backend(recipe.cfg.log)
        self.hparams = {"recipe": recipe.name, **to_dict(recipe.cfg)}
        self.jsonl: Jsonl | None = None
        self.loggers: list[Logger] = []
        self.watch, self.warnings = recipe.watch, []    # the recipe's health warnings (ada.OverfitWatch), printed once

    def open(self, resume_step: int) -> RunLog | None:
        if not self.writes:
            return None
        self.close()
        self.jsonl = Jsonl(self.run_dir, resume_step)
        extra = [self.backend(self.run_dir, resume_step, self.hparams)] if self.backend is not None else []
        self.loggers = [self.jsonl, *extra]
        return self

    @property
    def history(self) -> list[dict]:
        return self.jsonl.history

    def write(self, row: dict) -> None:
        for lg in self.loggers:
            lg.write(row)
        note = self.watch(row)
        if note:
            print(note, file=sys.stderr, flush=True)
            self.warnings.append(note)

    def image(self, tag: str, path: Path, step: int) -> None:
        for lg in self.loggers:
            lg.image(tag, path, step)

    def plot(self) -> Path | None:
        return viz.save_losses(self.history, self.run_dir / "plots" / "losses.png")

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()
        self.loggers = []
