"""Why the dcgan/digits preset halves D's learning rate: trains the paper's setting and the variants side by
side in one process and prints the digit score and digits-feature FID of each (1,000 samples, seed 0, against
the 360 test digits at 8x8, bundled evaluator), with ratios to the paper's setting.

    python benchmarks/dcgan_digits.py [--steps 1500]
"""
import argparse
import tempfile

import torch

import ganforge
from ganforge.data import resolve
from ganforge.metrics.digits import digit_score, load_digits_evaluator
from ganforge.metrics.stats import fid

VARIANTS = {"paper lrs (2e-4 / 2e-4)": {}, "label_smoothing=0.2": {"label_smoothing": 0.2},
            "d_lr=1e-4 (the preset)": {"d_lr": 1e-4}, "d_lr=1e-4 ema_decay=0.995": {"d_lr": 1e-4, "ema_decay": 0.995},
            "d_lr=1e-4 label_smoothing=0.1": {"d_lr": 1e-4, "label_smoothing": 0.1}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ev = load_digits_evaluator()
    test, _ = resolve("digits", split="test")
    with torch.no_grad():
        real = ev.features(test.batch(torch.arange(len(test)))["real"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in VARIANTS.items():
            s = ganforge.train("dcgan", out=f"{tmp}/{len(rows)}", progress=False, steps=args.steps,
                               **{"d_lr": 2e-4, **kw})
            x = ganforge.load(s["run_dir"]).sample(1000, seed=0)
            with torch.no_grad():
                rows.append((name, digit_score(ev, x)[0], fid(ev.features(x), real)))
    print(f"| variant ({args.steps} steps) | digit score | digits FID | FID / paper's |")
    print("|---|---|---|---|")
    for name, score, f in rows:
        print(f"| {name} | {score:.2f} | {f:.1f} | {f / rows[0][2]:.2f} |")


if __name__ == "__main__":
    main()
