import json
import shutil
import subprocess
import sys

import pytest
import torch

from ganforge.cli import main

TINY = ["steps=4", "batch_size=8", "sample_every=2", "checkpoint_every=2", "log_every=1", "num_samples=16"]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_then_sample_images_with_label(tmp_path, capsys):
    code, out, _ = run(capsys, "train", "cgan", "--out", str(tmp_path / "c"), "--quiet", "resolution=8", *TINY)
    assert code == 0 and "samples:" in out and "checkpoint:" in out
    code, out, _ = run(capsys, "sample", str(tmp_path / "c"), "-n", "9", "--label", "7", "--out", str(tmp_path / "s.png"))
    assert code == 0 and (tmp_path / "s.png").is_file()
    code, _, err = run(capsys, "sample", str(tmp_path / "c"), "--label", "12")
    assert code == 2 and "label must be in 0..9" in err


def test_points_give_a_scatter_and_tables_a_csv(tmp_path, capsys):
    assert run(capsys, "train", "gan", "--data", "toy:ring", "--out", str(tmp_path / "g"), "--quiet", *TINY)[0] == 0
    code, out, _ = run(capsys, "sample", str(tmp_path / "g"), "-n", "500")
    assert code == 0 and out.strip().endswith(".png")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,kind\n" + "".join(f"{i},{i * 0.5},{'xy'[i % 2]}\n" for i in range(40)))
    assert run(capsys, "train", "gan", "--data", f"csv:{csv}", "--out", str(tmp_path / "t"), "--quiet", *TINY)[0] == 0
    code, out, _ = run(capsys, "sample", str(tmp_path / "t"), "-n", "5", "--out", str(tmp_path / "rows.csv"))
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines[0] == "a,b,kind" and len(lines) == 6 and all(r.split(",")[2] in ("x", "y") for r in lines[1:])
    assert all(float(r.split(",")[0]).is_integer() for r in lines[1:])   # integer column stays integer


@pytest.mark.parametrize("argv,msg", [
    (["train", "dcgn"], "unknown recipe 'dcgn'; did you mean 'dcgan'"),
    (["train", "dcgan", "--preset", "digit"], "unknown preset 'digit'.*did you mean 'digits'"),
    (["train", "dcgan", "lr_d=1"], "unknown config key 'lr_d'; did you mean 'd_lr'"),
    (["train", "dcgan", "steps=many"], "'steps' expects int"),
    (["train", "dcgan", "lr_decay_start=2"], "'lr_decay_start' must be in \\[0, 1\\]; got 2"),
    (["train", "dcgan", "--data", "folder:/nonexistent/x"], "image folder '/nonexistent/x' does not exist"),
    (["train", "dcgan", "--data", "imagenet"], "unknown data spec 'imagenet'"),
    (["resume", "/nonexistent/run"], "not a ganforge run directory"),
    (["sample", "/nonexistent/run"], "not a ganforge run directory"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, msg):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("ganforge: error: ") and "Traceback" not in err
    import re
    assert re.search(msg, err), err


def test_empty_folder_and_corrupt_image(tmp_path, capsys):
    (tmp_path / "e").mkdir()
    code, _, err = run(capsys, "train", "dcgan", "--data", f"folder:{tmp_path / 'e'}")
    assert code == 2 and "holds no images" in err
    (tmp_path / "e" / "x.jpg").write_bytes(b"garbage")
    code, _, err = run(capsys, "train", "dcgan", "--data", f"folder:{tmp_path / 'e'}")
    assert code == 2 and "x.jpg" in err and "skip_bad=true" in err


def test_resume_refuses_corrupt_missing_and_foreign_checkpoints(tmp_path, capsys):
    assert run(capsys, "train", "dcgan", "--out", str(tmp_path / "a"), "--quiet", "resolution=8", *TINY)[0] == 0
    assert run(capsys, "train", "gan", "--out", str(tmp_path / "b"), "--quiet", "--data", "toy:ring", *TINY)[0] == 0
    ck = tmp_path / "a" / "checkpoints"
    saved = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    # a checkpoint from another recipe
    shutil.rmtree(ck / "step-000004")
    shutil.copytree(tmp_path / "b" / "checkpoints" / "step-000004", ck / "step-000004")
    code, _, err = run(capsys, "resume", str(tmp_path / "a"), "--steps", "6")
    assert code == 2 and "written by recipe 'gan'" in err
    # corrupt weights
    (ck / "step-000004" / "weights.safetensors").write_bytes(b"\x00" * 20)
    code, _, err = run(capsys, "resume", str(tmp_path / "a"), "--steps", "6")
    assert code == 2 and "corrupt" in err and "earlier step" in err
    # missing checkpoint named by latest
    shutil.rmtree(ck / "step-000004")
    code, _, err = run(capsys, "resume", str(tmp_path / "a"), "--steps", "6")
    assert code == 2 and "step-000004" in err and "missing" in err
    # nothing else was touched
    for p, b in saved.items():
        if "step-000004" not in str(p):
            assert p.read_bytes() == b, p
    # pointing latest at the earlier checkpoint recovers
    (ck / "latest").write_text("step-000002\n")
    assert run(capsys, "resume", str(tmp_path / "a"), "--steps", "6", "--quiet")[0] == 0


def test_yaml_config(tmp_path, capsys):
    y = tmp_path / "c.yaml"
    y.write_text("recipe: gan\npreset: ring\nsteps: 4\nbatch_size: 8\nlog_every: 1\n")
    assert run(capsys, "train", "--config", str(y), "--out", str(tmp_path / "r"), "--quiet")[0] == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["recipe"] == "gan" and cfg["preset"] == "ring" and cfg["config"]["steps"] == 4


def test_list(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and "dcgan" in out and "toy" in out
    code, out, _ = run(capsys, "list", "--keys", "dcgan")
    assert "g_lr = 0.0002" in out


def test_module_entry_point_runs_without_traceback():
    r = subprocess.run([sys.executable, "-m", "ganforge", "train", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown recipe 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_export_is_self_contained(tmp_path, capsys):
    import ganforge
    assert run(capsys, "train", "cgan", "--out", str(tmp_path / "r"), "--quiet", "resolution=8", *TINY)[0] == 0
    assert run(capsys, "export", str(tmp_path / "r"), "--out", str(tmp_path / "e"))[0] == 0
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["config.json", "weights.safetensors"]
    shutil.move(str(tmp_path / "e"), str(tmp_path / "moved"))
    a = ganforge.load(tmp_path / "r").sample(5, seed=2, labels=3)
    b = ganforge.load(tmp_path / "moved").sample(5, seed=2, labels=3)
    assert torch.equal(a, b)
    code, _, err = run(capsys, "export", str(tmp_path / "r"), "--out", str(tmp_path / "moved"))
    assert code == 2 and "not empty" in err


def test_export_onnx(tmp_path, capsys):
    pytest.importorskip("onnx")
    assert run(capsys, "train", "dcgan", "--out", str(tmp_path / "r"), "--quiet", "resolution=8", *TINY)[0] == 0
    assert run(capsys, "export", str(tmp_path / "r"), "--out", str(tmp_path / "e"), "--onnx")[0] == 0
    assert (tmp_path / "e" / "generator.onnx").stat().st_size > 1000


def test_sample_text_for_text2image_runs(tmp_path, capsys):
    from ganforge.api import _recipes
    smoke = [f"{k}={v}" for k, v in _recipes()["text2image"].smoke.items()]
    assert run(capsys, "train", "text2image", "--out", str(tmp_path / "t"), "--quiet", *TINY, *smoke)[0] == 0
    code, out, _ = run(capsys, "sample", str(tmp_path / "t"), "-n", "4", "--text", "a small red circle")
    assert code == 0 and out.strip().endswith("-text.png")
    code, _, err = run(capsys, "sample", str(tmp_path / "t"), "--text", "x", "--label", "1")
    assert code == 2 and "--text applies" in err


def test_sample_truncation_for_stylegan_runs(tmp_path, capsys):
    import ganforge
    from ganforge.api import _recipes
    smoke = [f"{k}={v}" for k, v in _recipes()["stylegan"].smoke.items()]
    assert run(capsys, "train", "stylegan", "--out", str(tmp_path / "s"), "--quiet", *TINY, *smoke)[0] == 0
    g = ganforge.load(tmp_path / "s")
    a, b = g.sample(4, seed=1, truncation=0.0), g.sample(4, seed=2, truncation=0.0)
    assert torch.allclose(a, b, atol=1e-5)          # psi = 0: every z maps to w_avg (noise is fixed)
    assert not torch.allclose(g.sample(4, seed=1), g.sample(4, seed=2))
    assert run(capsys, "sample", str(tmp_path / "s"), "-n", "4", "--truncation", "0.7")[0] == 0
    assert run(capsys, "train", "dcgan", "--out", str(tmp_path / "d"), "--quiet", "resolution=8", *TINY)[0] == 0
    code, _, err = run(capsys, "sample", str(tmp_path / "d"), "--truncation", "0.5")
    assert code == 2 and "truncation trick" in err


def test_cli_and_api_train_the_same_default_config(tmp_path):
    """`ganforge train`, `ganforge train dcgan` and `ganforge.train("dcgan")` apply no hidden preset: one config."""
    import ganforge
    tiny = ["steps=1", "batch_size=4", "resolution=8", "g_width=8", "d_width=8", "sample_every=1", "num_samples=4"]
    assert main(["train", "--out", str(tmp_path / "bare"), "--quiet", *tiny]) == 0
    assert main(["train", "dcgan", "--out", str(tmp_path / "cli"), "--quiet", *tiny]) == 0
    ganforge.train("dcgan", out=tmp_path / "api", progress=False, **dict(kv.split("=") for kv in tiny))
    runs = [json.loads((tmp_path / n / "config.json").read_text()) for n in ("bare", "cli", "api")]
    assert runs[0]["config"] == runs[1]["config"] == runs[2]["config"]
    assert runs[0]["preset"] is runs[1]["preset"] is runs[2]["preset"] is None
    assert runs[0]["config"]["d_lr"] == 1e-4           # the tuned default for the default data (recipes/dcgan.py)


def test_train_flags_come_from_the_config_fields(tmp_path):
    """--device/--precision/--threads take the types and allowed values declared once on RecipeConfig."""
    from dataclasses import dataclass

    from ganforge.config import check_choices, choice, choices
    from ganforge.errors import GanforgeError
    from ganforge.recipes.base import RecipeConfig

    assert choices(RecipeConfig, "precision") == ("auto", "fp32", "bf16", "fp16")
    assert choices(RecipeConfig, "steps") is None

    @dataclass
    class Mine(RecipeConfig):
        norm: str = choice("batch", "instance")

    check_choices(Mine(norm="instance"))
    with pytest.raises(GanforgeError, match="config key 'norm' must be one of batch, instance; got 'x'"):
        Mine(norm="x").check()
    with pytest.raises(SystemExit):
        main(["train", "--precision", "fp8"])
    tiny = ["steps=1", "batch_size=4", "resolution=8", "g_width=8", "d_width=8", "sample_every=1", "num_samples=4"]
    assert main(["train", "--threads", "1", "--out", str(tmp_path / "t"), "--quiet", *tiny]) == 0
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["performance"]["threads"] == 1 and summary["performance"]["threads_reason"] == "threads=1"


def test_export_onnx_of_a_translator_reads_no_data(tmp_path, monkeypatch):
    """A translator is traced on a zero image of its input shape: exporting needs neither the run's data set
    nor its held-out split (only the folder of the run)."""
    pytest.importorskip("onnx")
    import ganforge
    from ganforge.api import _recipes
    from ganforge.recipes.base import Translator

    ganforge.train("pix2pix", out=tmp_path / "r", progress=False, steps=1, batch_size=4, sample_every=1,
                   num_samples=4, precision="fp32", **_recipes()["pix2pix"].smoke)

    def no_data(*a, **k):
        raise AssertionError("export read the data set")
    monkeypatch.setattr(Translator, "sample_inputs", no_data)
    assert main(["export", str(tmp_path / "r"), "--out", str(tmp_path / "e"), "--onnx"]) == 0
    assert (tmp_path / "e" / "generator.onnx").stat().st_size > 0
