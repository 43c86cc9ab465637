"""`progan` - Progressive GAN (Karras et al. 2018, arXiv:1710.10196): G and D grown from 4x4, blocks faded in.

G and D grow from a low resolution to the target, each new block faded in (§2, Fig. 2).

Schedule (§2, App. A): phases of `images_per_phase` images: stabilize at `start_resolution`, then for every
doubling a fade-in (alpha rising linearly 0 -> 1 with the images shown) and a stabilize phase (alpha = 1).
(stage, alpha) is a pure function of the step (models.progressive.progan_schedule), so a resumed run is
exact. Real images are brought to the current resolution with the same fade-in (`downscale_to`).
Loss (§A.1): WGAN-GP (Gulrajani et al. 2017, arXiv:1704.00028, eq. 3) with lambda = 10, plus the drift term
eps_drift E[D(real)^2], eps_drift = 1e-3:
    L_D = E[D(fake)] - E[D(real)] + lambda E[(||grad D(x_hat)|| - 1)^2] + eps_drift E[D(real)^2]
    L_G = -E[D(fake)]
`loss=wasserstein` is that first term (the paper's); any other losses.ADVERSARIAL name replaces it, the penalty
and drift terms staying as configured (a G half that reads real scores, ragan, scores a real batch too).
Adam lr 1e-3, betas (0, 0.99), n_critic 1; EMA of G's weights for sampling (§A.1: decay 0.999).
The generator's current (stage, alpha) lives in buffers of G (saved with the weights, copied into the EMA),
so a checkpoint loaded mid-growth samples at the resolution it had reached, up-sampled to the full size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import losses as L
from ..errors import GanforgeError
from ..models.progressive import ProDiscriminator, ProGenerator, downscale_to, progan_schedule
from ..regularizers import drift_penalty, gradient_penalty
from ..registry import RECIPES
from .base import Nets, Phase, Recipe, RecipeConfig, StepContext, eager
from .dcgan import image_nets_check


@dataclass
class ProGANConfig(RecipeConfig):
    data: str = "shapes"             # shapes: 32 px; shapes:64; `--preset digits` for digits at 32 px
    resolution: int = 0              # 0 = the data's own (shapes:64 -> 64); digits are 8 px, so set 32
    z_dim: int = 128                 # latent size (paper: 512)
    g_width: int = 16                # channels at full resolution, doubling per halving (paper: 16 at 1024)
    d_width: int = 16
    max_width: int = 64              # channel cap (paper: 512); small so that a CPU grows 4 -> 32 in minutes
    start_resolution: int = 4        # first stage's side in pixels (paper: 4)
    images_per_phase: int = 16_000   # images per fade-in and per stabilize phase (paper: 800,000)
    gp_weight: float = 10.0          # lambda of WGAN-GP
    drift: float = 1e-3              # eps_drift on E[D(real)^2]
    d_steps: int = 1                 # critic updates per G update (paper: 1)
    mbstd_group: int = 4             # minibatch stddev group size (§3); must divide batch_size
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    betas: tuple[float, ...] = (0.0, 0.99)
    # EMA of G per G update. The paper's 0.999 lags ~1,000 updates, 2% of its 800k-image phases but two of
    # ours: 0.99 keeps the lag at a fifth of a 16k-image phase, so a new block shows in the samples
    ema_decay: float = 0.99
    steps: int = 4000                # at 32 px: 6 phases of 500 steps grow 4 -> 32, then 1,000 steps at 32
    batch_size: int = 32
    loss: str = "wasserstein"        # the paper's WGAN-GP critic loss, or another losses.ADVERSARIAL name

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        for key in ("start_resolution",):
            v = getattr(self, key)
            if v < 4 or v & (v - 1):
                raise GanforgeError(f"config key {key!r} must be a power of two >= 4; got {v}")
        if self.resolution and self.start_resolution > self.resolution:
            raise GanforgeError(f"start_resolution={self.start_resolution} is above resolution={self.resolution}; "
                                f"lower start_resolution (4 as in the paper)")
        if self.images_per_phase < 1 or self.d_steps < 1 or self.mbstd_group < 1:
            raise GanforgeError("config keys 'images_per_phase', 'd_steps' and 'mbstd_group' must be >= 1")
        if self.gp_weight < 0 or self.drift < 0:
            raise GanforgeError("config keys 'gp_weight' and 'drift' must be >= 0")
        if self.batch_size % min(self.mbstd_group, self.batch_size):
            raise GanforgeError(f"batch_size={self.batch_size} must be a multiple of mbstd_group="
                                f"{self.mbstd_group} (minibatch stddev groups); change one of them")


class GrowingGenerator(nn.Module):
    """ProGenerator plus its current (stage, alpha) as buffers; outputs are up-sampled (nearest) to the full
    resolution so that grids and metrics always see one size. `native=True` returns the stage's own size."""

    def __init__(self, net: ProGenerator):
        super().__init__()
        self.net = net
        self.register_buffer("stage", torch.tensor(net.max_stage, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_stage(self, stage: int, alpha: float) -> None:
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    def forward(self, z: Tensor, stage: int | None = None, alpha: float | None = None, native: bool = False) -> Tensor:
        stage = int(self.stage) if stage is None else stage
        alpha = float(self.alpha) if alpha is None else alpha
        x = self.net(z, stage, alpha)
        factor = self.net.resolution // x.shape[-1]
        return x if native or factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


@RECIPES.register("progan")
class ProGAN(Recipe):
    name = "progan"
    Config = ProGANConfig
    smoke = {"data": "digits", "resolution": 8, "g_width": 8, "d_width": 8, "max_width": 16, "z_dim": 16, "images_per_phase": 8}
    presets = {
        "shapes": {},
        "shapes64": {"data": "shapes:64", "steps": 5500},
        "digits": {"data": "digits", "resolution": 32},
        # the paper's schedule (800k images per phase) on a folder of images at 256 px
        "folder256": {"data": "folder:images", "resolution": 256, "z_dim": 512, "g_width": 16, "d_width": 16,
                      "max_width": 512, "images_per_phase": 800_000, "batch_size": 16, "steps": 800_000,
                      "ema_decay": 0.999},
    }

    def schedule(self, step: int) -> tuple[int, float]:
        """(stage, alpha) at `step`: stage k works at 4 * 2^k pixels of G's full stack."""
        c = self.cfg
        res = self.info.shape[-1]
        first = c.start_resolution.bit_length() - 3       # stage index of start_resolution
        grown, alpha = progan_schedule(step, res >> first, c.images_per_phase, c.batch_size)
        return first + grown, alpha

    def startup_notes(self, steps: int) -> list[str]:
        """A run too short to grow to the data's resolution would write full-size samples of a smaller G."""
        c, res = self.cfg, self.info.shape[-1]
        doublings = res.bit_length() - c.start_resolution.bit_length()
        need = -(-2 * doublings * c.images_per_phase // c.batch_size)   # stabilize + fade-in per doubling
        if steps >= need:
            return []
        stage, alpha = self.schedule(steps)
        return [f"ganforge: warning: progan grows to {res} px only after {need} steps ({doublings} doublings of "
                f"2 x images_per_phase={c.images_per_phase} images at batch {c.batch_size}); steps={steps} ends at "
                f"{4 * 2 ** stage} px (alpha {alpha:.2f}): set steps >= {need}, or a smaller images_per_phase"]

    def build(self) -> Nets:
        image_nets_check(self)
        c, (ch, res, _) = self.cfg, self.info.shape
        if c.start_resolution > res:
            raise GanforgeError(f"start_resolution={c.start_resolution} is above the data's {res} px; lower it")
        G = ProGenerator(c.z_dim, res, ch, c.g_width, c.max_width)
        D = ProDiscriminator(res, ch, c.d_width, c.max_width, mbstd_group=c.mbstd_group)
        return nn.ModuleDict({"G": GrowingGenerator(G), "D": D})

    def generate(self, G: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return G(z)

    def phases(self, step: int) -> list[Phase]:
        return [Phase("D", "D", self.d_loss, repeat=self.cfg.d_steps), Phase("G", "G", self.g_loss)]

    def _at(self, nets: Nets, ctx: StepContext) -> tuple[int, float]:
        stage, alpha = self.schedule(ctx.step)
        nets["G"].set_stage(stage, alpha)   # buffers: the EMA copy and a saved checkpoint follow the growth
        return stage, alpha

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        stage, alpha = self._at(nets, ctx)
        D = nets["D"]
        real = downscale_to(ctx.real, stage, alpha)
        with torch.no_grad():   # the D step must not build a graph into G
            fake = nets["G"](self.noise(real.shape[0], ctx.device), native=True)
        real_logits, fake_logits = D(real, stage, alpha), D(fake, stage, alpha)
        adv = L.ADVERSARIAL[self.cfg.loss]
        ad = adv.d(real_logits=real_logits, fake_logits=fake_logits)
        D_eager = eager(nets)["D"]     # a double backward: never through torch.compile
        gp = gradient_penalty(lambda x: D_eager(x, stage, alpha), real, fake) if self.cfg.gp_weight else ad.new_zeros(())
        drift = drift_penalty(real_logits)
        loss = ad + self.cfg.gp_weight * gp + self.cfg.drift * drift
        signals = adv.signals(real_logits=real_logits, fake_logits=fake_logits)
        logs = {"wasserstein": signals.pop("W")} if "W" in signals else {}   # the critic's W_1 estimate
        return {"loss": loss, **logs, "gp": gp.detach(), "drift": drift.detach(), **signals,
                "resolution": torch.tensor(float(real.shape[-1])), "alpha": torch.tensor(alpha)}

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        stage, alpha = self._at(nets, ctx)
        fake = nets["G"](self.noise(ctx.batch_size, ctx.device), native=True)
        return {"loss": L.g_loss(self.cfg.loss, fake_logits=nets["D"](fake, stage, alpha),   # real: at this stage
                                 score_real=lambda: nets["D"](downscale_to(ctx.real, stage, alpha), stage, alpha))}
