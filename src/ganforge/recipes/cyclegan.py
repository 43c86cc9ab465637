"""`cyclegan` - Zhu et al. 2017 (arXiv:1703.10593): unpaired translation with cycle consistency.

L(G, F, D_X, D_Y) = L_GAN(G, D_Y, X, Y) + L_GAN(F, D_X, Y, X) + lambda L_cyc(G, F)             (Eq. 3)
L_cyc = E_x ||F(G(x)) - x||_1 + E_y ||G(F(y)) - y||_1                                         (Eq. 2)
L_identity = E_y ||G(y) - y||_1 + E_x ||F(x) - x||_1, weighted 0.5 lambda           (Sec. 5.2, Fig. 9)
Here G = G_ab (A -> B), F = G_ba, D_Y = D_b, D_X = D_a. L_GAN is least squares (Sec. 4, after Mao 2017):
G minimises E (D(G(x)) - 1)^2, D minimises 1/2 [E (D(y) - 1)^2 + E D(G(x))^2] (the 1/2 slows D, Sec. 4).
D is trained on a history of 50 generated images (ImagePool, Shrivastava 2017), lambda = 10, Adam 2e-4 /
beta1 0.5, constant learning rate for the first half of training, then linear decay to zero (Sec. 4).

The learning-rate schedule is the trainer's `lr_decay_start` (recipes/base.py lr_factor), here defaulting to
the paper's 1/2. The history pools live in state_dict() (tensors only).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses as L
from ..errors import GanforgeError
from ..models.image2image import ImagePool, PatchDiscriminator, ResnetGenerator, UNetGenerator, patch_layers_for
from ..registry import RECIPES
from .base import Nets, Phase, RecipeConfig, StepContext, Translator
from .pix2pix import DIRECTIONS, check_choice, needs_cond


@dataclass
class CycleGANConfig(RecipeConfig):
    data: str = "shapeswap:circles2squares"
    steps: int = 2000
    batch_size: int = 1          # the paper's
    loss: str = "lsgan"          # lsgan (the paper's) or another losses.ADVERSARIAL name (ns, hinge, ragan)
    lambda_cyc: float = 10.0     # lambda of Eq. 3
    lambda_id: float = 0.5       # identity loss weight, as a fraction of lambda_cyc (0.5 lambda); 0 = off
    pool_size: int = 50          # generated-image history D is trained on; 0 = the current batch only
    lr_decay_start: float = 0.5  # constant for the first half, then linear to 0 (the paper's 100 + 100 epochs)
    g_width: int = 64            # c7s1-64 (first layer); 2x and 4x after the two downsamplings
    g_blocks: int = 6            # residual blocks: 6 at 128 px, 9 at 256 px in the paper
    d_width: int = 64            # PatchGAN's first layer
    d_layers: int = 0            # PatchGAN stride-2 layers; 0 = patch_layers_for(resolution)
    norm: str = "instance"       # instance (the paper's) | batch | layer (one GroupNorm group: no train/eval gap)
    generator: str = "resnet"    # resnet (the paper's) | unet (the reference code's --netG unet_128/256)

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        check_choice("norm", self.norm, ("batch", "instance", "layer"))
        check_choice("generator", self.generator, ("resnet", "unet"))
        for key in ("lambda_cyc", "lambda_id", "pool_size", "d_layers"):
            if getattr(self, key) < 0:
                raise GanforgeError(f"config key {key!r} must be >= 0; got {getattr(self, key)}")
        if self.g_blocks < 1:
            raise GanforgeError(f"config key 'g_blocks' must be >= 1; got {self.g_blocks}")


def g_adversarial(kind: str, D: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """G's adversarial term against D on one domain; D scores that domain's real images only for a loss whose
    G half reads them (ragan), without a graph (only the generators update in the G phase)."""
    g = L.g_loss(kind, fake_logits=D(fake), score_real=lambda: D(real))
    return 2.0 * g if kind == "lsgan" else g   # E (D(G(x)) - 1)^2: Zhu's Eq. 1 in LS form, without Mao's 1/2


@RECIPES.register("cyclegan")
class CycleGAN(Translator):
    name = "cyclegan"
    Config = CycleGANConfig
    players = {"G": ("G_ab", "G_ba"), "D": ("D_a", "D_b")}
    sampler = "G_ab"  # the net sample grids and ganforge.load use (EMA'd when ema_decay > 0)
    smoke = {"resolution": 8, "g_width": 4, "g_blocks": 1, "d_width": 4}
    presets = {
        # CPU-sized; batch norm keeps the flat colours that instance norm erases, a 34x34-patch D sees
        # whole shapes, and a light identity loss keeps colours without pinning the shape (docs/cyclegan.md)
        "circles2squares": {"data": "shapeswap:circles2squares", "resolution": 32, "batch_size": 4,
                            "g_width": 16, "g_blocks": 3, "d_width": 32, "d_layers": 2, "norm": "batch",
                            "lambda_id": 0.1, "steps": 1000, "sample_every": 250},
        # the appearance task CycleGAN is made for (Sec. 5.2: colour and texture), flat <-> striped shapes
        # (data/shapestyle.py), at circles2squares' sizes. The U-Net's skips keep the shape's edges that the
        # ResNet G blurs through its 8x8 bottleneck; layer norm keeps flat colours (unlike instance norm) and
        # has no train/eval gap (unlike batch norm at batch 4); identity weight 1 lambda keeps the outline; a
        # 5x / 2.5x learning rate makes up for 12 epochs instead of 200 (docs/cyclegan.md)
        "plain2striped": {"data": "shapeswap:plain2striped", "resolution": 32, "batch_size": 4,
                          "generator": "unet", "norm": "layer", "g_width": 16, "d_width": 32, "d_layers": 2,
                          "lambda_id": 1.0, "g_lr": 1e-3, "d_lr": 5e-4, "steps": 3000, "sample_every": 1000},
        "horse2zebra": {"data": "unpaired:data/horse2zebra", "resolution": 256, "g_blocks": 9,
                        "steps": 266800, "sample_every": 5000, "checkpoint_every": 10000},
    }

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.pools = {d: ImagePool(cfg.pool_size, seed=cfg.seed * 2 + k) for k, d in enumerate("ab")}

    def build(self) -> nn.ModuleDict:
        c = self.cfg
        (c_a, h, _), (c_b, h_b, _) = needs_cond(self, "two image domains"), self.info.shape
        if c_a != c_b or h != h_b:
            raise GanforgeError(f"cyclegan needs both domains in one size and channel count (the identity "
                                f"loss feeds B images to G_ab); {self.info.spec!r} has {c_a}x{h} and {c_b}x{h_b}. "
                                f"Set channels=3 and one resolution")
        if c.generator == "resnet" and (h % 4 or h < 8):
            raise GanforgeError(f"cyclegan's ResNet generator needs a resolution that is a multiple of 4 and >= 8; "
                                f"got {h}. Set resolution=32 (or 64, 128, 256)")
        layers = c.d_layers or patch_layers_for(h)
        if h // 2 ** layers < 3:
            raise GanforgeError(f"d_layers={layers} is too deep for {h}x{h} images; use d_layers="
                                f"{patch_layers_for(h)} or 0 (automatic)")
        if c.generator == "unet":
            G = lambda: UNetGenerator(c_a, c_a, h, width=c.g_width, dropout=0.0, norm=c.norm)  # noqa: E731
        else:
            G = lambda: ResnetGenerator(c_a, c_a, c.g_width, c.g_blocks, norm=c.norm)   # noqa: E731
        D = lambda: PatchDiscriminator(c_a, c.d_width, layers=layers, norm=c.norm)  # noqa: E731
        return nn.ModuleDict({"G_ab": G(), "G_ba": G(), "D_a": D(), "D_b": D()})

    def phases(self, step: int) -> list[Phase]:
        # G first, then D on the fakes G just made (through the pools), as the reference code does
        return [Phase("G", "G", self.g_loss), Phase("D", "D", self.d_loss)]

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        ctx.shared["batch"] = batch = ctx.batch
        a, b = batch["cond"], batch["real"]
        fake_b, fake_a = nets["G_ab"](a), nets["G_ba"](b)
        cyc = L.l1(fake=nets["G_ba"](fake_b), target=a) + L.l1(fake=nets["G_ab"](fake_a), target=b)
        adv = g_adversarial(c.loss, nets["D_b"], fake_b, b) + g_adversarial(c.loss, nets["D_a"], fake_a, a)
        loss = adv + c.lambda_cyc * cyc
        logs = {"adv": adv, "cycle": cyc}
        if c.lambda_id:
            idt = L.l1(fake=nets["G_ab"](b), target=b) + L.l1(fake=nets["G_ba"](a), target=a)
            loss = loss + c.lambda_id * c.lambda_cyc * idt
            logs["identity"] = idt
        ctx.shared["fake_b"], ctx.shared["fake_a"] = fake_b.detach(), fake_a.detach()
        return {"loss": loss, **logs}

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        if "fake_b" not in ctx.shared:   # a D phase run on its own: make this batch's fakes here
            ctx.shared["batch"] = ctx.batch
            with torch.no_grad():
                ctx.shared["fake_b"] = nets["G_ab"](ctx.batch["cond"])
                ctx.shared["fake_a"] = nets["G_ba"](ctx.batch["real"])
        batch = ctx.shared["batch"]
        # history: D_b sees a mix of this step's and older G_ab outputs (no graph into G: pools detach)
        fake_b, fake_a = self.pools["b"](ctx.shared["fake_b"]), self.pools["a"](ctx.shared["fake_a"])
        adv = L.ADVERSARIAL[self.cfg.loss]
        d_b = adv.d(real_logits=nets["D_b"](batch["real"]), fake_logits=nets["D_b"](fake_b))
        d_a = adv.d(real_logits=nets["D_a"](batch["cond"]), fake_logits=nets["D_a"](fake_a))
        if self.cfg.loss != "lsgan":   # lsgan_d already carries the 1/2
            d_a, d_b = 0.5 * d_a, 0.5 * d_b
        return {"loss": d_a + d_b, "D_a": d_a, "D_b": d_b}

    def state_dict(self) -> dict:
        return {f"pool_{d}": pool.state_dict() for d, pool in self.pools.items()}

    def load_state_dict(self, state: dict) -> None:
        for d, pool in self.pools.items():
            pool.load_state_dict(state[f"pool_{d}"])

    # -- translate: both directions, any size the ResNet generator takes ---------------------------------
    def directions(self) -> tuple[str, ...]:
        return DIRECTIONS                     # G_ab and G_ba; sample grids show AtoB

    def translator(self, direction: str | None = None) -> str:
        return "G_ba" if direction == "BtoA" else "G_ab"

    def tile(self) -> int | None:
        if self.cfg.generator == "unet":      # its innermost layer sees the whole training image: tiles of it
            return super().tile()
        return None                           # the ResNet G is fully convolutional: the whole image at once

    def multiple(self) -> int:
        return 4                              # the ResNet G's two stride-2 convolutions

    def check_size(self, h: int, w: int) -> None:
        if self.cfg.generator == "unet":
            return super().check_size(h, w)   # tiles pad a smaller image
        if min(h, w) < 8:
            raise GanforgeError(f"cyclegan's generator takes images of at least 8 px a side; got {w}x{h}. Pass "
                                f"--resize to resize the input to {self.info.shape[-1]}x{self.info.shape[-1]}")
