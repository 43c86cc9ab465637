"""`stylegan` - StyleGAN, Karras et al. 2019 (arXiv:1812.04948), and StyleGAN2 (arXiv:1912.04958) as `mode=modulated`.

G = synthesis(mapping(z)): 8-layer mapping MLP (lr x 0.01), learned constant 4x4 input, AdaIN (eq. 1) or
modulated/demodulated convs (StyleGAN2 eq. 1-3), per-layer noise (models/stylegan.py). Training (StyleGAN2 §B):
- non-saturating loss: L_D = softplus(D(fake)) + softplus(-D(real)), L_G = softplus(-D(G(z))) (`loss=ns`; any
  losses.ADVERSARIAL name, e.g. ragan, whose G step then also scores a real batch);
- style mixing regularization (StyleGAN §3.1): with probability 0.9 per minibatch, two latents and a
  crossover layer drawn uniformly;
- lazy R1 (Mescheder et al. 2018, arXiv:1801.04406, eq. 9; StyleGAN2 §3.1): every `r1_every` steps
  (gamma / 2) E ||grad D(real)||^2 as a Phase with every=r1_every; the trainer scales it by r1_every and
  D's Adam lr and betas by c = every / (every + 1) (recipes.base.lazy_correction, the reference code's rule);
- optional path length regularization (StyleGAN2 §3.2 eq. 4), lazily every `pl_every` steps on a batch
  shrunk by `pl_batch_shrink`, weight `pl_weight` (paper: 2), its running mean `a` kept in recipe state;
- w_avg tracked (beta 0.995) for the truncation trick w' = w_avg + psi (w - w_avg) (StyleGAN App. B):
  `generate(G, z, truncation=psi)`, `ganforge sample --truncation PSI`;
- an EMA generator for sampling (decay 0.999 per G update).
Samples use the layers' fixed noise buffers (noise="const"), so a grid is a function of z alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses as L
from ..augment import check_d_input, d_input
from ..errors import GanforgeError
from ..models.stylegan import (MODES, StyleDiscriminator, StyleGenerator, draw_crossover, mix_styles,
                               path_length_penalty)
from ..regularizers import r1_penalty
from ..registry import RECIPES
from .base import Nets, Phase, Recipe, RecipeConfig, StepContext, eager
from .dcgan import image_nets_check


@dataclass
class StyleGANConfig(RecipeConfig):
    data: str = "shapes"             # shapes: 32 px; shapes:64; `--preset digits` for digits at 32 px
    resolution: int = 0              # 0 = the data's own (shapes:64 -> 64); digits are 8 px, so set 32
    mode: str = "adain"              # adain (StyleGAN) | modulated (StyleGAN2 modulated/demodulated convs)
    z_dim: int = 128                 # latent size (paper: 512)
    w_dim: int = 128                 # intermediate latent size (paper: 512)
    mapping_layers: int = 8          # depth of the mapping MLP (paper: 8)
    mapping_lr_mul: float = 0.01     # learning-rate multiplier of the mapping MLP (paper: 0.01)
    g_width: int = 16                # channels at full resolution, doubling per halving
    d_width: int = 16
    max_width: int = 64              # channel cap (paper: 512); small so that a CPU trains 32 px in minutes
    style_mixing_prob: float = 0.9   # probability of a mixed minibatch (paper: 0.9)
    r1_gamma: float = 1.0            # R1 weight gamma (paper: 10 at 1024 px; small images want less); 0 = off
    r1_every: int = 16               # lazy R1 interval in steps (StyleGAN2: 16)
    pl_weight: float = 0.0           # path length weight (StyleGAN2: 2); 0 = off
    pl_every: int = 4                # lazy path length interval in steps (StyleGAN2: 4)
    pl_batch_shrink: int = 2         # path length batch = batch_size / this (StyleGAN2: 2)
    pl_decay: float = 0.01           # running-mean rate of the path length target a
    w_avg_beta: float = 0.995        # decay of the tracked w_avg per G update
    mbstd_group: int = 4             # minibatch stddev group size; must divide batch_size
    g_lr: float = 2e-3
    d_lr: float = 2e-3
    betas: tuple[float, ...] = (0.0, 0.99)
    ema_decay: float = 0.998         # EMA of G per G update: StyleGAN's half-life of 10k images at batch 32
    steps: int = 3000
    batch_size: int = 32
    loss: str = "ns"                 # the papers' non-saturating loss, or another losses.ADVERSARIAL name
    diff_augment: str = ""           # DiffAugment policy on D's images, e.g. "color,translation,cutout"; "" = off
    instance_noise: float = 0.0      # initial std of Gaussian noise on D's images, falling linearly to 0; 0 = off

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        check_d_input(self)
        if self.mode not in MODES:
            raise GanforgeError(f"config key 'mode' must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise GanforgeError(f"config key 'style_mixing_prob' must be in [0, 1]; got {self.style_mixing_prob}")
        for key in ("r1_every", "pl_every", "pl_batch_shrink", "mapping_layers", "mbstd_group"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")
        if self.r1_gamma < 0 or self.pl_weight < 0:
            raise GanforgeError("config keys 'r1_gamma' and 'pl_weight' must be >= 0")
        if not (0.0 <= self.w_avg_beta <= 1.0 and 0.0 < self.pl_decay <= 1.0):
            raise GanforgeError("config keys 'w_avg_beta' must be in [0, 1] and 'pl_decay' in (0, 1]")
        if self.batch_size % min(self.mbstd_group, self.batch_size):
            raise GanforgeError(f"batch_size={self.batch_size} must be a multiple of mbstd_group="
                                f"{self.mbstd_group} (minibatch stddev groups); change one of them")


@RECIPES.register("stylegan")
class StyleGAN(Recipe):
    name = "stylegan"
    Config = StyleGANConfig
    smoke = {"data": "digits", "resolution": 8, "g_width": 8, "d_width": 8, "max_width": 16, "z_dim": 16,
             "w_dim": 16, "mapping_layers": 2, "pl_weight": 2.0, "r1_every": 2, "pl_every": 2}
    sample_kwargs = ("truncation",)     # extra keyword arguments generate() accepts (`sample --truncation`)
    presets = {
        "shapes": {},
        "shapes64": {"data": "shapes:64", "steps": 6000},
        "digits": {"data": "digits", "resolution": 32},
        "stylegan2-shapes": {"mode": "modulated", "pl_weight": 2.0},
        "folder256": {"data": "folder:images", "resolution": 256, "z_dim": 512, "w_dim": 512, "g_width": 32,
                      "d_width": 32, "max_width": 512, "r1_gamma": 10.0, "batch_size": 16, "steps": 200_000,
                      "ema_decay": 0.999},
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.pl_mean = torch.zeros(())     # running mean a of the path lengths (StyleGAN2 eq. 4)

    def build(self) -> Nets:
        image_nets_check(self)
        c, (ch, res, _) = self.cfg, self.info.shape
        G = StyleGenerator(c.z_dim, c.w_dim, res, ch, c.g_width, c.max_width, c.mapping_layers,
                           c.mapping_lr_mul, c.mode)
        D = StyleDiscriminator(res, ch, c.d_width, c.max_width, mbstd_group=c.mbstd_group)
        return nn.ModuleDict({"G": G, "D": D})

    # -- sampling -------------------------------------------------------------------------------------------
    def generate(self, G: nn.Module, z: Tensor, labels: Tensor | None = None, truncation: float = 1.0) -> Tensor:
        if not 0.0 <= truncation <= 1.0:
            raise GanforgeError(f"truncation psi must be in [0, 1] (1 = none, 0.7 as in the paper); got {truncation}")
        return G(z, truncation=truncation, noise="const")

    # -- training -------------------------------------------------------------------------------------------
    def phases(self, step: int) -> list[Phase]:
        c = self.cfg
        out = [Phase("D", "D", self.d_loss)]
        if c.r1_gamma > 0:
            out.append(Phase("D_r1", "D", self.r1_loss, every=c.r1_every))
        out.append(Phase("G", "G", self.g_loss))
        if c.pl_weight > 0:
            out.append(Phase("G_pl", "G", self.pl_loss, every=c.pl_every))
        return out

    def styles(self, G: StyleGenerator, n: int, device) -> tuple[Tensor, Tensor]:
        """(ws, w) for a minibatch: w = f(z), and ws mixed with a second latent's from a random crossover
        with probability style_mixing_prob (StyleGAN §3.1). Always draws both latents, so the RNG stream
        does not depend on whether this batch mixes."""
        z, z2 = self.noise(n, device), self.noise(n, device)
        cut = draw_crossover(G.num_ws, self.cfg.style_mixing_prob)
        w = G.mapping(z)
        ws = w.unsqueeze(1).expand(-1, G.num_ws, -1)
        if cut < G.num_ws:
            ws = mix_styles(ws, G.mapping(z2).unsqueeze(1).expand(-1, G.num_ws, -1), cut)
        return ws, w

    def d_view(self, x: Tensor, step: int) -> Tensor:
        """An image as D sees it: `diff_augment`, then `instance_noise` (augment.d_input); off by default."""
        return d_input(x, self.cfg.diff_augment, self.cfg.instance_noise, step, self.cfg.steps)

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        G, D = nets["G"], nets["D"]
        real = ctx.real
        with torch.no_grad():   # the D step must not build a graph into G
            fake = G.synthesis(self.styles(G, real.shape[0], ctx.device)[0])
        real_logits, fake_logits = D(self.d_view(real, ctx.step)), D(self.d_view(fake, ctx.step))
        adv = L.ADVERSARIAL[self.cfg.loss]
        return {"loss": adv.d(real_logits=real_logits, fake_logits=fake_logits),
                **adv.signals(real_logits=real_logits, fake_logits=fake_logits)}   # ns: V, D_real, D_fake

    def r1_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        real = ctx.real.detach().float().requires_grad_(True)
        with torch.autocast(ctx.device.type, enabled=False):   # a double backward in full precision
            # uncompiled: AOT autograd has no double backward. R1 is on the image D scores, taken with
            # respect to the real image under the augmentation (StyleGAN2-ADA's rule)
            r1 = r1_penalty(eager(nets)["D"](self.d_view(real, ctx.step)), real)
        # lazy: the trainer counts this phase r1_every times (Phase.every, recipes.base.lazy_correction)
        return {"loss": c.r1_gamma / 2 * r1, "r1": r1.detach()}

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        G = nets["G"]
        ws, w = self.styles(G, ctx.batch_size, ctx.device)
        G.update_w_avg(w, self.cfg.w_avg_beta)   # the centre truncation pulls towards
        fake_logits = nets["D"](self.d_view(G.synthesis(ws), ctx.step))
        return {"loss": L.g_loss(self.cfg.loss, fake_logits=fake_logits,
                                 score_real=lambda: nets["D"](self.d_view(ctx.real, ctx.step)))}

    def pl_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c, G = self.cfg, nets["G"]
        n = max(1, ctx.batch_size // c.pl_batch_shrink)
        ws = self.styles(G, n, ctx.device)[0]
        with torch.autocast(ctx.device.type, enabled=False):
            fake = G.synthesis(ws.float())
            penalty, self.pl_mean = path_length_penalty(fake, ws, self.pl_mean.to(ctx.device), c.pl_decay)
        return {"loss": c.pl_weight * penalty, "pl_penalty": penalty.detach(),
                "pl_mean": self.pl_mean.detach()}

    # -- recipe state: the path length target a, for an exact resume ----------------------------------------
    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].clone()
