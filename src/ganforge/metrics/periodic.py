"""Evaluation during training (`eval_every=N`): a generator scored in memory, the best value kept for resume."""
from __future__ import annotations

import math

import torch

from .evaluate import DEFAULT_NUM, Evaluation, cuda_devices, better, parse_metrics
from .sources import GeneratorSource


def evaluate_nets(recipe, G, info, *, ref: str | None = None, metrics=("fid",), num: int = DEFAULT_NUM,
                  features: str | None = None, seed: int = 0, split: str = "test", batch_size: int | None = None,
                  device=None, cache: dict | None = None, ref_num: int | None = None) -> dict:
    """Evaluate a generator in memory (periodic evaluation during training): {"metrics": ..., "protocol": ...}.

    `cache` (any dict kept by the caller) holds the extractor and the reference features between calls.
    G's training flag is restored and the global RNG is untouched, so training continues exactly.
    """
    device = device or next(G.parameters()).device
    source = GeneratorSource(recipe, G, info, {"kind": "nets", "recipe": recipe.name}, device=torch.device(device))
    ref = ref or info.spec
    key = (ref, split, tuple(parse_metrics(metrics)), features, batch_size, str(device), ref_num)
    cache = {} if cache is None else cache
    with torch.random.fork_rng(devices=cuda_devices(torch.device(device))):
        if key not in cache:
            cache[key] = Evaluation(kind=source.kind, shape=source.shape, ref=ref, split=split, metrics=metrics,
                                    features=features, batch_size=batch_size, device=device, ref_num=ref_num)
        ev = cache[key]
        ev.check_source(source, f"the {recipe.name} generator")
        r = ev.run(source, num, seed)
    return {"metrics": r["metrics"], "protocol": ev.protocol(r["num"], seed)}


class PeriodicEval:
    """The evaluation side of `eval_every=N`: the trainer calls it with its sampler G every N steps.

    `__call__(G)` -> {"eval/<key>": value} (a metrics.jsonl row); `improved(row)` says whether `metric`
    beat the best so far (then the trainer keeps that checkpoint as the best); `state_dict()` holds the
    best value as a tensor so a resumed run keeps comparing against it. Reference features and the
    extractor are computed once and reused.
    """

    def __init__(self, recipe, *, metric: str = "fid", num: int = DEFAULT_NUM, ref: str | None = None,
                 features: str | None = None, seed: int = 0):
        name = parse_metrics([metric])[0]
        self.recipe, self.metric, self.num, self.ref, self.features, self.seed = recipe, name, num, ref, features, seed
        # the key compared for "best": fid -> fid, pr -> recall, acc -> acc, modes -> modes, ...
        self.key = {"pr": "recall", "dc": "coverage"}.get(name, name)
        self.best: float | None = None
        self._cache: dict = {}

    def __call__(self, G) -> dict:
        r = evaluate_nets(self.recipe, G, self.recipe.info, ref=self.ref, metrics=(self.metric,), num=self.num,
                          features=self.features, seed=self.seed, cache=self._cache)
        return {f"eval/{k}": v for k, v in r["metrics"].items() if isinstance(v, (int, float))}

    def improved(self, row: dict) -> bool:
        value = row[f"eval/{self.key}"]
        if better(self.key, value, self.best):
            self.best = float(value)
            return True
        return False

    def state_dict(self) -> dict:
        return {"best": torch.tensor(math.nan if self.best is None else self.best, dtype=torch.float64)}

    def load_state_dict(self, state: dict) -> None:
        best = float(state["best"])
        self.best = None if math.isnan(best) else best
