"""Pictures: image grids, scatter plots of points, the GAN paper's Figure 1, loss curves, GIFs; sample files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .data.tabular import write_csv

SCATTER_POINTS = 2000      # points a scatter draws at least (training-time and `ganforge sample`): modes show


def _figure(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
    """(figure, axes) like pyplot.subplots, on matplotlib.figure.Figure: no pyplot, so drawing never switches
    the process's backend (a notebook keeps its inline plots, a script its windows) nor adds to pyplot's figure
    list, and needs no display. Nothing else holds the figure: it is freed with its last reference."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> N x H x W x C uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    a = to_uint8(images)
    n, h, w, c = a.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = a[i]
    return out[..., 0] if c == 1 else out


def save_grid(images: torch.Tensor, path, nrow: int | None = None, upscale: int = 0) -> Path:
    from PIL import Image

    img = Image.fromarray(grid(images, nrow))
    # tiny images (8x8 digits) are enlarged with nearest neighbour so the grid is viewable
    factor = upscale or max(1, 256 // max(8, images.shape[-1] * math.ceil(math.sqrt(len(images)))) + 1)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return Path(path)


def save_columns(columns: dict[str, torch.Tensor], path, rows: int = 8, upscale: int = 0) -> Path:
    """Side-by-side columns under labels ("input | output | target"): each value is N images of one size
    (grey shown as RGB); N > rows wraps into further groups of the same columns to the right. Small images are
    enlarged (nearest) before the labels are drawn, so the text stays readable. Returns the path."""
    from PIL import Image, ImageDraw

    names = list(columns)
    images = [c.detach().float().cpu() for c in columns.values()]
    images = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in images]
    n, (h, w) = len(images[0]), images[0].shape[-2:]
    if any(c.shape[0] != n or c.shape[-2:] != (h, w) for c in images):
        raise ValueError(f"columns {names} need as many images of one size each; got "
                         f"{[tuple(c.shape) for c in images]}")
    groups = math.ceil(n / rows)
    order = [images[k][g * rows + r] if g * rows + r < n else torch.ones(3, h, w)   # blank cells: white
             for r in range(min(rows, n)) for g in range(groups) for k in range(len(names))]
    body = Image.fromarray(grid(torch.stack(order), nrow=groups * len(names)))
    factor = upscale or max(1, 96 // max(h, w))
    body = body.resize((body.width * factor, body.height * factor), Image.NEAREST)
    header = 14
    page = Image.new("RGB", (body.width, body.height + header), "white")
    page.paste(body, (0, header))
    draw, cell = ImageDraw.Draw(page), (w + 2) * factor
    for i in range(groups * len(names)):
        draw.text((2 * factor + i * cell + 2, 1), names[i % len(names)], fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    page.save(path)
    return Path(path)


def save_points(points: torch.Tensor, path, real: torch.Tensor | None = None, title: str = "") -> Path:
    """2-D: scatter of generated over real points; 1-D: histograms."""
    fig, ax = _figure(figsize=(5, 5))
    p = points.detach().float().cpu().numpy()
    r = real.detach().float().cpu().numpy() if real is not None else None
    if p.shape[1] == 1:
        if r is not None:
            ax.hist(r[:, 0], bins=80, density=True, alpha=0.5, label="real")
        ax.hist(p[:, 0], bins=80, density=True, alpha=0.5, label="generated")
        ax.legend()
    else:
        if r is not None:
            ax.scatter(r[:, 0], r[:, 1], s=2, c="#999999", label="real")
        ax.scatter(p[:, 0], p[:, 1], s=2, c="#d62728", label="generated")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return Path(path)


def write_samples(x: torch.Tensor, info, path: Path, real: torch.Tensor | None = None, nrow: int | None = None) -> Path:
    """Images -> grid PNG; 1-D/2-D points -> plot PNG; table rows -> CSV in the original columns."""
    if info.kind == "image":
        return save_grid(x, path, nrow=nrow)
    if info.kind == "points":
        return save_points(x, path, real=real, title=f"{len(x)} generated points")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, x.float().cpu(), info.extra["columns"])
    return Path(path)


def _panels(history: list[dict]) -> list[tuple[str, list[str]]]:
    """(y label, keys) of each panel of the loss plot: the phases' losses, the accuracies they log (D's on real
    and fake: a D near 1 on both is winning, near 1/2 is guessing) and the periodic evaluation's scores."""
    keys = sorted({k for row in history for k in row if "/" in k})
    evals = [k for k in keys if k.startswith("eval/")]
    losses = [k for k in keys if k.endswith("loss") and k not in evals]
    acc = [k for k in keys if "acc" in k.rsplit("/", 1)[1] and k not in evals]
    return [(label, ks) for label, ks in (("loss", losses), ("accuracy", acc), ("eval", evals)) if ks]


def losses_figure(history: list[dict]):
    """The figure save_losses writes, one panel per kind of value over a shared step axis (None: nothing
    logged)."""
    panels = _panels(history)
    if not panels:
        return None
    fig, axes = _figure(len(panels), 1, figsize=(7, 1 + 3 * len(panels)), sharex=True, squeeze=False)
    for ax, (label, keys) in zip(axes[:, 0], panels):
        for k in keys:
            pts = [(row["step"], row[k]) for row in history if k in row]
            # evaluations are sparse: markers show where each score was taken; so does a lone row (a run shorter
            # than log_every), which a line alone would not draw at all
            ax.plot(*zip(*pts), label=k, marker="o" if label == "eval" or len(pts) == 1 else None)
        if label == "accuracy":
            ax.set_ylim(-0.05, 1.05)
            ax.axhline(0.5, color="#bbbbbb", lw=0.5)      # chance: D cannot tell real from generated
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
    axes[-1, 0].set_xlabel("step")
    return fig


def save_losses(history: list[dict], path) -> Path | None:
    fig = losses_figure(history)
    if fig is None:
        return None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return Path(path)


@torch.no_grad()
def gauss1d_tv(x: torch.Tensor, mu: float, sd: float, bins: int = 100) -> float:
    """Total variation between the histogram of samples x (bins over mu +- 5 sd; mass outside counts as
    unmatched) and N(mu, sd^2)'s probability of each bin: 1/2 sum |p_g(bin) - p_data(bin)|, in [0, 1]."""
    x = x.double().flatten()
    edges = torch.linspace(mu - 5 * sd, mu + 5 * sd, bins + 1, dtype=torch.float64)
    counts = torch.histc(x, bins=bins, min=edges[0].item(), max=edges[-1].item()) / x.numel()
    cdf = 0.5 * (1 + torch.erf((edges - mu) / (sd * math.sqrt(2))))
    p = cdf[1:] - cdf[:-1]
    return 0.5 * ((counts - p).abs().sum() + (1 - counts.sum()) + (1 - p.sum())).item()


def figure1(recipe, nets, path, step: int, n: int = 100_000) -> Path:
    """Goodfellow 2014, Figure 1: p_data (black), p_g (green), D(x) (blue dashed) along x; the title gives what
    the picture shows: the total variation between p_g's histogram and p_data, and D's range where they overlap."""
    dens = recipe.info.extra["density"]
    mu, sd = dens["mean"], dens["std"]
    G, D = nets["G"], nets["D"]
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(recipe.cfg.seed + 2)
    fake = recipe.generate(G, recipe.noise(n, "cpu", generator=g).to(device)).float().cpu()[:, 0]
    lo, hi = mu - 5 * sd, mu + 5 * sd
    xs = torch.linspace(lo, hi, 400)
    p_data = torch.exp(-0.5 * ((xs - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    d_x = torch.sigmoid(D(xs[:, None].to(device)).float().cpu())
    # where both densities exceed a tenth of p_data's peak: Theorem 1's D = 1/2 is claimed where p_g = p_data
    p_g = torch.histc(fake, bins=100, min=lo, max=hi) / (n * (hi - lo) / 100)
    both = torch.minimum(p_data, p_g[((xs - lo) / (hi - lo) * 100).long().clamp(0, 99)]) > 0.1 * p_data.max()
    d_both = d_x[both] if both.any() else d_x
    fig, ax = _figure(figsize=(6, 3.5))
    ax.plot(xs, p_data, "k:", label="p_data")
    ax.hist(fake.clamp(lo, hi).numpy(), bins=100, range=(lo, hi), density=True, histtype="step", color="g",
            label="p_g")
    ax2 = ax.twinx()
    ax2.plot(xs, d_x, "b--", label="D(x)")
    ax2.set_ylim(0, 1)
    ax2.axhline(0.5, color="#bbbbbb", lw=0.5)
    ax.set_title(f"step {step}: TV(p_g, p_data) = {gauss1d_tv(fake, mu, sd):.3f}; "
                 f"D(x) in [{d_both.min():.2f}, {d_both.max():.2f}] where both > 0.1 max p_data", fontsize=9)
    fig.legend(loc="upper left", bbox_to_anchor=(0.1, 0.88))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return Path(path)
