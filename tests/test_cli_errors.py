"""Bad input to every subcommand is one line on stderr and exit status 2, never a traceback (issue 12)."""
import json

import pytest

import ganforge
from ganforge.api import _recipes
from ganforge.cli import main
from ganforge.config import from_dict
from ganforge.errors import GanforgeError

TINY = ["steps=2", "resolution=8", "batch_size=8", "g_width=8", "d_width=8", "num_samples=8", "sample_every=2",
        "checkpoint_every=2", "log_every=1", "precision=fp32"]


def error_line(capsys, *argv) -> str:
    """Run the CLI, check it failed the way a user error must, and return the message."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("ganforge: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-errors") / "r"
    ganforge.train("dcgan", out=out, progress=False, steps=2, resolution=8, batch_size=8, g_width=8, d_width=8,
                   num_samples=8, sample_every=2, checkpoint_every=2, log_every=1, precision="fp32")
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image
    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.new("L", (8, 8), 128).save(path)
    return path


# -- item 9: train()'s own argument names given as config keys --------------------------------------------------
@pytest.mark.parametrize("pair,hint", [
    ("out=x", "use --out DIR"),
    ("preset=digits", "use --preset NAME"),
    ("progress=false", "use --quiet"),
    ("recipe=gan", "ganforge train RECIPE"),
    ("stop_at=1", "use steps=N"),
])
def test_train_argument_names_are_not_config_keys(tmp_path, monkeypatch, capsys, pair, hint):
    monkeypatch.chdir(tmp_path)                  # nothing may be written, not even a default runs/ folder
    err = error_line(capsys, "train", "dcgan", pair, *TINY)
    assert f"{pair.split('=')[0]!r} is not a config key" in err and hint in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["out: elsewhere", "stop_at: 1", "progress: false"])
def test_yaml_argument_names_are_not_config_keys(tmp_path, monkeypatch, capsys, key):
    monkeypatch.chdir(tmp_path)
    y = tmp_path / "c.yaml"
    y.write_text("recipe: dcgan\npreset: digits\n" + "".join(f"{p.replace('=', ': ')}\n" for p in TINY) + key + "\n")
    err = error_line(capsys, "train", "--config", y)
    assert f"config file {str(y)!r}: {key.split(':')[0]!r} is not a config key" in err
    assert not (tmp_path / "runs").exists()


def test_non_utf8_yaml_is_one_line(tmp_path, capsys):
    y = tmp_path / "latin1.yaml"
    y.write_bytes("steps: 2\n# café\n".encode("latin-1"))
    err = error_line(capsys, "train", "--config", y)
    assert "is not UTF-8 text (byte 0xe9" in err and "save it as UTF-8" in err


@pytest.mark.parametrize("pair,msg", [
    ("resolution=-8", "config key 'resolution' must be >= 0 (0 = the recipe's default for the data); got -8"),
    ("channels=2", "config key 'channels' must be 0 (the data's own), 1 or 3; got 2"),
    ("channels=-1", "config key 'channels' must be 0 (the data's own), 1 or 3; got -1"),
    ("extra_layers=-1", "config key 'extra_layers' must be >= 0; got -1"),
])
def test_shared_fields_out_of_range(capsys, pair, msg):
    assert msg in error_line(capsys, "train", "dcgan", *TINY, pair)


@pytest.mark.parametrize("recipe", sorted(_recipes()))
def test_every_recipe_checks_the_shared_fields(recipe):
    # each recipe's check() must reach RecipeConfig.check(), or its configs skip these checks
    with pytest.raises(GanforgeError, match="'resolution' must be >= 0"):
        from_dict(_recipes()[recipe].Config, {"resolution": -8})


@pytest.mark.parametrize("num", ["-3", "0"])
def test_sample_count_must_be_positive(run, capsys, num):
    assert "-n must be >= 1 (how many to draw); got " + num in error_line(capsys, "sample", run, "-n", num)


def test_sample_out_suffix_must_match_what_the_run_writes(run, tmp_path, capsys):
    err = error_line(capsys, "sample", run, "--out", tmp_path / "x.txt")
    assert "this dcgan run writes an image grid; give a .png file name" in err
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(16)))
    ganforge.train("gan", data=f"csv:{csv}", out=tmp_path / "t", progress=False, steps=2, batch_size=8,
                   sample_every=2, checkpoint_every=2, log_every=1, num_samples=8)
    err = error_line(capsys, "sample", tmp_path / "t", "--out", tmp_path / "rows.png")
    assert "this gan run writes table rows (CSV); give a .csv file name" in err
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "rows.png").exists()


# -- the same class of bug in the other subcommands ----------------------------------------------------------------
def test_interpolate_fps_and_suffix_fail_before_any_work(run, tmp_path, capsys):
    assert "--fps must be >= 1; got 0" in error_line(capsys, "interpolate", run, "--fps", "0",
                                                    "--out", tmp_path / "w.gif")
    err = error_line(capsys, "interpolate", run, "--out", tmp_path / "new" / "walk.txt")
    assert "give a .gif or .png file name" in err
    assert not (tmp_path / "new").exists()        # the folder used to be made before the suffix was checked


def test_style_mix_out_must_be_png(run, tmp_path, capsys):
    err = error_line(capsys, "style-mix", run, "--out", tmp_path / "grid.txt")
    assert "style-mix writes a PNG grid; give a .png file name" in err


def test_eval_out_must_be_a_json_file(run, tmp_path, capsys):
    for out in (tmp_path / "e.txt", tmp_path):    # a folder used to fail only after the whole evaluation
        err = error_line(capsys, "eval", run, "--num", "10", "--no-reference", "--out", out)
        assert "eval writes its results as JSON; give a .json file name" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["export", "{run}", "--out", "{file}"],
    ["invert", "{run}", "{image}", "--steps", "1", "--restarts", "1", "--out", "{file}"],
    ["translate", "{run}", "{image}", "--out", "{file}"],
    ["upscale", "{run}", "{image}", "--out", "{file}"],
])
def test_output_folder_that_is_a_file(run, image, tmp_path, capsys, argv):
    file = tmp_path / "taken"
    file.write_text("not a folder")
    err = error_line(capsys, *[a.format(run=run, image=image, file=file) for a in argv])
    assert f"--out {str(file)!r} is a file; give a folder" in err
    assert file.read_text() == "not a folder"


def test_upscale_missing_input_is_reported_before_the_model(run, tmp_path, capsys):
    err = error_line(capsys, "upscale", run, tmp_path / "missing.png", "--out", tmp_path / "o")
    assert "input" in err and "missing.png" in err and "does not exist" in err


# -- item 10: messages -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", ["progan", "stylegan", "dcgan", "wgan", "sngan", "lsgan", "wgan_gp"])
def test_resolution_message_names_the_recipe(capsys, recipe):
    smoke = [f"{k}={v}" for k, v in _recipes()[recipe].smoke.items() if k != "resolution"]
    err = error_line(capsys, "train", recipe, *smoke, "resolution=12")
    assert f"{recipe} needs a power-of-two resolution >= 8; got 12" in err


def test_resume_with_config_keys_says_how_to_change_them(run, capsys):
    before = (run / "config.json").read_text()
    err = error_line(capsys, "resume", run, "d_lr=1e-3", "--steps", "4")
    assert "resume keeps the run's config (only --steps N can change)" in err
    assert "to change d_lr start a new run: ganforge train RECIPE d_lr=1e-3 --out NEW" in err
    assert json.loads((run / "config.json").read_text()) == json.loads(before)
