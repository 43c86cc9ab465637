"""Synthetic 8x8 digits rendered from the TrueType fonts that ship with matplotlib.

An offline stand-in for "more digits" with the framing of scikit-learn's `load_digits` (the UCI
optdigits set, Alpaydin & Kaynak 1998): there each digit was binarised, size-normalised into a 32x32
bitmap (height fills the box, aspect kept, centred), and every non-overlapping 4x4 block was replaced
by its count of "on" pixels, giving integers 0..16, white digit on black. We reproduce exactly that
pipeline on a font glyph that was first perturbed (font, rotation, scale, stroke thickness, width,
shift), so the rendered digits land in the same value range and frame as the real ones.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import GanforgeError

_GLYPH_PX = 64        # font size of the master rendering at 8x8 (glyph ~47 px tall, framed into 32)
_BLOCK = 4            # optdigits: one output pixel = count of "on" pixels in a 4x4 block (0..16)
# Fonts whose digit code points hold symbols (cmex/cmsy), old-style figures with descenders (cmmi),
# placeholder boxes (LastResort) or nothing (Display, NonUni, size variants of STIX).
_SKIP = ("cmex", "cmsy", "cmmi", "lastresort", "display", "nonuni", "stixsiz")
# Slanted faces; their slant (DejaVu Oblique ~11 deg, tan ~0.2) is undone because the optdigits writers
# wrote mostly upright: de-slanting raises nearest-centroid agreement with real digits.
_ITALIC = ("oblique", "italic", "ita.", "cmti")
_ITALIC_SHEAR = -0.2


def font_paths() -> list[str]:
    """Text fonts in matplotlib's mpl-data/fonts/ttf that draw ten distinct digits, sorted by name."""
    import matplotlib

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    names = sorted(f for f in os.listdir(folder)
                   if f.lower().endswith(".ttf") and not any(s in f.lower() for s in _SKIP))
    paths = [os.path.join(folder, f) for f in names]
    # a second, name-independent guard: a usable font draws 10 non-empty, pairwise different digits
    paths = [p for p in paths if _draws_digits(ImageFont.truetype(p, 32))]
    if not paths:
        raise GanforgeError(f"no usable digit fonts found in {folder}; reinstall matplotlib "
                            f"(`pip install --force-reinstall matplotlib`)")
    return paths


def _draws_digits(font) -> bool:
    glyphs = set()
    for ch in "0123456789":
        im = Image.new("L", (64, 64))
        ImageDraw.Draw(im).text((8, 8), ch, font=font, fill=255)
        if im.getbbox() is None:
            return False
        glyphs.add(im.tobytes())
    return len(glyphs) == 10


def _is_italic(path: str) -> bool:
    return any(s in os.path.basename(path).lower() for s in _ITALIC)


def _glyph(font, ch: str, stroke: int, angle: float, shear: float) -> Image.Image:
    """White glyph on black, sheared (x += shear * y; < 0 leans it left), rotated by `angle` degrees
    counter-clockwise, cropped to its ink. Transforms act on the cropped glyph: 10x cheaper."""
    size = 2 * font.size
    im = Image.new("L", (size, size))
    ImageDraw.Draw(im).text((size // 2, size // 2), ch, font=font, fill=255, anchor="mm",
                            stroke_width=stroke, stroke_fill=255)
    im = im.crop(im.getbbox())
    w, h = im.size
    # output x in [0, w + |shear| h) reads input x = out_x + shear * y - max(shear, 0) * h
    im = im.transform((w + int(np.ceil(abs(shear) * h)), h), Image.AFFINE,
                      (1, shear, -max(shear, 0.0) * h, 0, 1, 0), resample=Image.BILINEAR)
    im = im.rotate(angle, resample=Image.BILINEAR, expand=True)
    return im.crop(im.getbbox())


def _frame(glyph: Image.Image, resolution: int, scale: float, stretch: float,
           shift: tuple[float, float]) -> np.ndarray:
    """optdigits framing: height fills the box (times `scale`), aspect kept (times `stretch`),
    centred (plus `shift`, in output pixels), binarised, then 4x4 on-pixel counts."""
    box = resolution * _BLOCK
    w, h = glyph.size
    new_h = max(1, round(box * scale))
    new_w = int(np.clip(round(w * new_h / h * stretch), 1, box))
    # resize at full precision and threshold afterwards: the binarisation of the original pipeline
    small = np.asarray(glyph.resize((new_w, new_h), Image.LANCZOS), dtype=np.float32) / 255.0
    canvas = np.zeros((box, box), np.float32)
    x0 = int(np.clip(round((box - new_w) / 2 + shift[0] * _BLOCK), 0, box - new_w))
    y0 = int(np.clip(round((box - new_h) / 2 + shift[1] * _BLOCK), 0, box - new_h))
    canvas[y0:y0 + new_h, x0:x0 + new_w] = small
    on = canvas > 0.5
    return on.reshape(resolution, _BLOCK, resolution, _BLOCK).sum(axis=(1, 3)).astype(np.float32)


def render_font_digits(n: int, seed: int = 0, resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """n digits: (images float32 N x R x R with integer values 0..16, labels int64), balanced classes
    (counts differ by at most one), deterministic in `seed`."""
    if n < 0:
        raise GanforgeError(f"render_font_digits: n={n} must be >= 0")
    if resolution < 4:
        raise GanforgeError(f"render_font_digits: resolution={resolution} must be >= 4 "
                            f"(load_digits uses 8)")
    rng = np.random.default_rng(seed)
    paths = font_paths()
    zoom = max(1, resolution // 8)                       # keep the master larger than the 4x box
    fonts = [ImageFont.truetype(p, _GLYPH_PX * zoom) for p in paths]
    base_shear = [_ITALIC_SHEAR if _is_italic(p) else 0.0 for p in paths]
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    images = np.zeros((n, resolution, resolution), np.float32)
    for i, label in enumerate(labels):
        k = int(rng.integers(len(fonts)))
        stroke = int(rng.integers(0, 3)) * zoom          # extra outline (pen width), px per 64 px of font
        shear = base_shear[k] + float(rng.uniform(-0.15, 0.15))  # slant, dx/dy
        angle = float(rng.uniform(-5.0, 5.0))            # degrees
        scale = float(rng.uniform(0.92, 1.0))            # of the box height (optdigits fills it)
        stretch = float(rng.uniform(0.8, 1.1))           # width / font's width, aspect jitter
        shift = tuple(rng.uniform(-0.4, 0.4, size=2))    # output pixels
        glyph = _glyph(fonts[k], str(label), stroke, angle, shear)
        images[i] = _frame(glyph, resolution, scale, stretch, shift)
    return images, labels
