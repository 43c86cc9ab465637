"""`ganforge.evaluate` / `ganforge eval`: protocol fields, FID of real data against itself and across the
digits split, runs end to end through the CLI, conditional accuracy, reference points, clear errors."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.data import resolve
from ganforge.data.images import digits_split
from ganforge.errors import GanforgeError
from ganforge.metrics import digits as dm
from ganforge.metrics import stats
from ganforge.metrics.evaluate import Evaluation, better, evaluate, parse_metrics
from ganforge.metrics.periodic import evaluate_nets
from ganforge.metrics.features import load_extractor
from ganforge.metrics.sources import GeneratorSource, TensorSource, quantize
from ganforge.registry import FEATURES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    # numpy's BLAS spin-waits badly on a shared 2-core machine (10x slower KID); torch is at 1 thread already
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):
        yield


def write_pngs(folder: Path, x: torch.Tensor, labels=None) -> Path:
    """Images in [-1, 1] (N x 1 x H x W) -> one grey PNG each (in `label/` sub-folders when labels are given)."""
    from PIL import Image

    a = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    for i, img in enumerate(a):
        sub = folder / str(int(labels[i])) if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def test_digits():
    data, _ = resolve("digits", split="test")
    return data.x.float() / 127.5 - 1, data.y


@pytest.fixture(scope="module")
def test_folder(tmp_path_factory, test_digits):
    return write_pngs(tmp_path_factory.mktemp("real_test"), test_digits[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tiny = {"steps": 4, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1,
            "num_samples": 16}
    out = tmp_path_factory.mktemp("runs") / "dcgan"
    ganforge.train("dcgan", out=out, progress=False, g_width=8, d_width=8, **tiny)
    return out


def test_protocol_fields_and_json_in_the_run_dir(run_dir):
    r = evaluate(run_dir, metrics="fid,kid,pr", num=120, seed=3)
    p = r["protocol"]
    assert p["features"]["extractor"] == "digits"
    assert p["features"]["weights_sha256"] == dm.evaluator_sha256()
    assert "8x8" in p["features"]["preprocessing"]
    assert (p["num_generated"], p["num_reference"], p["seed"]) == (120, 360, 3)
    assert p["reference"]["spec"] == "digits" and p["reference"]["split"] == "test"
    assert p["reference"]["shape"] == [1, 16, 16]            # resized like the run's training data
    assert p["ganforge_version"] == ganforge.__version__
    assert p["params"]["kid"]["subset_size"] == 120 and p["params"]["pr"]["k"] == 3
    assert "8 bits" in p["generated"]
    assert set(r["metrics"]) == {"fid", "kid", "kid_std", "precision", "recall"}
    floor, ceiling = r["reference_points"]["floor"], r["reference_points"]["ceiling"]
    assert floor["num"] == ceiling["num"] == 120 and "train split" in floor["what"]
    assert "untrained dcgan" in ceiling["what"]
    assert floor["metrics"]["fid"] < r["metrics"]["fid"]      # 4 training steps are far from real data
    path = Path(r["path"])
    assert path.parent == run_dir and path.name.startswith("eval-")
    assert json.loads(path.read_text())["metrics"]["fid"] == pytest.approx(r["metrics"]["fid"])


def test_fid_of_the_reference_against_itself_is_zero():
    ev = Evaluation(kind="image", shape=(1, 8, 8), ref="digits", split="test", metrics=["fid"], features="digits")
    f = ev.reference_scan(0)["features"]
    assert f.shape == (360, dm.FEATURE_DIM)
    assert abs(stats.fid(f, f)) < 1e-5      # float64 round-off of tr S ~ 1e2


def test_real_test_pngs_vs_test_split_zero_vs_train_split_small(test_folder):
    same = evaluate(test_folder, ref="digits", metrics="fid,pr", reference=False, out=False)
    assert same["protocol"]["num_generated"] == 360 and same["source"]["kind"] == "folder"
    assert abs(same["metrics"]["fid"]) < 1e-5
    assert same["metrics"]["precision"] == same["metrics"]["recall"] == 1.0
    other = evaluate(test_folder, ref="digits", split="train", metrics="fid", out=False)
    assert other["protocol"]["reference"]["split"] == "train"
    fid, noise = other["metrics"]["fid"], other["reference_points"]["ceiling"]["metrics"]["fid"]
    assert 0.1 < fid < noise / 10
    assert other["reference_points"]["ceiling"]["what"] == "uniform noise images"


def test_ref_num_takes_a_fixed_reference_subset(test_folder):
    small = evaluate(test_folder, metrics="fid", ref_num=100, seed=5, reference=False, out=False)
    again = evaluate(test_folder, metrics="fid", ref_num=100, seed=6, reference=False, out=False)
    assert small["protocol"]["num_reference"] == 100 and "100 of 360" in small["protocol"]["reference"]["subset"]
    assert small["metrics"]["fid"] == again["metrics"]["fid"] > 1e-3    # same subset whatever --seed; not ~0


def test_run_evaluates_like_a_folder_of_its_png_samples(run_dir, tmp_path):
    g = ganforge.load(run_dir)
    src = GeneratorSource(g.recipe, g.G, g.info, {})
    x = torch.cat([b for b, _ in src.batches(50, 16, seed=7)])
    assert torch.equal(x, quantize(x))                        # generated images are already 8-bit levels
    write_pngs(tmp_path, x)
    from_run = evaluate(run_dir, metrics="fid", num=50, seed=7, reference=False, out=False)
    from_pngs = evaluate(tmp_path, metrics="fid", reference=False, out=False)
    assert from_pngs["metrics"]["fid"] == pytest.approx(from_run["metrics"]["fid"], rel=1e-9)


def test_cli_end_to_end_on_a_trained_run(run_dir, tmp_path, capsys):
    out = tmp_path / "e.json"
    rc = main(["eval", str(run_dir), "--metrics", "fid,kid,is,pr,dc,modes", "--num", "60", "--seed", "1",
               "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for word in ("FID", "KID", "IS", "precision", "coverage", "modes", "floor (N=60)", "ceiling (N=60)",
                 dm.evaluator_sha256()[:16], "digits, test split, 360 samples"):
        assert word in text
    r = json.loads(out.read_text())
    assert 1.0 <= r["metrics"]["is"] <= 10.0 and 1 <= r["metrics"]["modes"] <= 10
    assert {k: r["protocol"]["params"]["is"][k] for k in ("splits", "classifier")} == {"splits": 10,
                                                                                      "classifier": "digits"}
    real = r["reference_points"]["floor"]["metrics"]
    assert real["modes"] == 10 and real["is"] > max(3.0, r["metrics"]["is"])  # 6 per split: IS <= 6


def test_conditional_accuracy_per_label(tmp_path):
    tiny = {"steps": 2, "batch_size": 8, "sample_every": 2, "checkpoint_every": 2, "log_every": 1,
            "num_samples": 10}
    ganforge.train("cgan", out=tmp_path / "c", progress=False, g_width=8, d_width=8, **tiny)
    r = evaluate(tmp_path / "c", metrics="acc", num=40, out=False)
    m = r["metrics"]
    assert 0 <= m["acc"] <= 1 and len(m["acc_per_class"]) == 10
    assert m["acc"] == pytest.approx(np.mean(m["acc_per_class"]))    # 4 samples for each of the 10 labels
    assert m["acc_real"] > 0.97         # the classifier on real test digits, at the run's 16x16 and back
    assert "label i % 10" in r["protocol"]["labels"]
    assert r["reference_points"]["floor"]["metrics"]["acc"] == m["acc_real"]
    assert "acc" in r["reference_points"]["ceiling"]["metrics"]


def test_labelled_folder_accuracy_equals_classifier_test_accuracy(tmp_path, test_digits):
    write_pngs(tmp_path, *test_digits)
    r = evaluate(tmp_path, metrics="acc", reference=False, out=False)
    shipped = json.loads(dm.weights_path().with_name("digits_cnn.json").read_text())["test_accuracy"]
    assert r["metrics"]["acc"] == pytest.approx(r["metrics"]["acc_real"]) == pytest.approx(shipped, abs=1e-6)


def test_digits_split_rule_agrees_between_evaluator_script_and_data():
    spec = importlib.util.spec_from_file_location("train_digits_evaluator",
                                                  ROOT / "scripts" / "train_digits_evaluator.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    split = script.digits_split()
    for name in ("train", "test"):
        images, labels = split[name]
        data, _ = resolve("digits", split=name)
        assert torch.equal(labels, data.y)
        # same images: the data module stores round(v / 16 * 255), the script uses v / 8 - 1
        assert (images - (data.x.float() / 127.5 - 1)).abs().max() <= 0.5 / 127.5 + 1e-6
    assert digits_split(1797, "test").tolist() == [i for i in range(1797) if i % 5 == 0]
    assert "i % 5 == 0" in json.loads(dm.weights_path().with_name("digits_cnn.json").read_text())["split_rule"]


def test_stacked_joint_predictions_match_digits_module(test_digits):
    x = test_digits[0]
    stacked = torch.cat([x[:30], x[30:60], x[60:90]], dim=1)
    ext = load_extractor("digits")
    out = ext(stacked, logits=True)
    assert out["features"].shape == (30, 3 * dm.FEATURE_DIM) and out["logits"].shape == (30, 1000)
    assert torch.allclose(out["logits"].exp().sum(1), torch.ones(30, dtype=torch.float64))
    ids = dm._mode_ids(dm.load_digits_evaluator(), stacked, 64)
    assert torch.equal(out["logits"].argmax(1), ids)
    assert dm.stacked_modes(ext.net, stacked)["modes"] == len(set(ids.tolist()))


def test_points_modes_and_raw_features_without_touching_the_global_rng():
    from ganforge.api import make_config
    cls, cfg = make_config("gan", None, {"data": "toy:ring"})
    data, info = resolve("toy:ring")
    recipe = cls(cfg, info)
    G = recipe.build()["G"].train()
    state = torch.get_rng_state()
    r = evaluate_nets(recipe, G, info, metrics=("fid", "modes"), num=500, seed=1)
    assert torch.equal(torch.get_rng_state(), state) and G.training
    assert r["protocol"]["features"]["extractor"] == "raw" and r["protocol"]["reference"]["split"] == "test"
    assert 0 <= r["metrics"]["modes"] <= 8 and r["metrics"]["fid"] > 0
    assert r["protocol"]["num_reference"] == 10_000 and "of 100000" in r["protocol"]["reference"]["subset"]
    assert evaluate_nets(recipe, G, info, metrics=("fid", "modes"), num=500, seed=1)["metrics"] == r["metrics"]
    # real held-out ring points: every mode, nearly all high quality (PacGAN's 3-std rule)
    ev = Evaluation(kind="points", shape=(2,), ref="toy:ring", split="test", metrics=["modes"], features=None)
    train, _ = resolve("toy:ring", split="train")
    real = ev.run(TensorSource(train, info, torch.arange(2000), {}), 2000, 0)["metrics"]
    assert real["modes"] == 8 and real["high_quality"] > 0.99 and real["reverse_kl"] < 0.01


def test_metric_names_and_directions():
    assert parse_metrics("fid, KID,fid") == ["fid", "kid"]
    assert parse_metrics(["precision", "recall", "coverage"]) == ["pr", "dc"]
    with pytest.raises(GanforgeError, match="did you mean 'fid'"):
        parse_metrics("fdi")
    assert better("fid", 1.0, 2.0) and not better("fid", 3.0, 2.0)
    assert better("recall", 0.9, 0.8) and better("acc", 0.5, None)
    assert {"digits", "inception", "raw"} <= set(FEATURES)


@pytest.mark.parametrize("args, message", [
    (["--metrics", "fid,precison"], "unknown metric 'precison'; did you mean 'precision'?"),
    (["--features", "incepton"], "did you mean 'inception'"),
    (["--metrics", "pr", "--num", "2"], "needs at least 4 generated samples"),
    (["--metrics", "acc"], "needs a conditional generator"),
])
def test_bad_options_exit_2(run_dir, capsys, args, message):
    assert main(["eval", str(run_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_folders_and_missing_weights(tmp_path, capsys, monkeypatch, test_folder):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty")]) == 2
    assert "holds no images" in capsys.readouterr().err
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("L", (8, 8)).save(mixed / "a.png")
    Image.new("L", (16, 16)).save(mixed / "b.png")
    assert main(["eval", str(mixed)]) == 2
    assert "mixed sizes" in capsys.readouterr().err
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", str(test_folder), "--features", "inception", "--no-reference"]) == 2
    err = capsys.readouterr().err
    assert "FID Inception weights not found" in err and "--weights PATH" in err and str(tmp_path / "cache") in err
    assert main(["eval", str(test_folder), "--features", "inception", "--weights", str(tmp_path / "no.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(test_folder), "--ref", f"folder:{test_folder}", "--metrics", "acc"]) == 2
    assert "needs a reference with class labels" in capsys.readouterr().err
    assert main(["eval", str(test_folder), "--num", "400"]) == 2
    assert "holds only 360 images" in capsys.readouterr().err


@pytest.mark.slow
def test_inception_features_end_to_end_with_a_weights_file(tmp_path):
    from ganforge.metrics.inception import InceptionFID, weights_sha256
    torch.manual_seed(0)
    model = InceptionFID()
    state = {k: (v if "running_var" not in k else torch.ones_like(v)) for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "w.pth")
    data, _ = resolve("digits", split="test")
    write_pngs(tmp_path / "imgs", data.x[:12].float() / 127.5 - 1)
    r = evaluate(tmp_path / "imgs", ref=f"folder:{tmp_path / 'imgs'}", features="inception", metrics="fid,is",
                 weights=tmp_path / "w.pth", reference=False, out=False)
    assert r["protocol"]["features"]["weights_sha256"] == weights_sha256(tmp_path / "w.pth")
    assert "299" in r["protocol"]["features"]["preprocessing"]
    assert abs(r["metrics"]["fid"]) < 1e-3 and r["metrics"]["is"] >= 1.0


def test_periodic_eval_tracks_the_best_and_resumes_it(run_dir):
    from ganforge.metrics.periodic import PeriodicEval
    g = ganforge.load(run_dir)
    hook = PeriodicEval(g.recipe, metric="fid", num=50)
    state = torch.get_rng_state()
    row = hook(g.G)
    assert torch.equal(torch.get_rng_state(), state) and set(row) == {"eval/fid"}
    assert hook.improved(row) and hook.best == row["eval/fid"]
    assert hook(g.G) == row and not hook.improved(row)            # same G, same seed: no improvement
    assert hook.improved({"eval/fid": row["eval/fid"] - 1})
    again = PeriodicEval(g.recipe, metric="fid", num=50)
    again.load_state_dict(hook.state_dict())
    assert again.best == hook.best
    assert PeriodicEval(g.recipe, metric="precision").key == "recall"


def test_checkpoint_and_export_folders_are_sources(run_dir, tmp_path):
    import shutil
    ck = run_dir / "checkpoints" / "step-000002"
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(run_dir / "config.json", export / "config.json")
    shutil.copy(run_dir / "checkpoints" / "step-000004" / "weights.safetensors", export / "weights.safetensors")
    r_ck = evaluate(ck, metrics="fid", num=20, reference=False)
    r_ex = evaluate(export, metrics="fid", num=20, reference=False)
    r_run = evaluate(run_dir, metrics="fid", num=20, reference=False, out=False)
    assert (r_ck["source"]["kind"], r_ex["source"]["kind"]) == ("checkpoint", "export")
    assert Path(r_ck["path"]).parent == run_dir and Path(r_ex["path"]).parent == export
    assert r_ex["metrics"] == r_run["metrics"] != r_ck["metrics"]     # latest = step 4; the checkpoint is step 2


def test_protocol_record_reads_back_every_field(test_folder, tmp_path):
    import PIL
    import scipy
    sub = tmp_path / "imgs"
    write_pngs(sub, torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    r = evaluate(sub, ref=f"folder:{test_folder}", metrics="fid,kid,is,dc", reference=False, protocol="tf",
                 features="digits")
    path = Path(r["path"])
    assert path.parent == tmp_path and path.name.startswith("imgs-eval-")    # beside the folder, not inside
    p = json.loads(path.read_text())["protocol"]
    assert p["protocol"] == "tf" and "ganforge numbers with the digits extractor" in p["comparable_to"]
    env = p["environment"]
    assert (env["numpy"], env["scipy"], env["pillow"]) == (np.__version__, scipy.__version__, PIL.__version__)
    assert env["torch_threads"] == torch.get_num_threads() and "float32" in env["feature_dtype"]
    assert env["tf32"] == "n/a (CPU)"
    ref = p["reference"]
    assert ref["split"] is None and "no splits" in ref["split_note"]          # a folder spec has no test split
    assert ref["count"] == ref["files"] == 360 and len(ref["content_sha256"]) == 64
    assert "BICUBIC" in ref["preprocessing"] and "centre" in ref["preprocessing"] and ref["resized"] is False
    assert p["generated_content"]["count"] == 20 and p["generated_content"]["content_sha256"] != ref["content_sha256"]
    assert "RandomState" in p["params"]["kid"]["sampler"] and "d < r" in p["params"]["dc"]["ball"]
    assert "i N // 10" in p["params"]["is"]["split_rule"] and "softmax" in p["params"]["is"]["logits"]
    again = evaluate(sub, ref=f"folder:{test_folder}", metrics="fid", reference=False, out=False, features="digits")
    assert again["protocol"]["generated_content"] == p["generated_content"]   # the hash is of the pixels
    # a reference the folder reader resizes says so
    assert ref["resized_images"] == 0


def test_non_square_folders_are_accepted_by_the_cli(tmp_path, capsys):
    from PIL import Image
    g = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(12):
            Image.fromarray(g.integers(0, 255, (8, 12), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    out = tmp_path / "e.json"
    assert main(["eval", str(tmp_path / "a"), "--ref", f"folder:{tmp_path / 'b'}", "--metrics", "fid,pr",
                 "--features", "digits", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["protocol"]["reference"]["shape"] == [1, 8, 12] and "no resize" in r["protocol"]["reference"]["preprocessing"]
    assert main(["eval", str(tmp_path / "a"), "--metrics", "fid"]) == 2           # digits: square data
    assert "not square" in capsys.readouterr().err


def test_digits_extractor_on_colour_photos_warns(tmp_path, capsys):
    from PIL import Image
    g = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(g.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    r = evaluate(tmp_path, metrics="fid", reference=False, out=False)
    assert any("digits extractor" in n and "colour" in n for n in r["notes"])
    assert "warning: the digits extractor" in capsys.readouterr().err
    digits = evaluate(tmp_path, metrics="fid", reference=False, out=False, ref="digits")
    assert digits["notes"] == r["notes"]


def test_missing_weights_name_the_cli_flag(test_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    for features in ("inception", "dinov2"):
        assert main(["eval", str(test_folder), "--features", features, "--no-reference"]) == 2
        err = capsys.readouterr().err
        assert "pass --download" in err and "enable download" not in err
    for protocol in ("pytorch-fid", "tf", "clean"):     # dinov2 has an input under every protocol
        assert main(["eval", str(test_folder), "--features", "dinov2", "--protocol", protocol]) == 2
        assert "pass --download" in capsys.readouterr().err
