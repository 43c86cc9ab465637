"""Captions of procedural shapes (ganforge.data.captions): phrasing, parsing back, vocabulary."""
import json

import numpy as np
import pytest

from ganforge.data.captions import Vocabulary, caption, parse_attributes, tokenize
from ganforge.data.shapes import render_shapes
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
