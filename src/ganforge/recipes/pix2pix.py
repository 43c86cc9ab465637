"""`pix2pix` - Isola et al. 2017 (arXiv:1611.07004): image-conditional GAN on paired data.

G*(x) = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G)                                  (Eq. 4)
L_cGAN = E_{x,y} log D(x, y) + E_x log(1 - D(x, G(x)))  (Eq. 1; the noise z is G's dropout, Sec. 3.1)
L_L1   = E ||y - G(x)||_1, lambda = 100                                                  (Eq. 3)

G is a U-Net, D a PatchGAN on concat(x, y) (70x70 patches at 256 px, scaled down for small images by
patch_layers_for). D's objective is halved ("we divide the objective by 2 while optimizing D", Sec. 3.3);
Adam 2e-4, beta1 0.5. The ablation of the paper's Table 1 is a config change: `lambda_l1=0` (cGAN alone),
`gan_weight=0` (L1 alone: no D is trained). Colourisation (Sec. 4.5) is the `gray2color` preset.

A Translator (recipes/base.py): sample grids translate held-out inputs of the data spec's test split, and
`ganforge translate` runs the trained direction only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses as L
from ..errors import GanforgeError
from ..models.image2image import KeepLuma, PatchDiscriminator, UNetGenerator, patch_layers_for
from ..registry import RECIPES
from .base import Nets, Phase, RecipeConfig, StepContext, Translator

DIRECTIONS = ("AtoB", "BtoA")


def check_choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise GanforgeError(f"config key {key!r} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def needs_cond(recipe, what: str) -> tuple[int, ...]:
    cond = recipe.info.extra.get("cond_shape")
    if recipe.info.kind != "image" or cond is None:
        raise GanforgeError(f"{recipe.name} needs {what}; {recipe.info.spec!r} has a single image domain. "
                            f"Use paired:DIR, unpaired:DIR, photos:edges2photo, photos:gray2color, photos:sr4 "
                            f"or shapeswap:circles2squares")
    return tuple(cond)


@dataclass
class Pix2PixConfig(RecipeConfig):
    data: str = "photos:edges2photo"
    steps: int = 2000
    batch_size: int = 1          # the paper's (BatchNorm at batch 1 acts as instance norm)
    direction: str = "AtoB"      # AtoB | BtoA: which half/domain is the input
    loss: str = "ns"             # ns (the paper's log loss) or another losses.ADVERSARIAL name (lsgan, hinge, ragan)
    lambda_l1: float = 100.0     # lambda of Eq. 4; 0 = cGAN alone
    gan_weight: float = 1.0      # weight of L_cGAN in G's loss; 0 = L1 alone (D is not trained)
    g_width: int = 64            # U-Net's first encoder layer (C64); doubles per layer up to 8x
    d_width: int = 64            # PatchGAN's first layer (C64)
    d_layers: int = 0            # PatchGAN stride-2 layers; 0 = patch_layers_for(resolution) (3 = 70x70)
    dropout: float = 0.5         # G's noise: dropout in the first 3 decoder layers, also at test time
    norm: str = "batch"          # batch | instance | layer (one GroupNorm group), in G and D
    keep_luma: bool = False      # grey -> colour: G predicts chroma only, the output's luma is the input (KeepLuma)

    def check(self) -> None:
        super().check()
        check_choice("direction", self.direction, DIRECTIONS)
        L.adversarial(self.loss)
        check_choice("norm", self.norm, ("batch", "instance", "layer"))
        if self.lambda_l1 < 0 or self.gan_weight < 0:
            raise GanforgeError("lambda_l1 and gan_weight must be >= 0")
        if self.lambda_l1 == 0 and self.gan_weight == 0:
            raise GanforgeError("lambda_l1=0 and gan_weight=0 leave G without a loss; set one of them > 0")
        if not 0 <= self.dropout < 1:
            raise GanforgeError(f"config key 'dropout' must be in [0, 1); got {self.dropout}")
        if self.d_layers < 0:
            raise GanforgeError(f"config key 'd_layers' must be >= 0 (0 = automatic); got {self.d_layers}")


@RECIPES.register("pix2pix")
class Pix2Pix(Translator):
    name = "pix2pix"
    Config = Pix2PixConfig
    smoke = {"resolution": 8, "g_width": 4, "d_width": 4}
    presets = {
        "edges2photo": {"data": "photos:edges2photo", "resolution": 32, "batch_size": 16, "g_width": 16,
                        "d_width": 16, "steps": 800, "sample_every": 200},
        # G predicts chroma and keeps the grey input as the luma (KeepLuma; the paper's L -> ab, Sec. 4.5)
        "gray2color": {"data": "photos:gray2color", "resolution": 32, "batch_size": 16, "g_width": 16,
                       "d_width": 16, "keep_luma": True, "steps": 800, "sample_every": 200},
        "facades": {"data": "paired:data/facades", "direction": "BtoA", "resolution": 256, "steps": 80000,
                    "sample_every": 2000, "checkpoint_every": 5000},
    }

    def directions(self) -> tuple[str, ...]:
        return (self.cfg.direction,)          # one U-Net, trained one way

    def build(self) -> nn.ModuleDict:
        c = self.cfg
        needs_cond(self, "paired images (input A, target B)")
        (c_in, h, w), (c_out, h_out, w_out) = self.input_shape(), self.input_shape(
            "BtoA" if c.direction == "AtoB" else "AtoB")
        if (h, w) != (h_out, w_out):
            raise GanforgeError(f"pix2pix translates between images of one size; {self.info.spec!r} pairs "
                                f"{h}x{w} with {h_out}x{w_out} (for super-resolution use the srgan recipe)")
        if c.keep_luma and (c_in, c_out) != (1, 3):
            raise GanforgeError(f"keep_luma=true colourises: it needs 1-channel inputs and 3-channel targets; "
                                f"{self.info.spec!r} ({c.direction}) maps {c_in} to {c_out} channels. Use "
                                f"photos:gray2color, or keep_luma=false")
        try:
            G = UNetGenerator(c_in, 2 if c.keep_luma else c_out, h, width=c.g_width, dropout=c.dropout,
                              norm=c.norm)
            if c.keep_luma:
                G = KeepLuma(G)
            layers = c.d_layers or patch_layers_for(h)
            D = PatchDiscriminator(c_in + c_out, c.d_width, layers=layers, norm=c.norm)
            if h // 2 ** layers < 3:
                raise GanforgeError(f"d_layers={layers} is too deep for {h}x{h} images; use d_layers="
                                    f"{patch_layers_for(h)} or 0 (automatic)")
        except ValueError as e:   # ArchitectureError: a size the nets cannot take
            raise GanforgeError(f"{e}; set resolution=32 (or another power of two >= 8)") from None
        return nn.ModuleDict({"G": G, "D": D})

    def phases(self, step: int) -> list[Phase]:
        g = Phase("G", "G", self.g_loss)
        return [g] if self.cfg.gan_weight == 0 else [Phase("D", "D", self.d_loss), g]

    def _pair(self, ctx: StepContext) -> tuple[Tensor, Tensor]:
        # one batch per iteration: the D and G phases see the same (x, y), as in the paper's updates
        if "batch" not in ctx.shared:
            ctx.shared["batch"] = ctx.batch
        return self.split(ctx.shared["batch"], self.cfg.direction)

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        x, y = self._pair(ctx)
        with torch.no_grad():   # the D step must not build a graph into G
            fake = nets["G"](x)
        out = L.d_loss(self.cfg.loss, real_logits=nets["D"](torch.cat([x, y], 1)),
                       fake_logits=nets["D"](torch.cat([x, fake], 1)))
        out["loss"] = 0.5 * out["loss"]                 # halved, Sec. 3.3
        return out

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        c = self.cfg
        x, y = self._pair(ctx)
        fake = nets["G"](x)
        l1 = L.l1(fake=fake, target=y)
        logs = {"l1": l1}
        loss = c.lambda_l1 * l1
        if c.gan_weight:
            adv = L.g_loss(c.loss, fake_logits=nets["D"](torch.cat([x, fake], 1)),
                           score_real=lambda: nets["D"](torch.cat([x, y], 1)))      # the real pairs (x, y)
            loss = loss + c.gan_weight * adv
            logs["adv"] = adv
        return {"loss": loss, **logs}
