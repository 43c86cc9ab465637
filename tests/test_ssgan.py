"""ssgan (Salimans 2016 §5): the K+1 logsumexp form, feature matching, the labelled subset, resume."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

import ganforge
from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.recipes.base import StepContext
from ganforge.recipes.ssgan import feature_matching, log_d, log_one_minus_d, unsupervised_d
from ganforge.training import checkpoint

SMALL = {"d_hidden": (16,), "g_hidden": 16, "z_dim": 8, "labels_per_class": 2}
TINY = {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8}


def recipe_for(**kw):
    cls, cfg = make_config("ssgan", overrides={**SMALL, **TINY, **kw})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, n=8):
    idx = torch.arange(n)
    return StepContext(0, lambda: data.batch(idx), torch.device("cpu"), n)


def test_k_plus_1_logsumexp_identity():
    torch.manual_seed(0)
    logits = torch.randn(6, 10) * 3
    # the explicit K+1 classifier with the generated-class logit fixed at 0
    p = F.softmax(torch.cat([logits, torch.zeros(6, 1)], dim=1), dim=1)
    assert torch.allclose(log_one_minus_d(logits), p[:, 10].log(), atol=1e-6)
    assert torch.allclose(log_d(logits), (1 - p[:, 10]).log(), atol=1e-6)
    z = logits.exp().sum(1)
    assert torch.allclose(log_d(logits).exp(), z / (z + 1), atol=1e-6)
    # adding a constant to all K logits leaves p(y | x, y <= K) unchanged but moves D(x)
    assert torch.allclose(F.softmax(logits + 5, 1), F.softmax(logits, 1), atol=1e-6)
    assert (log_d(logits + 5) > log_d(logits)).all()


def test_unsupervised_loss_closed_form_and_feature_matching():
    real, fake = torch.zeros(4, 10), torch.full((4, 10), -math.log(10))  # Z = 10 and Z = 1
    expected = -math.log(10 / 11) - math.log(1 / 2)
    assert math.isclose(unsupervised_d(real_logits=real, fake_logits=fake).item(), expected, rel_tol=1e-6)
    f = torch.randn(5, 3)
    assert feature_matching(real_features=f, fake_features=f.flip(0)).abs() < 1e-10   # equal means
    assert torch.isclose(feature_matching(real_features=f, fake_features=f + 2), torch.tensor(12.0))


def test_labelled_subset_is_k_per_class_and_seeded():
    rec, _ = recipe_for(labels_per_class=3)
    x, y = rec.labelled()
    assert x.shape == (30, 1, 8, 8) and torch.bincount(y, minlength=10).tolist() == [3] * 10
    again, _ = recipe_for(labels_per_class=3)
    other, _ = recipe_for(labels_per_class=3, seed=1)
    assert torch.equal(again.labelled()[0], x) and not torch.equal(other.labelled()[0], x)
    with pytest.raises(GanforgeError, match="fewer than"):
        recipe_for(labels_per_class=1000)[0].labelled()


def test_supervised_only_baseline_and_g_loss_options():
    rec, data = recipe_for(unsupervised=False)
    assert [p.name for p in rec.phases(0)] == ["D"]
    nets = rec.build()
    out = rec.d_loss(nets, ctx_for(data))
    assert torch.equal(out["loss"], out["supervised"]) and "unsupervised" not in out
    rec.cfg.unsupervised = True
    assert [p.name for p in rec.phases(0)] == ["D", "G"]
    torch.manual_seed(0)
    full = rec.d_loss(nets, ctx_for(data))
    assert torch.allclose(full["loss"], full["supervised"] + full["unsupervised"])
    rec.cfg.unsup_weight = 0.5
    torch.manual_seed(0)
    half = rec.d_loss(nets, ctx_for(data))
    assert torch.allclose(half["loss"], half["supervised"] + 0.5 * half["unsupervised"])
    torch.manual_seed(1)
    fm = rec.g_loss(nets, ctx_for(data))["loss"]
    rec.cfg.feature_matching = False
    torch.manual_seed(1)
    ns = rec.g_loss(nets, ctx_for(data))["loss"]
    assert fm >= 0 and not torch.isclose(fm, ns)


def test_gaussian_noise_acts_only_in_training():
    rec, _ = recipe_for(input_noise=0.3, hidden_noise=0.5)
    D = rec.build()["D"]
    x = torch.zeros(4, 1, 8, 8)
    assert not torch.equal(D(x), D(x))
    D.eval()
    assert torch.equal(D(x), D(x))
    quiet = recipe_for(input_noise=0.0, hidden_noise=0.0)[0].build()["D"]
    assert torch.equal(quiet(x), quiet(x))


def test_test_error_is_logged_and_resume_is_bit_identical(tmp_path):
    ganforge.train("ssgan", out=tmp_path / "a", progress=False, **SMALL, **TINY)
    rows = [json.loads(r) for r in (tmp_path / "a" / "plots" / "test_error.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(0 <= r["test_error"] <= 1 for r in rows)
    ganforge.train("ssgan", out=tmp_path / "b", progress=False, stop_at=2, **SMALL, **TINY)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_needs_labelled_data_and_valid_config(tmp_path):
    with pytest.raises(GanforgeError, match="labels_per_class"):
        make_config("ssgan", overrides={"labels_per_class": 0})
    with pytest.raises(GanforgeError, match="no classes"):
        ganforge.train("ssgan", data="shapes:captions:16", resolution=8, out=tmp_path / "r", progress=False, **SMALL, **TINY)


def test_architecture_options_size_the_nets():
    nets = recipe_for(d_hidden=(12, 6), g_hidden=9, z_dim=4)[0].build()
    assert [l.out_features for l in nets["D"].layers] == [12, 6] and nets["D"].head.out_features == 10
    assert nets["G"].net[0].in_features == 4 and nets["G"].net[0].out_features == 9


def test_fm_layer_picks_the_hidden_layer_feature_matching_reads():
    rec, data = recipe_for(d_hidden=(12, 6), fm_layer=0)
    torch.manual_seed(0)
    nets = rec.build()
    D = nets["D"].eval()
    x = data.batch(torch.arange(4))["real"]
    assert D.features(x, 0).shape == (4, 12) and D.features(x, -1).shape == (4, 6)
    assert torch.equal(D.features(x, 1), D.features(x)) and torch.equal(D.head(D.features(x)), D(x))
    D.train()
    losses = []
    for layer in (0, -1):
        rec.cfg.fm_layer = layer
        torch.manual_seed(1)
        losses.append(rec.g_loss(nets, ctx_for(data))["loss"])
    assert not torch.allclose(*losses)
    with pytest.raises(GanforgeError, match="fm_layer"):
        make_config("ssgan", overrides={"d_hidden": (16,), "fm_layer": 1})

