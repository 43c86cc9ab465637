"""The Recipe interface says what a recipe is (recipes/base.py): which net is sampled and which EMA tracks,
the kinds declared by type (a new Translator works in `ganforge translate` without editing commands/), and
image-input recipes have no latent noise."""
import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.api import _recipes
from ganforge.cli import main
from ganforge.commands.invert import project
from ganforge.errors import GanforgeError
from ganforge.recipes.base import ImageToImage, Recipe, TextConditional, Translator, Upscaler
from ganforge.recipes.pix2pix import Pix2Pix
from ganforge.registry import RECIPES
from ganforge.training import checkpoint

TINY = {"steps": 2, "batch_size": 2, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 4}


def test_sampler_and_ema_default_and_split():
    assert Recipe.sampler == "G" and _recipes()["dcgan"].sampler == "G"
    assert _recipes()["cyclegan"].sampler == "G_ab" and _recipes()["dann"].sampler == "F"
    for name, cls in _recipes().items():     # EMA tracks the sampled net unless a recipe says otherwise
        assert cls.__new__(cls).ema == cls.sampler, name


def test_kinds_are_declared_by_type():
    kinds = {name: {k.__name__ for k in (ImageToImage, Translator, Upscaler, TextConditional) if issubclass(cls, k)}
             for name, cls in _recipes().items()}
    assert kinds["pix2pix"] == kinds["cyclegan"] == {"ImageToImage", "Translator"}
    assert kinds["srgan"] == {"ImageToImage", "Translator", "Upscaler"}
    assert kinds["simgan"] == kinds["dann"] == {"ImageToImage"}
    assert kinds["text2image"] == {"TextConditional"} and kinds["dcgan"] == set()


@pytest.fixture
def mytrans():
    @ganforge.register("mytrans")
    class MyTranslator(Pix2Pix):             # a new translator: no entry in commands/ names it
        pass
    yield MyTranslator
    RECIPES.pop("mytrans")


def test_a_new_translator_works_in_translate(mytrans, tmp_path, capsys):
    ganforge.train("mytrans", out=tmp_path / "r", progress=False, data="photos:gray2color", resolution=16,
                   g_width=4, d_width=4, **TINY)
    Image.fromarray(np.full((16, 16), 80, np.uint8)).save(tmp_path / "a.png")
    assert main(["translate", str(tmp_path / "r"), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 0
    assert Image.open(tmp_path / "o" / "a.png").size == (16, 16)
    # upscale takes Upscalers only; its message names the registered ones
    assert main(["upscale", str(tmp_path / "r"), str(tmp_path / "a.png"), "--out", str(tmp_path / "u")]) == 2
    assert "upscale needs an srgan run" in capsys.readouterr().err


def test_image_inputs_have_no_latent_noise(tmp_path):
    ganforge.train("pix2pix", out=tmp_path / "r", progress=False, data="photos:gray2color", resolution=16,
                   g_width=4, d_width=4, **TINY)
    g = ganforge.load(tmp_path / "r")
    assert g.recipe.sample_inputs(3).shape == (3, 1, 16, 16)       # held-out grey inputs
    with pytest.raises(GanforgeError, match="no latent noise"):
        g.recipe.noise(3, "cpu")
    with pytest.raises(GanforgeError, match="maps images to images"):
        project(g, torch.zeros(1, *g.info.shape), steps=1, restarts=1)


def test_ema_of_another_net_than_the_sampler(tmp_path, tiny):
    @ganforge.register("ema_d")
    class EmaOfD(_recipes()["gan"]):
        ema = "D"                            # EMA averages D; samples still come from G itself
    try:
        ganforge.train("ema_d", out=tmp_path / "r", progress=False, data="toy:ring", ema_decay=0.5, **tiny)
    finally:
        RECIPES.pop("ema_d")
    weights = checkpoint.read(checkpoint.latest(tmp_path / "r"), with_state=False)[0]
    assert any(k.startswith("ema.D.") for k in weights) and not any(k.startswith("ema.G.") for k in weights)
