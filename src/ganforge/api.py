"""The public Python API: train(), resume(), load(), list_recipes(). The CLI is a thin layer over it.

load() and Generator live in runs.py, with everything else that reads a run folder; they are re-exported here."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .config import from_dict, to_dict
from .data import DataInfo, resolve
from .errors import GanforgeError
from .recipes.base import ImageToImage, Translator, Upscaler
from .registry import RECIPES, suggest
from .runs import Generator, load, read_run, run_recipe  # noqa: F401  (Generator, load: public API)
from .training import checkpoint, distributed, lock
from .training.trainer import Trainer

RUN_FORMAT = 1


def _is_main() -> bool:
    """Rank 0 of a torchrun job (or a plain process): the only one that writes run files."""
    return distributed.from_env()[0] == 0


def _recipes():
    return RECIPES


def register(name: str):
    """Decorator: `@ganforge.register("mygan") class MyGAN(Recipe): ...` enrolls a recipe everywhere."""
    return RECIPES.register(name)


def list_recipes() -> dict[str, dict[str, Any]]:
    """name -> {"summary": the first sentence of its module's docstring, "presets": its preset names}."""
    out = {}
    for name, cls in sorted(_recipes().items()):
        doc = sys.modules[cls.__module__].__doc__ if cls.__module__ in sys.modules else None
        out[name] = {"summary": first_sentence(doc or cls.__doc__ or ""), "presets": sorted(cls.presets)}
    return out


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring on one line: up to the first full stop followed by the end or by a
    capital letter (so "et al. 2014", "eq. 7" and "e.g. x" do not end it), less a leading "`name` - ". When no
    sentence ends in the first paragraph, all of it (a closing colon, which introduces a formula, made a full
    stop)."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    para = re.sub(r"^`[^`]+` - ", "", para)
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)\.(?=\s+[A-Z]|$)", para)
    return para[: m.start() + 1] if m else re.sub(r":$", ".", para)


def next_step(recipe, run_dir) -> str | None:
    """The command that reads this kind of run, for the CLI's report; None for one that generates nothing
    (dann's classifier)."""
    if isinstance(recipe, Upscaler):
        return f"upscale an image: ganforge upscale {run_dir} IMAGE --out big.png"
    if isinstance(recipe, Translator):
        return f"translate images: ganforge translate {run_dir} IMAGES --out DIR"
    if not recipe.generates:
        return None
    n = {"points": "2000", "table": "1000 --out rows.csv"}.get(recipe.info.kind, "64")
    return f"{'refine' if isinstance(recipe, ImageToImage) else 'sample'} more: ganforge sample {run_dir} -n {n}"


def announce(rec, data, trainer, progress: bool) -> None:
    """What the run found and what its steps amount to (images: one line, with the progress), then the recipe's
    start-up warnings (always): rank 0 only."""
    if not _is_main():
        return
    info, cfg, left = rec.info, rec.cfg, rec.cfg.steps - trainer.step
    if progress and info.kind == "image" and len(data):
        k, names = info.num_classes, info.class_names
        named = f" ({', '.join(names[:4])}{', ...' if k > 4 else ''})" if names else ""
        labels = f"{k} labels{named}" if k else "no labels"
        epochs = left * trainer.effective_batch_size / len(data)
        print(f"data: {info.spec}: {len(data):,} images, {info.shape[1]}x{info.shape[2]}, {info.shape[0]} channels, "
              f"{labels}; {left:,} steps x batch {trainer.effective_batch_size} = "
              f"{f'{epochs:,.1f}' if epochs >= 10 else f'{epochs:.3g}'} epochs", flush=True)
    for note in rec.startup_notes(cfg.steps):
        print(note, file=sys.stderr, flush=True)


def make_config(recipe: str, preset: str | None = None, overrides: dict[str, Any] | None = None):
    cls = _recipes().get_or_fail(recipe)
    cfg = cls.Config()
    if preset:
        if preset not in cls.presets:
            raise GanforgeError(f"unknown preset {preset!r} for {recipe}{suggest(preset, cls.presets)}; "
                                f"presets: {', '.join(sorted(cls.presets)) or 'none'}")
        cfg = from_dict(cls.Config, cls.presets[preset])
    return cls, from_dict(cls.Config, overrides or {}, base=cfg)


def load_data(cfg, split: str = "train"):
    return resolve(cfg.data, split=split, resolution=cfg.resolution or None, channels=cfg.channels or None,
                   skip_bad=cfg.skip_bad, download=cfg.download)


def _default_out(recipe: str, preset: str | None, cfg) -> Path:
    tag = preset or re.sub(r"[^A-Za-z0-9]+", "-", cfg.data.split("/")[-1]).strip("-")
    base = Path("runs") / f"{recipe}-{tag}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    out, i = base, 1
    while out.exists():
        out, i = base.with_name(f"{base.name}-{i}"), i + 1
    return out


_OUTPUTS = ("checkpoints", "samples", "plots", "metrics.jsonl", "summary.json")


def _clear_outputs(run_dir: Path, why: str) -> None:
    """Restart a run that never wrote a checkpoint: its old logs and samples would contradict the new ones."""
    print(f"ganforge: {run_dir} {why}; starting it again from step 0 (its old metrics, samples and plots are "
          f"removed)", file=sys.stderr, flush=True)
    for name in _OUTPUTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _check_out_dir(out: Path, run: dict[str, Any]) -> bool:
    """Refuse an --out that holds something else; True when it holds this very run without a checkpoint (it
    stopped before its first one), which train then starts again from step 0."""
    if not out.exists() or not any(p.name != lock.NAME for p in out.iterdir()):
        return False
    if not (out / "config.json").is_file():
        raise GanforgeError(f"output directory {str(out)!r} is not empty and holds no ganforge run; "
                            f"choose another --out")
    old = read_run(out)
    if old.get("recipe") == run["recipe"]:
        with contextlib.suppress(GanforgeError):   # keys added since that run was written take their defaults
            old["config"] = to_dict(run_recipe(old)[1])
    if old.get("recipe") == run["recipe"] and old.get("config") == run["config"]:
        if not checkpoint.exists(out):
            return True
        raise GanforgeError(f"output directory {str(out)!r} already holds this run; continue it with "
                            f"`ganforge resume {out}` or choose another --out")
    diff = [k for k in sorted(set(old.get("config", {})) | set(run["config"]))
            if old.get("config", {}).get(k) != run["config"].get(k)]
    what = (f"recipe {old.get('recipe')!r}" if old.get("recipe") != run["recipe"]
            else "a different config (" + ", ".join(diff[:5]) + ")")
    raise GanforgeError(f"output directory {str(out)!r} already holds a different run ({what}); nothing was "
                        f"changed there — choose another --out")


def train(recipe: str = "dcgan", *, preset: str | None = None, out: str | Path | None = None,
          progress: bool = True, stop_at: int | None = None, **overrides) -> dict[str, Any]:
    """Train a recipe; returns the run summary (paths of samples, plots, checkpoint). `stop_at` ends the
    session early at that step as an interruption would (the run stays resumable)."""
    cls, cfg = make_config(recipe, preset, overrides)
    data, info = load_data(cfg)
    rec = cls(cfg, info)
    info.extra.update(rec.describe_data())     # recorded in config.json's data_info (Recipe.describe_data)
    if out is None and distributed.from_env()[1] > 1:
        raise GanforgeError("under torchrun pass --out DIR, so that every process writes to the same run")
    run_dir = Path(out) if out else _default_out(recipe, preset, cfg)
    run = {"format_version": RUN_FORMAT, "ganforge_version": __version__, "recipe": recipe, "preset": preset,
           "config": to_dict(cfg), "data_info": info.to_dict()}
    # one writer per run folder, for the whole session (only rank 0 of a torchrun job writes, and locks)
    with lock.hold(run_dir) if _is_main() else contextlib.nullcontext():
        restart = _check_out_dir(run_dir, run) if _is_main() else False
        trainer = Trainer(rec, data, run_dir, progress=progress)   # builds the nets: recipe errors surface here
        if _is_main():
            if restart:
                _clear_outputs(run_dir, "holds this run but no checkpoint (it stopped before its first one)")
            run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.write_json_atomic(run_dir / "config.json", run)
        announce(rec, data, trainer, progress)
        summary = trainer.fit(stop_at=stop_at)
    return {"run_dir": str(run_dir), "skipped_images": data.skipped, "skipped_files": data.skipped_names,
            "next": next_step(rec, run_dir), **summary}


def resume(run_dir: str | Path, steps: int | None = None, progress: bool = True,
           stop_at: int | None = None) -> dict[str, Any]:
    """Continue a run from its latest checkpoint (bit-identical to an uninterrupted run on CPU); a run that
    stopped before its first checkpoint starts again from step 0."""
    run_dir = Path(run_dir)
    read_run(run_dir)             # a run folder, before a lock file is put into it
    with lock.hold(run_dir) if _is_main() else contextlib.nullcontext():
        run = read_run(run_dir)   # as it is now that no one else writes it
        cls, cfg = run_recipe(run)
        # a run stopped before its first checkpoint is started again from step 0 with its own config
        fresh = not checkpoint.exists(run_dir)
        ck = None if fresh else checkpoint.latest(run_dir)
        if steps is not None:
            cfg = dataclasses.replace(cfg, steps=steps)
        data, info = load_data(cfg)
        stored = DataInfo.from_dict(run["data_info"])
        if (stored.shape, stored.num_classes) != (info.shape, info.num_classes):
            raise GanforgeError(f"the data {cfg.data!r} changed since this run started (shape/classes "
                                f"{stored.shape}/{stored.num_classes} -> {info.shape}/{info.num_classes}); "
                                f"start a new run instead")
        rec = cls(cfg, stored)
        trainer = Trainer(rec, data, run_dir, progress=progress)
        if fresh:
            if _is_main():
                _clear_outputs(run_dir, "has no checkpoint yet (it stopped before its first one)")
        else:
            trainer.load(ck)
        if trainer.step >= cfg.steps:
            raise GanforgeError(f"run {str(run_dir)!r} is already at step {trainer.step} of {cfg.steps}; "
                                f"pass --steps N with N > {trainer.step} to train longer")
        if steps is not None and _is_main():
            run["config"] = to_dict(cfg)
            checkpoint.write_json_atomic(run_dir / "config.json", run)
        announce(rec, data, trainer, progress)
        return {"run_dir": str(run_dir), "next": next_step(rec, run_dir), **trainer.fit(stop_at=stop_at)}
