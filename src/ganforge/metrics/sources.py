"""What `ganforge eval` evaluates: samples streamed in batches from a generator or a folder of images.

A source yields (x, labels) batches, images N x C x H x W in [-1, 1] (labels None when it has none),
so 50,000 samples never sit in memory at once: only their features do. Generated images are clamped to
[-1, 1] and rounded to 8 bits, exactly what a saved PNG holds, so evaluating a run and evaluating a
folder of its PNG samples give the same numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import runs, zoo
from ..data.base import Data
from ..data.images import IMAGE_EXTS, image_info, open_image
from ..errors import GanforgeError

QUANTIZE = "clamped to [-1, 1] and rounded to 8 bits (as a saved PNG)"


def quantize(x: Tensor) -> Tensor:
    """[-1, 1] float -> the nearest of the 256 levels a PNG stores, back in [-1, 1]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def uint8_to_float(x: Tensor) -> Tensor:
    return x.float() / 127.5 - 1


class GeneratorSource:
    """Samples of G: noise from a torch.Generator seeded with `seed`, labels cycled 0..K-1 if conditional."""

    def __init__(self, recipe, G, info, describe: dict, device=None):
        self.recipe, self.G, self.info = recipe, G, info
        self.kind, self.shape = info.kind, tuple(info.shape)
        self.conditional = recipe.conditional and info.num_classes > 0
        self.num_classes = info.num_classes if self.conditional else 0
        self.device = device or next(G.parameters()).device
        self.describe = describe
        self.available = None     # unlimited

    @torch.no_grad()
    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        g = torch.Generator().manual_seed(seed)
        all_labels = None
        if self.conditional:
            all_labels = self.recipe.sample_labels(num)     # the recipe's rule (class ids cycle 0..K-1)
        was = self.G.training
        self.G.eval()   # BatchNorm on running statistics: sampling changes no state of G
        try:
            for start in range(0, num, batch_size):
                n = min(batch_size, num - start)
                z = self.recipe.sample_inputs(n, generator=g).to(self.device)
                labels = all_labels[start:start + n].to(self.device) if all_labels is not None else None
                x = self.recipe.generate(self.G, z, labels).float()
                if self.kind == "image":
                    x = quantize(x)
                yield x, labels
        finally:
            self.G.train(was)


class TensorSource:
    """Real samples held in memory (a data spec's uint8 images or float points), a subset by index."""

    def __init__(self, data, info, idx: Tensor, describe: dict):
        self.data, self.info, self.idx = data, info, idx
        self.kind, self.shape = info.kind, tuple(data.x.shape[1:])
        self.num_classes = info.num_classes if data.y is not None else 0
        self.conditional = False
        self.describe = describe
        self.available = len(idx)

    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        idx = self.idx[:num]
        for start in range(0, len(idx), batch_size):
            b = idx[start:start + batch_size]
            x = self.data.x[b]
            x = uint8_to_float(x) if x.dtype == torch.uint8 else x.float()
            yield x, (self.data.y[b] if self.data.y is not None else None)


class NoiseSource:
    """i.i.d. uniform [-1, 1] pixels (a ceiling for sources that have no untrained generator)."""

    def __init__(self, shape: tuple[int, ...]):
        self.kind, self.shape, self.conditional, self.num_classes = "image", tuple(shape), False, 0
        self.describe = {"kind": "noise", "what": "i.i.d. uniform [-1, 1] pixels, " + QUANTIZE}
        self.available = None

    def batches(self, num: int, batch_size: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        for start in range(0, num, batch_size):
            n = min(batch_size, num - start)
            yield quantize(torch.rand((n, *self.shape), generator=g) * 2 - 1), None


class FolderSource:
    """Images in a folder (recursively), all of one size; labels from integer-named sub-folders (0/, 1/...).

    Read with PIL, converted to L (channels=1) or RGB (channels=3), mapped v -> v / 127.5 - 1.
    """

    def __init__(self, path: Path, channels: int | None = None):
        root = Path(path)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                       and not p.name.startswith("."))
        if not files:
            raise GanforgeError(f"folder {str(root)!r} holds no images ({', '.join(IMAGE_EXTS)}); give a run "
                                f"directory, an exported generator or a folder of images")
        sizes, modes = {}, set()
        for p in files:
            try:
                with Image.open(p) as im:       # reads the header only
                    sizes.setdefault(im.size, p)
                    modes.add(im.mode)
            except Exception as e:  # PIL raises many types for a broken file
                raise GanforgeError(f"cannot read image {str(p)!r} ({type(e).__name__}: {e}); remove or fix it") \
                    from None
        if len(sizes) > 1:
            (s1, p1), (s2, p2) = list(sizes.items())[:2]
            raise GanforgeError(f"images in {str(root)!r} have mixed sizes: {p1.name} is {s1[0]}x{s1[1]} but "
                                f"{p2.name} is {s2[0]}x{s2[1]}; metrics need one size: resize them all first")
        (w, h), = sizes
        self.size = (w, h)
        self.native_channels = 1 if modes <= {"L", "1", "I;16", "I", "LA"} else 3
        parts = [p.relative_to(root).parts for p in files]
        names = {q[0] for q in parts if len(q) > 1}
        labelled = all(len(q) > 1 for q in parts) and all(n.isdigit() for n in names)
        self.labels = torch.tensor([int(q[0]) for q in parts]) if labelled else None
        self.files, self.root = files, root
        self.kind = "image"
        self.conditional = self.labels is not None
        self.num_classes = int(self.labels.max()) + 1 if labelled else 0
        self.available = len(files)
        self.describe = {"kind": "folder", "path": str(root), "images": len(files), "size": [w, h],
                         "labels": "from sub-folder names" if labelled else None}
        self.set_channels(channels or self.native_channels)

    def set_channels(self, channels: int) -> None:
        """Read every image as L (1) or RGB (3): the reference's channel count decides."""
        self.channels = channels
        self.shape = (channels, self.size[1], self.size[0])
        self.describe["channels"] = channels

    def batches(self, num: int, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor | None]]:
        # a seeded subset when fewer than all images are asked for
        order = (torch.arange(len(self.files)) if num >= len(self.files)
                 else torch.randperm(len(self.files), generator=torch.Generator().manual_seed(seed))[:num])
        mode = "L" if self.channels == 1 else "RGB"
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            arrays = []
            for i in idx.tolist():
                a = np.asarray(open_image(self.files[i]).convert(mode))   # as folder: data reads it
                arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
            x = uint8_to_float(torch.from_numpy(np.stack(arrays)))
            yield x, (self.labels[idx] if self.labels is not None else None)


def folder_data(path, channels: int | None) -> tuple[Data, object]:
    """A `folder:` reference read as it is stored (no resize, no crop), as pytorch-fid reads a folder: for
    non-square samples, which ganforge.data's square centre crop could not match."""
    src = FolderSource(Path(path), channels)
    x = torch.cat([((b + 1) * 127.5).round().to(torch.uint8) for b, _ in src.batches(src.available, 256, 0)])
    return Data(x, src.labels), image_info(f"folder:{path}", x, src.labels, [])


def open_source(path, device) -> GeneratorSource | FolderSource:
    """A run directory, a checkpoint folder, an exported generator or zoo:NAME -> GeneratorSource; else a folder of images."""
    named = zoo.is_ref(path)          # zoo:NAME is no path of the user's
    p = path if named else Path(path)
    if not named and not p.exists():
        raise GanforgeError(f"{str(p)!r} does not exist; give a run directory, an exported generator or a "
                            f"folder of images")
    if not named and not p.is_dir():
        raise GanforgeError(f"{str(p)!r} is a file; give a run directory, an exported generator or a folder "
                            f"of images")
    if not runs.is_loadable(p):
        return FolderSource(p)
    folder, run, kind = runs.locate(p)
    gen = runs.generator(folder, run)
    gen.G.to(device)
    describe = {"kind": kind, "path": str(p), "recipe": gen.recipe.name, "data": gen.info.spec,
                "config_seed": getattr(gen.recipe.cfg, "seed", None)}
    if kind in ("run", "checkpoint"):
        describe["checkpoint"] = folder.name
    return GeneratorSource(gen.recipe, gen.G, gen.info, describe, device=torch.device(device))


def untrained_source(recipe, info, device) -> GeneratorSource:
    """The recipe's G as the trainer initialises it (torch.manual_seed(cfg.seed), then build()), without
    touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.cfg.seed)
        nets = recipe.build()
    G = nets[recipe.sampler].to(device)
    return GeneratorSource(recipe, G, info, {"kind": "untrained generator", "recipe": recipe.name,
                                             "init_seed": recipe.cfg.seed}, device=torch.device(device))
