"""Each (protocol, extractor) pair against the reference package it claims to equal, on the same weights file.

No real weights are offline: one random file with the FID Inception layout is loaded strictly into ganforge and
into each reference. The reference packages are pinned (tests/refpkgs.py VERSIONS) and installed by the test;
each difference is recorded by refpkgs.measure; `python benchmarks/parity.py` runs these tests and prints the measured
maxima, which are in docs/metrics.md ("Parity with the reference implementations").
"""
import numpy as np
import pytest
import torch
from PIL import Image

import refpkgs
from test_inception import NAME, random_state
from ganforge.metrics import InceptionFID, protocols, stats
from ganforge.metrics.evaluate import Evaluation, evaluate
from ganforge.metrics.features import load_extractor

N = 8            # images per folder: each Inception pass at 299x299 costs ~0.2 s on one core


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / NAME
    torch.manual_seed(0)
    torch.save(random_state(InceptionFID(), seed=5), path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders of smooth 8-bit colour images (23x23: no protocol's resize is the identity)."""
    root = tmp_path_factory.mktemp("imgs")
    g = np.random.default_rng(0)
    out = []
    for name, shift in (("a", 0.0), ("b", 0.6)):
        (root / name).mkdir()
        yy, xx = np.mgrid[0:23, 0:23] / 22
        for i in range(N):
            f = g.uniform(1, 4, size=3)
            img = np.stack([np.sin(f[c] * (xx + shift) + yy * (c + 1) + i) for c in range(3)], -1)
            img = img + 0.3 * g.standard_normal(img.shape)
            Image.fromarray(((img - img.min()) / np.ptp(img) * 255).round().astype(np.uint8)).save(
                root / name / f"{i:02d}.png")
        out.append(root / name)
    return out


def ganforge_scan(folder, protocol, weights, features="inception", logits=False):
    ev = Evaluation(kind="image", shape=(3, 23, 23), ref=f"folder:{folder}", split="test",
                    metrics=["fid", "is"] if logits else ["fid"], features=features, weights=weights,
                    protocol=protocol)
    return ev.reference_scan(0)


@pytest.mark.slow     # ~16 Inception passes at 299x299 per protocol, ~40 s on a shared core
def test_tf_protocol_equals_torch_fidelity_end_to_end(folders, weights):
    tfid = refpkgs.require("torch-fidelity")
    a, b = folders
    ref = tfid.calculate_metrics(input1=str(a), input2=str(b), cuda=False, fid=True, kid=True, prc=True, isc=True,
                                 kid_subsets=100, kid_subset_size=N, isc_splits=4, samples_shuffle=False,
                                 rng_seed=0, feature_extractor_weights_path=str(weights), verbose=False,
                                 cache=False, batch_size=N, feature_extractor="inception-v3-compat",
                                 feature_layer_prc="2048", feature_layer_isc="logits_unbiased")
    r = evaluate(a, ref=f"folder:{b}", metrics="fid,kid,pr", features="inception", weights=weights,
                 protocol="tf", reference=False, out=False)
    m, pair = r["metrics"], "tf / inception"
    assert refpkgs.measure(pair, "FID (PNG folders, torch_fidelity.calculate_metrics)", m["fid"],
                           ref["frechet_inception_distance"], 1e-5) < 1e-5
    assert refpkgs.measure(pair, "KID", m["kid"], ref["kernel_inception_distance_mean"], 1e-4) < 1e-4
    assert refpkgs.measure(pair, "precision", m["precision"], ref["precision"], 1e-7, "abs") <= 1e-7
    assert refpkgs.measure(pair, "recall", m["recall"], ref["recall"], 1e-7, "abs") <= 1e-7
    # the IS input: pool3 @ W without the fc bias, in sample order
    logits = ganforge_scan(a, "tf", weights, logits=True)["logits"]
    assert refpkgs.measure(pair, "IS", stats.inception_score(logits, splits=4, from_logits=True)[0],
                           ref["inception_score_mean"], 1e-5) < 1e-5
    assert r["protocol"]["params"]["kid"]["sampler"].startswith("np.random.RandomState")
    assert r["protocol"]["features"]["canonical"] is False


def _pixels(folder):
    return torch.from_numpy(np.stack([np.array(Image.open(p).convert("RGB")).transpose(2, 0, 1)
                                      for p in sorted(folder.iterdir())]))


def test_preprocessing_of_each_protocol_equals_its_reference(folders):
    refpkgs.require("torch-fidelity")
    refpkgs.require("clean-fid")
    from cleanfid.resize import build_resizer
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
    u8 = _pixels(folders[0])
    x = u8.float() / 127.5 - 1                       # how ganforge's sources hold the PNGs
    tf = interpolate_bilinear_2d_like_tensorflow1x(u8.float(), size=(299, 299), align_corners=False)
    # pytorch-fid: ToTensor (v / 255), InceptionV3.forward's F.interpolate and 2x - 1
    pt = 2 * torch.nn.functional.interpolate(u8.float() / 255, size=(299, 299), mode="bilinear",
                                             align_corners=False) - 1
    resize = build_resizer("clean")
    clean = torch.stack([torch.from_numpy(resize(a.permute(1, 2, 0).numpy()).transpose(2, 0, 1).copy())
                         for a in u8])
    for protocol, want in (("tf", (tf - 128) / 128), ("pytorch-fid", pt), ("clean", (clean - 128) / 128)):
        got = protocols.prepare(x, protocol, 299)
        refpkgs.measure(f"{protocol} / inception", "299x299 input", got, want, 0.0, "abs")
        assert torch.equal(got, want), protocol
    assert not torch.equal(protocols.prepare(x, "tf", 299), protocols.prepare(x, "clean", 299))


def test_tf_features_equal_torch_fidelity_feature_extractor(folders, weights):
    tfid = refpkgs.require("torch-fidelity")
    fe = tfid.feature_extractor_inceptionv3.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights))
    x = _pixels(folders[0])[:2]
    pool, logits = fe(x)
    ext = load_extractor("inception", weights=weights, protocol="tf")
    ours = ext(x.float() / 127.5 - 1, logits=True)
    pair = "tf / inception"
    assert refpkgs.measure(pair, "pool3 features (FeatureExtractorInceptionV3)", ours["features"], pool, 1e-5) <= 1e-5
    assert refpkgs.measure(pair, "logits without fc bias", ours["logits"], logits, 1e-5) <= 1e-5


@pytest.mark.slow     # ~16 Inception passes at 299x299 per protocol, ~40 s on a shared core
def test_pytorch_fid_protocol_equals_pytorch_fid_end_to_end(folders, weights, monkeypatch):
    refpkgs.require("torch-fidelity")        # its blocks stand in for torchvision's in the stub
    pfid = refpkgs.require("pytorch-fid")
    from pytorch_fid import fid_score, inception
    monkeypatch.setattr(inception, "load_state_dict_from_url", lambda *a, **k: torch.load(weights))
    model = inception.InceptionV3([3]).eval()
    files = [sorted(str(p) for p in f.iterdir()) for f in folders]
    acts = [fid_score.get_activations(f, model, batch_size=N, dims=2048, device="cpu", num_workers=0)
            for f in files]
    ref_fid = fid_score.calculate_frechet_distance(acts[0].mean(0), np.cov(acts[0], rowvar=False),
                                                   acts[1].mean(0), np.cov(acts[1], rowvar=False))
    ours = ganforge_scan(folders[0], "pytorch-fid", weights)["features"].numpy()
    pair = "pytorch-fid / inception"
    assert refpkgs.measure(pair, "pool3 features (PNG folder, get_activations)", ours, acts[0], 1e-5) <= 1e-5
    r = evaluate(folders[0], ref=f"folder:{folders[1]}", metrics="fid", features="inception", weights=weights,
                 protocol="pytorch-fid", reference=False, out=False)
    assert refpkgs.measure(pair, "FID (PNG folders)", r["metrics"]["fid"], ref_fid, 1e-5) < 1e-5
    assert pfid.__version__ == refpkgs.VERSIONS["pytorch-fid"]


@pytest.mark.slow     # ~16 Inception passes at 299x299 per protocol, ~40 s on a shared core
def test_clean_protocol_equals_clean_fid_end_to_end(folders, weights, monkeypatch):
    refpkgs.require("torch-fidelity")
    refpkgs.require("clean-fid")
    from cleanfid import fid, inception_pytorch
    monkeypatch.setattr(inception_pytorch, "load_state_dict_from_url", lambda *a, **k: torch.load(weights))
    net = inception_pytorch.InceptionV3([3], resize_input=False, normalize_input=False).eval()

    def extractor(x):
        # clean-fid's InceptionV3W (a TorchScript of the TF graph, which takes no other weights) receives the
        # PIL-resized 0..255 image and normalises it (x - 128) / 128 first; the same network here
        return net((x - 128) / 128)[0].squeeze(-1).squeeze(-1)

    ref_fid = fid.compute_fid(str(folders[0]), str(folders[1]), mode="clean", custom_feat_extractor=extractor,
                              num_workers=0, batch_size=N, device=torch.device("cpu"), verbose=False)
    r = evaluate(folders[0], ref=f"folder:{folders[1]}", metrics="fid", features="inception", weights=weights,
                 protocol="clean", reference=False, out=False)
    assert refpkgs.measure("clean / inception", "FID (PNG folders, cleanfid.fid.compute_fid)", r["metrics"]["fid"],
                           ref_fid, 1e-5) < 1e-5
    assert refpkgs.installed_version("clean-fid") == refpkgs.VERSIONS["clean-fid"]     # cleanfid has no __version__


@pytest.mark.parametrize("protocol", list(protocols.PROTOCOLS))
@pytest.mark.parametrize("features", ["digits", "raw"])
def test_metric_conventions_of_each_protocol_on_digits_and_raw_features(protocol, features):
    """digits / raw have no resize: a protocol there is its metric conventions, compared with the reference's
    own functions on ganforge's features."""
    if features == "digits":
        ev = Evaluation(kind="image", shape=(1, 8, 8), ref="digits", split="test", metrics=["fid"], features="digits",
                        protocol=protocol)
        f = ev.reference_scan(0)["features"].double()
        x, y = f[:150], f[150:300]
    else:
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(150, 5, generator=g, dtype=torch.float64), torch.randn(150, 5, generator=g,
                                                                                 dtype=torch.float64) + 0.3
    ours_fid = stats.fid(x, y)
    pair = f"{protocol} / {features}"
    if protocol == "pytorch-fid":
        refpkgs.require("torch-fidelity")
        refpkgs.require("pytorch-fid")
        from pytorch_fid import fid_score as ref
        xs, ys = x.numpy(), y.numpy()
        want = ref.calculate_frechet_distance(xs.mean(0), np.cov(xs, rowvar=False), ys.mean(0), np.cov(ys, rowvar=False))
        assert refpkgs.measure(pair, "FID (calculate_frechet_distance)", ours_fid, want, 1e-6) < 1e-6   # scipy sqrtm
    elif protocol == "tf":
        tfid = refpkgs.require("torch-fidelity")
        from torch_fidelity import metric_fid, metric_kid, metric_prc
        st = [metric_fid.fid_features_to_statistics(t) for t in (x, y)]
        want = metric_fid.fid_statistics_to_metric(*st, verbose=False)["frechet_inception_distance"]
        assert refpkgs.measure(pair, "FID (fid_statistics_to_metric)", ours_fid, want, 1e-6) < 1e-6
        kid = stats.kid(x, y, subsets=20, subset_size=50, seed=3, sampler=protocols.get("tf").kid_sampler)
        ref = metric_kid.kid_features_to_metric(x, y, kid_subsets=20, kid_subset_size=50, rng_seed=3, verbose=False)
        assert refpkgs.measure(pair, "KID (kid_features_to_metric)", kid[0], ref["kernel_inception_distance_mean"],
                               1e-9) <= 1e-9
        pr = stats.precision_recall(y, x, k=3)
        ref = metric_prc.prc_features_to_metric(x.float(), y.float(), prc_neighborhood=3, prc_batch_size=1000,
                                                verbose=False, save_cpu_ram=False)
        # torch-fidelity averages in float32: the same counts, its share rounded to float32
        assert refpkgs.measure(pair, "precision", pr["precision"], ref["precision"], 1e-7, "abs") <= 1e-7
        assert refpkgs.measure(pair, "recall", pr["recall"], ref["recall"], 1e-7, "abs") <= 1e-7
        assert tfid.__version__ == refpkgs.VERSIONS["torch-fidelity"]
    else:
        refpkgs.require("torch-fidelity")
        refpkgs.require("clean-fid")
        from cleanfid import fid as cfid
        xs, ys = x.numpy(), y.numpy()
        ref = cfid.frechet_distance(xs.mean(0), np.cov(xs, rowvar=False), ys.mean(0), np.cov(ys, rowvar=False))
        assert refpkgs.measure(pair, "FID (cleanfid frechet_distance)", ours_fid, ref, 1e-6) < 1e-6
        # subsets of all 150 are the whole sets in another order: clean-fid's unseeded draws do not matter
        kid = stats.kid(x, y, subsets=3, subset_size=150)[0]
        want = cfid.kernel_distance(ys, xs, num_subsets=3, max_subset_size=150)
        assert refpkgs.measure(pair, "KID (cleanfid kernel_distance)", kid, want, 1e-9) <= 1e-9
    prdc = refpkgs.require("prdc")
    ref = prdc.compute_prdc(y.numpy(), x.numpy(), nearest_k=3)
    dc = stats.density_coverage(y, x, k=3)
    assert refpkgs.measure(pair, "density (prdc)", dc["density"], ref["density"], 1e-12) <= 1e-12
    assert refpkgs.measure(pair, "coverage (prdc)", dc["coverage"], ref["coverage"], 0.0, "abs") == 0
