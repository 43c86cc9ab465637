"""Multi-process data parallelism under torchrun: DistributedDataParallel (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training", arXiv:2006.15704).

Every process holds the full nets and draws its own shard of each epoch (`data.base.Batches` with
rank/world_size); after each backward the phase player's gradients are averaged over the W processes,
g = (1/W) sum_r g_r, so one update equals an update on the union batch of W x batch_size samples
(the effective batch size). NCCL carries the all-reduce on GPUs, gloo on CPUs.

A GAN iteration has several players, so the DDP wrappers are driven per phase (`Replicas.phase`): nets that
the phase does not update run under `no_sync()` (their parameters are frozen and no reduction is expected),
and a player net that the recipe used only through a method other than forward (`nets["D"].features(x)`)
does not reach DDP's reducer, so its gradients are all-reduced by hand instead — as StyleGAN2-ADA does for
every net (Karras et al. 2020, arXiv:2006.06676, training_loop.py). Batch statistics can be synchronized
across processes (SyncBatchNorm: Algorithm 1 of Ioffe & Szegedy 2015, arXiv:1502.03167, over the union batch).
Only rank 0 writes files; `gather_state` collects each rank's RNG and data position so resume is exact.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import GanforgeError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job; world_size 1 means a plain single-process run."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise GanforgeError(f"environment variable {name}={value!r} is not an integer; it is set by torchrun "
                            f"(--nproc_per_node=N); unset it for a single-process run") from None


def from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the variables torchrun sets; (0, 1, 0) outside torchrun."""
    world = env_int("WORLD_SIZE", 1)
    rank, local = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise GanforgeError(f"torchrun variables are inconsistent: RANK={rank}, WORLD_SIZE={world}; "
                            f"launch with `torchrun --nproc_per_node=N -m ganforge train ...`")
    return rank, world, local


def setup(device: torch.device) -> tuple[DistEnv, torch.device]:
    """Join the torchrun job (if any): init the process group (NCCL on CUDA, gloo on CPU) and return the
    DistEnv and this process's device (cuda:LOCAL_RANK on GPUs). Outside torchrun nothing happens."""
    rank, world, local = from_env()
    if world == 1:
        return DistEnv(), device
    if not dist.is_available():
        raise GanforgeError("this PyTorch build has no torch.distributed; run without torchrun")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise GanforgeError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPUs are visible; "
                                f"use --nproc_per_node <= {torch.cuda.device_count()}")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # a generous timeout: rank 0 alone writes samples/checkpoints while the others wait at the next collective
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        # one group per process, left at exit: later Trainers in the same process (train, then resume) reuse
        # it, because re-creating a group on the same MASTER_PORT can deadlock the rendezvous
        atexit.register(shutdown)
    elif dist.get_world_size() != world:
        raise GanforgeError(f"a process group of size {dist.get_world_size()} already exists, "
                            f"but WORLD_SIZE={world}")
    return DistEnv(rank, world, local, dist.get_backend()), device


def shutdown(timeout_s: float = 30.0) -> None:
    """Leave the job: wait for every rank (gloo), then destroy the group. Runs at exit (atexit), while the
    interpreter is still whole; a script that uses the group itself may call it first.

    Why the wait: a gloo worker thread drops its last reference to a collective's tensors a moment after the
    collective returns, and that decref takes the GIL. If the interpreter is already finalizing by then, the
    thread is unwound through C++ code that cannot unwind: "terminate called without an active exception",
    SIGABRT, and torchrun reports a failed job after a finished training (seen on a busy 2-core machine,
    where that thread can be descheduled for longer than the exit takes). The barrier is a round trip to
    every peer after the last collective, so each rank's threads have had that long to let go; it also keeps
    a rank from tearing its connections down while a slower peer still talks to it. monitored_barrier's
    timeout lets a rank whose peer has failed still exit (the error is the peer's, already reported)."""
    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        with contextlib.suppress(RuntimeError):
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=timeout_s))
    dist.destroy_process_group()


class Gate:
    """The order of first writes under torchrun: api.train/resume check the run folder on rank 0, build the
    Trainer on every rank, then rank 0 writes config.json. Barrier 1 (here): every rank has built its Trainer
    before rank 0 writes. Barrier 2 (the other ranks here, rank 0 at its first step, save or fit: `release`):
    no other rank trains, saves or reads the run folder before rank 0 has written it."""

    def __init__(self, env: DistEnv):
        self.env = env
        barrier(env)
        self.holding = env.enabled and env.is_main
        if env.enabled and not env.is_main:
            barrier(env)

    def release(self) -> None:
        if self.holding:
            self.holding = False
            barrier(self.env)


def local_state(batches) -> dict:
    """This process's data position and RNG states: what a checkpoint keeps for each rank."""
    return {"batches": batches.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}}


def restore_local(state: dict, rank: int, seed: int, batches) -> None:
    """Restore this rank's part of a checkpoint (rank 0's at the top level, the others' in `ranks`). A rank
    the checkpoint did not have (resumed with more processes) starts a fresh stream of its own."""
    others = state.get("ranks", [])
    mine = state if rank == 0 else (others[rank - 1] if rank - 1 < len(others) else None)
    if mine is None:
        mine = {"batches": state["batches"], "rng": {"torch": torch.Generator().manual_seed(
            seed + 1_000_003 * rank + int(state["step"])).get_state(), "cuda": []}}
    batches.load_state_dict(mine["batches"])
    torch.set_rng_state(mine["rng"]["torch"])
    if mine["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["rng"]["cuda"])


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


# -- synchronized BatchNorm -------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x; every rank's loss depends on every x_r, so dL/dx_r = sum over ranks of dL/dy."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the union batch over all processes.

    torch.nn.SyncBatchNorm runs on GPUs only; this one works on any device (gloo on CPU): the per-channel
    sums S1 = sum x, S2 = sum x^2 and the count n are summed over ranks with a differentiable all-reduce,
    mean = S1/n, var = S2/n - mean^2 (in fp32), so the backward pass carries the cross-rank terms too.
    Same parameters and buffers as nn.BatchNorm*d: checkpoints are interchangeable.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c, dims = x.shape[1], [0] + list(range(2, x.dim()))
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_full((1,), xf.numel() / c)])
        total = _AllReduceSum.apply(local)              # differentiable: backward all-reduces the gradient
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1.0), m)   # unbiased, as torch
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm{1,2,3}d by a synchronized one (torch's SyncBatchNorm on CUDA)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        new = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, sync_batchnorm(child, device))
    return module


# -- DDP wrappers driven per phase --------------------------------------------------------------------------
class _DDP(DistributedDataParallel):
    """DDP that forwards unknown attributes to the wrapped net, so recipes may call nets["D"].features(x)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _flat_all_reduce_mean(grads: list[Tensor], world_size: int) -> None:
    # one collective per dtype: flatten, sum, divide, copy back
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat.div_(world_size)
        offset = 0
        for g in group:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def _no_forward_buffer_sync() -> dict:
    import inspect
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


class Replicas:
    """The nets as the phases see them: DDP-wrapped when world_size > 1, the nets themselves otherwise.

    `phase(names)` is a context for one update of the player owning `names`; `finish(names)` runs after its
    backward and averages the gradients DDP did not (nets the recipe reached only through other methods).
    """

    def __init__(self, nets: nn.ModuleDict, env: DistEnv, device: torch.device):
        self.env = env
        self._engaged: set[str] = set()
        if not env.enabled:
            self.nets = nets
            return
        self.nets = nn.ModuleDict()
        for name, net in nets.items():
            if not any(p.requires_grad for p in net.parameters()):
                self.nets[name] = net
                continue
            # find_unused_parameters: a phase may leave some of a player's weights unused (inactive
            # resolutions of a growing net, a head only one phase reads). Buffers are synced once at start, not
            # at every forward: BatchNorm running statistics then stay per rank (they only matter in eval mode,
            # and rank 0's are the ones saved), and a forward never waits for the other ranks
            ddp = _DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                       find_unused_parameters=True, **_no_forward_buffer_sync())
            ddp.register_forward_pre_hook(lambda _m, _a, name=name: self._mark(name))
            self.nets[name] = ddp

    def _mark(self, name: str) -> None:
        if torch.is_grad_enabled():
            self._engaged.add(name)

    @contextlib.contextmanager
    def phase(self, player_nets: Iterable[str]):
        self._engaged.clear()
        with contextlib.ExitStack() as stack:
            if self.env.enabled:
                player_nets = set(player_nets)
                for name, net in self.nets.items():
                    if isinstance(net, DistributedDataParallel) and name not in player_nets:
                        stack.enter_context(net.no_sync())   # frozen this phase: expect no reduction
            yield self.nets

    def finish(self, player_nets: Iterable[str]) -> None:
        if not self.env.enabled:
            return
        grads = [p.grad for name in player_nets if name not in self._engaged
                 for p in self.nets[name].parameters() if p.grad is not None]
        # every rank runs the same phases, so all take this branch together (no rank waits alone)
        if grads:
            _flat_all_reduce_mean(grads, self.env.world_size)


# -- cross-rank values ----------------------------------------------------------------------------------------
def mean_over_ranks(values: dict[str, Tensor], env: DistEnv) -> dict[str, Tensor]:
    """Average logged scalars over processes (one all-reduce), so every rank sees the same numbers."""
    if not env.enabled or not values:
        return values
    keys = sorted(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if env.backend == "nccl":
        flat = flat.cuda()
    dist.all_reduce(flat)
    flat = flat.div_(env.world_size).cpu()
    return {k: flat[i] for i, k in enumerate(keys)}


def gather_state(local: Any, env: DistEnv) -> list[Any]:
    """Every rank's `local` (RNG state, data position), in rank order; [local] when not distributed."""
    if not env.enabled:
        return [local]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, local)
    return out
