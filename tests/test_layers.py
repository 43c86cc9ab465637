"""Facts about nn/layers.py: spectral norm, minibatch discrimination, virtual batch norm,
gradient reversal."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.nn.layers import (GradientReversal, MinibatchDiscrimination, VirtualBatchNorm, grad_reverse,
                                spectral_norm)


def _sigma(weight: torch.Tensor, transposed: bool = False) -> float:
    w = weight.transpose(0, 1) if transposed else weight
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()


# ---------------------------------------------------------------- spectral norm

@pytest.mark.parametrize("make, transposed", [
    (lambda: nn.Linear(20, 30), False),
    (lambda: nn.Conv2d(3, 16, 3), False),
    (lambda: nn.Conv2d(8, 4, 4, stride=2), False),
    (lambda: nn.ConvTranspose2d(8, 4, 4), True),
])
def test_spectral_norm_sigma_is_one_after_power_iterations(make, transposed):
    torch.manual_seed(0)
    m = make()
    with torch.no_grad():  # make sigma far from 1 so the test cannot pass by accident
        m.weight.mul_(7.0)
    assert _sigma(m.weight, transposed) > 2
    m = spectral_norm(m)
    m.train()
    x = torch.randn(2, 20) if isinstance(m, nn.Linear) else torch.randn(2, m.in_channels, 9, 9)
    for _ in range(100):
        m(x)
    m.eval()
    assert _sigma(m.weight, transposed) == pytest.approx(1.0, abs=1e-3)


def _power_step(W, u, v, n):
    for _ in range(n):
        u = F.normalize(W @ v, dim=0, eps=1e-12)
        v = F.normalize(W.T @ u, dim=0, eps=1e-12)
    return u, v


@pytest.mark.parametrize("n", [1, 3])
def test_spectral_norm_runs_n_power_iterations_per_training_forward_and_none_in_eval(n):
    torch.manual_seed(1)
    m = spectral_norm(nn.Conv2d(3, 5, 3), n_power_iterations=n)
    sn = m.parametrizations.weight[0]
    W = m.parametrizations.weight.original.detach().reshape(5, -1)
    u0, v0 = sn._u.clone(), sn._v.clone()
    x = torch.randn(2, 3, 6, 6)
    m.train()
    m(x)
    u1, v1 = _power_step(W, u0, v0, n)
    torch.testing.assert_close(sn._u, u1)
    torch.testing.assert_close(sn._v, v1)
    m.eval()
    m(x)
    torch.testing.assert_close(sn._u, u1)  # eval: no iteration
    # the weight used is W / (u^T W v), the conv kernel reshaped to [out, in*k*k]
    torch.testing.assert_close(m.weight.detach().reshape(5, -1), W / (u1 @ W @ v1))


def test_spectral_norm_u_is_in_state_dict_and_restored():
    torch.manual_seed(2)
    m = spectral_norm(nn.Linear(6, 4))
    m.train()
    for _ in range(3):
        m(torch.randn(2, 6))
    sd = m.state_dict()
    assert any(k.endswith("_u") for k in sd)
    torch.manual_seed(99)  # a fresh module starts from a different random u
    fresh = spectral_norm(nn.Linear(6, 4))
    assert not torch.equal(fresh.parametrizations.weight[0]._u, m.parametrizations.weight[0]._u)
    fresh.load_state_dict(sd)
    torch.testing.assert_close(fresh.parametrizations.weight[0]._u, m.parametrizations.weight[0]._u)
    m.eval(), fresh.eval()
    x = torch.randn(3, 6)
    assert torch.equal(fresh(x), m(x))


def test_spectral_norm_gradient_reaches_original_weight_and_deepcopies():
    m = spectral_norm(nn.Linear(5, 3))
    m(torch.randn(4, 5)).sum().backward()
    assert m.parametrizations.weight.original.grad.abs().sum() > 0
    c = copy.deepcopy(m)  # EMA copies of a generator with SN
    c.eval(), m.eval()
    x = torch.randn(2, 5)
    assert torch.equal(c(x), m(x))


def test_spectral_norm_rejects_bad_arguments():
    with pytest.raises(GanforgeError, match="n_power_iterations"):
        spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(GanforgeError, match="weight"):
        spectral_norm(nn.ReLU())


# ---------------------------------------------------------------- minibatch discrimination

def test_minibatch_discrimination_shape_and_concat():
    torch.manual_seed(0)
    m = MinibatchDiscrimination(10, num_kernels=7, kernel_dim=3)
    x = torch.randn(6, 10)
    out = m(x)
    assert out.shape == (6, 17)
    assert torch.equal(out[:, :10], x)


def test_minibatch_discrimination_identical_examples_give_n_minus_one():
    torch.manual_seed(0)
    m = MinibatchDiscrimination(10, num_kernels=7, kernel_dim=3)
    x = torch.randn(1, 10).repeat(5, 1)
    o = m(x)[:, 10:]
    # exp(0) = 1 for each of the N - 1 others (up to matmul rounding of identical rows)
    torch.testing.assert_close(o, torch.full((5, 7), 4.0), rtol=0, atol=1e-5)


def test_minibatch_discrimination_closed_form():
    torch.manual_seed(0)
    m = MinibatchDiscrimination(4, num_kernels=2, kernel_dim=3)
    x = torch.randn(3, 4)
    M = torch.einsum("na,abc->nbc", x, m.T)
    expected = torch.zeros(3, 2)
    for i in range(3):
        for j in range(3):
            if i != j:
                expected[i] += torch.exp(-(M[i] - M[j]).abs().sum(-1))
    torch.testing.assert_close(m(x)[:, 4:], expected)
    # a single example has no other example to be close to
    assert torch.equal(m(x[:1])[:, 4:], torch.zeros(1, 2))


def test_minibatch_discrimination_gradient_flows():
    torch.manual_seed(0)
    m = MinibatchDiscrimination(8, num_kernels=4, kernel_dim=2)
    x = torch.randn(5, 8, requires_grad=True)
    m(x)[:, 8:].sum().backward()
    assert m.T.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    with pytest.raises(GanforgeError, match="flatten"):
        m(torch.randn(5, 2, 4))


# ---------------------------------------------------------------- virtual batch norm

def _pooled_closed_form(ref, x, eps):
    """Normalise each x_i with the biased statistics of cat(ref, x_i) computed directly."""
    dims = [0] + list(range(2, ref.ndim))
    out = []
    for i in range(x.shape[0]):
        pool = torch.cat([ref, x[i:i + 1]])
        var, mean = torch.var_mean(pool, dim=dims, unbiased=False, keepdim=True)
        out.append((x[i:i + 1] - mean) / torch.sqrt(var + eps))
    return torch.cat(out)


@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 4, 6)])
def test_vbn_equals_closed_form_on_hand_made_reference(shape):
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 3
    x = torch.randn((4,) + shape[1:], generator=g, dtype=torch.float64) - 1
    vbn = VirtualBatchNorm(3, eps=1e-3).double()
    vbn.set_reference(ref)
    torch.testing.assert_close(vbn(x), _pooled_closed_form(ref, x, 1e-3))
    # gamma and beta apply per channel after normalisation
    with torch.no_grad():
        vbn.weight.copy_(torch.tensor([1.0, 2.0, -1.0]))
        vbn.bias.copy_(torch.tensor([0.5, 0.0, 1.0]))
    view = (1, 3) + (1,) * (len(shape) - 2)
    expected = _pooled_closed_form(ref, x, 1e-3) * vbn.weight.view(view) + vbn.bias.view(view)
    torch.testing.assert_close(vbn(x), expected)


def test_vbn_small_hand_made_reference_exact_values():
    vbn = VirtualBatchNorm(1, eps=0.0).double()
    vbn.set_reference(torch.tensor([[0.0], [2.0], [4.0]], dtype=torch.float64))
    # ref U {x=2}: {0, 2, 4, 2}, mean 2, var 2 -> 0; ref U {x=6}: mean 3, var (9+1+1+9)/4 = 5
    out = vbn(torch.tensor([[2.0], [6.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[0.0], [3.0 / 5 ** 0.5]], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(8, 4), (8, 4, 5, 5)])
def test_vbn_output_does_not_depend_on_the_rest_of_the_batch(shape):
    torch.manual_seed(0)
    vbn = VirtualBatchNorm(4)
    vbn.set_reference(torch.randn(shape) * 3)
    x = torch.randn(shape)
    full = vbn(x)
    for i in (0, 5):
        torch.testing.assert_close(vbn(x[i:i + 1]), full[i:i + 1])
    perm = torch.randperm(8)
    torch.testing.assert_close(vbn(x[perm]), full[perm])
    # whereas ordinary batch norm does depend on the batch
    bn = nn.BatchNorm1d(4) if len(shape) == 2 else nn.BatchNorm2d(4)
    assert not torch.allclose(bn(x[:2])[:1], bn(x)[:1])


def test_vbn_reference_stats_in_buffers_and_errors():
    vbn = VirtualBatchNorm(2)
    with pytest.raises(GanforgeError, match="set_reference"):
        vbn(torch.randn(3, 2))
    ref = torch.randn(6, 2)
    normalised_ref = vbn.set_reference(ref)
    torch.testing.assert_close(normalised_ref.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    sd = vbn.state_dict()
    assert {"ref_mean", "ref_var", "ref_count"} <= set(sd)
    restored = VirtualBatchNorm(2)
    restored.load_state_dict(sd)
    x = torch.randn(3, 2)
    assert torch.equal(restored(x), vbn(x))
    with pytest.raises(GanforgeError, match="N x 2"):
        vbn(torch.randn(3, 5))


def test_vbn_gradient_reaches_input_and_affine():
    vbn = VirtualBatchNorm(3)
    vbn.set_reference(torch.randn(4, 3, 2, 2))
    x = torch.randn(2, 3, 2, 2, requires_grad=True)
    (vbn(x) * torch.randn(2, 3, 2, 2)).sum().backward()
    assert x.grad.abs().sum() > 0 and vbn.weight.grad.abs().sum() > 0 and vbn.bias.grad is not None


# ---------------------------------------------------------------- gradient reversal

@pytest.mark.parametrize("lambd", [1.0, 0.37, 0.0])
def test_grad_reverse_identity_forward_negated_scaled_backward(lambd):
    torch.manual_seed(0)
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_reverse(x, lambd)
    assert torch.equal(y, x)
    upstream = torch.randn(4, 3)
    y.backward(upstream)
    assert torch.equal(x.grad, upstream * (-lambd))


def test_gradient_reversal_module_uses_its_lambda():
    grl = GradientReversal(0.5)
    x = torch.ones(3, requires_grad=True)
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -0.5))
    grl.lambd = 2.0  # DANN's schedule changes it during training
    x.grad = None
    grl(x).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))


def test_gradient_reversal_flips_only_what_is_below_it():
    # a domain classifier above the GRL descends its loss; the features below receive the opposite direction
    torch.manual_seed(0)
    feat = torch.randn(5, 4, requires_grad=True)
    head = nn.Linear(4, 1)
    head(grad_reverse(feat, 1.0)).sum().backward()
    g_rev = feat.grad.clone()
    feat.grad = None
    head.weight.grad = None
    head(feat).sum().backward()
    assert torch.equal(g_rev, -feat.grad)
