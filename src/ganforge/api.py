"""The public Python API: train(), resume(), load(), list_recipes(). The CLI is a thin layer over it."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import from_dict, to_dict
from .data import DataInfo, resolve
from .errors import GanforgeError
from .registry import RECIPES, suggest
from .training import checkpoint, distributed, lock

RUN_FORMAT = 1


def _is_main() -> bool:
    """Rank 0 of a torchrun job (or a plain process): the only one that writes run files."""
    return distributed.from_env()[0] == 0


def _recipes():
    from . import recipes  # noqa: F401  (registers the built-in families)
    return RECIPES


def register(name: str):
    """Decorator: `@ganforge.register("mygan") class MyGAN(Recipe): ...` enrolls a recipe everywhere."""
    return RECIPES.register(name)


def list_recipes() -> dict[str, dict[str, Any]]:
    out = {}
    for name, cls in sorted(_recipes().items()):
        doc = (cls.__module__ and __import__(cls.__module__, fromlist=["_"]).__doc__ or "").strip()
        out[name] = {"summary": doc.splitlines()[0] if doc else "", "presets": sorted(cls.presets)}
    return out


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


def _read_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise GanforgeError(f"{str(run_dir)!r} is not a ganforge run directory (no config.json); "
                            f"give the --out folder of a `ganforge train` run")
    try:
        run = json.loads(path.read_bytes().decode("utf-8"))     # ganforge writes UTF-8, whatever the locale
    except (OSError, ValueError) as e:                          # ValueError: bad UTF-8 or JSON
        raise GanforgeError(f"{str(path)!r} is corrupt ({type(e).__name__}: {e}); restore it or start a new "
                            f"run") from None
    kinds = {"recipe": str, "config": dict, "data_info": dict}
    bad = [k for k, t in kinds.items() if not isinstance(run, dict) or not isinstance(run.get(k), t)]
    if bad:
        raise GanforgeError(f"{str(path)!r} lacks {', '.join(bad)} (it was not written by `ganforge train`, or "
                            f"was edited); restore it or start a new run")
    return run


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
    old = _read_run(out)
    if old.get("recipe") == run["recipe"]:
        with contextlib.suppress(GanforgeError):   # keys added since that run was written take their defaults
            old["config"] = to_dict(_run_recipe(old)[1])
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
    from .training.trainer import Trainer

    cls, cfg = make_config(recipe, preset, overrides)
    data, info = load_data(cfg)
    rec = cls(cfg, info)
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
        summary = trainer.fit(stop_at=stop_at)
    return {"run_dir": str(run_dir), "skipped_images": data.skipped, "skipped_files": data.skipped_names, **summary}


def _run_recipe(run: dict[str, Any]):
    cls = _recipes().get_or_fail(run["recipe"])
    try:
        cfg = from_dict(cls.Config, run["config"])
    except GanforgeError as e:
        raise GanforgeError(f"the run's config.json does not fit recipe {run['recipe']!r} of this ganforge "
                            f"({e})") from None
    return cls, cfg


def resume(run_dir: str | Path, steps: int | None = None, progress: bool = True,
           stop_at: int | None = None) -> dict[str, Any]:
    """Continue a run from its latest checkpoint (bit-identical to an uninterrupted run on CPU); a run that
    stopped before its first checkpoint starts again from step 0."""
    from .training.trainer import Trainer

    run_dir = Path(run_dir)
    _read_run(run_dir)            # a run folder, before a lock file is put into it
    with lock.hold(run_dir) if _is_main() else contextlib.nullcontext():
        run = _read_run(run_dir)  # as it is now that no one else writes it
        cls, cfg = _run_recipe(run)
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
        trainer = Trainer(cls(cfg, stored), data, run_dir, progress=progress)
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
        return {"run_dir": str(run_dir), **trainer.fit(stop_at=stop_at)}


class Generator:
    """A trained generator: `sample(n, seed=, labels=)` returns tensors in data space (images in [-1, 1])."""

    def __init__(self, recipe, G: torch.nn.Module, info: DataInfo, run: dict[str, Any]):
        self.recipe, self.G, self.info, self.run = recipe, G.eval(), info, run

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = 0, labels=None, truncation: float | None = None) -> torch.Tensor:
        device = next(self.G.parameters()).device
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.recipe.noise(n, "cpu", generator=g).to(device)
        labels = self.recipe.sample_labels(n, labels)
        labels = labels.to(device) if labels is not None else None
        kw = {}
        if truncation is not None:
            if "truncation" not in self.recipe.sample_kwargs:
                raise GanforgeError(f"--truncation applies to recipes with a truncation trick (stylegan); "
                                    f"{self.recipe.name} has none")
            kw["truncation"] = truncation
        return self.recipe.generate(self.G, z, labels, **kw)

    def save(self, x: torch.Tensor, path, nrow: int | None = None) -> Path:
        from .training.callbacks import write_samples
        return write_samples(x.float(), self.info, Path(path), nrow=nrow)

    def to(self, device) -> "Generator":
        self.G.to(device)
        return self


def load(path: str | Path) -> Generator:
    """Load a generator from a run directory (latest checkpoint), a checkpoint folder or an export folder."""
    path = checkpoint.resolve(Path(path))     # a checkpoint being replaced in place: its previous version
    if (path / "meta.json").is_file() and not (path / "config.json").is_file():
        ck, run = path, _read_run(path.parent.parent)          # run/checkpoints/step-NNNNNN
    elif (path / "weights.safetensors").is_file():
        ck, run = path, _read_run(path)                        # an export folder
    else:
        run = _read_run(path)
        ck = checkpoint.latest(path)
    cls, cfg = _run_recipe(run)
    info = DataInfo.from_dict(run["data_info"])
    recipe = cls(cfg, info)
    torch.manual_seed(0)
    nets = recipe.build()
    weights, _, _ = checkpoint.read(ck, with_state=False) if (ck / "meta.json").is_file() else (
        checkpoint.load_file_only(ck), None, None)
    name = recipe.ema or "G"
    prefix = "ema." if any(k.startswith(f"ema.{name}.") for k in weights) else ""
    checkpoint.load_nets({name: nets[name]}, weights, prefix, ck)
    return Generator(recipe, nets[name], info, run)
