"""Start-up times (issue 14): `ganforge --help`, `import torch`, `import ganforge` and what the first use of the
API adds, each in a fresh interpreter, several rounds: min and median wall-clock seconds, and the min CPU
seconds (user + system) of the process.

    python benchmarks/startup.py [--rounds 9]

The minimum is the number to compare (on a shared CPU the rest is other processes' noise on top); the median
says how noisy the machine was; CPU seconds are what the process itself spent, which a busy machine inflates
less than wall time. Results: docs/performance.md (start-up).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
SCRIPT = shutil.which("ganforge", path=str(Path(PY).parent)) or shutil.which("ganforge")
CASES = {
    "python -c pass (interpreter)": [PY, "-c", "pass"],
    "ganforge --help": [SCRIPT, "--help"] if SCRIPT else [PY, "-m", "ganforge", "--help"],
    "ganforge train --steps x (argument error)": ([SCRIPT] if SCRIPT else [PY, "-m", "ganforge"])
    + ["train", "--steps", "x"],
    "import torch": [PY, "-c", "import torch"],
    "import ganforge": [PY, "-c", "import ganforge"],
    "import ganforge; ganforge.train (the training API)": [PY, "-c", "import ganforge; ganforge.train"],
    "... and RECIPES['dcgan'] (one family)": [PY, "-c", "import ganforge; ganforge.train; ganforge.RECIPES['dcgan']"],
    "... and every family (ganforge list's import)": [PY, "-c", "import ganforge; dict(ganforge.RECIPES.items())"],
}


def time_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of cmd."""
    before, t = os.times(), time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt, after = time.perf_counter() - t, os.times()
    if r.returncode not in (0, 2):      # 2: the argument error case
        raise SystemExit(f"{' '.join(cmd)} failed with status {r.returncode}")
    return dt, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(a.rounds):               # interleaved, so a busy moment hits every case alike
        for name, cmd in CASES.items():
            w, c = time_once(cmd)
            wall[name].append(w)
            cpu[name].append(c)
    print(f"{'case':52s} {'min s':>7s} {'median s':>9s} {'min CPU s':>10s}   ({a.rounds} rounds, fresh processes, "
          f"load {os.getloadavg()[0]:.1f} at the end)")
    for name in CASES:
        print(f"{name:52s} {min(wall[name]):7.3f} {statistics.median(wall[name]):9.3f} {min(cpu[name]):10.3f}")
    api = "import ganforge; ganforge.train (the training API)"
    for what, t in (("wall", wall), ("CPU", cpu)):
        base = min(t["import torch"])
        print(f"on top of import torch ({what}, min vs min): import ganforge "
              f"{min(t['import ganforge']) - base:+.3f} s, the training API {min(t[api]) - base:+.3f} s")


if __name__ == "__main__":
    main()
