"""THE training loop (DESIGN §3): the only place that calls zero_grad(), backward() and step().

Each iteration runs the recipe's phases in order. A phase computes gradients only for its player's weights,
asks its loss function for {"loss": ..., logs...} under the chosen precision, and steps that player's
optimizer; `repeat` draws a fresh batch for every update, `every` skips steps (lazy regularization).
All randomness flows from the global torch RNG (saved in checkpoints) or from explicit seeded generators
(fixed sample noise, data order), so a resumed run is bit-identical to an uninterrupted one on CPU.

How it computes (precision, threads, layout, fused optimizers, compile) is hardware.py's choice, recorded in
every checkpoint and reused on resume; what stays fp32 under autocast is precision.py's rule. Under torchrun
every process trains its own data shard and DDP averages each player's gradients; only rank 0 writes.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import __version__, viz
from ..recipes.base import ImageToImage, Recipe, StepContext
from . import checkpoint, distributed, hardware, optim
from .callbacks import (EvalEvery, Meter, Progress, RunLog, SigtermAsInterrupt, check_finite, diverged, finish,
                        sample_grid)
from .ema import EMA
from ..errors import Diverged, GanforgeError
from ..data.base import Batches, Data


class Trainer:
    STANDING_PASSES = 16     # noise batches behind an EMA generator's BatchNorm statistics (standing())

    def __init__(self, recipe: Recipe, data: Data, run_dir: Path, progress: bool = True):
        cfg = recipe.cfg
        self.recipe, self.cfg, self.run_dir, self.progress = recipe, cfg, Path(run_dir), progress
        # joins the torchrun job first: api.train writes the run directory only after every rank got here
        self.dist, self.device = distributed.setup(hardware.pick_device(cfg.device))
        threads = hardware.pick_threads(cfg.threads, self.device, distributed.env_int("LOCAL_WORLD_SIZE", 1))
        if self.device.type == "cpu":
            torch.set_num_threads(threads[0])
        torch.manual_seed(cfg.seed)        # the same on every rank: identical initial weights
        self.nets = recipe.build().to(self.device)
        self.how = hardware.choose(cfg, self.device, self.nets, threads)   # recorded in every checkpoint
        self.sync_bn = cfg.sync_bn and self.dist.enabled
        hardware.prepare(self.nets, self.how, self.sync_bn)
        # Players' nets keep requires_grad on; each phase's backward(inputs=...) computes its player's weight
        # gradients only, and a graph built in one phase can serve the next (the G step reuses D's fake)
        trainable = {n for names in recipe.players.values() for n in names}
        for name, net in self.nets.items():
            net.requires_grad_(name in trainable)
        for part in recipe.fixed(self.nets):
            part.requires_grad_(False)
        self.params = {p: [q for n in names for q in self.nets[n].parameters()] for p, names in recipe.players.items()}
        self.ema = EMA(self.nets[recipe.ema], cfg.ema_decay) if recipe.ema and cfg.ema_decay > 0 else None
        self.lazy = optim.lazy_phases(recipe)                # player -> every of its lazy phase
        self.opts = optim.build(recipe, self.nets, self.lazy)
        self.scalers = self.how.scalers(recipe.players)
        if self.device.type == "cuda":
            data = hardware.data_on_device(data, self.device)
        self.batches = Batches(data, cfg.batch_size, cfg.seed, self.device, self.dist.rank, self.dist.world_size)
        self.data = data
        self.replicas = distributed.Replicas(self.nets, self.dist, self.device)
        self.evaluate = EvalEvery(recipe, cfg) if cfg.eval_every else None
        self.log = RunLog(self.run_dir, recipe, writes=self.dist.is_main)   # a log= package missing: refused here
        self.phase_nets = hardware.compiled(self.replicas.nets) if self.compiled else self.replicas.nets
        if self.dist.rank:                 # each rank draws its own noise (rank 0 keeps the single-process stream)
            torch.manual_seed(cfg.seed + 1_000_003 * self.dist.rank)
        self.step, self.images, self.resume_differs = 0, 0, []
        self._standing_at = -1
        g = torch.Generator().manual_seed(cfg.seed + 1)   # fixed noise: its own generator, never the global RNG
        n = max(cfg.num_samples, viz.SCATTER_POINTS) if recipe.info.kind == "points" else cfg.num_samples
        self.fixed_z = recipe.sample_inputs(n, generator=g).to(self.device)
        labels = recipe.sample_labels(n)
        self.fixed_labels = labels.to(self.device) if labels is not None else None
        self.gate = distributed.Gate(self.dist)   # rank 0 writes the run files first (torchrun)

    def _reuse_numerics(self, saved: dict | None) -> None:
        """A resume runs with its checkpoint's automatic choices (thread count, precision=auto's pick)."""
        if not saved:
            return
        how, self.resume_differs = hardware.resume(self.how, saved, self.cfg, self.dist.is_main)
        if how.precision != self.how.precision:
            self.scalers = how.scalers(self.recipe.players)
        self.how = how
        hardware.guard(self.nets, how)

    precision = property(lambda self: self.how.precision)
    channels_last = property(lambda self: self.how.channels_last)
    compiled = property(lambda self: self.how.compiled)

    @property
    def effective_batch_size(self) -> int:
        return self.cfg.batch_size * self.dist.world_size

    def describe(self) -> dict:
        """How this run computes: recorded in summary.json and printed at the start of fit()."""
        return {**self.how.describe(), "world_size": self.dist.world_size, "sync_bn": self.sync_bn,
                "batch_size_per_process": self.cfg.batch_size, "effective_batch_size": self.effective_batch_size,
                "resume_differs": self.resume_differs}

    # -- state ---------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        w = checkpoint.flatten(dict(self.nets.items()))
        if self.ema is not None:
            w.update(checkpoint.flatten({self.recipe.ema: self.ema.net}, prefix="ema."))
        return w

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0; under torchrun every rank must call it: it gathers their RNG/data state)."""
        self.gate.release()
        self.standing()
        ranks = distributed.gather_state(distributed.local_state(self.batches), self.dist)
        path = None
        if self.dist.is_main:
            state = {"step": self.step, "images": self.images,
                     "eval": self.evaluate.periodic.state_dict() if self.evaluate is not None else {},
                     "optimizers": {p: o.state_dict() for p, o in self.opts.items()},
                     "scalers": {p: s.state_dict() for p, s in self.scalers.items()},
                     "recipe": self.recipe.state_dict(), **ranks[0], "ranks": ranks[1:]}
            meta = {"recipe": self.recipe.name, "ganforge_version": __version__, "numerics": self.how.record()}
            path = checkpoint.save(self.run_dir, self.step, self.weights(), state, meta, keep=self.cfg.keep_checkpoints)
        distributed.barrier(self.dist)       # no rank goes on (e.g. to resume) before the checkpoint exists
        return path

    def load(self, path: Path) -> None:
        weights, state, meta = checkpoint.read(path)
        if meta.get("recipe") != self.recipe.name:
            raise GanforgeError(f"checkpoint {str(path)!r} was written by recipe {meta.get('recipe')!r}, but this "
                                f"run is {self.recipe.name!r}; resume it from its own run directory")
        self._reuse_numerics(meta.get("numerics"))
        checkpoint.load_nets(dict(self.nets.items()), weights, "", path)
        if self.ema is not None:
            checkpoint.load_nets({self.recipe.ema: self.ema.net}, weights, "ema.", path)
        for p, o in self.opts.items():
            o.load_state_dict(state["optimizers"][p])
        for p, s in self.scalers.items():
            s.load_state_dict(state["scalers"][p])
        self.recipe.load_state_dict(state["recipe"])
        if self.evaluate is not None and state.get("eval"):
            self.evaluate.periodic.load_state_dict(state["eval"])
        distributed.restore_local(state, self.dist.rank, self.cfg.seed, self.batches)
        self.step, self.images = int(state["step"]), int(state["images"])

    # -- one iteration -------------------------------------------------------------------------------------
    def autocast(self):
        return self.how.autocast()

    def _draw(self) -> dict[str, torch.Tensor]:
        self.images += self.effective_batch_size
        batch = next(self.batches)
        if self.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 and v.is_floating_point()
                     else v for k, v in batch.items()}
        return batch

    def _player(self, player: str) -> tuple[str, ...]:
        if player not in self.recipe.players:
            raise KeyError(f"phase player {player!r} is not one of {list(self.recipe.players)}")
        return self.recipe.players[player]

    def train_step(self) -> dict[str, torch.Tensor]:
        self.gate.release()
        logs: dict[str, torch.Tensor] = {}
        shared: dict = {}        # per-iteration scratch a recipe may use to pass tensors between phases
        optim.schedule(self.opts, self.step, self.cfg.steps, self.cfg.lr_decay_start, self.recipe, self.lazy)
        for phase in self.recipe.phases(self.step):
            if self.step % phase.every:
                continue
            if phase.every > 1 and self.lazy.get(phase.player) != phase.every:
                raise GanforgeError(f"{self.recipe.name}: lazy phase {phase.name} (every={phase.every}) was not "
                                    f"among phases(0), so {phase.player}'s optimizer is not corrected for it")
            names = self._player(phase.player)
            opt, scaler = self.opts[phase.player], self.scalers[phase.player]
            for i in range(phase.repeat):
                ctx = StepContext(self.step, self._draw, self.device, self.cfg.batch_size, repeat=i, shared=shared)
                with self.replicas.phase(names):
                    with self.autocast():
                        out = phase.loss(self.phase_nets, ctx)
                    opt.zero_grad(set_to_none=True)
                    # only the player's weights get gradients; the other nets' graphs are only passed through
                    loss = out["loss"].float() * phase.every if phase.every > 1 else out["loss"].float()
                    scaler.scale(loss).backward(
                        inputs=[q for q in self.params[phase.player] if q.requires_grad])
                self.replicas.finish(names)      # average gradients over processes (torchrun)
                scaler.step(opt)
                scaler.update()
                if phase.after_update is not None:
                    phase.after_update(self.nets)
                if self.ema is not None and self.recipe.ema in names:
                    self.ema.update(self.nets[self.recipe.ema], self.recipe.ema_decay(self.step))
            for k, v in out.items():
                logs[f"{phase.name}/{k}"] = v.detach().float()
        self.step += 1
        return logs

    # -- outputs -------------------------------------------------------------------------------------------
    def standing(self) -> None:
        """Once per step, before samples, evaluation or a checkpoint read the EMA sampler: its BatchNorm
        statistics measured on its own weights over fixed noise (EMA.standing_statistics), under the training
        autocast, on a forked RNG so training draws the same numbers. Every rank calls it (a SyncBatchNorm
        copy reduces across them). ImageToImage recipes keep the copied statistics: their G maps data."""
        r = self.recipe
        if self.ema is None or r.ema != r.sampler or isinstance(r, ImageToImage) or self._standing_at == self.step:
            return
        self._standing_at = self.step
        g, n = torch.Generator().manual_seed(self.cfg.seed + 2), self.cfg.batch_size

        def forward(net: torch.nn.Module, i: int) -> None:
            labels = r.sample_labels(n)
            with self.autocast():
                r.generate(net, r.sample_inputs(n, generator=g).to(self.device),
                           labels.to(self.device) if labels is not None else None)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            self.ema.standing_statistics(forward, self.STANDING_PASSES)

    def sampler(self) -> torch.nn.Module:
        """recipe.sampler, read from its EMA copy when EMA tracks it."""
        r = self.recipe
        return self.ema.net if self.ema is not None and r.ema == r.sampler else self.nets[r.sampler]

    def write_samples(self) -> Path:
        real = self.data.x[: 2000].float().cpu() if self.recipe.info.kind == "points" else None
        return sample_grid(self.recipe, self.sampler(), self.nets, (self.fixed_z, self.fixed_labels), real,
                           self.run_dir, self.step, self.log)

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict:
        cfg, main = self.cfg, self.dist.is_main     # only rank 0 writes logs, samples and checkpoints
        self.gate.release()
        log = self.log.open(self.step)    # rank 0: this session's metrics.jsonl and backend; None elsewhere
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        if self.progress and main:
            self.how.announce(self.recipe.name, cfg.batch_size, self.dist.world_size, self.sync_bn)
        bar = Progress(self.progress and main, self.recipe.name, cfg.steps, self.step)
        meter, t_start, last_sample = Meter(self.images), time.perf_counter(), None
        sigterm = SigtermAsInterrupt()     # `kill` and schedulers: a checkpoint, as for Ctrl-C
        try:
            while self.step < end:
                meter.add(self.train_step())
                bar.update()
                if (self.step % cfg.sample_every == 0 or self.step % cfg.checkpoint_every == 0 or self.step == end
                        or (self.evaluate is not None and self.evaluate.due(self.step, end))):
                    self.standing()     # all ranks, before rank 0 samples or evaluates
                if self.step % cfg.log_every == 0 or self.step == end:
                    row = meter.row(self.step, self.images, self.dist)
                    if log is not None:
                        log.write(row)
                    check_finite(row, self.step)          # every rank sees the same averaged row: all stop together
                    bar.show(row)
                    meter.reset(self.images)
                if main and (self.step % cfg.sample_every == 0 or self.step == end):
                    last_sample = self.write_samples()
                if self.evaluate is not None and main and self.evaluate.due(self.step, end):
                    # before the checkpoint, which then holds the best value so far
                    self.evaluate(self.sampler(), self.step, log, self.run_dir)
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    check_finite(meter.means(self.dist), self.step)   # no checkpoint of weights gone non-finite
                    self.save()
        except Diverged as e:
            raise diverged(e, self.run_dir) from None
        except KeyboardInterrupt as e:
            how = f" by {e}" if str(e) else ""     # "by SIGTERM"; Ctrl-C's says nothing
            if self.dist.enabled:          # the other ranks may be anywhere: no collective checkpoint now
                raise GanforgeError(f"interrupted{how} at step {self.step}; continue from the last checkpoint with "
                                    f"`torchrun ... -m ganforge resume {self.run_dir}`") from None
            path = self.save()
            raise GanforgeError(f"interrupted{how} at step {self.step}; saved {path}. "
                                f"Continue with `ganforge resume {self.run_dir}`") from None
        finally:
            sigterm.restore()
            bar.close()
        summary = {"recipe": self.recipe.name, "step": self.step, "images": self.images,
                   "precision": self.precision, "device": str(self.device),
                   "seconds_this_session": round(time.perf_counter() - t_start, 2),
                   "samples": str(last_sample) if last_sample else None, "performance": self.describe(),
                   "skipped_images": self.data.skipped, "skipped_files": getattr(self.data, "skipped_names", [])}
        return finish(summary, log, self.run_dir, self.dist.rank)
