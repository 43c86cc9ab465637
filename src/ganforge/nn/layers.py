"""Layers for stable GAN training.

- ``spectral_norm``: Miyato et al. 2018, arXiv:1802.05957, eq. 8 (W_SN = W / sigma(W)) with sigma estimated
  by the power iteration of their Algorithm 1 (one iteration per training forward).
- ``MinibatchDiscrimination``: Salimans et al. 2016, arXiv:1606.03498, section 3.2
  (M_i = x_i T, c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_L1), o(x_i)_b = sum_{j != i} c_b(x_i, x_j)).
- ``VirtualBatchNorm``: same paper, section 3.4 (statistics of a fixed reference batch plus the example
  itself).
- ``GradientReversal`` / ``grad_reverse``: Ganin & Lempitsky 2015, arXiv:1409.7495, eq. 13
  (R(x) = x forward, dR/dx = -lambda I backward).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from ..errors import GanforgeError

__all__ = ["spectral_norm", "MinibatchDiscrimination", "VirtualBatchNorm", "GradientReversal", "grad_reverse"]


def norm2d(kind: str, channels: int, allowed=("batch", "instance", "layer", "none"),
           instance_affine: bool = True) -> nn.Module:
    """The normalisation layer a model's `norm=` names: batch, instance (affine as the family's reference code
    has it: pix2pix/CycleGAN's is not), layer (GroupNorm with one group) or none. ValueError lists `allowed`."""
    if kind not in allowed:
        raise ValueError(f"unknown norm {kind!r}; use {', '.join(allowed)}")
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=instance_affine)
    return nn.GroupNorm(1, channels) if kind == "layer" else nn.Identity()


def spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Divide ``module.weight`` by its largest singular value; returns the same module.

    Wraps ``torch.nn.utils.parametrizations.spectral_norm``, whose behaviour is the paper's: the kernel is
    reshaped to [out, in*k*k] (we pass ``dim=1`` for transposed convolutions, whose kernels are stored
    [in, out, k, k]), ``n_power_iterations`` steps of the power method run on every forward in training mode
    and none in eval mode, and u, v are buffers (``parametrizations.weight.0._u`` / ``._v``) so a checkpoint
    restores the estimate instead of restarting it. The estimate is warmed up with 15 iterations at wrap time.
    The iteration runs whenever ``weight`` is read in training mode: once per D call, the gradient penalty's
    included. State-dict keys become ``parametrizations.weight.original`` (and ``..._u``, ``..._v``).
    """
    if n_power_iterations < 1:
        raise GanforgeError(f"spectral_norm: n_power_iterations must be >= 1, got {n_power_iterations}")
    if not isinstance(getattr(module, "weight", None), Tensor):
        raise GanforgeError(f"spectral_norm: {type(module).__name__} has no 'weight' tensor to normalise")
    is_transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
    return parametrizations.spectral_norm(module, n_power_iterations=n_power_iterations,
                                          dim=1 if is_transposed else 0)


class MinibatchDiscrimination(nn.Module):
    """Append to each example's features how close it is to the other examples of its batch.

    Input N x A features, output N x (A + B) = concat(x, o(x)) with B = ``num_kernels``: a collapsed
    generator produces near-identical examples, so o(x) ~ N-1, which D learns to call fake.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int):
        super().__init__()
        self.in_features, self.num_kernels, self.kernel_dim = in_features, num_kernels, kernel_dim
        # T in R^{A x B x C}. Std 1/sqrt(A) gives each kernel column about unit norm, the initial scale of the
        # reference code (weight-normalised columns): larger M makes every exp(-L1) ~ 0 and the feature dead.
        self.T = nn.Parameter(torch.randn(in_features, num_kernels, kernel_dim) / in_features ** 0.5)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise GanforgeError(f"MinibatchDiscrimination expects N x {self.in_features} features, got "
                                f"{tuple(x.shape)}; flatten D's features first (x.flatten(1))")
        n = x.shape[0]
        M = (x @ self.T.flatten(1)).view(n, self.num_kernels, self.kernel_dim)  # N x B x C
        l1 = (M.unsqueeze(1) - M.unsqueeze(0)).abs().sum(-1)  # N x N x B: ||M_i,b - M_j,b||_1
        c = torch.exp(-l1)
        # j != i: the paper's sum runs over the other examples (the reference code masks the diagonal too)
        others = ~torch.eye(n, dtype=torch.bool, device=x.device)
        o = (c * others.unsqueeze(-1)).sum(1)  # N x B
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"


class VirtualBatchNorm(nn.Module):
    """Batch norm whose statistics come from a fixed reference batch plus the example being normalised.

    Call ``set_reference(x_ref)`` once before training; then each example x of any batch is normalised with
    the mean and (biased) variance of the pooled set ref U {x} (over N, H, W for N x C x H x W inputs), so
    its output does not depend on the rest of its batch. The reference statistics live in buffers and are
    saved with the weights. They are stored detached: calling ``set_reference`` again (e.g. on this layer's
    activations of the same reference examples each step, as the paper's G does) refreshes them, and it
    returns the reference batch normalised by its own statistics so a deeper VBN layer can be fed in turn.
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("ref_mean", torch.zeros(num_features))
        self.register_buffer("ref_var", torch.ones(num_features))
        # number of examples in the reference batch; 0 until set_reference
        self.register_buffer("ref_count", torch.zeros((), dtype=torch.long))

    def _check(self, x: Tensor) -> None:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise GanforgeError(f"VirtualBatchNorm({self.num_features}) expects N x {self.num_features} or "
                                f"N x {self.num_features} x H x W, got {tuple(x.shape)}")

    def _affine(self, x_hat: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x_hat.ndim - 2)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)

    @torch.no_grad()
    def set_reference(self, x_ref: Tensor) -> Tensor:
        self._check(x_ref)
        dims = [0] + list(range(2, x_ref.ndim))
        var, mean = torch.var_mean(x_ref.float(), dim=dims, unbiased=False)
        self.ref_mean.copy_(mean)
        self.ref_var.copy_(var)
        self.ref_count.fill_(x_ref.shape[0])
        shape = (1, -1) + (1,) * (x_ref.ndim - 2)
        return self._affine((x_ref - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        n = int(self.ref_count)
        if n == 0:
            raise GanforgeError("VirtualBatchNorm: no reference batch; call set_reference(x_ref) "
                                "before forward")
        shape = (x.shape[0], -1) + (1,) * (x.ndim - 2)
        if x.ndim == 4:  # each example's own per-channel statistics over H x W
            var_x, mean_x = torch.var_mean(x, dim=(2, 3), unbiased=False)
        else:
            var_x, mean_x = torch.zeros_like(x), x
        # Pooled statistics of ref U {x}: the example weighs like one reference example. Combining variances
        # (Chan et al.) instead of E[x^2] - E[x]^2 avoids cancellation when |mean| >> std.
        delta = mean_x - self.ref_mean
        mean = self.ref_mean + delta / (n + 1)
        var = (n * self.ref_var + var_x) / (n + 1) + n * delta ** 2 / (n + 1) ** 2
        x_hat = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return self._affine(x_hat)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, lambd: float) -> Tensor:
        ctx.lambd = lambd
        return x.view_as(x)  # a view, not x itself: autograd needs a new tensor to attach backward to

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        return grad_output * (-ctx.lambd), None


def grad_reverse(x: Tensor, lambd: float = 1.0) -> Tensor:
    """Identity forward; multiplies the incoming gradient by -lambd backward (DANN's feature extractor
    ascends the domain classifier's loss through it)."""
    return _GradReverse.apply(x, float(lambd))


class GradientReversal(nn.Module):
    """Module form of ``grad_reverse``; set ``.lambd`` during training for DANN's schedule
    lambda_p = 2 / (1 + exp(-10 p)) - 1."""

    def __init__(self, lambd: float = 1.0):
        super().__init__()
        self.lambd = lambd

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"
