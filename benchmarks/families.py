"""Every family's default command as a user types it: its wall time on this CPU and its last picture.

Each row runs the README Families table's command (`ganforge train RECIPE --preset P`, plus `--threads`) in a
fresh process, times the whole process, and copies the run's last sample grid (or the recipe's own plot, where
that is what shows it working) to --images as family-<name>.png. The inversion row inverts two held-out digits
with the dcgan row's run (`ganforge invert RUN a.png b.png --interpolate`). It prints a markdown table.

    python benchmarks/families.py                         # every row, 1 thread each, one after the other
    python benchmarks/families.py --only wgan-ring lsgan  # some rows
    python benchmarks/families.py --list                  # the rows and their commands
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (recipe, preset, the picture inside the run folder: a glob whose last match is taken; "samples/*" = the
# last sample grid; dann and simgan draw their own labelled pictures in plots/)
ROWS = {
    "gan-ring": ("gan", "ring", "samples/*"),
    "dcgan": ("dcgan", "digits", "samples/*"),
    "wgan-ring": ("wgan", "ring", "samples/*"),
    "wgan_gp": ("wgan_gp", "digits", "samples/*"),
    "sngan": ("sngan", "digits", "samples/*"),
    "lsgan": ("lsgan", "digits", "samples/*"),
    "text2image": ("text2image", "shapes", "samples/*"),
    "simgan": ("simgan", "fonts", "plots/refined-*.png"),
    "ssgan": ("ssgan", "digits", "samples/*"),
    "dann": ("dann", "fonts2digits", "plots/predictions-*.png"),
}


def command(recipe: str, preset: str, out: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "ganforge", "train", recipe, "--preset", preset, "--out", str(out),
            "--threads", str(threads), "--quiet"]


def last(run: Path, pattern: str) -> Path | None:
    files = sorted(p for p in run.glob(pattern) if p.suffix in (".png", ".gif"))
    return files[-1] if files else None


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def invert(run: Path, work: Path, threads: int) -> tuple[float, Path]:
    """Two held-out digits (the last two of scikit-learn's set, in the test split) as PNG files, inverted."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    work.mkdir(parents=True, exist_ok=True)
    files = []
    for i, img in enumerate(load_digits().images[-2:]):
        path = work / f"digit{i}.png"
        Image.fromarray(np.uint8(img * 255 / 16)).resize((16, 16), Image.NEAREST).save(path)
        files.append(str(path))
    out = work / "inverted"
    env_cmd = [sys.executable, "-m", "ganforge", "invert", str(run), *files, "--interpolate", "--out", str(out)]
    seconds = timed(["env", f"OMP_NUM_THREADS={threads}", *env_cmd])
    return seconds, out / "interpolation.png"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", default=None, choices=[*ROWS, "inversion"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench-families"))
    p.add_argument("--images", default=str(ROOT / "docs" / "images"))
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--list", action="store_true")
    a = p.parse_args(argv)
    names = a.only or [*ROWS, "inversion"]
    if a.list:
        for n in names:
            r = ROWS.get(n)
            print(n, " ".join(command(r[0], r[1], Path(a.runs) / n, a.threads)[2:]) if r else
                  "ganforge invert (the dcgan row's run) digit0.png digit1.png --interpolate")
        return 0
    images, runs, rows = Path(a.images), Path(a.runs), []
    images.mkdir(parents=True, exist_ok=True)
    print(f"| family | command | wall time ({a.threads} thread{'s' if a.threads > 1 else ''}) | picture |")
    print("|---|---|---|---|")
    for n in names:
        if n == "inversion":
            run = runs / "dcgan"
            if not (run / "summary.json").exists():
                timed(command("dcgan", "digits", run, a.threads))
            seconds, pic = invert(run, runs / "inversion", a.threads)
            cmd = "ganforge invert RUN a.png b.png --interpolate"
        else:
            recipe, preset, where = ROWS[n]
            out = runs / n
            shutil.rmtree(out, ignore_errors=True)
            seconds = timed(command(recipe, preset, out, a.threads))
            pic = last(out, where)
            cmd = f"ganforge train {recipe} --preset {preset}"
        dest = images / f"family-{n}.png"
        if pic is not None and pic.suffix == ".png":
            shutil.copy(pic, dest)
        rows.append({"family": n, "command": cmd, "seconds": round(seconds, 1), "picture": str(dest)})
        print(f"| {n} | `{cmd}` | {seconds:.0f} s | [{dest.name}](docs/images/{dest.name}) |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
