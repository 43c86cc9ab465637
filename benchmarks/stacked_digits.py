"""Mode collapse on stacked digits: three independent 8x8 digits as R, G, B channels = 1,000 modes
(`digits:stacked`, the Stacked-MNIST protocol of VEEGAN / PacGAN, arXiv:1712.04086 Sec. 5.1, Table 3).

After training, N = 26,000 samples (PacGAN's count) are drawn; the bundled digits classifier labels each
channel, the mode is 100 d0 + 10 d1 + d2, and we report the modes covered and KL(mode histogram || uniform)
in nats (ganforge.metrics.digits.stacked_modes). The same count on 26,000 real training samples is printed
first: the evaluator's own error sets the best reachable KL. PacGAN on Stacked MNIST (MNIST, not our 8x8
digits): DCGAN 99 modes / KL 3.40, PacDCGAN2 1000 / 0.06.

    python benchmarks/stacked_digits.py --recipe dcgan steps=3000            # the plain DCGAN baseline
    python benchmarks/stacked_digits.py --recipe dcgan pac=2 steps=3000      # PacDCGAN2
    python benchmarks/stacked_digits.py --recipe r3gan --preset digits:stacked --ablation   # R3GAN Table 1

--ablation trains the four losses of R3GAN's loss ablation (arXiv:2501.05441, Sec. 2.3 and Table 1: GAN + R1,
RpGAN + R1, GAN + R1 + R2, RpGAN + R1 + R2) on the same networks, seeds and budget, adding each row's keys to
the overrides given, plus the plain non-saturating GAN with no penalty; a run that diverges (a NaN, which the
trainer stops on) is reported as such, as the paper reports "fail".
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
from ganforge.errors import GanforgeError
from ganforge.metrics.digits import load_digits_evaluator, stacked_modes

# R3GAN's loss ablation: each row sets the loss and switches penalties off; a penalty left on keeps the run's gamma
ABLATION = {"GAN": {"loss": "ns", "r1_gamma": 0.0, "r2_gamma": 0.0},
            "GAN + R1": {"loss": "ns", "r2_gamma": 0.0},
            "RpGAN + R1": {"loss": "rpgan", "r2_gamma": 0.0},
            "GAN + R1 + R2": {"loss": "ns"},
            "RpGAN + R1 + R2": {"loss": "rpgan"}}
BASE = {"data": "digits:stacked", "resolution": 8, "sample_every": 10**9, "checkpoint_every": 10**9,
        "log_every": 500}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="dcgan")
    p.add_argument("--preset", default=None)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--num", type=int, default=26_000)
    p.add_argument("--out", default=None)
    p.add_argument("--ablation", action="store_true", help="R3GAN's loss ablation (the rows of ABLATION)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    evaluator = load_digits_evaluator()
    real, _ = resolve("digits:stacked", split="train")
    idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:a.num]
    ref = stacked_modes(evaluator, real.batch(idx)["real"])
    print(f"real digits:stacked ({a.num} training samples): modes {ref['modes']}, KL {ref['kl']:.4f}"
          f"{split(ref)}", flush=True)
    overrides = {**BASE, **parse_overrides(a.overrides)}
    label = a.recipe + (f" --preset {a.preset}" if a.preset else "") + "".join(f" {s}" for s in a.overrides)
    rows = {name: {**overrides, **keys} for name, keys in ABLATION.items()} if a.ablation else {label: overrides}
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for row, keys in rows.items():
            for seed in range(a.first_seed, a.first_seed + a.seeds):
                out = (Path(a.out) if a.out else Path(tmp)) / (row.replace(" ", "") if a.ablation else "") / f"seed{seed}"
                m = run(a, keys, out, seed, evaluator)
                table.append((row, seed, m))
                print(f"{row}{' (' + label + ')' if a.ablation else ''} seed {seed}: " + (
                    f"modes {m['modes']} / 1000, KL {m['kl']:.4f}{split(m)} ({m['seconds']:.0f} s)"
                    if m["modes"] is not None
                    else f"diverged: {m['error']} ({m['seconds']:.0f} s)"), flush=True)
    if a.ablation or a.seeds > 1:
        print(f"\n{label}, {a.num} samples, seeds {a.first_seed}-{a.first_seed + a.seeds - 1} (mean; worst)\n| loss | modes | KL |\n|---|---|---|")
        for row in rows:
            ms = [m for r, _, m in table if r == row]
            ok = [m for m in ms if m["modes"] is not None]
            if len(ok) < len(ms):
                print(f"| {row} | diverged on {len(ms) - len(ok)} of {len(ms)} seeds | |")
                continue
            modes, kl = [m["modes"] for m in ok], [m["kl"] for m in ok]
            print(f"| {row} | {sum(modes) / len(modes):.1f} ({min(modes)}) | {sum(kl) / len(kl):.3f} ({max(kl):.3f}) |")
    return 0


def split(m: dict) -> str:
    """KL = the channels' own KLs + their dependence (ganforge.metrics.digits.stacked_modes)."""
    return f" = channels {' + '.join(f'{k:.4f}' for k in m['channel_kl'])} + dependence {m['dependence']:.4f}"


def run(a, keys: dict, out: Path, seed: int, evaluator) -> dict:
    """Train one seed and count its modes on a.num samples of its (EMA) generator."""
    t0 = time.perf_counter()
    try:
        s = ganforge.train(a.recipe, preset=a.preset, out=out, progress=False, seed=seed, **keys)
    except GanforgeError as e:     # the trainer's NaN/inf stop
        return {"modes": None, "kl": None, "error": str(e).split(";")[0], "seconds": time.perf_counter() - t0}
    g = ganforge.load(s["run_dir"])
    with torch.no_grad():
        x = torch.cat([g.sample(1000, seed=10_000 * (seed + 1) + k).float() for k in range(-(-a.num // 1000))])
    return {**stacked_modes(evaluator, x[:a.num]), "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    sys.exit(main())
