"""THE training loop (DESIGN §3): the only place that calls zero_grad(), backward() and step().

Each iteration runs the recipe's phases in order. A phase computes gradients only for its player's weights,
asks its loss function for {"loss": ..., logs...} under the chosen precision, and steps that player's
optimizer; `repeat` draws a fresh batch for every update, `every` skips steps (lazy regularization).
All randomness flows from the global torch RNG (saved in checkpoints) or from explicit seeded generators
(fixed sample noise, data order), so a resumed run is bit-identical to an uninterrupted one on CPU.

Speed (docs/performance.md; the choices are made in hardware.py): precision=auto picks bf16 autocast where
it measurably pays (conv nets on CPUs with AVX512-BF16/AMX, GPUs with bf16) and fp16 with a gradient scaler on
older GPUs (Micikevicius et al. 2018, arXiv:1710.03740); what stays fp32 is precision.py's rule; conv nets and
image batches are channels_last; Adam/AdamW/SGD run fused; `compile=true` wraps the nets in torch.compile.
Every choice that changes the numbers (threads, precision, layout, compile) is recorded in each checkpoint's
meta.json and reused on resume; a resume that cannot reuse it says what differs.
Under torchrun every process trains on its own data shard and DDP averages each player's gradients
(distributed.py); only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..recipes.base import Recipe, StepContext, lazy_correction, lr_factor
from ..precision import guard_convs
from . import checkpoint, distributed, hardware
from .hardware import fused_optimizer, is_image_conv, pick_device
from ..viz import write_samples
from .callbacks import EvalEvery, Meter, Progress, RunLog, finite, sample_suffix
from .ema import EMA
from ..errors import Diverged, GanforgeError
from ..data.base import Batches, Data


class Trainer:
    def __init__(self, recipe: Recipe, data: Data, run_dir: Path, progress: bool = True):
        cfg = recipe.cfg
        self.recipe, self.cfg, self.run_dir, self.progress = recipe, cfg, Path(run_dir), progress
        # joins the torchrun job first: api.train writes the run directory only after every rank got here
        self.dist, self.device = distributed.setup(pick_device(cfg.device))
        threads = hardware.pick_threads(cfg.threads, self.device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if self.device.type == "cpu":
            torch.set_num_threads(threads[0])
        torch.manual_seed(cfg.seed)        # the same on every rank: identical initial weights
        self.nets = recipe.build().to(self.device)
        self.how = hardware.choose(cfg, self.device, self.nets, threads)   # recorded in every checkpoint
        self._guard_convs()
        self.sync_bn = cfg.sync_bn and self.dist.enabled
        if self.sync_bn:
            for name in list(self.nets):
                self.nets[name] = distributed.sync_batchnorm(self.nets[name], self.device)
        # channels_last: the layout oneDNN and tensor cores run convolutions in, so no per-layer reorders
        for name, net in self.nets.items():
            if is_image_conv(net):
                net.to(memory_format=torch.channels_last)
        # Every player's nets keep requires_grad on, and each phase's backward computes gradients for its
        # player's weights only (backward(inputs=...)): the others' weight gradients are never computed, as
        # with requires_grad toggling, but a graph built in one phase can serve the next (the G step may
        # reuse the D step's fake through ctx.shared instead of running G again)
        trainable = {n for names in recipe.players.values() for n in names}
        for name, net in self.nets.items():
            net.requires_grad_(name in trainable)
        self.params = {p: [q for n in names for q in self.nets[n].parameters()] for p, names in recipe.players.items()}
        self.ema = EMA(self.nets[recipe.ema], cfg.ema_decay) if recipe.ema and cfg.ema_decay > 0 else None
        self.opts = {p: fused_optimizer(recipe.optimizer(p, [q for n in nets for q in self.nets[n].parameters()]))
                     for p, nets in recipe.players.items()}
        lazy = {ph.player: ph.every for ph in recipe.phases(0) if ph.every > 1}   # one lazy phase per player
        for player, every in lazy.items():
            lazy_correction(self.opts[player], every)
        for opt in self.opts.values():     # the schedule scales each group's own lr (the lazy-corrected one)
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        fp16 = self.precision == "fp16"
        self.scalers = {p: torch.amp.GradScaler("cuda", enabled=fp16) for p in recipe.players}
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.channels_last   # fixed shapes: let cuDNN time its algorithms once
            data = hardware.data_on_device(data, self.device)
        self.batches = Batches(data, cfg.batch_size, cfg.seed, self.device, self.dist.rank, self.dist.world_size)
        self.data = data
        self.replicas = distributed.Replicas(self.nets, self.dist, self.device)
        self.evaluate = EvalEvery(recipe, cfg) if cfg.eval_every else None
        self.phase_nets = self.replicas.nets
        if self.compiled:
            self.phase_nets = nn.ModuleDict({k: torch.compile(v) if any(True for _ in v.parameters()) else v
                                             for k, v in self.replicas.nets.items()})
        if self.dist.rank:                 # each rank draws its own noise (rank 0 keeps the single-process stream)
            torch.manual_seed(cfg.seed + 1_000_003 * self.dist.rank)
        self.resume_differs: list[str] = []
        self.step, self.images = 0, 0
        g = torch.Generator().manual_seed(cfg.seed + 1)   # fixed noise: its own generator, never the global RNG
        self.fixed_z = recipe.sample_inputs(cfg.num_samples, generator=g).to(self.device)
        labels = recipe.sample_labels(cfg.num_samples)
        self.fixed_labels = labels.to(self.device) if labels is not None else None
        # api.train/resume check the run directory, build the Trainer, then write config.json on every rank.
        # Barrier 1: every rank has checked before rank 0 writes. Barrier 2 (the other ranks here, rank 0 when
        # it first trains or saves): the other ranks' identical writes come after rank 0's, never racing it
        distributed.barrier(self.dist)
        self._hold_others = self.dist.enabled and self.dist.is_main
        if self.dist.enabled and not self.dist.is_main:
            distributed.barrier(self.dist)

    def _guard_convs(self) -> None:
        if self.precision == "bf16" and self.device.type == "cpu":
            for net in self.nets.values():
                guard_convs(net)           # oneDNN's AMX defect on padding-only taps (precision.py)

    def _reuse_numerics(self, saved: dict | None) -> None:
        """A resume runs with its checkpoint's automatic choices (hardware.Choices.reuse); what still differs
        (another machine, another torch) is said in one line and recorded in summary.json."""
        if not saved:
            return
        how = self.how.reuse(saved, self.cfg.threads, self.cfg.precision)
        if how.precision != self.how.precision:
            self.scalers = {p: torch.amp.GradScaler("cuda", enabled=how.precision == "fp16")
                            for p in self.recipe.players}
        self.how = how
        how.apply()
        self._guard_convs()
        self.resume_differs = hardware.differences(saved, how.record())
        if self.resume_differs and self.dist.is_main:
            print(f"ganforge: note: this resume is not bit-identical to an uninterrupted run "
                  f"({'; '.join(self.resume_differs)}, checkpoint -> now)", file=sys.stderr, flush=True)

    precision = property(lambda self: self.how.precision)
    channels_last = property(lambda self: self.how.channels_last)
    compiled = property(lambda self: self.how.compiled)

    def _release_others(self) -> None:
        if self._hold_others:
            self._hold_others = False
            distributed.barrier(self.dist)

    @property
    def effective_batch_size(self) -> int:
        return self.cfg.batch_size * self.dist.world_size

    def describe(self) -> dict:
        """How this run computes: recorded in summary.json and printed at the start of fit()."""
        h = self.how
        return {"device": str(self.device), "precision": h.precision, "precision_reason": h.precision_reason,
                "channels_last": h.channels_last, "threads": h.threads, "threads_reason": h.threads_reason,
                "compile": h.compiled, "world_size": self.dist.world_size, "sync_bn": self.sync_bn,
                "batch_size_per_process": self.cfg.batch_size, "effective_batch_size": self.effective_batch_size,
                "resume_differs": self.resume_differs}

    def _announce(self) -> None:
        w, n = self.dist.world_size, self.effective_batch_size
        batch = (f"effective batch size {n} = {self.cfg.batch_size} per process x {w} processes"
                 + (" (SyncBatchNorm)" if self.sync_bn else "") if w > 1 else f"effective batch size {n}")
        print(f"{self.recipe.name}: {self.how.line()}; {batch}", flush=True)
        note = hardware.busy_note(self.how.threads)
        if note:
            print(note, flush=True)

    # -- state ---------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        w = checkpoint.flatten(dict(self.nets.items()))
        if self.ema is not None:
            w.update(checkpoint.flatten({self.recipe.ema: self.ema.net}, prefix="ema."))
        return w

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0; under torchrun every rank must call it: it gathers their RNG/data state)."""
        self._release_others()
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
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

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
        self._release_others()
        logs: dict[str, torch.Tensor] = {}
        shared: dict = {}        # per-iteration scratch a recipe may use to pass tensors between phases
        if self.cfg.lr_decay_start < 1:
            f = lr_factor(self.step, self.cfg.steps, self.cfg.lr_decay_start)
            for opt in self.opts.values():
                for group in opt.param_groups:
                    group["lr"] = group["initial_lr"] * f
        for phase in self.recipe.phases(self.step):
            if self.step % phase.every:
                continue
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
                    self.ema.update(self.nets[self.recipe.ema])
            for k, v in out.items():
                logs[f"{phase.name}/{k}"] = v.detach().float()
        self.step += 1
        return logs

    # -- outputs -------------------------------------------------------------------------------------------
    def sampler(self) -> torch.nn.Module:
        """recipe.sampler, read from its EMA copy when EMA tracks it."""
        r = self.recipe
        return self.ema.net if self.ema is not None and r.ema == r.sampler else self.nets[r.sampler]

    @torch.no_grad()
    def write_samples(self) -> Path:
        G = self.sampler()
        was = G.training
        G.eval()   # eval: BatchNorm uses running statistics, and sampling changes no state (exact resume)
        x = self.recipe.generate(G, self.fixed_z, self.fixed_labels)
        G.train(was)
        real = self.data.x[: 2000].float().cpu() if self.recipe.info.kind == "points" else None
        path = self.run_dir / "samples" / f"step-{self.step:06d}{sample_suffix(self.recipe.info.kind)}"
        write_samples(x.float(), self.recipe.info, path, real=real)
        self.recipe.on_sample_step(self.nets, self.run_dir / "plots", self.step)
        return path

    def _check_finite(self, row: dict) -> None:
        bad = finite(row)
        if bad:
            raise Diverged(self.step, ", ".join(bad))

    def _diverged(self, e: Diverged) -> GanforgeError:
        try:         # name only a checkpoint that exists: a run can diverge before its first one
            kept = f"the last good checkpoint is {checkpoint.latest(self.run_dir)}"
        except GanforgeError:
            kept = "no checkpoint was written before it (the same `ganforge train` command starts it again)"
        return GanforgeError(f"{e}; {kept}; lower the learning rates (g_lr/d_lr) or try loss=hinge / gp_weight / "
                             f"r1_gamma")

    # -- the loop ------------------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> dict:
        cfg, main = self.cfg, self.dist.is_main     # only rank 0 writes logs, samples and checkpoints
        self._release_others()
        log = RunLog(self.run_dir, resume_step=self.step) if main else None
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        if self.progress and main:
            self._announce()
        bar = Progress(self.progress and main, self.recipe.name, cfg.steps, self.step)
        meter, t_start, last_sample = Meter(self.images), time.perf_counter(), None
        try:
            while self.step < end:
                meter.add(self.train_step())
                bar.update()
                if self.step % cfg.log_every == 0 or self.step == end:
                    row = meter.row(self.step, self.images, self.dist)
                    if log is not None:
                        log.write(row)
                    self._check_finite(row)          # every rank sees the same averaged row: all stop together
                    bar.show(row)
                    meter.reset(self.images)
                if main and (self.step % cfg.sample_every == 0 or self.step == end):
                    last_sample = self.write_samples()
                if self.evaluate is not None and main and self.evaluate.due(self.step, end):
                    # before the checkpoint, which then holds the best value so far
                    self.evaluate(self.sampler(), self.step, log, self.run_dir)
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    self._check_finite(meter.means(self.dist))   # no checkpoint of weights gone non-finite
                    self.save()
        except Diverged as e:
            raise self._diverged(e) from None
        except KeyboardInterrupt:
            if self.dist.enabled:          # the other ranks may be anywhere: no collective checkpoint now
                raise GanforgeError(f"interrupted at step {self.step}; continue from the last checkpoint with "
                                    f"`torchrun ... -m ganforge resume {self.run_dir}`") from None
            path = self.save()
            raise GanforgeError(f"interrupted at step {self.step}; saved {path}. "
                                f"Continue with `ganforge resume {self.run_dir}`") from None
        finally:
            bar.close()
        summary = {"recipe": self.recipe.name, "step": self.step, "images": self.images,
                   "precision": self.precision, "device": str(self.device),
                   "seconds_this_session": round(time.perf_counter() - t_start, 2),
                   "samples": str(last_sample) if last_sample else None, "performance": self.describe(),
                   "skipped_images": self.data.skipped, "skipped_files": getattr(self.data, "skipped_names", [])}
        if log is None:     # the other ranks' view: the files are rank 0's
            return {**summary, "rank": self.dist.rank, "loss_plot": None, "checkpoint": None, "last_log": {}}
        plot = log.plot()
        summary.update({"loss_plot": str(plot) if plot else None,
                        "checkpoint": str(checkpoint.latest(self.run_dir)),
                        "last_log": log.history[-1] if log.history else {}})
        checkpoint.write_json_atomic(self.run_dir / "summary.json", summary)
        return summary
