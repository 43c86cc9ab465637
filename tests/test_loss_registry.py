"""One adversarial-loss registry (losses.ADVERSARIAL) for every family with an adversarial term, proven by
RaGAN (Jolicoeur-Martineau 2018), the one entry whose G half reads D's scores of real data: `loss=ragan` trains
in every adversarial family and with every stable-training option of AdversarialRecipe, and G's update then
depends on the real batch (with the family's own loss as the control, where it does not)."""
import copy
import dataclasses

import pytest
import torch

import ganforge
from ganforge import losses as L
from ganforge.api import _recipes, load_data, make_config
from ganforge.errors import GanforgeError
from ganforge.recipes.base import StepContext
from ganforge.training import checkpoint
from ganforge.training.trainer import Trainer

TINY = {"steps": 3, "batch_size": 8, "log_every": 1, "sample_every": 100, "checkpoint_every": 100,
        "num_samples": 8, "precision": "fp32"}
IMAGES = {"resolution": 8, "g_width": 8, "d_width": 8}

FAMILIES = sorted(n for n, cls in _recipes().items() if "loss" in {f.name for f in dataclasses.fields(cls.Config)})
# the losses the papers fix, kept as the defaults
DEFAULTS = {"gan": "ns", "dcgan": "ns", "cgan": "ns", "wgan": "wasserstein", "wgan_gp": "wasserstein",
            "sngan": "hinge", "lsgan": "lsgan", "progan": "wasserstein", "stylegan": "ns", "pix2pix": "ns",
            "cyclegan": "lsgan", "srgan": "ns", "text2image": "ns", "simgan": "ns", "ssgan": "ns", "r3gan": "rpgan"}
# what leaves the adversarial term the only use G makes of the real batch (so the control sees none) ...
ISOLATE = {"pix2pix": {"lambda_l1": 0.0}, "srgan": {"lambda_content": 0.0, "lambda_mse": 0.0, "pretrain_steps": 0},
           "cyclegan": {"lambda_cyc": 0.0, "lambda_id": 0.0}, "ssgan": {"feature_matching": False}}
# ... and the generators whose gradient to compare (cyclegan's G_ba takes the real B images as its input)
G_NETS = {"cyclegan": ("G_ab",)}


def trainer(name, tmp_path, **kw):
    cls = _recipes()[name]
    _, cfg = make_config(name, overrides={**TINY, **cls.smoke, **kw})
    data, info = load_data(cfg)
    return Trainer(cls(cfg, info), data, tmp_path, progress=False), data


def train(t):
    logs = [t.train_step() for _ in range(t.cfg.steps)]
    assert logs and all(row for row in logs)
    for row in logs:
        bad = [k for k, v in row.items() if not torch.isfinite(v).all()]
        assert not bad, f"non-finite logs: {bad}"
    return logs


def g_gradient(t, batch, state):
    """G's gradient at `state`: the step's phases in order up to G's first (D's losses computed, as the
    trainer would, so a fake D made for the G step is there, but not applied), every phase drawing `batch`.
    Weights, buffers, recipe state and the RNG are restored first, so two calls differ only by the batch."""
    t.nets.load_state_dict(state[0])
    t.recipe.load_state_dict(copy.deepcopy(state[1]))
    torch.manual_seed(1234)
    shared: dict = {}
    for phase in t.recipe.phases(t.step):
        if t.step % phase.every:
            continue
        for i in range(phase.repeat if phase.player != "G" else 1):
            ctx = StepContext(t.step, lambda: batch, torch.device("cpu"), t.cfg.batch_size, repeat=i, shared=shared)
            out = phase.loss(t.nets, ctx)
        if phase.player == "G":
            names = G_NETS.get(t.recipe.name, t.recipe.players["G"])
            params = [p for n in names for p in t.nets[n].parameters() if p.requires_grad]
            grads = torch.autograd.grad(out["loss"], params, allow_unused=True)
            return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    raise AssertionError(f"{t.recipe.name} has no G phase")


def depends_on_real(t, data) -> bool:
    batch = data.batch(torch.arange(t.cfg.batch_size))
    other = {**batch, "real": -batch["real"]}   # another real batch; every other field (inputs, text) kept
    state = copy.deepcopy(t.nets.state_dict()), copy.deepcopy(t.recipe.state_dict())
    a, b = g_gradient(t, batch, state), g_gradient(t, other, state)
    return any(not torch.equal(x, y) for x, y in zip(a, b))


# -- the registry is the only list -----------------------------------------------------------------------------
def test_every_adversarial_family_has_a_loss_key_with_its_papers_default():
    assert set(DEFAULTS) <= set(FAMILIES), f"families without a loss key: {set(DEFAULTS) - set(FAMILIES)}"
    for name in FAMILIES:
        assert _recipes()[name].Config().loss == DEFAULTS.get(name, "ns"), name


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_checks_loss_against_the_registry(name):
    names = ", ".join(L.ADVERSARIAL)
    with pytest.raises(GanforgeError, match=f"config key 'loss' must be one of {names}; got 'softmax'"):
        make_config(name, overrides={"loss": "softmax"})
    for loss in L.ADVERSARIAL:   # and accepts every entry
        make_config(name, overrides={"loss": loss})


def test_label_smoothing_follows_the_registry():
    make_config("dcgan", overrides={"loss": "ragan", "label_smoothing": 0.1})
    with pytest.raises(GanforgeError, match=r"cross-entropy losses only \(ns, minimax, ragan, rpgan\); loss=hinge"):
        make_config("dcgan", overrides={"loss": "hinge", "label_smoothing": 0.1})


# -- the relativistic losses (ragan, rpgan) in every adversarial family -------------------------------------------
RELATIVISTIC = [k for k, v in L.ADVERSARIAL.items() if v.needs_real]


@pytest.mark.parametrize("loss", RELATIVISTIC)
@pytest.mark.parametrize("name", FAMILIES)
def test_relativistic_losses_train_in_every_family_and_g_sees_the_real_batch(name, loss, tmp_path):
    t, data = trainer(name, tmp_path / loss, loss=loss, **ISOLATE.get(name, {}))
    train(t)
    assert depends_on_real(t, data), f"{name}: G's update under {loss} ignores the real batch"
    # the control: the family's own loss (ns for r3gan, whose own is rpgan) leaves G's gradient unchanged
    control = {"loss": "ns"} if L.ADVERSARIAL[DEFAULTS.get(name, "ns")].needs_real else {}
    t, data = trainer(name, tmp_path / "own", **ISOLATE.get(name, {}), **control)
    assert not L.ADVERSARIAL[t.cfg.loss].needs_real
    assert not depends_on_real(t, data), f"{name}: G's gradient moved with the real batch under {t.cfg.loss}"


# -- loss=ragan with every stable-training option of AdversarialRecipe (dcgan) ----------------------------------
OPTIONS = {
    "feature_matching": {"feature_matching": True},
    "label_smoothing": {"label_smoothing": 0.1},
    "pac": {"pac": 2},
    "minibatch_discrimination": {"minibatch_discrimination": 4, "mbd_dim": 3},
    "mbstd": {"mbstd": 4},
    "vbn": {"vbn": True},
    "instance_noise": {"instance_noise": 0.1, "instance_noise_steps": 2},
    "diff_augment": {"diff_augment": "color,translation,cutout"},
    "augment_p": {"diff_augment": "color,translation,cutout", "augment_p": 0.5},
    "ada": {"ada": "on", "ada_target": 0.6, "ada_images": 1000, "ada_interval": 2},
    "r1_gamma": {"r1_gamma": 10.0},
    "r2_gamma": {"r2_gamma": 10.0},
    "reg_every": {"r1_gamma": 10.0, "r2_gamma": 10.0, "reg_every": 2},
    "gp_weight": {"gp_weight": 10.0, "d_norm": "layer"},
    "gp_center=0": {"gp_weight": 10.0, "gp_center": 0.0, "d_norm": "layer"},
    "gp_one_sided": {"gp_weight": 10.0, "gp_one_sided": True, "d_norm": "layer"},
    "clip": {"clip": 0.05},
    "historical_averaging": {"historical_averaging": 1.0},
    "ema": {"ema_decay": 0.9},
    "ttur": {"g_lr": 1e-3, "d_lr": 4e-4},
    "d_steps": {"d_steps": 2},
    "reuse_fake=true": {"reuse_fake": True},
    "reuse_fake=false": {"reuse_fake": False},
}


def test_options_cover_adversarial_config():
    from ganforge.recipes.adversarial import AdversarialConfig
    from ganforge.recipes.base import RecipeConfig
    own = {f.name for f in dataclasses.fields(AdversarialConfig)} - {f.name for f in dataclasses.fields(RecipeConfig)}
    covered = {k for option in OPTIONS.values() for k in option}
    assert own - {"loss"} <= covered, f"options not trained with ragan: {own - {'loss'} - covered}"


@pytest.mark.parametrize("loss", RELATIVISTIC)
@pytest.mark.parametrize("option", OPTIONS)
def test_relativistic_losses_with_every_stable_training_option(option, loss, tmp_path):
    t, data = trainer("dcgan", tmp_path, loss=loss, **IMAGES, **OPTIONS[option])
    logs = train(t)
    assert "D/loss" in logs[-1] and "G/loss" in logs[-1]
    assert depends_on_real(t, data), f"{loss} + {option}: G's update ignores the real batch"


def test_ragan_logs_relativistic_health_signals(tmp_path):
    t, _ = trainer("dcgan", tmp_path, loss="ragan", **IMAGES)
    row = train(t)[-1]
    for key in ("D/acc_real", "D/acc_fake", "D/D_real", "D/D_fake"):
        assert 0.0 <= row[key].item() <= 1.0, key
    assert "D/V" not in row and "D/W" not in row   # those belong to the cross-entropy and Wasserstein losses


def test_ragan_resume_is_bit_identical(tmp_path):
    # the G step draws a real batch of its own under ragan: a resumed run must draw the same ones
    kw = {**TINY, **IMAGES, "steps": 4, "checkpoint_every": 2, "loss": "ragan"}
    ganforge.train("dcgan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("dcgan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
