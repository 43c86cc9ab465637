"""The Python API covers the CLI (issue 19 item 5) and the CLI's rough edges (item 6): each command's function
called directly, the options added, the names, hints, progress lines and SIGTERM."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.api import next_step
from ganforge.cli import _report, main
from ganforge.errors import GanforgeError
from ganforge.registry import RECIPES
from ganforge.training.callbacks import Progress

TINY = {"steps": 2, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1, "num_samples": 8,
        "precision": "fp32"}


def _train(root, name, recipe, **kw):
    out = root / name
    ganforge.train(recipe, out=out, progress=False, **{**TINY, **kw})
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per kind of recipe the commands serve, trained once for the module."""
    root = tmp_path_factory.mktemp("runs")
    return {"dcgan": _train(root, "d", "dcgan", resolution=8, g_width=8, d_width=8),
            "ring": _train(root, "g", "gan", data="toy:ring"),
            "stylegan": _train(root, "s", "stylegan", **RECIPES["stylegan"].smoke),
            "pix2pix": _train(root, "p", "pix2pix", **RECIPES["pix2pix"].smoke),
            "srgan": _train(root, "r", "srgan", **RECIPES["srgan"].smoke)}


def _png(path, size, channels=3):
    a = np.random.default_rng(0).integers(0, 255, (size, size, channels), dtype=np.uint8)
    Image.fromarray(a[..., 0] if channels == 1 else a).save(path)
    return path


def test_every_api_function_has_a_docstring():
    for name in ("sample", "export", "interpolate", "style_mix", "translate", "upscale", "invert"):
        assert len(getattr(ganforge, name).__doc__ or "") > 80, name
    for method in ("sample", "save", "to"):
        assert getattr(ganforge.Generator, method).__doc__, method


def test_sample_names_carry_the_step_and_psi(runs, tmp_path):
    first = ganforge.sample(runs["dcgan"], 4, seed=3)
    assert first.name == "sample-step000002-seed3.png" and first.is_file()
    ganforge.resume(runs["dcgan"], steps=4, progress=False)
    later = ganforge.sample(runs["dcgan"], 4, seed=3)
    assert later.name == "sample-step000004-seed3.png" and first.is_file()      # the first one is kept
    psi = ganforge.sample(runs["stylegan"], 4, truncation=0.7)
    assert psi.name == "sample-step000002-seed0-psi0.7.png"
    out = ganforge.sample(runs["dcgan"], 4, tmp_path / "x.png")
    assert out == tmp_path / "x.png" and out.is_file()


def test_point_samples_are_drawn_over_the_real_points(runs, monkeypatch):
    from ganforge import viz
    seen = {}
    real_save = viz.save_points

    def spy(points, path, real=None, title=""):
        seen["real"] = real
        return real_save(points, path, real=real, title=title)
    monkeypatch.setattr(viz, "save_points", spy)
    assert main(["sample", str(runs["ring"]), "-n", "100"]) == 0
    assert seen["real"] is not None and seen["real"].shape == (2000, 2)


def test_generator_sample_text(tmp_path):
    run = _train(tmp_path, "t", "text2image", **{**RECIPES["text2image"].smoke, "steps": 1, "sample_every": 1})
    g = ganforge.load(run)
    assert torch.equal(g.sample(3, seed=1, text="a red circle"), g.sample(3, seed=1, labels="a red circle"))
    assert not torch.equal(g.sample(3, seed=1, text="a red circle"), g.sample(3, seed=1, text="a blue square"))
    with pytest.raises(GanforgeError, match="not together with labels"):
        g.sample(2, text="x", labels="y")


def test_text_on_a_class_run_is_refused(runs):
    with pytest.raises(GanforgeError, match="text-to-image"):
        ganforge.load(runs["dcgan"]).sample(2, text="a seven")


def test_export_api_and_onnx_path_printed(runs, tmp_path, capsys):
    out = ganforge.export(runs["dcgan"], tmp_path / "e")
    assert json.loads((out / "config.json").read_text())["step"] == ganforge.load(runs["dcgan"]).step
    assert ganforge.load(out).step == ganforge.load(runs["dcgan"]).step
    pytest.importorskip("onnx")
    assert main(["export", str(runs["dcgan"]), "--out", str(tmp_path / "o"), "--onnx"]) == 0
    assert f"ONNX graph: {tmp_path / 'o' / 'generator.onnx'}" in capsys.readouterr().out


def test_interpolate_scale_enlarges_the_frames(runs, tmp_path):
    kw = {"n": 2, "points": 2, "frames": 2}
    one = Image.open(ganforge.interpolate(runs["dcgan"], tmp_path / "a.gif", scale=1, **kw))
    three = Image.open(ganforge.interpolate(runs["dcgan"], tmp_path / "b.gif", scale=3, **kw))
    auto = Image.open(ganforge.interpolate(runs["dcgan"], tmp_path / "c.png", **kw))
    assert one.size == (2 * 10 + 2, 12) and three.size == (3 * one.width, 3 * one.height)
    assert auto.width >= 400                                # 8x8 digits: enlarged to about 512 px by default
    with pytest.raises(GanforgeError, match="--scale must be >= 0"):
        ganforge.interpolate(runs["dcgan"], tmp_path / "d.gif", scale=-1)


def test_interpolate_mp4(runs, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = ganforge.interpolate(runs["dcgan"], tmp_path / "w.mp4", n=2, points=2, frames=3, fps=6, scale=4)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    w, h = meta["size"]                     # 2 walks of 8 px, 4x: 88 x 48, padded to 16 px macro blocks
    assert len(frames) == 6 and (w, h) == (96, 48) and meta["fps"] == 6


def test_interpolate_mp4_without_the_extra_names_it(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio", None)        # as if not installed: import raises ImportError
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    assert main(["interpolate", str(runs["dcgan"]), "--out", str(tmp_path / "w.mp4")]) == 2
    assert "pip install 'ganforge[video]'" in capsys.readouterr().err and not (tmp_path / "w.mp4").exists()


def test_style_mix_default_scale_is_readable(runs, tmp_path):
    small = Image.open(ganforge.style_mix(runs["stylegan"], tmp_path / "a.png", rows=2, cols=2, scale=1,
                                          bands="coarse"))
    auto = Image.open(ganforge.style_mix(runs["stylegan"], tmp_path / "b.png", rows=2, cols=2, bands="coarse"))
    assert small.width == 3 * 10 + 2 and auto.width >= 1024 - small.width


def test_translate_and_upscale_api(runs, tmp_path):
    side = ganforge.load(runs["pix2pix"]).recipe.input_shape()[-1]
    written = ganforge.translate(runs["pix2pix"], _png(tmp_path / "in.png", side), tmp_path / "t")
    assert written == [tmp_path / "t" / "in.png"] and Image.open(written[0]).size == (side, side)
    big = ganforge.upscale(runs["srgan"], [_png(tmp_path / "lo.png", 6)], tmp_path / "big.png")
    assert big == [tmp_path / "big.png"] and Image.open(big[0]).width > 6


def test_invert_api(runs, tmp_path):
    r = ganforge.invert(runs["dcgan"], [_png(tmp_path / "a.png", 8, 1), _png(tmp_path / "b.png", 8, 1)],
                        tmp_path / "inv", steps=2, restarts=2, interpolate=True, frames=3)
    assert r["space"] == "z" and len(r["mse"]) == 2 and (tmp_path / "inv" / "inversion.json").is_file()
    assert all(os.path.isfile(f["inverted"]) and os.path.isfile(f["latent"]) for f in r["files"])
    assert os.path.isfile(r["interpolation"])


def test_version_and_train_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and f"ganforge {ganforge.__version__} (torch " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, words in {"--preset PRESET": "named settings", "--data SPEC": "data spec",
                        "--steps STEPS": "generator updates", "--out DIR": "run folder"}.items():
        assert f"{flag} {words}" in text, flag


def test_list_shows_whole_first_sentences(capsys):
    assert main(["list"]) == 0
    lines = [ln.split(None, 1) for ln in capsys.readouterr().out.splitlines()
             if ln.startswith("  ") and not ln.strip().startswith("presets:")]
    summaries = {name: text for name, text in lines if name in RECIPES}
    assert summaries["lsgan"].endswith("c = 1.") and summaries["cgan"].endswith("phi(x)).")
    assert all(t.endswith(".") and not t.startswith("`") for t in summaries.values()), summaries


def test_next_step_hint_fits_the_recipe_kind():
    def recipe(name, kind="image"):
        r = object.__new__(RECIPES[name])
        r.info = SimpleNamespace(kind=kind)
        return r
    assert next_step(recipe("gan", "points"), "R").endswith("ganforge sample R -n 2000")
    assert next_step(recipe("gan", "table"), "R").endswith("-n 1000 --out rows.csv")
    assert next_step(recipe("dcgan"), "R").endswith("ganforge sample R -n 64")
    assert "ganforge translate R" in next_step(recipe("pix2pix"), "R")
    assert "ganforge upscale R" in next_step(recipe("srgan"), "R")
    assert next_step(recipe("dann"), "R") is None


def test_report_without_losses_or_plot_leaves_them_out(capsys):
    _report({"recipe": "dann", "step": 3, "precision": "bf16", "device": "cpu", "last_log": {"step": 3, "fid": 1.0},
             "samples": "S", "loss_plot": None, "checkpoint": "C", "run_dir": "R", "next": None})
    out = capsys.readouterr().out
    assert "(bf16 on cpu)" in out and "loss plot" not in out and "ganforge sample" not in out


def test_a_lone_log_row_is_drawn_as_a_point():
    from ganforge.viz import losses_figure
    fig = losses_figure([{"step": 3, "D/loss": 1.0, "G/loss": 0.5}])
    assert all(line.get_marker() == "o" for ax in fig.axes for line in ax.get_lines() if line.get_label()[0] != "_")


def test_progress_off_a_terminal_prints_few_plain_lines():
    stream = io.StringIO()
    bar = Progress(True, "gan", total=1000, initial=0, stream=stream)
    for step in range(1, 1001):
        bar.update()
        if step % 10 == 0:
            bar.show({"D/loss": 1.0, "G/loss": 2.0, "images_per_s": 50.0})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and 15 <= len(lines) <= 21
    assert lines[-1] == "gan step 1000/1000 (100%) D=1.000 G=2.000 img/s=50"

    class Tty(io.StringIO):
        def isatty(self):
            return True
    assert Progress(True, "gan", 10, 0, stream=Tty()).bar is not None      # a terminal keeps the tqdm bar


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "gan", "--data", "toy:ring", "--out", str(out), "--quiet",
           "steps=1000000", "log_every=1", "sample_every=1000000", "checkpoint_every=1000000", "batch_size=8",
           "threads=1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        log = out / "metrics.jsonl"
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "interrupted by SIGTERM at step" in err and "Traceback" not in err, err
    step = ganforge.load(out).step
    assert step >= 3 and (out / "checkpoints" / f"step-{step:06d}").is_dir()
    assert ganforge.resume(out, steps=step + 2, progress=False)["step"] == step + 2
