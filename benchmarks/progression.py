"""Progressive GAN (arXiv:1710.10196) benchmarks: the progression grid, and digits FID beside DCGAN / StyleGAN.

grid: trains `progan` on a data set (default shapes at 32 px), stopping at the end of every stabilize phase
      (each resolution fully faded in) and resuming, and draws the same latents at every resolution:
      one row per resolution, enlarged (nearest) to the full size -> docs/images/progan_progression.png.
fid:  trains dcgan, progan, stylegan and r3gan on `digits` at 32x32 for the same number of training images
      (steps x batch) and scores each with the bundled digits evaluator (ganforge.metrics.digits features,
      ganforge.metrics.stats.fid): N generated images (EMA generator where the recipe has one) against the
      digits train split (1,437 images; the evaluator brings every image back to 8x8). The real test split
      against the train split gives the floor an evaluator this small can show. Sample grids of the three
      go to docs/images/digits32_{dcgan,progan,stylegan,r3gan}.png.

    python benchmarks/progression.py grid [--data shapes:32] [--images-per-phase 16000] [--final-steps 500]
    python benchmarks/progression.py fid [--steps 1500] [--batch-size 32] [--num 1437] [--seeds 3] [--set KEY=VALUE]
Runs on one CPU thread unless --threads says otherwise; prints its numbers and the wall time of each run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import ganforge
from ganforge.models.progressive import stage_widths

ROOT = Path(__file__).resolve().parent.parent


def progression(a) -> None:
    out = Path(a.runs) / "progan-progression"
    shutil.rmtree(out, ignore_errors=True)   # the benchmark's own folder: every invocation starts afresh
    res, bs, ipp = a.resolution, a.batch_size, a.images_per_phase
    stages = len(stage_widths(res, 1, 1))
    # stage k is stable (alpha = 1) from phase 2k on; its phase ends after (2k + 1) * ipp images
    stops = [(2 * k + 1) * ipp // bs for k in range(stages)]
    total = stops[-1] + a.final_steps
    cfg = dict(data=a.data, resolution=res, batch_size=bs, images_per_phase=ipp, steps=total, seed=a.seed,
               sample_every=max(1, total // 10), checkpoint_every=10 ** 9, log_every=25)
    g = torch.Generator().manual_seed(a.seed + 100)
    rows, t0 = [], time.perf_counter()
    for k, stop in enumerate(stops[:-1] + [total]):
        if k == 0:
            s = ganforge.train("progan", out=out, progress=False, stop_at=stop, **cfg)
        else:
            s = ganforge.resume(out, progress=False, stop_at=stop)
        G = ganforge.load(out)
        if k == 0:
            z = G.recipe.noise(a.num, "cpu", generator=g)
        with torch.no_grad():
            x = G.G(z, native=True).clamp(-1, 1)
        size = x.shape[-1]
        rows.append(torch.nn.functional.interpolate(x, size=(res, res), mode="nearest"))
        log = s["last_log"]
        print(f"{size:4d} px  stage {int(G.G.stage)} alpha {float(G.G.alpha):.2f}  step {s['step']:6d}  "
              f"W-estimate {log.get('D/wasserstein', float('nan')):.3f}  "
              f"elapsed {time.perf_counter() - t0:7.1f} s")
    from ganforge.viz import save_grid
    path = save_grid(torch.cat(rows), Path(a.image), nrow=a.num,
                     upscale=a.upscale)
    print(f"progression grid: {path} (rows: {', '.join(str(4 * 2 ** k) for k in range(stages))} px)")
    final = path.with_name(path.stem + "_final.png")           # the run's last fixed-noise grid (EMA G)
    shutil.copyfile(s["samples"], final)
    print(f"final samples: {final}")


@torch.no_grad()
def generated(run: Path, n: int) -> torch.Tensor:
    g = ganforge.load(run)
    return torch.cat([g.sample(min(500, n - i), seed=1000 + i).float().clamp(-1, 1) for i in range(0, n, 500)])


def save_samples(run: Path, name: str, images: Path = ROOT / "docs" / "images") -> Path:
    """32 samples (seed 0) of a run's generator as docs/images/digits32_NAME.png."""
    g = ganforge.load(run)
    return g.save(g.sample(32, seed=0).clamp(-1, 1), images / f"digits32_{name}.png", nrow=8)


def fid_table(a) -> None:
    from ganforge.api import load_data, make_config
    from ganforge.config import parse_overrides
    from ganforge.metrics.digits import evaluator_sha256, load_digits_evaluator
    from ganforge.metrics.stats import fid

    ev = load_digits_evaluator()
    _, cfg = make_config("dcgan", overrides={"data": "digits", "resolution": 32})
    train_x = load_data(cfg, "train")[0].batch(torch.arange(1437))["real"]
    test_x = load_data(cfg, "test")[0].batch(torch.arange(360))["real"]
    ref = ev.features(train_x).numpy()
    common = dict(data="digits", resolution=32, steps=a.steps, batch_size=a.batch_size,
                  sample_every=10 ** 9, checkpoint_every=10 ** 9, log_every=50)
    # progan: all 7 phases (4 px stable, then fade-in + stable per doubling) inside the budget; r3gan: its
    # digits32 preset (the lr and gamma found for this budget, docs/r3gan.md; the others run their defaults)
    ipp = max(a.batch_size, a.steps * a.batch_size // 8)
    every = {"dcgan": {}, "progan": {"images_per_phase": ipp}, "stylegan": {}, "r3gan": {}}
    presets = {"r3gan": "digits32"}
    runs = {name: every[name] for name in a.recipes.split(",")}
    overrides = parse_overrides(a.set)
    seeds = list(range(a.seed, a.seed + a.seeds))
    results, times = {"real test split": [fid(ev.features(test_x).numpy(), ref)]}, {}
    for name, extra in runs.items():
        for seed in seeds:
            out = Path(a.runs) / f"fid-{name}-seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            ganforge.train(name, preset=presets.get(name), out=out, progress=False, seed=seed,
                           **{**common, **extra, **overrides})
            times.setdefault(name, []).append(time.perf_counter() - t)
            results.setdefault(name, []).append(fid(ev.features(generated(out, a.num)).numpy(), ref))
            if seed == seeds[0]:
                save_samples(out, name)
            print(f"{name:9s} seed {seed}  FID {results[name][-1]:8.2f}   train {times[name][-1]:7.1f} s", flush=True)
    print(f"\nDigits FID at 32x32, {a.steps} steps x batch {a.batch_size} = {a.steps * a.batch_size} images "
          f"each; {a.num} samples vs the 1,437-image train split; seeds {seeds}; evaluator sha256 "
          f"{evaluator_sha256()[:12]}" + (f"; overrides {' '.join(a.set)}" if a.set else ""))
    print("| recipe | FID mean (lower is better) | worst | per seed | train time per run (s) |\n|---|---|---|---|---|")
    for name, values in results.items():
        t = times.get(name, [0])
        print(f"| {name} | {sum(values) / len(values):.2f} | {max(values):.2f} | "
              f"{', '.join(f'{v:.2f}' for v in values)} | {sum(t) / len(t):.0f} |")
    (Path(a.runs) / "fid.json").write_text(json.dumps({"fid": results, "seconds": times, "args": vars(a)}, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["grid", "fid"], nargs="?", default="grid")
    p.add_argument("--runs", default=str(ROOT / "runs" / "benchmarks"), help="where the runs go")
    p.add_argument("--data", default="shapes:32")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--images-per-phase", type=int, default=16_000)
    p.add_argument("--final-steps", type=int, default=500, help="extra steps at the full resolution")
    p.add_argument("--num", type=int, default=None, help="grid: columns (8); fid: generated images (1437)")
    p.add_argument("--steps", type=int, default=1500, help="fid: steps per recipe")
    p.add_argument("--upscale", type=int, default=2)
    p.add_argument("--image", default=str(ROOT / "docs" / "images" / "progan_progression.png"), help="grid: PNG")
    p.add_argument("--seed", type=int, default=0, help="the first seed")
    p.add_argument("--seeds", type=int, default=1, help="fid: seeds per recipe (seed .. seed + seeds - 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fid: a config override for every recipe trained (repeatable)")
    p.add_argument("--recipes", default="dcgan,progan,stylegan,r3gan", help="fid: which recipes to train")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.what == "grid":
        a.num = a.num or 8
        progression(a)
    else:
        a.num = a.num or 1437
        fid_table(a)


if __name__ == "__main__":
    main()
