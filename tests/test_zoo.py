"""The model zoo: bundled models load by name and are what the manifest says; downloads only when asked."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge import cli, zoo
from ganforge.download import file_hash
from ganforge.errors import GanforgeError
from ganforge.metrics.digits import class_accuracy, load_digits_evaluator

BUNDLED = sorted(zoo.bundled())


def test_the_zoo_ships_models():
    assert "cgan-digits" in BUNDLED and len(BUNDLED) >= 3


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_matches_its_manifest_entry(name):
    e = zoo.bundled()[name]
    weights = zoo.HERE / name / "weights.safetensors"
    assert file_hash(weights) == e["sha256"] and weights.stat().st_size == e["bytes"]
    assert e["bytes"] <= 2 * 2**20
    assert e["command"].startswith(f"ganforge train {e['recipe']}")
    assert e["metric"]["by"] == f"python scripts/train_zoo.py --score-only {name}"
    g = ganforge.load(f"zoo:{name}")
    assert g.recipe.name == e["recipe"] and not g.G.training
    assert all(p.dtype == torch.float32 for p in g.G.parameters())   # float16 files are widened on load


def test_the_zoo_fits_its_budget():
    assert sum(e["bytes"] for e in zoo.bundled().values()) <= 15 * 2**20


def test_cgan_digits_draws_the_digit_it_is_asked_for():
    """The manifest's metric, measured again: the bundled classifier reads each requested label."""
    g = ganforge.load("zoo:cgan-digits")
    labels = torch.arange(10).repeat_interleave(100)
    acc = class_accuracy(load_digits_evaluator(), g.sample(1000, seed=1, labels=labels), labels)
    assert acc == pytest.approx(zoo.bundled()["cgan-digits"]["metric"]["value"], abs=0.01)
    assert acc > 0.9


def test_sample_zoo_model_writes_into_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", "zoo:cgan-digits", "-n", "16", "--label", "7"]) == 0
    written = list((tmp_path / "zoo-cgan-digits" / "samples").glob("*-label7.png"))
    assert len(written) == 1 and str(written[0].name) in capsys.readouterr().out
    assert not list(zoo.HERE.glob("*/samples"))       # nothing is written into the installed package


def test_unknown_zoo_name_suggests_one(capsys):
    with pytest.raises(GanforgeError, match="did you mean 'cgan-digits'"):
        ganforge.load("zoo:cgan-digit")
    assert cli.main(["sample", "zoo:nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no zoo model 'nope'" in err and "Traceback" not in err


def test_list_shows_the_zoo(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert f"  {name} " in out
    assert "bundled" in out


def test_eval_reads_a_zoo_model_and_writes_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = ganforge.evaluate("zoo:cgan-digits", metrics="fid", features="digits", num=200, reference=False)
    assert r["source"]["kind"] == "zoo" and r["metrics"]["fid"] > 0
    assert [p.parent for p in tmp_path.rglob("eval-*.json")] == [tmp_path / "zoo-cgan-digits"]


# -- a damaged install and the downloads --------------------------------------------------------------------
@pytest.fixture
def private_zoo(tmp_path, monkeypatch):
    """A copy of the zoo folder that a test may damage, with an empty downloads manifest."""
    here = tmp_path / "zoo"
    shutil.copytree(zoo.HERE, here, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setattr(zoo, "HERE", here)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    return here


def test_a_changed_weights_file_is_refused(private_zoo):
    weights = private_zoo / "cgan-digits" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(GanforgeError, match="SHA-256 .* not the manifest's .* reinstall ganforge"):
        ganforge.load("zoo:cgan-digits")
    weights.unlink()
    with pytest.raises(GanforgeError, match="is missing"):
        ganforge.load("zoo:cgan-digits")


@pytest.fixture
def server(local_server):
    return local_server           # (base URL, the served folder, requested paths): conftest.py


def _offer(private_zoo, base, served, sha_of=None) -> None:
    """Serve cgan-digits as the download `big-cgan` (files under the server's big/), listed in downloads.json."""
    (served / "big").mkdir()
    files = {}
    for f in zoo.FILES:
        shutil.copy(private_zoo / "cgan-digits" / f, served / "big" / f)
        files[f] = {"url": f"{base}/big/{f}", "sha256": (sha_of or {}).get(f) or file_hash(served / "big" / f)}
    (private_zoo / "downloads.json").write_text(json.dumps({"models": {"big-cgan": {
        "recipe": "cgan", "summary": "a download", "bytes": 1234, "files": files}}}))


def test_download_only_when_asked_then_cached(private_zoo, server, capsys, tmp_path, monkeypatch):
    base, served, requests = server
    _offer(private_zoo, base, served)
    with pytest.raises(GanforgeError, match=r"is a download .*--download"):
        ganforge.load("zoo:big-cgan")
    assert requests == []                               # nothing fetched without the flag
    assert cli.main(["list"]) == 0 and "big-cgan" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", "zoo:big-cgan", "--download", "-n", "4"]) == 0
    assert sorted(requests) == ["/big/config.json", "/big/weights.safetensors"]
    cached = zoo.cached("big-cgan")
    assert sorted(p.name for p in cached.iterdir()) == sorted(zoo.FILES)
    a = ganforge.load("zoo:big-cgan").sample(4, seed=3)          # from the cache: no new request
    assert len(requests) == 2
    assert torch.equal(a, ganforge.load("zoo:cgan-digits").sample(4, seed=3))
    assert "cached" in [r["where"] for r in zoo.table() if r["name"] == "big-cgan"]


def test_a_download_with_the_wrong_checksum_leaves_nothing(private_zoo, server):
    base, served, _ = server
    _offer(private_zoo, base, served, sha_of={"weights.safetensors": "0" * 64})
    with pytest.raises(GanforgeError, match="wrong checksum"):
        ganforge.load("zoo:big-cgan", download=True)
    assert not (zoo.cached("big-cgan") / "weights.safetensors").exists()


def test_a_tampered_cached_download_is_refused(private_zoo, server):
    base, served, _ = server
    _offer(private_zoo, base, served)
    ganforge.load("zoo:big-cgan", download=True)
    (zoo.cached("big-cgan") / "config.json").write_text("{}")
    with pytest.raises(GanforgeError, match="delete .* and fetch it again"):
        ganforge.load("zoo:big-cgan")


def test_every_default_output_of_a_zoo_model_lands_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    walk = ganforge.interpolate("zoo:dcgan-digits", n=2, points=2, frames=2)
    digit = ganforge.sample("zoo:dcgan-digits", 1, tmp_path / "one.png")
    inverted = ganforge.invert("zoo:dcgan-digits", [digit], steps=2, restarts=1)
    assert walk.resolve().parent == tmp_path / "zoo-dcgan-digits" / "samples"
    assert Path(inverted["files"][0]["inverted"]).resolve().parent == tmp_path / "zoo-dcgan-digits" / "inverted"
    assert not list(zoo.HERE.rglob("*.png")) and not list(zoo.HERE.rglob("*.gif"))
