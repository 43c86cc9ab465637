"""How a run computes on this machine: device, precision, CPU threads, fused optimizers (docs/performance.md),
and the record of every choice that changes the numbers, kept in each checkpoint so a resume reuses it.

Every choice here is a pure function of the config, the environment variables and the machine's fixed
properties (its cores, its CPU features), never of how busy the machine is: the same command on the same
machine computes the same bits, and a resumed run continues them exactly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.base import Data
from ..conv_grad import route_convs
from ..errors import GanforgeError
from ..precision import guard_convs
from . import distributed

# torch's own intra-op default (its count of physical cores), read before any Trainer changes it
TORCH_DEFAULT_THREADS = torch.get_num_threads()
CPU_BF16_ENV = "GANFORGE_CPU_BF16"
LOADAVG = "/proc/loadavg"                # 4th field: running/total tasks (read only for busy_note's advice)       # 0: treat the CPU as having no fast bf16; 1: as having it


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise GanforgeError("device=cuda asked for, but no CUDA GPU is visible; use device=cpu or device=auto")
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_bf16_feature() -> str:
    """The CPU feature that makes bf16 matmuls fast ("amx_bf16" or "avx512_bf16"), or "" if none.
    GANFORGE_CPU_BF16=0 hides it and =1 pretends it (so both precision paths can be tested on any CPU)."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("0", "off", "false", "no"):
        return ""
    if forced in ("1", "on", "true", "yes"):
        return f"{CPU_BF16_ENV}=1"
    flags = _cpu_flags()
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), "")


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def is_conv(net: nn.Module) -> bool:
    """A net with convolution weights (>= 3-D parameters: nn.Conv*, equalized and modulated convs alike)."""
    return any(p.dim() >= 3 for p in net.parameters())


def is_image_conv(net: nn.Module) -> bool:
    """2-D convolutions only: channels_last is a 4-D layout (a 5-D weight would need channels_last_3d)."""
    dims = {p.dim() for p in net.parameters()}
    return 4 in dims and 5 not in dims


def pick_precision(name: str, device: torch.device, conv: bool = True) -> tuple[str, str]:
    """(precision, why). auto: bf16 on GPUs that have it, else fp16 (with a GradScaler); on CPUs bf16 only for
    convolutional nets on AMX/AVX512-BF16 hardware, where it pays, while the small MLPs of the toy recipes
    gain nothing and keep fp32's accuracy (the measurements: docs/performance.md)."""
    if name != "auto":
        if name == "fp16" and device.type != "cuda":
            raise GanforgeError("precision=fp16 needs a CUDA GPU; on CPU use bf16 or fp32")
        return name, f"precision={name}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU supports bf16"
        return "fp16", "auto: GPU without bf16, fp16 with a gradient scaler"
    feature = cpu_bf16_feature()
    if not feature:
        return "fp32", "auto: CPU without AMX or AVX512-BF16"
    if not conv:
        return "fp32", f"auto: CPU has {feature}, but fully-connected nets gain nothing from bf16"
    return "bf16", f"auto: CPU with {feature}, convolutional nets"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def pick_threads(requested: int, device: torch.device, processes: int = 1) -> tuple[int | None, str]:
    """(CPU threads, why): `threads=N` if given, else OMP_NUM_THREADS (torchrun sets it), else torch's default
    limited to this process's share of the cores it may run on. Never the machine's load: the thread count
    changes how oneDNN splits its sums, so a load-dependent choice made runs and resumes differ (issue 12)."""
    if device.type != "cpu":
        return None, "GPU"
    if requested:
        return requested, f"threads={requested}"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), f"OMP_NUM_THREADS={omp}"
    share = max(1, usable_cores() // max(1, processes))
    if TORCH_DEFAULT_THREADS < share:
        return TORCH_DEFAULT_THREADS, "auto: torch's thread count when ganforge was imported"
    return share, f"auto: {share} core{'s' * (share > 1)} for this process"


def other_runnable_tasks(samples: int = 5, interval: float = 0.02) -> int:
    """Tasks other than this one running or waiting for a CPU now (median of a few reads of the instantaneous
    count in /proc/loadavg, whose 4th field is runnable/total). Only for the advice `busy_note` prints."""
    counts = []
    for i in range(samples):
        try:
            counts.append(int(Path(LOADAVG).read_text().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return 0
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, sorted(counts)[len(counts) // 2])


def busy_note(threads: int | None) -> str:
    """Advice, never a change: OpenMP threads spin-wait for each other, so a thread that shares its core with
    another busy process slows every op (docs/performance.md)."""
    if not threads or threads <= 1:
        return ""
    busy = other_runnable_tasks()
    if threads + busy <= usable_cores():
        return ""
    return (f"note: {busy} other busy task{'s' * (busy > 1)} share{'s' * (busy == 1)} this machine's "
            f"{usable_cores()} cores with {threads} training threads; if steps are slow, train with threads=1 "
            f"(the thread count is part of the run's numerics: a resume keeps it)")


def compiled(nets: nn.ModuleDict) -> nn.ModuleDict:
    """compile=true: torch.compile of every net with parameters (the phases call these; penalties that need a
    double backward call the originals, recipes.base.eager)."""
    return nn.ModuleDict({k: torch.compile(v) if any(True for _ in v.parameters()) else v for k, v in nets.items()})


def fused_optimizer(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Switch Adam/AdamW/SGD to their fused kernel (one pass over all parameters instead of a loop of small
    ops; measured in docs/performance.md) where torch has it for the parameters' device. Changed in place,
    before the first step, so a recipe that keeps a reference to its optimizer (lr schedules) still holds it;
    other optimizers, and ones the recipe tuned itself (foreach/fused/differentiable), are left alone."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:    # an older/newer torch without the helper: the two devices fused kernels always had
        devices = {"cuda", "cpu"}
    if type(opt) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD) or opt.state:
        return opt
    if any(g.get("fused") or g.get("foreach") or g.get("differentiable") for g in opt.param_groups):
        return opt
    params = [p for g in opt.param_groups for p in g["params"]]
    if not params or any(not p.is_floating_point() or p.device.type not in devices for p in params):
        return opt
    for group in opt.param_groups:
        group["fused"] = True
    opt.defaults["fused"] = True
    return opt


def data_on_device(data: Data, device: torch.device, limit_bytes: int = 2 << 30) -> Data:
    """A plain in-memory data set (uint8 images or float rows) under `limit_bytes` moved to the GPU once, so
    each batch is an index and a decode on the device instead of a host-to-device copy. Data subclasses,
    which may assemble batches from other host tensors, stay where they are."""
    size = data.x.nbytes + (data.y.nbytes if data.y is not None else 0)
    if type(data) is not Data or size > limit_bytes:
        return data
    return Data(data.x.to(device), data.y.to(device) if data.y is not None else None,
                data.skipped_names or data.skipped)


@dataclass
class Choices:
    """Everything besides the config and the weights that decides the bits a training step computes.

    `record()` goes into summary.json and every checkpoint's meta.json (`numerics`); `reuse(saved)` is what a
    resume runs with: the checkpoint's automatic choices (thread count, precision=auto's pick) where the
    device kind matches, so it continues what the uninterrupted run would have computed."""
    device: torch.device
    precision: str
    precision_reason: str
    threads: int | None
    threads_reason: str
    channels_last: bool
    compiled: bool

    def record(self) -> dict:
        where = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else cpu_name()
        return {"device": self.device.type, "hardware": where, "precision": self.precision,
                "threads": self.threads, "channels_last": self.channels_last, "compile": self.compiled,
                "torch": torch.__version__, "deterministic": torch.are_deterministic_algorithms_enabled()}

    def reuse(self, saved: dict, threads_key: int, precision_key: str) -> "Choices":
        """The choices a resume makes: the saved automatic ones where the config left them automatic."""
        out = dataclasses.replace(self)
        if saved.get("device") != self.device.type:
            return out
        if not threads_key and saved.get("threads") and saved["threads"] != self.threads:
            out.threads, out.threads_reason = int(saved["threads"]), "kept from the resumed checkpoint"
        if precision_key == "auto" and saved.get("precision") in PRECISIONS and saved["precision"] != self.precision:
            out.precision, out.precision_reason = saved["precision"], "auto, kept from the resumed checkpoint"
        return out

    def autocast(self):
        """The autocast context of this run's precision (a no-op for fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def scalers(self, players) -> dict:
        """One GradScaler per player, live only for fp16 (Micikevicius et al. 2018, arXiv:1710.03740)."""
        return {p: torch.amp.GradScaler("cuda", enabled=self.precision == "fp16") for p in players}

    def describe(self) -> dict:
        return {"device": str(self.device), "precision": self.precision, "precision_reason": self.precision_reason,
                "channels_last": self.channels_last, "threads": self.threads, "threads_reason": self.threads_reason,
                "compile": self.compiled}

    def apply(self) -> None:
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads)

    def line(self) -> str:
        """'cpu, 2 CPU threads, bf16 (auto: ...), channels_last, torch.compile' for the start-up line."""
        t = self.threads
        return (f"{self.device}{f', {t} CPU thread' + 's' * (t > 1) if t else ''}, {self.precision} "
                f"({self.precision_reason}){', channels_last' if self.channels_last else ''}"
                f"{', torch.compile' if self.compiled else ''}")

    def announce(self, name: str, batch_size: int, world: int, sync_bn: bool) -> None:
        n = batch_size * world
        batch = (f"effective batch size {n} = {batch_size} per process x {world} processes"
                 + (" (SyncBatchNorm)" if sync_bn else "") if world > 1 else f"effective batch size {n}")
        print(f"{name}: {self.line()}; {batch}", flush=True)
        note = busy_note(self.threads)
        if note:
            print(note, flush=True)


PRECISIONS = ("fp32", "bf16", "fp16")


def choose(cfg, device: torch.device, nets: nn.ModuleDict, threads: tuple[int | None, str]) -> Choices:
    """The run's choices from its config (precision, compile keys), its nets and its pick_threads()."""
    (threads, threads_why) = threads
    precision, precision_why = pick_precision(cfg.precision, device, any(is_conv(n) for n in nets.values()))
    return Choices(device, precision, precision_why, threads, threads_why,
                   channels_last=any(is_image_conv(n) for n in nets.values()), compiled=cfg.compile)


def prepare(nets: nn.ModuleDict, how: Choices, sync: bool) -> None:
    """The nets as this run computes with them, changed in place: under CPU bf16 the convs where oneDNN's
    weight gradient is slow get it from one GEMM (conv_grad.route_convs), the other convs whose taps meet only
    padding run fp32 (precision.guard_convs: an oneDNN AMX defect), BatchNorm is synchronized over the
    processes when `sync` (torchrun, sync_bn=true), 2-D conv nets are channels_last (the layout oneDNN and
    tensor cores compute in: no per-layer reorders), and cuDNN times its algorithms once (fixed shapes)."""
    guard(nets, how)
    if sync:
        for name in list(nets):
            nets[name] = distributed.sync_batchnorm(nets[name], how.device)
    for net in nets.values():
        if is_image_conv(net):
            net.to(memory_format=torch.channels_last)
    if how.device.type == "cuda":
        torch.backends.cudnn.benchmark = how.channels_last


def guard(nets: nn.ModuleDict, how: Choices) -> None:
    if how.precision == "bf16" and how.device.type == "cpu":
        for net in nets.values():
            guard_convs(net)
            route_convs(net)


def resume(how: Choices, saved: dict, cfg, say: bool) -> tuple[Choices, list[str]]:
    """The choices a resume runs with (Choices.reuse, applied) and what still differs from the checkpoint's
    record (another machine, another torch), said in one line when `say` (rank 0)."""
    new = how.reuse(saved, cfg.threads, cfg.precision)
    new.apply()
    differs = differences(saved, new.record())
    if differs and say:
        print(f"ganforge: note: this resume is not bit-identical to an uninterrupted run "
              f"({'; '.join(differs)}, checkpoint -> now)", file=sys.stderr, flush=True)
    return new, differs


def differences(saved: dict, now: dict) -> list[str]:
    """'key: saved -> now' for every numerics entry that differs (empty: the resume is bit-identical)."""
    return [f"{k} {saved[k]} -> {now.get(k)}" for k in sorted(saved) if saved[k] != now.get(k)]
