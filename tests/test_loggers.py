"""Logging backends (issue 19, item 1): `log=tensorboard` writes every logged value, the sample grids and the config
into RUN/tensorboard/ beside metrics.jsonl, read back here with TensorBoard's own reader; a resumed run continues
the same stream with each step once; a missing package is one error naming the extra; the loss plot's panels."""
import io
import json
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

import ganforge
from ganforge import viz
from ganforge.cli import main
from ganforge.config import TrainConfig, choices
from ganforge.errors import GanforgeError
from ganforge.training import loggers
from ganforge.training.trainer import Trainer

KW = dict(steps=4, resolution=8, batch_size=8, g_width=8, d_width=8, num_samples=8, sample_every=2,
          checkpoint_every=2, log_every=1, eval_every=2, eval_num=32, precision="fp32")


def read(folder) -> EventAccumulator:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def raw_events(folder) -> list:
    return [Event.FromString(r) for f in sorted(folder.iterdir()) for r in RawEventFileLoader(str(f)).Load()]


def test_tensorboard_holds_every_logged_value_the_samples_and_the_config_and_resume_continues_it(
        tmp_path, monkeypatch):
    straight, split = tmp_path / "straight", tmp_path / "split"
    ganforge.train("dcgan", out=straight, progress=False, **KW)            # log=jsonl, the default
    assert not (straight / "tensorboard").exists()

    save = Trainer.save

    def killed_at_3(self):       # a run killed after logging (and sampling, evaluating) step 3, before its checkpoint
        if self.step == 3:
            raise RuntimeError("killed")
        return save(self)
    monkeypatch.setattr(Trainer, "save", killed_at_3)
    with pytest.raises(RuntimeError, match="killed"):
        ganforge.train("dcgan", out=split, progress=False, stop_at=3, log="tensorboard", **KW)
    assert sorted(s.step for s in read(split / "tensorboard").Scalars("D/loss")) == [1, 2, 3]
    assert [i.step for i in read(split / "tensorboard").Images("samples")] == [2, 3]
    monkeypatch.setattr(Trainer, "save", save)
    ganforge.resume(split, progress=False)                                # from step 2: steps 3 and 4 again

    ea, want = read(split / "tensorboard"), rows(straight)
    tags = {k for r in want for k in r if k != "step"}
    assert set(ea.Tags()["scalars"]) == tags and {"D/acc_real", "D/acc_fake", "eval/fid"} <= tags
    for tag in tags:
        logged = [(r["step"], r[tag]) for r in want if tag in r]
        got = [(s.step, s.value) for s in ea.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in logged], tag           # each step once, in order
        if tag != "images_per_s":   # resume is bit-identical: the same values (TensorBoard keeps float32)
            assert [v for _, v in got] == pytest.approx([v for _, v in logged], rel=1e-6), tag
    assert [s.step for s in ea.Scalars("eval/fid")] == [2, 4]
    # the sample grids at their steps, the same pixels as the PNG files
    assert [i.step for i in ea.Images("samples")] == [2, 4]
    grid = np.asarray(Image.open(io.BytesIO(ea.Images("samples")[-1].encoded_image_string)))
    assert np.array_equal(grid, np.asarray(Image.open(split / "samples" / "step-000004.png").convert("RGB")))
    # the run's config as hparams, once: the resumed session's (a resume may change steps)
    hp = HParamsPluginData.FromString(ea.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    values = hp.session_start_info.hparams
    assert values["recipe"].string_value == "dcgan" and values["log"].string_value == "tensorboard"
    assert values["steps"].number_value == 4 and values["g_lr"].number_value == pytest.approx(2e-4)
    # on disk: one event file, no step of any tag twice or out of order, one hparams record
    events = raw_events(split / "tensorboard")
    assert len(list((split / "tensorboard").iterdir())) == 1
    for tag in tags:
        steps = [e.step for e in events for v in e.summary.value if v.tag == tag]
        assert steps == sorted(set(steps)), tag
    assert sum(v.tag == "_hparams_/session_start_info" for e in events for v in e.summary.value) == 1


def test_a_new_session_keeps_what_was_logged_up_to_its_step_and_the_newest_copy(tmp_path):
    """The rewrite on resume, without training: a session at step k keeps steps 1..k of the earlier files (a
    copy left by a crash between writing the new file and deleting the old one counts once, newest wins), and a
    run started again from step 0 keeps nothing."""
    def session(step, values):
        tb = loggers.TensorBoard(tmp_path, step, {"seed": 1})
        for s, v in values:
            tb.write({"step": s, "x": v})
        tb.close()
    folder = tmp_path / "tensorboard"
    session(0, [(1, 1.0), (2, 2.0), (3, 3.0)])
    (first,) = folder.iterdir()
    kept, written = first.read_bytes(), first.stat().st_mtime_ns
    session(2, [(3, 30.0), (4, 40.0)])
    assert [(s.step, s.value) for s in read(folder).Scalars("x")] == [(1, 1), (2, 2), (3, 30), (4, 40)]
    first.write_bytes(kept)      # as if the old file had not been deleted (it is older than the new one)
    os.utime(first, ns=(written, written))
    session(4, [])
    assert [(s.step, s.value) for s in read(folder).Scalars("x")] == [(1, 1), (2, 2), (3, 30), (4, 40)]
    assert len(list(folder.iterdir())) == 1
    session(0, [])
    assert "x" not in read(folder).Tags()["scalars"]


def test_a_missing_backend_package_is_one_error_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)          # import tensorboard fails, find_spec says None
    out = tmp_path / "run"
    code = main(["train", "dcgan", "--out", str(out), "--quiet", "--steps", "2", "log=tensorboard", "resolution=8",
                 "g_width=8", "d_width=8"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "log=tensorboard needs the tensorboard package" in err and "pip install 'ganforge[tensorboard]'" in err
    assert not (out / "config.json").exists()      # refused before the run folder was written
    # installed but not importable (a broken install): the same advice, with the reason
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(GanforgeError, match=r"cannot be imported .*pip install 'ganforge\[tensorboard\]'"):
        loggers.TensorBoard(tmp_path, 0, {})


def test_log_choices_are_the_backends_and_anything_else_is_refused():
    assert choices(TrainConfig, "log") == tuple(loggers.BACKENDS) and TrainConfig().log == "jsonl"
    with pytest.raises(GanforgeError, match="'log' must be one of jsonl, tensorboard; got 'wandb'"):
        ganforge.api.make_config("dcgan", None, {"log": "wandb"})


def test_importing_ganforge_does_not_import_tensorboard():
    code = "import sys, ganforge, ganforge.cli; print(sorted(m for m in sys.modules if 'tensorboard' in m))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_loss_plot_has_accuracy_and_eval_panels_when_they_were_logged():
    losses = [{"step": s, "D/loss": 1.0 / s, "G/loss": 0.5 * s, "images_per_s": 9.0} for s in (1, 2, 3, 4)]
    health = [{**r, "D/acc_real": 0.9, "D/acc_fake": 0.8} for r in losses]
    evals = health + [{"step": 2, "eval/fid": 80.0}, {"step": 4, "eval/fid": 60.0}]
    assert viz.losses_figure([]) is None
    for history, labels in ((losses, ["loss"]), (health, ["loss", "accuracy"]),
                            (evals, ["loss", "accuracy", "eval"])):
        fig = viz.losses_figure(history)
        assert [ax.get_ylabel() for ax in fig.axes] == labels
        lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        plt.close(fig)
        assert "images_per_s" not in lines
    assert sorted(lines) == ["D/acc_fake", "D/acc_real", "D/loss", "G/loss", "eval/fid"]
    assert list(lines["eval/fid"].get_xdata()) == [2, 4] and list(lines["eval/fid"].get_ydata()) == [80.0, 60.0]
