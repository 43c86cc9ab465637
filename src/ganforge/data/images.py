"""`digits`, `digits:stacked` (scikit-learn's 8x8 digits) and `folder:PATH` (a folder of images), and the image
helpers every image spec shares: reading a file, resizing, channels. Stored as uint8 N x C x H x W."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, need_arg

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")   # gif/tiff: first frame


# ----------------------------------------------------------------------------------- shared image helpers


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float pixel values in 0..255 -> uint8, rounded and clamped."""
    return x.round().clamp(0, 255).to(torch.uint8)


def to_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 numpy N x H x W x C (what the renderers draw) -> a contiguous torch N x C x H x W."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def resize_uint8(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Square uint8 images -> `resolution` (antialiased bilinear when shrinking, bilinear when growing)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    shrink = resolution < x.shape[-1]
    return to_uint8(F.interpolate(x.float(), size=(resolution, resolution), mode="bilinear", align_corners=False,
                                  antialias=shrink))


def check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise GanforgeError(f"channels must be 1 or 3; got {channels}")


def set_channels(x: torch.Tensor, channels: int | None) -> torch.Tensor:
    if not channels or x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if channels == 1 and x.shape[1] == 3:   # ITU-R 601 luma, as PIL's convert("L")
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return to_uint8((x.float() * w).sum(1, keepdim=True))
    raise GanforgeError(f"channels must be 1 or 3; got {channels}")


def image_info(spec: str, x: torch.Tensor, y: torch.Tensor | None, class_names: list[str]) -> DataInfo:
    k = len(class_names) if class_names else (int(y.max()) + 1 if y is not None else 0)
    return DataInfo(spec, "image", tuple(x.shape[1:]), num_classes=k, class_names=class_names)


# ------------------------------------------------------------------------------------------------ digits


def digits_split(n: int, split: str) -> np.ndarray:
    """The fixed split of the 1,797 digits: sample i is test when i % 5 == 0 (360 test, 1,437 train)."""
    i = np.arange(n)
    return i[i % 5 == 0] if split == "test" else i[i % 5 != 0]


def load_digits_data(variant: str, split: str) -> tuple[Data, DataInfo]:
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = digits_split(len(d.target), split)
    img = torch.from_numpy(np.round(d.images[idx] / 16.0 * 255.0).astype(np.uint8))[:, None]   # 0..16 -> 0..255
    y = torch.from_numpy(d.target[idx].astype(np.int64))
    names = [str(k) for k in range(10)]
    if variant == "":
        return Data(img, y), image_info("digits", img, y, names)
    if variant == "stacked":
        # three independent digits as R, G, B: 1,000 modes (the stacked-MNIST protocol of VEEGAN / PacGAN)
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = 50_000 if split == "train" else 10_000
        k = torch.randint(len(idx), (n, 3), generator=g)
        x = torch.cat([img[k[:, c]] for c in range(3)], dim=1)
        lab = y[k[:, 0]] * 100 + y[k[:, 1]] * 10 + y[k[:, 2]]
        return Data(x, lab), DataInfo("digits:stacked", "image", tuple(x.shape[1:]), num_classes=1000)
    raise GanforgeError(f"unknown digits variant {variant!r}; use `digits` or `digits:stacked`")


# ------------------------------------------------------------------------------- reading files, folder:PATH


def _grey_to_8bit(im, path: Path):
    """Pillow's deep grey modes (I;16*, I, F) -> L, scaled by the full range of the bit depth. convert("L")
    clips instead, so a 16-bit image came out almost all white."""
    from PIL import Image

    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        full = 1.0                 # float images hold 0..1 by convention
    elif im.mode.startswith("I;16") or a.max() <= 65535:
        full = 65535.0             # I;16 (65535 -> 255: /257); Pillow also decodes 16-bit PNG/TIFF as mode I
    else:
        full = 2.0 ** 31 - 1       # 32-bit signed integer samples
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > full:
        raise GanforgeError(f"image {str(path)!r} (mode {im.mode}) has values outside 0..{full:.0f} "
                            f"(min {a.min():g}, max {a.max():g}); save it as an 8- or 16-bit image")
    return Image.fromarray(np.round(a * (255.0 / full)).astype(np.uint8), "L")


def open_image(path: Path):
    """An image file -> PIL image in L or RGB (colour kept when the file has it, deep grey scaled to 8 bits; a
    GIF or multi-page TIFF: its first frame). PIL's own errors pass through."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "F") or im.mode.startswith("I;16"):
            im = _grey_to_8bit(im, path)
        return im.convert("L" if im.mode in ("L", "1", "LA") else "RGB")


def read_image(path: Path, skip_bad: bool):
    """open_image, or None for an unreadable file when skip_bad (else an error naming the file and the fix)."""
    try:
        return open_image(path)
    except GanforgeError:
        raise                # readable, but its values make no sense: skipping would hide that
    except Exception as e:   # PIL raises many types for a broken file
        if skip_bad:
            return None
        raise GanforgeError(f"cannot read image {str(path)!r} ({type(e).__name__}: {e}); remove or fix it, "
                            f"or set skip_bad=true to skip unreadable files") from None


def image_array(im) -> np.ndarray:
    """PIL image -> a writable, contiguous uint8 numpy C x H x W (torch will not wrap PIL's read-only buffer)."""
    a = np.array(im)
    return np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))


def _center_crop(im, resolution: int) -> np.ndarray:
    """Resize the short side to `resolution`, then the centre crop: keeps the aspect ratio of any photo."""
    from PIL import Image

    w, h = im.size
    s = resolution / min(w, h)
    im = im.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
    w, h = im.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return image_array(im.crop((left, top, left + resolution, top + resolution)))


def _open(path: Path, resolution: int):
    """An image file -> (uint8 C x res x res centre crop, whether the file has colour)."""
    im = open_image(path)
    return _center_crop(im, resolution), im.mode == "RGB"


def load_folder(path: str, resolution: int | None, channels: int | None, skip_bad: bool) -> tuple[Data, DataInfo]:
    root = Path(path)
    if not root.is_dir():
        raise GanforgeError(f"image folder {path!r} does not exist; give folder:PATH to a directory of images")
    found = sorted(p for p in root.rglob("*") if p.is_file())
    files = [p for p in found if p.suffix.lower() in IMAGE_EXTS]
    # other files are named in a note; hidden ones (.DS_Store, .git/...) are the system's, not the user's
    other = [p for p in found if p.suffix.lower() not in IMAGE_EXTS
             and not any(q.startswith(".") for q in p.relative_to(root).parts)]
    if not files:
        seen = f"; it has only {len(other)} other files, e.g. {other[0].name!r}" if other else ""
        raise GanforgeError(f"image folder {path!r} holds no images ({' '.join(IMAGE_EXTS)}){seen}; "
                            f"put images in it or in one sub-folder per class")
    if other:   # named once, so a folder of .heic or .jp2 photos is not silently half-read
        print(f"ganforge: note: ignored {len(other)} files in {path!r} that are not "
              f"{'/'.join(e[1:] for e in IMAGE_EXTS)}: " + ", ".join(str(p.relative_to(root)) for p in other[:5])
              + (" ..." if len(other) > 5 else ""), file=sys.stderr)
    # labels from first-level sub-folders, when every image lies in one (the ImageFolder layout)
    parts = [p.relative_to(root).parts for p in files]
    classes = sorted({q[0] for q in parts}) if all(len(q) > 1 for q in parts) else []
    res = resolution or 64
    arrays, labels, any_rgb, bad = [], [], False, []
    for p, q in zip(files, parts):
        im = read_image(p, skip_bad)
        if im is None:
            bad.append(str(p))
            continue
        any_rgb |= im.mode == "RGB"
        arrays.append(_center_crop(im, res))
        labels.append(classes.index(q[0]) if classes else 0)
    if not arrays:
        raise GanforgeError(f"no readable image in {path!r} ({len(bad)} skipped as unreadable: "
                            f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''})")
    want = channels or (3 if any_rgb else 1)
    x = torch.cat([set_channels(torch.from_numpy(a)[None], want) for a in arrays])
    y = torch.tensor(labels) if classes else None
    data, info = Data(x, y, skipped=bad), image_info(f"folder:{path}", x, y, classes)   # skipped: named after training
    info.extra["images"] = len(x)    # what ada=auto decides from (ganforge/ada.py: on below a few thousand)
    return data, info


@DATASETS.register("digits")
def _digits(arg, *, split, resolution, channels, skip_bad, download):
    return load_digits_data(arg, split)


@DATASETS.register("folder")
def _folder(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("folder", arg, "folder:PATH")
    return load_folder(arg, resolution, channels, skip_bad)
