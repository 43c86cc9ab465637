"""What a GAN family is to the trainer: a config, networks, and an update schedule given as data (DESIGN §3).

A recipe never calls backward() or step(): it returns Phases, each naming the player whose parameters it
updates and a loss function; the trainer runs them. `repeat` gives k discriminator updates per generator
update (Goodfellow 2014, Algorithm 1; WGAN's n_critic) and `every` gives lazy regularization.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..config import check_choices, choice
from ..errors import GanforgeError

Nets = nn.ModuleDict


@dataclass
class Phase:
    name: str                      # log prefix: "D", "G", "D_r1", ...
    player: str                    # key of Recipe.players: whose parameters this phase updates
    loss: Callable[[Nets, "StepContext"], dict[str, Tensor]]   # returns {"loss": scalar, ...logs}
    every: int = 1                 # run when step % every == 0 (lazy regularization)
    repeat: int = 1                # consecutive updates on fresh batches (k of Goodfellow's Algorithm 1)
    after_update: Callable[[Nets], None] | None = None         # e.g. WGAN weight clipping


class StepContext:
    """What a phase's loss sees: the step, a lazily drawn real batch, and noise on the right device."""

    def __init__(self, step: int, draw: Callable[[], dict[str, Tensor]], device: torch.device, batch_size: int,
                 repeat: int = 0, shared: dict | None = None):
        self.step = step
        self.repeat = repeat          # which of the phase's `repeat` updates this is (0-based)
        self.shared = {} if shared is None else shared   # tensors one phase of a step hands to the next
        self.device = device
        self.batch_size = batch_size
        self._draw = draw
        self._batch: dict[str, Tensor] | None = None

    @property
    def batch(self) -> dict[str, Tensor]:
        # drawn on first use, so a G phase that needs no real data consumes none
        if self._batch is None:
            self._batch = self._draw()
        return self._batch

    @property
    def real(self) -> Tensor:
        return self.batch["real"]

    @property
    def labels(self) -> Tensor | None:
        return self.batch.get("label")


@dataclass
class RecipeConfig:
    """Training fields shared by every recipe; a recipe subclasses it with its paper's knobs and defaults."""
    data: str = "digits"              # data spec (`ganforge list` shows them)
    resolution: int = 0               # image side in pixels; 0 = the recipe's default for the data
    channels: int = 0                 # 1 or 3; 0 = the data's own
    steps: int = 2000                 # generator updates (trainer iterations)
    batch_size: int = 64
    seed: int = 0
    device: str = choice("auto", "cpu", "cuda")
    precision: str = choice("auto", "fp32", "bf16", "fp16")   # autocast dtype; auto: docs/performance.md
    threads: int = 0                  # CPU threads; 0 = OMP_NUM_THREADS or this process's share of its cores
    z_dim: int = 100                  # latent size
    optimizer: str = choice("adam", "sgd", "rmsprop")
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, ...] = (0.5, 0.999)   # Adam (beta1, beta2)
    momentum: float = 0.9             # SGD momentum (Goodfellow 2014 used SGD with momentum)
    lr_decay_start: float = 1.0       # fraction of steps after which every lr decays linearly to 0; 1 = constant
    ema_decay: float = 0.0            # EMA of G's weights per G update; 0 = off (e.g. 0.999)
    label_smoothing: float = 0.0      # one-sided: real target 1 - s (Salimans 2016 §3.4)
    sample_every: int = 500           # steps between fixed-noise sample grids
    checkpoint_every: int = 1000      # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3         # newest step-NNNNNN folders kept (latest and best always); 0 = keep all
    log_every: int = 50               # steps between metrics.jsonl rows
    num_samples: int = 64             # images in a sample grid (point data: at least 2,000 in its scatter)
    skip_bad: bool = False            # skip unreadable images (counted) instead of failing
    download: bool = False            # allow downloading data sets named by mnist:/cifar10: specs
    eval_every: int = 0               # steps between evaluations during training (keeps checkpoints/best); 0 = off
    eval_metric: str = "fid"          # the metric that decides "best" (fid, kid, pr, is, acc, modes ...)
    eval_num: int = 1000              # generated samples per evaluation
    compile: bool = False             # torch.compile the nets the phases call (opt-in; pays off on GPUs)
    sync_bn: bool = False             # under torchrun: BatchNorm statistics over all processes

    def check(self) -> None:
        check_choices(self)          # every choice() field, in this class and the recipe's
        if not 0 <= self.lr_decay_start <= 1:
            raise GanforgeError(f"config key 'lr_decay_start' must be in [0, 1]; got {self.lr_decay_start}")
        if self.threads < 0:
            raise GanforgeError(f"config key 'threads' must be >= 0 (0 = every core this process may use); "
                                f"got {self.threads}")
        if self.eval_every < 0:
            raise GanforgeError(f"config key 'eval_every' must be >= 0; got {self.eval_every}")
        if self.keep_checkpoints < 0:
            raise GanforgeError(f"config key 'keep_checkpoints' must be >= 0 (0 keeps every checkpoint); "
                                f"got {self.keep_checkpoints}")
        # caught here, before the data is loaded: a negative size otherwise fails deep inside the resize
        if self.resolution < 0:
            raise GanforgeError(f"config key 'resolution' must be >= 0 (0 = the recipe's default for the data); "
                                f"got {self.resolution}")
        if self.channels not in (0, 1, 3):
            raise GanforgeError(f"config key 'channels' must be 0 (the data's own), 1 or 3; got {self.channels}")
        for key in ("steps", "batch_size", "sample_every", "checkpoint_every", "log_every", "num_samples", "eval_num"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")


def lr_factor(step: int, steps: int, decay_start: float) -> float:
    """The learning-rate multiplier at `step`: 1 until step `start` = round(decay_start * steps), then linear
    towards 0 - CycleGAN's 1 - max(0, epoch - n_epochs) / (n_epochs_decay + 1) with steps for epochs (Zhu 2017,
    Sec. 4), > 0 at the last step. A pure function of the step, so a resumed run follows it exactly."""
    start = round(decay_start * steps)
    return 1.0 - max(0, step - start) / (steps - start + 1)


class Recipe:
    """Base class: subclass, set `Config`, implement build/phases/generate, and `@register` it."""
    name = "base"
    Config = RecipeConfig
    presets: dict[str, dict[str, Any]] = {}          # preset name -> overrides of Config's defaults
    players: dict[str, tuple[str, ...]] = {"G": ("G",), "D": ("D",)}
    ema: str | None = "G"                            # which net EMA tracks, when cfg.ema_decay > 0
    smoke: dict[str, Any] = {}                       # overrides for the every-recipe test (tiny data/nets)

    def __init__(self, cfg: RecipeConfig, info):
        self.cfg = cfg
        self.info = info

    # -- to implement ---------------------------------------------------------------------------------------
    def build(self) -> Nets:
        raise NotImplementedError(f"{type(self).__name__}.build")

    def phases(self, step: int) -> list[Phase]:
        raise NotImplementedError(f"{type(self).__name__}.phases")

    # -- sampling: z -> data space, used by grids, `ganforge sample` and ganforge.load ---------------------
    def noise(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.cfg.z_dim, device=device, generator=generator)

    def generate(self, G: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return G(z)

    conditional = False                              # True: generate() needs labels (class ids, captions...)
    sample_kwargs: tuple[str, ...] = ()              # extra keyword arguments generate() accepts (truncation)

    def sample_labels(self, n: int, labels=None) -> Tensor | None:
        """Conditions for n samples: None when unconditional; class ids cycle 0..K-1 unless given."""
        k = self.info.num_classes
        if not self.conditional:
            if labels is not None:
                raise GanforgeError(f"this {self.name} generator is unconditional; drop --label")
            return None
        if labels is None:
            return torch.arange(n) % k
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        labels = labels.expand(n) if labels.numel() == 1 else labels
        if labels.numel() != n or labels.min() < 0 or labels.max() >= k:
            raise GanforgeError(f"label must be in 0..{k - 1} (one, or one per sample); got {labels.tolist()[:5]}")
        return labels

    # -- optimizers (the trainer owns them; a recipe only says which) -----------------------------------------
    def lr(self, player: str) -> float:
        return self.cfg.g_lr if player.startswith("G") else self.cfg.d_lr

    def optimizer(self, player: str, params) -> torch.optim.Optimizer:
        c, lr = self.cfg, self.lr(player)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=c.momentum)
        if c.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        return torch.optim.Adam(params, lr=lr, betas=tuple(c.betas[:2]))

    # -- recipe state beyond weights/optimizers (history pools, ...): tensors only, for exact resume -------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # -- extra pictures at sample time (e.g. the GAN paper's Figure 1) ---------------------------------------
    def visualize(self, nets: Nets, out_dir, step: int) -> None:
        pass
