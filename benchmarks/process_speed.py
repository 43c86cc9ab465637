"""Speed as a user sees it: whole `ganforge train dcgan` processes against whole reference-loop processes.

`benchmarks/throughput.py` times training steps inside one process. This script times what a user runs: the
command `ganforge train dcgan --data digits resolution=R batch_size=64 --steps N --threads T` with every
other default (its logging, progress, fixed-noise sample grids and final checkpoint), against a script that
runs the pytorch/examples DCGAN loop (throughput.Reference: fp32, the same nets, batch and data) for N steps,
each in its own fresh process. Each side runs a short and a long process; the difference of their wall
times is the training time of the extra steps, so import and start-up cancel out:

    img/s = (long - short) steps * batch / (wall(long) - wall(short))

Rounds alternate the two sides (ABBA), and the speed-up is the median of the per-round ratios.

    python benchmarks/process_speed.py                      # 32x32, 3 rounds, 20 and 220 steps
    python benchmarks/process_speed.py --res 64 --short 10 --long 110
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reference_run(steps: int, res: int, batch: int, threads: int) -> None:
    """The reference as its own process: load the digits, build the loop, train `steps` steps."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    sys.path.insert(0, str(HERE))
    from throughput import Reference

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False).mul(2).sub(1)
    ref = Reference(images, batch, torch.device("cpu"))
    for i in range(steps):
        d, g = ref.step()
        if i % 50 == 0:
            print(f"[{i}/{steps}] Loss_D: {d:.4f} Loss_G: {g:.4f}", flush=True)   # the tutorial's log line


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return took


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="both sides (OMP_NUM_THREADS and torch's threads)")
    p.add_argument("--short", type=int, default=20)
    p.add_argument("--long", type=int, default=220)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reference-run", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.reference_run:
        reference_run(a.reference_run, a.res, a.batch, a.threads)
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    ganforge = shutil.which("ganforge", path=str(Path(sys.executable).parent)) or "ganforge"
    tmp = Path(tempfile.mkdtemp())

    def command(side: str, steps: int, k: int) -> list[str]:
        if side == "ref":
            return [sys.executable, __file__, "--reference-run", str(steps), "--res", str(a.res),
                    "--batch", str(a.batch), "--threads", str(a.threads)]
        return [ganforge, "train", "dcgan", "--data", "digits", "--steps", str(steps), "--threads", str(a.threads),
                "--out", str(tmp / f"run{k}-{steps}"), f"resolution={a.res}", f"batch_size={a.batch}"]

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {a.threads} threads each; "
          f"{a.res}x{a.res}, batch {a.batch}; {a.short} and {a.long} steps per side and round")
    rates: dict[str, list[float]] = {"ref": [], "ganforge": []}
    starts: dict[str, list[float]] = {"ref": [], "ganforge": []}
    for r in range(a.rounds):
        for side in (("ref", "ganforge") if r % 2 == 0 else ("ganforge", "ref")):
            short = wall(command(side, a.short, r), env)
            long = wall(command(side, a.long, r), env)
            rates[side].append((a.long - a.short) * a.batch / (long - short))
            starts[side].append(short - a.short * a.batch / rates[side][-1])
            print(f"  round {r} {side:8s}: {rates[side][-1]:7.1f} img/s (short {short:.1f} s, long {long:.1f} s)",
                  flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    ratios = [g / f for g, f in zip(rates["ganforge"], rates["ref"])]
    print(f"reference (whole process, fp32): {statistics.median(rates['ref']):7.1f} img/s, "
          f"start-up {statistics.median(starts['ref']):.1f} s")
    print(f"ganforge train dcgan (whole process): {statistics.median(rates['ganforge']):7.1f} img/s, "
          f"start-up {statistics.median(starts['ganforge']):.1f} s")
    print(f"speed-up ganforge / reference: {statistics.median(ratios):.2f}x (per-round: "
          + ", ".join(f"{x:.2f}" for x in ratios) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
