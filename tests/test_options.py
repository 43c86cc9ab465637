"""Every core option changes training: two short runs that differ only in that option end with different
weights (same seed, same data)."""
import pytest
import torch

from ganforge.api import load_data, make_config
from ganforge.training.trainer import Trainer

BASE = {"steps": 2, "batch_size": 8, "precision": "fp32", "resolution": 16, "sample_every": 100, "checkpoint_every": 100}

CASES = [
    ("dcgan", {"optimizer": "sgd"}), ("dcgan", {"optimizer": "rmsprop"}), ("dcgan", {"betas": (0.0, 0.9)}),
    ("dcgan", {"g_lr": 1e-3}), ("dcgan", {"d_lr": 1e-3}), ("dcgan", {"label_smoothing": 0.2}),
    ("dcgan", {"loss": "minimax"}), ("dcgan", {"d_steps": 2}), ("dcgan", {"seed": 1}), ("dcgan", {"z_dim": 8}),
    ("dcgan", {"g_width": 16}), ("dcgan", {"d_width": 16}), ("dcgan", {"d_norm": "none"}),
    ("dcgan", {"batch_size": 4}), ("dcgan", {"channels": 3}), ("dcgan", {"resolution": 32}),
    ("dcgan", {"precision": "bf16"}), ("dcgan", {"data": "digits:stacked"}),
    ("gan", {"optimizer": "sgd", "momentum": 0.5}), ("gan", {"hidden": 32}), ("gan", {"depth": 2}),
    ("cgan", {"cond": "projection"}), ("cgan", {"embed_dim": 4}), ("dcgan", {"reuse_fake": False}),
    ("dcgan", {"lr_decay_start": 0.0}), ("dcgan", {"extra_layers": 1}),
]


def _final(recipe, overrides, tmp_path):
    cls, cfg = make_config(recipe, overrides={**BASE, **overrides})
    data, info = load_data(cfg)
    t = Trainer(cls(cfg, info), data, tmp_path, progress=False)
    for _ in range(cfg.steps):
        t.train_step()
    return {k: v.detach().clone() for k, v in t.nets.state_dict().items()}


def _differ(a, b):
    if a.keys() != b.keys():
        return True
    return any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("recipe,option", CASES, ids=[f"{r}-{next(iter(o))}" for r, o in CASES])
def test_option_changes_training(recipe, option, tmp_path):
    base = {"optimizer": "sgd"} if recipe == "gan" and "momentum" in option else {}
    ref = _final(recipe, base, tmp_path / "a")
    assert _differ(ref, _final(recipe, option, tmp_path / "b"))


def test_same_options_same_result(tmp_path):
    assert not _differ(_final("dcgan", {}, tmp_path / "a"), _final("dcgan", {}, tmp_path / "b"))


def _g_forwards(recipe, tmp_path, **overrides):
    """G forwards in one step, and the fake each phase found handed over in ctx.shared."""
    cls, cfg = make_config(recipe, overrides={**BASE, **overrides})
    data, info = load_data(cfg)
    t = Trainer(cls(cfg, info), data, tmp_path, progress=False)
    outs = []
    t.nets["G"].register_forward_hook(lambda _m, _a, y: outs.append(y))
    fakes = []
    d_loss, g_loss = t.recipe.d_loss, t.recipe.g_loss
    t.recipe.d_loss = lambda nets, ctx: (d_loss(nets, ctx), fakes.append(ctx.shared.get("fake")))[0]
    t.recipe.g_loss = lambda nets, ctx: (fakes.append(ctx.shared.get("fake")), g_loss(nets, ctx))[1]
    t.train_step()
    return len(outs), fakes


def test_g_step_reuses_the_last_d_updates_fake(tmp_path):
    # reuse_fake (default): the last of k D updates keeps G's graph and the G step consumes that very tensor
    n, fakes = _g_forwards("dcgan", tmp_path / "a", d_steps=3)
    assert n == 3 and fakes[0] is None and fakes[1] is None and fakes[2] is fakes[3] is not None
    # off: the D updates run G without a graph and the G step runs it once more on fresh noise
    n, fakes = _g_forwards("dcgan", tmp_path / "b", d_steps=3, reuse_fake=False)
    assert n == 4 and fakes == [None] * 4
    # cgan's G step draws its own labels, so it never reuses the D step's (batch-labelled) fake
    n, fakes = _g_forwards("cgan", tmp_path / "c")
    assert n == 2 and fakes == [None, None]


def test_lr_decay_scales_every_group_of_every_player(tmp_path):
    """lr_decay_start: each optimizer group's own lr (StyleGAN's lazy-regularization ratio included) times
    the pure step function lr_factor; 1 leaves the lrs alone."""
    import math
    from ganforge.recipes.base import lr_factor
    for recipe, extra in (("dcgan", {}), ("stylegan", {"resolution": 8, "r1_every": 4})):
        cls, cfg = make_config(recipe, overrides={**BASE, **extra, "steps": 4, "lr_decay_start": 0.25,
                                                  "resolution": 8})
        data, info = load_data(cfg)
        t = Trainer(cls(cfg, info), data, tmp_path / recipe, progress=False)
        base = {p: [g["lr"] for g in o.param_groups] for p, o in t.opts.items()}
        for step in range(4):
            t.train_step()
            for p, o in t.opts.items():
                for g, lr in zip(o.param_groups, base[p]):
                    assert math.isclose(g["lr"], lr * lr_factor(step, 4, 0.25))
        if recipe == "stylegan":   # D's lr is d_lr * 4/5 (lazy R1 every 4): the schedule kept that ratio
            assert math.isclose(base["D"][0], cfg.d_lr * 4 / 5)
    # the closed form: constant through step round(0.25 * 4) = 1, then 1 - (step - 1) / 4
    assert [lr_factor(s, 4, 0.25) for s in range(4)] == [1.0, 1.0, 0.75, 0.5]
    assert [lr_factor(s, 4, 1.0) for s in range(4)] == [1.0] * 4
