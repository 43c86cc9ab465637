"""SRGAN / EPSR: pixel-shuffle shapes, MSE pretraining then the weighted perceptual + MSE + adversarial loss,
the feature net recorded in config.json, exact resume, CLI training on photos:sr4 and on a folder of HR
images, and `ganforge upscale`."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import losses as L
from ganforge.api import load_data, make_config
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.models.perceptual import RandomConvFeatures, VGG19Features
from ganforge.models.srresnet import SRResidualBlock
from ganforge.recipes.base import StepContext
from ganforge.recipes.srgan import bicubic_down, bicubic_up
from ganforge.training import checkpoint

TINY = {"steps": 4, "batch_size": 2, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 4,
        "resolution": 16, "g_width": 4, "g_blocks": 1, "d_width": 4, "pretrain_steps": 2}


def recipe_for(**overrides):
    cls, cfg = make_config("srgan", overrides={**TINY, **overrides})
    data, info = load_data(cfg)
    recipe = cls(cfg, info)
    info.extra.update(recipe.describe_data())   # as ganforge.train does when a run starts
    return recipe, data


def ctx_for(data, n=2):
    ctx = StepContext(0, lambda: data.batch(torch.arange(n)), torch.device("cpu"), n)
    ctx.shared = {}
    return ctx


def hr_folder(root, n=3, size=16):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"{i:04d}.png")
    return root


def test_bicubic_baseline_helpers():
    hr = torch.full((1, 3, 16, 16), 0.2)
    lr = bicubic_down(hr, 4)
    assert lr.shape == (1, 3, 4, 4)
    assert torch.allclose(lr, torch.full_like(lr, round(1.2 * 127.5) / 127.5 - 1))   # on the 8-bit grid
    assert bicubic_up(lr, 4).shape == hr.shape and bicubic_up(torch.ones(1, 1, 2, 2) * 5, 2).max() == 1


@pytest.mark.parametrize("scale", [2, 4])
def test_pixel_shuffle_generator_upscales_by_scale(tmp_path, scale):
    recipe, data = recipe_for(data=f"folder:{hr_folder(tmp_path / 'hr')}", scale=scale)
    assert recipe.lr_shape() == (3, 16 // scale, 16 // scale)
    G = recipe.build()["G"]
    lr, hr = recipe.pair(ctx_for(data))
    assert torch.equal(lr, bicubic_down(hr, scale))     # single-domain data: LR made by bicubic downscaling
    assert G(lr).shape == hr.shape
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in G.modules()) == int(math.log2(scale))
    assert G(torch.zeros(1, 3, 5, 7)).shape == (1, 3, 5 * scale, 7 * scale)   # fully convolutional


def test_pretraining_phase_then_adversarial_phases():
    recipe, _ = recipe_for(pretrain_steps=3)
    assert [[p.name for p in recipe.phases(s)] for s in (0, 2, 3)] == [["G_mse"], ["G_mse"], ["D", "G"]]
    recipe, _ = recipe_for(pretrain_steps=0, lambda_adv=0.0)
    assert [p.name for p in recipe.phases(0)] == ["G"]      # no D when the adversarial weight is 0


@pytest.mark.parametrize("weights", [(1.0, 0.0, 1e-3), (0.5, 2.0, 0.1), (0.0, 1.0, 0.0)])
def test_g_loss_is_the_epsr_weighted_sum(weights):
    lc, lm, la = weights
    recipe, data = recipe_for(lambda_content=lc, lambda_mse=lm, lambda_adv=la)
    nets = recipe.build().eval()
    ctx = ctx_for(data)
    out = recipe.g_loss(nets, ctx)
    lr, hr = recipe.pair(ctx)
    sr = nets["G"](lr)
    assert torch.allclose(out["mse"], L.mse(fake=sr, target=hr))
    want = lm * out["mse"]
    if lc:
        phi = recipe.feature_net
        assert isinstance(phi, RandomConvFeatures)
        assert torch.allclose(out["content"], ((phi(sr) - phi(hr)) ** 2).mean())
        want = want + lc * out["content"]
    if la:
        assert torch.allclose(out["adv"], L.ns_g(fake_logits=nets["D"](sr)))
        want = want + la * out["adv"]
    assert set(out) == {"loss", "mse"} | ({"content"} if lc else set()) | ({"adv"} if la else set())
    assert torch.allclose(out["loss"], want)
    assert torch.allclose(recipe.mse_loss(nets, ctx)["loss"], out["mse"])


@pytest.mark.parametrize("loss", ["ns", "lsgan"])
def test_d_loss(loss):
    recipe, data = recipe_for(loss=loss)
    nets = recipe.build().eval()
    ctx = ctx_for(data)
    lr, hr = recipe.pair(ctx)
    want = L.ADVERSARIAL[loss].d(real_logits=nets["D"](hr), fake_logits=nets["D"](nets["G"](lr)))
    assert torch.allclose(recipe.d_loss(nets, ctx)["loss"], want)


def test_architecture_options():
    nets = recipe_for(g_width=6, g_blocks=3, d_width=5)[0].build()
    assert sum(isinstance(m, SRResidualBlock) for m in nets["G"].modules()) == 3
    assert nets["G"].head[0].out_channels == 6 and nets["D"].features[0].out_channels == 5


def test_pixel_loss_l1_replaces_mse_in_pretraining_and_in_lambda_mse():
    for name, fn in (("mse", L.mse), ("l1", L.l1)):
        recipe, data = recipe_for(pixel_loss=name, lambda_content=0.0, lambda_mse=2.0, lambda_adv=0.0)
        nets = recipe.build().eval()
        ctx = ctx_for(data)
        lr, hr = recipe.pair(ctx)
        want = fn(fake=nets["G"](lr), target=hr)
        assert torch.allclose(recipe.mse_loss(nets, ctx)["loss"], want)
        out = recipe.g_loss(nets, ctx)
        assert torch.allclose(out[name], want) and torch.allclose(out["loss"], 2 * want)
    with pytest.raises(GanforgeError, match="pixel_loss"):
        recipe_for(pixel_loss="huber")


def test_cosine_lr_schedule_restarts_for_the_adversarial_phase():
    assert recipe_for()[0].optimizer_schedule(3) == {}       # constant: the trainer leaves the lrs alone
    recipe, _ = recipe_for(lr_schedule="cosine", steps=12, pretrain_steps=4)
    lrs = [recipe.optimizer_schedule(s)["G"]["lr"] for s in range(12)]
    assert lrs[0] == 1 and lrs[2] == pytest.approx(0.5) and lrs[4] == 1 and lrs[8] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(lrs[4:], lrs[5:])) and lrs[11] < 0.1
    assert recipe.optimizer_schedule(9)["D"] == recipe.optimizer_schedule(9)["G"]
    from ganforge.training import optim
    nets = recipe.build()
    opts = {p: recipe.optimizer(p, nets[p].parameters()) for p in ("G", "D")}
    for o in opts.values():
        for g in o.param_groups:
            g["initial_lr"] = g["lr"]
    optim.schedule(opts, 2, 12, 1.0, recipe, {})             # the trainer applies it
    assert opts["G"].param_groups[0]["lr"] == pytest.approx(0.5 * recipe.cfg.g_lr)


def test_adv_g_lr_sets_gs_lr_in_the_adversarial_phase_only():
    recipe, _ = recipe_for(steps=12, pretrain_steps=4, g_lr=1e-3, adv_g_lr=1e-4)
    assert recipe.optimizer_schedule(3) == {} and recipe.optimizer_schedule(4) == {"G": {"lr": pytest.approx(0.1)}}
    recipe, _ = recipe_for(steps=12, pretrain_steps=4, g_lr=1e-3, adv_g_lr=1e-4, lr_schedule="cosine")
    assert recipe.optimizer_schedule(4) == {"G": {"lr": pytest.approx(0.1)}, "D": {"lr": 1}}
    with pytest.raises(GanforgeError, match="adv_g_lr"):
        recipe_for(adv_g_lr=-1.0)


def test_icnr_config_initialises_the_sub_pixel_convs():
    for icnr in (False, True):
        conv = recipe_for(icnr=icnr)[0].build()["G"].up[0]
        w = conv.weight.unflatten(0, (-1, 4))                # the 4 sub-pixels of each output channel
        assert torch.equal(w, w[:, :1].expand_as(w)) == icnr


def test_residual_generator_starts_from_bicubic_and_learns_a_correction():
    recipe, data = recipe_for(residual=True)
    nets = recipe.build()
    lr, hr = recipe.pair(ctx_for(data))
    assert torch.equal(nets["G"](lr), bicubic_up(lr, 4))
    with torch.no_grad():
        nets["G"].G.tail[0].bias.fill_(5.0)
    assert nets["G"](lr).max() > 1 and nets["G"].eval()(lr).max() == 1     # clamped to [-1, 1] in eval mode
    nets["G"].G.tail[0].bias.data.zero_()
    nets["G"].train()
    plain = recipe_for()[0].build()["G"]
    assert not torch.allclose(plain(lr), bicubic_up(lr, 4), atol=0.05)
    out = recipe.mse_loss(nets, ctx_for(data))
    out["loss"].backward()
    assert nets["G"].G.tail[0].weight.grad.abs().sum() > 0     # the zero-initialised conv still learns


def test_resume_is_bit_identical_across_the_pretraining_boundary(tmp_path):
    kw = {**TINY, "sample_every": 3, "pretrain_steps": 1}
    ganforge.train("srgan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("srgan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_records_the_feature_net(tmp_path):
    ganforge.train("srgan", out=tmp_path / "r", progress=False, **{**TINY, "steps": 3})
    fn = json.loads((tmp_path / "r" / "config.json").read_text())["data_info"]["extra"]["feature_net"]
    assert fn["name"] == "random" and fn["seed"] == 0 and fn["channels"] == 3


def test_vgg19_feature_net_from_a_weights_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1, "features.0.bias": torch.zeros(64),
             "features.2.weight": torch.randn(64, 64, 3, 3, generator=g) * 0.05, "features.2.bias": torch.zeros(64)}
    path = tmp_path / "vgg19-test.pth"
    torch.save(state, path)
    kw = {**TINY, "steps": 3, "content": "vgg19", "content_layer": "conv1_2", "vgg_weights": str(path)}
    ganforge.train("srgan", out=tmp_path / "r", progress=False, **kw)
    fn = json.loads((tmp_path / "r" / "config.json").read_text())["data_info"]["extra"]["feature_net"]
    assert fn["name"] == "vgg19" and fn["layer"] == "conv1_2"
    assert fn["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    recipe, _ = recipe_for(**kw)
    assert isinstance(recipe.feature_net, VGG19Features) and recipe.feature_net.layer == "conv1_2"
    with pytest.raises(GanforgeError, match="VGG19 weights"):
        recipe_for(**{**kw, "vgg_weights": str(tmp_path / "missing.pth")})
    # an SRResNet (no content loss) never needs the weights
    recipe, _ = recipe_for(**{**kw, "vgg_weights": str(tmp_path / "missing.pth"), "lambda_content": 0.0})
    assert "feature_net" not in recipe.info.extra


def test_wrong_data_is_a_clear_error(tmp_path):
    with pytest.raises(GanforgeError, match="not a x2 super-resolution task"):
        recipe_for(scale=2)[0].build()                    # photos:sr4 pairs are x4
    with pytest.raises(GanforgeError, match="multiple of scale=4"):
        recipe_for(data=f"folder:{hr_folder(tmp_path / 'hr')}", resolution=18)[0].build()
    with pytest.raises(GanforgeError, match="scale"):
        recipe_for(scale=3)


# ------------------------------------------------------------------------------------ CLI and upscale

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An srgan run trained from the CLI on a folder of HR images (the DIV2K_train_HR layout)."""
    tmp = tmp_path_factory.mktemp("sr")
    hr = hr_folder(tmp / "DIV2K_train_HR")
    rc = main(["train", "srgan", "--data", f"folder:{hr}", "--steps", "2", "--out", str(tmp / "run"), "--quiet",
               "resolution=16", "batch_size=2", "g_width=4", "g_blocks=1", "d_width=4", "pretrain_steps=1"])
    assert rc == 0
    return tmp / "run"


def test_trains_from_the_cli_on_the_offline_task(tmp_path):
    rc = main(["train", "srgan", "--preset", "sr4", "--steps", "2", "--out", str(tmp_path / "r"), "--quiet",
               "resolution=16", "batch_size=2", "g_width=4", "g_blocks=1", "d_width=4", "pretrain_steps=1"])
    assert rc == 0
    assert ganforge.load(tmp_path / "r").sample(2).shape == (2, 3, 16, 16)   # held-out LR photos, upscaled


def test_upscale_a_file_and_a_folder(run, tmp_path):
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "small.png")
    assert main(["upscale", str(run), str(tmp_path / "small.png"), "--out", str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (28, 20)
    folder = tmp_path / "lr"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "grey.png")   # converted to the model's RGB
    assert main(["upscale", str(run), str(folder), "--out", str(tmp_path / "out")]) == 0
    assert Image.open(tmp_path / "out" / "grey.png").size == (16, 16)


def test_upscale_and_translate_errors(run, tmp_path, capsys):
    Image.fromarray(np.zeros((1, 6, 3), np.uint8)).save(tmp_path / "line.png")
    assert main(["upscale", str(run), str(tmp_path / "line.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert "too small to upscale" in capsys.readouterr().err
    assert main(["translate", str(run), str(tmp_path / "line.png"), "--out", str(tmp_path / "o")]) == 2
    assert "use `ganforge upscale`" in capsys.readouterr().err
    ganforge.train("pix2pix", out=tmp_path / "p2p", progress=False, steps=1, resolution=8, batch_size=2,
                   g_width=4, d_width=4)
    assert main(["upscale", str(tmp_path / "p2p"), str(tmp_path / "line.png"), "--out", str(tmp_path / "o")]) == 2
    assert "upscale needs an srgan run" in capsys.readouterr().err
