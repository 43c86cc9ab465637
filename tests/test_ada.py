"""Small data: adaptive discriminator augmentation (Karras et al. 2020, arXiv:2006.06676), the overfitting
warning, the `shapes` feature extractor, and what a run says at start-up (data line, progan's growth)."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge import ada as A
from ganforge.api import make_config
from ganforge.data import DataInfo, resolve
from ganforge.errors import GanforgeError
from ganforge.metrics.attributes import load_attribute_classifier, to_classifier_input
from ganforge.metrics.features import load_extractor
from ganforge.metrics.stats import fid
from ganforge.registry import FEATURES
from ganforge.training import checkpoint
from ganforge.training.callbacks import Progress


def _folder(path, n=16, size=8):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path / f"{i:03d}.png")
    return f"folder:{path}"


def _info(spec="folder:x", images=200, kind="image", **extra):
    return DataInfo(spec, kind, (3, 8, 8) if kind == "image" else (2,), extra={"images": images, **extra})


def _cfg(**kw):
    return make_config("dcgan", None, kw)[1]


# -- p: Karras §3's update rule, in closed form --------------------------------------------------------------
def test_p_moves_one_step_per_interval_toward_the_target_and_stays_in_0_1():
    a = A.AdaptiveP(target=0.6, images=1000, interval=4, batch=10)    # step = 10 * 4 / 1000 = 0.04
    for _ in range(3):
        a.observe(torch.tensor(1.0))                       # r_t = 2 * 1 - 1 = 1 > 0.6: overfitting
    assert a.p == 0.0                                      # adjusted only every `interval` updates
    assert a.observe(torch.tensor(1.0)) == pytest.approx(0.04)
    for _ in range(8):
        a.observe(torch.tensor(0.7))                       # r_t = 0.4 < 0.6: p falls, and stops at 0
    assert a.p == 0.0
    for i in range(1, 101):                                # 0 -> 1 in `images` = 100 updates of 10 images
        a.observe(torch.tensor(1.0))
        assert (a.p < 1.0) == (i < 100), (i, a.p)
    assert a.p == 1.0
    a.observe(torch.tensor(0.9)), a.observe(torch.tensor(0.9)), a.observe(torch.tensor(0.9))
    assert a.observe(torch.tensor(0.9)) == 1.0             # never above 1
    # the target decides the direction: the same r_t = 0.6 is above a target of 0.5 and below one of 0.7
    hi, lo = A.AdaptiveP(0.5, 1000, 1, 10), A.AdaptiveP(0.7, 1000, 1, 10)
    hi.observe(torch.tensor(0.8)), lo.observe(torch.tensor(0.8))
    assert hi.p == pytest.approx(0.01) and lo.p == 0.0


def test_ada_auto_is_on_for_small_folders_only():
    assert A.resolve(_cfg(), _info(images=200))
    assert not A.resolve(_cfg(), _info(images=A.AUTO_BELOW))
    assert not A.resolve(_cfg(), _info(spec="digits", images=1437))
    assert not A.resolve(_cfg(), _info(images=200, ada=False))         # the run's recorded decision wins
    assert not A.resolve(_cfg(ada="off"), _info(images=200))
    assert not A.resolve(_cfg(loss="wasserstein"), _info(images=200))  # auto stays off where on is refused
    assert A.resolve(_cfg(ada="on"), _info(spec="digits", images=1437))


@pytest.mark.parametrize("kw,info,needle", [
    ({"ada": "on", "loss": "wasserstein"}, _info(), "sign"),
    ({"ada": "on", "augment_p": 0.5, "diff_augment": "translation"}, _info(), "augment_p"),
    ({"ada": "on"}, _info(kind="points"), "images"),
])
def test_ada_on_refuses_what_it_cannot_adapt(kw, info, needle):
    with pytest.raises(GanforgeError, match=needle):
        A.resolve(_cfg(**kw), info)


@pytest.mark.parametrize("kw", [{"ada": "maybe"}, {"ada_target": 1.0}, {"ada_target": 0.0}, {"ada_images": 0},
                                {"ada_interval": 0}])
def test_bad_ada_keys_are_refused(kw):
    with pytest.raises(GanforgeError, match=next(iter(kw))):
        _cfg(**kw)


# -- in training ---------------------------------------------------------------------------------------------
def test_ada_in_a_run_logs_p_records_the_decision_and_resumes_bit_identically(tmp_path, tiny, capsys):
    spec = _folder(tmp_path / "imgs")
    kw = {**tiny, "data": spec, "resolution": 8, "steps": 8, "checkpoint_every": 4, "batch_size": 4,
          "ada_images": 64, "ada_interval": 1}     # p moves by 4 / 64 per D update
    s = ganforge.train("dcgan", out=tmp_path / "straight", progress=True, **kw)
    out = capsys.readouterr().out
    assert f"data: {spec}: 16 images, 8x8, 3 channels, no labels; 8 steps x batch 4 = 2 epochs" in out
    run = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert run["data_info"]["extra"]["ada"] is True and run["data_info"]["extra"]["images"] == 16
    rows = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    ps = [r["D/augment_p"] for r in rows]
    # each logged p is a multiple of the step, moving at most one step per update (interval 1)
    assert all(abs(p * 16 - round(p * 16)) < 1e-6 and 0 <= p <= 1 for p in ps), ps
    assert all(abs(b - a) <= 1 / 16 + 1e-9 for a, b in zip(ps, ps[1:])), ps
    assert max(ps) > 0                                     # 16 noise images: D separates them at once
    ganforge.train("dcgan", out=tmp_path / "split", progress=False, stop_at=4, **kw)
    ganforge.resume(tmp_path / "split", progress=False)
    a, b = (load_file(str(checkpoint.latest(tmp_path / r) / "weights.safetensors")) for r in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = [torch.load(checkpoint.latest(tmp_path / r) / "state.pt", weights_only=True) for r in ("straight", "split")]
    assert state[0]["recipe"]["ada"]["p"] == state[1]["recipe"]["ada"]["p"]
    split = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["D/augment_p"] for r in split] == ps        # the resumed run's p follows the straight run's
    # ada=off: the same run has no p and trains differently
    off = ganforge.train("dcgan", out=tmp_path / "off", progress=False, **{**kw, "ada": "off"})
    assert "D/augment_p" not in off["last_log"] and s["last_log"]["D/loss"] != off["last_log"]["D/loss"]


def test_overfit_watch_fires_once_after_n_consecutive_rows():
    w = A.OverfitWatch(threshold=0.9, rows=3, fixes="do X")
    row = lambda r, f, s: {"step": s, "D/acc_real": r, "D/acc_fake": f}   # noqa: E731
    assert w(row(0.95, 0.95, 1)) is None and w(row(0.99, 0.95, 2)) is None
    assert w(row(0.95, 0.85, 3)) is None                   # one side at or below the threshold: the run restarts
    assert w(row(0.95, 0.95, 4)) is None and w(row(0.95, 0.95, 5)) is None
    note = w(row(0.95, 0.95, 6))
    assert "step 6" in note and "do X" in note
    assert w(row(0.95, 0.95, 7)) is None                   # once
    assert A.OverfitWatch()({"step": 1, "G/loss": 1.0}) is None
    # with ADA on, the note says where p is and what is left
    ada_row = lambda p: {"step": 1, "D/acc_real": 1.0, "D/acc_fake": 1.0, "D/augment_p": p}   # noqa: E731
    assert "p is 0.30" in A.OverfitWatch(rows=1)(ada_row(0.3)) and "ada_images" in A.OverfitWatch(rows=1)(ada_row(0.3))
    assert "every input already" in A.OverfitWatch(rows=1)(ada_row(1.0))


def test_overfit_watch_says_overfitting_only_after_d_has_seen_the_training_images_twice():
    row = {"step": 300, "D/acc_real": 0.99, "D/acc_fake": 0.99}
    early = A.OverfitWatch(rows=1, fixes="do X", epoch_steps=312.5)(row)          # 20,000 images, batch 64
    assert "after 1.0 passes over the training images" in early and "not overfitting" in early
    assert "G is not keeping up" in early and "d_lr" in early and "do X" not in early
    late = A.OverfitWatch(rows=1, fixes="do X", epoch_steps=10.0)(row)             # 30 passes
    assert "it is overfitting the training images (30 passes over them)" in late and "do X" in late
    unknown = A.OverfitWatch(rows=1, fixes="do X")(row)                             # no data size: as before
    assert "it is overfitting the training images, and" in unknown


def test_the_watch_counts_passes_from_the_data_size_batch_and_d_steps():
    for d_steps in (1, 5):
        cls, cfg = make_config("dcgan", None, {"batch_size": 50, "d_steps": d_steps})
        _, watch = A.for_recipe(cfg, _info(spec="digits", images=1000))
        assert watch.epoch_steps == 1000 / (50 * d_steps)
    _, info = resolve("digits", resolution=8)
    assert info.extra["images"] == 1437                 # every image data set records its size


def test_the_overfitting_warning_reaches_the_console_and_the_summary(tmp_path, tiny, capsys, monkeypatch):
    spec = _folder(tmp_path / "imgs")
    monkeypatch.setattr(A.OverfitWatch.__init__, "__defaults__", (-1.0, 5, "", 0.0))   # every row "overfits"
    tiny = {**tiny, "steps": 6}      # 16 images, batch 8: the warning at step 5 comes after 2.5 passes over them
    s = ganforge.train("dcgan", out=tmp_path / "r", progress=False, data=spec,
                       **{**tiny, "resolution": 8, "ada": "off"})
    err = capsys.readouterr().err
    assert err.count("D has told real from fake") == 1 and "ada=on" in err and "(2 passes over them)" in err
    assert len(s["warnings"]) == 1
    # with a fixed DiffAugment policy on, the note does not suggest turning it on
    s = ganforge.train("dcgan", out=tmp_path / "da", progress=False, data=spec,
                       **{**tiny, "resolution": 8, "ada": "off", "diff_augment": "translation"})
    (note,) = s["warnings"]
    assert "diff_augment=translation is on already" in note and "ada=on" not in note


# -- start-up ------------------------------------------------------------------------------------------------
def test_progan_warns_when_the_steps_cannot_reach_the_resolution():
    cls, cfg = make_config("progan", "shapes", {"batch_size": 32, "images_per_phase": 16_000})
    rec = cls(cfg, DataInfo("shapes", "image", (3, 32, 32)))
    need = 3 * 2 * 16_000 // 32                            # 4 -> 32 px: three stabilize + fade-in pairs
    assert rec.startup_notes(need) == []
    (note,) = rec.startup_notes(need - 100)
    assert f"after {need} steps" in note and "steps=2900 ends at 32 px (alpha 0.80)" in note   # still fading in
    (note,) = rec.startup_notes(1750)                      # 56,000 images: the 16 px fade-in, half done
    assert "ends at 16 px (alpha 0.50)" in note and "set steps >= 3000" in note


def test_progress_lines_show_a_growing_gans_resolution_and_alpha():
    out = io.StringIO()
    bar = Progress(True, "progan", 2, 0, stream=out, lines=2)
    bar.show({"D/loss": 0.5, "G/loss": 1.0, "images_per_s": 10.0, "D/resolution": 16.0, "D/alpha": 0.95})
    bar.update()
    assert "res=16px alpha=0.95" in out.getvalue()


# -- the `shapes` feature extractor --------------------------------------------------------------------------
def test_shapes_features_are_the_attribute_classifiers_penultimate_layer():
    from ganforge.data.specs_shapes import load_shapes
    assert "shapes" in FEATURES
    ex = load_extractor("shapes")
    real = {s: load_shapes(32, s, n=200)[0] for s in ("train", "test")}
    x = {s: d.batch(torch.arange(len(d)))["real"] for s, d in real.items()}
    f = ex(x["test"])["features"]
    clf = load_attribute_classifier().eval()
    with torch.no_grad():
        assert torch.equal(f, clf.body(to_classifier_input(x["test"])))
    assert f.shape == (200, 64) and ex.protocol["weights_sha256"]
    noise = torch.rand(200, 3, 32, 32) * 2 - 1
    same, apart = (fid(ex(a)["features"].double().numpy(), f.double().numpy()) for a in (x["train"], noise))
    assert apart > 10 * same, (same, apart)               # it tells real shapes from noise
    with pytest.raises(GanforgeError, match="3 channels"):
        ex.check((1, 8, 8), "image")
    with pytest.raises(GanforgeError, match="Inception Score"):
        ex(x["test"], logits=True)
