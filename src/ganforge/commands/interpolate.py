"""`ganforge interpolate RUN --space z|w --out walk.gif`: a latent walk through `--points` random key latents
and back to the first (a loop), `--frames` frames between two keys, `-n` walks side by side.

z space: spherical interpolation (slerp), which keeps interpolants at the norm Gaussian latents have
(White 2016, arXiv:1609.04468); any recipe. w space (StyleGAN, Karras et al. 2019, arXiv:1812.04948, §4):
linear interpolation of w = f(z), the space the paper shows to be less entangled, and where its
perceptual path length is measured; stylegan runs only. A .gif out writes an animation, a .mp4 a video
(H.264 through imageio-ffmpeg: the `video` extra), a .png a strip (one row per walk, one column per frame);
frames are enlarged by --scale (nearest neighbour; by default to about 512 px wide).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..runs import load, samples_dir
from ..errors import GanforgeError
from ..recipes.base import ImageToImage
from ..viz import grid
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


AUTO_WIDTH = 512          # --scale 0: frames enlarged to about this width (8x8 digits are unreadable as they are)


def check_out(path, fps: int, scale: int = 0) -> Path:
    """The walk's file name, frame rate and scale, checked before anything is rendered or any folder made."""
    if fps < 1:                       # 0 divides by zero in the frame duration; < 0 meant 1 ms frames
        raise GanforgeError(f"--fps must be >= 1; got {fps}")
    if scale < 0:
        raise GanforgeError(f"--scale must be >= 0 (0 = auto); got {scale}")
    if Path(path).suffix.lower() == ".mp4" and not Path(path).is_dir():
        _video_writer()              # the extra is checked now, not after the walk is rendered
        return Path(path)
    return out_file(path, (".gif", ".png"), "interpolate writes an animation (.gif, or .mp4 with the video extra) "
                                            "or a strip (.png)")


def _video_writer():
    try:      # optional dependency (imageio + its ffmpeg binary), needed by .mp4 only: imported when asked for
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise GanforgeError("writing .mp4 needs the video extra: pip install 'ganforge[video]' (imageio and "
                            "imageio-ffmpeg); or write a .gif") from None
    return imageio


def enlarge(a, scale: int = 0):
    """H x W (x C) uint8 -> enlarged by `scale` (nearest neighbour); 0: to about AUTO_WIDTH wide."""
    factor = scale or max(1, AUTO_WIDTH // a.shape[1])
    return a.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else a


def save_walk(frames: list[Tensor], path: Path, fps: int = 12, scale: int = 0) -> Path:
    from PIL import Image

    path = check_out(path, fps, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        strip = torch.stack(frames, dim=1).flatten(0, 1)          # row = one walk, column = one frame
        Image.fromarray(enlarge(grid(strip, nrow=len(frames)), scale)).save(path)
        return path
    images = [enlarge(grid(x, nrow=min(8, x.shape[0])), scale) for x in frames]
    if path.suffix.lower() == ".mp4":
        _write_mp4(images, path, fps)
    else:
        pil = [Image.fromarray(a) for a in images]
        pil[0].save(path, save_all=True, append_images=pil[1:], duration=max(1, 1000 // fps), loop=0)
    return path


def _write_mp4(images: list, path: Path, fps: int) -> None:
    imageio = _video_writer()
    h, w = images[0].shape[:2]
    H, W = -(-h // 16) * 16, -(-w // 16) * 16          # H.264 macro blocks: pad (white, as the grid) to 16
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=16, ffmpeg_log_level="error") as out:
        for a in images:
            rgb = np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a
            out.append_data(np.pad(rgb, ((0, H - h), (0, W - w), (0, 0)), constant_values=255))


def interpolate(run, out=None, *, space: str = "z", n: int = 8, points: int = 4, frames: int = 12, fps: int = 12,
                scale: int = 0, seed: int = 0, truncation: float = 1.0, label: int | None = None) -> Path:
    """Render a latent walk of a run (run directory, checkpoint or export folder) and write it to `out`.

    The walk goes through `points` random key latents and back to the first, `frames` frames between two
    keys, `n` walks side by side; space "z" (slerp, any latent-variable recipe) or "w" (StyleGAN's lerp of
    w = f(z)); truncation: StyleGAN's psi; label: the class of a conditional recipe. out: .gif (animation at
    `fps`), .mp4 (video; needs the `video` extra) or .png (a strip: one row per walk); default
    RUN/samples/walk-SPACE-seedS.gif. scale enlarges each frame (nearest; 0 = about 512 px wide). Returns the
    path written.
    """
    out = Path(out) if out else samples_dir(run) / f"walk-{space}-seed{seed}.gif"
    check_out(out, fps, scale)
    g = load(run)
    return save_walk(latent_walk(g, space, n, points, frames, seed, truncation, label), out, fps, scale)


def run(args) -> int:
    print(interpolate(args.run, args.out, space=args.space, n=args.num, points=args.points, frames=args.frames,
                      fps=args.fps, scale=args.scale, seed=args.seed, truncation=args.truncation, label=args.label))
    return 0
