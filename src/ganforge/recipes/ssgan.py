"""`ssgan` - semi-supervised GAN (Salimans et al. 2016, arXiv:1606.03498, §5 and §3.1).

D is a classifier over K real classes plus "generated" (class K+1). Fixing the K+1 logit at 0 (the
logsumexp form), with Z(x) = sum_k exp(l_k(x)):

  p(y = K+1 | x) = 1 / (Z(x) + 1),   D(x) = 1 - p(K+1 | x) = Z(x) / (Z(x) + 1) = sigmoid(logsumexp_k l_k(x))

  L_D = L_supervised + w * L_unsupervised
  L_supervised   = -E_{(x,y) labelled} log p(y | x, y < K+1)           (cross-entropy on the K logits)
  L_unsupervised = -E_x log D(x) - E_z log(1 - D(G(z)))
                 = -E_x [lse(x) - softplus(lse(x))] + E_z softplus(lse(G(z)))

G is trained with feature matching (§3.1): || E_x f(x) - E_z f(G(z)) ||^2 on D's last hidden layer.
L_unsupervised is the ns loss of losses.ADVERSARIAL on D's logit C(x) = lse(x); `loss=` puts any other entry
on that logit (for L_unsupervised, and for G's loss when feature_matching=false; a G half that reads real
scores, ragan, then scores a real batch too).
D is the paper's MNIST design scaled to 8x8 digits: an MLP with Gaussian noise added to its input and to
each hidden layer's output while training.

`labels_per_class` picks the labelled subset (seeded by `seed`); every training image is used unlabelled.
`unsupervised=false` trains the same D on the labelled subset only: the supervised-only baseline.
The test error of D's classifier is appended to plots/test_error.jsonl at every sample step (on_sample_step).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses as L
from ..errors import GanforgeError
from ..precision import wide
from ..registry import RECIPES
from .base import Nets, Phase, Recipe, RecipeConfig, StepContext


@dataclass
class SSGANConfig(RecipeConfig):
    data: str = "digits"
    labels_per_class: int = 10        # labelled examples per class; the rest of the train split is unlabelled
    unsupervised: bool = True         # false: supervised-only baseline (same D, labelled subset only)
    unsup_weight: float = 1.0         # w, weight of L_unsupervised
    feature_matching: bool = True     # G loss: feature matching (§3.1); false: non-saturating -log D(G(z))
    fm_layer: int = -1                # which of D's hidden layers feature matching reads (-1: the last)
    d_hidden: tuple[int, ...] = (256, 128, 128)
    g_hidden: int = 256
    input_noise: float = 0.3          # std of Gaussian noise on D's input (training only)
    hidden_noise: float = 0.5         # std of Gaussian noise on each D hidden layer's output (training only)
    z_dim: int = 64
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    batch_size: int = 100
    steps: int = 10000
    lr_decay_start: float = 0.5       # both lrs decay linearly to 0 over the second half
    loss: str = "ns"                  # the paper's (the K+1 cross-entropy), or another losses.ADVERSARIAL name

    def check(self) -> None:
        super().check()
        L.adversarial(self.loss)
        if self.labels_per_class < 1:
            raise GanforgeError(f"config key 'labels_per_class' must be >= 1; got {self.labels_per_class}")
        if self.input_noise < 0 or self.hidden_noise < 0 or not self.d_hidden:
            raise GanforgeError("ssgan: noise stds must be >= 0 and d_hidden must list at least one width")
        if not -len(self.d_hidden) <= self.fm_layer < len(self.d_hidden):
            raise GanforgeError(f"config key 'fm_layer' must index d_hidden ({len(self.d_hidden)} layers); "
                                f"got {self.fm_layer}")


def log_d(logits: Tensor) -> Tensor:
    """log D(x) with D(x) = Z/(Z+1): lse - softplus(lse)."""
    lse = torch.logsumexp(wide(logits), dim=1)          # fp32 under autocast (precision.py)
    return lse - F.softplus(lse)


def log_one_minus_d(logits: Tensor) -> Tensor:
    """log(1 - D(x)) = log p(K+1 | x) = -softplus(lse)."""
    return -F.softplus(torch.logsumexp(wide(logits), dim=1))


def d_logit(logits: Tensor) -> Tensor:
    """D's real-vs-generated logit C(x) = lse_k l_k(x): D(x) = sigmoid(C(x)) with the K+1 logit fixed at 0."""
    return torch.logsumexp(wide(logits), dim=1)


def unsupervised_d(*, real_logits: Tensor, fake_logits: Tensor, loss: str = "ns") -> Tensor:
    """L_unsupervised = -E log D(x) - E log(1 - D(G(z))) with the K+1 logsumexp form: the registry's ns loss
    on C = lse (another `loss` puts that entry's D half on C)."""
    return L.ADVERSARIAL[loss].d(real_logits=d_logit(real_logits), fake_logits=d_logit(fake_logits))


def feature_matching(*, real_features: Tensor, fake_features: Tensor) -> Tensor:
    """|| E f(x) - E f(G(z)) ||_2^2 over the batch means (Salimans §3.1)."""
    return (wide(real_features).mean(0) - wide(fake_features).mean(0)).pow(2).sum()


class BatchNormMLPGenerator(nn.Module):
    """The paper's MNIST G: z -> [Linear, BatchNorm, Softplus] x 2 -> Linear -> tanh (images) / identity."""

    def __init__(self, z_dim: int, out_shape, hidden: int, tanh: bool):
        super().__init__()
        self.out_shape, self.tanh = tuple(out_shape), tanh
        d = 1
        for s in out_shape:
            d *= s
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.BatchNorm1d(hidden), nn.Softplus(),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.Softplus(), nn.Linear(hidden, d))

    def forward(self, z: Tensor) -> Tensor:
        x = self.net(z)
        return (x.tanh() if self.tanh else x).view(z.shape[0], *self.out_shape)


class NoisyMLPClassifier(nn.Module):
    """x -> K logits; Gaussian noise on the input and on every hidden output while training."""

    def __init__(self, in_shape, hidden, num_classes: int, input_noise: float, hidden_noise: float):
        super().__init__()
        d = 1
        for s in in_shape:
            d *= s
        sizes = [d, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(sizes[-1], num_classes)
        self.input_noise, self.hidden_noise = input_noise, hidden_noise

    def _noise(self, x: Tensor, std: float) -> Tensor:
        return x + std * torch.randn_like(x) if self.training and std > 0 else x

    def features(self, x: Tensor, layer: int = -1) -> Tensor:
        """The output of hidden layer `layer` (noise included while training; -1: the last)."""
        stop = layer % len(self.layers)
        h = self._noise(x.flatten(1), self.input_noise)
        for i, lin in enumerate(self.layers[:stop + 1]):
            h = self._noise(F.leaky_relu(lin(h), 0.2), self.hidden_noise)
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@RECIPES.register("ssgan")
class SSGAN(Recipe):
    name = "ssgan"
    Config = SSGANConfig
    presets = {"digits": {}, "digits-5": {"labels_per_class": 5}, "digits-20": {"labels_per_class": 20},
               "digits-supervised": {"unsupervised": False}}
    smoke = {"d_hidden": (16,), "g_hidden": 16, "z_dim": 8, "labels_per_class": 2}

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self._labelled: tuple[Tensor, Tensor] | None = None

    def build(self) -> nn.ModuleDict:
        c, info = self.cfg, self.info
        if info.num_classes < 2:
            raise GanforgeError(f"ssgan needs labelled data for its few labels; {info.spec!r} has no classes. "
                                f"Use digits, mnist:DIR, cifar10:DIR or a folder with one sub-folder per class")
        return nn.ModuleDict({
            "G": BatchNormMLPGenerator(c.z_dim, info.shape, c.g_hidden, tanh=info.kind == "image"),
            "D": NoisyMLPClassifier(info.shape, c.d_hidden, info.num_classes, c.input_noise, c.hidden_noise),
        })

    def labelled(self) -> tuple[Tensor, Tensor]:
        """The labelled subset: `labels_per_class` images of each class, chosen by a generator seeded with `seed`."""
        if self._labelled is None:
            c = self.cfg
            data, _ = self.data_split("train")
            g = torch.Generator().manual_seed(c.seed)
            pick = []
            for k in range(self.info.num_classes):
                members = (data.y == k).nonzero().flatten()
                if len(members) < c.labels_per_class:
                    raise GanforgeError(f"class {k} of {c.data!r} has {len(members)} images, fewer than "
                                        f"labels_per_class={c.labels_per_class}")
                pick.append(members[torch.randperm(len(members), generator=g)[:c.labels_per_class]])
            idx = torch.cat(pick)
            self._labelled = (data.batch(idx)["real"], data.y[idx])
        return self._labelled

    def phases(self, step: int) -> list[Phase]:
        if not self.cfg.unsupervised:
            return [Phase("D", "D", self.d_loss)]
        return [Phase("D", "D", self.d_loss), Phase("G", "G", self.g_loss)]

    def d_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        D = nets["D"]
        x_lab, y_lab = self.labelled()
        idx = torch.randint(len(y_lab), (ctx.batch_size,))     # global RNG: restored on resume
        sup_logits = D(x_lab[idx].to(ctx.device))
        sup = F.cross_entropy(sup_logits, y_lab[idx].to(ctx.device))
        logs = {"supervised": sup.detach(), "train_acc": (sup_logits.argmax(1).cpu() == y_lab[idx]).float().mean()}
        if not self.cfg.unsupervised:
            return {"loss": sup, **logs}
        real = ctx.real          # all train images, labels ignored
        with torch.no_grad():
            fake = nets["G"](self.noise(real.shape[0], ctx.device))
        real_logits, fake_logits = D(real), D(fake)
        unsup = unsupervised_d(real_logits=real_logits, fake_logits=fake_logits, loss=self.cfg.loss)
        return {"loss": sup + self.cfg.unsup_weight * unsup, "unsupervised": unsup.detach(),
                "D_real": log_d(real_logits.float()).exp().mean(), "D_fake": log_d(fake_logits.float()).exp().mean(),
                **logs}

    def g_loss(self, nets: Nets, ctx: StepContext) -> dict[str, Tensor]:
        D = nets["D"]
        fake = nets["G"](self.noise(ctx.batch_size, ctx.device))
        if self.cfg.feature_matching:
            with torch.no_grad():
                real_features = D.features(ctx.real, self.cfg.fm_layer)
            return {"loss": feature_matching(real_features=real_features,
                                             fake_features=D.features(fake, self.cfg.fm_layer))}
        # ns: -E log D(G(z)), the non-saturating loss on C = lse
        return {"loss": L.g_loss(self.cfg.loss, fake_logits=d_logit(D(fake)), score_real=lambda: d_logit(D(ctx.real)))}

    @torch.no_grad()
    def test_error(self, D: nn.Module, split: str = "test") -> float:
        """Error of D's K-way classifier on the data's `split` (eval mode: no noise)."""
        data, _ = self.data_split(split)
        was = D.training
        D.eval()
        device = next(D.parameters()).device
        pred = torch.cat([D(data.batch(torch.arange(i, min(i + 512, len(data))))["real"].to(device)).argmax(1).cpu()
                          for i in range(0, len(data), 512)])
        D.train(was)
        return (pred != data.y).double().mean().item()

    def on_sample_step(self, nets: Nets, plots_dir, step: int) -> None:
        """A readout, not a picture: appends D's test error to plots/test_error.jsonl."""
        row = {"step": step, "test_error": round(self.test_error(nets["D"]), 6),
               "labels_per_class": self.cfg.labels_per_class, "unsupervised": self.cfg.unsupervised}
        path = Path(plots_dir) / "test_error.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
