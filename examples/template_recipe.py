"""A minimal ganforge family to copy: `mygan`, a GAN with MLP nets and any registered adversarial loss.

What a family is to ganforge (docs/architecture.md, "How to add a family"):
- a Config dataclass: the paper's knobs with their defaults, on top of RecipeConfig's training fields;
- build(): the networks, sized by the config and the data description (self.info.shape);
- phases(step): the updates of one training step, each a Phase(name, player, loss function);
- a loss function per phase: (nets, ctx) -> {"loss": scalar to minimise, ...logged values}.
The trainer does everything else: optimizers, precision, batches, EMA, logging, samples, checkpoints,
exact resume and torchrun.

Use it: `import template_recipe` (this registers "mygan"), then
`ganforge.train("mygan", data="toy:ring", steps=3000, loss="hinge")`, `ganforge.load(run).sample(64)`.
tests/test_template.py trains, resumes and samples it, so this file stays a working example.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import ganforge
from ganforge import losses as L
from ganforge.models.mlp import MLPDiscriminator, MLPGenerator
from ganforge.recipes.base import Phase, Recipe, RecipeConfig


@dataclass
class MyGANConfig(RecipeConfig):
    data: str = "toy:ring"        # any points, table or image data spec
    z_dim: int = 16
    hidden: int = 128             # width of every hidden layer
    depth: int = 3                # hidden layers per net
    loss: str = "ns"              # any entry of losses.ADVERSARIAL (ns, hinge, wasserstein, lsgan, ragan, ...)
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    batch_size: int = 256
    steps: int = 3000

    def check(self) -> None:      # bad values are one clear error before any data is loaded
        super().check()
        L.adversarial(self.loss)


@ganforge.register("mygan")
class MyGAN(Recipe):
    Config = MyGANConfig
    smoke = {"hidden": 8, "depth": 1}       # the every-recipe tests' tiny settings

    def build(self) -> nn.ModuleDict:
        c, info = self.cfg, self.info
        return nn.ModuleDict({"G": MLPGenerator(c.z_dim, info.shape, c.hidden, c.depth, tanh=info.kind == "image"),
                              "D": MLPDiscriminator(info.shape, c.hidden, c.depth)})

    def phases(self, step: int) -> list[Phase]:
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss)]

    def d_loss(self, nets, ctx) -> dict:
        adv = L.adversarial(self.cfg.loss)
        with torch.no_grad():                   # D's step: no graph into G
            fake = nets["G"](self.noise(ctx.batch_size, ctx.device))
        real_logits, fake_logits = nets["D"](ctx.real), nets["D"](fake)
        acc_real, acc_fake = adv.accuracy(real_logits=real_logits.detach(), fake_logits=fake_logits.detach())
        return {"loss": adv.d(real_logits=real_logits, fake_logits=fake_logits),
                "acc_real": acc_real, "acc_fake": acc_fake}

    def g_loss(self, nets, ctx) -> dict:
        adv = L.adversarial(self.cfg.loss)
        fake_logits = nets["D"](nets["G"](self.noise(ctx.batch_size, ctx.device)))
        real_logits = None
        if adv.needs_real:                      # relativistic losses: D's scores of real data, no graph
            with torch.no_grad():
                real_logits = nets["D"](ctx.real)
        return {"loss": adv.g(fake_logits=fake_logits, real_logits=real_logits)}
