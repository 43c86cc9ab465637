"""`dann` - domain-adversarial training (Ganin & Lempitsky 2015, arXiv:1409.7495).

A feature extractor F feeds a label classifier C (trained on the labelled source domain) and a domain
classifier Dom (source vs target) placed behind a gradient reversal layer R_lambda: identity forward,
-lambda * gradient backward (eq. 18, nn/layers.grad_reverse). One joint phase minimizes

  E = L_y(C(F(x_s)), y_s) + L_d(Dom(R_lambda(F(x))), d)        over F, C and Dom together,

so Dom descends L_d while F ascends it (the saddle point of eq. 10): features that predict the label but
not the domain. lambda follows the paper's schedule lambda_p = 2 / (1 + exp(-gamma p)) - 1 with gamma = 10
and p = step / steps the training progress (§5.2.2), scaled by `domain_weight`.

Data: `data` is the TARGET domain, whose labels are never read in training (only for the reported accuracy
on its test split); `source` is the labelled SOURCE domain (any labelled image spec, brought to the
target's resolution and channels). Offline task: fonts (rendered digits) -> digits (handwritten).
`adapt=false` trains F and C on the source alone: the source-only baseline.
DANN generates nothing (an ImageToImage recipe whose generate() is the identity): its sample grids show
source images; on_sample_step appends the target and source test accuracies to plots/accuracy.jsonl.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import GanforgeError
from ..nn.layers import grad_reverse
from ..registry import RECIPES
from .base import ImageToImage, Nets, Phase, RecipeConfig, StepContext


@dataclass
class DANNConfig(RecipeConfig):
    data: str = "digits"          # target domain (unlabelled in training)
    source: str = "fonts"         # labelled source domain
    adapt: bool = True            # false: source-only baseline (no domain classifier loss)
    domain_weight: float = 1.0    # lambda_max: lambda = domain_weight * lambda_p
    gamma: float = 10.0           # steepness of lambda_p = 2 / (1 + exp(-gamma p)) - 1
    width: int = 32               # F's first conv channels (then 2x, 2x)
    hidden: int = 100             # hidden units of C and Dom (the paper's MNIST nets: 100)
    d_lr: float = 1e-3            # the single joint player "all" uses d_lr
    lr_anneal: bool = False       # the paper's mu_p = mu_0 / (1 + 10 p)^0.75 (§5.2.2); false: constant lr
    shift: float = 1.0            # random translation of source images by up to this many pixels (0: none)
    target_entropy: float = 0.0   # weight of the entropy of C's prediction on target images (0: plain DANN)
    conditional: bool = False     # CDAN: Dom sees f (x) softmax(C(f)), aligning each class's features (not DANN's)
    entropy_weight: bool = False  # CDAN+E: each example's domain loss weighted by 1 + exp(-H(g)) (needs conditional)
    batch_size: int = 64          # per domain
    steps: int = 8000             # fonts -> digits: +17.5 points over source-only; at 4,000: +12 (docs/dann.md)

    def check(self) -> None:
        super().check()
        if self.domain_weight < 0 or self.gamma <= 0:
            raise GanforgeError("config keys 'domain_weight' must be >= 0 and 'gamma' > 0")
        if self.shift < 0 or self.target_entropy < 0:
            raise GanforgeError("config keys 'shift' and 'target_entropy' must be >= 0")
        if self.entropy_weight and not self.conditional:
            raise GanforgeError("config key 'entropy_weight' is CDAN+E's: set conditional=true with it")


def shift_images(x: Tensor, pixels: float) -> Tensor:
    """Each image translated by its own random (dx, dy), uniform in [-pixels, pixels] (bilinear; the border
    value, the background, fills in). Global RNG, like the source draws."""
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    t = (torch.rand(n, 2, device=x.device) * 2 - 1) * pixels * torch.tensor([2.0 / w, 2.0 / h], device=x.device)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def lambda_schedule(p: float, gamma: float = 10.0) -> float:
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1: 0 at p = 0, -> 1 as p -> 1 (Ganin §5.2.2)."""
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class FeatureExtractor(nn.Module):
    """Conv w-2w-4w (two 2x2 pools) -> adaptive 2x2 pool -> 4w*4 features (any resolution >= 4)."""

    def __init__(self, channels: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.dim = 16 * width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(True), nn.Linear(hidden, d_out))


@RECIPES.register("dann")
class DANN(ImageToImage):
    name = "dann"
    Config = DANNConfig
    players = {"all": ("F", "C", "Dom")}
    sampler = "F"      # what the trainer's sampler hands to generate(); DANN's generate ignores it
    generates = False  # so the CLI suggests no `ganforge sample` after training
    presets = {"fonts2digits": {}, "fonts2digits-source-only": {"adapt": False}}
    smoke = {"source": "fonts:20", "width": 4, "hidden": 8}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self._source = None

    @property
    def source(self):
        if self._source is None:
            self._source = self.domain(self.cfg.source)
            if self._source.y is None or self._source.info.num_classes < 2:
                raise GanforgeError(f"dann's source domain {self.cfg.source!r} has no labels; give a labelled "
                                    f"spec (fonts, digits, mnist:DIR, folder:PATH with one sub-folder per class)")
        return self._source

    def build(self) -> nn.ModuleDict:
        if self.info.kind != "image":
            raise GanforgeError(f"dann works on images; {self.info.spec!r} holds {self.info.kind}")
        k = self.source.info.num_classes
        F_ = FeatureExtractor(self.info.shape[0], self.cfg.width)
        d_in = F_.dim * k if self.cfg.conditional else F_.dim
        return nn.ModuleDict({"F": F_, "C": _mlp(F_.dim, self.cfg.hidden, k), "Dom": _mlp(d_in, self.cfg.hidden, 1)})

    @staticmethod
    def domain_input(f: Tensor, class_logits: Tensor | None) -> Tensor:
        """What Dom judges: the features f, or (given C's logits, `conditional`) CDAN's multilinear map f (x) g,
        g = softmax(C(f)) (Long et al. 2018, arXiv:1705.10667, eq. 4-5), so matching the domains means matching
        each class's features, not only their mixture. g is a constant there, as in the authors' code: the
        reversed gradient reaches F through f alone."""
        if class_logits is None:
            return f
        g = F.softmax(class_logits.detach(), 1)
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)

    def lambd(self, step: int) -> float:
        return self.cfg.domain_weight * lambda_schedule(step / self.cfg.steps, self.cfg.gamma)

    def optimizer_schedule(self, step: int) -> dict[str, dict[str, float]]:
        if not self.cfg.lr_anneal:
            return {}
        return {"all": {"lr": (1.0 + 10.0 * step / self.cfg.steps) ** -0.75}}

    def phases(self, step: int) -> list[Phase]:
        return [Phase("all", "all", self.loss)]

    def loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        xs, ys = self.source.draw(ctx.batch_size, ctx.device)        # global RNG: restored on resume
        xs = shift_images(xs, self.cfg.shift)
        fs = nets["F"](xs)
        logits = nets["C"](fs)
        label_loss = F.cross_entropy(logits, ys)
        logs = {"label": label_loss.detach(), "source_acc": (logits.argmax(1) == ys).float().mean()}
        if not self.cfg.adapt:
            return {"loss": label_loss, **logs}
        ft = nets["F"](ctx.real)                                     # target images; their labels are never read
        lam = self.lambd(ctx.step)
        f = torch.cat([fs, ft])
        class_logits = nets["C"](f).detach() if self.cfg.conditional else None   # CDAN's g, and CDAN+E's H(g)
        d_logits = nets["Dom"](grad_reverse(self.domain_input(f, class_logits), lam)).squeeze(1)
        d_target = torch.cat([torch.ones(len(fs)), torch.zeros(len(ft))]).to(d_logits)   # 1 = source
        if self.cfg.entropy_weight:
            domain_loss = self.weighted_domain_loss(class_logits, d_logits, d_target)
        else:
            domain_loss = F.binary_cross_entropy_with_logits(d_logits, d_target)
        loss = label_loss + domain_loss
        if self.cfg.target_entropy > 0:
            logp = F.log_softmax(nets["C"](ft), 1)
            entropy = -(logp.exp() * logp).sum(1).mean()
            loss = loss + self.cfg.target_entropy * entropy
            logs["target_entropy"] = entropy.detach()
        return {"loss": loss, "domain": domain_loss.detach(),
                "domain_acc": ((d_logits > 0).float() == d_target).float().mean(),
                "lambda": torch.tensor(lam), **logs}

    @staticmethod
    def weighted_domain_loss(class_logits: Tensor, d_logits: Tensor, d_target: Tensor) -> Tensor:
        """CDAN+E (Long et al. 2018, eq. 8): example i's domain loss weighted by w_i = 1 + exp(-H(g_i)), g_i its
        class prediction, so confident examples steer the alignment and uncertain ones (the likely wrong
        classes of a target batch) matter less; weights normalised within each domain, as in the authors' code."""
        with torch.no_grad():
            logp = F.log_softmax(class_logits, 1)
            w = 1 + torch.exp((logp.exp() * logp).sum(1))              # 1 + exp(-H)
            for side in (d_target == 1, d_target == 0):
                w[side] = w[side] / w[side].sum()
        bce = F.binary_cross_entropy_with_logits(d_logits, d_target, reduction="none")
        return (w * bce).sum() / w.sum()

    # DANN generates nothing; the trainer's sample grids show source images
    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.source.draw(n, "cpu", generator)[0]

    def generate(self, G, z, labels=None):
        if z.dim() != 4:
            raise GanforgeError("dann is a classifier, not a generator: it has nothing to sample")
        return z

    @torch.no_grad()
    def predict(self, nets: Nets, images: Tensor) -> Tensor:
        """The class C(F(x)) gives each image (eval mode; the nets' modes are restored)."""
        F_, C = nets["F"], nets["C"]
        was = F_.training, C.training
        F_.eval(), C.eval()
        device = next(F_.parameters()).device
        pred = torch.cat([C(F_(images[i:i + 512].to(device))).argmax(1).cpu() for i in range(0, len(images), 512)])
        F_.train(was[0]), C.train(was[1])
        return pred

    def accuracy(self, nets: Nets, images: Tensor, labels: Tensor) -> float:
        return (self.predict(nets, images) == labels).double().mean().item()

    def test_accuracy(self, nets: Nets) -> dict[str, float]:
        """Accuracy of C(F(.)) on the test splits of the target (`data`) and the source."""
        target, _ = self.data_split("test")
        source = self.domain(self.cfg.source, "test")
        out = {"source": self.accuracy(nets, source.images(), source.y)}
        if target.y is not None:
            out["target"] = self.accuracy(nets, target.batch(torch.arange(len(target)))["real"], target.y)
        return out

    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        """Appends this step's test accuracies to plots/accuracy.jsonl, and draws plots/predictions-step-N.png:
        one labelled column per class, holding the first 8 target test images C(F(.)) puts in that class
        (white where fewer), so a wrong column is visible at a glance."""
        from ..viz import save_columns
        row = {"step": step, **{f"{k}_accuracy": round(v, 6) for k, v in self.test_accuracy(nets).items()},
               "adapt": self.cfg.adapt}
        path = Path(plots_dir) / "accuracy.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        target, _ = self.data_split("test")
        images = target.batch(torch.arange(min(len(target), 512)))["real"]
        pred = self.predict(nets, images)
        blank = torch.ones(8, *images.shape[1:])
        columns = {str(k): torch.cat([images[pred == k][:8], blank])[:8] for k in range(self.source.info.num_classes)}
        save_columns(columns, path.parent / f"predictions-step-{step:06d}.png")
