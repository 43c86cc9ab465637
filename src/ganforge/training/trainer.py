"""THE training loop (DESIGN §3): the only place that calls zero_grad(), backward() and step().

Each iteration runs the recipe's phases in order. A phase enables gradients only for its player's nets,
asks its loss function for {"loss": ..., logs...} under the chosen precision, and steps that player's
optimizer; `repeat` draws a fresh batch for every update, `every` skips steps (lazy regularization).
All randomness flows from the global torch RNG (saved in checkpoints) or from explicit seeded generators
(fixed sample noise, data order), so a resumed run is bit-identical to an uninterrupted one on CPU.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch

from .. import __version__
from ..recipes.base import Recipe, StepContext
from . import checkpoint
from .callbacks import RunLog, finite, sample_suffix, write_samples
from .ema import EMA
from ..errors import GanforgeError
from ..data.base import Batches, Data


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("device=cuda asked for, but no CUDA GPU is visible; use device=cpu or device=auto")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_precision(name: str, device: torch.device) -> str:
    if name != "auto":
        if name == "fp16" and device.type != "cuda":
            raise GanforgeError("precision=fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_supports_bf16() else "fp32"


class Trainer:
    def __init__(self, recipe: Recipe, data: Data, run_dir: Path, progress: bool = True):
        cfg = recipe.cfg
        self.recipe, self.cfg, self.run_dir, self.progress = recipe, cfg, Path(run_dir), progress
        self.device = pick_device(cfg.device)
        self.precision = pick_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.nets = recipe.build().to(self.device)
        self.ema = EMA(self.nets[recipe.ema], cfg.ema_decay) if recipe.ema and cfg.ema_decay > 0 else None
        self.opts = {p: recipe.optimizer(p, [q for n in nets for q in self.nets[n].parameters()])
                     for p, nets in recipe.players.items()}
        fp16 = self.precision == "fp16"
        self.scalers = {p: torch.amp.GradScaler("cuda", enabled=fp16) for p in recipe.players}
        self.batches = Batches(data, cfg.batch_size, cfg.seed, self.device)
        self.data = data
        self.step, self.images = 0, 0
        g = torch.Generator().manual_seed(cfg.seed + 1)   # fixed noise: its own generator, never the global RNG
        self.fixed_z = recipe.noise(cfg.num_samples, "cpu", generator=g).to(self.device)
        labels = recipe.sample_labels(cfg.num_samples)
        self.fixed_labels = labels.to(self.device) if labels is not None else None

    # -- state ---------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        w = checkpoint.flatten(dict(self.nets.items()))
        if self.ema is not None:
            w.update(checkpoint.flatten({self.recipe.ema: self.ema.net}, prefix="ema."))
        return w

    def save(self) -> Path:
        state = {"step": self.step, "images": self.images,
                 "optimizers": {p: o.state_dict() for p, o in self.opts.items()},
                 "scalers": {p: s.state_dict() for p, s in self.scalers.items()},
                 "batches": self.batches.state_dict(), "recipe": self.recipe.state_dict(),
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}
        meta = {"recipe": self.recipe.name, "ganforge_version": __version__}
        return checkpoint.save(self.run_dir, self.step, self.weights(), state, meta)

    def load(self, path: Path) -> None:
        weights, state, meta = checkpoint.read(path)
        if meta.get("recipe") != self.recipe.name:
            raise GanforgeError(f"checkpoint {str(path)!r} was written by recipe {meta.get('recipe')!r}, but this "
                                f"run is {self.recipe.name!r}; resume it from its own run directory")
        checkpoint.load_nets(dict(self.nets.items()), weights, "", path)
        if self.ema is not None:
            checkpoint.load_nets({self.recipe.ema: self.ema.net}, weights, "ema.", path)
        for p, o in self.opts.items():
            o.load_state_dict(state["optimizers"][p])
        for p, s in self.scalers.items():
            s.load_state_dict(state["scalers"][p])
        self.batches.load_state_dict(state["batches"])
        self.recipe.load_state_dict(state["recipe"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step, self.images = int(state["step"]), int(state["images"])

    # -- one iteration -------------------------------------------------------------------------------------
    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _draw(self) -> dict[str, torch.Tensor]:
        self.images += self.cfg.batch_size
        return next(self.batches)

    def _player(self, player: str) -> None:
        if player not in self.recipe.players:
            raise KeyError(f"phase player {player!r} is not one of {list(self.recipe.players)}")
        for name, net in self.nets.items():
            net.requires_grad_(name in self.recipe.players[player])

    def train_step(self) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        shared: dict = {}        # per-iteration scratch a recipe may use to pass tensors between phases
        for phase in self.recipe.phases(self.step):
            if self.step % phase.every:
                continue
            self._player(phase.player)
            opt, scaler = self.opts[phase.player], self.scalers[phase.player]
            for _ in range(phase.repeat):
                ctx = StepContext(self.step, self._draw, self.device, self.cfg.batch_size)
                ctx.shared = shared
                with self.autocast():
                    out = phase.loss(self.nets, ctx)
                opt.zero_grad(set_to_none=True)
                scaler.scale(out["loss"].float()).backward()
                scaler.step(opt)
                scaler.update()
                if phase.after_update is not None:
                    phase.after_update(self.nets)
                if self.ema is not None and self.recipe.ema in self.recipe.players[phase.player]:
                    self.ema.update(self.nets[self.recipe.ema])
            for k, v in out.items():
                logs[f"{phase.name}/{k}"] = v.detach().float()
        self.step += 1
        return logs

    # -- outputs -------------------------------------------------------------------------------------------
    def sampler(self) -> torch.nn.Module:
        return self.ema.net if self.ema is not None else self.nets[self.recipe.ema or "G"]

    @torch.no_grad()
    def write_samples(self) -> Path:
        G = self.sampler()
        was = G.training
        G.eval()   # eval: BatchNorm uses running statistics, and sampling changes no state (exact resume)
        x = self.recipe.generate(G, self.fixed_z, self.fixed_labels)
        G.train(was)
        real = self.data.x[: 2000].float() if self.recipe.info.kind == "points" else None
        path = self.run_dir / "samples" / f"step-{self.step:06d}{sample_suffix(self.recipe.info.kind)}"
        write_samples(x.float(), self.recipe.info, path, real=real)
        self.recipe.visualize(self.nets, self.run_dir / "plots", self.step)
        return path

    def _check_finite(self, row: dict) -> None:
        bad = finite(row)
        if bad:
            raise GanforgeError(
                f"training diverged at step {self.step}: {', '.join(bad)} became NaN or infinite. The last good "
                f"checkpoint is kept in {self.run_dir / 'checkpoints'}; lower the learning rates or try "
                f"loss=hinge / a gradient penalty")

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict:
        cfg = self.cfg
        log = RunLog(self.run_dir, resume_step=self.step)
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{self.recipe.name}", unit="step",
                       dynamic_ncols=True)
        sums: dict[str, torch.Tensor] = {}
        count, t0, img0, t_start = 0, time.perf_counter(), self.images, time.perf_counter()
        last_sample = None
        try:
            while self.step < end:
                for k, v in self.train_step().items():
                    sums[k] = sums.get(k, 0) + v
                count += 1
                if bar is not None:
                    bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    dt = time.perf_counter() - t0
                    row = {"step": self.step, "images_per_s": round((self.images - img0) / max(dt, 1e-9), 1),
                           **{k: (v / count).item() for k, v in sums.items()}}
                    log.write(row)
                    self._check_finite(row)
                    if bar is not None:
                        bar.set_postfix({k.replace("/loss", ""): f"{v:.3f}" for k, v in row.items()
                                         if k.endswith("/loss")} | {"img/s": f"{row['images_per_s']:.0f}"})
                    sums, count, t0, img0 = {}, 0, time.perf_counter(), self.images
                if self.step % cfg.sample_every == 0 or self.step == end:
                    last_sample = self.write_samples()
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    # never write a checkpoint whose losses since the last log went non-finite
                    self._check_finite({k: v.item() for k, v in sums.items()})
                    self.save()
        except KeyboardInterrupt:
            path = self.save()
            raise GanforgeError(f"interrupted at step {self.step}; saved {path}. "
                                f"Continue with `ganforge resume {self.run_dir}`") from None
        finally:
            if bar is not None:
                bar.close()
        plot = log.plot()
        summary = {"recipe": self.recipe.name, "step": self.step, "images": self.images,
                   "precision": self.precision, "device": str(self.device),
                   "seconds_this_session": round(time.perf_counter() - t_start, 2),
                   "samples": str(last_sample) if last_sample else None,
                   "loss_plot": str(plot) if plot else None,
                   "checkpoint": str(checkpoint.latest(self.run_dir)),
                   "last_log": log.history[-1] if log.history else {}}
        checkpoint.write_json_atomic(self.run_dir / "summary.json", summary)
        return summary
