import math

import pytest
import torch

from ganforge import losses as L


def test_ns_d_is_minus_value_and_log4_at_equilibrium():
    zero = torch.zeros(5)
    # D = 1/2 everywhere: V = 2 log(1/2) = -log 4, and D's loss is +log 4
    assert L.value(real_logits=zero, fake_logits=zero).item() == pytest.approx(-math.log(4))
    assert L.ns_d(real_logits=zero, fake_logits=zero).item() == pytest.approx(math.log(4))
    r, f = torch.randn(7), torch.randn(7)
    assert L.ns_d(real_logits=r, fake_logits=f).item() == pytest.approx(-L.value(real_logits=r, fake_logits=f).item(), rel=1e-6)


def test_closed_forms():
    r, f = torch.tensor([2.0]), torch.tensor([-1.0])
    s = torch.sigmoid
    assert L.ns_d(real_logits=r, fake_logits=f).item() == pytest.approx(-math.log(s(r)) - math.log(1 - s(f)), rel=1e-6)
    assert L.ns_g(fake_logits=f).item() == pytest.approx(-math.log(s(f)), rel=1e-6)
    assert L.minimax_g(fake_logits=f).item() == pytest.approx(math.log(1 - s(f)), rel=1e-6)
    assert L.hinge_d(real_logits=r, fake_logits=f).item() == pytest.approx(0.0)
    assert L.hinge_d(real_logits=torch.tensor([0.5]), fake_logits=torch.tensor([0.5])).item() == pytest.approx(2.0)
    assert L.wasserstein_d(real_logits=r, fake_logits=f).item() == pytest.approx(-3.0)
    assert L.lsgan_d(real_logits=r, fake_logits=f).item() == pytest.approx(0.5 * 1 + 0.5 * 1)
    assert L.lsgan_g(fake_logits=f).item() == pytest.approx(0.5 * 4)


def test_one_sided_label_smoothing_only_moves_the_real_target():
    r, f = torch.tensor([3.0]), torch.tensor([-3.0])
    s = 0.1
    want = -(0.9 * math.log(torch.sigmoid(r)) + 0.1 * math.log(1 - torch.sigmoid(r))) - math.log(1 - torch.sigmoid(f))
    assert L.ns_d(real_logits=r, fake_logits=f, smoothing=s).item() == pytest.approx(want, rel=1e-6)
    # fakes keep target 0: the fake term is unchanged by smoothing
    a = L.ns_d(real_logits=torch.tensor([50.0]), fake_logits=f, smoothing=s) - L.ns_d(real_logits=torch.tensor([50.0]), fake_logits=f)
    assert a.item() > 0  # a confident real is now penalized


@pytest.mark.parametrize("name", list(L.D_LOSSES))
def test_sign_conventions_gradients_point_the_right_way(name):
    # D's loss must push real logits up and fake logits down; G's loss must push fake logits up
    r = torch.full((4,), 0.5, requires_grad=True)
    f = torch.full((4,), 0.5, requires_grad=True)
    L.D_LOSSES[name](real_logits=r, fake_logits=f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    f2 = torch.full((4,), 0.5, requires_grad=True)
    L.G_LOSSES[name](fake_logits=f2).backward()
    assert (f2.grad < 0).all()


def test_minimax_saturates_where_ns_does_not():
    # when D confidently rejects fakes (logit -10), the minimax G gradient vanishes, the NS one does not
    f1 = torch.full((1,), -10.0, requires_grad=True)
    L.minimax_g(fake_logits=f1).backward()
    f2 = torch.full((1,), -10.0, requires_grad=True)
    L.ns_g(fake_logits=f2).backward()
    assert abs(f1.grad.item()) < 1e-4 < abs(f2.grad.item())


def test_keyword_only():
    with pytest.raises(TypeError):
        L.ns_d(torch.zeros(1), torch.zeros(1))
