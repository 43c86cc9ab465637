"""Adversarial losses: ONE registry, `ADVERSARIAL`, shared by every family with an adversarial term.

Sign convention (one for the whole package): D returns logits C(x), higher means "more real"; every function
returns a loss to MINIMIZE. Arguments are keyword-only so real and fake can never be swapped silently.

The registry maps a name - the `loss=` config key of gan, dcgan, cgan, wgan, wgan_gp, sngan, lsgan, progan,
stylegan, r3gan, pix2pix, cyclegan, srgan, text2image and simgan - to an `AdversarialLoss`:

  d(*, real_logits, fake_logits, smoothing=0.0)  D's loss
  g(*, fake_logits, real_logits=None)            G's loss
  needs_real   g reads real_logits, so a G step scores a real batch with D (and only then)
  smoothing    d has a real target that one-sided label smoothing may lower (the cross-entropy losses)
  accuracy     (acc_real, acc_fake): D's accuracy, the health signal every family logs
  signals      the loss's own health signals (V, W, ...), logged by the AdversarialRecipe families

With E_r / E_f the mean over the real / fake batch and sigma the logistic function:

- ns, minimax - Goodfellow et al. 2014 (arXiv:1406.2661), eq. 1: V(D, G) = E_r log D(x) + E_f log(1 - D(G(z))),
  D = sigma(C). D maximizes V:  L_D = -E_r log sigma(C(x_r)) - E_f log(1 - sigma(C(x_f)))  (= -V; BCE with
  targets 1 for real, 0 for fake). minimax: G minimizes V, L_G = E_f log(1 - sigma(C(x_f))) (saturates when D
  rejects fakes confidently); ns (§3 of the paper): G maximizes log D(G(z)), L_G = -E_f log sigma(C(x_f)).
  Salimans et al. 2016 (arXiv:1606.03498) §3.4 one-sided label smoothing: real target 1 - smoothing, fake 0.
- wasserstein - Arjovsky et al. 2017 (arXiv:1701.07875), eq. 3: L_D = E_f C(x_f) - E_r C(x_r),
  L_G = -E_f C(x_f) (C a Lipschitz critic: clipping or a gradient penalty keeps it so).
- hinge - Lim & Ye 2017 (arXiv:1705.02894), Miyato et al. 2018 (arXiv:1802.05957):
  L_D = E_r max(0, 1 - C(x_r)) + E_f max(0, 1 + C(x_f)), L_G = -E_f C(x_f).
- lsgan - Mao et al. 2017 (arXiv:1611.04076), eq. 2 with a = 0, b = 1, c = 1:
  L_D = 1/2 E_r (C(x_r) - 1)^2 + 1/2 E_f C(x_f)^2, L_G = 1/2 E_f (C(x_f) - 1)^2.
- ragan - relativistic average standard GAN, RaSGAN (Jolicoeur-Martineau 2018, arXiv:1807.00734): D judges
  whether a real sample is more realistic than the fakes on average, D~(x_r) = sigma(C(x_r) - E_f C(x_f)),
  and a fake than the reals, D~(x_f) = sigma(C(x_f) - E_r C(x_r)):
    L_D = -E_r log D~(x_r) - E_f log(1 - D~(x_f))
    L_G = -E_f log D~(x_f) - E_r log(1 - D~(x_r))        (the same with real and fake swapped)
  G's loss depends on D's scores of real data (needs_real); both equal 2 log 2 when C(x_r) = C(x_f).
  The averages run over every logit of the batch (all patches of a patch discriminator).
- rpgan - relativistic pairing GAN, RpGAN (Jolicoeur-Martineau 2018, arXiv:1807.00734, eq. 7; the loss of R3GAN,
  Huang et al. 2024, arXiv:2501.05441, eq. 2): D compares each real sample with the fake it is paired with,
    L_D = E_(r,f) softplus(-(C(x_r) - C(x_f)))        L_G = E_(r,f) softplus(-(C(x_f) - C(x_r)))
  so real and fake batches must have the same shape (pair i is row i; patches pair position by position).
  G's loss needs real logits (needs_real); both equal log 2 when C(x_r) = C(x_f). With R1 and R2 (R3GAN) the
  game has local convergence guarantees (Huang et al. 2024, §2-3), where RpGAN alone does not.

Adding a loss: its two functions (@fp32) and one `ADVERSARIAL` entry here, and its closed form in
tests/test_losses.py; every family's `loss=` accepts it, and tests/test_loss_registry.py trains it in each.

Every loss computes in fp32 whatever its inputs' dtype (@fp32: precision.py's rule for mixed precision).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import GanforgeError
from .precision import fp32


def _no_smoothing(name: str, smoothing: float) -> None:
    if smoothing:
        raise GanforgeError(f"label_smoothing applies to the cross-entropy losses only; {name} has no real "
                            f"target to smooth")


# -- Goodfellow 2014: the cross-entropy game ---------------------------------------------------------------------
@fp32
def ns_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    """-V(D, G): BCE with real target 1 - smoothing (one-sided: fakes keep target 0)."""
    real_target = torch.full_like(real_logits, 1.0 - smoothing)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


@fp32
def ns_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """-E log D(G(z)) = softplus(-logit): strong gradient when D rejects the fakes (real_logits unused)."""
    return F.softplus(-fake_logits).mean()


@fp32
def minimax_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """E log(1 - D(G(z))) = -softplus(logit): the saturating loss of the original minimax game."""
    return -F.softplus(fake_logits).mean()


@fp32
def value(*, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """V(D, G) of Goodfellow eq. 1; equals -log 4 at the equilibrium D = 1/2."""
    return -(F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


# -- Arjovsky 2017, Lim & Ye 2017, Mao 2017 --------------------------------------------------------------------
@fp32
def wasserstein_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    _no_smoothing("wasserstein", smoothing)
    return fake_logits.mean() - real_logits.mean()


@fp32
def wasserstein_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    return -fake_logits.mean()


@fp32
def hinge_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    _no_smoothing("hinge", smoothing)
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


@fp32
def hinge_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    return -fake_logits.mean()


@fp32
def lsgan_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mao eq. 2 with b=1 (real), a=0 (fake), halves as in the paper."""
    _no_smoothing("lsgan", smoothing)
    return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


@fp32
def lsgan_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """Mao eq. 2 with c=1: G wants D to output the real target."""
    return 0.5 * ((fake_logits - 1.0) ** 2).mean()


# -- Jolicoeur-Martineau 2018: relativistic average standard GAN -------------------------------------------------
@fp32
def ragan_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    """-E_r log sigma(C_r - E_f C_f) - E_f log(1 - sigma(C_f - E_r C_r)); BCE on the relative logits, the
    real target 1 - smoothing (one-sided, as ns_d)."""
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    return (F.binary_cross_entropy_with_logits(real_rel, torch.full_like(real_rel, 1.0 - smoothing))
            + F.binary_cross_entropy_with_logits(fake_rel, torch.zeros_like(fake_rel)))


@fp32
def ragan_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """-E_f log sigma(C_f - E_r C_r) - E_r log(1 - sigma(C_r - E_f C_f)): D's loss with the roles swapped."""
    if real_logits is None:
        raise TypeError("ragan's G loss compares the fakes with real data: pass real_logits (D on a real batch)")
    return ragan_d(real_logits=fake_logits, fake_logits=real_logits)


# -- Jolicoeur-Martineau 2018 eq. 7, Huang et al. 2024 eq. 2: relativistic pairing ---------------------------------
def _paired(real_logits: Tensor, fake_logits: Tensor) -> None:
    if real_logits.shape != fake_logits.shape:
        raise GanforgeError(f"rpgan pairs each real sample with one fake: D's real logits {tuple(real_logits.shape)} "
                            f"and fake logits {tuple(fake_logits.shape)} must have the same shape (same batch size)")


@fp32
def rpgan_d(*, real_logits: Tensor, fake_logits: Tensor, smoothing: float = 0.0) -> Tensor:
    """E softplus(-(C_r - C_f)) pair by pair: BCE on the paired difference, target 1 - smoothing."""
    _paired(real_logits, fake_logits)
    rel = real_logits - fake_logits
    return F.binary_cross_entropy_with_logits(rel, torch.full_like(rel, 1.0 - smoothing))


@fp32
def rpgan_g(*, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
    """E softplus(-(C_f - C_r)): G wants each fake scored above the real it is paired with."""
    if real_logits is None:
        raise TypeError("rpgan's G loss compares each fake with a real sample: pass real_logits (D on a real batch)")
    _paired(real_logits, fake_logits)
    return F.softplus(real_logits - fake_logits).mean()


# -- health signals ------------------------------------------------------------------------------------------
def _threshold(t: float) -> Callable[..., tuple[Tensor, Tensor]]:
    def accuracy(*, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        """D's accuracy with the logit threshold t between its real and fake targets."""
        return ((real_logits.detach().float() > t).float().mean(),
                (fake_logits.detach().float() < t).float().mean())
    return accuracy


def _relative_accuracy(*, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """A relativistic D is right about a real when it scores it above the fakes' mean (D~(x_r) > 1/2)."""
    r, f = real_logits.detach().float(), fake_logits.detach().float()
    return (r > f.mean()).float().mean(), (f < r.mean()).float().mean()


def _paired_accuracy(*, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """A pairing D is right about a pair when it scores the real above its fake (the same count both sides)."""
    right = (real_logits.detach().float() > fake_logits.detach().float()).float().mean()
    return right, right


def _no_signals(*, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    return {}


def _cross_entropy_signals(*, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """V(D, G) (tends to -log 4 at the equilibrium) and D's mean probability on each side."""
    r, f = real_logits.detach().float(), fake_logits.detach().float()
    return {"V": value(real_logits=r, fake_logits=f), "D_real": torch.sigmoid(r).mean(),
            "D_fake": torch.sigmoid(f).mean()}


def _wasserstein_signals(*, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """W = E C(real) - E C(fake): the critic's estimate of W_1(p_data, p_g) (Arjovsky eq. 3)."""
    return {"W": real_logits.detach().float().mean() - fake_logits.detach().float().mean()}


def _relativistic_signals(*, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """E_r D~(x_r) and E_f D~(x_f), the relativistic probabilities (both 1/2 when D cannot tell)."""
    r, f = real_logits.detach().float(), fake_logits.detach().float()
    return {"D_real": torch.sigmoid(r - f.mean()).mean(), "D_fake": torch.sigmoid(f - r.mean()).mean()}


def _pairing_signals(*, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """E sigma(C_r - C_f), D's probability that the real of a pair is the real one (1/2 when it cannot tell)."""
    return {"D_pair": torch.sigmoid(real_logits.detach().float() - fake_logits.detach().float()).mean()}


# -- the registry ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdversarialLoss:
    """One adversarial loss: D's and G's halves and what a family needs to know to use them."""
    d: Callable[..., Tensor]       # d(*, real_logits, fake_logits, smoothing=0.0) -> D's loss
    g: Callable[..., Tensor]       # g(*, fake_logits, real_logits=None) -> G's loss
    needs_real: bool = False       # g reads real_logits: the G step scores a real batch with D
    smoothing: bool = False        # d takes one-sided label smoothing (a cross-entropy real target)
    accuracy: Callable[..., tuple[Tensor, Tensor]] = _threshold(0.0)   # (acc_real, acc_fake), detached
    signals: Callable[..., dict[str, Tensor]] = _no_signals            # the loss's own health signals


ADVERSARIAL: dict[str, AdversarialLoss] = {
    "ns": AdversarialLoss(ns_d, ns_g, smoothing=True, signals=_cross_entropy_signals),
    "minimax": AdversarialLoss(ns_d, minimax_g, smoothing=True, signals=_cross_entropy_signals),
    "wasserstein": AdversarialLoss(wasserstein_d, wasserstein_g, signals=_wasserstein_signals),
    "hinge": AdversarialLoss(hinge_d, hinge_g),
    "lsgan": AdversarialLoss(lsgan_d, lsgan_g, accuracy=_threshold(0.5)),   # targets 0 and 1: boundary 1/2
    "ragan": AdversarialLoss(ragan_d, ragan_g, needs_real=True, smoothing=True, accuracy=_relative_accuracy,
                             signals=_relativistic_signals),
    "rpgan": AdversarialLoss(rpgan_d, rpgan_g, needs_real=True, smoothing=True, accuracy=_paired_accuracy,
                             signals=_pairing_signals),
}


def adversarial(name) -> AdversarialLoss:
    """The registry's entry for a `loss=` value; one GanforgeError naming the valid ones otherwise."""
    if not isinstance(name, str) or name not in ADVERSARIAL:
        raise GanforgeError(f"config key 'loss' must be one of {', '.join(ADVERSARIAL)}; got {name!r}")
    return ADVERSARIAL[name]


def d_loss(name: str, *, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
    """D's half of loss `name` with the health signal every family logs: {"loss", "acc_real", "acc_fake"}."""
    adv = adversarial(name)
    acc_real, acc_fake = adv.accuracy(real_logits=real_logits, fake_logits=fake_logits)
    return {"loss": adv.d(real_logits=real_logits, fake_logits=fake_logits), "acc_real": acc_real,
            "acc_fake": acc_fake}


def g_loss(name: str, *, fake_logits: Tensor, score_real: Callable[[], Tensor]) -> Tensor:
    """G's half of loss `name` for every family: `score_real()` (D on a real batch) is called, without a graph
    (only G updates in its step), only when the loss needs real logits (relativistic losses)."""
    adv = adversarial(name)
    real_logits = None
    if adv.needs_real:
        with torch.no_grad():
            real_logits = score_real()
    return adv.g(fake_logits=fake_logits, real_logits=real_logits)


# -- reconstruction distances ----------------------------------------------------------------------------------
@fp32
def l1(*, fake: Tensor, target: Tensor) -> Tensor:
    return (fake - target).abs().mean()


@fp32
def mse(*, fake: Tensor, target: Tensor) -> Tensor:
    return ((fake - target) ** 2).mean()
