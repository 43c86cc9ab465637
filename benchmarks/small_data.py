"""Small data: DCGAN on a folder of 200 `shapes` images, with adaptive discriminator augmentation and without.

ADA (Karras et al. 2020, arXiv:2006.06676) is meant for the case this measures: D sees the same few hundred
images for hundreds of epochs and memorises them, its accuracy on real and fake both near 1, and G stops
learning. The protocol:

- the first `--images` (200) images of the `shapes` train split, written to disk as PNG files and read back
  as `folder:DIR` (so ada=auto is on for it: ganforge/ada.py), at 32 px;
- dcgan at `--steps` (2,000) steps, batch 32, 32 channels in G and D (`g_width=32 d_width=32`: a quarter of
  the default's cost), each seed once with ada=on and once with ada=off (the same seed, everything else the same);
- shapes FID: the bundled shapes attribute classifier's 64-d penultimate features (`--features shapes` of
  ganforge.metrics) of 2,000 samples of G against the full shapes test split (5,000 images); the floor is
  200 -> the same 200 training images (a G that memorised them) and 2,000 other train images;
- whether the overfitting warning fired (D's accuracy on real and fake both > 0.9 for 5 log rows).

    python benchmarks/small_data.py                  # seeds 0-1 x (on, off): 4 runs of 2,000 steps, 1 thread each
    python benchmarks/small_data.py --first-seed 1 --seeds 1 --out runs/small g_width=64 d_width=64

Time: one seed (both arms) took 35 min on the 2 shared cores at a load of ~11 (ADA's augmentation of every D
input about doubles a step at p near 1); about a quarter of that on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ganforge
from ganforge.config import parse_overrides
from ganforge.data.specs_shapes import load_shapes
from ganforge.metrics.features import load_extractor
from ganforge.metrics.stats import fid

RESOLUTION = 32


def write_folder(root: Path, n: int) -> str:
    """The first n shapes train images as PNG files; returns the folder spec."""
    data, _ = load_shapes(RESOLUTION, "train", n=n)
    root.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(data.x.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(np.ascontiguousarray(im)).save(root / f"{i:04d}.png")
    return f"folder:{root}"


def features(ex, x: torch.Tensor) -> np.ndarray:
    return torch.cat([ex(b.float())["features"].double() for b in x.split(500)]).numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=2, help="this many seeds, from --first-seed")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--num", type=int, default=2000, help="samples scored per run")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", default=None)
    p.add_argument("overrides", nargs="*", help="key=value config overrides for both arms")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    ex = load_extractor("shapes")
    test, _ = load_shapes(RESOLUTION, "test")
    ref = features(ex, test.batch(torch.arange(len(test)))["real"])
    train, _ = load_shapes(RESOLUTION, "train", n=a.images + a.num)
    x = train.batch(torch.arange(len(train)))["real"]
    floor = {"memorised": fid(features(ex, x[: a.images].repeat(a.num // a.images + 1, 1, 1, 1)[: a.num]), ref),
             "other train images": fid(features(ex, x[a.images:]), ref)}
    print(f"shapes FID vs the {len(test)} test images: G = the {a.images} training images {floor['memorised']:.2f}; "
          f"{a.num} other train images {floor['other train images']:.2f}", flush=True)
    overrides = parse_overrides(a.overrides)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out) if a.out else Path(tmp)
        spec = write_folder(out / "images", a.images)
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            for arm in ("on", "off"):
                t0 = time.perf_counter()
                s = ganforge.train("dcgan", out=out / f"ada-{arm}-seed{seed}", progress=False, seed=seed,
                                   **{"data": spec, "resolution": RESOLUTION, "steps": a.steps, "batch_size": 32,
                                      "sample_every": a.steps, "checkpoint_every": a.steps, "log_every": 100,
                                      "ada": arm, "threads": 1, "g_width": 32, "d_width": 32, **overrides})
                g = ganforge.load(s["run_dir"])
                score = fid(features(ex, g.sample(a.num, seed=100 + seed)), ref)
                last = s["last_log"]
                rows.append({"seed": seed, "ada": arm, "fid": score, "warned": bool(s["warnings"]),
                             "augment_p": last.get("D/augment_p"), "acc_real": last.get("D/acc_real"),
                             "acc_fake": last.get("D/acc_fake"), "seconds": round(time.perf_counter() - t0, 1),
                             "samples": s["samples"]})
                r = rows[-1]
                p_txt = f"  p {r['augment_p']:.3f}" if r["augment_p"] is not None else ""
                print(f"seed {seed} ada={arm}: shapes FID {score:.2f}  overfitting warning "
                      f"{'fired' if r['warned'] else 'no'}{p_txt}  D acc real/fake {r['acc_real']:.2f}/"
                      f"{r['acc_fake']:.2f}  ({r['seconds']} s)", flush=True)
    for arm in ("on", "off"):
        f = [r["fid"] for r in rows if r["ada"] == arm]
        print(f"ada={arm}: shapes FID {statistics.fmean(f):.2f} (per seed {', '.join(f'{v:.2f}' for v in f)}), "
              f"warning fired on {sum(r['warned'] for r in rows if r['ada'] == arm)} of {len(f)} seeds")
    better = sum(on["fid"] < off["fid"] for on, off in zip(rows[::2], rows[1::2]))
    print(f"ada=on better than ada=off on {better} of {a.seeds} seeds")
    if a.json:
        Path(a.json).write_text(json.dumps({"floor": floor, "rows": rows, "steps": a.steps}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
