"""What a GAN family is to the trainer: a config, networks, and an update schedule given as data (DESIGN §3).

A recipe never calls backward() or step(): it returns Phases, each naming the player whose parameters it
updates and a loss function; the trainer runs them. `repeat` gives k discriminator updates per generator
update (Goodfellow 2014, Algorithm 1; WGAN's n_critic) and `every` gives lazy regularization.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..config import TrainConfig, choice
from ..data import resolve
from ..data.base import Domain
from ..errors import GanforgeError
from ..registry import RECIPES

Nets = nn.ModuleDict


@dataclass
class Phase:
    name: str                      # log prefix: "D", "G", "D_r1", ...
    player: str                    # key of Recipe.players: whose parameters this phase updates
    loss: Callable[[Nets, "StepContext"], dict[str, Tensor]]   # returns {"loss": scalar, ...logs}
    every: int = 1                 # run when step % every == 0: lazy regularization (lazy_correction)
    repeat: int = 1                # consecutive updates on fresh batches (k of Goodfellow's Algorithm 1)
    after_update: Callable[[Nets], None] | None = None         # e.g. WGAN weight clipping


def eager(nets: Nets) -> dict[str, nn.Module]:
    """The nets without torch.compile's wrapper (compile=true wraps the phases' nets; `_orig_mod` is where
    torch keeps the module): AOT autograd has no double backward, so R1, R2 and gradient penalties run D
    eagerly while the other passes stay compiled."""
    return {k: getattr(v, "_orig_mod", v) for k, v in nets.items()}


def lazy_correction(opt: torch.optim.Optimizer, every: int) -> None:
    """StyleGAN2's lazy regularization (Karras et al. 2020, arXiv:1912.04958, §3.1, and its reference code's
    rule): a phase run every k steps stands for k steps, so the trainer multiplies its loss by k, and its
    player's optimizer runs at lr * c with Adam's betas ** c, c = k / (k + 1), so that the moments and the
    step size per image match an optimizer that saw the regularizer at every step. Adam/AdamW only, as there."""
    if not isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)):   # the rule is Adam's: others run as given
        return
    c = every / (every + 1)
    for group in [*opt.param_groups, opt.defaults]:
        group["lr"] = group["lr"] * c
        group["betas"] = tuple(b ** c for b in group["betas"])


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
class RecipeConfig(TrainConfig):
    """A recipe's config: the trainer's settings (config.TrainConfig) and the knobs every family's paper sets;
    a recipe subclasses it with its own knobs and defaults. One flat set of keys (config.json, key=value)."""
    z_dim: int = 100                  # latent size
    optimizer: str = choice("adam", "sgd", "rmsprop")
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, ...] = (0.5, 0.999)   # Adam (beta1, beta2)
    momentum: float = 0.9             # SGD momentum (Goodfellow 2014 used SGD with momentum)
    lr_decay_start: float = 1.0       # fraction of steps after which every lr decays linearly to 0; 1 = constant
    ema_decay: float = 0.0            # EMA of G's weights per G update; 0 = off (e.g. 0.999)
    label_smoothing: float = 0.0      # one-sided: real target 1 - s (Salimans 2016 §3.4)

    def check(self) -> None:
        super().check()
        if not 0 <= self.lr_decay_start <= 1:
            raise GanforgeError(f"config key 'lr_decay_start' must be in [0, 1]; got {self.lr_decay_start}")


def lr_factor(step: int, steps: int, decay_start: float) -> float:
    """The learning-rate multiplier at `step`: 1 until step `start` = round(decay_start * steps), then linear
    towards 0 - CycleGAN's 1 - max(0, epoch - n_epochs) / (n_epochs_decay + 1) with steps for epochs (Zhu 2017,
    Sec. 4), > 0 at the last step. A pure function of the step, so a resumed run follows it exactly."""
    start = round(decay_start * steps)
    return 1.0 - max(0, step - start) / (steps - start + 1)


class Recipe:
    """What a GAN family is to ganforge: a config, networks, an update schedule, and how to sample from them.

    Subclass, set `Config`, implement build() and phases(), and register it (`@ganforge.register("name")`);
    everything else has a default, overridden where the family differs.

    Declared by the class
      name, Config       registry name (set by register) and the RecipeConfig subclass with the paper's knobs
      presets, smoke     preset name -> overrides of Config's defaults; overrides for tiny every-recipe tests
      players            player -> the nets its optimizer updates; every Phase names its player
      sampler            the net generate() is given: sample grids, ganforge.load, export, eval, checkpoints/best
      ema                the net whose weights EMA averages when cfg.ema_decay > 0 (default: the sampler, which
                         is then read from its EMA copy; checkpoints hold it as ema.<name>.*)
      conditional        generate() needs labels (class ids, captions); sample_labels() makes them
      sample_kwargs      keyword arguments generate() accepts beyond (G, x, labels), e.g. stylegan's truncation

    Training      build() -> nets; phases(step) -> [Phase]; lr(player), optimizer(player, params);
                  optimizer_schedule(step), ema_decay(step): optimizer settings and EMA decay by step;
                  state_dict() / load_state_dict(): recipe state beyond weights and optimizers (exact resume)
    Sampling      sample_inputs(n, generator) -> x: what generate() maps to n samples (the fixed sample grid,
                  ganforge.load(...).sample, eval); sample_labels(n, labels) -> their conditions;
                  generate(G, x, labels) -> samples in data space. noise(n, device, generator) is the latent
                  z ~ N(0, I): sample_inputs' default, and what losses draw; ImageToImage recipes have none.
    Run hooks     describe_data() -> dict: once, when ganforge.train starts a run; merged into config.json's
                  data_info.extra, which a resumed or loaded run reads back (srgan: which feature net)
                  startup_notes(steps) -> warnings printed as training starts (progan: a growth the steps
                  cannot finish); watch(row) -> a warning on a log row, or None (adversarial: overfitting D)
                  on_sample_step(nets, plots_dir, step): at every sample step, after the grid: the recipe's own
                  pictures (gan's Figure 1, translation rows, refined pairs) and readout logs (dann's
                  accuracy.jsonl, ssgan's test_error.jsonl) under plots/; nothing is logged to metrics.jsonl
    More data     data_split(split) and domain(spec, split): the only way a recipe reads data beyond the
                  trainer's batches (a held-out split, a labelled subset, a second image domain)
    Kinds         declared by subclassing, checked with isinstance: ImageToImage (inputs are images),
                  Translator (`ganforge translate`), Upscaler (`ganforge upscale`), TextConditional
                  (`ganforge sample --text`)
    """
    name = "base"
    Config = RecipeConfig
    presets: dict[str, dict[str, Any]] = {}          # preset name -> overrides of Config's defaults
    smoke: dict[str, Any] = {}                       # overrides for the every-recipe test (tiny data/nets)
    players: dict[str, tuple[str, ...]] = {"G": ("G",), "D": ("D",)}
    sampler: str = "G"                               # the net generate() is given (sample grids, ganforge.load)
    conditional = False                              # True: generate() needs labels (class ids, captions...)
    generates = True                                 # False: a model with nothing to sample (dann's classifier)
    sample_kwargs: tuple[str, ...] = ()              # extra keyword arguments generate() accepts (truncation)

    @property
    def ema(self) -> str | None:
        """Which net EMA tracks when cfg.ema_decay > 0: the sampler, unless a subclass sets `ema = "name"`
        (or None: no EMA)."""
        return self.sampler

    smooths_labels = False                           # applies cfg.label_smoothing (AdversarialRecipe does)

    def __init__(self, cfg: RecipeConfig, info):
        self.cfg = cfg
        self.info = info
        if cfg.label_smoothing and not self.smooths_labels:    # a key a family ignores must not pass silently
            users = ", ".join(sorted(n for n, cls in RECIPES.items() if cls.smooths_labels))
            raise GanforgeError(f"label_smoothing is applied by {users}; {self.name} does not use it: drop "
                                f"label_smoothing={cfg.label_smoothing}")

    # -- to implement ---------------------------------------------------------------------------------------
    def build(self) -> Nets:
        raise NotImplementedError(f"{type(self).__name__}.build")

    def phases(self, step: int) -> list[Phase]:
        raise NotImplementedError(f"{type(self).__name__}.phases")

    # -- sampling: inputs -> data space, for grids, `ganforge sample`, ganforge.load and eval -------------
    def noise(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        """Latent noise z ~ N(0, I), n x z_dim."""
        return torch.randn(n, self.cfg.z_dim, device=device, generator=generator)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """What generate() maps to n samples, on the CPU: latent noise here; images for ImageToImage recipes."""
        return self.noise(n, "cpu", generator=generator)

    def generate(self, G: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return G(z)

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

    def optimizer_schedule(self, step: int) -> dict[str, dict[str, float]]:
        """Optimizer settings the recipe varies with the step, per player: {"lr": multiplier of the player's lr,
        "beta2": Adam's beta2} (r3gan's cosine schedules); {} = none. A pure function of the step, so a resumed
        run follows it exactly; the trainer applies it on top of lr_decay_start and the lazy correction."""
        return {}

    def ema_decay(self, step: int) -> float:
        """The EMA decay after the update at `step` (EMA is on when cfg.ema_decay > 0): cfg.ema_decay; r3gan
        ramps it up (a pure function of the step, like optimizer_schedule())."""
        return self.cfg.ema_decay

    # -- recipe state beyond weights/optimizers (history pools, ...): tensors only, for exact resume -------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def fixed(self, nets: Nets) -> list[nn.Module]:
        """Parts of the players' nets that no optimizer updates (requires_grad off; an EMA copies them as they
        are): text2image's text encoders once they are taken from its pretraining."""
        return []

    # -- run hooks -------------------------------------------------------------------------------------------
    def describe_data(self) -> dict[str, Any]:
        """Facts about this run's inputs to record in config.json's data_info.extra (ganforge.train merges them
        in once, before writing it); a resumed or loaded run finds them in self.info.extra."""
        return {}

    def startup_notes(self, steps: int) -> list[str]:
        """Warnings printed once when training starts toward `steps` (e.g. a schedule the steps cannot finish)."""
        return []

    def watch(self, row: dict) -> str | None:
        """Called with every log row; a warning to print (once: the recipe keeps track), or None."""
        return None

    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        """Called at every sample step after the sample grid is written: extra pictures and readout logs
        under plots_dir (plots/). Draw from seeded generators and in eval mode: it must not move training."""

    # -- data beyond the trainer's batches ------------------------------------------------------------------
    def data_split(self, split: str):
        """(Data, DataInfo) of cfg.data's `split` ("train" or "test"), read as the trainer reads its data: at
        the trained resolution, with cfg's channels, skip_bad and download."""
        c, info = self.cfg, self.info
        resolution = info.shape[-1] if info.kind == "image" else (c.resolution or None)
        return resolve(c.data, split=split, resolution=resolution, channels=c.channels or None,
                       skip_bad=c.skip_bad, download=c.download)

    def domain(self, spec: str, split: str = "train") -> Domain:
        """Another image data set, named by a config key (dann's labelled source, simgan's synthetic images),
        brought to the trained (C, H, W)."""
        return Domain(spec, self.info.shape, split=split)


class ImageToImage(Recipe):
    """A recipe whose generate() maps images to images: sample_inputs() draws input images (held-out test
    inputs, synthetic images, source-domain images) and there is no latent noise to draw, walk or invert."""

    def noise(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        raise GanforgeError(f"{self.name} maps images to images: it has no latent noise (z) to draw")

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.sample_inputs")


class Translator(ImageToImage):
    """Image -> image on data with two domains ("cond" = A, "real" = B): what `ganforge translate` runs.

    A translator says which directions it was trained for (directions(); the first is the one sample grids
    show), which net maps each (translator()), what input shape it takes (input_shape()), which input sizes
    it accepts (check_size()), and how a batch splits into (input, target) (split()). The defaults here fit
    a one-direction model whose generator is the sampler; sample grids translate held-out inputs of the data
    spec's test split, and on_sample_step draws rows of (input, output, target)."""

    def directions(self) -> tuple[str, ...]:
        """The directions ("AtoB", "BtoA") this model translates; the first is the one sample grids show."""
        return ("AtoB",)

    def translator(self, direction: str | None = None) -> str:
        """Name of the net that maps `direction`'s input domain to its output domain."""
        return self.sampler

    def split(self, batch: dict[str, Tensor], direction: str = "AtoB") -> tuple[Tensor, Tensor]:
        """(input, target) of a batch: "cond" is domain A, "real" domain B."""
        a, b = batch["cond"], batch["real"]
        return (a, b) if direction == "AtoB" else (b, a)

    def input_shape(self, direction: str | None = None) -> tuple[int, ...]:
        a, b = tuple(self.info.extra["cond_shape"]), tuple(self.info.shape)
        return a if (direction or self.directions()[0]) == "AtoB" else b

    def tile(self) -> int | None:
        """How `ganforge translate` runs G on an image of any size: on overlapping square tiles of this side
        (a generator built for one input size, such as pix2pix's U-Net, whose innermost layer sees the whole
        training crop), or, when None, on the whole image padded to a multiple of multiple() (a fully
        convolutional one). Either way the output keeps the input's size and aspect ratio."""
        return self.input_shape()[-1]

    def multiple(self) -> int:
        """What the sides of a whole image are padded to a multiple of (tile() None); the padding is cropped
        off the output."""
        return 1

    def check_size(self, h: int, w: int) -> None:
        """Refuse an input of h x w pixels the generator cannot take (one line)."""
        if min(h, w) < 2:
            raise GanforgeError(f"image of {w}x{h} px is too small to translate (need at least 2x2)")

    def held_out(self) -> dict[str, Tensor]:
        """The whole test split (train split when the data has none), at most 256 samples, cached."""
        if getattr(self, "_held_out", None) is None:
            try:
                data, _ = self.data_split("test")
            except GanforgeError:
                data, _ = self.data_split("train")
            n = min(len(data), 256)
            self._held_out = data.batch(torch.arange(n))
        return self._held_out

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        x, _ = self.split(self.held_out(), self.directions()[0])
        idx = torch.randperm(len(x), generator=generator)[:n]
        if n > len(idx):   # fewer test images than asked: repeat them
            idx = idx[torch.arange(n) % len(idx)]
        return x[idx]

    def generate(self, G: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
        # a fixed seed for test-time dropout, on a forked RNG: drawing sample grids must not move the
        # training RNG, or a resumed run would differ from an uninterrupted one
        devices = [z.device] if z.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            return G(z)

    @torch.no_grad()
    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        """plots/translations-step-N.png: labelled columns input | output | target for 8 held-out samples."""
        from ..viz import save_columns
        direction = self.directions()[0]
        name = self.translator(direction)
        G, was = nets[name], nets[name].training
        x, y = self.split({k: v[:8] for k, v in self.held_out().items()}, direction)
        device = next(G.parameters()).device
        G.eval()
        fake = self.generate(G, x.to(device)).float().cpu()
        G.train(was)
        x = nn.functional.interpolate(x, size=fake.shape[-2:], mode="nearest")    # an upscaler's small input
        save_columns({"input": x, "output": fake, "target": y}, f"{plots_dir}/translations-step-{step:06d}.png")


class Upscaler(Translator):
    """A translator whose output is its input enlarged (super-resolution): `ganforge upscale` runs it, and
    `ganforge translate` sends users there. Its generator is fully convolutional (no tiles)."""

    def tile(self) -> int | None:
        return None


class TextConditional(Recipe):
    """generate() is conditioned on captions: sample_labels() takes text (one caption, or one per sample) and
    encode_text() turns captions into the token ids generate() takes (`ganforge sample --text`)."""
    conditional = True

    def encode_text(self, texts: list[str]) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.encode_text")
