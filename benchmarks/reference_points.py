"""Reference points for the digits metrics: what a perfect generator and useless ones score, at equal N.

Every number of `ganforge eval` is only readable next to these (FID is biased by the sample count, so
each row uses the same N generated samples against the same reference split):

- floor:      real digits of the train split vs the test split (a generator that matched the data);
- untrained:  the default `ganforge train` generator (dcgan/digits) at initialisation, as the trainer builds it;
- mean image: every sample is the mean training digit (one point: no diversity at all);
- noise:      i.i.d. uniform [-1, 1] pixels.

    python benchmarks/reference_points.py [--ref digits] [--resolution 16] [--num 360 1000 1437]
                                          [--metrics fid,kid,pr,dc,is,modes] [--seed 0]

Images are brought to --resolution exactly as `ganforge train` brings the training data there (16 for the
default dcgan), and the digits extractor averages them back to 8x8.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from ganforge.api import make_config  # noqa: E402
from ganforge.data import resolve  # noqa: E402
from ganforge.metrics.evaluate import Evaluation  # noqa: E402
from ganforge.metrics.report import ORDER, _fmt  # noqa: E402
from ganforge.metrics.sources import NoiseSource, TensorSource, quantize, untrained_source  # noqa: E402


class MeanImage:
    """N copies of the mean training image."""

    def __init__(self, x_uint8: torch.Tensor):
        self.mean = quantize(x_uint8.float().mean(0, keepdim=True) / 127.5 - 1)
        self.kind, self.shape, self.conditional, self.num_classes = "image", tuple(self.mean.shape[1:]), False, 0

    def batches(self, num, batch_size, seed):
        for start in range(0, num, batch_size):
            yield self.mean.expand(min(batch_size, num - start), *self.shape).clone(), None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", default="digits")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--num", type=int, nargs="+", default=[360, 1000, 1437])
    p.add_argument("--metrics", default="fid,kid,pr,dc,is,modes")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)   # shared small machines: multi-threaded BLAS spin-waits
    except ImportError:
        pass

    train, info = resolve(a.ref, split="train", resolution=a.resolution)
    shape = tuple(train.x.shape[1:])
    ev = Evaluation(kind="image", shape=shape, ref=a.ref, split="test", metrics=a.metrics, features="digits")
    cls, cfg = make_config("dcgan", None, {"data": a.ref, "resolution": a.resolution})
    untrained = untrained_source(cls(cfg, info), info, "cpu")
    print(f"reference: {a.ref} test split ({len(ev.ref_data)} samples) at {'x'.join(map(str, shape))}; "
          f"features: digits (sha256 {ev.extractor.protocol['weights_sha256'][:16]}...); seed {a.seed}")
    for num in a.num:
        rows = {}
        t0 = time.perf_counter()
        n_floor = min(num, len(train))
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed))[:n_floor]
        rows[f"floor: real train (N={n_floor})"] = ev.run(TensorSource(train, info, idx, {}), n_floor, a.seed)
        rows["untrained dcgan"] = ev.run(untrained, num, a.seed)
        rows["mean image"] = ev.run(MeanImage(train.x), num, a.seed)
        rows["uniform noise"] = ev.run(NoiseSource(shape), num, a.seed)
        keys = [k for k in ORDER if any(k in r["metrics"] for r in rows.values())]
        print(f"\nN = {num} generated samples ({time.perf_counter() - t0:.1f} s)")
        table = [["row", *keys]] + [[name, *(_fmt(r["metrics"], k) for k in keys)] for name, r in rows.items()]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for i, r in enumerate(table):
            print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
            if i == 0:
                print("-|-".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
