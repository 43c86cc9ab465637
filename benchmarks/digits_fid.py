"""Digits FID of the adversarial families at an equal training budget, with the floor and ceiling beside them.

Every recipe trains on scikit-learn's digits (train split, 1,437 images) at 8x8 (their own resolution; --resolution 16 upsamples) for the same number of
generator updates and batch size, with its paper defaults otherwise (wgan/wgan_gp/sngan: 5 critic updates per
G update, as their papers do). FID uses the bundled digits classifier's 128-d features
(ganforge.metrics.digits; inputs area-resized back to the data's 8x8): N = 360 generated samples (mean over
3 draws) against the 1,437 training images. Floor: the 360 real test images (never trained on) through the
same pipeline; ceiling: each recipe's untrained generator. FID is biased by N: compare only at this N.
The digits score is the Inception Score formula with the same classifier (10 is the maximum).

    python benchmarks/digits_fid.py                          # all recipes, 1500 steps each
    python benchmarks/digits_fid.py --recipes dcgan,sngan steps=500
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.config import parse_overrides
from ganforge.data import resolve
from ganforge.metrics.digits import digit_score, load_digits_evaluator
from ganforge.metrics.stats import fid

RECIPES = ("gan", "dcgan", "cgan", "wgan", "wgan_gp", "sngan", "lsgan")
N, DRAWS = 360, 3


def features(evaluator, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([evaluator.features(b) for b in x.split(512)]).double().numpy()


def score(evaluator, ref_feats, sample) -> tuple[float, float]:
    fids, scores = [], []
    for k in range(DRAWS):
        x = sample(N, 100 + k)
        fids.append(fid(features(evaluator, x), ref_feats))
        scores.append(digit_score(evaluator, x, splits=1)[0])
    return sum(fids) / DRAWS, sum(scores) / DRAWS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--resolution", type=int, default=8, help="training resolution (8 = the data's own)")
    p.add_argument("--out", default=None)
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every recipe")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    evaluator = load_digits_evaluator()
    common = {"data": "digits", "resolution": a.resolution, "batch_size": 64, "steps": a.steps, "sample_every": 10**9,
              "checkpoint_every": 10**9, "log_every": 500, **parse_overrides(a.overrides)}
    train, _ = resolve("digits", split="train", resolution=a.resolution)
    test, _ = resolve("digits", split="test", resolution=a.resolution)
    ref = features(evaluator, train.batch(torch.arange(len(train)))["real"])
    floor_x = test.batch(torch.arange(len(test)))["real"]
    floor = (fid(features(evaluator, floor_x), ref), digit_score(evaluator, floor_x, splits=1)[0])
    print(f"protocol: digits CNN features, N={N} generated (mean of {DRAWS} draws) vs {len(train)} train images; "
          f"{a.steps} G updates, batch {common['batch_size']}, {a.resolution}x{a.resolution}")
    print("| recipe | FID | digits score | untrained G FID (ceiling) | train s |")
    print("|---|---|---|---|---|")
    print(f"| real test images (floor) | {floor[0]:.2f} | {floor[1]:.2f} | | |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp)
        for name in a.recipes.split(","):
            t0 = time.perf_counter()
            s = ganforge.train(name, preset="digits", out=out / name, progress=False, **common)
            secs = time.perf_counter() - t0
            g = ganforge.load(s["run_dir"])
            trained = score(evaluator, ref, lambda n, seed: g.sample(n, seed=seed).float())
            # ceiling: the same recipe's generator before any update (built as the trainer builds it)
            cls, cfg = ganforge.api.make_config(name, "digits", common)
            recipe = cls(cfg, g.info)
            torch.manual_seed(cfg.seed)
            G0 = recipe.build()[recipe.sampler].eval()
            with torch.no_grad():
                untrained = score(evaluator, ref, lambda n, seed: recipe.generate(
                    G0, recipe.sample_inputs(n, torch.Generator().manual_seed(seed)), recipe.sample_labels(n)).float())
            print(f"| {name} | {trained[0]:.2f} | {trained[1]:.2f} | {untrained[0]:.1f} | {secs:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
