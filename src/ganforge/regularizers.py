"""Regularizers for D (and one for both players): small pure functions; the caller multiplies by the weight.

- ``gradient_penalty``: Gulrajani et al. 2017, arXiv:1704.00028, eq. 3:
  E_{x_hat}[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps real + (1 - eps) fake, eps ~ U[0, 1] per sample.
  ``center=0`` is the zero-centred variant (Thanh-Tung et al. 2019, arXiv:1902.03984); ``one_sided`` is
  max(0, ||g|| - center)^2, the variant Gulrajani et al. (section 4) compare their two-sided penalty with.
- ``r1_penalty``: Mescheder et al. 2018, arXiv:1801.04406, eq. 9: E_real ||grad_x D(x)||^2 (times gamma/2).
- ``r2_penalty``: Mescheder et al. 2018, eq. 10: E_fake ||grad_x D(x)||^2 (times gamma/2; R3GAN's R2).
- ``drift_penalty``: Karras et al. 2018, arXiv:1710.10196, appendix A.1: eps_drift E_real[D(x)^2].
- ``historical_average`` / ``HistoricalAverage``: Salimans et al. 2016, arXiv:1606.03498, section 3.3:
  ||theta - (1/t) sum_i theta[i]||^2.
- ``instance_noise``: Sonderby et al. 2017, arXiv:1610.04490: Gaussian noise on D's inputs.

D is any callable from a tensor to logits (higher = more real).
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from .errors import GanforgeError
from .precision import wide

__all__ = ["gradient_penalty", "r1_penalty", "r2_penalty", "drift_penalty", "historical_average", "HistoricalAverage",
           "instance_noise"]


def _rand(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws from ``generator`` (on its own device, so a CPU generator drives CUDA data too)."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def _randn(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(device=like.device, dtype=like.dtype)


def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, *, center: float = 1.0,
                     one_sided: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - center)^2] on random interpolates of real and fake.

    Works for points (N x d) and images (N x C x H x W; the gradient is flattened per sample). The result
    keeps its graph into D's parameters (create_graph=True) and never reaches G: it is a D-only term.

    Precision: D is evaluated on x_hat, and differentiated, in float32 with autocast disabled, whatever the
    caller's autocast. Near the optimum ||g|| ~ 1 and the penalty is the square of a small difference, which
    bf16's 8-bit mantissa (~0.4% per element, compounded through the double backward) drowns; fp16 can also
    underflow or overflow here, because torch.autograd.grad bypasses the GradScaler's loss scaling. One fp32
    pass of D costs little next to that.
    """
    if real.shape != fake.shape:
        raise GanforgeError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} "
                            f"must have the same shape (same batch size too)")
    if real.ndim < 2:
        raise GanforgeError(f"gradient_penalty: expects a batch N x ..., got shape {tuple(real.shape)}")
    dtype = torch.promote_types(real.dtype, torch.float32)  # fp16/bf16 -> fp32; fp64 stays fp64
    eps = _rand((real.shape[0],) + (1,) * (real.ndim - 1), real, generator).to(dtype)
    # detach: the penalty is a function of D only; x_hat is a fresh leaf we differentiate against
    x_hat = (eps * real.detach().to(dtype) + (1 - eps) * fake.detach().to(dtype)).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        logits = D(x_hat)
        (g,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
        g = g.flatten(1)
        if center == 0:  # squared norm directly: no sqrt, so a smooth gradient at g = 0
            return g.pow(2).sum(1).mean()
        gap = torch.linalg.vector_norm(g, ord=2, dim=1) - center
        if one_sided:
            gap = gap.clamp(min=0)
        return gap.pow(2).mean()


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """E_real ||grad_x D(x)||^2, the mean squared gradient norm at the real samples (multiply by gamma/2).

    ``real`` must have had ``requires_grad_(True)`` before ``real_logits = D(real)``. Evaluate that D call
    outside autocast for the reasons given in ``gradient_penalty``.
    """
    return _squared_input_gradient(real_logits, real, "r1_penalty", "real")


def r2_penalty(fake_logits: Tensor, fake: Tensor) -> Tensor:
    """E_fake ||grad_x D(x)||^2 at the (detached) fake samples, multiply by gamma/2: R2 (Mescheder et al. 2018,
    arXiv:1801.04406, eq. 10; with R1 the penalty pair of R3GAN, Huang et al. 2024, arXiv:2501.05441, eq. 4).
    The same preconditions as r1_penalty, for ``fake``."""
    return _squared_input_gradient(fake_logits, fake, "r2_penalty", "fake")


def _squared_input_gradient(logits: Tensor, x: Tensor, name: str, arg: str) -> Tensor:
    if not x.requires_grad:
        raise GanforgeError(f"{name}: `{arg}` does not require grad; call {arg}.requires_grad_(True) "
                            f"before computing {arg}_logits = D({arg})")
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return wide(g).flatten(1).pow(2).sum(1).mean()


def drift_penalty(real_logits: Tensor) -> Tensor:
    """E_real[D(x)^2]: keeps a WGAN critic's output from drifting far from 0 (ProGAN uses weight 1e-3)."""
    return wide(real_logits).pow(2).mean()


def historical_average(params: Iterable[Tensor], averages: Iterable[Tensor]) -> Tensor:
    """sum_k ||theta_k - average_k||^2 over matching tensors; gradient flows into ``params`` only."""
    params, averages = list(params), list(averages)
    if len(params) != len(averages):
        raise GanforgeError(f"historical_average: {len(params)} parameters but {len(averages)} averages; "
                            f"pass the same parameter list that built the averages")
    if not params:
        raise GanforgeError("historical_average: no parameters given")
    total = 0.0
    for k, (theta, avg) in enumerate(zip(params, averages)):
        if theta.shape != avg.shape:
            raise GanforgeError(f"historical_average: parameter {k} has shape {tuple(theta.shape)} but its "
                                f"average has {tuple(avg.shape)}")
        total = total + (theta - avg.detach()).pow(2).sum()
    return total


class HistoricalAverage(nn.Module):
    """Running means of a parameter list, as buffers (``mean_0``, ``mean_1``, ..., ``count``).

    Created from the current parameters (so the penalty is 0 at first); ``update(params)`` after each
    optimizer step folds the new values in: after t updates the mean is over the t + 1 recorded values.
    ``self(params)`` returns the penalty. An nn.Module without parameters so that, placed among the nets,
    it moves with ``.to(device)`` and is saved and restored with the checkpoint.
    """

    def __init__(self, params: Iterable[Tensor]):
        super().__init__()
        params = list(params)
        self.size = len(params)
        for k, theta in enumerate(params):
            self.register_buffer(f"mean_{k}", theta.detach().clone())
        self.register_buffer("count", torch.ones((), dtype=torch.long))  # values averaged so far

    @property
    def averages(self) -> list[Tensor]:
        return [getattr(self, f"mean_{k}") for k in range(self.size)]

    @torch.no_grad()
    def update(self, params: Sequence[Tensor]) -> None:
        params = list(params)
        if len(params) != self.size:
            raise GanforgeError(f"HistoricalAverage.update: got {len(params)} parameters, "
                                f"built for {self.size}")
        self.count += 1
        for theta, avg in zip(params, self.averages):
            avg.add_((theta.detach() - avg) / self.count)  # incremental mean: exact, no stored history

    def forward(self, params: Iterable[Tensor]) -> Tensor:
        return historical_average(params, self.averages)


def instance_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """x + N(0, std^2) noise, applied to both real and fake before D; the caller anneals ``std`` to 0."""
    if std < 0:
        raise GanforgeError(f"instance_noise: std must be >= 0, got {std}")
    if std == 0:
        return x
    return x + std * _randn(x.shape, x, generator)
