"""Mode collapse on the PacGAN 2-D mixtures (Lin et al. 2018, arXiv:1712.04086, Table 1).

Protocol: toy:ring (8 Gaussians, radius 1, std 0.01) and toy:grid (25 Gaussians on {-4..4}^2, std 0.05),
100,000 training points; after training, 2,500 points from G (its EMA copy when ema_decay > 0); a point is
high quality if its distance to the nearest mean is < 3 std; a mode is captured with >= 1 HQ point; reverse
KL between the HQ mode histogram and uniform (ganforge.metrics.stats.mode_coverage). One row per seed, then
the mean. PacGAN reports the mean over 10 trials: ring PacGAN4 7.8 / 95.9% / 0.07, grid 24.8 / 93.6% / 0.04.

    python benchmarks/mode_collapse.py --recipe gan --preset ring-best --seeds 5   # pac=4 d_steps=3 EMA, 60k steps
    python benchmarks/mode_collapse.py --recipe gan --preset grid-best --seeds 5   # pac=4 d_steps=2 batch 1024, 30k
    python benchmarks/mode_collapse.py --recipe gan --preset ring --seeds 5 steps=15000   # the plain GAN baseline
    python benchmarks/mode_collapse.py --recipe gan --preset ring --seeds 1 pac=4 steps=2000   # overrides
    python benchmarks/mode_collapse.py --recipe wgan --preset ring --seeds 5      # clip 0.1, RMSProp 5e-4, 4k steps
    python benchmarks/mode_collapse.py --recipe wgan_gp --preset ring --seeds 5   # the toy lambda (gp_weight)
    python benchmarks/mode_collapse.py --recipe wgan --preset ring-paper --seeds 5   # Algorithm 1's c and lr

For comparison, gan --preset ring-best (docs/stable.md): 8.0 modes on every seed, 97.5% high quality, KL 0.0032.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.config import parse_overrides
from ganforge.metrics.stats import mode_coverage


def run_seed(recipe: str, preset: str | None, seed: int, overrides: dict, out: Path, num: int) -> dict:
    t0 = time.perf_counter()
    summary = ganforge.train(recipe, preset=preset, out=out / f"seed{seed}", progress=False, seed=seed,
                             **{"sample_every": 10**9, "checkpoint_every": 10**9, "log_every": 500, **overrides})
    g = ganforge.load(summary["run_dir"])
    with torch.no_grad():
        x = g.sample(num, seed=1000 + seed).float()
    extra = g.info.extra
    m = mode_coverage(x.numpy(), extra["means"], extra["std"])
    m.pop("histogram")
    return {"seed": seed, **m, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="gan")
    p.add_argument("--preset", default=None)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--num", type=int, default=2500, help="generated points evaluated (PacGAN: 2,500)")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = parse_overrides(a.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp)
        rows = []
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            rows.append(run_seed(a.recipe, a.preset, seed, overrides, out, a.num))
            r = rows[-1]
            print(f"seed {r['seed']}: modes {r['modes']}  high quality {100 * r['high_quality']:.1f}%  "
                  f"reverse KL {r['reverse_kl']:.4f}  ({r['seconds']} s)", flush=True)
    mean = {k: statistics.fmean(r[k] for r in rows) for k in ("modes", "high_quality", "reverse_kl")}
    label = f"{a.recipe}" + (f" --preset {a.preset}" if a.preset else "") + "".join(f" {s}" for s in a.overrides)
    print(f"{label}: {len(rows)} seeds, mean modes {mean['modes']:.2f}, min modes {min(r['modes'] for r in rows)}, "
          f"high quality {100 * mean['high_quality']:.1f}% (min {100 * min(r['high_quality'] for r in rows):.1f}%), "
          f"reverse KL {mean['reverse_kl']:.4f} (max {max(r['reverse_kl'] for r in rows):.4f})")
    if a.json:
        Path(a.json).write_text(json.dumps({"label": label, "rows": rows, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
