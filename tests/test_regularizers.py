"""Exact values of the regularizers on a linear D(x) = w.x + b, whose input gradient is w everywhere."""
import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.nn.layers import spectral_norm
from ganforge.regularizers import (HistoricalAverage, drift_penalty, gradient_penalty, historical_average,
                                   instance_noise, r1_penalty, r2_penalty)

SHAPES = [(6, 2), (6, 5), (4, 1, 8, 8), (4, 3, 6, 6)]  # points, 1- and 3-channel images


def linear_D(shape, scale, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = int(torch.tensor(shape[1:]).prod())
    w = torch.randn(d, generator=g, dtype=dtype)
    w = (w / w.norm() * scale).requires_grad_(True)
    b = torch.tensor(0.3, dtype=dtype)
    return (lambda x: x.flatten(1) @ w + b), w


def batch(shape, seed, dtype=torch.float64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [0.4, 2.5])
def test_gradient_penalty_on_linear_D_is_closed_form(shape, scale):
    D, w = linear_D(shape, scale)
    real, fake = batch(shape, 1), batch(shape, 2)
    norm = w.detach().norm().item()
    assert gradient_penalty(D, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-12, abs=1e-14)
    assert gradient_penalty(D, real, fake, center=0.0).item() == pytest.approx(norm ** 2, rel=1e-12)
    one_sided = gradient_penalty(D, real, fake, one_sided=True).item()
    assert one_sided == (0.0 if norm < 1 else pytest.approx((norm - 1) ** 2, rel=1e-12))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_gradient_penalty_backprops_into_D_with_analytic_gradient(shape):
    D, w = linear_D(shape, 1.7)
    gp = gradient_penalty(D, batch(shape, 1), batch(shape, 2))
    (grad_w,) = torch.autograd.grad(gp, w)
    wd = w.detach()
    torch.testing.assert_close(grad_w, 2 * (wd.norm() - 1) * wd / wd.norm())


def test_gradient_penalty_interpolates_with_one_eps_per_sample_and_never_reaches_fake():
    seen = []

    def D(x):
        seen.append(x.detach())
        return x.flatten(1).sum(1)

    real = torch.zeros(5, 3, 4, 4)
    fake = torch.ones(5, 3, 4, 4, requires_grad=True)
    gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    x_hat = seen[0]
    # x_hat = eps real + (1 - eps) fake = 1 - eps here: constant within a sample, different across samples
    per_sample = x_hat.flatten(1)
    assert torch.equal(per_sample, per_sample[:, :1].expand_as(per_sample))
    assert per_sample[:, 0].unique().numel() == 5
    assert ((per_sample >= 0) & (per_sample <= 1)).all()


def test_gradient_penalty_generator_makes_it_deterministic():
    torch.manual_seed(0)
    D = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    a = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(3))
    b = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(3))
    c = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _small_conv_D():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 4, 2, 1),
                         nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 1))


def test_gradient_penalty_under_bf16_autocast_matches_fp32():
    D = _small_conv_D()
    with torch.no_grad():  # gradient norms ~1, where the penalty is a small difference: a gradient taken in
        D[-1].weight.mul_(10.0)  # bf16 is ~5% off on this D, so the check below can fail
    real, fake = torch.randn(8, 3, 8, 8).clamp(-1, 1), torch.randn(8, 3, 8, 8).clamp(-1, 1)
    ref = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert D(real).dtype == torch.bfloat16  # autocast is really on for D's ordinary forward
        amp = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    assert amp.dtype == torch.float32
    assert amp.item() == pytest.approx(ref.item(), rel=0.02)
    (g,) = torch.autograd.grad(amp, D[0].weight)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_gradient_penalty_through_spectral_norm_reaches_original_weight():
    torch.manual_seed(0)
    D = nn.Sequential(spectral_norm(nn.Linear(4, 8)), nn.Tanh(), spectral_norm(nn.Linear(8, 1)))
    gp = gradient_penalty(D, torch.randn(6, 4), torch.randn(6, 4))
    gp.backward()
    assert D[0].parametrizations.weight.original.grad.abs().sum() > 0


def test_gradient_penalty_shape_mismatch_is_a_clear_error():
    D, _ = linear_D((4, 3), 1.0)
    with pytest.raises(GanforgeError, match="same shape"):
        gradient_penalty(D, torch.zeros(4, 3), torch.zeros(5, 3))


@pytest.mark.parametrize("shape", SHAPES)
def test_r1_on_linear_D_is_squared_norm(shape):
    D, w = linear_D(shape, 1.9)
    real = batch(shape, 1).requires_grad_(True)
    r1 = r1_penalty(D(real), real)
    assert r1.item() == pytest.approx(w.detach().norm().item() ** 2, rel=1e-12)
    (grad_w,) = torch.autograd.grad(r1, w)  # create_graph: R1 trains D
    torch.testing.assert_close(grad_w, 2 * w.detach())


def test_r2_on_a_quadratic_D_is_the_mean_squared_norm_at_the_fakes():
    # D(x) = 1/2 ||x||^2 has grad x: R2 = E ||x_f||^2, and it does not depend on any real sample
    fake = batch((5, 3), 2).requires_grad_(True)
    r2 = r2_penalty(0.5 * fake.pow(2).sum(1), fake)
    assert r2.item() == pytest.approx(fake.detach().pow(2).sum(1).mean().item(), rel=1e-12)
    with pytest.raises(GanforgeError, match="fake.requires_grad_"):
        r2_penalty(torch.zeros(2), torch.zeros(2, 3))


def test_r1_without_requires_grad_says_what_to_do():
    D, _ = linear_D((3, 2), 1.0)
    real = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(GanforgeError, match="requires_grad_"):
        r1_penalty(D(real), real)


def test_drift_is_mean_of_squares():
    real_logits = torch.tensor([[1.0], [-2.0], [3.0], [0.5]])
    assert drift_penalty(real_logits).item() == pytest.approx((1 + 4 + 9 + 0.25) / 4)


def test_historical_average_zero_at_init_then_closed_form_after_two_updates():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    params = list(net.parameters())
    ha = HistoricalAverage(params)
    assert ha(params).item() == 0.0
    history = [[p.detach().clone() for p in params]]
    for step in range(2):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p) * (step + 1))
        ha.update(params)
        history.append([p.detach().clone() for p in params])
    means = [torch.stack([h[k] for h in history]).mean(0) for k in range(len(params))]
    expected = sum(((p.detach() - m) ** 2).sum() for p, m in zip(params, means))
    penalty = ha(params)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)
    assert penalty.item() > 0
    # gradient 2 (theta - mean) flows into the parameters only
    penalty.backward()
    torch.testing.assert_close(net.weight.grad, 2 * (net.weight.detach() - means[0]))
    assert historical_average(params, means).item() == pytest.approx(expected.item(), rel=1e-6)


def test_historical_average_state_dict_roundtrip_and_mismatch_errors():
    net = nn.Linear(3, 2)
    ha = HistoricalAverage(net.parameters())
    with torch.no_grad():
        net.weight.add_(1.0)
    ha.update(net.parameters())
    sd = ha.state_dict()
    assert set(sd) == {"mean_0", "mean_1", "count"} and sd["count"].item() == 2
    other = HistoricalAverage(nn.Linear(3, 2).parameters())
    other.load_state_dict(sd)
    assert torch.equal(other(net.parameters()), ha(net.parameters()))
    with pytest.raises(GanforgeError, match="parameters"):
        historical_average(list(net.parameters())[:1], ha.averages)
    with pytest.raises(GanforgeError, match="shape"):
        historical_average([torch.zeros(2, 2)], [torch.zeros(3)])


def test_instance_noise_has_requested_std_and_is_reproducible():
    x = torch.full((200, 3, 8, 8), 0.5)
    out = instance_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    noise = out - x
    assert noise.std().item() == pytest.approx(0.1, rel=0.02)
    assert abs(noise.mean().item()) < 0.005
    again = instance_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(instance_noise(x, 0.0), x)
    with pytest.raises(GanforgeError, match="std"):
        instance_noise(x, -1.0)
