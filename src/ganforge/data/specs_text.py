"""`shapes:captions`, `shapes:captions:N`: the `shapes` images, each with several generated captions.

Offline data for text-to-image GANs (Reed et al. 2016, arXiv:1605.05396): the paper pairs every image with
ten human captions; ours come from the known attributes (data/captions.py, varied phrasing and word order,
size / position / background sometimes left out), CAPTIONS_PER_IMAGE per image, drawn with a seed fixed per
split. Images are the `shapes` split (data/specs_shapes.py: train seed 0, test seed 1); N takes the first N.

A batch is {"real": images, "text": token ids (N x max_len, 0-padded), "wrong": token ids}: one of the image's
captions, picked with the global torch RNG (saved in checkpoints, so a resumed run draws the same captions),
and with it a near miss of that caption (captions.near_miss: wrong about exactly one attribute, drawn once per
caption with its own seed), the hard wrong text of text2image's `wrong_text=near_miss`. The vocabulary
is the closed set of words the caption templates can say (built from every attribute combination, not from
the split), so train and test ids agree; it travels in `info.extra["vocab"]` with `max_len`, which lets a
loaded generator encode new text (`encode_captions`).
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo
from .captions import Vocabulary, caption, near_miss, tokenize
from .shapes import ATTRIBUTES

CAPTIONS_PER_IMAGE = 5
MAX_LEN = 20                # longest template caption is 17 tokens
CAPTION_SEEDS = {"train": 100, "test": 101}
NEAR_MISS_SEED = 1000       # added to the split's caption seed: the near misses never move the captions


def caption_vocabulary() -> Vocabulary:
    """Every word the templates emit: 3 captions of every (kind, colour, background, size, position)."""
    rng = np.random.default_rng(0)
    texts = []
    for kind, color, background, size, position in itertools.product(*ATTRIBUTES.values()):
        if color != background:
            attr = {"kind": kind, "color": color, "background": background, "size": size, "position": position}
            texts += [caption(attr, rng) for _ in range(3)]
    return Vocabulary.build(texts)


def encode_captions(texts: list[str], vocab: list[str], max_len: int = MAX_LEN) -> torch.Tensor:
    """Captions -> int64 N x max_len token ids with `vocab` (an itos list, as in info.extra["vocab"])."""
    v = Vocabulary.from_dict({"format": 1, "itos": list(vocab)})
    unknown = sorted({t for text in texts for t in tokenize(text)} - set(v.stoi))
    if any(not tokenize(text) for text in texts):
        raise GanforgeError("empty caption: describe the image, e.g. 'a small red circle on a blue background'")
    if unknown and len(unknown) == len({t for text in texts for t in tokenize(text)}):
        raise GanforgeError(f"no word of the caption is in the vocabulary ({', '.join(unknown[:8])}); "
                            f"known words: {', '.join(v.itos[2:])}")
    return torch.tensor([v.encode(text, max_len) for text in texts], dtype=torch.long)


class CaptionedShapes(Data):
    """uint8 images with K captions each: `captions` (N lists of K strings), `tokens` (N x K x max_len), and a
    near miss of every caption, `wrong` (N x K x max_len)."""

    def __init__(self, x: torch.Tensor, captions: list[list[str]], tokens: torch.Tensor, attrs: list[dict],
                 wrong: torch.Tensor):
        super().__init__(x)
        self.captions, self.tokens, self.attrs, self.wrong = captions, tokens, attrs, wrong

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(idx)
        pick = torch.randint(self.tokens.shape[1], (len(idx),))   # global RNG: restored on resume
        out["text"], out["wrong"] = self.tokens[idx, pick], self.wrong[idx, pick]
        return out


def load_shapes_captions(n: int | None, split: str, resolution: int | None,
                         spec: str = "shapes:captions") -> tuple[CaptionedShapes, DataInfo]:
    from .specs_shapes import DEFAULT_RESOLUTION, load_shapes

    if split not in CAPTION_SEEDS:
        raise GanforgeError(f"shapes:captions has splits {', '.join(CAPTION_SEEDS)}; got {split!r}")
    res = resolution or DEFAULT_RESOLUTION
    shapes, _ = load_shapes(res, split, n=n)
    rng = np.random.default_rng(CAPTION_SEEDS[split])
    captions = [[caption(a, rng) for _ in range(CAPTIONS_PER_IMAGE)] for a in shapes.attrs]
    vocab = caption_vocabulary()
    tokens = torch.tensor([[vocab.encode(t, MAX_LEN) for t in caps] for caps in captions], dtype=torch.long)
    rng = np.random.default_rng(CAPTION_SEEDS[split] + NEAR_MISS_SEED)
    wrong = torch.tensor([[vocab.encode(near_miss(a, ATTRIBUTES, rng), MAX_LEN) for _ in range(CAPTIONS_PER_IMAGE)]
                          for a in shapes.attrs], dtype=torch.long)
    info = DataInfo(spec, "image", tuple(shapes.x.shape[1:]),
                    extra={"vocab": vocab.itos, "max_len": MAX_LEN, "captions_per_image": CAPTIONS_PER_IMAGE,
                           "attributes": {k: list(v) for k, v in ATTRIBUTES.items()}, "near_miss": True})
    return CaptionedShapes(shapes.x, captions, tokens, shapes.attrs, wrong), info


@DATASETS.register("shapes:captions")
def _shapes_captions(arg, *, split, resolution, channels, skip_bad, download):
    # reached through the `shapes` spec: `shapes:captions[:N]` (data/specs_shapes.py dispatches variants)
    if channels not in (None, 3):
        raise GanforgeError("shapes:captions images are RGB: drop channels= (or set channels=3)")
    if arg and (not arg.isdigit() or int(arg) < 1):
        raise GanforgeError(f"shapes:captions:{arg}: N must be a positive count of images, e.g. shapes:captions:2000")
    return load_shapes_captions(int(arg) if arg else None, split, resolution,
                                spec="shapes:captions" + (f":{arg}" if arg else ""))
