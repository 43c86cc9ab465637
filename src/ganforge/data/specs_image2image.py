"""Image-to-image data: paired (pix2pix, arXiv:1611.07004), unpaired (CycleGAN, arXiv:1703.10593) and
super-resolution (SRGAN, arXiv:1609.04802) tasks, as the field lays them out and as offline tasks.

Specs
- `paired:DIR`   pix2pix's official layout: DIR/{train,val,test}/*.jpg, each image A|B side by side
                 (left half A, right half B). The recipe's `direction` key says which half is the input.
- `unpaired:DIR` CycleGAN's layout: DIR/trainA, trainB, testA, testB.
- `photos:TASK`  random crops of the photographs shipped with scikit-image (and scikit-learn's two);
                 whole photos are held out for the test split. TASK: edges2photo (Sobel edge map ->
                 photo), gray2color (luma -> colour: colourisation), sr4 / sr2 (bicubic x4 / x2 downscale
                 -> photo).
- `shapeswap:circles2squares` (any two of circles, squares, triangles): the `shapes` renderer, unpaired
  in training (the two domains are independent draws), aligned in the test split, so a translator can
  be scored on whether it changed the kind and kept colour, background, size and position.

Every batch is {"real": B, "cond": A} in [-1, 1]: B is what a generator outputs, A what it is given.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo
from .images import IMAGE_EXTS, set_channels

DEFAULT_RESOLUTION = 256          # pix2pix / CycleGAN crop size, used when a folder's images differ in size
PHOTO_RESOLUTION = 32             # offline photo tasks: default crop side (the target's side for SR)
SHAPES_RESOLUTION = 32
TRAIN_PHOTOS = (("skimage", "astronaut.png"), ("skimage", "coffee.png"), ("skimage", "rocket.jpg"),
                ("skimage", "motorcycle_left.png"), ("sklearn", "china.jpg"))
TEST_PHOTOS = (("skimage", "chelsea.png"), ("sklearn", "flower.jpg"))
PHOTO_TASKS = ("edges2photo", "gray2color", "sr4", "sr2")
SHAPE_KINDS = {"circles": "circle", "squares": "square", "triangles": "triangle"}


def _decode(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(127.5).sub_(1.0)


class PairedData(Data):
    """Aligned samples: A[i] is the input for target B[i]. x holds B (the trainer's "real")."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, skipped: int = 0):
        super().__init__(b, None, skipped)
        self.a = a

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"real": _decode(self.x[idx]), "cond": _decode(self.a[idx])}


class UnpairedData(Data):
    """Two unaligned domains. Sample i is (A[i mod n_A], B[perm(i) mod n_B]) for a seeded permutation of
    max(n_A, n_B) indices: every image of both domains is seen each epoch, in a fresh order each epoch
    (Batches shuffles i), and the batch is a pure function of the indices, so resume stays exact."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, seed: int = 0, skipped: int = 0):
        super().__init__(b, None, skipped)
        self.a, n = a, max(len(a), len(b))
        self.index_a = torch.arange(n) % len(a)
        self.index_b = torch.randperm(n, generator=torch.Generator().manual_seed(seed)) % len(b)

    def __len__(self) -> int:
        return len(self.index_a)

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"real": _decode(self.x[self.index_b[idx]]), "cond": _decode(self.a[self.index_a[idx]])}


def _info(spec: str, a: torch.Tensor, b: torch.Tensor, **extra) -> DataInfo:
    return DataInfo(spec, "image", tuple(b.shape[1:]), extra={"cond_shape": list(a.shape[1:]), **extra})


# ------------------------------------------------------------------------------------------ reading files


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _read(path: Path, skip_bad: bool):
    """-> PIL image in RGB or L (colour is kept if the file has it), or None when skipped."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return im.convert("L" if im.mode in ("L", "1", "I;16", "I", "LA") else "RGB")
    except Exception as e:   # PIL raises many types for a broken file
        if skip_bad:
            return None
        raise GanforgeError(f"cannot read image {str(path)!r} ({type(e).__name__}: {e}); remove or fix it, "
                            f"or set skip_bad=true to skip unreadable files") from None


def _to_tensor(im, resolution: int, channels: int):
    """PIL image -> uint8 1 x C x res x res, resized whole (aspect not kept, as pix2pix's loader does)."""
    from PIL import Image
    im = im.convert("RGB" if channels == 3 else "L").resize((resolution, resolution), Image.BICUBIC)
    a = np.array(im)   # a writable copy: torch refuses to wrap PIL's read-only buffer silently
    return torch.from_numpy(np.ascontiguousarray(a[None] if a.ndim == 2 else a.transpose(2, 0, 1)))[None]


def _check_channels(channels: int | None) -> None:
    if channels not in (None, 1, 3):
        raise GanforgeError(f"channels must be 1 or 3; got {channels}")


def load_paired(arg: str, split: str, resolution: int | None, channels: int | None,
                skip_bad: bool) -> tuple[Data, DataInfo]:
    _check_channels(channels)
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
    images, bad = [], 0
    for p in files:
        im = _read(p, skip_bad)
        if im is None:
            bad += 1
            continue
        if im.width < 2 or im.width % 2:
            if skip_bad:
                bad += 1
                continue
            raise GanforgeError(f"image {str(p)!r} is {im.width}x{im.height}: an A|B pair needs an even width "
                                f"(A on the left half, B on the right half); fix it or set skip_bad=true")
        images.append(im)
    if not images:
        raise GanforgeError(f"no readable image in {str(folder)!r} ({bad} skipped)")
    halves = {(im.width // 2, im.height) for im in images}
    (w, h), = halves if len(halves) == 1 else ((0, 1),)
    res = resolution or (w if w == h else DEFAULT_RESOLUTION)   # native when every half is the same square
    ch = channels or (3 if any(im.mode == "RGB" for im in images) else 1)
    a = torch.cat([_to_tensor(im.crop((0, 0, im.width // 2, im.height)), res, ch) for im in images])
    b = torch.cat([_to_tensor(im.crop((im.width // 2, 0, im.width, im.height)), res, ch) for im in images])
    return PairedData(a, b, skipped=bad), _info(f"paired:{arg}", a, b, task="paired", paired=True,
                                                 folder=folder.name)


def load_unpaired(arg: str, split: str, resolution: int | None, channels: int | None, skip_bad: bool,
                  seed: int = 0) -> tuple[Data, DataInfo]:
    _check_channels(channels)
    root = Path(arg)
    if not root.is_dir():
        raise GanforgeError(f"unpaired folder {arg!r} does not exist; give unpaired:DIR with DIR/trainA and "
                            f"DIR/trainB (CycleGAN's layout)")
    tag = "train" if split == "train" else "test"
    domains = []
    for d in "AB":
        folder = root / f"{tag}{d}"
        if not folder.is_dir():
            have = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise GanforgeError(f"unpaired folder {arg!r} has no {tag}{d}/ sub-folder (found: "
                                f"{', '.join(have) or 'none'}); CycleGAN's layout is trainA, trainB, testA, testB")
        files = _files(folder)
        if not files:
            raise GanforgeError(f"{str(folder)!r} holds no images ({' '.join(IMAGE_EXTS)})")
        domains.append([im for im in (_read(p, skip_bad) for p in files)])
    bad = sum(im is None for ims in domains for im in ims)
    domains = [[im for im in ims if im is not None] for ims in domains]
    if not all(domains):
        raise GanforgeError(f"no readable image in one domain of {arg!r} ({bad} skipped as unreadable)")
    everything = domains[0] + domains[1]
    sizes = {im.size for im in everything}
    (w, h), = sizes if len(sizes) == 1 else ((0, 1),)
    res = resolution or (w if w == h else DEFAULT_RESOLUTION)   # native when every image is the same square
    ch = channels or (3 if any(im.mode == "RGB" for im in everything) else 1)
    a, b = (torch.cat([_to_tensor(im, res, ch) for im in ims]) for ims in domains)
    data = UnpairedData(a, b, seed=seed, skipped=bad)
    return data, _info(f"unpaired:{arg}", a, b, task="unpaired", paired=False, sizes=[len(a), len(b)])


# ------------------------------------------------------------------------------------------------ photos


def _photo_path(source: str, name: str) -> Path | None:
    """The file of a bundled photo, found without importing the library (None when it is not installed)."""
    package = {"skimage": "skimage", "sklearn": "sklearn"}[source]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / ("data" if source == "skimage" else "datasets/images") / name
    return path if path.is_file() else None


def load_photos(split: str) -> list[tuple[str, np.ndarray]]:
    """The bundled colour photographs of a split as (name, uint8 H x W x 3): training photos from
    scikit-image (astronaut, coffee, rocket, motorcycle) and scikit-learn (china); held out for testing:
    chelsea (scikit-image) and flower (scikit-learn). Without scikit-image: china to train, flower to test."""
    from PIL import Image
    out = []
    for source, name in (TRAIN_PHOTOS if split == "train" else TEST_PHOTOS):
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
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False
                         ).round().clamp(0, 255).to(torch.uint8)[0]


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
    y = F.interpolate(x.float(), scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


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
    _check_channels(channels)
    if task == "gray2color" and channels == 1:
        raise GanforgeError("photos:gray2color outputs colour: drop channels=1 (its input is grey already)")
    res, ch = resolution or PHOTO_RESOLUTION, channels or 3
    scale = int(task[2:]) if task.startswith("sr") else 1
    if res % scale or res // scale < 2:
        raise GanforgeError(f"photos:{task} needs a resolution divisible by {scale} (HR side); got {res}")
    photos = load_photos(split)
    rng = np.random.default_rng(seed if split == "train" else 10_000 + seed)
    a_list, b_list = [], []
    n_crops = int(np.clip(2 ** 24 // (3 * res * res), 64, 2000))
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
        else:                  # held-out photos: the grid of non-overlapping tiles
            tops, lefts = (v.ravel() for v in np.meshgrid(np.arange(H // res) * res, np.arange(W // res) * res,
                                                         indexing="ij"))
            flips = np.zeros(len(tops), bool)
        for top, left, flip in zip(tops, lefts, flips):
            a, b = (m[:, top:top + res, left:left + res] for m in (a_full, b_full))
            if flip:
                a, b = a.flip(-1), b.flip(-1)
            a_list.append(a)
            b_list.append(b)
    a, b = torch.stack(a_list), torch.stack(b_list)
    if scale > 1:
        a = downscale(b, scale)
    extra = {"task": f"photos:{task}", "paired": True, "photos": [n for n, _ in photos],
             "photo_short_side": photo_short_side(res)}
    if scale > 1:
        extra["scale"] = scale
    return PairedData(a, b), _info(f"photos:{task}", a, b, **extra)


# ------------------------------------------------------------------------------------------------ shapes


def parse_shapeswap(task: str) -> tuple[str, str]:
    src, sep, dst = task.partition("2")
    if not sep or src not in SHAPE_KINDS or dst not in SHAPE_KINDS or src == dst:
        raise GanforgeError(f"unknown shapeswap task {task!r}; use shapeswap:A2B with A, B two of "
                            f"{', '.join(SHAPE_KINDS)} (e.g. shapeswap:circles2squares)")
    return SHAPE_KINDS[src], SHAPE_KINDS[dst]


def shapeswap_test_set(task: str, resolution: int = SHAPES_RESOLUTION, n: int = 256, seed: int = 1):
    """Aligned held-out pairs: (A uint8 N x 3 x H x W, B likewise, attribute dicts of B with "source_kind")."""
    from .shapes import render_shape_pair
    kinds = parse_shapeswap(task)
    images_a, images_b, _, attrs_b = render_shape_pair(n, resolution, seed=10_000 + seed, kinds=kinds)
    attrs_b = [dict(a, source_kind=kinds[0]) for a in attrs_b]
    to_t = lambda im: torch.from_numpy(np.ascontiguousarray(im.transpose(0, 3, 1, 2)))  # noqa: E731
    return to_t(images_a), to_t(images_b), attrs_b


def load_shapeswap(task: str, split: str, resolution: int | None, channels: int | None,
                   seed: int = 0, n: int = 1000) -> tuple[Data, DataInfo]:
    from .shapes import render_shapes
    kinds = parse_shapeswap(task)
    if channels not in (None, 3):
        raise GanforgeError("shapeswap tasks are colour images: drop channels (or use channels=3)")
    res = resolution or SHAPES_RESOLUTION
    extra = {"task": f"shapeswap:{task}", "kinds": list(kinds)}
    if split == "train":   # two independent draws: no image of A has its counterpart in B
        (a, _), (b, _) = (render_shapes(n, res, seed=seed * 2 + d, kinds=(kinds[d],)) for d in (0, 1))
        a, b = (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in (a, b))
        return UnpairedData(a, b, seed=seed), _info(f"shapeswap:{task}", a, b, paired=False, **extra)
    a, b, _ = shapeswap_test_set(task, res)
    return PairedData(a, b), _info(f"shapeswap:{task}", a, b, paired=True, **extra)


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
    from .shapes import PALETTE, draw
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


# ------------------------------------------------------------------------------------------ registration


@DATASETS.register("paired")
def _paired(arg, *, split, resolution, channels, skip_bad, download):
    if not arg:
        raise GanforgeError("data spec 'paired' needs a folder: paired:DIR (DIR/train/*.jpg, A|B side by side)")
    return load_paired(arg, split, resolution, channels, skip_bad)


@DATASETS.register("unpaired")
def _unpaired(arg, *, split, resolution, channels, skip_bad, download):
    if not arg:
        raise GanforgeError("data spec 'unpaired' needs a folder: unpaired:DIR (DIR/trainA, DIR/trainB)")
    return load_unpaired(arg, split, resolution, channels, skip_bad)


@DATASETS.register("photos")
def _photos(arg, *, split, resolution, channels, skip_bad, download):
    return load_photo_task(arg, split, resolution, channels)


@DATASETS.register("shapeswap")
def _shapeswap(arg, *, split, resolution, channels, skip_bad, download):
    return load_shapeswap(arg, split, resolution, channels)
