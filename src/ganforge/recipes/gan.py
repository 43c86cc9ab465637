"""`gan` - Goodfellow et al. 2014 (arXiv:1406.2661): MLP G and D playing min_G max_D V(D, G) (eq. 1).

loss=minimax is the saturating game of eq. 1; loss=ns the non-saturating G loss -log D(G(z)) that §3 recommends.
Works on 1-D/2-D points, table rows and flattened images. On `toy:gauss1d` it draws the paper's Figure 1
(p_data, p_g and D(x) along x) at every sample step and logs V(D, G), which tends to -log 4 at equilibrium.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..registry import RECIPES
from .adversarial import AdversarialConfig, AdversarialRecipe


@dataclass
class GANConfig(AdversarialConfig):
    data: str = "toy:ring"
    z_dim: int = 16
    hidden: int = 128           # width of every hidden layer of G and D
    depth: int = 3              # hidden layers per net
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    batch_size: int = 256
    steps: int = 5000


@RECIPES.register("gan")
class GAN(AdversarialRecipe):
    name = "gan"
    Config = GANConfig
    presets = {
        "ring": {"data": "toy:ring"},
        "grid": {"data": "toy:grid"},
        # the best mode-coverage settings measured on the PacGAN mixtures (docs/stable.md, Results)
        "ring-best": {"data": "toy:ring", "pac": 4, "d_steps": 3, "ema_decay": 0.999, "steps": 60000,
                      "lr_decay_start": 0.5},
        "grid-best": {"data": "toy:grid", "pac": 4, "d_steps": 2, "hidden": 256, "batch_size": 1024,
                      "ema_decay": 0.99, "steps": 30000, "lr_decay_start": 0.5},
        # the paper's saturating minimax game (eq. 1) on 1-D Gaussian data, as in its Figure 1. z is 8-D: from a 1-D
        # z a ReLU G is piecewise linear, and p_g(x) = p_z(z) / |G'(z)| spikes where a piece is flat (TV 0.36 to
        # N(2, 0.5^2) at the end); 2 D steps on batches of 256 keep D near D* (Proposition 1), and the lr decay
        # lets the game settle instead of orbiting (docs/gan.md: TV per seed)
        "gauss1d": {"data": "toy:gauss1d", "loss": "minimax", "z_dim": 8, "hidden": 32, "depth": 2, "d_steps": 2,
                    "steps": 3000, "batch_size": 256, "sample_every": 500, "lr_decay_start": 0.5},
        "digits": {"data": "digits", "z_dim": 64, "hidden": 256, "g_lr": 2e-4, "d_lr": 2e-4, "batch_size": 64,
                   "steps": 3000},
    }

    def build_nets(self, info) -> nn.ModuleDict:
        c = self.cfg
        return nn.ModuleDict({
            "G": MLPGenerator(c.z_dim, info.shape, c.hidden, c.depth, tanh=info.kind == "image"),
            "D": MLPDiscriminator(info.shape, c.hidden, c.depth),
        })

    def on_sample_step(self, nets, plots_dir: Path, step: int) -> None:
        if "density" in self.info.extra:
            from ..viz import figure1
            figure1(self, nets, Path(plots_dir) / f"figure1-step-{step:06d}.png", step)
