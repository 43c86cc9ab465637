"""Do the unconditional image families draw shapes? dcgan, progan and stylegan on `shapes` at 32 px.

Each recipe trains its `shapes` preset (the defaults a user gets from `ganforge train RECIPE --preset shapes`)
once per seed on one CPU thread; then N samples of its generator (the EMA one where the recipe has one) are
judged by the bundled shapes attribute classifier (ganforge.metrics.attributes, never trained against):

- recognised: the share of samples whose kind head is >= 0.9 sure of circle, square or triangle
  (`kind_recognition`); the kinds' shares among those (a data set of thirds: each should be 20-47%);
- shapes FID: the classifier's 64-d penultimate features (`--features shapes` of ganforge.metrics) of the
  samples against the 5,000 test images.

The first row is the floor: N real train images judged and scored the same way (a G that drew the training
set). `--recipes reference` trains the PyTorch DCGAN tutorial's own loop instead (benchmarks/throughput.py's
Reference: fp32, lr 2e-4 for both, batch 64, no tricks) on the same images for `--reference-steps`: whether the
data are hard for the textbook DCGAN itself, not only for ganforge's. A run's last sample grid is copied to
--images as shapes_<recipe>.png (seed of the first run).

    python benchmarks/shapes.py                                   # dcgan, progan, stylegan; 3 seeds each
    python benchmarks/shapes.py --recipes dcgan --seeds 1 --set steps=1000
    python benchmarks/shapes.py --score runs/a runs/b             # judge finished runs, train nothing
    python benchmarks/shapes.py --recipes reference --seeds 2     # the tutorial's DCGAN loop, 3,000 steps
    python benchmarks/shapes.py --recipes dcgan --seeds 2 & python benchmarks/shapes.py --recipes dcgan \
        --seeds 1 --first-seed 2 --images /tmp                    # the seeds split over two processes
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ganforge
from ganforge.config import parse_overrides
from ganforge.data.specs_shapes import load_shapes
from ganforge.metrics.attributes import kind_recognition, load_attribute_classifier
from ganforge.metrics.features import load_extractor
from ganforge.metrics.stats import fid

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("circle", "square", "triangle")


class Judge:
    """The classifier and the test split's features, loaded once."""

    def __init__(self):
        self.classifier = load_attribute_classifier()
        self.extractor = load_extractor("shapes")
        test, _ = load_shapes(32, "test")
        self.ref = self.features(test.x.float() / 127.5 - 1)

    def features(self, x: torch.Tensor) -> np.ndarray:
        return torch.cat([self.extractor(b)["features"].double() for b in x.split(500)]).numpy()

    def __call__(self, x: torch.Tensor) -> dict:
        x = x.float().clamp(-1, 1)
        return {**kind_recognition(self.classifier, x), "fid": fid(self.features(x), self.ref)}


def train_reference(images: torch.Tensor, seed: int, steps: int, num: int, grid: Path | None) -> torch.Tensor:
    """The PyTorch DCGAN tutorial's loop on `images` (the shapes train split in [-1, 1]); `num` samples of its G
    (eval mode)."""
    from throughput import Reference     # benchmarks/ is on sys.path when this script runs
    from ganforge.viz import save_grid

    torch.manual_seed(seed)
    ref = Reference(images, 64, torch.device("cpu"))
    for _ in range(steps):
        ref.step()
    ref.netG.eval()
    with torch.no_grad():
        z = torch.randn(num, ref.nz, 1, 1, generator=torch.Generator().manual_seed(123))
        fake = torch.cat([ref.netG(b) for b in z.split(250)])
    if grid is not None:
        save_grid(fake[:64], grid)
    return fake


def line(name: str, r: dict, extra: str = "") -> str:
    shares = " / ".join(f"{r[f'share/{k}']:.2f}" for k in KINDS)
    return f"{name:<34} recognised {r['recognised']:.3f}  kinds {shares}  shapes FID {r['fid']:8.2f}{extra}"


def summary(name: str, rows: list[dict]) -> str:
    rec = [r["recognised"] for r in rows]
    f = [r["fid"] for r in rows]
    sd = f" +- {statistics.stdev(rec):.3f}" if len(rec) > 1 else ""
    return (f"{name}: recognised {statistics.fmean(rec):.3f}{sd} (worst {min(rec):.3f}), shapes FID "
            f"{statistics.fmean(f):.2f} (worst {max(f):.2f}), kinds within 20-47% on "
            f"{sum(all(0.2 <= r[f'share/{k}'] <= 0.47 for k in KINDS) for r in rows)} of {len(rows)} runs, "
            f"{statistics.fmean(r['seconds'] for r in rows):.0f} s a run")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="+", default=["dcgan", "progan", "stylegan"])
    p.add_argument("--preset", default="shapes")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from here (split seeds over processes)")
    p.add_argument("--num", type=int, default=1000, help="samples judged per run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench-shapes"), help="where the runs go")
    p.add_argument("--images", default=str(ROOT / "docs" / "images"), help="where the sample grids go")
    p.add_argument("--reference-steps", type=int, default=3000, help="steps of `--recipes reference`")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--score", nargs="*", default=None, metavar="RUN", help="judge these runs; train nothing")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    judge = Judge()
    train, _ = load_shapes(32, "train", n=a.num)
    floor = judge(train.x.float() / 127.5 - 1)
    print(line(f"real train images ({a.num})", floor), flush=True)
    rows: list[dict] = []
    for run in a.score or []:
        r = judge(ganforge.load(run).sample(a.num, seed=123))
        took = json.loads((Path(run) / "summary.json").read_text()).get("seconds_this_session", float("nan"))
        rows.append({"run": run, **r, "seconds": took})
        print(line(Path(run).name, r, f"  ({took:.0f} s)"), flush=True)
    if len(rows) > 1:
        print(summary("these runs", rows), flush=True)
    overrides = parse_overrides(a.set)
    # the reference's training images, rendered once for all its seeds
    images = load_shapes(32, "train")[0].x.float() / 127.5 - 1 if "reference" in a.recipes else None
    for recipe in a.recipes if a.score is None else []:
        mine = []
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            out = Path(a.runs) / f"{recipe}-{a.preset}-seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            if recipe == "reference":
                grid = Path(a.images) / "shapes_reference.png" if seed == a.first_seed else None
                r = judge(train_reference(images, seed, a.reference_steps, a.num, grid))
                mine.append({"recipe": recipe, "seed": seed, **r, "seconds": round(time.perf_counter() - t0, 1)})
                print(line(f"reference seed {seed}", r, f"  ({mine[-1]['seconds']:.0f} s)"), flush=True)
                continue
            s = ganforge.train(recipe, preset=a.preset, out=out, progress=False,
                               **{"seed": seed, "threads": a.threads, **overrides})
            seconds = time.perf_counter() - t0
            r = judge(ganforge.load(s["run_dir"]).sample(a.num, seed=123))
            mine.append({"recipe": recipe, "seed": seed, **r, "seconds": round(seconds, 1),
                         "warnings": s["warnings"]})
            print(line(f"{recipe} seed {seed}", r, f"  ({seconds:.0f} s)"), flush=True)
            if seed == a.first_seed and s["samples"]:
                Path(a.images).mkdir(parents=True, exist_ok=True)
                shutil.copy(s["samples"], Path(a.images) / f"shapes_{recipe}.png")
        print(summary(recipe, mine), flush=True)
        rows += mine
    if a.json:
        Path(a.json).write_text(json.dumps({"floor": floor, "rows": rows, "overrides": a.set}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
