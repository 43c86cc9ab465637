"""Adversarial losses as small pure functions.

Sign convention (one for the whole package): D returns logits, higher means "more real"; every function
returns a loss to MINIMIZE. Arguments are keyword-only so real and fake can never be swapped silently.

- Goodfellow et al. 2014 (arXiv:1406.2661), eq. 1: V(D, G) = E log D(x) + E log(1 - D(G(z))).
  D maximizes V  -> ns_d = -V (binary cross-entropy with targets 1 for real, 0 for fake).
  G minimizes V  -> minimax_g = E log(1 - D(G(z)))  (saturates when D rejects fakes confidently).
  Non-saturating G (§3 of the paper): maximize log D(G(z)) -> ns_g = -E log D(G(z)).
- Salimans et al. 2016 (arXiv:1606.03498) §3.4 one-sided label smoothing: real target 1 - smoothing, fake 0.
- Arjovsky 2017 (arXiv:1701.07875) Wasserstein, Lim & Ye 2017 / Miyato 2018 hinge, Mao 2017
  (arXiv:1611.04076) least squares with a=0, b=1, c=1.

Every loss computes in fp32 whatever its inputs' dtype (@fp32: precision.py's rule for mixed precision).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .precision import fp32


@fp32
def ns_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    """-V(D, G): BCE with real target 1 - smoothing (one-sided: fakes keep target 0)."""
    real_target = torch.full_like(real_logits, 1.0 - smoothing)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


@fp32
def ns_g(*, fake_logits: Tensor) -> Tensor:
    """-E log D(G(z)) = softplus(-logit): strong gradient when D rejects the fakes."""
    return F.softplus(-fake_logits).mean()


@fp32
def minimax_g(*, fake_logits: Tensor) -> Tensor:
    """E log(1 - D(G(z))) = -softplus(logit): the saturating loss of the original minimax game."""
    return -F.softplus(fake_logits).mean()


@fp32
def value(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """V(D, G) of Goodfellow eq. 1; equals -log 4 at the equilibrium D = 1/2."""
    return -(F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


@fp32
def wasserstein_d(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return fake_logits.mean() - real_logits.mean()


@fp32
def wasserstein_g(*, fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


@fp32
def hinge_d(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


@fp32
def hinge_g(*, fake_logits: Tensor) -> Tensor:
    return -fake_logits.mean()


@fp32
def lsgan_d(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Mao eq. 2 with b=1 (real), a=0 (fake), halves as in the paper."""
    return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


@fp32
def lsgan_g(*, fake_logits: Tensor) -> Tensor:
    """Mao eq. 2 with c=1: G wants D to output the real target."""
    return 0.5 * ((fake_logits - 1.0) ** 2).mean()


D_LOSSES = {"ns": ns_d, "minimax": ns_d, "wasserstein": wasserstein_d, "hinge": hinge_d, "lsgan": lsgan_d}
G_LOSSES = {"ns": ns_g, "minimax": minimax_g, "wasserstein": wasserstein_g, "hinge": hinge_g, "lsgan": lsgan_g}


@fp32
def l1(*, fake: Tensor, target: Tensor) -> Tensor:
    return (fake - target).abs().mean()


@fp32
def mse(*, fake: Tensor, target: Tensor) -> Tensor:
    return ((fake - target) ** 2).mean()
