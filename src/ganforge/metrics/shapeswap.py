"""The shapeswap criterion: did a translator of `shapeswap:A2B` (data/shapeswap.py) change the shape's kind
and keep its colour, background, size and position? Scored on `shapeswap_test_set`, whose B attributes say
what each translation should show (CycleGAN, arXiv:1703.10593, on an offline task with a known answer)."""
from __future__ import annotations

import numpy as np
import torch

from ..data.shapes import PALETTE, draw


def shapeswap_scores(fake: torch.Tensor, attrs: list[dict]) -> dict[str, float]:
    """How well translations of the test set changed the shape's kind and kept everything else.

    fake: N x 3 x H x W in [-1, 1], translations of shapeswap_test_set's A; attrs: its B attributes. Each
    pixel is labelled with its nearest palette colour; the true target render and the source render of
    the same attributes say what each pixel should be.
    - kind_acc: share of images whose pixels agree with the target render on the majority of the pixels
      where the two kinds differ (a circle's corners for circles -> squares). The identity map scores 0,
      and so does noise, which rarely has the right colour there.
    - color_acc / background_acc: share of the pixels where both renders show the shape colour (resp. the
      background) that have that colour: colour, position and size kept.
    - swap_acc: share of images that changed kind and kept >= 90% of both their shape-colour and their
      background pixels: the whole task done (junk that happens to have the right colour in the corners
      counts for kind_acc, not here).
    - l1: mean |fake - true target| in [-1, 1] units.
    """
    x = fake.detach().float().cpu().clamp(-1, 1)
    res = x.shape[-1]
    palette = torch.tensor(list(PALETTE.values()), dtype=torch.float32) / 127.5 - 1   # K x 3
    label = lambda img: (img.permute(1, 2, 0)[..., None, :] - palette).pow(2).sum(-1).argmin(-1)  # noqa: E731
    def render(attr: dict) -> torch.Tensor:
        return torch.from_numpy(draw(attr, res).astype(np.float32)).permute(2, 0, 1) / 127.5 - 1

    kind_ok, swap_ok, l1, hits = 0, 0, 0.0, {"color": [0, 0], "background": [0, 0]}
    for img, attr in zip(x, attrs):
        target, source = render(attr), render(dict(attr, kind=attr["source_kind"]))
        l1 += (img - target).abs().mean().item()
        got, want_t = label(img), label(target)
        differ = (target - source).abs().amax(0) > 0.5          # clearly different between the two kinds
        kind = bool(differ.any() and (got[differ] == want_t[differ]).float().mean() > 0.5)
        kept = True
        for key, (h, n) in hits.items():
            k = list(PALETTE).index(attr[key])
            same = (want_t == k) & (label(source) == k) & ((target - source).abs().amax(0) < 1e-6)
            hit = int((got[same] == k).sum())
            hits[key] = [h + hit, n + int(same.sum())]
            kept &= hit >= 0.9 * int(same.sum())
        kind_ok, swap_ok = kind_ok + kind, swap_ok + (kind and kept)
    n = max(len(attrs), 1)
    return {"kind_acc": kind_ok / n, "color_acc": hits["color"][0] / max(hits["color"][1], 1),
            "background_acc": hits["background"][0] / max(hits["background"][1], 1), "swap_acc": swap_ok / n,
            "l1": l1 / n}
