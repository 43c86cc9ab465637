"""`progan` recipe (Karras et al. 2018, arXiv:1710.10196): growth schedule, faded reals, WGAN-GP + drift loss,
stage carried by the generator, exact resume, CLI."""
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.api import load_data, make_config
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.models.progressive import downscale_to, progan_schedule
from ganforge.recipes.base import StepContext
from ganforge.regularizers import gradient_penalty
from ganforge.training import checkpoint

# 16 px digits, tiny nets; a phase of 16 images = 2 steps of 8: steps 0-1 at 4 px, 2-3 fade in 8 px, ...
SMALL = {"data": "digits", "resolution": 16, "g_width": 8, "d_width": 8, "max_width": 16, "z_dim": 16,
         "batch_size": 8, "images_per_phase": 16}


def make(**kw):
    cls, cfg = make_config("progan", overrides={**SMALL, **kw})
    data, info = load_data(cfg)
    rec = cls(cfg, info)
    torch.manual_seed(0)
    return rec, rec.build(), data.batch(torch.arange(8))["real"]


def ctx(step, real):
    c = StepContext(step, lambda: {"real": real}, torch.device("cpu"), real.shape[0])
    c.shared = {}
    return c


def test_schedule_grows_from_start_resolution_as_a_pure_function_of_the_step():
    rec, _, _ = make()
    for step in range(12):
        assert rec.schedule(step) == progan_schedule(step, 16, 16, 8)
    assert [rec.schedule(s) for s in (0, 1, 2, 3, 4, 6, 7, 8, 100)] == [
        (0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    late, _, _ = make(start_resolution=8)                 # stage 1 (8 px) first, then 16 px
    assert [late.schedule(s) for s in (0, 2, 3, 4)] == [(1, 1.0), (2, 0.0), (2, 0.5), (2, 1.0)]
    slow, _, _ = make(images_per_phase=64)
    assert slow.schedule(3) == (0, 1.0) and slow.schedule(12) == (1, 0.5)


def test_d_sees_reals_faded_like_g_and_fakes_at_the_stage_size():
    rec, nets, real = make()
    seen = []
    nets["D"].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    rec.d_loss(nets, ctx(3, real))                         # stage 1, alpha 0.5
    assert torch.equal(seen[0], downscale_to(real, 1, 0.5)) and seen[0].shape[-1] == 8
    assert seen[1].shape == (8, 1, 8, 8)
    assert int(nets["G"].stage) == 1 and float(nets["G"].alpha) == 0.5


def d_loss(rec, nets, real, step=3, seed=1):
    torch.manual_seed(seed)
    return rec.d_loss(nets, ctx(step, real))


def test_critic_loss_is_wgan_gp_plus_drift_in_closed_form():
    rec, nets, real = make(gp_weight=0.0, drift=0.0)
    G, D = nets["G"], nets["D"]
    torch.manual_seed(1)
    fake = G(rec.noise(8, "cpu"), 1, 0.5, native=True)
    real_d = downscale_to(real, 1, 0.5)
    gp = gradient_penalty(lambda x: D(x, 1, 0.5), real_d, fake)   # eps drawn right after the noise, as in d_loss
    real_logits = D(real_d, 1, 0.5)
    wd = D(fake, 1, 0.5).mean() - real_logits.mean()
    drift = real_logits.pow(2).mean()
    plain = d_loss(rec, nets, real)["loss"]
    assert torch.allclose(plain, wd, atol=1e-6)
    rec.cfg.gp_weight, rec.cfg.drift = 10.0, 1e-3
    full = d_loss(rec, nets, real)
    assert torch.allclose(full["loss"], wd + 10 * gp + 1e-3 * drift, atol=1e-5)
    assert gp > 0 and torch.allclose(full["gp"], gp) and torch.allclose(full["drift"], drift)


def test_generator_loss_is_minus_the_critic_on_fakes():
    rec, nets, real = make()
    torch.manual_seed(2)
    out = rec.g_loss(nets, ctx(3, real))["loss"]
    torch.manual_seed(2)
    fake = nets["G"](rec.noise(8, "cpu"), 1, 0.5, native=True)
    assert torch.allclose(out, -nets["D"](fake, 1, 0.5).mean())


def test_d_steps_repeats_the_critic_phase():
    rec, _, _ = make(d_steps=3)
    assert [(p.name, p.player, p.repeat) for p in rec.phases(0)] == [("D", "D", 3), ("G", "G", 1)]


def test_loaded_run_samples_at_the_stage_it_reached_upsampled(tmp_path, tiny):
    ganforge.train("progan", out=tmp_path / "r", progress=False, **{**tiny, **SMALL})
    g = ganforge.load(tmp_path / "r")                      # last G update at step 3: stage 1, alpha 0.5
    assert (int(g.G.stage), float(g.G.alpha)) == (1, 0.5)
    x = g.sample(4, seed=0)
    assert x.shape == (4, 1, 16, 16)
    assert torch.equal(x, x[..., ::2, ::2].repeat_interleave(2, -1).repeat_interleave(2, -2))
    z = torch.randn(2, 16)
    assert g.G(z, native=True).shape == (2, 1, 8, 8)
    assert g.G(z, stage=2, alpha=1.0).shape == (2, 1, 16, 16)


def test_resume_is_bit_identical(tmp_path, tiny):
    kw = {**tiny, **SMALL}                                 # steps 0-1 at 4 px, 2-3 fade in: resume mid-growth
    ganforge.train("progan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("progan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    ganforge.resume(tmp_path / "b", progress=False)
    wa = load_file(str(checkpoint.latest(tmp_path / "a") / "weights.safetensors"))
    wb = load_file(str(checkpoint.latest(tmp_path / "b") / "weights.safetensors"))
    assert wa.keys() == wb.keys() and any(k.startswith("ema.G.") for k in wa)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("bad, words", [({"start_resolution": 6}, "power of two"),
                                        ({"start_resolution": 32}, "start_resolution"),
                                        ({"batch_size": 6}, "mbstd_group"),
                                        ({"images_per_phase": 0}, "images_per_phase"),
                                        ({"drift": -1.0}, "drift")])
def test_bad_config_names_the_key(bad, words):
    with pytest.raises(GanforgeError, match=words):
        make(**bad)


def test_trains_from_the_cli_and_walks_in_z(tmp_path, capsys):
    run = tmp_path / "cli"
    args = ["train", "progan", "--data", "digits", "--steps", "2", "--out", str(run), "--quiet", "resolution=16", "g_width=8",
            "d_width=8", "max_width=16", "z_dim=16", "batch_size=8", "images_per_phase=8"]
    assert main(args) == 0
    assert main(["interpolate", str(run), "--out", str(tmp_path / "walk.gif"), "-n", "2", "--points", "2",
                 "--frames", "3"]) == 0
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.n_frames == 6
    assert main(["interpolate", str(run), "--space", "w"]) == 2
    assert "stylegan" in capsys.readouterr().err


def test_width_latent_and_minibatch_stddev_options_shape_the_networks():
    from ganforge.nn.style import MinibatchStdDev
    _, nets, _ = make(z_dim=12, g_width=4, d_width=6, max_width=8, mbstd_group=2)
    G, D = nets["G"].net, nets["D"]
    assert G.z_dim == 12 and [m.in_channels for m in G.to_rgb] == [8, 8, 4]      # 4 px capped, 16 px = g_width
    assert [f[0].out_channels for f in D.from_rgb] == [8, 8, 6]
    assert [m.group_size for m in D.modules() if isinstance(m, MinibatchStdDev)] == [2]
