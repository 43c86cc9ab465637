"""Image-to-image folders as the field lays them out: `paired:DIR` (pix2pix, arXiv:1611.07004) and
`unpaired:DIR` (CycleGAN, arXiv:1703.10593).

- `paired:DIR`   pix2pix's official layout: DIR/{train,val,test}/*.jpg, each image A|B side by side
                 (left half A, right half B). The recipe's `direction` key says which half is the input.
- `unpaired:DIR` CycleGAN's layout: DIR/trainA, trainB, testA, testB.

Every batch is {"real": B, "cond": A} in [-1, 1] (data/base.py): B is what a generator outputs, A what it is
given. Images are resized whole to the resolution (aspect not kept, as pix2pix's loader does); without one,
the images' own size when they are all the same square, else 256.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, PairedData, UnpairedData, need_arg, pair_info
from .images import IMAGE_EXTS, check_channels, image_array, read_image

DEFAULT_RESOLUTION = 256          # pix2pix / CycleGAN crop size, used when a folder's images differ in size


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _to_tensor(im, resolution: int, channels: int) -> torch.Tensor:
    """PIL image -> uint8 1 x C x res x res, resized whole."""
    from PIL import Image
    return torch.from_numpy(image_array(im.convert("RGB" if channels == 3 else "L").resize(
        (resolution, resolution), Image.BICUBIC)))[None]


def _native(images: list, sizes: set[tuple[int, int]], resolution: int | None,
            channels: int | None) -> tuple[int, int]:
    """(resolution, channels): the given ones, else the native square size (one size for all, else
    DEFAULT_RESOLUTION) and colour when any image has it."""
    (w, h), = sizes if len(sizes) == 1 else ((0, 1),)
    return (resolution or (w if w == h else DEFAULT_RESOLUTION),
            channels or (3 if any(im.mode == "RGB" for im in images) else 1))


def load_paired(arg: str, split: str, resolution: int | None, channels: int | None,
                skip_bad: bool) -> tuple[Data, DataInfo]:
    check_channels(channels)
    root = Path(arg)
    if not root.is_dir():
        raise GanforgeError(f"paired folder {arg!r} does not exist; give paired:DIR with DIR/train/*.jpg holding "
                            f"A|B images side by side (pix2pix's layout)")
    names = ("train",) if split == "train" else ("test", "val")   # test split: test/, else val/
    folder = next((root / n for n in names if (root / n).is_dir()), None)
    if folder is None:
        raise GanforgeError(f"paired folder {arg!r} has no {' or '.join(n + '/' for n in names)} sub-folder "
                            f"(pix2pix's layout: DIR/train, DIR/val, DIR/test, each image A|B side by side)")
    files = _files(folder)
    if not files:
        raise GanforgeError(f"{str(folder)!r} holds no images ({' '.join(IMAGE_EXTS)}); put the A|B "
                            f"side-by-side images there")
    images, bad = [], []
    for p in files:
        im = read_image(p, skip_bad)
        if im is not None and (im.width < 2 or im.width % 2):
            if not skip_bad:
                raise GanforgeError(f"image {str(p)!r} is {im.width}x{im.height}: an A|B pair needs an even "
                                    f"width (A on the left half, B on the right half); fix it or set skip_bad=true")
            im = None
        if im is None:
            bad.append(str(p))
            continue
        images.append(im)
    if not images:
        raise GanforgeError(f"no readable image in {str(folder)!r} ({len(bad)} skipped)")
    res, ch = _native(images, {(im.width // 2, im.height) for im in images}, resolution, channels)
    a = torch.cat([_to_tensor(im.crop((0, 0, im.width // 2, im.height)), res, ch) for im in images])
    b = torch.cat([_to_tensor(im.crop((im.width // 2, 0, im.width, im.height)), res, ch) for im in images])
    return PairedData(a, b, skipped=bad), pair_info(f"paired:{arg}", a, b, task="paired", paired=True,
                                                     folder=folder.name)


def load_unpaired(arg: str, split: str, resolution: int | None, channels: int | None, skip_bad: bool,
                  seed: int = 0) -> tuple[Data, DataInfo]:
    check_channels(channels)
    root = Path(arg)
    if not root.is_dir():
        raise GanforgeError(f"unpaired folder {arg!r} does not exist; give unpaired:DIR with DIR/trainA and "
                            f"DIR/trainB (CycleGAN's layout)")
    tag = "train" if split == "train" else "test"
    domains, bad = [], []
    for d in "AB":
        folder = root / f"{tag}{d}"
        if not folder.is_dir():
            have = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise GanforgeError(f"unpaired folder {arg!r} has no {tag}{d}/ sub-folder (found: "
                                f"{', '.join(have) or 'none'}); CycleGAN's layout is trainA, trainB, testA, testB")
        files = _files(folder)
        if not files:
            raise GanforgeError(f"{str(folder)!r} holds no images ({' '.join(IMAGE_EXTS)})")
        images = [(p, read_image(p, skip_bad)) for p in files]
        bad += [str(p) for p, im in images if im is None]
        domains.append([im for _, im in images if im is not None])
    if not all(domains):
        raise GanforgeError(f"no readable image in one domain of {arg!r} ({len(bad)} skipped as unreadable)")
    everything = domains[0] + domains[1]
    res, ch = _native(everything, {im.size for im in everything}, resolution, channels)
    a, b = (torch.cat([_to_tensor(im, res, ch) for im in ims]) for ims in domains)
    data = UnpairedData(a, b, seed=seed, skipped=bad)
    return data, pair_info(f"unpaired:{arg}", a, b, task="unpaired", paired=False, sizes=[len(a), len(b)])


@DATASETS.register("paired")
def _paired(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("paired", arg, "paired:DIR (DIR/train/*.jpg, A|B side by side)")
    return load_paired(arg, split, resolution, channels, skip_bad)


@DATASETS.register("unpaired")
def _unpaired(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("unpaired", arg, "unpaired:DIR (DIR/trainA, DIR/trainB)")
    return load_unpaired(arg, split, resolution, channels, skip_bad)
