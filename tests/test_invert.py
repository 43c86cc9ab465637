"""ganforge invert (Zhu 2016 projection): optimization lowers the reconstruction error, in z and in StyleGAN's w;
the CLI writes reconstructions, latents and the interpolation between two real images."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.commands.invert import per_image_mse, project, read_images
from ganforge.errors import GanforgeError

TINY = {"steps": 4, "batch_size": 8, "sample_every": 4, "checkpoint_every": 4, "log_every": 4, "num_samples": 8}


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inv") / "dcgan"
    ganforge.train("dcgan", out=out, progress=False, data="digits", resolution=8, g_width=8, d_width=8, z_dim=8, **TINY)
    return out


def targets_in_range(g, n=3, seed=7):
    """Images G can make exactly: the inversion has a known zero-error answer."""
    with torch.no_grad():
        return g.recipe.generate(g.G, g.recipe.noise(n, "cpu", torch.Generator().manual_seed(seed)))


def test_projection_lowers_the_error_well_below_a_random_latent(dcgan_run):
    g = ganforge.load(dcgan_run)
    x = targets_in_range(g)
    r = project(g, x, steps=150, lr=0.05, restarts=4)
    assert r["space"] == "z" and r["latent"].shape == (3, 8)
    assert (r["error"] < 0.5 * r["initial_error"]).all()
    assert (r["initial_error"] <= r["random_error"]).all()       # the best restart beats the average one
    assert torch.allclose(per_image_mse(g.recipe.generate(g.G, r["latent"]), x), r["error"], atol=1e-6)
    no_steps = project(g, x, steps=0, restarts=4)
    assert torch.equal(no_steps["error"], no_steps["initial_error"])
    feat = project(g, x, steps=20, restarts=4, feature_weight=1.0)
    pix = project(g, x, steps=20, restarts=4)
    assert not torch.equal(feat["latent"], pix["latent"])


def test_stylegan_runs_are_inverted_in_w(tmp_path):
    kw = {**ganforge.api._recipes()["stylegan"].smoke, **TINY}
    ganforge.train("stylegan", out=tmp_path / "s", progress=False, **kw)
    g = ganforge.load(tmp_path / "s")
    x = targets_in_range(g, n=2)
    r = project(g, x, steps=60, lr=0.05, restarts=2)
    assert r["space"] == "w" and r["latent"].shape == (2, g.G.w_dim)
    assert (r["error"] < r["initial_error"]).all()


def test_cli_writes_reconstructions_latents_and_the_interpolation(dcgan_run, tmp_path, capsys):
    from sklearn.datasets import load_digits

    d = load_digits()
    files = []
    for i in range(2):
        files.append(tmp_path / f"digit{i}.png")
        Image.fromarray((d.images[i] / 16 * 255).astype(np.uint8)).save(files[-1])
    out = tmp_path / "inv"
    rc = main(["invert", str(dcgan_run), *map(str, files), "--out", str(out), "--steps", "20", "--restarts", "2",
               "--interpolate", "--frames", "5"])
    assert rc == 0
    summary = json.loads((out / "inversion.json").read_text())
    assert summary["space"] == "z" and len(summary["mse"]) == 2
    assert all(m <= r for m, r in zip(summary["mse"], summary["random_latent_mse"]))
    z = load_file(str(out / "digit0-latent.safetensors"))["z"]
    g = ganforge.load(dcgan_run)
    x = read_images([str(files[0])], g.info.shape)
    assert abs(per_image_mse(g.recipe.generate(g.G, z), x).item() - summary["mse"][0]) < 1e-5
    strip = Image.open(out / "interpolation.png")
    assert strip.width == 6 * strip.height          # one row of 7: 2 originals + 5 frames (8 px + 2 px padding)
    assert Image.open(out / "digit1-inverted.png").width > 0
    assert "random latent" in capsys.readouterr().out


def test_clear_errors(dcgan_run, tmp_path, capsys):
    assert main(["invert", str(dcgan_run), str(tmp_path / "missing.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    assert main(["invert", str(dcgan_run), str(img), "--interpolate"]) == 2
    assert "two images" in capsys.readouterr().err
    assert main(["invert", str(dcgan_run), str(img), "--label", "3"]) == 2
    assert "unconditional" in capsys.readouterr().err
    g = ganforge.load(dcgan_run)
    with pytest.raises(GanforgeError, match="shape"):
        project(g, torch.zeros(1, 3, 8, 8))
