"""`photos:TASK`: offline image-to-image tasks cut from the photographs shipped with scikit-image (and
scikit-learn's two): pix2pix-style pairs (arXiv:1611.07004) and super-resolution (SRGAN, arXiv:1609.04802).

Training takes random crops (with flips) of five photos; whole photos are held out for the test split, which
is the grid of their non-overlapping tiles (two photos; for sr4 / sr2 every other offline photograph, 15). TASK:
- edges2photo  Sobel edge map -> photo (`sobel_edges`)
- gray2color   luma -> colour (colourisation)
- sr4 / sr2    bicubic x4 / x2 downscale -> photo (the resolution is the target's side)

Every batch is {"real": B, "cond": A} in [-1, 1] (data/base.py): B is the photo crop, A the task's input.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, PairedData, pair_info
from .images import check_channels, set_channels, to_uint8

PHOTO_RESOLUTION = 32             # default crop side (the target's side for SR)
TRAIN_PHOTOS = (("skimage", "astronaut.png"), ("skimage", "coffee.png"), ("skimage", "rocket.jpg"),
                ("skimage", "motorcycle_left.png"), ("sklearn", "china.jpg"))
TEST_PHOTOS = (("skimage", "chelsea.png"), ("sklearn", "flower.jpg"))
# super-resolution is also tested on every other photograph shipped offline (grey ones as 3 equal channels;
# gray2color needs colour targets, and edges2photo keeps the two above). Not used at all: motorcycle_right
# (the stereo twin of the training photo motorcycle_left), microaneurysms (a 102-px crop of a retina photo),
# lfw_subset (25-px faces), and the synthetic or binary images: chessboard_*, color (a colour wheel), logo,
# horse (a silhouette), phantom (Shepp-Logan), multipage.tif (a 10x15 test file), binary_blobs.
SR_TEST_PHOTOS = TEST_PHOTOS + tuple(("skimage", name) for name in (
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "coins.png", "moon.png", "brick.png",
    "grass.png", "gravel.png", "page.png", "text.png", "cell.png", "clock_motion.png"))
SR_MAX_CROPS = 16_000            # sr training crops: 10,922 at 64 px (134 MB)
PHOTO_TASKS = ("edges2photo", "gray2color", "sr4", "sr2")


def _photo_path(source: str, name: str) -> Path | None:
    """The file of a bundled photo, found without importing the library (None when it is not installed)."""
    package = {"skimage": "skimage", "sklearn": "sklearn"}[source]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / ("data" if source == "skimage" else "datasets/images") / name
    return path if path.is_file() else None


def load_photos(split: str, task: str = "") -> list[tuple[str, np.ndarray]]:
    """The bundled photographs of a split as (name, uint8 H x W x 3): training photos from scikit-image
    (astronaut, coffee, rocket, motorcycle) and scikit-learn (china); held out for testing: chelsea
    (scikit-image) and flower (scikit-learn), for the sr tasks SR_TEST_PHOTOS. Without scikit-image: china
    to train, flower to test."""
    from PIL import Image
    out = []
    test = SR_TEST_PHOTOS if task.startswith("sr") else TEST_PHOTOS
    for source, name in (TRAIN_PHOTOS if split == "train" else test):
        path = _photo_path(source, name)
        if path is not None:
            with Image.open(path) as im:
                out.append((f"{source}:{name}", np.asarray(im.convert("RGB"))))
    if not out:
        raise GanforgeError("no bundled photos found: the photos:* tasks need scikit-learn (pip install "
                            "scikit-learn), and use scikit-image's photos too when it is installed")
    return out


def scale_photo(photo: np.ndarray, short_side: int) -> torch.Tensor:
    """uint8 H x W x 3 -> uint8 3 x h x w with min(h, w) = short_side (antialiased; never enlarged)."""
    x = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))[None].float()
    s = min(1.0, short_side / min(x.shape[-2:]))
    size = (max(1, round(x.shape[-2] * s)), max(1, round(x.shape[-1] * s)))
    return to_uint8(F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False))[0]


def photo_short_side(resolution: int) -> int:
    """Photos are shrunk so a crop covers a quarter of the short side: scenes, not single textures."""
    return max(4 * resolution, 128)


def sobel_edges(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 3 x H x W -> uint8 1 x H x W edge map, black (0) edges on white (255) as in edges2shoes.

    Luma, Gaussian blur (sigma 1), Sobel gradient magnitude, then the strongest 12% of pixels are edges.
    (pix2pix used HED edges; this is a simple, dependency-free stand-in.)"""
    y = set_channels(rgb[None], 1).float() / 255.0
    t = torch.arange(5, dtype=torch.float32) - 2
    g = torch.exp(-t ** 2 / 2)
    g = g / g.sum()
    y = F.conv2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), (g[:, None] * g[None, :])[None, None])
    sx = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])
    gy = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), torch.stack([sx, sx.T])[:, None])
    mag = gy.pow(2).sum(1, keepdim=True).sqrt()
    edge = mag > torch.quantile(mag.flatten(), 0.88)
    return torch.where(edge, 0, 255).to(torch.uint8)[0]


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 N x C x H x W -> uint8 N x C x H/s x W/s: antialiased bicubic (how bicubic LR sets are made)."""
    return to_uint8(F.interpolate(x.float(), scale_factor=1 / scale, mode="bicubic", antialias=True,
                                  align_corners=False))


def photo_pairs(task: str, photo: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One scaled photo (uint8 3 x H x W) -> (A, B) full-size maps of the task; crops cut both alike."""
    b = set_channels(photo[None], channels)[0]
    if task == "edges2photo":
        return sobel_edges(photo), b
    if task == "gray2color":
        return set_channels(photo[None], 1)[0], b
    return b, b   # sr: A is made per crop (downscaling the crop keeps the pixel grid aligned)


def load_photo_task(task: str, split: str, resolution: int | None, channels: int | None,
                    seed: int = 0) -> tuple[Data, DataInfo]:
    if task not in PHOTO_TASKS:
        raise GanforgeError(f"unknown photos task {task!r}; use one of "
                            + ", ".join(f"photos:{t}" for t in PHOTO_TASKS))
    check_channels(channels)
    if task == "gray2color" and channels == 1:
        raise GanforgeError("photos:gray2color outputs colour: drop channels=1 (its input is grey already)")
    res, ch = resolution or PHOTO_RESOLUTION, channels or 3
    scale = int(task[2:]) if task.startswith("sr") else 1
    if res % scale or res // scale < 2:
        raise GanforgeError(f"photos:{task} needs a resolution divisible by {scale} (HR side); got {res}")
    photos = load_photos(split, task)
    rng = np.random.default_rng(seed if split == "train" else 10_000 + seed)
    a_list, b_list = [], []
    # SR learns local texture: a fixed set of 1,365 64-px crops is memorised within 2,000 steps, so it gets more
    n_crops = (int(np.clip(2 ** 27 // (3 * res * res), 64, SR_MAX_CROPS)) if scale > 1
               else int(np.clip(2 ** 24 // (3 * res * res), 64, 2000)))
    for k, (name, photo) in enumerate(photos):
        scaled = scale_photo(photo, photo_short_side(res))
        if min(scaled.shape[-2:]) < res:
            raise GanforgeError(f"photo {name} is smaller than resolution={res}; use a smaller resolution")
        a_full, b_full = photo_pairs(task, scaled, ch)
        H, W = scaled.shape[-2:]
        if split == "train":   # random crops with flips; every photo gets its share
            count = n_crops // len(photos) + (k < n_crops % len(photos))
            tops, lefts = rng.integers(0, H - res + 1, count), rng.integers(0, W - res + 1, count)
            flips = rng.random(count) < 0.5
            turns = rng.integers(0, 4, count) if scale > 1 else np.zeros(count, int)   # sr: the 8 symmetries
        else:                  # held-out photos: the grid of non-overlapping tiles
            tops, lefts = (v.ravel() for v in np.meshgrid(np.arange(H // res) * res, np.arange(W // res) * res,
                                                         indexing="ij"))
            flips, turns = np.zeros(len(tops), bool), np.zeros(len(tops), int)
        for top, left, flip, turn in zip(tops, lefts, flips, turns):
            a, b = (m[:, top:top + res, left:left + res] for m in (a_full, b_full))
            if flip:
                a, b = a.flip(-1), b.flip(-1)
            if turn:
                a, b = a.rot90(int(turn), (-2, -1)), b.rot90(int(turn), (-2, -1))
            a_list.append(a)
            b_list.append(b)
    a, b = torch.stack(a_list), torch.stack(b_list)
    if scale > 1:
        a = downscale(b, scale)
    extra = {"task": f"photos:{task}", "paired": True, "photos": [n for n, _ in photos],
             "photo_short_side": photo_short_side(res)}
    if scale > 1:
        extra["scale"] = scale
    return PairedData(a, b), pair_info(f"photos:{task}", a, b, **extra)


@DATASETS.register("photos")
def _photos(arg, *, split, resolution, channels, skip_bad, download):
    return load_photo_task(arg, split, resolution, channels)
