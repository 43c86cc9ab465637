"""pix2pix: trains from the CLI on an official A|B folder and on the offline tasks, exact resume, the loss
(cGAN + lambda L1, D halved) in closed form, every option, and `ganforge translate`."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import losses as L
from ganforge.api import load_data, make_config
from ganforge.cli import main
from ganforge.commands.translate import load_translator, tiled
from ganforge.errors import GanforgeError
from ganforge.models.image2image import patch_receptive_field
from ganforge.recipes.base import StepContext
from ganforge.training import checkpoint

TINY = {"steps": 4, "batch_size": 2, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 4,
        "g_width": 4, "d_width": 4}


def recipe_for(**overrides):
    cls, cfg = make_config("pix2pix", overrides={**TINY, "resolution": 16, **overrides})
    data, info = load_data(cfg)
    return cls(cfg, info), data


def ctx_for(data, n=2):
    ctx = StepContext(0, lambda: data.batch(torch.arange(n)), torch.device("cpu"), n)
    ctx.shared = {}
    return ctx


def paired_folder(root, n=4, size=16):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(np.concatenate([a, 255 - a], 1)).save(root / split / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A pix2pix run trained from the CLI on a folder in pix2pix's official layout."""
    tmp = tmp_path_factory.mktemp("p2p")
    data = paired_folder(tmp / "facades")
    out = tmp / "run"
    rc = main(["train", "pix2pix", "--data", f"paired:{data}", "--steps", "2", "--out", str(out), "--quiet",
               "resolution=16", "batch_size=2", "g_width=4", "d_width=4", "sample_every=2", "direction=BtoA"])
    assert rc == 0
    return out


def test_trains_from_the_cli_on_an_official_paired_folder(run):
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["direction"] == "BtoA" and cfg["data_info"]["shape"] == [3, 16, 16]
    assert (checkpoint.latest(run) / "weights.safetensors").is_file()
    assert (run / "plots" / "translations-step-000002.png").is_file()   # input | output | target rows
    assert Image.open(run / "samples" / "step-000002.png").size[0] > 16


@pytest.mark.parametrize("preset", ["edges2photo", "gray2color"])
def test_trains_from_the_cli_on_the_offline_tasks(tmp_path, preset):
    rc = main(["train", "pix2pix", "--preset", preset, "--steps", "2", "--out", str(tmp_path / "r"), "--quiet",
               "resolution=8", "batch_size=2", "g_width=4", "d_width=4"])
    assert rc == 0
    sample = ganforge.load(tmp_path / "r").sample(3)
    assert sample.shape == (3, 3, 8, 8) and sample.abs().max() <= 1


def test_resume_is_bit_identical(tmp_path):
    # samples at step 3 only in the straight run, at 2 and 3 in the split one: drawing sample grids (with
    # test-time dropout) must not move the training RNG
    kw = {**TINY, "resolution": 8, "sample_every": 3}
    ganforge.train("pix2pix", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("pix2pix", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (checkpoint.read(checkpoint.latest(tmp_path / r), with_state=False)[0] for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("loss", ["ns", "lsgan", "hinge"])
def test_losses_are_cgan_plus_weighted_l1_with_d_halved(loss):
    recipe, data = recipe_for(loss=loss, lambda_l1=7.0, gan_weight=0.3, dropout=0.0)
    nets = recipe.build()
    nets.eval()   # BatchNorm on running statistics: every forward of the same input agrees
    ctx = ctx_for(data)
    x, y = data.batch(torch.arange(2))["cond"], data.batch(torch.arange(2))["real"]
    fake = nets["G"](x)
    real_logits, fake_logits = nets["D"](torch.cat([x, y], 1)), nets["D"](torch.cat([x, fake], 1))
    d = recipe.d_loss(nets, ctx)["loss"]
    assert torch.allclose(d, 0.5 * L.ADVERSARIAL[loss].d(real_logits=real_logits, fake_logits=fake_logits))
    g = recipe.g_loss(nets, ctx)
    want = 7.0 * (fake - y).abs().mean() + 0.3 * L.ADVERSARIAL[loss].g(fake_logits=fake_logits)
    assert torch.allclose(g["loss"], want)
    assert torch.allclose(g["l1"], (fake - y).abs().mean())


def test_the_ablations_l1_alone_trains_no_d_and_cgan_alone_has_no_l1():
    recipe, data = recipe_for(gan_weight=0.0)
    assert [p.name for p in recipe.phases(0)] == ["G"]
    nets = recipe.build()
    out = recipe.g_loss(nets, ctx_for(data))
    assert "adv" not in out and torch.allclose(out["loss"], 100.0 * out["l1"])
    recipe, data = recipe_for(lambda_l1=0.0)
    assert [p.name for p in recipe.phases(0)] == ["D", "G"]
    out = recipe.g_loss(recipe.build(), ctx_for(data))
    assert torch.allclose(out["loss"], out["adv"])
    with pytest.raises(GanforgeError, match="without a loss"):
        recipe_for(lambda_l1=0.0, gan_weight=0.0)


def test_d_sees_the_concatenated_pair_with_a_scaled_patch():
    recipe, _ = recipe_for(data="photos:gray2color", resolution=32)
    nets = recipe.build()
    first = nets["D"].net[0]
    assert first.in_channels == 1 + 3 and first.out_channels == 4                  # concat(x, y); d_width
    assert nets["D"].receptive_field == patch_receptive_field(1) == 16             # 70x70 scaled to 32 px
    assert nets["G"].downs[0][0].in_channels == 1 and nets["G"].downs[0][0].out_channels == 4   # g_width
    recipe, _ = recipe_for(data="photos:gray2color", resolution=32, d_layers=2, d_width=8)
    assert recipe.build()["D"].receptive_field == 34 and recipe.build()["D"].net[0].out_channels == 8
    with pytest.raises(GanforgeError, match="too deep"):
        recipe_for(d_layers=3)[0].build()


def test_direction_swaps_input_and_target():
    recipe, data = recipe_for(data="photos:gray2color", direction="BtoA")
    G = recipe.build()["G"]
    assert G.downs[0][0].in_channels == 3 and G.ups[-1][0].out_channels == 1       # colour -> grey
    assert recipe.sample_inputs(2).shape == (2, 3, 16, 16)
    x, y = recipe.split(data.batch(torch.arange(2)), "BtoA")
    assert x.shape[1] == 3 and y.shape[1] == 1


def test_ycbcr_is_bt601_and_inverts_exactly():
    from ganforge.data.images import set_channels
    from ganforge.models.image2image import rgb_to_chroma, ycbcr_to_rgb
    rgb = torch.rand(2, 3, 5, 5) * 1.6 - 0.8
    y = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(ycbcr_to_rgb(y, rgb_to_chroma(rgb)), rgb, atol=1e-5)
    grey = torch.full((1, 3, 2, 2), 0.3)
    assert torch.allclose(rgb_to_chroma(grey), torch.zeros(1, 2, 2, 2), atol=1e-6)      # grey has no chroma
    u8 = torch.randint(0, 256, (1, 3, 4, 4), dtype=torch.uint8)   # the data's grey input is this luma (+-1/2)
    assert (set_channels(u8, 1).float() - (u8.float() * torch.tensor([.299, .587, .114]).view(1, 3, 1, 1))
            .sum(1, keepdim=True)).abs().max() <= 0.5 + 1e-3


def test_keep_luma_predicts_chroma_and_keeps_the_input_luma():
    recipe, data = recipe_for(data="photos:gray2color", keep_luma=True)
    G = recipe.build()["G"]
    assert G.net.ups[-1][0].out_channels == 2                                          # Cb, Cr only
    x = data.batch(torch.arange(4))["cond"]
    with torch.no_grad():
        out = G(x)
    luma = (out * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    inside = (out.abs() < 0.999).all(1, keepdim=True)                                  # not clamped
    assert out.shape[1] == 3 and inside.float().mean() > 0.5
    assert torch.allclose(luma[inside], x[inside], atol=1e-5)
    plain = recipe_for(data="photos:gray2color")[0].build()["G"]
    with torch.no_grad():
        y = plain(x)
    assert not torch.allclose((y * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True), x,
                              atol=1e-2)
    with pytest.raises(GanforgeError, match="keep_luma"):
        recipe_for(data="photos:gray2color", direction="BtoA", keep_luma=True)[0].build()


def test_dropout_is_g_noise_at_test_time_and_norm_option():
    recipe, _ = recipe_for()
    G = recipe.build()["G"].eval()
    x = recipe.sample_inputs(2)
    assert not torch.equal(G(x), G(x))                                 # dropout stays on after eval()
    assert torch.equal(recipe.generate(G, x), recipe.generate(G, x))   # sample grids use a fixed seed
    recipe, _ = recipe_for(dropout=0.0, norm="instance")
    nets = recipe.build().eval()
    assert torch.equal(nets["G"](x), nets["G"](x))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in nets["D"].modules())
    nets = recipe_for(dropout=0.0, norm="layer")[0].build()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in nets["G"].modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in nets["D"].modules())
    with torch.no_grad():   # no batch statistics: one input alone, in eval mode, is what it is in a training batch
        assert torch.allclose(nets["G"].eval()(x[:1]), nets["G"].train()(x)[:1], atol=1e-6)


def test_wrong_data_is_a_clear_error():
    with pytest.raises(GanforgeError, match="needs paired images"):
        recipe_for(data="digits")[0].build()
    with pytest.raises(GanforgeError, match="srgan"):
        recipe_for(data="photos:sr4")[0].build()
    with pytest.raises(GanforgeError, match="power-of-two"):
        recipe_for(resolution=12, data="photos:gray2color")[0].build()
    with pytest.raises(GanforgeError, match="direction"):
        recipe_for(direction="AtoC")


# ------------------------------------------------------------------------------------------- translate

def test_translate_files_and_folders(run, tmp_path):
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"{i}.jpg")
    assert main(["translate", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "sub").iterdir()) == ["0.png", "1.png"]
    assert main(["translate", str(run), str(folder / "1.jpg"), "--out", str(tmp_path / "one")]) == 0
    one = np.asarray(Image.open(tmp_path / "one" / "1.png"))
    assert one.shape == (16, 16, 3)
    # the same seed gives the same output (pix2pix's dropout noise), another seed another one
    main(["translate", str(run), str(folder / "1.jpg"), "--out", str(tmp_path / "two")])
    main(["translate", str(run), str(folder / "1.jpg"), "--out", str(tmp_path / "three"), "--seed", "5"])
    assert np.array_equal(one, np.asarray(Image.open(tmp_path / "two" / "1.png")))
    assert not np.array_equal(one, np.asarray(Image.open(tmp_path / "three" / "1.png")))


def test_translate_keeps_any_size_and_aspect_unless_resized(run, tmp_path, capsys):
    """A photo of any size comes back at that size: the U-Net (built for 16x16) runs on blended tiles."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    assert main(["translate", str(run), str(tmp_path / "big.jpg"), "--out", str(tmp_path / "out.png")]) == 0
    assert Image.open(tmp_path / "out.png").size == (70, 45)
    Image.fromarray(np.zeros((5, 3, 3), np.uint8)).save(tmp_path / "small.png")     # smaller than one tile
    assert main(["translate", str(run), str(tmp_path / "small.png"), "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (3, 5)
    assert main(["translate", str(run), str(tmp_path / "big.jpg"), "--out", str(tmp_path / "sq"), "--resize"]) == 0
    assert Image.open(tmp_path / "sq" / "big.png").size == (16, 16)
    Image.fromarray(np.zeros((1, 9, 3), np.uint8)).save(tmp_path / "line.png")
    assert main(["translate", str(run), str(tmp_path / "line.png"), "--out", str(tmp_path / "o")]) == 2
    assert "too small to translate" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()          # checked before anything was written


def test_tiles_blend_without_seams_and_one_tile_is_the_net_itself(run):
    x = torch.rand(1, 3, 37, 29) * 2 - 1
    assert torch.allclose(tiled(lambda b: b, x, 16), x, atol=1e-6)      # identity tiles -> the image, exactly
    assert torch.allclose(tiled(lambda b: b * 0 + 0.5, x, 16), torch.full_like(x, 0.5))
    recipe, G = load_translator(run)
    one = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    want = G(one)
    torch.manual_seed(0)
    assert torch.allclose(tiled(G, one, 16), want, atol=1e-5)
    # away from overlaps each output pixel is its tile's own: the top-left 12x12 is G on the first tile
    torch.manual_seed(0)
    got = tiled(G, x, 16, batch=1)
    torch.manual_seed(0)
    assert torch.allclose(got[..., :12, :12], G(x[..., :16, :16])[..., :12, :12], atol=1e-5)


def test_translate_errors(run, tmp_path, capsys):
    assert main(["translate", str(run), str(tmp_path / "missing.png"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["translate", str(run), str(tmp_path / "a.png"), "--out", str(tmp_path), "--direction",
                 "AtoB"]) == 2
    assert "trained BtoA" in capsys.readouterr().err
    assert main(["translate", str(tmp_path), str(tmp_path / "a.png"), "--out", str(tmp_path)]) == 2
    assert "not a ganforge run" in capsys.readouterr().err
