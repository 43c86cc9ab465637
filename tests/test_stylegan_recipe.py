"""`stylegan` recipe (Karras et al. 2019, arXiv:1812.04948; StyleGAN2, arXiv:1912.04958): truncation, style
mixing in training, w_avg tracking, lazy R1 and path length, lazy-reg Adam correction, exact resume, and the
style-mix / interpolate tools."""
import math

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.api import load_data, make_config
from ganforge.cli import main
from ganforge.commands.interpolate import latent_walk, slerp
from ganforge.commands.style_mix import copy_band, style_bands, style_mix_grid
from ganforge.errors import GanforgeError
from ganforge.models.stylegan import MappingNetwork
from ganforge.recipes.base import lazy_correction
from ganforge.nn.style import AdaIN, ModulatedConv2d
from ganforge.recipes.base import StepContext
from ganforge.regularizers import r1_penalty
from ganforge.training import checkpoint

SMALL = {"data": "digits", "resolution": 16, "g_width": 8, "d_width": 8, "max_width": 16, "z_dim": 16,
         "w_dim": 16, "mapping_layers": 2, "batch_size": 8}


def make(**kw):
    cls, cfg = make_config("stylegan", overrides={**SMALL, **kw})
    data, info = load_data(cfg)
    rec = cls(cfg, info)
    torch.manual_seed(0)
    return rec, rec.build(), data.batch(torch.arange(8))["real"]


def ctx(step, real):
    c = StepContext(step, lambda: {"real": real}, torch.device("cpu"), real.shape[0])
    c.shared = {}
    return c


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg") / "run"
    ganforge.train("stylegan", out=out, progress=False, steps=3, sample_every=3, checkpoint_every=3,
                   num_samples=16, **SMALL)
    return out


def test_config_builds_the_asked_networks():
    rec, nets, _ = make(mapping_layers=3, mapping_lr_mul=0.5, w_dim=12)
    f = nets["G"].mapping_network
    assert isinstance(f, MappingNetwork) and f.w_dim == 12
    lin = [m for m in f.modules() if hasattr(m, "lr_mul")]
    assert len(lin) == 3 and all(m.lr_mul == 0.5 for m in lin)
    assert any(isinstance(m, AdaIN) for m in nets["G"].modules())
    _, mod, _ = make(mode="modulated")
    assert any(isinstance(m, ModulatedConv2d) for m in mod["G"].modules())
    assert not any(isinstance(m, AdaIN) for m in mod["G"].modules())
    assert rec.cfg.ema_decay > 0 and rec.cfg.style_mixing_prob == 0.9 and rec.cfg.r1_every == 16


def test_truncation_zero_gives_the_image_of_w_avg_and_one_changes_nothing():
    rec, nets, _ = make()
    G = nets["G"]
    G.update_w_avg(torch.randn(32, 16), beta=0.0)          # a non-zero centre
    z = torch.randn(5, 16)
    at_avg = G.synthesis(G.w_avg.expand(1, G.num_ws, -1), noise="const")
    x0 = rec.generate(G, z, truncation=0.0)
    assert torch.allclose(x0, at_avg.expand_as(x0), atol=1e-5)
    assert torch.equal(rec.generate(G, z, truncation=1.0), rec.generate(G, z))
    assert not torch.allclose(rec.generate(G, z, truncation=0.5), rec.generate(G, z))
    assert "truncation" in rec.sample_kwargs
    with pytest.raises(GanforgeError, match="truncation"):
        rec.generate(G, z, truncation=1.5)


def test_training_styles_mix_two_latents_at_one_crossover_with_the_given_probability():
    rec, nets, _ = make(style_mixing_prob=1.0)
    G = nets["G"]
    torch.manual_seed(3)
    ws, w = rec.styles(G, 4, "cpu")
    same = [torch.equal(ws[:, i], w) for i in range(G.num_ws)]
    cut = same.index(False)
    assert 1 <= cut < G.num_ws and all(same[:cut]) and not any(same[cut:])
    assert all(torch.equal(ws[:, i], ws[:, cut]) for i in range(cut, G.num_ws))   # one second latent
    after_mixed = torch.rand(1)
    rec.cfg.style_mixing_prob = 0.0
    torch.manual_seed(3)
    ws0, w0 = rec.styles(G, 4, "cpu")
    assert torch.equal(w0, w) and all(torch.equal(ws0[:, i], w0) for i in range(G.num_ws))
    assert torch.equal(torch.rand(1), after_mixed)         # the RNG stream does not depend on mixing


def test_g_step_tracks_w_avg():
    rec, nets, real = make(w_avg_beta=0.9, style_mixing_prob=0.0)
    G = nets["G"]
    torch.manual_seed(4)
    rec.g_loss(nets, ctx(0, real))
    torch.manual_seed(4)
    _, w = rec.styles(G, 8, "cpu")
    assert torch.allclose(G.w_avg, 0.1 * w.mean(0), atol=1e-6)
    frozen, fnets, _ = make(w_avg_beta=1.0)
    frozen.g_loss(fnets, ctx(0, real))
    assert torch.equal(fnets["G"].w_avg, torch.zeros(16))


def test_lazy_r1_phase_scales_the_penalty_and_corrects_adam():
    rec, nets, real = make(r1_gamma=4.0, r1_every=16)
    phases = {p.name: p for p in rec.phases(0)}
    assert list(phases) == ["D", "D_r1", "G"] and phases["D_r1"].every == 16 and phases["D_r1"].player == "D"
    out = rec.r1_loss(nets, ctx(0, real))
    x = real.clone().requires_grad_(True)
    r1 = r1_penalty(nets["D"](x), x)
    # the phase's loss is gamma/2 R1; the trainer counts it r1_every times (tests/test_trainer.py: lazy phases)
    assert torch.allclose(out["r1"], r1) and torch.allclose(out["loss"] * phases["D_r1"].every, 4.0 / 2 * r1 * 16)
    opt = rec.optimizer("D", [torch.nn.Parameter(torch.zeros(1))])
    lazy_correction(opt, phases["D_r1"].every)                 # what the trainer does to D's optimizer
    c = 16 / 17
    assert opt.defaults["lr"] == pytest.approx(2e-3 * c) and opt.defaults["betas"] == pytest.approx((0.0, 0.99 ** c))
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3 * c)
    assert rec.optimizer("G", [torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == pytest.approx(2e-3)
    off, _, _ = make(r1_gamma=0.0)
    assert [p.name for p in off.phases(0)] == ["D", "G"]
    assert off.optimizer("D", [torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == pytest.approx(2e-3)


def test_path_length_phase_shrinks_the_batch_and_tracks_its_mean():
    rec, nets, real = make(pl_weight=2.0, pl_every=4, pl_batch_shrink=4, pl_decay=0.5)
    phases = {p.name: p for p in rec.phases(0)}
    assert phases["G_pl"].every == 4 and phases["G_pl"].player == "G"
    opt = rec.optimizer("G", [torch.nn.Parameter(torch.zeros(1))])
    lazy_correction(opt, phases["G_pl"].every)
    assert opt.defaults["lr"] == pytest.approx(2e-3 * 4 / 5)
    sizes = []
    G = nets["G"]
    synth = G.synthesis
    G.synthesis = lambda ws, *a, **k: (sizes.append(ws.shape[0]), synth(ws, *a, **k))[1]
    out = rec.pl_loss(nets, ctx(0, real))
    assert sizes == [2]
    assert out["pl_mean"] > 0 and torch.allclose(rec.state_dict()["pl_mean"], out["pl_mean"])
    assert torch.allclose(out["loss"] * phases["G_pl"].every, 2.0 * out["pl_penalty"] * 4)
    first = float(out["pl_mean"])
    rec.pl_loss(nets, ctx(0, real))
    assert float(rec.pl_mean) != first                      # a running mean with rate pl_decay
    halves = []
    for decay in (0.5, 0.25):                               # from a = 0, one update gives a = decay * mean length
        r, n, _ = make(pl_weight=2.0, pl_batch_shrink=4, pl_decay=decay)
        torch.manual_seed(9)
        halves.append(float(r.pl_loss(n, ctx(0, real))["pl_mean"]))
    assert halves[0] == pytest.approx(2 * halves[1], rel=1e-5)
    assert "G_pl" not in [p.name for p in make()[0].phases(0)]


def test_diff_augment_and_instance_noise_reach_every_d_call():
    rec, nets, real = make()
    assert torch.equal(rec.d_view(real, 0), real)                  # off by default: D sees the image
    seen = []
    D = nets["D"]
    forward = D.forward
    D.forward = lambda x, *a, **k: (seen.append(x.detach().clone()), forward(x, *a, **k))[1]
    for key, value in (("diff_augment", "translation"), ("instance_noise", 0.5)):
        on, _, _ = make(**{key: value})
        seen.clear()
        torch.manual_seed(0)
        on.d_loss(nets, ctx(0, real)), on.r1_loss(nets, ctx(0, real)), on.g_loss(nets, ctx(0, real))
        # D's real inputs in the D step and in R1 are transformed images, not the batch itself
        assert len(seen) == 4 and not torch.equal(seen[0], real) and not torch.equal(seen[2], real), key
    noisy, _, _ = make(instance_noise=0.5, steps=100)
    torch.manual_seed(0)
    assert (noisy.d_view(real, 50) - real).std().item() == pytest.approx(0.25, rel=0.1)   # annealed linearly
    assert torch.equal(noisy.d_view(real, 100), real)
    with pytest.raises(GanforgeError, match="instance_noise"):
        make(instance_noise=-0.1)
    with pytest.raises(GanforgeError, match="DiffAugment"):
        make(diff_augment="zoom")


@pytest.mark.parametrize("mode", ["adain", "modulated"])
def test_resume_is_bit_identical_with_every_regularizer(tmp_path, tiny, mode):
    kw = {**tiny, **SMALL, "mode": mode, "r1_every": 2, "pl_weight": 2.0, "pl_every": 3,
          "diff_augment": "color,translation,cutout", "instance_noise": 0.1}
    ganforge.train("stylegan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("stylegan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    wa = load_file(str(checkpoint.latest(tmp_path / "a") / "weights.safetensors"))
    wb = load_file(str(checkpoint.latest(tmp_path / "b") / "weights.safetensors"))
    assert wa.keys() == wb.keys() and "ema.G.w_avg" in wa
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa = torch.load(checkpoint.latest(tmp_path / "a") / "state.pt", weights_only=True)
    sb = torch.load(checkpoint.latest(tmp_path / "b") / "state.pt", weights_only=True)
    assert sa["recipe"]["pl_mean"] > 0 and torch.equal(sa["recipe"]["pl_mean"], sb["recipe"]["pl_mean"])


def test_loaded_generator_is_the_ema_with_w_avg(run):
    g = ganforge.load(run)
    w = load_file(str(checkpoint.latest(run) / "weights.safetensors"))
    assert torch.equal(g.G.w_avg, w["ema.G.w_avg"]) and g.G.w_avg.abs().sum() > 0
    assert torch.equal(g.G.const, w["ema.G.const"]) and not torch.equal(w["ema.G.const"], w["G.const"])


def test_style_bands_follow_the_paper_and_cover_every_layer():
    assert style_bands(1024) == {"coarse": (0, 4), "middle": (4, 8), "fine": (8, 18)}
    assert style_bands(64) == {"coarse": (0, 4), "middle": (4, 8), "fine": (8, 10)}
    assert style_bands(32) == {"coarse": (0, 4), "middle": (4, 6), "fine": (6, 8)}
    assert style_bands(16) == {"coarse": (0, 2), "middle": (2, 4), "fine": (4, 6)}
    assert style_bands(8) == {"coarse": (0, 2), "fine": (2, 4)}
    for res in (8, 16, 32, 64, 256):
        spans = sorted(style_bands(res).values())
        assert spans[0][0] == 0 and spans[-1][1] == 2 * int(math.log2(res)) - 2
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_copy_band_takes_only_the_band_from_b():
    a, b = torch.zeros(2, 6, 3), torch.ones(2, 6, 3)
    assert copy_band(a, b, (2, 4))[0, :, 0].tolist() == [0, 0, 1, 1, 0, 0]


def test_style_mix_grid_layout(run):
    G = ganforge.load(run).G
    x, nrow = style_mix_grid(G, rows=2, cols=3, seed=0, truncation=0.7, bands=("coarse", "fine"))
    assert nrow == 4 and x.shape == ((1 + 2 * 2) * 4, 1, 16, 16)
    cells = x.view(5, 4, 1, 16, 16)
    assert torch.equal(cells[0, 0], torch.ones(1, 16, 16))     # blank corner
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(2, 16, generator=g), torch.randn(3, 16, generator=g)
    wa, wb = G.styles(za, 0.7), G.styles(zb, 0.7)
    with torch.no_grad():
        assert torch.allclose(cells[0, 1:], G.synthesis(wb, noise="const").clamp(-1, 1))
        assert torch.allclose(cells[1:3, 0], G.synthesis(wa, noise="const").clamp(-1, 1))
        fine = G.synthesis(copy_band(wa[1:2], wb[2:3], style_bands(16)["fine"]), noise="const").clamp(-1, 1)
    assert torch.allclose(cells[4, 3], fine[0], atol=1e-5)   # row block "fine", A_1 with B_2's fine styles (batch-size rounding)


def test_style_mix_and_walks_from_the_cli(run, tmp_path, capsys):
    for scale in (1, 3):
        assert main(["style-mix", str(run), "--out", str(tmp_path / f"mix{scale}.png"), "--rows", "2", "--cols", "2",
                     "--scale", str(scale)]) == 0
    w1, h1 = Image.open(tmp_path / "mix1.png").size
    assert (w1, h1) == (3 * 18 + 2, 7 * 18 + 2)                 # 3 columns, 1 + 3 bands x 2 rows, 16 px + pad 2
    assert Image.open(tmp_path / "mix3.png").size == (3 * w1, 3 * h1)
    assert main(["interpolate", str(run), "--space", "w", "--out", str(tmp_path / "w.gif"), "-n", "2",
                 "--points", "3", "--frames", "2", "--truncation", "0.7"]) == 0
    with Image.open(tmp_path / "w.gif") as im:
        assert im.n_frames == 6
    assert main(["style-mix", str(run), "--bands", "huge"]) == 2
    assert "coarse" in capsys.readouterr().err


def test_w_walk_passes_through_its_keys_and_z_walk_keeps_the_norm(run):
    g = ganforge.load(run)
    frames = latent_walk(g, "w", n=2, points=2, frames=4, seed=5)
    gen = torch.Generator().manual_seed(5)
    z0 = g.recipe.noise(2, "cpu", generator=gen)
    with torch.no_grad():
        assert torch.allclose(frames[0], g.recipe.generate(g.G, z0).clamp(-1, 1), atol=1e-6)
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, a * 2, 0.5)                              # parallel: linear
    assert torch.allclose(mid, 1.5 * a, atol=1e-5)


def test_trains_on_shapes_from_the_cli(tmp_path):
    args = ["train", "stylegan", "--data", "shapes:8", "--steps", "1", "--out", str(tmp_path / "s"), "--quiet",
            "g_width=8", "d_width=8", "max_width=8", "z_dim=8", "w_dim=8", "mapping_layers=1", "batch_size=4"]
    assert main(args) == 0
    assert ganforge.load(tmp_path / "s").sample(2).shape == (2, 3, 8, 8)


def test_width_and_minibatch_stddev_options_shape_the_networks():
    from ganforge.nn.style import MinibatchStdDev
    _, nets, _ = make(g_width=4, d_width=6, max_width=8, mbstd_group=2)
    G, D = nets["G"], nets["D"]
    assert G.const.shape[1] == 8 and G.to_rgb.in_channels == 4          # 4 px capped, 16 px = g_width
    assert D.from_rgb[0].out_channels == 6
    assert [m.group_size for m in D.modules() if isinstance(m, MinibatchStdDev)] == [2]
