"""CycleGAN: cycle and identity losses in closed form, the history pool's 50/50 mixing inside the D step, the
constant-then-linear learning rate, exact resume (pools included), CLI training and two-way translation."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ganforge
from ganforge.api import load_data, make_config
from ganforge.cli import main
from ganforge.commands.translate import load_translator, read_image
from ganforge.errors import GanforgeError
from ganforge.models.image2image import ResnetBlock, patch_receptive_field
from ganforge.recipes.base import StepContext
from ganforge.recipes.base import lr_factor
from ganforge.training import checkpoint
from ganforge.training.trainer import Trainer

TINY = {"steps": 4, "batch_size": 2, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 4,
        "resolution": 8, "g_width": 4, "g_blocks": 1, "d_width": 4}


def recipe_for(**overrides):
    cls, cfg = make_config("cyclegan", overrides={**TINY, **overrides})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, n=2):
    ctx = StepContext(0, lambda: data.batch(torch.arange(n)), torch.device("cpu"), n)
    ctx.shared = {}
    return ctx


class Shift(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        return x + self.c


class ConstantD(nn.Module):
    def __init__(self, c, seen=None):
        super().__init__()
        self.c, self.seen = c, seen

    def forward(self, x):
        if self.seen is not None:
            self.seen.append(x)
        return torch.full_like(x[:, :1], self.c)


def shift_nets():
    """G_ab(x) = x + 0.1, G_ba(x) = x - 0.3, both D output 0.25 everywhere."""
    return nn.ModuleDict({"G_ab": Shift(0.1), "G_ba": Shift(-0.3), "D_a": ConstantD(0.25), "D_b": ConstantD(0.25)})


@pytest.mark.parametrize("loss,lambda_cyc,lambda_id", [("lsgan", 10.0, 0.5), ("lsgan", 10.0, 0.0), ("ns", 2.0, 0.5)])
def test_g_loss_is_adversarial_plus_cycle_plus_identity(loss, lambda_cyc, lambda_id):
    recipe, data = recipe_for(loss=loss, lambda_cyc=lambda_cyc, lambda_id=lambda_id)
    out = recipe.g_loss(shift_nets(), ctx_for(data))
    # cycle: |G_ba(G_ab(a)) - a| = |a - 0.2 - a| = 0.2 and |G_ab(G_ba(b)) - b| = 0.2
    assert math.isclose(out["cycle"].item(), 0.4, rel_tol=1e-5)
    # each D says 0.25: LS (D - 1)^2 = 0.5625 (Zhu Eq. 1 in LS form), NS softplus(-0.25)
    adv = 2 * (0.5625 if loss == "lsgan" else math.log1p(math.exp(-0.25)))
    assert math.isclose(out["adv"].item(), adv, rel_tol=1e-5)
    want = adv + lambda_cyc * 0.4
    if lambda_id:   # identity: |G_ab(b) - b| = 0.1, |G_ba(a) - a| = 0.3, weighted lambda_id * lambda_cyc
        assert math.isclose(out["identity"].item(), 0.4, rel_tol=1e-5)
        want += lambda_id * lambda_cyc * 0.4
    else:
        assert "identity" not in out
    assert math.isclose(out["loss"].item(), want, rel_tol=1e-5)


@pytest.mark.parametrize("loss", ["lsgan", "ns"])
def test_d_loss_is_halved_least_squares(loss):
    recipe, data = recipe_for(loss=loss, pool_size=0)
    out = recipe.d_loss(shift_nets(), ctx_for(data))
    per_d = 0.5 * ((0.25 - 1) ** 2 + 0.25 ** 2) if loss == "lsgan" else 0.5 * (
        math.log1p(math.exp(-0.25)) + math.log1p(math.exp(0.25)))
    assert math.isclose(out["loss"].item(), 2 * per_d, rel_tol=1e-5)


def test_d_trains_on_a_50_50_mix_of_new_fakes_and_the_history_pool():
    recipe, data = recipe_for(pool_size=50)
    seen = []
    nets = shift_nets()
    nets["D_b"] = ConstantD(0.0, seen)
    batch = data.batch(torch.arange(2))

    def step(value):
        ctx = ctx_for(data)
        fake = torch.full((2, 3, 8, 8), float(value))
        ctx.shared.update(batch=batch, fake_b=fake, fake_a=fake)
        recipe.d_loss(nets, ctx)
        return seen[-1][:, 0, 0, 0]   # D_b's fake input (its real input came first)

    for k in range(25):   # fills the 50 places: the pool passes these through unchanged
        assert step(k).tolist() == [k, k]
    old = sum((step(1000 + k) < 1000 + k).sum().item() for k in range(200))
    assert 0.4 < old / 400 < 0.6   # each new image is swapped for a stored one with probability 1/2
    assert len(recipe.pools["b"]) == 50


def test_lr_is_constant_then_decays_linearly():
    assert [lr_factor(s, 10, 0.5) for s in (0, 5)] == [1.0, 1.0]
    assert math.isclose(lr_factor(6, 10, 0.5), 1 - 1 / 6) and math.isclose(lr_factor(9, 10, 0.5), 1 - 4 / 6)
    assert lr_factor(9, 10, 1.0) == 1.0


@pytest.mark.parametrize("decay_start", [0.5, 1.0])
def test_trainer_steps_use_the_scheduled_lr(tmp_path, decay_start):
    recipe, data = recipe_for(lr_decay_start=decay_start, g_lr=1e-3, d_lr=3e-3, steps=4)
    t = Trainer(recipe, data, tmp_path, progress=False)
    for step in range(4):
        t.train_step()
        f = lr_factor(step, 4, decay_start)
        assert math.isclose(t.opts["G"].param_groups[0]["lr"], 1e-3 * f)
        assert math.isclose(t.opts["D"].param_groups[0]["lr"], 3e-3 * f)
    assert (t.opts["G"].param_groups[0]["lr"] < 1e-3) == (decay_start < 1)


def test_resume_is_bit_identical_with_the_pools(tmp_path):
    kw = {**TINY, "pool_size": 2, "sample_every": 3}
    ganforge.train("cyclegan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("cyclegan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    state = torch.load(checkpoint.latest(tmp_path / "b") / "state.pt", weights_only=True)
    assert state["recipe"]["pool_b"]["images"].shape == (2, 3, 8, 8)   # the pool is in the checkpoint
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_architecture_options():
    recipe, _ = recipe_for(g_blocks=3, g_width=8, d_width=6, norm="batch", resolution=16, d_layers=2)
    nets = recipe.build()
    assert sum(isinstance(m, ResnetBlock) for m in nets["G_ab"].modules()) == 3
    assert nets["G_ba"].net[1].out_channels == 8 and nets["D_a"].net[0].out_channels == 6
    assert any(isinstance(m, nn.BatchNorm2d) for m in nets.modules())
    assert nets["D_b"].receptive_field == patch_receptive_field(2)
    assert recipe_for(resolution=16)[0].build()["D_b"].receptive_field == patch_receptive_field(1)


def test_wrong_data_is_a_clear_error():
    with pytest.raises(GanforgeError, match="one size and channel count"):
        recipe_for(data="photos:gray2color")[0].build()
    with pytest.raises(GanforgeError, match="multiple of 4"):
        recipe_for(resolution=10)[0].build()
    with pytest.raises(GanforgeError, match="two image domains"):
        recipe_for(data="digits")[0].build()


# ------------------------------------------------------------------------------- CLI: train and translate

def unpaired_folder(root, n=4, size=8):
    rng = np.random.default_rng(0)
    for d, (lo, hi) in (("A", (0, 100)), ("B", (150, 256))):
        for split in ("train", "test"):
            (root / f"{split}{d}").mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(lo, hi, (size, size, 3), dtype=np.uint8)).save(
                    root / f"{split}{d}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cyc")
    data = unpaired_folder(tmp / "horse2zebra")
    rc = main(["train", "cyclegan", "--data", f"unpaired:{data}", "--steps", "2", "--out", str(tmp / "run"),
               "--quiet", "batch_size=2", "g_width=4", "g_blocks=1", "d_width=4"])
    assert rc == 0
    return tmp / "run"


def test_trains_from_the_cli_on_the_offline_task(tmp_path):
    rc = main(["train", "cyclegan", "--preset", "circles2squares", "--steps", "2", "--out", str(tmp_path / "r"),
               "--quiet", "resolution=8", "batch_size=2", "g_width=4", "g_blocks=1", "d_width=4", "d_layers=0"])
    assert rc == 0 and (tmp_path / "r" / "plots" / "translations-step-000002.png").is_file()


def test_translate_both_directions_at_any_size(run, tmp_path, capsys):
    Image.fromarray(np.full((12, 8, 3), 50, np.uint8)).save(tmp_path / "x.png")   # 8 wide, 12 high
    x = read_image(tmp_path / "x.png", 3)
    outs = {}
    for direction in ("AtoB", "BtoA"):
        assert main(["translate", str(run), str(tmp_path / "x.png"), "--out", str(tmp_path / direction),
                     "--direction", direction]) == 0
        outs[direction] = np.asarray(Image.open(tmp_path / direction / "x.png"))
        _, G = load_translator(run, direction)
        with torch.no_grad():
            want = ((G(x)[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().numpy()
        assert outs[direction].shape == (12, 8, 3) and np.abs(outs[direction] - want).max() <= 1
    assert not np.array_equal(outs["AtoB"], outs["BtoA"])   # G_ab and G_ba are different nets
    # other sizes are mirror-padded to a multiple of 4 and cropped back: size and aspect kept
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (10, 13, 3), dtype=np.uint8)).save(tmp_path / "y.png")
    assert main(["translate", str(run), str(tmp_path / "y.png"), "--out", str(tmp_path / "y-out.png")]) == 0
    y = read_image(tmp_path / "y.png", 3)
    _, G = load_translator(run, "AtoB")
    with torch.no_grad():
        want = G(torch.nn.functional.pad(y, (0, 3, 0, 2), mode="reflect"))[..., :10, :13]
    got = np.asarray(Image.open(tmp_path / "y-out.png")).astype(np.float64)
    assert got.shape == (10, 13, 3)
    assert np.abs(got - ((want[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().numpy()).max() <= 1
    Image.fromarray(np.zeros((6, 20, 3), np.uint8)).save(tmp_path / "thin.png")
    assert main(["translate", str(run), str(tmp_path / "thin.png"), "--out", str(tmp_path / "o")]) == 2
    assert "at least 8 px" in capsys.readouterr().err


# ------------------------------------------------------------------ generator=unet and norm=layer options

def test_unet_generator_option_builds_the_unet_without_dropout():
    from ganforge.models.image2image import ResnetGenerator, UNetGenerator
    nets = recipe_for(generator="unet")[0].build()
    assert isinstance(nets["G_ab"], UNetGenerator) and isinstance(nets["G_ba"], UNetGenerator)
    assert not any(isinstance(m, nn.Dropout) or type(m).__name__ == "NoiseDropout" for m in nets["G_ab"].modules())
    assert isinstance(recipe_for()[0].build()["G_ab"], ResnetGenerator)    # the paper's stays the default
    with pytest.raises(GanforgeError, match="generator"):
        recipe_for(generator="unet256")
    with pytest.raises(GanforgeError, match="power-of-two"):
        recipe_for(generator="unet", resolution=12)[0].build()   # the U-Net's own rule, not the ResNet's


def test_layer_norm_option_is_the_same_in_train_and_eval_mode():
    recipe, _ = recipe_for(norm="layer")
    G = recipe.build()["G_ab"]
    assert any(isinstance(m, nn.GroupNorm) for m in G.modules())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        train = G.train()(x)
        # one image alone gives the same output as inside a batch: no batch statistics anywhere
        assert torch.allclose(G.eval()(x), train, atol=1e-6) and torch.allclose(G(x[:1]), train[:1], atol=1e-6)
    G_batch = recipe_for(norm="batch")[0].build()["G_ab"]
    with torch.no_grad():
        assert not torch.allclose(G_batch.train()(x), G_batch.eval()(x), atol=1e-3)


def test_unet_translates_any_size_on_tiles(tmp_path):
    data = unpaired_folder(tmp_path / "d")
    assert main(["train", "cyclegan", "--data", f"unpaired:{data}", "--steps", "2", "--out", str(tmp_path / "run"),
                 "--quiet", "batch_size=2", "g_width=4", "d_width=4", "generator=unet", "norm=layer"]) == 0
    recipe, G = load_translator(tmp_path / "run", "AtoB")
    assert recipe.tile() == 8 and isinstance(G, nn.Module)
    for size in ((12, 20), (5, 6)):          # larger than a tile, and smaller (padded)
        pixels = np.random.default_rng(1).integers(0, 255, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "x.png")
        assert main(["translate", str(tmp_path / "run"), str(tmp_path / "x.png"), "--out", str(tmp_path / "o.png")]) == 0
        assert np.asarray(Image.open(tmp_path / "o.png")).shape == (*size, 3)
