"""examples/template_recipe.py, the family a newcomer copies, trains, resumes exactly and samples."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.errors import GanforgeError
from ganforge.registry import RECIPES

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "template_recipe.py"
TINY = dict(hidden=8, depth=1, batch_size=16, steps=6, checkpoint_every=3, sample_every=6, log_every=1,
            num_samples=8, precision="fp32")


@pytest.fixture
def template():
    spec = importlib.util.spec_from_file_location("template_recipe", TEMPLATE)
    module = sys.modules["template_recipe"] = importlib.util.module_from_spec(spec)   # dataclasses look it up
    spec.loader.exec_module(module)              # registers "mygan"
    yield module
    RECIPES.pop("mygan")                         # other tests see only the built-in families
    del sys.modules["template_recipe"]


@pytest.mark.parametrize("loss", ["ns", "hinge", "ragan"])
def test_template_trains_resumes_exactly_and_samples(template, tmp_path, loss):
    s = ganforge.train("mygan", out=tmp_path / "a", progress=False, loss=loss, **TINY)
    assert s["step"] == 6 and s["recipe"] == "mygan" and RECIPES["mygan"].name == "mygan"
    ganforge.train("mygan", out=tmp_path / "b", progress=False, loss=loss, stop_at=3, **TINY)
    ganforge.resume(tmp_path / "b", progress=False)
    a, b = (load_file(str(tmp_path / r / "checkpoints" / "step-000006" / "weights.safetensors")) for r in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = ganforge.load(tmp_path / "a").sample(100, seed=1)
    assert x.shape == (100, 2) and torch.isfinite(x).all()


def test_template_refuses_an_unknown_loss(template):
    with pytest.raises(GanforgeError, match="'loss' must be one of ns, "):
        ganforge.train("mygan", loss="nope", **TINY)
