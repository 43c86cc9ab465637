"""The FID Inception-v3: exact weight layout, strict loading, forward shapes, cache and download rules.

No real weights are used: files with the same layout and random values are written by the tests, and
downloads come from a local http.server on 127.0.0.1.
"""
import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.metrics import InceptionFID, extract, load_inception, preprocess, weights_sha256

NAME = "pt_inception-2015-12-05-6726825d.pth"
HERE = Path(__file__).resolve().parent
KEYS_CANDIDATES = [HERE.parents[1] / "shared" / "data" / "fid_inception_keys.tsv",  # shared/ beside the checkout
                   HERE.parent / "shared" / "data" / "fid_inception_keys.tsv"]     # or inside it


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InceptionFID()


@pytest.fixture(scope="module")
def expected_layout():
    path = next((p for p in KEYS_CANDIDATES if p.is_file()), None)
    if path is None:
        pytest.skip(f"fid_inception_keys.tsv not found (looked at {[str(p) for p in KEYS_CANDIDATES]})")
    layout = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split("\t")
            layout[key] = [int(s) for s in shape.strip("[]").split(",") if s.strip()]
    return layout


def random_state(model, seed):
    """Same layout, random values at a scale that keeps activations O(1) through 94 conv layers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.rand(value.shape, generator=g) * 0.2 + 0.9
        elif key.endswith("conv.weight") or key == "fc.weight":
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * (2 / fan_in) ** 0.5
        else:  # biases and running means: small, so the input still matters after 94 layers
            state[key] = torch.randn(value.shape, generator=g) * 0.01
    return state


@pytest.fixture(scope="module")
def weights_files(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    state = random_state(model, seed=1)
    torch.save(state, folder / NAME)  # with num_batches_tracked
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, folder / "no_nbt.pth")
    return folder, state


def test_layout_matches_the_released_weights(model, expected_layout):
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_layout
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == sum(k.endswith(".bn.weight") for k in expected_layout)
    assert all(m.eps == 0.001 for m in bns)
    assert (model.fc.in_features, model.fc.out_features) == (2048, 1008)
    assert not model.training


@pytest.mark.parametrize("file", [NAME, "no_nbt.pth"])
def test_strict_loading_with_and_without_num_batches_tracked(weights_files, file):
    folder, state = weights_files
    m = load_inception(weights=folder / file)
    assert not m.training
    loaded = m.state_dict()
    for key, value in state.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key
    # the protocol names the weights by their SHA-256
    digest = hashlib.sha256((folder / file).read_bytes()).hexdigest()
    assert weights_sha256(folder / file) == digest == m.protocol["weights_sha256"]
    assert "align_corners=False" in m.protocol["resize"] and m.protocol["extractor"] == "inception"


def test_wrong_layout_or_not_weights_is_a_clear_error(weights_files, tmp_path):
    _, state = weights_files
    torch.save({"fc.weight": state["fc.weight"], "fc.bias": torch.zeros(7), "extra.weight": torch.zeros(1)},
               tmp_path / "other.pth")
    with pytest.raises(GanforgeError) as err:
        load_inception(weights=tmp_path / "other.pth")
    msg = str(err.value)
    n_missing = sum(not k.endswith("num_batches_tracked") for k in state) - 2  # the counters are tolerated
    assert "other.pth" in msg and f"{n_missing} missing" in msg and "'extra.weight'" in msg
    assert "'fc.bias'" in msg  # the wrong shape
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GanforgeError, match="junk.pth"):
        load_inception(weights=tmp_path / "junk.pth")


def test_forward_shapes_of_two_grey_images(weights_files):
    folder, state = weights_files
    m = load_inception(weights=folder / NAME)
    grey = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        out = m(grey)
    assert out["pool"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    assert torch.isfinite(out["pool"]).all() and torch.isfinite(out["logits"]).all()
    assert out["pool"].std() > 0 and (out["pool"] >= 0).all()  # mean of ReLU outputs
    assert not torch.allclose(out["pool"][0], out["pool"][1])
    expected_logits = out["pool"] @ state["fc.weight"].T + state["fc.bias"]
    assert torch.allclose(out["logits"], expected_logits, atol=1e-4)


def test_preprocess_resizes_to_299_and_keeps_range():
    # 8-bit levels, as every evaluation source gives them (the protocols start from the 0..255 values)
    x = (torch.rand(2, 1, 17, 23, generator=torch.Generator().manual_seed(3)) * 255).round() / 127.5 - 1
    y = preprocess(x)
    assert y.shape == (2, 3, 299, 299)
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6
    assert torch.equal(y, preprocess(x.repeat(1, 3, 1, 1)))  # grey is the same picture in RGB
    level = 96 / 127.5 - 1                                  # a constant 8-bit image stays that level
    assert torch.allclose(preprocess(torch.full((1, 3, 8, 8), level)), torch.tensor(level))
    with pytest.raises(GanforgeError, match="C = 1 or 3"):
        preprocess(torch.zeros(1, 2, 8, 8))
    # the protocols differ: TF1's resize samples d * in / out, pytorch-fid's (d + 0.5) * in / out - 0.5
    tf, clean = preprocess(x, "tf"), preprocess(x, "clean")
    assert tf.shape == clean.shape == (2, 3, 299, 299)
    assert (tf - y).abs().max() > 0.05 and (clean - y).abs().max() > 0.05 and (tf - clean).abs().max() > 0.05
    with pytest.raises(GanforgeError, match="did you mean 'tf'"):
        preprocess(x, "tff")


def test_non_canonical_weights_warn_and_are_recorded(weights_files, capsys):
    folder, _ = weights_files
    m = load_inception(weights=folder / NAME)       # the official name, random bytes: the hash decides
    assert m.protocol["canonical"] is False
    err = capsys.readouterr().err
    assert "warning" in err and "not the canonical" in err and m.protocol["weights_sha256"][:16] in err
    from ganforge.metrics import inception
    m = load_inception(weights=folder / NAME, sha256_prefix=None)
    # what canonical means: the SHA-256 starts with the hash in the official file name
    assert inception.CANONICAL_SHA256_PREFIX == NAME.split("-")[-1].split(".")[0]
    assert m.protocol["canonical"] == m.protocol["weights_sha256"].startswith("6726825d")


def test_the_extractor_runs_a_fused_copy_with_todays_fp32_features(weights_files):
    """The FID extractor's fast path (BN folded into the convs, channels_last, inception.fused) computes the
    plain model's features and logits within 1e-4 relative, on every protocol's preprocessing."""
    from ganforge.metrics.features import load_extractor
    from ganforge.metrics.inception import fused
    folder, _ = weights_files
    plain = load_inception(weights=folder / NAME)
    fast = fused(plain)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())        # the loaded model is left alone
    assert fast.Mixed_6b.branch7x7_2.conv.weight.is_contiguous(memory_format=torch.channels_last)
    grey = ((torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 255).round() / 127.5) - 1
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()    # noqa: E731
    with torch.no_grad():
        want = plain(grey)
        got = fast(grey)
    assert rel(got["pool"], want["pool"]) < 1e-4 and rel(got["logits"], want["logits"]) < 1e-4
    assert rel(got["pool"], want["pool"]) > 0                       # a different computation, not the same one
    ext = load_extractor("inception", weights=folder / NAME, protocol="tf")       # another preprocessing
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ext.net.modules())
    ref = load_inception(weights=folder / NAME, protocol="tf")
    with torch.no_grad():
        assert rel(ext(grey, logits=True)["features"], ref(grey)["pool"]) < 1e-4


def test_extract_streams_batches_without_grad():
    lin = nn.Linear(3, 2)
    as_dict = type("D", (nn.Module,), {"forward": lambda self, x: {"a": lin(x), "b": lin(x).sum(1)}})()
    as_dict.lin = lin
    x = torch.randn(10, 3, generator=torch.Generator().manual_seed(4))
    full = extract(as_dict, x, batch_size=10)
    for chunked in (extract(as_dict, x, batch_size=3), extract(as_dict, iter(x.split(4)), batch_size=1)):
        assert chunked["a"].shape == (10, 2) and chunked["b"].shape == (10,)
        assert torch.allclose(chunked["a"], full["a"]) and not chunked["a"].requires_grad
    assert torch.allclose(extract(lin, x, batch_size=4), lin(x))


# ---------------------------------------------------------------- where weights come from

def test_missing_weights_say_where_and_how(tmp_path):
    with pytest.raises(GanforgeError) as err:
        load_inception(cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert str(tmp_path / "cache" / NAME) in msg and "--weights PATH" in msg and "download" in msg
    with pytest.raises(GanforgeError, match="nowhere.pth"):
        load_inception(weights=tmp_path / "nowhere.pth")


def test_cache_dir_defaults_to_ganforge_cache_env(weights_files, tmp_path, monkeypatch):
    folder, _ = weights_files
    monkeypatch.setenv("GANFORGE_CACHE", str(folder))
    assert load_inception().protocol["weights"] == str(folder / NAME)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    with pytest.raises(GanforgeError, match=str(tmp_path)):
        load_inception()


@pytest.fixture
def server(weights_files, local_server):
    """Serve the weights folder plus a small fake file from 127.0.0.1; record each requested path."""
    base, served, requests = local_server
    folder, _ = weights_files
    (served / "small-00000000.pth").write_bytes(b"small fake weights" * 100)
    (served / NAME).symlink_to(folder / NAME)
    return base, requests


def test_download_into_cache_then_reuse(server, weights_files, tmp_path):
    base, requests = server
    folder, _ = weights_files
    cache = tmp_path / "cache"
    prefix = weights_sha256(folder / NAME)[:8]
    with pytest.raises(GanforgeError, match="download"):
        load_inception(cache_dir=cache, url=f"{base}/{NAME}", sha256_prefix=prefix)
    assert requests == []  # download=False never touches the network
    m = load_inception(cache_dir=cache, download=True, url=f"{base}/{NAME}", sha256_prefix=prefix)
    assert sorted(p.name for p in cache.iterdir()) == [NAME]
    assert (cache / NAME).read_bytes() == (folder / NAME).read_bytes()
    assert m.protocol["weights_sha256"].startswith(prefix)
    load_inception(cache_dir=cache, download=True, url=f"{base}/{NAME}", sha256_prefix=prefix)
    assert requests == [f"/{NAME}"]  # the second load came from the cache


def test_download_hash_mismatch_or_http_error_leaves_nothing(server, tmp_path):
    base, requests = server
    cache = tmp_path / "cache"
    with pytest.raises(GanforgeError, match="SHA-256") as err:
        load_inception(cache_dir=cache, download=True, url=f"{base}/small-00000000.pth",
                       sha256_prefix="00000000")
    assert "--weights PATH" in str(err.value)
    assert list(cache.iterdir()) == []
    with pytest.raises(GanforgeError, match="404"):
        load_inception(cache_dir=cache, download=True, url=f"{base}/missing.pth")
    assert list(cache.iterdir()) == [] and len(requests) == 2
