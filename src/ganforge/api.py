"""The public Python API: train(), resume(), load(), list_recipes(). The CLI is a thin layer over it."""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import from_dict, to_dict
from .data import DataInfo, resolve
from .errors import GanforgeError
from .registry import RECIPES, suggest
from .training import checkpoint, distributed

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
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise GanforgeError(f"{str(path)!r} is corrupt ({e}); restore it or start a new run") from None


def _check_out_dir(out: Path, run: dict[str, Any]) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / "config.json").is_file():
        raise GanforgeError(f"output directory {str(out)!r} is not empty and holds no ganforge run; "
                            f"choose another --out")
    old = _read_run(out)
    if old.get("recipe") == run["recipe"] and old.get("config") == run["config"]:
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
    if _is_main():
        _check_out_dir(run_dir, run)
    trainer = Trainer(rec, data, run_dir, progress=progress)   # builds the nets: recipe errors surface here
    if _is_main():
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
    """Continue a run from its latest checkpoint (bit-identical to an uninterrupted run on CPU)."""
    from .training.trainer import Trainer

    run_dir = Path(run_dir)
    run = _read_run(run_dir)
    cls, cfg = _run_recipe(run)
    ck = checkpoint.latest(run_dir)
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    data, info = load_data(cfg)
    stored = DataInfo.from_dict(run["data_info"])
    if (stored.shape, stored.num_classes) != (info.shape, info.num_classes):
        raise GanforgeError(f"the data {cfg.data!r} changed since this run started (shape/classes "
                            f"{stored.shape}/{stored.num_classes} -> {info.shape}/{info.num_classes}); "
                            f"start a new run instead")
    trainer = Trainer(cls(cfg, stored), data, run_dir, progress=progress)
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
    path = Path(path)
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
