"""simgan (Shrivastava 2017): history buffer, refiner, local adversarial loss, self-regularization, resume."""
import pytest
import torch

import ganforge
from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.recipes.base import StepContext
from ganforge.recipes.simgan import HistoryBuffer, LocalDiscriminator, Refiner
from ganforge.training import checkpoint

SMALL = {"synthetic": "fonts:20", "width": 4, "d_width": 4, "blocks": 1, "history": 8}
TINY = {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8}


def recipe_for(**kw):
    cls, cfg = make_config("simgan", overrides={**SMALL, **TINY, **kw})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, n=8):
    idx = torch.arange(n)
    return StepContext(0, lambda: data.batch(idx), torch.device("cpu"), n)


def batch(start, n=4):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1)


# -- history buffer (§2.3) -----------------------------------------------------------------------------------
def test_history_buffer_half_current_half_history_and_b_over_2_replaced():
    buf = HistoryBuffer(size=4, seed=0)
    first = buf.mix(batch(0))                    # empty: D sees the current batch only; b/2 = 2 are stored
    assert torch.equal(first, batch(0)) and len(buf) == 2
    second = buf.mix(batch(10))                  # now: 2 current + 2 from the history
    assert torch.equal(second[:2], batch(10)[:2])
    assert set(second[2:].flatten().tolist()) <= {0.0, 1.0}
    assert len(buf) == 4                         # appended until full
    held = set(buf.images.flatten().tolist())
    buf.mix(batch(20))                           # full: b/2 random slots take the newest images
    now = set(buf.images.flatten().tolist())
    assert len(buf) == 4 and {20.0, 21.0} <= now and len(now & held) == 2


def test_history_buffer_resumes_exactly_and_zero_disables():
    a = HistoryBuffer(6, seed=3)
    for k in range(3):
        a.mix(batch(10 * k))
    b = HistoryBuffer(6, seed=99)
    b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    assert torch.equal(a.mix(batch(50)), b.mix(batch(50))) and torch.equal(a.images, b.images)
    with pytest.raises(GanforgeError, match="history"):
        HistoryBuffer(5).load_state_dict(a.state_dict())
    off = HistoryBuffer(0)
    assert torch.equal(off.mix(batch(0)), batch(0)) and len(off) == 0


# -- networks ------------------------------------------------------------------------------------------------
def test_refiner_starts_as_identity_and_discriminator_scores_patches():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    assert torch.equal(Refiner(1, 8, 2)(x), x)   # R(x) = x before training: no pretraining phase needed
    assert LocalDiscriminator(1, 8, 4)(x).shape == (3, 4, 4)
    assert LocalDiscriminator(3, 32, 4)(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 4)
    assert LocalDiscriminator(1, 8, 4, patches=2)(x).shape == (3, 2, 2)
    assert LocalDiscriminator(1, 8, 4, patches=1)(x).shape == (3, 1, 1)      # one logit: a global D
    rec, _ = recipe_for(d_patches=2)
    assert rec.build()["D"](x).shape == (3, 2, 2)


def test_refiner_loss_is_patch_adversarial_plus_lambda_l1():
    torch.manual_seed(0)
    rec, data = recipe_for(reg_weight=0.0)
    nets = rec.build()
    nets["G"].net[-1].weight.data.normal_(0, 0.5)    # a refiner that changes its input
    torch.manual_seed(1)
    a = rec.r_loss(nets, ctx_for(data))
    assert torch.allclose(a["loss"], a["adv"]) and a["self_reg"] > 0
    rec.cfg.reg_weight = 2.0
    torch.manual_seed(1)
    b = rec.r_loss(nets, ctx_for(data))
    assert torch.allclose(b["loss"], b["adv"] + 2.0 * b["self_reg"]) and torch.equal(a["self_reg"], b["self_reg"])


def test_adv_weight_scales_the_adversarial_term_and_zero_keeps_the_identity(tmp_path):
    torch.manual_seed(0)
    rec, data = recipe_for(adv_weight=0.5)
    nets = rec.build()
    nets["G"].net[-1].weight.data.normal_(0, 0.5)
    torch.manual_seed(1)
    a = rec.r_loss(nets, ctx_for(data))
    assert torch.allclose(a["loss"], 0.5 * a["adv"] + rec.cfg.reg_weight * a["self_reg"])
    # the ablation: without the adversarial term only self-regularization pulls on R, whose minimum is the
    # identity it starts as, so training leaves R(x) = x exactly; with it, R moves
    for w, moved in ((0.0, False), (1.0, True)):
        ganforge.train("simgan", out=tmp_path / f"w{w}", progress=False, adv_weight=w, **SMALL, **TINY)
        g = ganforge.load(tmp_path / f"w{w}")
        x = g.recipe.sample_inputs(8, torch.Generator().manual_seed(0))
        assert torch.equal(g.G(x), x) is not moved
    with pytest.raises(GanforgeError, match="adv_weight"):
        recipe_for(adv_weight=-1.0)


def test_d_sees_history_only_when_enabled_and_refiner_steps_repeat():
    rec, data = recipe_for(history=0)
    nets = rec.build()
    rec.d_loss(nets, ctx_for(data))
    assert len(rec.history) == 0
    rec2, _ = recipe_for(history=8)
    rec2.d_loss(rec2.build(), ctx_for(data))
    assert len(rec2.history) == 4
    assert [p.repeat for p in recipe_for(refiner_steps=3)[0].phases(0)] == [1, 3]


def test_noise_is_synthetic_images_and_sampling_refines_them(tmp_path):
    ganforge.train("simgan", out=tmp_path / "r", progress=False, **SMALL, **TINY)
    g = ganforge.load(tmp_path / "r")
    z = g.recipe.sample_inputs(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 1, 8, 8) and z.min() >= -1 and z.max() <= 1
    x = g.sample(5, seed=0)
    assert x.shape == z.shape and (x - z).abs().mean() < 0.5     # refined stays near its synthetic input
    assert (tmp_path / "r" / "plots" / "refined-step-000004.png").is_file()
    with pytest.raises(GanforgeError, match="refines images"):
        g.recipe.generate(g.G, torch.zeros(2, 8))


def test_resume_is_bit_identical_with_the_history(tmp_path):
    ganforge.train("simgan", out=tmp_path / "a", progress=False, **SMALL, **TINY)
    ganforge.train("simgan", out=tmp_path / "b", progress=False, stop_at=2, **SMALL, **TINY)
    state = torch.load(checkpoint.latest(tmp_path / "b") / "state.pt", weights_only=True)
    assert state["recipe"]["history"]["images"].shape == (8, 1, 8, 8)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_synthetic_spec_and_config_are_clear_errors(tmp_path):
    with pytest.raises(GanforgeError, match="reg_weight"):
        make_config("simgan", overrides={"reg_weight": -1})
    with pytest.raises(GanforgeError, match="not images"):
        ganforge.train("simgan", out=tmp_path / "r", progress=False, **{**SMALL, "synthetic": "toy:ring"}, **TINY)


def test_architecture_options_size_the_nets():
    nets = recipe_for(blocks=3, width=5, d_width=7)[0].build()
    assert sum(type(m).__name__ == "_Block" for m in nets["G"].modules()) == 3
    assert nets["G"].net[0].out_channels == 5 and nets["D"].body[0].out_channels == 7
