"""Measured differences between ganforge's metrics and the reference packages, per (protocol, extractor).

Runs the parity tests (tests/test_protocols.py, tests/test_dinov2.py, slow ones included), which record every
comparison through tests/refpkgs.py `measure`, and prints one Markdown table: the pair, what was compared, the
measured max abs and relative difference, the bound the test asserts, then the versions compared with.

    python benchmarks/parity.py [--fast]        # --fast: the default suite's comparisons only (no slow ones)

The reference packages are installed by the tests (pip --no-deps into ~/.cache/ganforge/refpkgs); dgm-eval is not
on PyPI and is compared with only where its tree lies there (tests/refpkgs.py require_checkout). Skipped tests are
listed under the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ganforge.training import hardware

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_protocols.py", "tests/test_dinov2.py"]


def versions() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy
    import PIL
    import scipy
    import torch

    import refpkgs
    refs = ", ".join(f"{k} {v}" for k, v in refpkgs.VERSIONS.items())
    checkouts = ", ".join(f"{k} at {c} ({repo})" for k, (c, repo) in refpkgs.CHECKOUTS.items()
                          if (refpkgs._root() / f"{k}-{c}" / k.replace("-", "_")).is_dir()) or "none"
    return (f"references: {refs}; source trees: {checkouts}\n"
            f"torch {torch.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}, Pillow {PIL.__version__}; "
            f"{hardware.cpu_name()}, {os.cpu_count()} CPUs")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="only the comparisons of the default suite")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "parity.jsonl"
        env = {**os.environ, "GANFORGE_PARITY_LOG": str(log)}
        marker = "not slow" if a.fast else "slow or not slow"
        done = subprocess.run([sys.executable, "-m", "pytest", *TESTS, "-q", "-rs", "-p", "no:cacheprovider",
                               "-m", marker], cwd=ROOT, env=env, capture_output=True, text=True)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    print("| pair (protocol / extractor) | compared | max abs difference | relative | asserted bound |")
    print("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["pair"]):
        bound = f"{r['bound']:g}" + (" relative" if r["kind"] == "rel" else " abs")
        print(f"| {r['pair']} | {r['what']} | {r['abs']:.3g} | {r['rel']:.3g} | {bound} |")
    print()
    print(versions())
    tail = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED") or " passed" in line
            or " failed" in line]
    print("\n".join(tail))
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
