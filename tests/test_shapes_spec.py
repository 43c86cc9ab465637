"""The `shapes` data spec: sizes, splits, determinism, labels and attributes, resolution, variants."""
import json

import pytest
import torch

from ganforge.data import resolve
from ganforge.data.shapes import ATTRIBUTES, KINDS, attribute_labels
from ganforge.data.specs_shapes import SPLITS, load_shapes
from ganforge.errors import GanforgeError
from ganforge.registry import DATASETS


@pytest.fixture(scope="module")
def test16():
    return resolve("shapes:16", split="test")


def test_spec_gives_the_test_split_at_the_asked_resolution(test16):
    data, info = test16
    assert data.x.dtype == torch.uint8 and tuple(data.x.shape) == (SPLITS["test"][0], 3, 16, 16)
    assert info.kind == "image" and info.shape == (3, 16, 16) and info.spec == "shapes:16"
    assert info.num_classes == len(KINDS) and info.class_names == list(KINDS)
    assert info.extra["attributes"] == {k: list(v) for k, v in ATTRIBUTES.items()}
    json.dumps(info.to_dict())                       # stored in config.json


def test_labels_and_attributes_come_from_the_rendered_attributes(test16):
    data, info = test16
    assert len(data.attrs) == len(data) and data.attributes.shape == (len(data), len(ATTRIBUTES))
    labels = attribute_labels(data.attrs)
    for col, name in enumerate(info.extra["attributes"]):
        assert torch.equal(data.attributes[:, col], torch.from_numpy(labels[name]))
    assert [KINDS[k] for k in data.y[:20]] == [a["kind"] for a in data.attrs[:20]]
    assert set(data.y.tolist()) == {0, 1, 2}


def test_batches_carry_attributes_and_images_in_minus_one_one(test16):
    data, _ = test16
    idx = torch.tensor([3, 0, 7])
    b = data.batch(idx)
    assert torch.equal(b["attributes"], data.attributes[idx]) and torch.equal(b["label"], data.y[idx])
    assert b["real"].shape == (3, 3, 16, 16) and b["real"].min() >= -1 and b["real"].max() <= 1
    assert torch.equal(b["real"], data.x[idx].float() / 127.5 - 1)


def test_deterministic_prefix_and_splits_differ(test16):
    data, _ = test16
    small, _ = load_shapes(16, "test", n=40)
    again, _ = load_shapes(16, "test", n=40)
    train, _ = load_shapes(16, "train", n=40)
    assert torch.equal(small.x, again.x) and torch.equal(small.x, data.x[:40])
    assert small.attrs == data.attrs[:40]
    assert not torch.equal(train.x, small.x)


def test_train_split_has_20000_images():
    data, info = resolve("shapes:8")
    assert len(data) == 20_000 == SPLITS["train"][0] and info.shape == (3, 8, 8)


def test_default_is_32_px_and_a_config_resolution_renders_sharp_at_that_size():
    assert load_shapes(split="test", n=2)[1].shape == (3, 32, 32)
    data, info = resolve("shapes:64", split="test", resolution=16)
    assert info.shape == (3, 16, 16)
    assert torch.equal(data.x[:30], load_shapes(16, "test", n=30)[0].x)   # rendered at 16, not shrunk from 64


def test_channels_go_through_the_shared_conversion():
    data, info = resolve("shapes:8", split="test", channels=1)
    assert info.shape == (1, 8, 8) and data.x.shape[1] == 1


def test_variants_are_delegated_to_their_registered_loader(monkeypatch):
    seen = {}

    def probe(arg, **kw):
        seen.update(arg=arg, **kw)
        return load_shapes(8, kw["split"], n=4, spec="shapes:probe")

    monkeypatch.setitem(DATASETS, "shapes:probe", probe)
    data, info = resolve("shapes:probe:64", split="test")
    assert seen["arg"] == "64" and seen["split"] == "test" and len(data) == 4 and info.spec == "shapes:probe"


@pytest.mark.parametrize("spec, words", [("shapes:4", "shapes:32"), ("shapes:nope", "variant"),
                                          ("shapes:0", "resolution")])
def test_bad_specs_name_the_fix(spec, words):
    with pytest.raises(GanforgeError, match=words):
        resolve(spec, split="test")


def test_bad_split_and_count():
    with pytest.raises(GanforgeError, match="splits"):
        load_shapes(16, "val")
    with pytest.raises(GanforgeError, match="n=0"):
        load_shapes(16, "test", n=0)
