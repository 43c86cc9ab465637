"""StyleGAN (arXiv:1812.04948) pictures: the style-mixing grid (Fig. 3), a truncation sweep (Fig. 8) and a w walk.

Trains `stylegan` on `shapes` at 32 px (or reuses --run), then writes
  docs/images/stylegan_style_mixing.png   `ganforge style-mix RUN` (sources A in rows, B in columns;
                                          blocks: coarse 4-8 px styles, middle 16 px, fine 32 px from B)
  docs/images/stylegan_truncation.png     rows psi = 1, 0.7, 0.5, 0 for the same latents (psi = 0 gives
                                          the image of w_avg in every column)
  docs/images/stylegan_walk_w.png         `ganforge interpolate RUN --space w` as a strip
and prints the training time and the pixel distance between style-mixed cells and their sources (how much of
each picture moves when a band of styles comes from B).

    python benchmarks/style_mixing.py [--steps 2000] [--batch-size 32] [--mode adain|modulated] [--run DIR]
    python benchmarks/style_mixing.py --steps 5000 --extend     # continue the last run to 5,000 steps
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

import ganforge
from ganforge.cli import main as cli
from ganforge.commands.style_mix import style_bands, style_mix_grid

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="an existing stylegan run to draw from (skips training)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "benchmarks"))
    p.add_argument("--data", default="shapes:32")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mode", default="adain")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--extend", action="store_true", help="continue the benchmark's earlier run up to --steps")
    p.add_argument("--truncation", type=float, default=1.0, help="psi of the style-mixing grid's sources")
    p.add_argument("--images", default=str(IMAGES), help="where the PNGs go")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    run = Path(a.run) if a.run else Path(a.runs) / f"stylegan-{a.mode}-shapes"
    if not a.run:
        t = time.perf_counter()
        if a.extend and (run / "checkpoints").is_dir():
            # resume is bit-identical, and samples/checkpoint timing never touch the weights: the same
            # weights as a fresh run of --steps
            s = ganforge.resume(run, steps=a.steps, progress=False)
        else:
            shutil.rmtree(run, ignore_errors=True)   # the benchmark's own folder: start afresh
            s = ganforge.train("stylegan", out=run, progress=False, data=a.data, mode=a.mode, steps=a.steps,
                               batch_size=a.batch_size, seed=a.seed, sample_every=max(1, a.steps // 6),
                               checkpoint_every=10 ** 9, log_every=50)
        print(f"trained stylegan ({a.mode}) on {a.data}: to step {a.steps} x {a.batch_size} in "
              f"{time.perf_counter() - t:.0f} s; last losses "
              + ", ".join(f"{k}={v:.3f}" for k, v in s["last_log"].items() if k.endswith("loss")))
    images = Path(a.images)
    cli(["style-mix", str(run), "--out", str(images / "stylegan_style_mixing.png"), "--seed", str(a.seed),
         "--truncation", str(a.truncation), "--scale", "2"])
    cli(["interpolate", str(run), "--space", "w", "-n", "4", "--points", "3", "--frames", "6",
         "--out", str(images / "stylegan_walk_w.png"), "--seed", str(a.seed)])

    g = ganforge.load(run)
    G = g.G
    with torch.no_grad():
        z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(a.seed + 7))
        rows = [g.recipe.generate(G, z, truncation=psi).clamp(-1, 1) for psi in (1.0, 0.7, 0.5, 0.0)]
        g.save(torch.cat(rows), images / "stylegan_truncation.png", nrow=8)
        print(f"truncation sweep: {images / 'stylegan_truncation.png'} (rows psi = 1, 0.7, 0.5, 0)")
        # how far each band moves the picture: mean |A-with-B's-band - A| over the grid's cells
        rows_, cols = 4, 5
        grid, nrow = style_mix_grid(G, rows_, cols, a.seed, a.truncation)
        cells = grid[nrow:].view(len(style_bands(G.resolution)), rows_, nrow, *grid.shape[1:])
        for b, name in enumerate(style_bands(G.resolution)):
            src, mixed = cells[b, :, :1], cells[b, :, 1:]
            print(f"band {name:6s} (styles {style_bands(G.resolution)[name]}): mean |mix - A| = "
                  f"{(mixed - src).abs().mean():.3f}")


if __name__ == "__main__":
    main()
