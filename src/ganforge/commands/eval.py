"""`ganforge eval SOURCE`: FID / KID / IS / precision-recall / density-coverage / class accuracy / modes of
a run, checkpoint, exported generator or folder of images against a data spec, with the protocol, the
real-data floor and the untrained-generator ceiling printed next to the numbers (docs/metrics.md)."""
from __future__ import annotations

import argparse

from ..config import choices
from ..metrics.evaluate import DEFAULT_METRICS, DEFAULT_NUM, METRICS, evaluate
from ..metrics.protocols import PROTOCOLS
from ..recipes.base import RecipeConfig
from ..metrics.report import format_table
from . import out_file


def add(sub) -> None:
    e = sub.add_parser(
        "eval", help="evaluate a run / generator / image folder (FID, KID, IS, precision-recall, ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="metrics:\n" + "\n".join(f"  {k:6s} {v}" for k, v in METRICS.items()))
    e.add_argument("source", help="run directory, checkpoint folder, exported generator, or a folder of images")
    e.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated (default: %(default)s)")
    e.add_argument("--ref", metavar="SPEC", help="reference data spec (default: the run's data; digits for a folder)")
    e.add_argument("--split", choices=["test", "train"], default="test", help="reference split (default: test)")
    e.add_argument("--ref-num", type=int, dest="ref_num",
                   help="reference samples (default: the whole split, at most 10000: a fixed subset beyond)")
    e.add_argument("--num", type=int, help=f"generated samples (default {DEFAULT_NUM}; a folder: all its images)")
    e.add_argument("--features", metavar="NAME",
                   help="digits | inception | dinov2 | raw (default: digits for digits data, raw for points, "
                        "else inception)")
    e.add_argument("--protocol", choices=list(PROTOCOLS),
                   help="how images reach the extractor and which reference it equals: pytorch-fid (default), "
                        "tf (TensorFlow 1 / torch-fidelity), clean (clean-fid); dinov2: dgm-eval's default, "
                        "torch-fidelity's, dgm-eval's --clean_resize")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--weights", metavar="PATH",
                   help="feature extractor weights (inception: pt_inception-2015-12-05-6726825d.pth; dinov2: "
                        "dinov2_vitl14_pretrain.pth or dinov2_vitb14_pretrain.pth)")
    e.add_argument("--download", action="store_true", help="download the Inception / DINOv2 weights if not cached")
    e.add_argument("--batch-size", type=int, dest="batch_size")
    e.add_argument("--device", choices=choices(RecipeConfig, "device"), default="auto")
    e.add_argument("--no-reference", dest="reference", action="store_false",
                   help="skip the floor / ceiling rows (each costs one more pass of --num samples)")
    e.add_argument("--out", metavar="FILE",
                   help="eval JSON path (default: RUN/eval-<timestamp>.json; beside a folder: FOLDER-eval-<timestamp>.json)")
    e.set_defaults(func=run)


def run(a) -> int:
    if a.out:     # checked first: the JSON is written last, after the whole evaluation has run
        out_file(a.out, (".json",), "eval writes its results as JSON")

    result = evaluate(a.source, ref=a.ref, metrics=a.metrics, num=a.num, features=a.features, seed=a.seed,
                      weights=a.weights, batch_size=a.batch_size, split=a.split, reference=a.reference,
                      device=a.device, download=a.download, out=a.out,
                      ref_num=a.ref_num, protocol=a.protocol)
    print(format_table(result))
    return 0
