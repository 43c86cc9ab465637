"""Reference points printed next to every result at the same N (docs/metrics.md, "Reference points").

floor: real data of the other split of the reference spec, what a generator that matched the data scores;
ceiling: the same recipe's untrained generator, initialised as the trainer does (uniform noise images for a
folder source). `ev` is a metrics.evaluate.Evaluation.
"""
from __future__ import annotations

import torch

from ..data import resolve
from .sources import GeneratorSource, NoiseSource, TensorSource, untrained_source

NO_SPLITS = ("folder", "csv")            # specs that ignore split=: all their data


def _floor_source(ev, num: int, seed: int):
    """Real samples of the other split at N = min(num, available): a generator that matched the data."""
    other = "train" if ev.split == "test" else "test"
    if ev.ref.split(":")[0] in NO_SPLITS:
        return None, f"none: {ev.ref.split(':')[0]}: specs have no separate {other} split"
    res, ch = (ev.shape[-1], ev.shape[0]) if ev.kind == "image" else (None, None)
    data, info = resolve(ev.ref, split=other, resolution=res, channels=ch)
    same = data.x.shape == ev.ref_data.x.shape and torch.equal(data.x, ev.ref_data.x)
    if same:
        return None, f"none: {ev.ref!r} has no separate {other} split"
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:num]
    what = f"real {ev.ref} {other} split vs the {ev.split} split"
    return TensorSource(data, info, idx, {"kind": "real", "split": other}), what


def reference_points(ev, source, num: int, seed: int) -> dict:
    """{"floor": {...}, "ceiling": {...}}, each with what it is, its N and its metric values."""
    out = {}
    floor, what = _floor_source(ev, num, seed)
    if floor is None:
        out["floor"] = {"what": what}
    else:
        n = min(num, floor.available)
        floor_metrics = [m for m in ev.metrics if m != "acc"]
        r = ev.run(floor, n, seed, metrics=floor_metrics) if floor_metrics else {"num": n, "metrics": {}}
        if "acc" in ev.metrics:
            r["metrics"]["acc"] = ev.reference_accuracy()
        out["floor"] = {"what": what, "num": r["num"], "metrics": r["metrics"],
                        **({"acc": f"digits classifier on the real {ev.split} split"} if "acc" in ev.metrics else {})}
    if isinstance(source, GeneratorSource):
        ceiling = untrained_source(source.recipe, source.info, ev.device)
        what = (f"untrained {source.recipe.name} generator (initialised as the trainer does, "
                f"seed {source.recipe.cfg.seed})")
    elif ev.kind == "image":
        ceiling, what = NoiseSource(ev.shape), "uniform noise images"
    else:
        out["ceiling"] = {"what": "none for this source"}
        return out
    # noise has no labels: acc is left out of its row
    row = [m for m in ev.metrics if m != "acc" or ceiling.conditional]
    r = ev.run(ceiling, num, seed, metrics=row) if row else {"num": num, "metrics": {}}
    out["ceiling"] = {"what": what, "num": r["num"], "metrics": r["metrics"]}
    return out
