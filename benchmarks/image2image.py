"""Image-to-image results on held-out data, sized for a CPU: pix2pix's ablation, colourisation, x4
super-resolution against bicubic, and CycleGAN's circles -> squares criterion.

- pix2pix (Isola 2017, Table 1's ablation): L1 alone, cGAN alone, L1 + cGAN on `photos:gray2color`
  (colourisation, the paper's Sec. 4.5), next to the grey input itself; and L1 + cGAN on
  `photos:edges2photo`. Scored on the test split: the 32x32 tiles of the two held-out photos (chelsea,
  flower; never cropped for training). L1 in [-1, 1] units, PSNR (dB, data range 2) and SSIM (Wang 2004,
  11x11 Gaussian window) per tile, averaged; hue error (metrics/colour.py: mean CIELAB hue-angle distance
  over the photo's coloured pixels, 90 for grey) and colourfulness (Hasler & Suesstrunk 2003), which shows
  how much colour G dares (L1 alone gives washed-out colours, the paper's Fig. 7). The preset keeps the
  input's luma (keep_luma); one more row is L1 + cGAN with an RGB output. `--seeds N` trains each N times
  and reports the mean. G runs in eval mode with its test-time dropout on, seeded.
- Super-resolution x4 (Ledig 2017): `srgan --preset sr4` as it is (its steps and precision, `--seeds` runs):
  its checkpoint at the end of pixel-loss pretraining is the SRResNet, its last checkpoint the SRGAN.
  Scored on the 15 held-out photos of photos:sr4, whole, at the training photos' scale (short side 256 px):
  LR made by antialiased bicubic x1/4; per photo and mean, PSNR/SSIM on RGB with 4 px cropped at each
  border, and HF = high-frequency (Laplacian) energy relative to HR's (1 = as sharp as HR), against bicubic
  upsampling of the same LR.
- CycleGAN (Zhu 2017) on shapeswap:circles2squares: 256 held-out circles translated by G_ab, scored against
  the same attributes drawn as squares (metrics.shapeswap.shapeswap_scores): kind_acc (the circle's
  corners filled like the true square's), colour / background kept, swap_acc (all three in one image), L1;
  the identity map as the baseline, the true squares as the ceiling.
- CycleGAN on shapeswap:plain2striped (`stripes`: the appearance change CycleGAN is made for, Sec. 5.2):
  `cyclegan --preset plain2striped` once per seed (--seeds, default 3), both directions on 256 held-out
  pairs. judged: the share of translations a small CNN, trained here on real images of both domains (its
  held-out accuracy printed), puts in the target domain; IoU: shape-mask IoU of input and translation
  (data.shapestyle.shape_mask, the same rule for both); texture: interior texture energy (0 = flat).

    python benchmarks/image2image.py                       # everything (about 27 minutes on 2 busy cores)
    python benchmarks/image2image.py --only sr,cyclegan --steps-scale 0.5
    python benchmarks/image2image.py --only stripes --seeds 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import ganforge
from ganforge.commands.translate import load_translator
from ganforge.data import resolve
from ganforge.data.photos import load_photos, photo_short_side, scale_photo
from ganforge.data.shapestyle import mask_iou, share_judged, style_test_set, texture_energy
from ganforge.data.shapeswap import shapeswap_test_set
from ganforge.metrics.colour import colourfulness, hue_error
from ganforge.metrics.image_quality import l1, psnr, ssim
from ganforge.metrics.shapeswap import shapeswap_scores
from ganforge.recipes.srgan import bicubic_down, bicubic_up
from ganforge.viz import save_columns, save_grid

SECTIONS = ("pix2pix", "sr", "cyclegan", "stripes")
# fp32: the numbers in docs/ were measured so (precision=auto would pick bf16 autocast on some CPUs)
QUIET = {"sample_every": 10 ** 9, "checkpoint_every": 10 ** 9, "log_every": 100, "precision": "fp32"}


def scores(fake: torch.Tensor, real: torch.Tensor, crop: int = 0) -> dict[str, float]:
    if crop:
        fake, real = fake[..., crop:-crop, crop:-crop], real[..., crop:-crop, crop:-crop]
    return {"L1": l1(fake, real).item(), "PSNR": psnr(fake, real).item(), "SSIM": ssim(fake, real).item()}


@torch.no_grad()
def translate(G, x: torch.Tensor) -> torch.Tensor:
    G.eval()
    torch.manual_seed(0)   # pix2pix's test-time dropout
    return torch.cat([G(b) for b in x.split(64)])


def train(recipe: str, preset: str, out: Path, **kw) -> tuple[Path, float]:
    """Train into out/runs/<name> (replacing this script's run of an earlier invocation)."""
    run = out.parent / "runs" / out.name
    shutil.rmtree(run, ignore_errors=True)
    t = time.perf_counter()
    ganforge.train(recipe, preset=preset, out=run, progress=False, **{**QUIET, **kw})
    return run, time.perf_counter() - t


def show(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def pix2pix(out: Path, steps: int, seeds: int = 1) -> dict:
    """gray2color: the Table 1 ablation on the preset (G keeps the input's luma and predicts chroma), plus the
    same L1 + cGAN with G drawing all three RGB channels (keep_luma=false); each the mean over `seeds`."""
    results, fakes = {}, {}
    test, _ = resolve("photos:gray2color", split="test", resolution=32)
    batch = test.batch(torch.arange(len(test)))
    grey = show(batch["cond"])
    results["gray2color: grey input as is"] = {**scores(grey, batch["real"]), "colourfulness": colourfulness(grey),
                                               "hue_error": hue_error(grey, batch["real"])}
    for variant, kw in (("L1", {"gan_weight": 0.0}), ("cGAN", {"lambda_l1": 0.0}), ("L1+cGAN", {}),
                        ("L1+cGAN, RGB output", {"keep_luma": False})):
        rows = []
        for seed in range(seeds):
            run, secs = train("pix2pix", "gray2color", out / f"pix2pix-gray2color-{variant}-{seed}", steps=steps,
                              seed=seed, **kw)
            fake = translate(ganforge.load(run).G, batch["cond"])
            fakes.setdefault(variant, fake)
            rows.append({**scores(fake, batch["real"]), "hue_error": hue_error(fake, batch["real"]),
                         "colourfulness": colourfulness(fake), "seconds": secs})
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        mean["seconds"] = round(mean["seconds"])
        mean["PSNR_per_seed"] = [round(r["PSNR"], 2) for r in rows]
        results[f"gray2color {variant}"] = mean
    results["gray2color: true colour photo"] = {"colourfulness": colourfulness(batch["real"])}
    pick = torch.arange(0, len(test), max(1, len(test) // 8))[:8]
    grid = [grey[pick]] + [f[pick] for f in fakes.values()] + [batch["real"][pick]]
    save_grid(torch.stack(grid, 1).flatten(0, 1), out / "pix2pix-gray2color.png", nrow=len(grid), upscale=3)

    test, _ = resolve("photos:edges2photo", split="test", resolution=32)
    batch = test.batch(torch.arange(len(test)))
    run, secs = train("pix2pix", "edges2photo", out / "pix2pix-edges2photo", steps=steps)
    fake = translate(ganforge.load(run).G, batch["cond"])
    results["edges2photo L1+cGAN"] = {**scores(fake, batch["real"]), "seconds": round(secs)}
    grid = [show(batch["cond"][pick]), fake[pick], batch["real"][pick]]
    save_grid(torch.stack(grid, 1).flatten(0, 1), out / "pix2pix-edges2photo.png", nrow=3, upscale=3)
    return results


def held_out_photos(scale: int, resolution: int = 32) -> list[tuple[str, torch.Tensor]]:
    """The held-out photos of photos:sr{scale} at the training photos' scale, cropped to a multiple of
    `scale`, in [-1, 1] (grey photos as three equal channels)."""
    out = []
    for name, photo in load_photos("test", f"sr{scale}"):
        hr = scale_photo(photo, photo_short_side(resolution))
        h, w = (s - s % scale for s in hr.shape[-2:])
        out.append((name, hr[None, :, :h, :w].float() / 127.5 - 1))
    return out


def high_frequency(x: torch.Tensor) -> float:
    """Mean squared Laplacian response: the fine detail an image holds (blur lowers it, noise raises it)."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(x.shape[1], 1, 3, 3)
    return torch.nn.functional.conv2d(x, kernel, groups=x.shape[1]).pow(2).mean().item()


def sr_scores(sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
    """PSNR / SSIM / L1 with 4 px borders cropped, and HF: high-frequency energy relative to HR's (1 = HR's)."""
    return {**scores(sr, hr, crop=4), "HF": high_frequency(sr[..., 4:-4, 4:-4]) / high_frequency(hr[..., 4:-4, 4:-4])}


def super_resolution(out: Path, steps: int, seeds: int = 1) -> dict:
    """srgan --preset sr4 as it is (its own steps and precision, scaled to `steps`), once per seed."""
    from ganforge.recipes.srgan import SRGAN
    preset = SRGAN.presets["sr4"]
    pretrain = round(preset["pretrain_steps"] * steps / preset["steps"])
    photos = held_out_photos(4, resolution=preset["resolution"])
    methods = ("bicubic", "SRResNet", "SRGAN")
    rows: dict = {m: {name: [] for name, _ in photos} for m in methods}
    secs, windows = [], {m: [] for m in (*methods, "HR")}
    for seed in range(seeds):
        run, t = train("srgan", "sr4", out / f"srgan-seed{seed}", steps=steps, pretrain_steps=pretrain,
                       checkpoint_every=pretrain, seed=seed, precision="auto")
        secs.append(t)
        nets = {"SRResNet": ganforge.load(run / "checkpoints" / f"step-{pretrain:06d}").G,
                "SRGAN": ganforge.load(run).G}
        for name, hr in photos:
            lr = bicubic_down(hr, 4)
            with torch.no_grad():
                outs = {"bicubic": bicubic_up(lr, 4), **{m: G(lr).clamp(-1, 1) for m, G in nets.items()}}
            for m, sr in outs.items():
                rows[m][name].append(sr_scores(sr, hr))
            if seed == 0:   # a 64x64 window at each photo's centre
                h, w = hr.shape[-2:]
                for m, x in {**outs, "HR": hr}.items():
                    windows[m].append(x[..., h // 2 - 32:h // 2 + 32, w // 2 - 32:w // 2 + 32])
    results = {}
    for m in methods:
        per_photo = [{"photo": name, **{k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}}
                     for name, rs in rows[m].items()]
        per_seed = [sum(rs[i]["PSNR"] for rs in rows[m].values()) / len(photos) for i in range(seeds)]
        means = {k: sum(r[k] for r in per_photo) / len(per_photo) for k in ("L1", "PSNR", "SSIM", "HF")}
        results[f"x4 {m}"] = {**means, "PSNR_per_seed": per_seed, "per_photo": per_photo}
    results["x4 SRGAN"]["seconds"] = round(sum(secs) / len(secs))
    print(sr_photo_table(results))
    save_columns({m: torch.cat(x) for m, x in windows.items()}, out / "sr-x4.png", rows=8, upscale=2)
    return results


def sr_photo_table(results: dict) -> str:
    """Per held-out photo: PSNR / SSIM / HF of bicubic, SRResNet, SRGAN."""
    methods = [m for m in results if m.startswith("x4 ")]
    lines = ["| photo | " + " | ".join(f"{m[3:]} PSNR / SSIM / HF" for m in methods) + " |",
             "|---" * (len(methods) + 1) + "|"]
    for i, row in enumerate(results[methods[0]]["per_photo"]):
        cells = [results[m]["per_photo"][i] for m in methods]
        lines.append(f"| {row['photo'].split(':')[1].rsplit('.', 1)[0]} | "
                     + " | ".join(f"{c['PSNR']:.2f} / {c['SSIM']:.3f} / {c['HF']:.2f}" for c in cells) + " |")
    seeds = results[methods[0]]["PSNR_per_seed"]
    lines.append(f"\nmean PSNR per seed ({len(seeds)}): " + "; ".join(
        f"{m[3:]} " + ", ".join(f"{v:.2f}" for v in results[m]["PSNR_per_seed"]) for m in methods))
    return "\n".join(lines)


def cyclegan(out: Path, steps: int) -> dict:
    a, b, attrs = shapeswap_test_set("circles2squares", 32, n=256)
    x, y = a.float() / 127.5 - 1, b.float() / 127.5 - 1
    results = {"identity map (baseline)": shapeswap_scores(x, attrs),
               "true squares (ceiling)": shapeswap_scores(y, attrs)}
    run, secs = train("cyclegan", "circles2squares", out / "cyclegan", steps=steps)
    fake = translate(ganforge.load(run).G, x)
    results["CycleGAN G_ab"] = {**shapeswap_scores(fake, attrs), "seconds": round(secs)}
    save_grid(torch.stack([x[:10], fake[:10], y[:10]], 1).flatten(0, 1), out / "cyclegan-circles2squares.png",
              nrow=3, upscale=3)
    return results


def domain_classifier(seed: int = 0, steps: int = 300) -> tuple[torch.nn.Module, float]:
    """A small CNN told plain (0) from striped (1) on REAL training images of both domains (the training
    split's two independent draws), and its accuracy on the held-out real images of both."""
    torch.manual_seed(seed)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                        nn.Linear(32, 2))
    train_data, _ = resolve("shapeswap:plain2striped", resolution=32)
    x = torch.cat([train_data.a, train_data.x]).float() / 127.5 - 1   # .x: domain B (data/base.py)
    y = torch.cat([torch.zeros(len(train_data.a)), torch.ones(len(train_data.x))]).long()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    a, b, _ = style_test_set("plain2striped", 32, n=256)
    acc = (share_judged(net, a.float() / 127.5 - 1, 0) + share_judged(net, b.float() / 127.5 - 1, 1)) / 2
    return net, acc


def stripes(out: Path, steps: int, seeds: int = 3) -> dict:
    """plain <-> striped, both directions, `seeds` trainings of the preset (module docstring)."""
    a, b, _ = style_test_set("plain2striped", 32, n=256)
    x, y = a.float() / 127.5 - 1, b.float() / 127.5 - 1
    clf, acc = domain_classifier()
    print(f"domain classifier (small CNN on real images): held-out accuracy {acc:.3f} (256 plain + 256 striped)")

    def row(src, fake, target):
        return {"judged_target": share_judged(clf, fake, target), "mask_iou": mask_iou(src, fake).mean().item(),
                "texture": texture_energy(fake).mean().item()}
    results = {"A->B identity map (baseline)": row(x, x, 1), "A->B true striped (ceiling)": row(x, y, 1),
               "B->A identity map (baseline)": row(y, y, 0), "B->A true plain (ceiling)": row(y, x, 0)}
    runs = {}
    for seed in range(seeds):
        run, secs = train("cyclegan", "plain2striped", out / f"cyclegan-plain2striped-seed{seed}", steps=steps,
                          seed=seed)
        fake_b, fake_a = (translate(load_translator(run, d)[1], z) for d, z in (("AtoB", x), ("BtoA", y)))
        runs[seed] = {"A->B": row(x, fake_b, 1), "B->A": row(y, fake_a, 0), "seconds": round(secs)}
        last = json.loads((run / "summary.json").read_text())["last_log"]
        print(f"seed {seed}: {secs:.0f} s; last log " + ", ".join(f"{k} {v:.3f}" for k, v in last.items()
                                                               if k.startswith(("G/", "D/"))), flush=True)
        if seed == 0:
            save_grid(torch.stack([x[:10], fake_b[:10], y[:10], fake_a[:10]], 1).flatten(0, 1),
                      out / "cyclegan-plain2striped.png", nrow=4, upscale=3)
    for d in ("A->B", "B->A"):
        for seed, r in runs.items():
            results[f"{d} CycleGAN seed {seed}"] = {**r[d], "seconds": r["seconds"]}
        results[f"{d} CycleGAN mean of {seeds}"] = {k: sum(r[d][k] for r in runs.values()) / seeds
                                                   for k in runs[0][d]}
    results["domain classifier held-out accuracy"] = {"judged_target": acc}
    return results


def table(results: dict) -> str:
    keys = sorted({k for r in results.values() for k in r if k not in ("per_photo", "seconds", "PSNR_per_seed")},
                  key=["L1", "PSNR", "SSIM", "HF", "hue_error", "colourfulness", "kind_acc", "color_acc",
                       "background_acc", "swap_acc", "l1", "judged_target", "mask_iou", "texture"].index)
    lines = ["| | " + " | ".join(keys) + " | train s |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():
        cells = [f"{r[k]:.3f}" if k in r else "" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r.get('seconds', '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's steps by this")
    p.add_argument("--seeds", type=int, default=None,
                   help="sr, pix2pix (default 1), stripes (default 3): train with seeds 0..N-1, report the mean")
    p.add_argument("--out", default="runs/bench-image2image")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from ganforge.recipes.srgan import SRGAN
    from ganforge.recipes.cyclegan import CycleGAN
    steps = {"pix2pix": 800, "sr": SRGAN.presets["sr4"]["steps"], "cyclegan": 1000,
             "stripes": CycleGAN.presets["plain2striped"]["steps"]}
    run = {"pix2pix": pix2pix, "sr": super_resolution, "cyclegan": cyclegan, "stripes": stripes}
    everything = {}
    for section in a.only.split(","):
        n = max(3, round(steps[section] * a.steps_scale))
        t = time.perf_counter()
        if section in ("sr", "stripes", "pix2pix"):
            res = run[section](out, n, a.seeds or (3 if section == "stripes" else 1))
        else:
            res = run[section](out, n)
        print(f"\n## {section} ({n} steps per run, {time.perf_counter() - t:.0f} s)\n\n{table(res)}", flush=True)
        everything[section] = {"steps": n, "results": res}
    (out / "results.json").write_text(json.dumps(everything, indent=2))
    print(f"\nresults: {out / 'results.json'}; example images: {out}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
