"""`fonts`, `fonts:N`: synthetic 8x8 digits rendered from matplotlib's fonts (data/fonts.py), labelled.

The synthetic side of SimGAN (Shrivastava et al. 2017, arXiv:1612.07828: refine synthetic images toward
real ones) and the labelled source domain of DANN (Ganin & Lempitsky 2015, arXiv:1409.7495: fonts ->
real handwritten `digits`). Pixels follow scikit-learn's `load_digits` (0..16, white on black) and are
stored the way the `digits` spec stores them (round(v / 16 * 255) as uint8), so the two domains share
one value scale. The train split is N images (default 2,000) rendered from seed 0; the test split is
N // 4 from seed 1, so the splits never share a draw. Those families read it (or any other image spec)
through `data.base.Domain`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo
from .fonts import render_font_digits

DEFAULT_TRAIN = 2_000
SEEDS = {"train": 0, "test": 1}


def load_fonts(n: int = DEFAULT_TRAIN, split: str = "train", spec: str = "fonts") -> tuple[Data, DataInfo]:
    """Rendered font digits: Data(uint8 N x 1 x 8 x 8, int64 labels) and its DataInfo (10 classes)."""
    if split not in SEEDS:
        raise GanforgeError(f"fonts has splits {', '.join(SEEDS)}; got {split!r}")
    count = n if split == "train" else max(10, n // 4)
    images, labels = render_font_digits(count, seed=SEEDS[split])
    x = torch.from_numpy(np.round(images / 16.0 * 255.0).astype(np.uint8))[:, None]
    y = torch.from_numpy(labels)
    info = DataInfo(spec, "image", tuple(x.shape[1:]), num_classes=10, class_names=[str(k) for k in range(10)],
                    extra={"source": "matplotlib fonts", "render_seed": SEEDS[split]})
    return Data(x, y), info


@DATASETS.register("fonts")
def _fonts(arg, *, split, resolution, channels, skip_bad, download):
    n = DEFAULT_TRAIN
    if arg:
        if not arg.isdigit() or int(arg) < 10:
            raise GanforgeError(f"fonts:{arg} is not a count; use fonts (2,000 digits) or fonts:N with N >= 10")
        n = int(arg)
    return load_fonts(n, split, spec="fonts" + (f":{arg}" if arg else ""))

