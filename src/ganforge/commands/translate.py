"""`ganforge translate RUN INPUT... --out DIR`: run a trained image-to-image generator - any Translator
recipe (recipes/base.py), e.g. pix2pix (arXiv:1611.07004) or CycleGAN (arXiv:1703.10593) - on image files
and folders.

Each input is read as the model's input domain (grey or RGB) and translated at its own size and aspect ratio:
a generator built for one size (pix2pix's U-Net) runs on overlapping tiles of its training size, blended; a
fully convolutional one (CycleGAN's ResNet, SRGAN) on the whole image, padded to the multiple it needs and
cropped back. --resize squashes the input to the training size instead. Each output is written as
DIR/<name>.png (folders keep their sub-paths), or to --out FILE.png for a single input file.
The helpers here are shared with `ganforge upscale`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import runs
from ..data.images import IMAGE_EXTS, open_image
from ..errors import GanforgeError
from ..recipes.base import Translator, Upscaler
from ..registry import RECIPES
from ..training.hardware import pick_device
from ..viz import to_uint8
from . import out_dir


SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")     # an --out with one of these is a file, not a folder


def _names(kind: type, but: type | None = None) -> str:
    """The registered recipes of a kind, for messages (read from the registry, so new ones are named too)."""
    names = sorted(n for n, c in RECIPES.items() if issubclass(c, kind) and not (but and issubclass(c, but)))
    return " or ".join(names) or "none registered"


def load_translator(path, direction: str | None = None, device: str = "cpu", upscale: bool = False):
    """(recipe, generator in eval mode) of an image-to-image run: a run directory (latest checkpoint), a
    checkpoint folder or an export folder. The EMA copy of the net is used when the run kept one.
    `upscale`: for `ganforge upscale`, which takes Upscaler runs; otherwise any other Translator run."""
    path = Path(path)
    folder, run, _ = runs.locate(path)
    recipe = runs.build_recipe(run)
    name = run["recipe"]
    if not isinstance(recipe, Translator):
        raise GanforgeError(f"{str(path)!r} is a {name} run, not an image-to-image one; translate works on "
                            f"{_names(Translator, Upscaler)} runs, upscale on {_names(Upscaler)} runs")
    if upscale and not isinstance(recipe, Upscaler):
        raise GanforgeError(f"{str(path)!r} is a {name} run; upscale needs an {_names(Upscaler)} run "
                            f"(use `ganforge translate` for {name})")
    if not upscale and isinstance(recipe, Upscaler):
        raise GanforgeError(f"{str(path)!r} is an {name} run; use `ganforge upscale` for super-resolution")
    if direction and direction not in recipe.directions():
        raise GanforgeError(f"this {name} model was trained {' and '.join(recipe.directions())}; it cannot "
                            f"translate {direction}. Drop --direction or train another model with "
                            f"direction={direction}")
    G = runs.load_net(recipe, recipe.translator(direction), folder)
    return recipe, G.eval().to(pick_device(device))


def image_files(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, output name relative to --out) for every input file and every image under input folders."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            if not files:
                raise GanforgeError(f"folder {item!r} holds no images ({' '.join(IMAGE_EXTS)})")
            out += [(f, f.relative_to(p).with_suffix(".png")) for f in files]
        elif p.is_file():
            out.append((p, Path(p.stem + ".png")))
        else:
            raise GanforgeError(f"input {item!r} does not exist; give image files or folders of images")
    return out


def read_image(path: Path, channels: int) -> torch.Tensor:
    """Image file -> 1 x C x H x W in [-1, 1] with the model's channel count."""
    try:       # data.images.open_image: the folder loader's reading, so deep grey files scale the same way
        im = open_image(path).convert("L" if channels == 1 else "RGB")
    except GanforgeError:
        raise
    except Exception as e:   # PIL raises many types for a broken file
        raise GanforgeError(f"cannot read image {str(path)!r} ({type(e).__name__}: {e})") from None
    a = np.asarray(im, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))[None] / 127.5 - 1


def write_image(x: torch.Tensor, path: Path) -> Path:
    a = to_uint8(x)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(path)
    return path


def check_sizes(recipe, files: list[tuple[Path, Path]]) -> None:
    """Every input's size, from its header, before anything is written: a wrong one fails the whole call."""
    for src, _ in files:
        try:
            with Image.open(src) as im:
                w, h = im.size
        except Exception as e:   # PIL raises many types for a broken file
            raise GanforgeError(f"cannot read image {str(src)!r} ({type(e).__name__}: {e})") from None
        try:
            recipe.check_size(h, w)
        except GanforgeError as e:
            raise GanforgeError(f"{src}: {e}") from None


def apply(recipe, G, x: torch.Tensor, resize: bool, seed: int) -> torch.Tensor:
    """Check (or resize) one input for the model and run G on it, with seeded noise: on overlapping tiles or
    on the whole padded image (recipe.tile()), so the output keeps the input's size and aspect ratio."""
    h, w = x.shape[-2:]
    if resize:
        side = recipe.input_shape()[-1]
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bicubic", align_corners=False,
                                            antialias=True).clamp(-1, 1)
    else:
        recipe.check_size(h, w)
    torch.manual_seed(seed)   # pix2pix's test-time dropout: the same seed gives the same output
    x = x.to(next(G.parameters()).device)
    with torch.no_grad():
        tile = recipe.tile()
        return (tiled(G, x, tile) if tile else padded(G, x, recipe.multiple())).cpu()


def _pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Mirror padding on the bottom and right (edge replication where the image is too small to mirror)."""
    if not (bottom or right):
        return x
    small = bottom >= x.shape[-2] or right >= x.shape[-1]
    return torch.nn.functional.pad(x, (0, right, 0, bottom), mode="replicate" if small else "reflect")


def padded(G, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """G on the whole image, padded to a multiple of `multiple` and cropped back (an upscaler's output by
    its scale)."""
    h, w = x.shape[-2:]
    y = G(_pad(x, -h % multiple, -w % multiple))
    scale = y.shape[-1] // (w + -w % multiple)
    return y[..., : h * scale, : w * scale]


def _starts(n: int, t: int, step: int) -> list[int]:
    return list(range(0, n - t, step)) + [n - t]        # the last tile ends at the border


def tiled(G, x: torch.Tensor, t: int, batch: int = 64) -> torch.Tensor:
    """G on t x t tiles overlapping by a quarter, blended with a pyramid window (each output pixel is the
    window-weighted mean of the tiles covering it, so no seams); an image smaller than a tile is padded."""
    h, w = x.shape[-2:]
    x = _pad(x, max(0, t - h), max(0, t - w))
    H, W = x.shape[-2:]
    step = max(1, t * 3 // 4)
    corners = [(i, j) for i in _starts(H, t, step) for j in _starts(W, t, step)]
    tiles = torch.cat([x[..., i:i + t, j:j + t] for i, j in corners])
    outs = torch.cat([G(b) for b in tiles.split(batch)])
    ramp = torch.minimum(torch.arange(1, t + 1), torch.arange(t, 0, -1)).to(outs)
    window = ramp[:, None] * ramp[None, :]
    total = outs.new_zeros(1, outs.shape[1], H, W)
    weight = outs.new_zeros(1, 1, H, W)
    for (i, j), y in zip(corners, outs):
        total[0, :, i:i + t, j:j + t] += y * window
        weight[0, 0, i:i + t, j:j + t] += window
    return (total / weight)[..., :h, :w]


def translate(run, inputs, out, *, direction: str | None = None, resize: bool = False, seed: int = 0,
              device: str = "cpu") -> list[Path]:
    """Translate image files and folders of images (`inputs`: a path or a list of them) with an image-to-image
    run (pix2pix, CycleGAN, any Translator recipe) at each image's own size. One input file and an `out` with
    an image suffix write that file; otherwise `out` is a folder of PNGs, out/<name>.png (folders keep their
    sub-paths). direction: "AtoB" or "BtoA" (CycleGAN's two generators; default the first it was trained);
    resize: squash inputs to the trained size instead; seed: pix2pix's dropout noise. Every input's size is
    checked before anything is written. Returns the paths written."""
    files, target = targets(inputs, out)
    recipe, G = load_translator(run, direction, device)
    if not resize:
        check_sizes(recipe, files)
    return apply_all(recipe, G, files, target, resize, seed, direction)


def targets(inputs, out) -> tuple[list[tuple[Path, Path]], object]:
    """(input files, relative name -> output path): the file `out` for one input file and an image-suffixed
    `out`, else names inside the folder `out` (checked to be one now, before a model is loaded)."""
    names = input_paths(inputs)
    files = image_files(names)
    out = Path(out)
    if len(files) == 1 and Path(names[0]).is_file() and out.suffix.lower() in SUFFIXES:
        return files, lambda rel: out
    folder = out_dir(out)
    return files, lambda rel: folder / rel


def input_paths(inputs) -> list[str]:
    return [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]


def apply_all(recipe, G, files: list[tuple[Path, Path]], target, resize: bool, seed: int,
              direction: str | None = None) -> list[Path]:
    """Run G on every (file, relative name) and write each result to target(relative name); one line naming
    the file when one fails. Shared with upscale."""
    channels = recipe.input_shape(direction)[0]
    written = []
    for src, rel in files:
        try:
            y = apply(recipe, G, read_image(src, channels), resize, seed)
        except GanforgeError as e:
            raise GanforgeError(f"{src}: {e}") from None
        written.append(write_image(y, target(rel)))
    return written


def run(args) -> int:
    for path in translate(args.run, args.inputs, args.out, direction=args.direction, resize=args.resize,
                          seed=args.seed, device=args.device):
        print(path)
    return 0
