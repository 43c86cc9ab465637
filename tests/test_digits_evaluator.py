"""The bundled digits evaluator: shipped weights, resize protocol, digit score, PacGAN stacked modes."""
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ganforge.errors import GanforgeError
from ganforge.metrics import digits as dm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evaluator():
    torch.set_num_threads(1)
    return dm.load_digits_evaluator()


@pytest.fixture(scope="module")
def test_split():
    """The data module's rule: sample i of load_digits() is test iff i % 5 == 0; v in 0..16 -> v / 8 - 1."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = torch.arange(len(d.target))
    keep = idx % 5 == 0
    images = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)[keep] / 8.0 - 1.0
    return images, torch.tensor(d.target)[keep]


def shipped_info() -> dict:
    return json.loads(dm.weights_path().with_name("digits_cnn.json").read_text())


def test_shipped_weights_reach_test_accuracy(evaluator, test_split):
    images, labels = test_split
    assert images.shape == (360, 1, 8, 8) and not evaluator.training
    acc = dm.class_accuracy(evaluator, images, labels)
    assert acc >= 0.97
    info = shipped_info()
    assert (info["num_train"], info["num_test"]) == (1437, 360)
    assert abs(acc - info["test_accuracy"]) <= 1 / 360 + 1e-9  # the json reports what the file does


def test_json_sha256_matches_file():
    digest = hashlib.sha256(dm.weights_path().read_bytes()).hexdigest()
    assert shipped_info()["sha256"] == digest == dm.evaluator_sha256()


def test_features_and_logits_shapes(evaluator, test_split):
    x = test_split[0][:5]
    feats, logits = evaluator.features(x), evaluator.logits(x)
    assert feats.shape == (5, dm.FEATURE_DIM) and 64 <= dm.FEATURE_DIM <= 128
    assert logits.shape == (5, 10) and torch.isfinite(feats).all()
    assert torch.equal(evaluator(x), logits)


@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsampled_real_digits_still_classified(evaluator, test_split, size, mode):
    images, labels = test_split
    big = F.interpolate(images, size=(size, size), mode=mode)
    assert evaluator.features(big).shape == (len(labels), dm.FEATURE_DIM)
    assert dm.class_accuracy(evaluator, big, labels) >= 0.95


def test_area_resize_inverts_integer_nearest_upsampling(test_split):
    x = test_split[0][:4]
    assert torch.allclose(dm.resize_to_digits(F.interpolate(x, scale_factor=4, mode="nearest")), x)
    assert dm.resize_to_digits(torch.zeros(2, 1, 5, 7)).shape == (2, 1, 8, 8)  # smaller: bilinear up


def test_rejects_three_channels_with_a_pointer_to_stacked_modes(evaluator):
    with pytest.raises(GanforgeError, match="stacked_modes"):
        evaluator.logits(torch.zeros(2, 3, 8, 8))


def test_streaming_batch_size_does_not_change_results(evaluator, test_split):
    images, labels = test_split
    assert dm.class_accuracy(evaluator, images, labels, batch_size=7) == dm.class_accuracy(evaluator, images, labels)
    assert dm.digit_score(evaluator, images, batch_size=13) == pytest.approx(dm.digit_score(evaluator, images))


def test_digit_score_bounds(evaluator, test_split):
    images = test_split[0]
    mean, std = dm.digit_score(evaluator, images, splits=4)
    assert 8.0 < mean <= 10.0 and std >= 0.0  # real digits: confident and spread over the 10 classes
    one = images[:1].repeat(40, 1, 1, 1)  # p(y|x) == p(y): KL 0, score exp(0) = 1
    assert dm.digit_score(evaluator, one, splits=4) == pytest.approx((1.0, 0.0), abs=1e-9)
    with pytest.raises(GanforgeError):
        dm.digit_score(evaluator, images[:3], splits=10)


def test_kl_to_uniform_closed_forms():
    assert dm._kl_to_uniform(torch.full((1000,), 3)) == pytest.approx(0.0, abs=1e-12)
    one_mode = torch.zeros(1000, dtype=torch.long)
    one_mode[123] = 50
    assert dm._kl_to_uniform(one_mode) == pytest.approx(math.log(1000))
    half = torch.zeros(1000, dtype=torch.long)
    half[::2] = 7  # uniform over 500 of the 1000 modes
    assert dm._kl_to_uniform(half) == pytest.approx(math.log(2))


def stacked(images, labels, n, seed):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(labels), (n, 3), generator=g)
    return images[idx].squeeze(2), labels[idx]  # N x 3 x 8 x 8 (channel c = digit c), N x 3


def test_stacked_modes_count_distinct_label_triples(evaluator, test_split):
    images, labels = test_split
    # keep the digits the evaluator gets right: this checks the counting, not the classifier
    correct = evaluator.logits(images).argmax(1) == labels
    x, triples = stacked(images[correct], labels[correct], 600, seed=0)
    expected_ids = triples[:, 0] * 100 + triples[:, 1] * 10 + triples[:, 2]
    assert torch.equal(dm._mode_ids(evaluator, x, batch_size=64), expected_ids)  # channel 0 = hundreds
    hist = torch.bincount(expected_ids, minlength=1000)
    result = dm.stacked_modes(evaluator, F.interpolate(x, size=(32, 32), mode="nearest"))
    assert result["modes"] == len({tuple(t) for t in triples.tolist()}) == int((hist > 0).sum())
    assert result["kl"] == pytest.approx(dm._kl_to_uniform(hist))
    assert 0 < result["modes"] < 1000 and result["kl"] > 0


def test_stacked_kl_splits_into_channel_kl_and_dependence(evaluator, test_split):
    images, labels = test_split
    correct = evaluator.logits(images).argmax(1) == labels
    x, triples = stacked(images[correct], labels[correct], 2000, seed=1)
    x[:, 2], triples[:, 2] = x[:, 1], triples[:, 1]     # channel 2 copies channel 1: dependent channels
    x[:, 0], triples[:, 0] = x[0, 0], triples[0, 0]     # channel 0 always the same digit: all its KL is log 10
    r = dm.stacked_modes(evaluator, x)
    d1 = torch.bincount(triples[:, 1], minlength=10).double() / len(triples)
    assert r["channel_kl"][0] == pytest.approx(math.log(10))
    assert r["channel_kl"][1] == r["channel_kl"][2] == pytest.approx(dm._kl_to_uniform(d1))
    assert r["kl"] == pytest.approx(sum(r["channel_kl"]) + r["dependence"])
    entropy = -(d1[d1 > 0] * d1[d1 > 0].log()).sum().item()
    assert r["dependence"] >= entropy - 1e-9     # total correlation = H(d1) + I(d0; d1) when d2 = d1


def test_stacked_modes_single_mode(evaluator, test_split):
    images, labels = test_split
    i = int(torch.nonzero(evaluator.logits(images).argmax(1) == labels)[0])
    x = images[i:i + 1].repeat(10, 3, 1, 1)
    assert dm.stacked_modes(evaluator, x) == {"modes": 1, "kl": pytest.approx(math.log(1000)),
                                              "channel_kl": [pytest.approx(math.log(10))] * 3,
                                              "dependence": pytest.approx(0.0, abs=1e-9)}
    with pytest.raises(GanforgeError, match="N x 3"):
        dm.stacked_modes(evaluator, images[:4])


@pytest.mark.slow
def test_training_script_reproduces_shipped_file(tmp_path):
    """Bit-identical on the machine/torch that produced the file (float kernels may differ on other CPUs)."""
    subprocess.run([sys.executable, str(ROOT / "scripts/train_digits_evaluator.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    retrained = hashlib.sha256((tmp_path / "digits_cnn.safetensors").read_bytes()).hexdigest()
    assert retrained == dm.evaluator_sha256()
