"""`ganforge interpolate RUN --space z|w --out walk.gif`: a latent walk through `--points` random key latents
and back to the first (a loop), `--frames` frames between two keys, `-n` walks side by side.

z space: spherical interpolation (slerp), which keeps interpolants at the norm Gaussian latents have
(White 2016, arXiv:1609.04468); any recipe. w space (StyleGAN, Karras et al. 2019, arXiv:1812.04948, §4):
linear interpolation of w = f(z), the space the paper shows to be less entangled, and where its
perceptual path length is measured; stylegan runs only. A .gif out writes an animation, a .png a strip
(one row per walk, one column per frame).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from ..runs import load
from ..errors import GanforgeError
from ..recipes.base import ImageToImage
from ..viz import grid, save_grid
from . import out_file


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between rows of a and b (linear where they are parallel)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    safe = so.abs() > 1e-6
    s = torch.where(safe, so, torch.ones_like(so))
    out = torch.sin((1 - t) * omega) / s * a + torch.sin(t * omega) / s * b
    return torch.where(safe, out, (1 - t) * a + t * b)


def lerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    return a + t * (b - a)


def walk(keys: Tensor, frames: int, fn) -> list[Tensor]:
    """keys: P x N x d. Frames from key 0 through key P-1 and back to key 0, `frames` per leg (end excluded)."""
    out = []
    for p in range(keys.shape[0]):
        a, b = keys[p], keys[(p + 1) % keys.shape[0]]
        out += [fn(a, b, i / frames) for i in range(frames)]
    return out


@torch.no_grad()
def latent_walk(g, space: str, n: int, points: int, frames: int, seed: int = 0, truncation: float = 1.0,
                label: int | None = None) -> list[Tensor]:
    """A list of frames, each N x C x H x W in [-1, 1], from a loaded ganforge.Generator `g`."""
    if space not in ("z", "w"):
        raise GanforgeError(f"--space must be z or w; got {space!r}")
    if n < 1 or points < 2 or frames < 1:
        raise GanforgeError(f"interpolate needs -n >= 1, --points >= 2 and --frames >= 1 (got {n}, {points}, {frames})")
    if not 0.0 <= truncation <= 1.0:
        raise GanforgeError(f"--truncation must be in [0, 1]; got {truncation}")
    recipe, G = g.recipe, g.G
    if isinstance(recipe, ImageToImage):
        raise GanforgeError(f"{recipe.name} maps images to images: it has no latent space to walk; interpolate "
                            f"works on latent-variable generators (dcgan, gan, cgan, stylegan, ...)")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    keys = torch.stack([recipe.noise(n, "cpu", generator=gen) for _ in range(points)]).to(device)
    if g.info.kind != "image":
        raise GanforgeError(f"interpolate draws images; this {recipe.name} run generates {g.info.kind}")
    if space == "w" and not all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws")):
        raise GanforgeError(f"--space w needs a stylegan run (this is a {recipe.name} run); use --space z")
    if truncation != 1.0 and "truncation" not in recipe.sample_kwargs:
        raise GanforgeError(f"--truncation applies to stylegan runs; {recipe.name} has no w_avg to truncate towards")
    if space == "w":
        ws_keys = torch.stack([G.mapping(k, truncation) for k in keys])
        return [G.synthesis(w.unsqueeze(1).expand(-1, G.num_ws, -1), noise="const").clamp(-1, 1)
                for w in walk(ws_keys, frames, lerp)]
    labels = None
    k = g.info.num_classes
    if label is not None:
        if not k:
            raise GanforgeError("this generator is unconditional; drop --label")
        if not 0 <= label < k:
            raise GanforgeError(f"--label must be in 0..{k - 1}; got {label}")
        labels = torch.full((n,), label, dtype=torch.long, device=device)
    elif recipe.conditional:
        labels = (torch.arange(n) % k).to(device)
    kw = {"truncation": truncation} if truncation != 1.0 else {}
    return [recipe.generate(G, z, labels, **kw).float().clamp(-1, 1) for z in walk(keys, frames, slerp)]


def check_out(path, fps: int) -> Path:
    """The walk's file name and frame rate, checked before anything is rendered or any folder made."""
    if fps < 1:                       # 0 divides by zero in the frame duration; < 0 meant 1 ms frames
        raise GanforgeError(f"--fps must be >= 1; got {fps}")
    return out_file(path, (".gif", ".png"), "interpolate writes an animation (.gif) or a strip (.png)")


def save_walk(frames: list[Tensor], path: Path, fps: int = 12) -> Path:
    from PIL import Image

    path = check_out(path, fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        strip = torch.stack(frames, dim=1).flatten(0, 1)          # row = one walk, column = one frame
        return save_grid(strip, path, nrow=len(frames))
    images = []
    for x in frames:
        a = grid(x, nrow=min(8, x.shape[0]))
        im = Image.fromarray(a)
        factor = max(1, 256 // max(im.width, im.height))         # small digits: enlarge for viewing
        images.append(im.resize((im.width * factor, im.height * factor), Image.NEAREST) if factor > 1 else im)
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0)
    return path


def add(subparsers) -> None:
    p = subparsers.add_parser("interpolate", help="latent walk (z: slerp, w: StyleGAN's lerp) as a GIF or strip",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="a run directory (or checkpoint / export folder)")
    p.add_argument("--out", metavar="FILE.gif|FILE.png", help="default: RUN/samples/walk-SPACE-seedS.gif")
    p.add_argument("--space", choices=["z", "w"], default="z")
    p.add_argument("-n", "--num", type=int, default=8, help="walks side by side")
    p.add_argument("--points", type=int, default=4, help="key latents on the loop")
    p.add_argument("--frames", type=int, default=12, help="frames between two keys")
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation", type=float, default=1.0, help="psi (stylegan runs; 1 = none)")
    p.add_argument("--label", type=int, help="class to draw (conditional recipes)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out) if args.out else Path(args.run) / "samples" / f"walk-{args.space}-seed{args.seed}.gif"
    check_out(out, args.fps)
    g = load(args.run)
    frames = latent_walk(g, args.space, args.num, args.points, args.frames, args.seed, args.truncation, args.label)
    print(save_walk(frames, out, args.fps))
    return 0
