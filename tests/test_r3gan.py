"""r3gan (Huang et al. 2024, arXiv:2501.05441): the norm-free nets with fix-up initialisation, the schedules as
pure functions of the step, class conditioning, bit-identical resume, and every option changing training."""
import math

import pytest
import torch
from torch import nn

import ganforge
from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.models.r3gan import GAIN, Block, R3Discriminator, R3Generator
from ganforge.recipes.base import StepContext
from ganforge.recipes.r3gan import cosine
from ganforge.training import checkpoint
from ganforge.training.trainer import Trainer

TINY = {"steps": 4, "batch_size": 8, "resolution": 8, "widths": (16,), "blocks": 1, "log_every": 1,
        "sample_every": 100, "checkpoint_every": 100, "precision": "fp32"}


def trainer(tmp_path, **kw):
    cls, cfg = make_config("r3gan", overrides={**TINY, **kw})
    data, info = load_data(cfg)
    return Trainer(cls(cfg, info), data, tmp_path, progress=False)


# -- the networks ------------------------------------------------------------------------------------------------
def test_no_normalisation_layer_and_no_tanh():
    G, D = R3Generator(8, 16, 3, widths=(32, 16, 16)), R3Discriminator(16, 3, widths=(32, 16, 16))
    norms = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for net in (G, D) for m in net.modules())
    assert not any(isinstance(m, nn.Tanh) for m in G.modules())
    with torch.no_grad():
        G.basis.mul_(100)      # a large output is not squashed into [-1, 1]
        assert G(torch.randn(4, 8)).abs().max() > 1
    assert G(torch.randn(2, 8)).shape == (2, 3, 16, 16) and D(torch.randn(2, 3, 16, 16)).shape == (2,)


def test_fixup_blocks_start_as_the_identity_with_the_l_to_minus_quarter_gain():
    torch.manual_seed(0)
    blocks = 6
    b = Block(64, 2, 16, blocks)
    x = torch.randn(3, 64, 5, 5)
    assert torch.equal(b(x), x) and not b.project.weight.any()        # the last conv starts at zero
    want = GAIN * blocks ** -0.25 / math.sqrt(64)                       # fan-in of the 1x1 expand conv
    assert b.expand.weight.std().item() == pytest.approx(want, rel=0.05)
    assert b.spatial.groups == 128 // 16 and b.spatial.weight.shape[1] == 16     # group size 16
    assert b.spatial.weight.std().item() == pytest.approx(GAIN * blocks ** -0.25 / math.sqrt(16 * 9), rel=0.05)


def test_widths_are_checked_per_stage(tmp_path):
    with pytest.raises(GanforgeError, match="3 stages.*got 2 widths"):
        trainer(tmp_path, resolution=16, widths=(16, 16))
    with pytest.raises(GanforgeError, match="group_size"):
        trainer(tmp_path, widths=(12,), group_size=16)


def test_conditional_g_and_projection_d_use_the_label(tmp_path):
    t = trainer(tmp_path, conditional=True)
    z = torch.randn(4, t.cfg.z_dim)
    G, D = t.nets["G"], t.nets["D"]
    with torch.no_grad():
        nn.init.normal_(D.head.weight)
        a, b = G(z, torch.zeros(4, dtype=torch.long)), G(z, torch.full((4,), 3))
        assert not torch.equal(a, b)
        assert not torch.equal(D(a, torch.zeros(4, dtype=torch.long)), D(a, torch.full((4,), 3)))
    with pytest.raises(GanforgeError, match="class-conditional"):
        t.recipe.generate(G, z, None)
    row = t.train_step()
    assert torch.isfinite(row["D/loss"]) and torch.isfinite(row["G/loss"])


# -- the schedules -----------------------------------------------------------------------------------------------
def test_cosine_closed_form():
    assert cosine(0, 10, 2.0, 0.5) == 2.0 and cosine(10, 10, 2.0, 0.5) == 0.5 and cosine(99, 10, 2.0, 0.5) == 0.5
    assert cosine(5, 10, 2.0, 0.5) == pytest.approx(1.25)                       # half way: the mean
    assert cosine(2, 10, 0.0, 1.0) == pytest.approx((1 - math.cos(math.pi * 0.2)) / 2)


def test_optimizers_follow_the_lr_and_beta2_schedules(tmp_path):
    t = trainer(tmp_path, steps=8, g_lr=1e-3, d_lr=4e-4, lr_final=0.1, beta2_final=0.99, betas=(0.0, 0.9))
    for step in range(8):
        t.train_step()
        for player, lr in (("G", 1e-3), ("D", 4e-4)):
            group = t.opts[player].param_groups[0]
            assert group["lr"] == pytest.approx(lr * cosine(step, 8, 1.0, 0.1))
            assert group["betas"] == pytest.approx((0.0, cosine(step, 8, 0.9, 0.99)))


def test_gamma_schedule_weights_r1_and_r2_in_d_loss(tmp_path):
    kw = {"steps": 6, "r1_gamma": 2.0, "r2_gamma": 3.0, "decay_steps": 4}
    t, flat = trainer(tmp_path / "a", gamma_final=0.1, **kw), trainer(tmp_path / "b", gamma_final=1.0, **kw)
    assert t.recipe.gammas(0) == (2.0, 3.0) and flat.recipe.gammas(3) == (2.0, 3.0)
    assert t.recipe.gammas(2) == pytest.approx((2.0 * 0.55, 3.0 * 0.55)) and t.recipe.gammas(9) == pytest.approx((0.2, 0.3))
    batch = t.data.batch(torch.arange(8))
    for step in (0, 2, 5):
        outs = []
        for r in (t, flat):       # same weights, same draws: the losses differ by the penalty weights only
            torch.manual_seed(0)
            outs.append(r.recipe.d_loss(r.nets, StepContext(step, lambda: batch, torch.device("cpu"), 8)))
        (g1, g2), (a, b) = t.recipe.gammas(step), outs
        assert a["r1"] == b["r1"] and a["r2"] == b["r2"] and a["r1"] > 0
        want = 0.5 * (g1 - 2.0) * b["r1"] + 0.5 * (g2 - 3.0) * b["r2"]
        assert (a["loss"] - b["loss"]).item() == pytest.approx(want.item(), rel=1e-4, abs=1e-7)


def test_ema_half_life_ramps_from_zero_to_the_configured_decay(tmp_path):
    t = trainer(tmp_path, steps=10, ema_decay=0.99, batch_size=8)
    assert t.recipe.ema_decay(0) == 0.0                      # half-life 0: the EMA copies G
    assert t.recipe.ema_decay(10) == pytest.approx(0.99)
    h = -8 * math.log(2) / math.log(0.99) * cosine(4, 10, 0.0, 1.0)
    assert t.recipe.ema_decay(4) == pytest.approx(0.5 ** (8 / h))
    t.train_step()                                           # step 0: decay 0, the EMA equals G
    assert all(torch.equal(a, b) for a, b in zip(t.ema.net.parameters(), t.nets["G"].parameters()))
    t.train_step()
    assert any(not torch.equal(a, b) for a, b in zip(t.ema.net.parameters(), t.nets["G"].parameters()))


def test_augment_probability_ramps_from_zero(tmp_path):
    t = trainer(tmp_path, steps=10, diff_augment="cutout", augment_p=0.6)
    assert t.recipe.augment_probability(0) == 0.0 and t.recipe.augment_probability(10) == pytest.approx(0.6)
    x = torch.ones(8, 1, 8, 8)
    assert torch.equal(t.recipe.d_view(x, 0), x)             # p = 0 at the start: nothing augmented


# -- the run -----------------------------------------------------------------------------------------------------
def test_resume_is_bit_identical_through_the_schedules(tmp_path):
    kw = {**TINY, "steps": 6, "checkpoint_every": 3, "diff_augment": "translation", "augment_p": 0.5,
          "ema_decay": 0.9, "reg_every": 2}
    ganforge.train("r3gan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("r3gan", out=tmp_path / "b", progress=False, stop_at=3, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert any(k.startswith("ema.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


OPTIONS = {"widths": {"widths": (8,)}, "blocks": {"blocks": 2}, "expansion": {"expansion": 4},
           "group_size": {"group_size": 8}, "conditional": {"conditional": True}, "lr_final": {"lr_final": 0.01},
           "beta2_final": {"beta2_final": 0.5}, "gamma_final": {"gamma_final": 10.0},
           "decay_steps": {"decay_steps": 1}, "z_dim": {"z_dim": 16}}


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_changes_training(option, tmp_path):
    def after(**kw):
        t = trainer(tmp_path / str(len(kw)), steps=3, **kw)
        for _ in range(3):
            t.train_step()
        return {k: v.detach().clone() for k, v in t.nets.state_dict().items()}
    a, b = after(), after(**OPTIONS[option])
    assert a.keys() != b.keys() or any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in a), option


@pytest.mark.parametrize("kw,match", [
    ({"optimizer": "sgd"}, "schedules Adam's beta2"),
    ({"beta2_final": 1.0}, "beta2_final"),
    ({"conditional": True, "mbstd": 4}, "projection embedding"),
    ({"data": "toy:ring"}, "r3gan works on images"),
    ({"blocks": 0}, "blocks"),
])
def test_bad_settings_are_one_clear_error(kw, match, tmp_path):
    with pytest.raises(GanforgeError, match=match):
        trainer(tmp_path, **kw)


def test_penalties_bypass_torch_compile(tmp_path):
    # AOT autograd has no double backward: R1/R2 must differentiate the uncompiled D (recipes.base.eager)
    from ganforge.recipes.base import eager
    D = nn.Linear(2, 1)
    assert eager({"D": torch.compile(D)})["D"] is D and eager({"D": D})["D"] is D


@pytest.mark.slow
def test_compile_true_trains_with_r1_and_r2(tmp_path):
    t = trainer(tmp_path, compile=True, steps=2)
    rows = [t.train_step() for _ in range(2)]
    assert rows[-1]["D/r1"] > 0 and rows[-1]["D/r2"] > 0
