"""Captions of procedural shapes (ganforge.data.captions): phrasing, parsing back, vocabulary."""
import itertools
import json
from collections import Counter

import numpy as np
import pytest
import torch

from ganforge.data import resolve
from ganforge.data.captions import Vocabulary, caption, near_miss, parse_attributes, tokenize
from ganforge.data.shapes import ATTRIBUTES, render_shapes
from ganforge.errors import GanforgeError

FIELDS = ("kind", "color", "background", "size", "position")


@pytest.fixture(scope="module")
def attrs():
    return render_shapes(1500, resolution=16, seed=0)[1]


@pytest.fixture(scope="module")
def captions(attrs):
    rng = np.random.default_rng(0)
    return [caption(a, rng) for a in attrs]


def test_same_rng_same_captions(attrs, captions):
    rng = np.random.default_rng(0)
    assert [caption(a, rng) for a in attrs[:50]] == captions[:50]
    rng = np.random.default_rng(1)
    assert [caption(a, rng) for a in attrs[:50]] != captions[:50]


def test_parse_agrees_with_the_attributes_mentioned(attrs, captions):
    mentioned = {f: 0 for f in FIELDS}
    for a, text in zip(attrs, captions):
        found = parse_attributes(text)
        assert {f: a[f] for f in found} == found, (text, a)
        assert "kind" in found and "color" in found, text       # always said
        for f in found:
            mentioned[f] += 1
    n = len(attrs)
    # optional fields are mostly said, sometimes not
    for f in ("size", "position", "background"):
        assert 0.6 * n < mentioned[f] < 0.97 * n, (f, mentioned[f])


def test_phrasing_and_word_order_vary(attrs):
    rng = np.random.default_rng(3)
    texts = {caption(attrs[0], rng) for _ in range(200)}
    assert len(texts) > 40
    # the colour word does not always come first, nor always right before the kind
    first = {tokenize(t)[0] for t in texts}
    assert len(first) >= 4
    assert all(not t.startswith("a orange") and " a orange" not in t for t in texts)


@pytest.mark.parametrize("text, expected", [
    ("a small red circle on a blue background",
     {"size": "small", "color": "red", "kind": "circle", "background": "blue"}),
    ("blue square, large, top left", {"color": "blue", "kind": "square", "size": "large",
                                      "position": "top left"}),
    ("there is a big yellow triangle in the center of a black image",
     {"size": "large", "color": "yellow", "kind": "triangle", "position": "center",
      "background": "black"}),
    ("a green disk in the lower-right corner against purple",
     {"color": "green", "kind": "circle", "position": "bottom right", "background": "purple"}),
    ("a dog", {}),
])
def test_parse_hand_written(text, expected):
    assert parse_attributes(text) == expected


def test_vocabulary_encode_decode_and_json_round_trip(captions):
    vocab = Vocabulary.build(captions[:1000])
    assert vocab.itos[:2] == ["<pad>", "<unk>"] and vocab.stoi["<pad>"] == 0
    text = captions[1200]
    ids = vocab.encode(text, 32)
    assert len(ids) == 32 and ids[len(tokenize(text)):] == [0] * (32 - len(tokenize(text)))
    assert vocab.decode(ids) == " ".join(tokenize(text))
    assert vocab.encode(text, 3) == ids[:3]
    assert vocab.encode("a zebra circle", 4) == [vocab.stoi["a"], 1, vocab.stoi["circle"], 0]
    again = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again.itos == vocab.itos and again.encode(text, 32) == ids
    # every word the caption generator uses is seen in 1,000 captions: no <unk> on held-out ones
    assert all(1 not in vocab.encode(t, 40) for t in captions[1000:])


def test_vocabulary_rejects_bad_input():
    with pytest.raises(GanforgeError, match="to_dict"):
        Vocabulary.from_dict({"itos": ["a", "b"]})
    with pytest.raises(GanforgeError, match="max_len"):
        Vocabulary.build(["a b"]).encode("a", 0)


def test_near_miss_is_wrong_about_exactly_one_attribute_and_says_it():
    rng = np.random.default_rng(3)
    changed = Counter()
    for attr in [dict(zip(ATTRIBUTES, values)) for values in itertools.product(*ATTRIBUTES.values())
                 if values[1] != values[2]][::37]:
        for _ in range(4):
            text = near_miss(attr, ATTRIBUTES, rng)
            found = parse_attributes(text)
            wrong = [k for k, v in found.items() if attr[k] != v]
            assert len(wrong) == 1, (attr, text, found)
            assert found.get("color") != found.get("background")
            changed[wrong[0]] += 1
    # each of the five attributes is the one changed, about a fifth of the time each
    assert set(changed) == set(ATTRIBUTES) and min(changed.values()) > 0.1 * sum(changed.values())


def test_captions_batch_pairs_each_caption_with_its_own_near_miss():
    data, info = resolve("shapes:captions:40", resolution=8)
    assert info.extra["near_miss"]
    torch.manual_seed(0)
    b = data.batch(torch.arange(40))
    v = Vocabulary.from_dict({"format": 1, "itos": info.extra["vocab"]})
    for i in range(40):
        attr = data.attrs[i]
        right, wrong = parse_attributes(v.decode(b["text"][i].tolist())), parse_attributes(v.decode(b["wrong"][i].tolist()))
        assert all(attr[k] == val for k, val in right.items())
        assert sum(attr[k] != val for k, val in wrong.items()) == 1
