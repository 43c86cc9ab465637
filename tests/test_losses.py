import math

import pytest
import torch

from ganforge import losses as L
from ganforge.errors import GanforgeError


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


@pytest.mark.parametrize("name", list(L.ADVERSARIAL))
def test_sign_conventions_gradients_point_the_right_way(name):
    # D's loss must push real logits up and fake logits down; G's loss must push fake logits up
    r = torch.full((4,), 0.5, requires_grad=True)
    f = torch.full((4,), 0.5, requires_grad=True)
    L.ADVERSARIAL[name].d(real_logits=r, fake_logits=f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    f2 = torch.full((4,), 0.5, requires_grad=True)
    L.ADVERSARIAL[name].g(fake_logits=f2, real_logits=torch.full((4,), 0.5)).backward()
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


# -- RaGAN: relativistic average standard GAN (Jolicoeur-Martineau 2018, arXiv:1807.00734) ---------------------
def ragan_direct(r, f):
    """The paper's RaSGAN losses written out: D~(x_r) = sigma(C_r - E C_f), D~(x_f) = sigma(C_f - E C_r)."""
    s = torch.sigmoid
    d = -torch.log(s(r - f.mean())).mean() - torch.log(1 - s(f - r.mean())).mean()
    g = -torch.log(s(f - r.mean())).mean() - torch.log(1 - s(r - f.mean())).mean()
    return d, g


def test_ragan_matches_the_direct_formula():
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(7, generator=g), torch.randn(5, generator=g) - 0.5   # batch sizes may differ
    d_want, g_want = ragan_direct(r.double(), f.double())
    ragan = L.ADVERSARIAL["ragan"]
    assert ragan.d(real_logits=r, fake_logits=f).item() == pytest.approx(d_want.item(), rel=1e-6)
    assert ragan.g(fake_logits=f, real_logits=r).item() == pytest.approx(g_want.item(), rel=1e-6)
    # one closed form by hand: C_r = 2, C_f = -1 -> both relative logits are +-3
    r1, f1 = torch.tensor([2.0]), torch.tensor([-1.0])
    assert L.ragan_d(real_logits=r1, fake_logits=f1).item() == pytest.approx(2 * math.log(1 + math.exp(-3)), rel=1e-6)
    assert L.ragan_g(fake_logits=f1, real_logits=r1).item() == pytest.approx(2 * math.log(1 + math.exp(3)), rel=1e-6)


def test_ragan_both_losses_are_2_log_2_when_d_cannot_tell():
    for c in (0.0, 3.7, -12.0):   # any common score: only the differences matter
        same = torch.full((6,), c)
        assert L.ragan_d(real_logits=same, fake_logits=same).item() == pytest.approx(2 * math.log(2), rel=1e-6)
        assert L.ragan_g(fake_logits=same, real_logits=same).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_ragan_sign_convention_and_gradient_directions():
    # a D that scores reals higher than fakes gets a lower D loss, and G then a higher one
    lo, hi = torch.zeros(4), torch.full((4,), 2.0)
    assert L.ragan_d(real_logits=hi, fake_logits=lo) < L.ragan_d(real_logits=lo, fake_logits=lo) \
        < L.ragan_d(real_logits=lo, fake_logits=hi)
    assert L.ragan_g(fake_logits=lo, real_logits=hi) > L.ragan_g(fake_logits=lo, real_logits=lo) \
        > L.ragan_g(fake_logits=hi, real_logits=lo)
    # shifting every score by a constant changes nothing: the discriminator is relativistic
    r, f = torch.randn(5), torch.randn(5)
    assert torch.allclose(L.ragan_d(real_logits=r + 4, fake_logits=f + 4), L.ragan_d(real_logits=r, fake_logits=f))
    # D's loss pushes real scores up and fake scores down; G's pushes fake scores up and real ones down
    r, f = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    L.ragan_d(real_logits=r, fake_logits=f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    r, f = torch.randn(5, requires_grad=True), torch.randn(5, requires_grad=True)
    L.ragan_g(fake_logits=f, real_logits=r).backward()
    assert (f.grad < 0).all() and (r.grad > 0).all()


def test_ragan_g_needs_the_real_logits_and_its_smoothing_is_one_sided():
    ragan = L.ADVERSARIAL["ragan"]
    assert ragan.needs_real and ragan.smoothing
    assert {k for k, v in L.ADVERSARIAL.items() if v.needs_real} == {"ragan", "rpgan"}   # the relativistic pair
    with pytest.raises(TypeError, match="real_logits"):
        ragan.g(fake_logits=torch.zeros(3))
    r, f, s = torch.tensor([3.0]), torch.tensor([-3.0]), 0.1
    sig = 1 / (1 + math.exp(-6))   # D~(x_r) = sigma(3 - (-3)); D~(x_f) = sigma(-6) = 1 - sig
    want = -(0.9 * math.log(sig) + 0.1 * math.log(1 - sig)) - math.log(sig)
    assert L.ragan_d(real_logits=r, fake_logits=f, smoothing=s).item() == pytest.approx(want, rel=1e-6)


def test_registry_lookup_names_every_loss_and_smoothing_is_checked():
    from ganforge.errors import GanforgeError
    assert L.adversarial("ragan") is L.ADVERSARIAL["ragan"]
    with pytest.raises(GanforgeError, match="'loss' must be one of ns, minimax, wasserstein, hinge, lsgan, ragan, rpgan; "
                                            "got 'softmax'"):
        L.adversarial("softmax")
    for name, entry in L.ADVERSARIAL.items():
        if not entry.smoothing:
            with pytest.raises(GanforgeError, match="label_smoothing"):
                entry.d(real_logits=torch.zeros(2), fake_logits=torch.zeros(2), smoothing=0.1)


@pytest.mark.parametrize("name", list(L.ADVERSARIAL))
def test_every_entry_scores_a_confident_d_lower_and_reports_its_accuracy(name):
    # the sign convention end to end: a D that separates real from fake has a lower loss than one that mixes
    # them up, and the accuracy the families log calls it right
    entry = L.ADVERSARIAL[name]
    good_r, good_f = torch.tensor([1.0, 0.9]), torch.tensor([-1.0, -0.9])
    assert entry.d(real_logits=good_r, fake_logits=good_f) < entry.d(real_logits=good_f, fake_logits=good_r)
    assert entry.g(fake_logits=good_r, real_logits=good_f) < entry.g(fake_logits=good_f, real_logits=good_r)
    assert [a.item() for a in entry.accuracy(real_logits=good_r, fake_logits=good_f)] == [1.0, 1.0]
    assert [a.item() for a in entry.accuracy(real_logits=good_f, fake_logits=good_r)] == [0.0, 0.0]
    assert all(torch.isfinite(v) for v in entry.signals(real_logits=good_r, fake_logits=good_f).values())


# -- RpGAN: relativistic pairing (Jolicoeur-Martineau 2018 eq. 7; R3GAN's loss, Huang et al. 2024 eq. 2) ----------
def test_rpgan_matches_the_direct_formula_pair_by_pair():
    g = torch.Generator().manual_seed(1)
    r, f = torch.randn(9, generator=g), torch.randn(9, generator=g) - 0.3
    rd, fd = r.double(), f.double()
    d_want = torch.log1p(torch.exp(-(rd - fd))).mean()       # softplus(-(C_r - C_f))
    g_want = torch.log1p(torch.exp(-(fd - rd))).mean()       # softplus(-(C_f - C_r))
    rp = L.ADVERSARIAL["rpgan"]
    assert rp.needs_real
    assert rp.d(real_logits=r, fake_logits=f).item() == pytest.approx(d_want.item(), rel=1e-6)
    assert rp.g(fake_logits=f, real_logits=r).item() == pytest.approx(g_want.item(), rel=1e-6)
    # pairing, not averaging: permuting the fakes changes the loss (ragan's would not change)
    perm = f.flip(0)
    assert rp.d(real_logits=r, fake_logits=perm).item() != pytest.approx(d_want.item(), rel=1e-6)
    assert L.ragan_d(real_logits=r, fake_logits=perm).item() == pytest.approx(
        L.ragan_d(real_logits=r, fake_logits=f).item(), rel=1e-6)


def test_rpgan_is_log_2_when_d_cannot_tell_and_signs_point_the_right_way():
    for c in (0.0, 5.0, -7.5):
        same = torch.full((4,), c)
        assert L.rpgan_d(real_logits=same, fake_logits=same).item() == pytest.approx(math.log(2), rel=1e-6)
        assert L.rpgan_g(fake_logits=same, real_logits=same).item() == pytest.approx(math.log(2), rel=1e-6)
    lo, hi = torch.zeros(3), torch.full((3,), 2.0)
    # D scoring reals above their fakes lowers D's loss and raises G's
    assert L.rpgan_d(real_logits=hi, fake_logits=lo) < L.rpgan_d(real_logits=lo, fake_logits=hi)
    assert L.rpgan_g(fake_logits=lo, real_logits=hi) > L.rpgan_g(fake_logits=hi, real_logits=lo)
    # the gradient wrt a fake logit: D pushes it down, G pushes it up
    f = torch.zeros(3, requires_grad=True)
    L.rpgan_d(real_logits=torch.zeros(3), fake_logits=f).backward()
    assert (f.grad > 0).all()   # minimising D's loss lowers the fake's score
    f.grad = None
    L.rpgan_g(fake_logits=f, real_logits=torch.zeros(3)).backward()
    assert (f.grad < 0).all()   # minimising G's loss raises it


def test_rpgan_refuses_unpaired_batches_and_a_missing_real_batch():
    with pytest.raises(GanforgeError, match="same shape"):
        L.rpgan_d(real_logits=torch.zeros(4), fake_logits=torch.zeros(5))
    with pytest.raises(TypeError, match="real_logits"):
        L.rpgan_g(fake_logits=torch.zeros(4))


def test_rpgan_label_smoothing_lowers_the_real_target():
    r, f = torch.full((2,), 3.0), torch.zeros(2)
    plain, smooth = L.rpgan_d(real_logits=r, fake_logits=f), L.rpgan_d(real_logits=r, fake_logits=f, smoothing=0.2)
    want = 0.8 * math.log1p(math.exp(-3)) + 0.2 * math.log1p(math.exp(3))    # BCE(3, 0.8)
    assert smooth.item() == pytest.approx(want, rel=1e-6) and smooth > plain
