"""Train, export and score the models shipped in the zoo (src/ganforge/zoo/): the only writer of bundled.json.

    python scripts/train_zoo.py                 # every model (tens of minutes on 2 CPU cores)
    python scripts/train_zoo.py cgan-digits     # one or more by name
    python scripts/train_zoo.py --score-only    # re-score the shipped files (no training)
    python scripts/train_zoo.py --table         # the manifest as the README's markdown table

Each model is trained by the `ganforge train` command its entry records (run in a subprocess, exactly as a
user would type it), exported with `ganforge export`, stored in float16 when float32 would exceed the 2 MiB
budget per model, and then scored by loading `zoo:NAME` itself, so the number in the manifest is the number
of the file that ships. A picture of each goes to docs/images/zoo-NAME.png for the README.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ganforge  # noqa: E402
from ganforge import zoo  # noqa: E402
from ganforge.download import file_hash  # noqa: E402
from ganforge.recipes.base import Upscaler  # noqa: E402

BUDGET = 2 * 2**20          # bytes per model (issue 19: each <= 2 MB, all <= 15 MB)
IMAGES = ROOT / "docs" / "images"


def fid(features: str):
    def score(ref: str) -> dict:
        r = ganforge.evaluate(ref, metrics="fid", features=features, num=1000, out=False, reference=False)
        return {"name": f"FID ({features} features, 1,000 vs the test split)",
                "value": round(r["metrics"]["fid"], 2)}
    return score


def label_accuracy(ref: str) -> dict:
    """Share of 1,000 samples (100 per asked-for label) that the bundled digits classifier reads as that label."""
    from ganforge.metrics.digits import class_accuracy, load_digits_evaluator
    g = ganforge.load(ref)
    labels = torch.arange(10).repeat_interleave(100)
    x = g.sample(1000, seed=1, labels=labels)
    acc = class_accuracy(load_digits_evaluator(), x, labels)
    return {"name": "label accuracy (bundled digits classifier, 100 per label)", "value": round(float(acc), 3)}


def ring_modes(ref: str) -> dict:
    from ganforge.metrics.stats import mode_coverage
    g = ganforge.load(ref)
    m = mode_coverage(g.sample(2500, seed=1).float().numpy(), g.info.extra["means"], g.info.extra["std"])
    return {"name": "modes of 8 / high-quality share (2,500 points, within 3 std)",
            "value": f"{m['modes']} / {m['high_quality']:.3f}"}


def high_frequency(x: torch.Tensor) -> float:
    """Mean squared Laplacian response: the fine detail an image holds (blur lowers it)."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(x.shape[1], 1, 3, 3)
    return torch.nn.functional.conv2d(x, kernel, groups=x.shape[1]).pow(2).mean().item()


def sr_gain(ref: str) -> dict:
    """On the held-out photos (benchmarks/image2image.py's protocol): PSNR over bicubic, and the share of the
    HR photo's high-frequency energy the output has (SRGAN's claim is sharpness, not PSNR)."""
    from image2image import held_out_photos, scores
    from ganforge.recipes.srgan import bicubic_down, bicubic_up
    G = ganforge.load(ref).G
    gains, sharp, blur = [], [], []
    for _, hr in held_out_photos(4, resolution=64):
        lr = bicubic_down(hr, 4)
        with torch.no_grad():
            sr, bicubic = G(lr).clamp(-1, 1), bicubic_up(lr, 4)
        gains.append(scores(sr, hr, crop=4)["PSNR"] - scores(bicubic, hr, crop=4)["PSNR"])
        sharp.append(high_frequency(sr) / high_frequency(hr))
        blur.append(high_frequency(bicubic) / high_frequency(hr))
    n = len(gains)
    return {"name": "on the held-out photos: PSNR over bicubic (dB), high-frequency energy / HR's (bicubic's)",
            "value": f"{sum(gains) / n:+.2f} dB, {sum(sharp) / n:.2f} ({sum(blur) / n:.2f})"}


# name -> (command after `ganforge train`, summary, score)
MODELS = {
    "gan-ring": ("gan --preset ring-best", "the original GAN (PacGAN4, EMA) on the 8-Gaussian ring", ring_modes),
    "dcgan-digits": ("dcgan", "DCGAN on scikit-learn's 8x8 digits", fid("digits")),
    "cgan-digits": ("cgan --preset digits", "conditional GAN on the digits: pick the digit", label_accuracy),
    "r3gan-digits": ("r3gan", "R3GAN (RpGAN + R1 + R2, norm-free ResNet) on the digits at 16 px", fid("digits")),
    "srgan-x4": ("srgan --preset sr4", "SRGAN x4 on photographs (upload-and-upscale)", sr_gain),
    "stylegan-digits": ("stylegan --preset digits steps=1500", "StyleGAN on the digits at 32 px (style mixing, W walks)",
                        fid("digits")),
    "progan-digits": ("progan --preset digits steps=1500 images_per_phase=6000",
                      "progressive GAN on the digits, grown 4 -> 32 px", fid("digits")),
}


def train(name: str, command: str, work: Path) -> tuple[Path, float]:
    run = work / name
    shutil.rmtree(run, ignore_errors=True)
    argv = [str(Path(sys.executable).parent / "ganforge"), "train", *shlex.split(command), "--out", str(run), "--quiet"]
    t = time.perf_counter()
    subprocess.run(argv, check=True)
    return run, time.perf_counter() - t


def ship(name: str, run: Path) -> tuple[int, str]:
    """Export the run into the package (float16 if float32 is over budget); (bytes, dtype)."""
    dest = zoo.HERE / name
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        ganforge.export(run, out)
        weights = out / "weights.safetensors"
        dtype = "float32"
        if weights.stat().st_size > BUDGET:
            state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
            save_file(state, str(weights))
            dtype = "float16"
        if weights.stat().st_size > BUDGET:
            raise SystemExit(f"{name}: {weights.stat().st_size} bytes even in float16, over the {BUDGET} budget")
        config = json.loads((out / "config.json").read_text())
        config["exported_from"] = f"scripts/train_zoo.py {name}"      # not this machine's temporary path
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(out, dest)
    return (dest / "weights.safetensors").stat().st_size, dtype

# the held-out photos whose centre windows the srgan picture shows (edges, petals, rims, galaxies)
SR_PICTURE = ("skimage:chelsea.png", "sklearn:flower.jpg", "skimage:coins.png", "skimage:hubble_deep_field.jpg")


def picture(name: str) -> None:
    g = ganforge.load(f"zoo:{name}")
    if isinstance(g.recipe, Upscaler):       # bicubic | model | HR on 64-px windows of the held-out photos
        from image2image import held_out_photos
        from ganforge.recipes.srgan import bicubic_down, bicubic_up
        from ganforge.viz import save_columns
        cols: dict[str, list] = {"bicubic": [], name: [], "HR": []}
        for photo, hr in held_out_photos(4, resolution=64):
            if photo not in SR_PICTURE:      # four of the 15 held-out photos: a README-sized picture
                continue
            lr = bicubic_down(hr, 4)
            with torch.no_grad():
                outs = (bicubic_up(lr, 4), g.G(lr).clamp(-1, 1), hr)
            top, left = hr.shape[-2] // 2 - 32, hr.shape[-1] // 2 - 32
            for k, x in zip(cols, outs):
                cols[k].append(x[..., top:top + 64, left:left + 64])
        save_columns({k: torch.cat(v) for k, v in cols.items()}, IMAGES / f"zoo-{name}.png", rows=4, upscale=2)
    elif g.info.kind == "image" and not hasattr(g.recipe, "translator"):
        g.save(g.sample(32, seed=0), IMAGES / f"zoo-{name}.png", nrow=8)
    elif g.info.kind == "points":
        ganforge.sample(f"zoo:{name}", 2500, IMAGES / f"zoo-{name}.png")


def table() -> str:
    rows = ["| model | trained by | metric | size | train time (1 thread, shared 2-core AMX Xeon, bf16 autocast) |", "|---|---|---|---|---|"]
    for name, e in sorted(zoo.bundled().items()):
        m = e.get("metric", {})
        rows.append(f"| `zoo:{name}` | `{e['command']}` | {m.get('name', '')}: **{m.get('value', '')}** | "
                    f"{e['bytes'] / 2**20:.2f} MiB ({e['dtype']}) | {e['train_seconds']} s |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"models (default all: {', '.join(MODELS)})")
    p.add_argument("--score-only", action="store_true", help="score the shipped files again; train nothing")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ganforge-zoo-runs")
    p.add_argument("--table", action="store_true", help="print the manifest as a markdown table; do nothing else")
    a = p.parse_args(argv)
    if a.table:
        print(table())
        return 0
    unknown = [n for n in a.names if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    manifest_path = zoo.HERE / "bundled.json"
    for name in a.names or MODELS:
        command, summary, score = MODELS[name]
        manifest = json.loads(manifest_path.read_text())
        entry = manifest["models"].get(name, {})
        if not a.score_only:
            run, seconds = train(name, command, a.work)
            size, dtype = ship(name, run)
            entry = {"recipe": command.split()[0], "summary": summary, "command": f"ganforge train {command}",
                     "train_seconds": round(seconds), "dtype": dtype, "bytes": size,
                     "sha256": file_hash(zoo.HERE / name / "weights.safetensors")}
            manifest["models"][name] = entry
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        entry["metric"] = {**score(f"zoo:{name}"), "by": f"python scripts/train_zoo.py --score-only {name}"}
        manifest["models"][name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        picture(name)
        print(name, json.dumps(entry), flush=True)
    total = sum(e["bytes"] for e in json.loads(manifest_path.read_text())["models"].values())
    print(f"zoo total {total / 2**20:.2f} MiB (budget 15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
