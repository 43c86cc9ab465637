"""`simgan` - learning from simulated and unsupervised images (Shrivastava et al. 2017, arXiv:1612.07828).

A refiner R (here the net named G) turns a synthetic image x into a refined one R(x) that D cannot tell from
real images, while staying close to x so the synthetic labels still hold:

  L_R = sum_patches CE(D(R(x))_patch, real) + lambda ||R(x) - x||_1            (eq. 4: local adversarial
                                                                                 loss + self-regularization)
  L_D = sum_patches CE(D(y)_patch, real) + CE(D(R(x))_patch, refined)          (eq. 2, per patch, §2.2)

- R is a ResNet at full resolution (no striding); its last conv starts at zero and R adds its output to x,
  so R(x) = x at step 0 - the state the paper reaches by pretraining R on self-regularization alone.
- D outputs a map of logits, one per local patch (§2.2: the loss is summed over the w x h patches).
- D's refined half-batch comes half from the current R and half from a history buffer of refined images
  (§2.3, `HistoryBuffer`); after each D update b/2 random buffer slots take the newest refined images.
- K_g refiner updates per D update (`refiner_steps`, Algorithm 1).
- `loss` swaps the per-patch cross-entropy for any losses.ADVERSARIAL entry (default ns, the paper's CE);
  with one whose G half reads real scores (ragan), each refiner update also scores a real batch.

Offline task: `fonts` (synthetic 8x8 digits rendered from matplotlib's fonts) refined toward `digits`.
An ImageToImage recipe: sample_inputs() draws synthetic images, so `ganforge sample RUN` shows freshly
refined ones; there is no latent noise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GanforgeError
from .. import losses as L
from ..registry import RECIPES
from .base import ImageToImage, Nets, Phase, RecipeConfig, StepContext


@dataclass
class SimGANConfig(RecipeConfig):
    data: str = "digits"          # the real images (the style to reach)
    synthetic: str = "fonts"      # the synthetic images to refine (any image data spec)
    blocks: int = 4               # ResNet blocks of the refiner (the paper's eye-gaze refiner: 4)
    width: int = 32               # refiner channels (the paper: 64; 8x8 digits need fewer)
    d_width: int = 32
    d_patches: int = 4            # D's output map is d_patches x d_patches local logits (§2.2; 1 = global D)
    reg_weight: float = 0.1       # lambda: self-regularization weight (mean |R(x) - x| per pixel; 0.1 beat 0.5
                                  # in benchmarks/beyond.py simgan)
    adv_weight: float = 1.0       # weight of the adversarial term in L_R; 0 = the ablation without it (R then
                                  # stays the identity it starts as: only self-regularization pulls on it)
    history: int = 512            # history buffer size in images; 0 = D sees only the current R
    refiner_steps: int = 2        # K_g: refiner updates per D update (Algorithm 1)
    batch_size: int = 64
    steps: int = 1500
    loss: str = "ns"              # the paper's per-patch cross-entropy, or another losses.ADVERSARIAL name

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        for key in ("blocks", "width", "d_width", "d_patches", "refiner_steps"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")
        if self.reg_weight < 0 or self.history < 0 or self.adv_weight < 0:
            raise GanforgeError("config keys 'reg_weight', 'adv_weight' and 'history' must be >= 0")


class HistoryBuffer:
    """Refined images D has seen (Shrivastava §2.3): D's refined batch = b/2 current + b/2 from the buffer.

    `mix(refined)` returns that batch (all current images while the buffer holds fewer than b/2) and then
    stores the current half: appended until `size` images are held, afterwards written over b/2 random
    slots. Randomness comes from its own generator; `state_dict()` is plain tensors, for exact resume.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: Tensor | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return 0 if self.images is None else self.images.shape[0]

    def mix(self, refined: Tensor) -> Tensor:
        refined = refined.detach()
        if self.size == 0:
            return refined
        half = refined.shape[0] // 2
        if len(self) >= half > 0:
            idx = torch.randint(len(self), (half,), generator=self.generator)
            out = torch.cat([refined[:refined.shape[0] - half], self.images[idx].to(refined.device)])
        else:
            out = refined
        self._push(refined[:max(half, 1)].cpu())
        return out

    def _push(self, new: Tensor) -> None:
        if self.images is None:
            self.images = new[:self.size].clone()
            return
        room = self.size - len(self)
        if room > 0:
            self.images = torch.cat([self.images, new[:room]])
            new = new[room:]
        if len(new):
            slots = torch.randperm(len(self), generator=self.generator)[:len(new)]
            self.images[slots] = new

    def state_dict(self) -> dict[str, Tensor]:
        return {"images": self.images if self.images is not None else torch.empty(0),
                "generator": self.generator.get_state(), "size": torch.tensor(self.size)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if int(state["size"]) != self.size:
            raise GanforgeError(f"history buffer state has size {int(state['size'])}, this run {self.size}; "
                                f"resume with the same history=")
        self.images = state["images"].clone() if state["images"].numel() else None
        self.generator.set_state(state["generator"])


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(True),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


class Refiner(nn.Module):
    """x -> clamp(x + r(x), -1, 1): conv3x3, `blocks` ResNet blocks at full resolution, conv1x1 (zero init)."""

    def __init__(self, channels: int, width: int = 64, blocks: int = 4):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(True),
                                 *[_Block(width) for _ in range(blocks)], nn.Conv2d(width, channels, 1))
        nn.init.zeros_(self.net[-1].weight), nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.net(x)).clamp(-1, 1)


class LocalDiscriminator(nn.Module):
    """Image -> N x p x p patch logits: conv3x3, stride-2 convs down to p x p (`patches`, default 4), 1x1 head
    (§2.2 local loss). Fewer patches see more of the image each (p = 1: one logit for the whole image)."""

    def __init__(self, channels: int, resolution: int, width: int = 64, patches: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2, True)]
        c, size = width, resolution
        while size > patches:
            layers += [nn.Conv2d(c, min(2 * c, 256), 3, 2, 1), nn.LeakyReLU(0.2, True)]
            c, size = min(2 * c, 256), (size + 1) // 2
        self.body = nn.Sequential(*layers, nn.Conv2d(c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).squeeze(1)


@RECIPES.register("simgan")
class SimGAN(ImageToImage):
    name = "simgan"
    Config = SimGANConfig
    # fonts -> digits (benchmarks/beyond.py simgan, 3 seeds): D at 1e-3 on 2x2 patches lifts the classifier on
    # refined fonts from 0.626 to 0.776 (the paper's D and lr: 0.691; a global D: 0.669); `paper` keeps those
    presets = {"fonts": {"d_lr": 2e-3, "d_patches": 2, "refiner_steps": 1}, "paper": {}}
    smoke = {"synthetic": "fonts:20", "width": 4, "d_width": 4, "blocks": 1, "history": 8}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.history = HistoryBuffer(cfg.history, seed=cfg.seed)
        self._synthetic = None

    @property
    def synthetic(self):
        if self._synthetic is None:   # loaded on first use: a loaded generator needs it only to sample
            self._synthetic = self.domain(self.cfg.synthetic)
        return self._synthetic

    def synthetic_images(self, n: int, device, generator: torch.Generator | None = None) -> Tensor:
        return self.synthetic.draw(n, device, generator)[0]

    def build(self) -> nn.ModuleDict:
        if self.info.kind != "image":
            raise GanforgeError(f"simgan refines images; {self.info.spec!r} holds {self.info.kind}")
        ch, res, _ = self.info.shape
        c = self.cfg
        return nn.ModuleDict({"G": Refiner(ch, c.width, c.blocks), "D": LocalDiscriminator(ch, res, c.d_width, c.d_patches)})

    # a refiner's sample inputs are synthetic images; generate = refine them
    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.synthetic_images(n, "cpu", generator)

    def generate(self, G, z, labels=None):
        if z.dim() != 4:
            raise GanforgeError("simgan refines images: give N x C x H x W synthetic images in [-1, 1]")
        return G(z)

    def phases(self, step: int) -> list[Phase]:
        return [Phase("D", "D", self.d_loss), Phase("R", "G", self.r_loss, repeat=self.cfg.refiner_steps)]

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        real = ctx.real
        with torch.no_grad():   # the D step must not build a graph into R
            refined = nets["G"](self.synthetic_images(real.shape[0], ctx.device))
        fake = self.history.mix(refined)
        out = L.d_loss(self.cfg.loss, real_logits=nets["D"](real), fake_logits=nets["D"](fake))
        out["acc_refined"] = out.pop("acc_fake")        # SimGAN's fakes are refined synthetic images
        return out

    def r_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        synthetic = self.synthetic_images(ctx.batch_size, ctx.device)
        refined = nets["G"](synthetic)
        adv = L.g_loss(self.cfg.loss, fake_logits=nets["D"](refined), score_real=lambda: nets["D"](ctx.real))
        reg = L.l1(fake=refined, target=synthetic)
        return {"loss": self.cfg.adv_weight * adv + self.cfg.reg_weight * reg, "adv": adv.detach(),
                "self_reg": reg.detach()}

    def state_dict(self) -> dict:
        return {"history": self.history.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.history.load_state_dict(state["history"])

    @torch.no_grad()
    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        # labelled columns synthetic | refined: a fixed draw, from its own generator
        from ..viz import save_columns
        G = nets["G"]
        x = self.synthetic_images(32, next(G.parameters()).device, torch.Generator().manual_seed(1234))
        was = G.training
        G.eval()
        refined = G(x)
        G.train(was)
        save_columns({"synthetic": x, "refined": refined}, Path(plots_dir) / f"refined-step-{step:06d}.png")
