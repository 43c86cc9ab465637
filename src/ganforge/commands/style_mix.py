"""`ganforge style-mix RUN --out grid.png`: the style-mixing figure of StyleGAN (Karras et al. 2019,
arXiv:1812.04948, §3.1 and Fig. 3).

Sources A go down the left column, sources B along the top row. Every other cell is synthesized from A's
styles with one band of layers copied from B: coarse (4^2-8^2: pose, shape, position), middle (16^2-32^2:
smaller features) or fine (64^2 and up: colour scheme, micro-structure). Below 64 px there are fewer
resolutions than the paper's three bands, so `style_bands` keeps coarse at 4^2-8^2 and gives the remaining
top resolutions to fine and middle in that order. One block of rows per band, in the order asked.
Noise inputs are the layers' fixed buffers, so only the styles differ between cells.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..runs import load, samples_dir
from ..errors import GanforgeError
from ..viz import save_grid
from . import out_file

BANDS = ("coarse", "middle", "fine")


def style_bands(resolution: int) -> dict[str, tuple[int, int]]:
    """Band -> [first, last + 1) style indices; style 2k and 2k + 1 drive resolution 4 * 2^k. Empty bands
    (only at 8 px and below) are left out."""
    sizes = [4 * 2 ** k for k in range(resolution.bit_length() - 2)]      # 4, 8, ..., resolution
    coarse = [s for s in sizes if s <= 8]
    middle = [s for s in sizes if 16 <= s <= 32]
    fine = [s for s in sizes if s >= 64]
    if not fine and len(middle) + len(coarse) > 1:     # small images: the top resolution is the fine band
        fine = [(middle or coarse).pop()]
    if not middle and len(coarse) > 1:
        middle = [coarse.pop()]
    out = {}
    for name, band in zip(BANDS, (coarse, middle, fine)):
        if band:
            out[name] = (2 * sizes.index(band[0]), 2 * sizes.index(band[-1]) + 2)
    return out


def copy_band(ws_a: Tensor, ws_b: Tensor, band: tuple[int, int]) -> Tensor:
    """ws_a with styles [lo, hi) taken from ws_b (both N x num_ws x w_dim)."""
    lo, hi = band
    return torch.cat([ws_a[:, :lo], ws_b[:, lo:hi], ws_a[:, hi:]], dim=1)


def check_style_generator(G, run) -> None:
    if not all(hasattr(G, a) for a in ("mapping", "synthesis", "num_ws")):
        raise GanforgeError(f"{str(run)!r} is not a stylegan run (its generator has no mapping / synthesis "
                            f"networks); train one with `ganforge train stylegan`")


@torch.no_grad()
def style_mix_grid(G, rows: int, cols: int, seed: int = 0, truncation: float = 0.7,
                   bands: tuple[str, ...] = BANDS) -> tuple[Tensor, int]:
    """Images for the figure, row-major, and the row length (cols + 1): a blank corner and the B sources,
    then for each band, rows of [A_i, A_i with B_j's band for every j]."""
    if rows < 1 or cols < 1:
        raise GanforgeError(f"style-mix needs --rows and --cols >= 1 (got {rows}, {cols})")
    if not 0.0 <= truncation <= 1.0:
        raise GanforgeError(f"--truncation must be in [0, 1]; got {truncation}")
    available = style_bands(G.resolution)
    bad = [b for b in bands if b not in available]
    if bad or not bands:
        raise GanforgeError(f"style bands {bad or list(bands)} are not available at {G.resolution} px; "
                            f"choose from {', '.join(available)}")
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    z_a = torch.randn(rows, G.z_dim, generator=g).to(device)
    z_b = torch.randn(cols, G.z_dim, generator=g).to(device)
    ws_a, ws_b = G.styles(z_a, truncation), G.styles(z_b, truncation)
    img_a, img_b = G.synthesis(ws_a, noise="const"), G.synthesis(ws_b, noise="const")
    blank = torch.ones_like(img_b[:1])
    out = [blank, img_b]
    for name in bands:
        # every (A_i, B_j) pair: A's styles repeated along the row, B's tiled down the column
        mixed = copy_band(ws_a.repeat_interleave(cols, 0), ws_b.repeat(rows, 1, 1), available[name])
        cells = G.synthesis(mixed, noise="const").view(rows, cols, *img_a.shape[1:])
        for i in range(rows):
            out += [img_a[i:i + 1], cells[i]]
    return torch.cat(out).clamp(-1, 1), cols + 1


AUTO_WIDTH = 1024          # --scale 0: the figure enlarged to about this width (a 6 x 13 grid of 32 px cells
                           # is 206 px wide as it is)


def style_mix(run, out=None, *, rows: int = 4, cols: int = 5, seed: int = 0, truncation: float = 0.7,
              bands=BANDS, scale: int = 0) -> Path:
    """Write StyleGAN's style-mixing figure of a stylegan run (run directory, checkpoint or export folder).

    `rows` sources A down the left, `cols` sources B along the top, one block of rows per band in `bands`
    ("coarse", "middle", "fine", or a comma-separated string), each cell A's styles with that band from B;
    truncation: psi for both sources. out: a .png (default RUN/samples/style-mix-seedS.png), enlarged by
    `scale` (nearest; 0 = about 1024 px wide). Returns the path written.
    """
    # the cheap checks first, so a bad --out or --scale fails before the grid is synthesized
    if scale < 0:
        raise GanforgeError(f"--scale must be >= 0 (0 = auto); got {scale}")
    out = Path(out) if out else samples_dir(run) / f"style-mix-seed{seed}.png"
    out_file(out, (".png",), "style-mix writes a PNG grid")
    g = load(run)
    check_style_generator(g.G, run)
    bands = tuple(b.strip() for b in bands.split(",") if b.strip()) if isinstance(bands, str) else tuple(bands)
    images, nrow = style_mix_grid(g.G, rows, cols, seed, truncation, bands)
    width = nrow * (images.shape[-1] + 2) + 2          # viz.grid's: 2 px of padding around every cell
    return save_grid(images, out, nrow=nrow, upscale=scale or max(1, AUTO_WIDTH // width))


def run(args) -> int:
    print(style_mix(args.run, args.out, rows=args.rows, cols=args.cols, seed=args.seed, truncation=args.truncation,
                    bands=args.bands, scale=args.scale))
    return 0
