"""Captions for the procedural shapes (shapes.py), a vocabulary, and a caption parser.

Text-to-image GANs (Reed et al., arXiv:1605.05396, GAN-CLS: D scores (image, text) pairs) need
captions; ours are generated from the known attributes with varied phrasing and word order, and may
leave out size, position or background (kind and colour are always said). `parse_attributes` reads
back exactly the attributes a caption mentions, so a text-to-image result can be scored by
classifying the generated image and comparing with what the caption asked for.

Parsing rule that the templates respect: a colour word names the background when the next word is a
background noun (background, backdrop, canvas, image) or the previous word is "on"/"against"
(optionally "on a"); any other colour word names the shape.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

from ..errors import GanforgeError

COLORS = ("red", "green", "blue", "yellow", "white", "black", "purple", "orange")
# word -> attribute value; the first word of each value is its canonical spelling
_KIND_WORDS = {"circle": "circle", "disk": "circle", "disc": "circle",
               "square": "square", "box": "square", "triangle": "triangle"}
_SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small",
               "large": "large", "big": "large", "huge": "large"}
_VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_CENTER_WORDS = ("center", "centre", "middle")
_BG_NOUNS = ("background", "backdrop", "canvas", "image")
_TOKEN = re.compile(r"[a-z]+")
_SAID_AS = {"size": "size", "position": "where", "background": "bg"}   # attribute -> the surface word that says it


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; punctuation and hyphens separate words ("top-left" -> top, left)."""
    return _TOKEN.findall(text.lower())


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _words(attr: dict, rng: np.random.Generator, say: str | None = None) -> dict:
    """Surface words for one caption; None marks an attribute the caption leaves out (never `say`)."""
    kinds = [w for w, v in _KIND_WORDS.items() if v == attr["kind"]]
    sizes = [w for w, v in _SIZE_WORDS.items() if v == attr["size"]]
    w = {"kind": _pick(rng, kinds), "color": attr["color"], "bg": attr["background"],
         "size": _pick(rng, sizes)}
    if attr["position"] == "center":
        w["where"] = _pick(rng, ("in the center", "in the centre", "in the middle", "at the center"))
        w["where_bare"] = _pick(rng, ("center", "centre", "middle"))
    else:
        vertical, horizontal = attr["position"].split()
        v = _pick(rng, [k for k, val in _VERTICAL.items() if val == vertical])
        corner = _pick(rng, (f"{v} {horizontal}", f"{v}-{horizontal}", f"{v} {horizontal} corner"))
        w["where"] = _pick(rng, ("in the", "at the")) + " " + corner
        w["where_bare"] = corner
    # kind and colour are always said; the rest is dropped now and then so models see partial text
    for key, keep in (("size", 0.8), ("where", 0.8), ("bg", 0.85)):
        if rng.random() > keep and _SAID_AS.get(say) != key:
            w[key] = None
            if key == "where":
                w["where_bare"] = None
    return w


def _j(*parts) -> str:
    return " ".join(p for p in parts if p)


def _bg_phrase(w, rng) -> str | None:
    if w["bg"] is None:
        return None
    return _pick(rng, (f"on a {w['bg']} background", f"against a {w['bg']} backdrop",
                       f"on {w['bg']}", f"on a {w['bg']} canvas"))


# Each template takes the surface words and returns one sentence; they differ in word order.
def _t_plain(w, rng):
    return _j("a", w["size"], w["color"], w["kind"], w["where"], _bg_phrase(w, rng))


def _t_there_is(w, rng):
    tail = (f"{w['where']} of a {w['bg']} image" if w["where"] and w["bg"]
            else _j(w["where"], _bg_phrase(w, rng)))
    return _j("there is a", w["size"], w["color"], w["kind"], tail)


def _t_list(w, rng):
    parts = [f"{w['color']} {w['kind']}", w["size"], w["where_bare"],
             w["bg"] and f"{w['bg']} background"]
    return ", ".join(p for p in parts if p)


def _t_image_with(w, rng):
    if w["bg"] is None:
        return _j("an image with a", w["size"], w["color"], w["kind"], w["where"])
    return _j("a", w["bg"], _pick(rng, ("image", "canvas")), "with a", w["size"], w["color"],
              w["kind"], w["where"])


def _t_where_first(w, rng):
    head = w["where_bare"] and w["where_bare"] + ":"
    return _j(head, "a", w["size"], w["color"], w["kind"], _bg_phrase(w, rng))


def _t_is(w, rng):
    desc = f"the {w['kind']} is {w['color']}" + (f" and {w['size']}" if w["size"] else "")
    rest = _j("it sits", w["where"], _bg_phrase(w, rng)) if (w["where"] or w["bg"]) else ""
    return desc + (f"; {rest}" if rest else "")


def _t_in_color(w, rng):
    tail = w["bg"] and f"{w['bg']} background"
    return ", ".join(p for p in (_j("a", w["size"], w["kind"], "in", w["color"], w["where"]), tail)
                     if p)


_TEMPLATES = (_t_plain, _t_there_is, _t_list, _t_image_with, _t_where_first, _t_is, _t_in_color)


def caption(attr: dict, rng: np.random.Generator, say: str | None = None) -> str:
    """One caption of a shapes attribute dict (see shapes.py), its phrasing drawn with `rng`; the attribute
    `say` (kind, color, background, size, position) is never left out."""
    w = _words(attr, rng, say)
    text = _TEMPLATES[rng.integers(len(_TEMPLATES))](w, rng)
    return re.sub(r"\ba ([aeiou])", r"an \1", text)     # "a orange" -> "an orange"


def near_miss(attr: dict, values: dict, rng: np.random.Generator) -> str:
    """A caption that is wrong about exactly one attribute of `attr`: one of kind, colour, background, size and
    position (uniformly) takes another of its `values` (shapes.ATTRIBUTES; the shape's colour never equals
    the background), and the caption says it. A matching-aware D (GAN-CLS) shown these as its wrong texts
    must check every attribute: a random other image's caption is almost always wrong about the background
    or colour already, so those are all D needs to look at to reject it."""
    key = _pick(rng, ("kind", "color", "background", "size", "position"))
    taken = {attr[key]} | ({attr["background"]} if key == "color" else
                           {attr["color"]} if key == "background" else set())
    wrong = dict(attr, **{key: _pick(rng, [v for v in values[key] if v not in taken])})
    return caption(wrong, rng, say=key)


def parse_attributes(text: str) -> dict:
    """The attributes a caption mentions: a subset of kind, color, background, size, position."""
    tokens = tokenize(text)
    found = {}
    for i, t in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else ""
        prev2 = tokens[i - 2] if i > 1 else ""
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in COLORS:
            is_bg = (nxt in _BG_NOUNS or prev in ("on", "against")
                     or (prev in ("a", "an") and prev2 in ("on", "against")))
            found.setdefault("background" if is_bg else "color", t)
        elif t in _KIND_WORDS:
            found.setdefault("kind", _KIND_WORDS[t])
        elif t in _SIZE_WORDS:
            found.setdefault("size", _SIZE_WORDS[t])
        elif t in _CENTER_WORDS:
            found.setdefault("position", "center")
        elif t in _VERTICAL and nxt in ("left", "right"):
            found.setdefault("position", f"{_VERTICAL[t]} {nxt}")
    return found


class Vocabulary:
    """Word <-> id table: <pad> = 0, <unk> = 1, then words sorted alphabetically (stable ids)."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words):
        words = [w for w in words if w not in (self.PAD, self.UNK)]
        if len(set(words)) != len(words):
            raise GanforgeError("Vocabulary: duplicate words; build it with Vocabulary.build(texts)")
        self.itos = [self.PAD, self.UNK] + list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, texts, min_count: int = 1) -> "Vocabulary":
        """Every token seen at least `min_count` times in `texts`."""
        counts = Counter(t for text in texts for t in tokenize(text))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        """Token ids, cut to `max_len` and right-padded with 0 to exactly `max_len`."""
        if max_len < 1:
            raise GanforgeError(f"Vocabulary.encode: max_len={max_len} must be >= 1")
        ids = [self.stoi.get(t, 1) for t in tokenize(text)][:max_len]
        return ids + [0] * (max_len - len(ids))

    def decode(self, ids) -> str:
        """Words of the ids, padding dropped."""
        return " ".join(self.itos[i] for i in ids if i != 0)

    def to_dict(self) -> dict:
        return {"format": 1, "itos": list(self.itos)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        ok = isinstance(d, dict) and d.get("format") == 1 and isinstance(d.get("itos"), list)
        if not ok or d["itos"][:2] != [cls.PAD, cls.UNK]:
            raise GanforgeError("Vocabulary.from_dict: not a ganforge vocabulary (needs format=1 and "
                                "itos starting with <pad>, <unk>); save it with Vocabulary.to_dict()")
        return cls(d["itos"][2:])
