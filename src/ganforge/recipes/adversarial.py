"""The two-player update shared by gan, dcgan and cgan (and later families that only change the nets/losses).

D phase: separate real and fake batches (never mixed, so BatchNorm statistics never blend the two - DCGAN §3),
fake generated without a graph into G; G phase: fresh noise through G and D. `d_steps` is k of
Goodfellow 2014 Algorithm 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import GanforgeError
from .. import losses as L
from .base import Nets, Phase, Recipe, RecipeConfig, StepContext


@dataclass
class AdversarialConfig(RecipeConfig):
    loss: str = "ns"          # ns (non-saturating G) | minimax (saturating G, eq. 1) | hinge | wasserstein | lsgan
    d_steps: int = 1          # D updates per G update (k in Goodfellow 2014, Algorithm 1)

    def check(self) -> None:
        super().check()
        if self.loss not in L.D_LOSSES:
            raise GanforgeError(f"config key 'loss' must be one of {', '.join(L.D_LOSSES)}; got {self.loss!r}")
        if self.d_steps < 1:
            raise GanforgeError(f"config key 'd_steps' must be >= 1; got {self.d_steps}")
        if self.label_smoothing and self.loss not in ("ns", "minimax"):
            raise GanforgeError("label_smoothing applies to the ns/minimax (cross-entropy) losses only")


class AdversarialRecipe(Recipe):
    Config = AdversarialConfig
    conditional = False

    def discriminate(self, nets: Nets, x: Tensor, labels: Tensor | None) -> Tensor:
        return nets["D"](x)

    def g_labels(self, ctx: StepContext) -> Tensor | None:
        return None

    def phases(self, step: int) -> list[Phase]:
        return [Phase("D", "D", self.d_loss, repeat=self.cfg.d_steps), Phase("G", "G", self.g_loss)]

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        real, labels = ctx.real, (ctx.labels if self.conditional else None)
        with torch.no_grad():   # the D step must not build a graph into G
            fake = self.generate(nets["G"], self.noise(real.shape[0], ctx.device), labels)
        real_logits = self.discriminate(nets, real, labels)
        fake_logits = self.discriminate(nets, fake, labels)
        if self.cfg.loss in ("ns", "minimax"):
            loss = L.ns_d(real_logits=real_logits, fake_logits=fake_logits, smoothing=self.cfg.label_smoothing)
        else:
            loss = L.D_LOSSES[self.cfg.loss](real_logits=real_logits, fake_logits=fake_logits)
        logs = {"loss": loss,
                "acc_real": (real_logits > 0).float().mean(),   # health: D's accuracy on each side
                "acc_fake": (fake_logits < 0).float().mean()}
        if self.cfg.loss in ("ns", "minimax"):
            logs["V"] = L.value(real_logits=real_logits.float(), fake_logits=fake_logits.float())
            logs["D_real"] = torch.sigmoid(real_logits.float()).mean()
            logs["D_fake"] = torch.sigmoid(fake_logits.float()).mean()
        return logs

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        labels = self.g_labels(ctx)
        fake = self.generate(nets["G"], self.noise(ctx.batch_size, ctx.device), labels)
        fake_logits = self.discriminate(nets, fake, labels)
        return {"loss": L.G_LOSSES[self.cfg.loss](fake_logits=fake_logits)}
