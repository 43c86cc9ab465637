"""Details of the loop that a resume or a log reader relies on: torn log lines, per-key means of lazy phases,
logged values carried across a resume, the caller's RNG left alone by load, lazy phases declared up front."""
from __future__ import annotations

import json

import pytest
import torch

import ganforge
from ganforge.errors import GanforgeError
from ganforge.recipes.base import Phase, lazy_correction
from ganforge.registry import RECIPES

TINY = dict(resolution=8, batch_size=8, g_width=8, d_width=8, num_samples=8, sample_every=100, log_every=1,
            precision="fp32")


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_reproduces_the_uninterrupted_log_rows_even_after_a_torn_line(tmp_path):
    """A kill can leave half a row at the end of metrics.jsonl; the resumed run drops it and writes the rows the
    straight run wrote (the gradient norms logged with the next loss are part of the recipe's state)."""
    kw = dict(TINY, steps=4, checkpoint_every=2, seed=3)
    ganforge.train("dcgan", out=tmp_path / "a", progress=False, **kw)
    ganforge.train("dcgan", out=tmp_path / "b", progress=False, stop_at=2, **kw)
    with (tmp_path / "b" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "D/lo')                                 # the torn row of a killed process
    ganforge.resume(tmp_path / "b", progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]   # noqa: E731
    assert strip(_rows(tmp_path / "a")) == strip(_rows(tmp_path / "b"))
    assert "D/grad_norm" in _rows(tmp_path / "b")[2]                  # the first row after the resume has it


def test_a_lazy_phase_is_averaged_over_the_steps_it_ran(tmp_path):
    from test_trainer import _counting_trainer
    from ganforge.training.callbacks import Meter

    t = _counting_trainer(tmp_path)
    meter = Meter(0)
    for _ in range(2):                                # phase R (every=2) runs at step 0 only
        meter.add(t.train_step())
    means = meter.means(t.dist)
    assert meter.counts["R/loss"] == 1 and meter.counts["D/loss"] == 2
    assert means["R/loss"] == pytest.approx(meter.sums["R/loss"].item())


def test_load_leaves_the_callers_rng_alone(tmp_path):
    ganforge.train("dcgan", out=tmp_path / "r", progress=False, steps=1, checkpoint_every=1, **TINY)
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    ganforge.load(tmp_path / "r")
    assert torch.equal(torch.rand(3), want)


def test_lazy_phases_are_declared_at_step_0_and_corrected_for_adam_only(tmp_path):
    from test_trainer import _counting_trainer

    t = _counting_trainer(tmp_path)
    t.recipe.phases = lambda step: [Phase("Q", "G", lambda nets, ctx: {"loss": nets["G"](torch.ones(1, 1)).sum()},
                                          every=3)]
    with pytest.raises(GanforgeError, match="lazy phase Q .* was not among phases\\(0\\)"):
        t.train_step()
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    lazy_correction(sgd, 16)
    assert sgd.param_groups[0]["lr"] == 0.1                          # StyleGAN2's rule is Adam's


def test_a_subclass_registered_under_its_own_name_is_called_so(tmp_path):
    Pix2Pix = RECIPES["pix2pix"]

    @ganforge.register("mytranslator")
    class Mine(Pix2Pix):
        pass
    try:
        assert Mine.name == "mytranslator" and Pix2Pix.name == "pix2pix"
    finally:
        RECIPES.pop("mytranslator")


def test_a_bad_local_world_size_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "two")
    with pytest.raises(GanforgeError, match="LOCAL_WORLD_SIZE='two' is not an integer"):
        ganforge.train("dcgan", out=tmp_path / "r", progress=False, steps=1, **TINY)


def test_deep_grey_files_read_the_same_in_translate_and_eval_as_in_folder_data(tmp_path):
    """16-bit grey PNGs are scaled by their bit depth everywhere an image file is read (it was clipped to
    almost all white by `ganforge translate`/`upscale` and `ganforge eval FOLDER`)."""
    import numpy as np
    from PIL import Image

    from ganforge.commands.translate import read_image
    from ganforge.metrics.sources import FolderSource

    a16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    want = torch.from_numpy(np.round(a16 / 257.0)).float() / 127.5 - 1
    assert torch.allclose(read_image(tmp_path / "deep.png", 1)[0, 0], want, atol=1 / 127.5)
    folder = FolderSource(tmp_path)
    folder.set_channels(1)
    x, _ = next(folder.batches(1, 1, 0))
    assert torch.allclose(x[0, 0], want, atol=1 / 127.5)


@pytest.mark.parametrize("recipe", ["stylegan", "pix2pix", "srgan"])
def test_label_smoothing_is_refused_where_a_family_ignores_it(recipe):
    with pytest.raises(GanforgeError, match=f"label_smoothing is applied by .*; {recipe} does not use it"):
        ganforge.train(recipe, progress=False, label_smoothing=0.1, **RECIPES[recipe].smoke)


def test_point_scatters_draw_at_least_2000_points_and_image_grids_num_samples(tmp_path):
    from ganforge.api import load_data, make_config
    from ganforge.training.trainer import Trainer
    from ganforge.viz import SCATTER_POINTS
    for recipe, data, want in (("gan", "toy:ring", SCATTER_POINTS), ("dcgan", "digits", 8)):
        cls, cfg = make_config(recipe, overrides={"data": data, "num_samples": 8, "steps": 1})
        d, info = load_data(cfg)
        t = Trainer(cls(cfg, info), d, tmp_path / recipe, progress=False)
        assert t.fixed_z.shape[0] == want
