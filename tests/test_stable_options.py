"""The stable-training toolbox of recipes/adversarial.py: every option changes training (same seed, same data,
parameters after 2 steps differ from the run without it), plus closed-form and sign checks."""
import pytest
import torch

from ganforge.api import load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.nn.options import MinibatchHead, VBNGenerator
from ganforge.recipes.adversarial import capture_features
from ganforge.recipes.base import StepContext
from ganforge.training.trainer import Trainer

POINTS = {"data": "toy:ring", "hidden": 16, "depth": 2, "z_dim": 4}
IMAGES = {"resolution": 8, "g_width": 8, "d_width": 8}
FAST = {"batch_size": 8, "sample_every": 1000, "checkpoint_every": 1000, "log_every": 1000, "steps": 10}


def trainer(recipe, tmp_path, **kw):
    cls, cfg = make_config(recipe, overrides={**FAST, **kw})
    data, info = load_data(cfg)
    return Trainer(cls(cfg, info), data, tmp_path, progress=False)


def params_after(recipe, tmp_path, steps=2, **kw):
    t = trainer(recipe, tmp_path, **kw)
    logs = [t.train_step() for _ in range(steps)]
    return {k: v.detach().clone() for k, v in t.nets.state_dict().items()}, t, logs


def differ(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix) and k in b]
    return any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in keys)


# each option: (recipe, base overrides, option overrides)
OPTIONS = {
    "label_smoothing": ("gan", POINTS, {"label_smoothing": 0.1}),
    "feature_matching": ("gan", POINTS, {"feature_matching": True}),
    "minibatch_discrimination": ("gan", POINTS, {"minibatch_discrimination": 4, "mbd_dim": 3}),
    "mbstd": ("gan", POINTS, {"mbstd": 4}),
    "vbn": ("dcgan", IMAGES, {"vbn": True}),
    "historical_averaging": ("gan", POINTS, {"historical_averaging": 1.0}),
    "ttur": ("gan", POINTS, {"d_lr": 4e-3}),
    "r1_gamma": ("gan", POINTS, {"r1_gamma": 10.0}),
    "r2_gamma": ("gan", POINTS, {"r2_gamma": 10.0}),
    "reg_every": ("gan", POINTS, {"r1_gamma": 10.0, "r2_gamma": 10.0, "reg_every": 2}),   # vs no penalty
    "loss=rpgan": ("dcgan", IMAGES, {"loss": "rpgan"}),
    "instance_noise": ("gan", POINTS, {"instance_noise": 0.1}),
    "diff_augment": ("dcgan", IMAGES, {"diff_augment": "translation,cutout"}),
    "augment_p": ("dcgan", {**IMAGES, "diff_augment": "translation,cutout"}, {"augment_p": 0.5}),
    "pac": ("gan", POINTS, {"pac": 2}),
    "clip": ("wgan", POINTS, {"clip": 0.05}),
    "gp_weight": ("gan", POINTS, {"gp_weight": 10.0}),
    "gp_one_sided": ("wgan_gp", POINTS, {"gp_one_sided": True}),
    "gp_center": ("wgan_gp", POINTS, {"gp_center": 0.0}),
    "loss=hinge": ("dcgan", IMAGES, {"loss": "hinge"}),
    "loss=wasserstein": ("dcgan", IMAGES, {"loss": "wasserstein"}),
    "loss=lsgan": ("dcgan", IMAGES, {"loss": "lsgan"}),
    "d_steps": ("gan", POINTS, {"d_steps": 2}),
}


@pytest.mark.parametrize("option", OPTIONS)
def test_option_changes_training(option, tmp_path):
    recipe, base, extra = OPTIONS[option]
    a, _, _ = params_after(recipe, tmp_path / "a", **base)
    b, _, logs = params_after(recipe, tmp_path / "b", **base, **extra)
    assert differ(a, b, "D.") or differ(a, b, "G."), f"{option} changed nothing"
    assert all(torch.isfinite(v).all() for row in logs for v in row.values())


def test_ttur_changes_only_the_player_whose_rate_changed(tmp_path):
    # one iteration = D update then G update: a different g_lr leaves D's first update identical
    a, _, _ = params_after("gan", tmp_path / "a", steps=1, **POINTS)
    b, _, _ = params_after("gan", tmp_path / "b", steps=1, **POINTS, g_lr=5e-3)
    assert not differ(a, b, "D.") and differ(a, b, "G.")


def test_ema_keeps_a_separate_average_of_g(tmp_path):
    _, t, _ = params_after("gan", tmp_path, steps=3, **POINTS, ema_decay=0.5)
    G, G_ema = t.nets["G"].state_dict(), t.ema.net.state_dict()
    assert any(not torch.equal(G[k], G_ema[k]) for k in G)


def test_clip_keeps_every_critic_weight_in_the_box(tmp_path):
    _, t, _ = params_after("wgan", tmp_path, steps=2, **POINTS, clip=0.02)
    assert all(p.abs().max() <= 0.02 for p in t.nets["D"].parameters())
    assert any(p.abs().max() > 0.02 for p in t.nets["G"].parameters())   # G is not clipped


def test_instance_noise_anneals_linearly_to_zero(tmp_path):
    r = trainer("gan", tmp_path, **POINTS, instance_noise=0.2, steps=100).recipe
    assert [r.noise_std(s) for s in (0, 50, 100, 150)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    r = trainer("gan", tmp_path, **POINTS, instance_noise=0.2, instance_noise_steps=10, steps=100).recipe
    assert r.noise_std(5) == pytest.approx(0.1) and r.noise_std(10) == 0.0
    x = torch.zeros(4, 2)
    torch.manual_seed(0)
    assert r.d_view(x, 0).std() > 0.05 and torch.equal(r.d_view(x, 10), x)


def test_pac_concatenates_m_samples_of_one_kind(tmp_path):
    t = trainer("gan", tmp_path, **POINTS, pac=4)
    x = torch.arange(16.0).view(8, 2)
    packed = t.recipe.d_view(x, 0)
    assert packed.shape == (2, 8)
    # pack j holds rows j, j + N/m, j + 2N/m, ...
    assert packed[1].tolist() == torch.cat([x[1], x[3], x[5], x[7]]).tolist()
    assert t.nets["D"].body[0].in_features == 8        # D is built for m x 2 inputs
    img = trainer("dcgan", tmp_path, **IMAGES, pac=2)
    assert img.recipe.d_view(torch.zeros(8, 1, 8, 8), 0).shape == (4, 2, 8, 8)
    assert img.nets["D"].body[0].in_channels == 2


def test_minibatch_features_make_d_look_at_the_whole_batch(tmp_path):
    x = torch.randn(8, 2)
    y = x.clone()
    y[1:] += 1.0          # change every example but the first
    for extra in ({}, {"mbstd": 4}, {"minibatch_discrimination": 4}):
        t = trainer("gan", tmp_path, **POINTS, **extra)
        D = t.nets["D"]
        same = torch.allclose(D(x)[0], D(y)[0])
        assert same == (not extra), extra       # plain D judges each example alone
        if extra:
            assert isinstance(D.head, MinibatchHead)


def test_vbn_normalises_each_example_with_the_fixed_reference_only(tmp_path):
    torch.manual_seed(0)
    z = torch.randn(8, 100)
    plain = trainer("dcgan", tmp_path, **IMAGES).nets["G"].train()
    vbn = trainer("dcgan", tmp_path, **IMAGES, vbn=True).nets["G"].train()
    assert isinstance(vbn, VBNGenerator)
    # BatchNorm in training mode: an example's output depends on its batch; VBN: it does not
    assert not torch.allclose(plain(z)[:1], plain(z[:2])[:1], atol=1e-6)
    assert torch.allclose(vbn(z)[:1], vbn(z[:2])[:1], atol=1e-5)
    # ... but it does depend on the reference batch, fixed at the start and saved with the weights
    out = vbn(z[:2])
    assert "z_ref" in dict(vbn.named_buffers())
    vbn.z_ref.add_(1.0)
    assert not torch.allclose(vbn(z[:2]), out)


def test_historical_average_is_the_mean_of_all_past_parameters(tmp_path):
    t = trainer("gan", tmp_path, **POINTS, historical_averaging=0.5)
    snapshots = [[p.detach().clone() for p in t.nets["D"].parameters()]]
    logs = []
    for _ in range(3):
        logs.append(t.train_step())
        snapshots.append([p.detach().clone() for p in t.nets["D"].parameters()])
    for k, avg in enumerate(t.nets["D_hist"].averages):
        assert torch.allclose(avg, torch.stack([s[k] for s in snapshots]).mean(0), atol=1e-6)
    assert logs[0]["D/hist"] == 0 and logs[-1]["D/hist"] > 0    # 0 before the first move, then > 0


def test_feature_matching_is_zero_when_fakes_equal_reals_and_uses_d_features(tmp_path):
    t = trainer("gan", tmp_path, **POINTS, feature_matching=True)
    r, nets = t.recipe, t.nets
    x = torch.randn(8, 2)
    with capture_features(nets["D"]) as feats:
        nets["D"](x)
    assert torch.equal(feats[0], nets["D"].features(x))
    ctx = StepContext(0, lambda: {"real": x}, torch.device("cpu"), 8)
    r.generate = lambda G, z, labels=None: x.clone()
    assert r.g_loss(nets, ctx)["loss"].item() == 0.0
    r.generate = lambda G, z, labels=None: x + 1.0
    assert r.g_loss(nets, ctx)["loss"].item() > 0.0


def test_health_signals_are_logged(tmp_path):
    _, _, logs = params_after("wgan_gp", tmp_path, steps=2, **POINTS, r1_gamma=1.0, gp_weight=1.0)
    last = logs[-1]
    for key in ("D/acc_real", "D/acc_fake", "D/W", "D/gp", "D/r1", "D/grad_norm", "G/grad_norm"):
        assert key in last, key
    assert last["D/grad_norm"] > 0 and last["G/grad_norm"] > 0
    # the Wasserstein estimate is E D(real) - E D(fake), the negative of the critic's loss without penalties
    t = trainer("wgan", tmp_path, **POINTS)
    ctx = StepContext(0, lambda: {"real": torch.randn(8, 2)}, torch.device("cpu"), 8)
    out = t.recipe.d_loss(t.nets, ctx)
    assert out["W"].item() == pytest.approx(-out["loss"].item())


@pytest.mark.parametrize("recipe,kw,match", [
    ("wgan", {"gp_weight": 10.0}, "clip.*gp_weight"),
    ("dcgan", {**IMAGES, "resolution": 16, "loss": "wasserstein", "gp_weight": 10.0}, "without BatchNorm.*d_norm=layer"),
    ("wgan_gp", {**IMAGES, "resolution": 16, "d_norm": "batch"}, "without BatchNorm"),
    ("gan", {**POINTS, "pac": 3}, "pac=3.*batch_size must be a multiple"),
    ("gan", {**POINTS, "mbstd": 3}, "mbstd=3"),
    ("gan", {**POINTS, "diff_augment": "translation"}, "diff_augment works on images"),
    ("gan", {**POINTS, "diff_augment": "rotate"}, "unknown DiffAugment policy 'rotate'"),
    ("gan", {**POINTS, "vbn": True}, "vbn replaces G's BatchNorm"),
    ("cgan", {**IMAGES, "pac": 2}, "pac packs unconditional"),
    ("wgan", {"label_smoothing": 0.1}, "label_smoothing"),
    ("gan", {**POINTS, "instance_noise": -1.0}, "instance_noise"),
    ("gan", {**POINTS, "reg_every": 4}, "reg_every=4.*r1_gamma and r2_gamma are 0"),
    ("dcgan", {**IMAGES, "augment_p": 0.5}, "augment_p=0.5.*diff_augment"),
    ("dcgan", {**IMAGES, "diff_augment": "color", "augment_p": 1.5}, "augment_p"),
    ("gan", {**POINTS, "r2_gamma": -1.0}, "r2_gamma"),
])
def test_incompatible_options_fail_before_training(recipe, kw, match, tmp_path):
    with pytest.raises(GanforgeError, match=match):
        trainer(recipe, tmp_path, **kw)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_r1_r2_inline_are_logged_and_r2_reads_the_fakes(tmp_path):
    t = trainer("gan", tmp_path, **POINTS, r1_gamma=2.0, r2_gamma=3.0)
    row = t.train_step()
    assert row["D/r1"] > 0 and row["D/r2"] > 0 and not any(k.startswith("D_reg/") for k in row)
    # R2 alone: D's gradient wrt its parameters changes with G (the fakes), and not with the real batch's penalty
    assert trainer("gan", tmp_path, **POINTS, r2_gamma=3.0).train_step().keys() >= {"D/r2"}


def test_reg_every_runs_r1_r2_lazily_with_the_stylegan2_correction(tmp_path):
    k, d_lr = 4, 2e-4
    t = trainer("gan", tmp_path, **POINTS, r1_gamma=2.0, r2_gamma=3.0, reg_every=k, d_lr=d_lr)
    assert [ph.name for ph in t.recipe.phases(0)] == ["D", "D_reg", "G"]
    # D's Adam at lr x c and betas ** c, c = k / (k + 1) (recipes.base.lazy_correction)
    c = k / (k + 1)
    group = t.opts["D"].param_groups[0]
    assert group["lr"] == pytest.approx(d_lr * c) and group["betas"][1] == pytest.approx(t.cfg.betas[1] ** c)
    rows = [t.train_step() for _ in range(2 * k)]
    ran = [i for i, row in enumerate(rows) if "D_reg/r1" in row]
    assert ran == [0, k] and all("D/r1" not in row for row in rows)
    assert all("D_reg/r2" in rows[i] for i in ran)


def test_augment_p_augments_that_share_of_the_samples(tmp_path):
    t = trainer("dcgan", tmp_path, **IMAGES, diff_augment="cutout", augment_p=0.25)
    x = torch.ones(4000, 1, 8, 8)
    torch.manual_seed(0)
    changed = (t.recipe.d_view(x, 0) != x).flatten(1).any(1).float().mean().item()
    assert changed == pytest.approx(0.25, abs=0.03)      # cutout zeroes a square of every augmented sample


def test_options_work_with_conditional_recipes(tmp_path):
    _, _, logs = params_after("cgan", tmp_path, **IMAGES, feature_matching=True, mbstd=4, vbn=True,
                              historical_averaging=0.1, diff_augment="color", r1_gamma=1.0)
    assert all(torch.isfinite(v).all() for v in logs[-1].values())


def test_resume_is_bit_identical_with_the_stateful_options(tmp_path):
    import ganforge
    from safetensors.torch import load_file
    from ganforge.training import checkpoint
    kw = {**FAST, **IMAGES, "steps": 4, "checkpoint_every": 2, "historical_averaging": 0.1, "vbn": True,
          "pac": 2, "instance_noise": 0.1, "diff_augment": "translation", "ema_decay": 0.9}
    ganforge.train("dcgan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("dcgan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (load_file(str(checkpoint.latest(tmp_path / r) / "weights.safetensors")) for r in "ab")
    assert any(k.startswith("D_hist.") for k in a) and any(k.endswith("z_ref") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
