"""metrics.attributes.kind_recognition: the "does it draw shapes at all" score of the shapes benchmark."""
import pytest
import torch

from ganforge.data.shapes import render_shapes
from ganforge.data.specs_shapes import load_shapes
from ganforge.errors import GanforgeError
from ganforge.metrics.attributes import kind_recognition, load_attribute_classifier


@pytest.fixture(scope="module")
def model():
    return load_attribute_classifier()


def to_unit(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_real_images_are_recognised_in_their_thirds(model):
    data, _ = load_shapes(32, "test", n=600)
    r = kind_recognition(model, data.x.float() / 127.5 - 1)
    assert r["recognised"] > 0.97
    for kind in ("circle", "square", "triangle"):
        assert 0.25 < r[f"share/{kind}"] < 0.42
    assert sum(r[f"share/{k}"] for k in ("circle", "square", "triangle")) == pytest.approx(1.0)


def test_images_without_a_shape_are_not_recognised(model):
    """The outlier exposure of scripts/train_shapes_attributes.py: a generator's failure modes (flat colour,
    blobs, noise) must not count as shapes. Fresh draws, not the script's own."""
    g = torch.Generator().manual_seed(1234)
    flat = (torch.rand(200, 3, 1, 1, generator=g) * 2 - 1).expand(200, 3, 32, 32)
    noise = torch.rand(200, 3, 32, 32, generator=g) * 2 - 1
    blobs = torch.nn.functional.interpolate(torch.randn(200, 3, 5, 5, generator=g), size=32, mode="bicubic")
    for fake in (flat, noise, blobs.clamp(-1, 1)):
        assert kind_recognition(model, fake)["recognised"] < 0.05


def test_one_kind_only_scores_all_of_that_kind(model):
    images, _ = render_shapes(200, resolution=32, seed=3, kinds=("triangle",))
    r = kind_recognition(model, to_unit(images))
    assert r["share/triangle"] > 0.95 and r["share/circle"] + r["share/square"] < 0.05


def test_threshold_changes_the_count_and_bad_input_is_refused(model):
    data, _ = load_shapes(32, "test", n=300)
    x = data.x.float() / 127.5 - 1
    blurred = torch.nn.functional.avg_pool2d(x, 5, 1, 2)       # soft edges: less sure
    lo, hi = kind_recognition(model, blurred, 0.5), kind_recognition(model, blurred, 0.99)
    assert lo["recognised"] > hi["recognised"]
    with pytest.raises(GanforgeError, match="threshold"):
        kind_recognition(model, x, threshold=1.0)
    with pytest.raises(GanforgeError, match="images"):
        kind_recognition(model, x[:0])
