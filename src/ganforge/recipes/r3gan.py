"""`r3gan` - the modern GAN baseline (Huang, Gokaslan, Kuleshov & Tompkin 2024, "The GAN is dead; long live the
GAN!", arXiv:2501.05441; reference code brownvc/R3GAN).

The loss is RpGAN + R1 + R2 (eq. 4 of the paper):
    L_D = E softplus(-(D(x_r) - D(G(z)))) + gamma/2 E_real ||grad D||^2 + gamma/2 E_fake ||grad D||^2
    L_G = E softplus(-(D(G(z)) - D(x_r)))
(losses.ADVERSARIAL["rpgan"], the AdversarialRecipe's r1_gamma / r2_gamma, both usable by every family), and
the nets are models/r3gan.py's norm-free ResNets. No trick of the StyleGAN line is needed: no mapping network,
no style injection, no minibatch stddev, no path length or lazy regularisation, no normalisation.

Schedules, all pure functions of the step (so a resumed run is bit-identical), as the reference config sets
them over `decay_steps` (0 = the whole run), each following half a cosine from its start to its end value:
  lr       g_lr, d_lr        -> x lr_final        (2e-4 -> 5e-5 in every reference preset)
  beta2    betas[1]          -> beta2_final       (0.9 -> 0.99; beta1 = 0)
  gamma    r1_gamma, r2_gamma -> x gamma_final    (e.g. 0.05 -> 0.005 on CIFAR-10)
  EMA      half-life in images 0 -> that of ema_decay at this batch size (h = -B ln 2 / ln d)
  augment  p 0 -> augment_p  (applied to the diff_augment policy; the reference uses ADA's pipeline)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..errors import GanforgeError
from ..models.r3gan import R3Discriminator, R3Generator, check_widths
from ..registry import RECIPES
from .adversarial import AdversarialConfig, AdversarialRecipe


@dataclass
class R3GANConfig(AdversarialConfig):
    data: str = "digits"
    resolution: int = 16
    z_dim: int = 64                   # the paper's noise size (every preset)
    loss: str = "rpgan"
    r1_gamma: float = 0.1
    r2_gamma: float = 0.1
    optimizer: str = "adam"
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, ...] = (0.0, 0.9)   # beta1 = 0 (the paper), beta2 starts at 0.9
    reuse_fake: bool = True
    # the EMA decay the half-life ramp ends at (0 = no EMA): 0.99 = a half-life of 69 steps, ~2% of the default
    # run, as the reference's 5M images are of a CIFAR-10 run (0.999 here kept the EMA near step-200 weights
    # through a 600-step run)
    ema_decay: float = 0.99
    # CPU-sized by default (the reference: 2 blocks per stage and 768 channels on CIFAR-10, the cifar10 preset)
    widths: tuple[int, ...] = (32,)   # channels per stage from 4x4 up; one value = every stage
    blocks: int = 1                   # residual blocks per stage
    expansion: int = 2                # inverted bottleneck: 1x1 conv to expansion x the width
    group_size: int = 16              # channels per group of the 3x3 conv
    conditional: bool = False         # class-conditional G and projection D (needs labelled data)
    lr_final: float = 0.25            # the lr schedule ends at lr x lr_final
    beta2_final: float = 0.99         # the beta2 schedule ends here
    gamma_final: float = 0.1          # the gamma schedule ends at gamma x gamma_final
    decay_steps: int = 0              # horizon of every schedule in steps; 0 = steps
    steps: int = 3000
    batch_size: int = 64

    def check(self) -> None:
        super().check()
        for key in ("blocks", "expansion", "group_size"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")
        if not self.widths or min(self.widths) < 1:
            raise GanforgeError(f"config key 'widths' must list positive channel counts; got {self.widths}")
        for key in ("lr_final", "gamma_final", "decay_steps"):
            if getattr(self, key) < 0:
                raise GanforgeError(f"config key {key!r} must be >= 0; got {getattr(self, key)}")
        if not 0 <= self.beta2_final < 1:
            raise GanforgeError(f"config key 'beta2_final' must be in [0, 1); got {self.beta2_final}")
        if not 0 <= self.ema_decay < 1:
            raise GanforgeError(f"config key 'ema_decay' must be in [0, 1); got {self.ema_decay}")
        if self.optimizer != "adam":
            raise GanforgeError(f"r3gan schedules Adam's beta2; optimizer={self.optimizer} has none: use adam")
        if self.conditional and (self.minibatch_discrimination or self.mbstd):
            raise GanforgeError("a conditional r3gan's D head is a projection embedding; mbstd and "
                                "minibatch_discrimination replace it with a single logit: drop them")


def cosine(step: int, horizon: int, start: float, end: float) -> float:
    """start -> end along half a cosine over `horizon` steps, then end (the reference's cosine decay, no
    warm-up): start + (end - start) (1 - cos(pi t)) / 2, t = step / horizon."""
    t = min(step / horizon, 1.0)
    return start + (end - start) * 0.5 * (1 - math.cos(math.pi * t))


@RECIPES.register("r3gan")
class R3GAN(AdversarialRecipe):
    name = "r3gan"
    Config = R3GANConfig
    presets = {
        "digits": {},                                                    # 16 px (upsampled), 3,000 steps
        # the 48k-image budget of progression.py fid; seed 0 (docs/r3gan.md): lr 2e-4 / gamma 0.1 FID 153, lr 2e-4 /
        # gamma 1 133 (D separates every pair from step ~700), lr 1e-3 / gamma 1 40.1, gamma 3 36.1,
        # lr 2e-3 / gamma 1 19.3
        "digits32": {"resolution": 32, "steps": 1500, "batch_size": 32, "g_lr": 2e-3, "d_lr": 2e-3,
                     "r1_gamma": 1.0, "r2_gamma": 1.0},
        # seed 0, 3,000 steps (docs/r3gan.md): gamma 0.1 / 1 / 10 covered 539 / 658 / 869 of 1,000 modes at widths
        # 32; widths 64 with gamma 10: 991 modes, KL 0.30 (6,000 steps: 993, 0.35)
        "digits:stacked": {"data": "digits:stacked", "resolution": 8, "steps": 3000, "widths": (64,),
                           "r1_gamma": 10.0, "r2_gamma": 10.0},
        "shapes": {"data": "shapes", "resolution": 32, "steps": 3000, "batch_size": 32},
        # GPU presets: the reference's CIFAR10 and FFHQ-256 settings (train.py; decay over 2e7 images); the
        # DiffAugment policy stands in for ADA's pipeline
        "cifar10": {"data": "cifar10:data/cifar10", "resolution": 32, "conditional": True, "batch_size": 512,
                    "widths": (768,), "blocks": 2, "r1_gamma": 0.05, "r2_gamma": 0.05, "ema_decay": 0.5 ** (512 / 5e6),
                    "diff_augment": "color,translation,cutout", "augment_p": 0.55, "decay_steps": 39063,
                    "steps": 390625},
        "ffhq256": {"data": "folder:data/ffhq256", "resolution": 256, "batch_size": 256,
                    "widths": (768, 768, 768, 768, 384, 192, 96), "blocks": 2, "r1_gamma": 150.0,
                    "r2_gamma": 150.0, "ema_decay": 0.5 ** (256 / 5e5), "diff_augment": "color,translation,cutout",
                    "augment_p": 0.3, "decay_steps": 78125, "steps": 781250},
    }
    smoke = {"resolution": 8, "widths": (16,), "blocks": 1, "batch_size": 8}

    @property
    def conditional(self) -> bool:
        return self.cfg.conditional

    def build_nets(self, info) -> nn.ModuleDict:
        c = self.cfg
        if info.kind != "image":
            raise GanforgeError(f"r3gan works on images; {info.spec!r} holds {info.kind}. For points use "
                                f"`gan loss=rpgan r1_gamma=... r2_gamma=...`")
        k = info.num_classes if c.conditional else 0
        if c.conditional and k < 2:
            raise GanforgeError(f"conditional=true needs labelled data; {info.spec!r} has no classes")
        ch, res, _ = info.shape
        try:
            check_widths(c.widths, res)
        except ValueError as e:
            raise GanforgeError(f"{e}: set resolution= to a power of two, and one width or one per stage") from None
        kw = {"widths": c.widths, "blocks": c.blocks, "expansion": c.expansion, "group_size": c.group_size,
              "num_classes": k}
        try:
            return nn.ModuleDict({"G": R3Generator(c.z_dim, res, ch, **kw), "D": R3Discriminator(res, ch, **kw)})
        except ValueError as e:
            raise GanforgeError(f"{e}: choose widths x expansion divisible by group_size") from None

    def generate(self, G, z, labels=None):
        if self.conditional and labels is None:
            raise GanforgeError("this r3gan is class-conditional: pass --label K (or labels=...)")
        return G(z, labels)

    def discriminate(self, nets, x, labels):
        return nets["D"](x, labels)

    def g_labels(self, ctx):
        # the G step pairs its fakes with a real batch (rpgan): give them that batch's labels
        return ctx.labels if self.conditional else None

    # -- schedules (pure functions of the step) ------------------------------------------------------------
    def _cosine(self, step: int, start: float, end: float) -> float:
        return cosine(step, self.cfg.decay_steps or self.cfg.steps, start, end)

    def optimizer_schedule(self, step: int) -> dict[str, dict[str, float]]:
        c = self.cfg
        one = {"lr": self._cosine(step, 1.0, c.lr_final), "beta2": self._cosine(step, c.betas[1], c.beta2_final)}
        return {"G": one, "D": one}

    def gammas(self, step: int) -> tuple[float, float]:
        f = self._cosine(step, 1.0, self.cfg.gamma_final)
        return self.cfg.r1_gamma * f, self.cfg.r2_gamma * f

    def ema_decay(self, step: int) -> float:
        c = self.cfg
        if c.ema_decay <= 0:
            return 0.0
        final = -c.batch_size * math.log(2) / math.log(c.ema_decay)      # half-life in images
        half_life = self._cosine(step, 0.0, final)
        return 0.5 ** (c.batch_size / half_life) if half_life > 0 else 0.0

    def augment_probability(self, step: int) -> float:
        return self._cosine(step, 0.0, self.cfg.augment_p)
