"""dann (Ganin & Lempitsky 2015): gradient reversal, the lambda_p schedule, the joint phase, resume."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.nn.layers import GradientReversal, grad_reverse
from ganforge.recipes.base import StepContext
from ganforge.recipes.dann import lambda_schedule
from ganforge.training import checkpoint

SMALL = {"source": "fonts:20", "width": 4, "hidden": 8}
TINY = {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8}


def recipe_for(**kw):
    cls, cfg = make_config("dann", overrides={**SMALL, **TINY, **kw})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, step=0, n=8):
    idx = torch.arange(n)
    # the target batch without its labels: DANN must never need them
    return StepContext(step, lambda: {"real": data.batch(idx)["real"]}, torch.device("cpu"), n)


def test_gradient_reversal_forward_identity_backward_minus_lambda():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(5, 3)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)
    x.grad = None
    layer = GradientReversal(2.0)
    (layer(x) * w).sum().backward()
    assert torch.allclose(x.grad, -2.0 * w)


def test_lambda_schedule():
    assert lambda_schedule(0.0) == 0.0
    assert math.isclose(lambda_schedule(1.0), 2 / (1 + math.exp(-10)) - 1)
    assert math.isclose(lambda_schedule(0.5), 2 / (1 + math.exp(-5)) - 1)
    values = [lambda_schedule(p / 10) for p in range(11)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] < 1
    assert lambda_schedule(0.1, gamma=1.0) < lambda_schedule(0.1)
    rec, _ = recipe_for(steps=100, domain_weight=0.5, gamma=5.0)
    assert math.isclose(rec.lambd(30), 0.5 * lambda_schedule(0.3, 5.0))


def _f_grads(rec, nets, ctx):
    nets.zero_grad()
    torch.manual_seed(1)                       # the same source draw every time
    out = rec.loss(nets, ctx)
    out["loss"].backward()
    return out, [p.grad.clone() for p in nets["F"].parameters()], [
        None if p.grad is None else p.grad.clone() for p in nets["Dom"].parameters()]


def test_features_get_the_reversed_domain_gradient_and_dom_the_plain_one(monkeypatch):
    rec, data = recipe_for(steps=10)
    torch.manual_seed(0)
    nets = rec.build()
    ctx = ctx_for(data, step=5)
    out, f_rev, dom_rev = _f_grads(rec, nets, ctx)
    lam = lambda_schedule(0.5)
    assert torch.allclose(out["loss"], out["label"] + out["domain"])
    assert math.isclose(out["lambda"].item(), lam, rel_tol=1e-6)
    rec.cfg.adapt = False
    _, f_src, dom_src = _f_grads(rec, nets, ctx)
    assert all(g is None for g in dom_src)
    rec.cfg.adapt = True
    monkeypatch.setattr("ganforge.recipes.dann.grad_reverse", lambda x, lambd: x)   # no reversal
    _, f_plain, dom_plain = _f_grads(rec, nets, ctx)
    # the domain loss's share of F's gradient is -lambda times what it is without the reversal layer
    for rev, src, plain in zip(f_rev, f_src, f_plain):
        assert torch.allclose(rev - src, -lam * (plain - src), atol=1e-6)
    assert any((plain - src).abs().max() > 1e-4 for src, plain in zip(f_src, f_plain))
    # Dom itself descends the domain loss: its gradient does not depend on the reversal
    assert all(torch.allclose(a, b) for a, b in zip(dom_rev, dom_plain))


def test_source_only_baseline_never_trains_the_domain_classifier(tmp_path):
    rec, data = recipe_for(adapt=False)
    nets = rec.build()
    out = rec.loss(nets, ctx_for(data))
    assert torch.equal(out["loss"], out["label"]) and "domain" not in out
    ganforge.train("dann", out=tmp_path / "r", progress=False, adapt=False, **SMALL, **TINY)
    trained = checkpoint.read(checkpoint.latest(tmp_path / "r"), with_state=False)[0]
    torch.manual_seed(0)   # the trainer builds the nets right after seeding with `seed`
    fresh = rec.build()
    assert all(torch.equal(trained[f"Dom.{k}"], v) for k, v in fresh["Dom"].state_dict().items())
    assert not torch.equal(trained["F.net.0.weight"], fresh["F"].state_dict()["net.0.weight"])


def test_accuracy_is_logged_and_resume_is_bit_identical(tmp_path):
    ganforge.train("dann", out=tmp_path / "a", progress=False, **SMALL, **TINY)
    rows = [json.loads(r) for r in (tmp_path / "a" / "plots" / "accuracy.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(0 <= r["target_accuracy"] <= 1 and 0 <= r["source_accuracy"] <= 1 for r in rows)
    assert (tmp_path / "a" / "plots" / "predictions-step-000004.png").is_file()   # a column per predicted class
    ganforge.train("dann", out=tmp_path / "b", progress=False, stop_at=2, **SMALL, **TINY)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = ganforge.load(tmp_path / "a")     # DANN generates nothing: its "samples" are its source inputs, unchanged
    assert torch.equal(g.sample(4, seed=0), g.recipe.sample_inputs(4, torch.Generator().manual_seed(0)))


def test_user_source_must_be_labelled_images(tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(GanforgeError, match="no labels"):
        ganforge.train("dann", out=tmp_path / "r", progress=False, **{**SMALL, "source": f"folder:{folder}"}, **TINY)
    with pytest.raises(GanforgeError, match="gamma"):
        make_config("dann", overrides={"gamma": 0})


def test_architecture_options_size_the_nets():
    nets = recipe_for(width=3, hidden=5)[0].build()
    assert nets["F"].net[0].out_channels == 3 and nets["F"].dim == 48
    assert nets["C"][0].out_features == 5 and nets["C"][-1].out_features == 10 and nets["Dom"][-1].out_features == 1


def test_lr_anneal_follows_the_papers_schedule(tmp_path):
    rec, _ = recipe_for(steps=100, lr_anneal=True)
    assert rec.optimizer_schedule(0) == {"all": {"lr": 1.0}}
    assert math.isclose(rec.optimizer_schedule(50)["all"]["lr"], 6.0 ** -0.75)
    assert recipe_for(steps=100)[0].optimizer_schedule(50) == {}
    from ganforge.training.trainer import Trainer
    for anneal, expect in ((True, (1 + 10 * 3 / 4) ** -0.75), (False, 1.0)):
        rec, data = recipe_for(lr_anneal=anneal, d_lr=0.01)
        t = Trainer(rec, data, tmp_path / str(anneal), progress=False)
        for _ in range(4):
            t.train_step()
        assert math.isclose(t.opts["all"].param_groups[0]["lr"], 0.01 * expect, rel_tol=1e-9)


def test_shift_translates_source_images_and_changes_the_loss():
    from ganforge.recipes.dann import shift_images
    x = torch.full((4, 1, 8, 8), -1.0)
    x[:, :, 3:5, 3:5] = 1.0
    assert torch.equal(shift_images(x, 0.0), x)
    torch.manual_seed(0)
    y = shift_images(x, 2.0)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert torch.allclose(y[:, :, 0], torch.full_like(y[:, :, 0], -1.0))       # background stays background
    # a whole-pixel shift moves the square by exactly one pixel
    theta_x = shift_images(x[:1], 1e-9)
    assert torch.allclose(theta_x, x[:1], atol=1e-6)
    losses = []
    for shift in (0.0, 1.0):
        rec, data = recipe_for(shift=shift)
        torch.manual_seed(0)
        nets = rec.build()
        torch.manual_seed(1)
        losses.append(rec.loss(nets, ctx_for(data))["label"])
    assert not torch.allclose(*losses)


def test_target_entropy_adds_the_weighted_entropy_of_target_predictions():
    rec, data = recipe_for(target_entropy=0.5)
    torch.manual_seed(0)
    nets = rec.build()
    torch.manual_seed(1)
    out = rec.loss(nets, ctx_for(data))
    ent = out["target_entropy"]
    assert 0 < ent <= math.log(10) + 1e-6
    assert torch.allclose(out["loss"], out["label"] + out["domain"] + 0.5 * ent)
    rec.cfg.target_entropy = 0.0
    torch.manual_seed(1)
    assert "target_entropy" not in rec.loss(nets, ctx_for(data))


def test_conditional_domain_input_is_the_outer_product_with_detached_predictions():
    rec, data = recipe_for(conditional=True, width=3, hidden=5)
    torch.manual_seed(0)
    nets = rec.build()
    assert nets["Dom"][0].in_features == 48 * 10                   # f (x) g: feature dim x classes
    f = torch.randn(4, 48, requires_grad=True)
    h = rec.domain_input(f, nets["C"](f))
    g = torch.softmax(nets["C"](f), 1)
    assert torch.allclose(h.view(4, 10, 48), g[:, :, None] * f[:, None, :], atol=1e-6)
    h.sum().backward()                                              # through f only: g is a constant (CDAN)
    assert torch.allclose(f.grad, g.sum(1, keepdim=True).expand(4, 48).detach(), atol=1e-5)
    assert all(p.grad is None for p in nets["C"].parameters())
    plain, _ = recipe_for(width=3, hidden=5)
    assert plain.build()["Dom"][0].in_features == 48 and plain.domain_input(f, None) is f
    torch.manual_seed(1)
    out = rec.loss(nets, ctx_for(data))
    assert torch.isfinite(out["domain"]) and out["loss"] > out["label"]


def test_entropy_weight_is_cdan_e_s_weighting():
    rec, data = recipe_for(conditional=True, entropy_weight=True, width=3, hidden=5)
    torch.manual_seed(0)
    nets = rec.build()
    with torch.no_grad():
        nets["C"][-1].weight.mul_(200)                                  # confident on some inputs, not on all
    f = torch.randn(6, 48)
    d_logits, d_target = torch.randn(6), torch.tensor([1.0, 1, 1, 0, 0, 0])
    logp = torch.log_softmax(nets["C"](f), 1).detach()
    w = 1 + torch.exp((logp.exp() * logp).sum(1))                      # 1 + exp(-H(g))
    w = torch.cat([w[:3] / w[:3].sum(), w[3:] / w[3:].sum()])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(d_logits, d_target, reduction="none")
    got = rec.weighted_domain_loss(nets["C"](f), d_logits, d_target)
    assert torch.allclose(got, (w * bce).sum() / w.sum(), atol=1e-6)
    assert not torch.allclose(got, bce.mean(), atol=1e-4)               # the weights change the loss
    torch.nn.init.zeros_(nets["C"][-1].weight), torch.nn.init.zeros_(nets["C"][-1].bias)
    assert torch.allclose(rec.weighted_domain_loss(nets["C"](f), d_logits, d_target), bce.mean(), atol=1e-6)  # uniform g
    torch.manual_seed(1)
    assert torch.isfinite(rec.loss(nets, ctx_for(data))["domain"])
    with pytest.raises(GanforgeError, match="conditional=true"):
        recipe_for(entropy_weight=True)
