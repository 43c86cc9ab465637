"""bf16 autocast against fp32, per family, on the family's own quality measure after a realistic budget.

Each case trains the same recipe from the same seed twice, `precision=fp32` and `precision=bf16`, with the
thread count fixed, and scores both with a measure the generator was not trained against:

- digits generators: FID in the bundled digits CNN's features (N = 360 generated, mean of 3 draws, against
  the 1,437 train images; benchmarks/digits_fid.py's protocol) - lower is better;
- shapes generators: Frechet distance in the bundled shapes attribute classifier's 64-d features (1,000
  generated vs 1,000 test images) - lower is better (real train images score 165, uniform noise 80,464);
- pix2pix gray2color, srgan x4: PSNR on the held-out photos (benchmarks/image2image.py) - higher is better.

It prints one row per case with the mean and std over seeds and the bf16 - fp32 difference; a difference
larger than twice the pooled seed std is marked "worse" / "better". `precision=auto` may pick bf16 only
for what this table shows bf16 does not train worse.

    python benchmarks/precision.py                              # every case, seeds 0 1 2
    python benchmarks/precision.py --cases dcgan-shapes32 --seeds 0 1 2 --json out.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ganforge  # noqa: E402
from ganforge.data import resolve  # noqa: E402
from ganforge.metrics.attributes import load_attribute_classifier, to_classifier_input  # noqa: E402
from ganforge.metrics.digits import load_digits_evaluator  # noqa: E402
from ganforge.metrics.stats import fid  # noqa: E402

QUIET = {"sample_every": 10 ** 9, "checkpoint_every": 10 ** 9, "log_every": 100}


# -- measures -----------------------------------------------------------------------------------------------------
def digits_fid(run: Path) -> dict:
    from digits_fid import DRAWS, N, features
    ev = load_digits_evaluator()
    train, _ = resolve("digits", split="train")
    ref = features(ev, train.batch(torch.arange(len(train)))["real"])
    g = ganforge.load(run)
    return {"FID": sum(fid(features(ev, g.sample(N, seed=100 + k).float()), ref) for k in range(DRAWS)) / DRAWS}


@torch.no_grad()
def _shape_features(clf, x: torch.Tensor) -> torch.Tensor:
    """The attribute classifier's 64-d penultimate features (the digits-FID protocol, on shapes)."""
    return torch.cat([clf.body(to_classifier_input(b.float())).double() for b in x.split(250)])


def _shapes_real(spec: str, split: str, resolution: int, n: int = 1000) -> torch.Tensor:
    data, _ = resolve(spec, split=split, resolution=resolution)
    return data.batch(torch.arange(min(n, len(data))))["real"]


def shapes_fd(run: Path, n: int = 1000) -> dict:
    clf = load_attribute_classifier().eval()
    g = ganforge.load(run)
    fr = _shape_features(clf, _shapes_real(g.info.spec, "test", g.info.shape[-1], n))
    return {"FD": fid(_shape_features(clf, g.sample(n, seed=100)).numpy(), fr.numpy())}


def shapes_floor(resolution: int = 32, n: int = 1000) -> float:
    """FD of 1,000 real train images against the 1,000 test images: what a perfect generator would score."""
    clf = load_attribute_classifier().eval()
    real = [_shape_features(clf, _shapes_real("shapes", split, resolution, n)) for split in ("train", "test")]
    return fid(real[0].numpy(), real[1].numpy())


def digits_floor() -> float:
    """The 360 real test digits against the 1,437 train digits (benchmarks/digits_fid.py's floor)."""
    from digits_fid import features
    ev = load_digits_evaluator()
    x = {s: resolve("digits", split=s)[0] for s in ("train", "test")}
    return fid(features(ev, x["test"].batch(torch.arange(len(x["test"])))["real"]),
               features(ev, x["train"].batch(torch.arange(len(x["train"])))["real"]))


def gray2color_psnr(run: Path) -> dict:
    from image2image import scores, translate
    test, _ = resolve("photos:gray2color", split="test", resolution=32)
    batch = test.batch(torch.arange(len(test)))
    return {"PSNR": scores(translate(ganforge.load(run).G, batch["cond"]), batch["real"])["PSNR"]}


def sr_psnr(run: Path) -> dict:
    from image2image import held_out_photos, scores
    from ganforge.recipes.srgan import bicubic_down
    G = ganforge.load(run).G
    vals = []
    for _, hr in held_out_photos(4, resolution=64):
        with torch.no_grad():
            vals.append(scores(G(bicubic_down(hr, 4)).clamp(-1, 1), hr, crop=4)["PSNR"])
    return {"PSNR": sum(vals) / len(vals)}


# name -> (recipe, preset, overrides, measure, {key: +1 higher is better / -1 lower is better})
CASES = {
    "dcgan-digits": ("dcgan", "digits", {"steps": 1500}, digits_fid, {"FID": -1}),
    "dcgan-digits32": ("dcgan", "digits32", {}, digits_fid, {"FID": -1}),
    "dcgan-shapes32": ("dcgan", None, {"data": "shapes", "resolution": 32, "steps": 3000}, shapes_fd,
                       {"FD": -1}),
    "cgan-digits": ("cgan", "digits", {"steps": 1500}, digits_fid, {"FID": -1}),
    "wgan_gp-digits": ("wgan_gp", "digits", {"steps": 1500}, digits_fid, {"FID": -1}),
    "sngan-digits": ("sngan", "digits", {"steps": 1500}, digits_fid, {"FID": -1}),
    "lsgan-digits": ("lsgan", "digits", {"steps": 1500}, digits_fid, {"FID": -1}),
    "pix2pix-gray2color": ("pix2pix", "gray2color", {}, gray2color_psnr, {"PSNR": 1}),
    "srgan-sr4": ("srgan", "sr4", {}, sr_psnr, {"PSNR": 1}),
}


def run_case(name: str, seed: int, precision: str, out: Path) -> dict:
    recipe, preset, overrides, measure, _ = CASES[name]
    run = out / f"{name}-{precision}-seed{seed}"
    t = time.perf_counter()
    s = ganforge.train(recipe, preset=preset, out=run, progress=False, seed=seed, precision=precision,
                       **{**QUIET, **overrides})
    secs = time.perf_counter() - t
    return {"case": name, "seed": seed, "precision": s["precision"], "seconds": round(secs, 1), **measure(run)}


def summarize(rows: list[dict]) -> str:
    floors = {}
    if any(r["case"] == "dcgan-shapes32" for r in rows):
        floors["dcgan-shapes32"] = shapes_floor()
    if any(CASES[r["case"]][3] is digits_fid for r in rows):
        floor = digits_floor()
        floors.update({k: floor for k, v in CASES.items() if v[3] is digits_fid})
    lines = ["| case | measure | fp32 (mean +- std) | bf16 (mean +- std) | bf16 - fp32 | verdict | seeds | "
             "s per run fp32 / bf16 | real-data floor |", "|---|---|---|---|---|---|---|---|---|"]
    for name, (*_, better) in CASES.items():
        mine = [r for r in rows if r["case"] == name]
        if not mine:
            continue
        for key, sign in better.items():
            v = {p: [r[key] for r in mine if r["precision"] == p] for p in ("fp32", "bf16")}
            if not v["fp32"] or not v["bf16"]:
                continue
            m = {p: statistics.fmean(x) for p, x in v.items()}
            sd = {p: statistics.stdev(x) if len(x) > 1 else 0.0 for p, x in v.items()}
            diff = m["bf16"] - m["fp32"]
            pooled = ((sd["fp32"] ** 2 + sd["bf16"] ** 2) / 2) ** 0.5
            if min(len(v["fp32"]), len(v["bf16"])) < 2:
                verdict = "one seed: no verdict"
            else:
                verdict = "same" if abs(diff) <= 2 * pooled else ("better" if diff * sign > 0 else "worse")
            secs = {p: statistics.fmean(r["seconds"] for r in mine if r["precision"] == p) for p in v}
            lines.append(f"| {name} | {key} | {m['fp32']:.3f} +- {sd['fp32']:.3f} | {m['bf16']:.3f} +- "
                         f"{sd['bf16']:.3f} | {diff:+.3f} | {verdict} | {len(v['fp32'])} | "
                         f"{secs['fp32']:.0f} / {secs['bf16']:.0f} | "
                         f"{f'{floors[name]:.1f}' if name in floors else ''} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2, help="fixed for every run (it changes the numerics)")
    p.add_argument("--json", help="append every finished run as a JSON line here (resumable: done runs are skipped)")
    p.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    a = p.parse_args(argv)
    QUIET["threads"] = a.threads
    rows = []
    done = Path(a.json) if a.json else None
    if done and done.exists():
        rows = [json.loads(x) for x in done.read_text().splitlines() if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        for name in a.cases:
            for seed in a.seeds:
                for precision in ("fp32", "bf16"):
                    if any(r["case"] == name and r["seed"] == seed and r["precision"] == precision for r in rows):
                        continue
                    row = run_case(name, seed, precision, out)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if done:
                        with done.open("a") as f:
                            f.write(json.dumps(row) + "\n")
    print(summarize([r for r in rows if r["case"] in a.cases and r["seed"] in a.seeds]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
