"""`ganforge.evaluate`: generated samples vs a reference data set, with the protocol recorded.

Metrics (math in stats.py and digits.py):
- fid: Frechet distance of feature Gaussians (Heusel et al. 2017, arXiv:1706.08500, eq. 6);
- kid: unbiased MMD^2, cubic polynomial kernel, 100 subsets of <= 1,000 (Binkowski et al., arXiv:1801.01401);
- pr: precision / recall of k-NN manifolds, k = 3 (Kynkaanniemi et al. 2019, arXiv:1904.06991, eq. 1-2);
- dc: density / coverage, k = 3 (Naeem et al. 2020, arXiv:2002.09797, eq. 3-4);
- is: exp(E_x KL(p(y|x) || p(y))), 10 splits (Salimans et al. 2016, arXiv:1606.03498), with the chosen
  extractor's classifier (Inception's 1008 classes, or the digits CNN: the "digits IS");
- acc: share of a conditional generator's samples, drawn for every label in turn, that the digits CNN
  classifies as the label they were drawn for (next to the CNN's accuracy on the real reference);
- modes: digits data: classes the CNN finds (10, or 1,000 on `digits:stacked`, PacGAN arXiv:1712.04086
  Sec. 5.1) and KL(mode histogram || uniform); 2-D mixtures: PacGAN's modes / high quality / reverse KL.

Reference points at the same sample count make a number readable: the floor is real data from the other
split of the reference spec (train, when the reference is the test split) and the ceiling the same
recipe's untrained generator (uniform noise images for a folder source). FID is biased by N: compare
numbers only at equal N, which is why the protocol records every count.

Everything runs under torch.random.fork_rng with its own seeds: evaluating never moves the caller's RNG
(periodic evaluation, metrics/periodic.py, keeps training bit-identical on resume).
"""
from __future__ import annotations

import datetime
import math
import sys
from pathlib import Path

import torch

from ..data import resolve
from ..errors import GanforgeError
from ..registry import suggest
from . import digits as digits_mod
from . import protocols, record, stats
from .features import DigitsFeatures, load_extractor
from .digits import joint_label
from .floors import NO_SPLITS, reference_points
from .record import IS_SPLITS, KID_SUBSET_SIZE, KID_SUBSETS, NN_K
from .report import write_result
from .sources import QUANTIZE, FolderSource, GeneratorSource, TensorSource, folder_data, open_source

METRICS = {
    "fid": "Frechet distance of feature Gaussians (lower is better)",
    "kid": "kernel distance, unbiased MMD^2 (lower is better)",
    "is": "Inception Score with the extractor's classifier (higher is better)",
    "pr": "precision and recall, k=3 (higher is better)",
    "dc": "density and coverage, k=3 (higher is better)",
    "acc": "digits classifier accuracy of samples drawn per label (conditional generators)",
    "modes": "modes covered and KL to uniform (digits, digits:stacked, toy:ring, toy:grid)",
}
ALIASES = {"precision": "pr", "recall": "pr", "density": "dc", "coverage": "dc", "inception_score": "is",
           "accuracy": "acc", "mode": "modes"}
DEFAULT_METRICS = ("fid", "kid", "pr")
DEFAULT_NUM = 1000
REF_CAP = 10_000        # default reference size: k-NN metrics cost O(N_ref^2); --ref-num to change
FEATURE_METRICS = {"fid", "kid", "pr", "dc"}
LOWER_IS_BETTER = {"fid", "kid", "kl", "reverse_kl"}
DIGIT_SPECS = ("digits", "fonts")        # what the 8x8 digits CNN was made for


def parse_metrics(metrics) -> list[str]:
    """"fid,kid" or a sequence -> validated list (order kept, duplicates dropped)."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [ALIASES.get(m, m) for m in names if m]
    if not names:
        raise GanforgeError(f"no metric given; choose from {', '.join(METRICS)}")
    for m in names:
        if m not in METRICS:
            raise GanforgeError(f"unknown metric {m!r}{suggest(m, [*METRICS, *ALIASES])}; choose from "
                                f"{', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def better(metric: str, new: float, old: float | None) -> bool:
    """Is `new` an improvement over `old` for this metric key (fid: lower; acc, recall...: higher)?"""
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return True
    return new < old if metric in LOWER_IS_BETTER else new > old


def _device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise GanforgeError("device=cuda asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


def _default_features(kind: str, ref: str) -> str:
    if kind != "image":
        return "raw"
    return "digits" if ref.split(":")[0] == "digits" else "inception"


# -- one pass over a source: only features / logits / predictions are kept --------------------------------------
def _scan(source, num: int, batch_size: int, seed: int, extractor, need: dict, classifier) -> dict:
    feats, logits, preds, labels, points = [], [], [], [], []
    pixels = record.PixelHash()
    device = getattr(extractor, "net", None)
    device = next(device.parameters()).device if device is not None else torch.device("cpu")
    cls_device = next(classifier.net.parameters()).device if classifier is not None else device
    count = 0
    for x, y in source.batches(num, batch_size, seed):
        count += x.shape[0]
        pixels.update(x, source.kind)
        if need["features"] or need["logits"]:
            out = extractor(x.to(device), logits=need["logits"])
            if need["features"]:
                feats.append(out["features"].float().cpu())
            if need["logits"]:
                logits.append(out["logits"].float().cpu())
        if need["preds"]:
            preds.append(classifier.predict(x.to(cls_device)).cpu())
        if need["points"]:
            points.append(x.float().cpu())
        if y is not None:
            labels.append(y.cpu())
    if count == 0:
        raise GanforgeError("no samples to evaluate")
    cat = lambda parts: torch.cat(parts) if parts else None  # noqa: E731
    return {"num": count, "features": cat(feats), "logits": cat(logits), "preds": cat(preds),
            "labels": cat(labels), "points": cat(points), "content": pixels.summary()}


def _compute(metrics: list[str], gen: dict, ref: dict, ctx: dict) -> dict:
    out: dict = {}
    for m in metrics:
        if m == "fid":
            out["fid"] = stats.fid(gen["features"], ref["features"])
        elif m == "kid":
            out["kid"], out["kid_std"] = stats.kid(gen["features"], ref["features"], subsets=KID_SUBSETS,
                                                   subset_size=KID_SUBSET_SIZE, seed=ctx["seed"],
                                                   sampler=ctx["kid_sampler"])
        elif m == "pr":
            out.update(stats.precision_recall(ref["features"], gen["features"], k=NN_K))
        elif m == "dc":
            out.update(stats.density_coverage(ref["features"], gen["features"], k=NN_K))
        elif m == "is":
            out["is"], out["is_std"] = stats.inception_score(gen["logits"], splits=IS_SPLITS, from_logits=True)
        elif m == "acc" and gen.get("labels") is not None:
            hit = joint_label(gen["preds"]) == gen["labels"].long()
            out["acc"] = hit.double().mean().item()
            k = ctx["num_classes"]
            out["acc_per_class"] = [round(hit[gen["labels"] == c].double().mean().item(), 4)
                                    if (gen["labels"] == c).any() else None for c in range(k)] if k <= 10 else None
        elif m == "modes" and ctx["kind"] == "image":
            total = 10 ** gen["preds"].shape[1]
            histogram = torch.bincount(joint_label(gen["preds"]), minlength=total)
            out["modes"] = int((histogram > 0).sum())
            out["kl"] = digits_mod._kl_to_uniform(histogram)
        elif m == "modes":
            r = stats.mode_coverage(gen["points"], ctx["means"], ctx["std"])
            out.update({k: r[k] for k in ("modes", "high_quality", "reverse_kl")})
    return out


def _check_counts(metrics: list[str], num: int, n_ref: int, what: str) -> None:
    need = {"fid": 2, "kid": 2, "pr": NN_K + 1, "dc": NN_K + 1, "is": IS_SPLITS, "modes": 1, "acc": 1}
    for m in metrics:
        if num < need[m]:
            raise GanforgeError(f"metric {m!r} needs at least {need[m]} generated samples, got {num} "
                                f"({what}); pass --num {max(need[m], 2)} or more")
        if m in FEATURE_METRICS and n_ref < need[m]:
            raise GanforgeError(f"metric {m!r} needs at least {need[m]} reference samples; the reference has "
                                f"{n_ref}: choose a larger --ref data set")


class Evaluation:
    """Everything fixed for one source shape and reference: extractor, classifier, reference features.

    Build it once and call `run(source, num, seed)` many times (periodic evaluation during training)."""

    def __init__(self, *, kind: str, shape: tuple, ref: str, split: str, metrics, features: str | None,
                 weights=None, batch_size: int | None = None, device=None, download: bool = False,
                 cache_dir=None, ref_num: int | None = None, protocol: str | None = None):
        self.metrics = parse_metrics(metrics)
        self.kind, self.shape, self.ref, self.split = kind, tuple(shape), ref, split
        self.device = _device(device)
        res, ch = (shape[-1], shape[0]) if kind == "image" else (None, None)
        self.features = features or _default_features(kind, ref)
        # every extractor defaults to pytorch-fid (for dinov2: dgm-eval's default input, Stein et al.'s FD-DINOv2)
        self.protocol_name = protocols.get(protocol or "pytorch-fid").name
        if kind == "image" and shape[-1] != shape[-2]:
            # pytorch-fid reads each folder as it is; data specs crop to a square, so only a folder can match
            if not ref.startswith("folder:"):
                raise GanforgeError(f"samples are {shape[-1]}x{shape[-2]} (not square); data specs give square "
                                    f"images, so pass --ref folder:PATH with real images of that size")
            self.ref_data, self.ref_info = folder_data(ref.split(":", 1)[1], ch)
        else:
            self.ref_data, self.ref_info = resolve(ref, split=split, resolution=res, channels=ch)
        if self.ref_info.kind != kind or tuple(self.ref_data.x.shape[1:]) != self.shape:
            raise GanforgeError(f"the samples ({kind}, shape {self.shape}) do not match the reference {ref!r} "
                                f"({self.ref_info.kind}, shape {tuple(self.ref_data.x.shape[1:])}); pass --ref "
                                f"with the data the generator was trained on")
        n = len(self.ref_data)
        if ref_num is not None and ref_num < 1:
            raise GanforgeError(f"--ref-num must be a positive number of reference samples, got {ref_num}")
        cap = ref_num or REF_CAP
        # a fixed subset (seed 0, whatever --seed is) so every evaluation sees the same reference
        self.ref_idx = (torch.arange(n) if n <= cap
                        else torch.randperm(n, generator=torch.Generator().manual_seed(0))[:cap].sort().values)
        self.ref_subset = (f"all {n}" if n <= cap else
                           f"{cap} of {n}: the first {cap} of torch.randperm({n}) seeded 0, sorted")
        self.need = {"features": bool(FEATURE_METRICS & set(self.metrics)), "logits": "is" in self.metrics,
                     "preds": kind == "image" and bool({"acc", "modes"} & set(self.metrics)),
                     "points": kind != "image" and "modes" in self.metrics}
        self.extractor = None
        if self.need["features"] or self.need["logits"]:
            self.extractor = load_extractor(self.features, weights=weights, device=self.device,
                                            download=download, cache_dir=cache_dir, protocol=self.protocol_name)
            self.extractor.check(self.shape, kind)
        elif weights is not None:
            raise GanforgeError(f"--weights is only used by feature metrics (fid, kid, is, pr, dc); "
                                f"{','.join(self.metrics)} do not use an extractor")
        self.classifier = None
        if self.need["preds"]:
            self.classifier = (self.extractor if isinstance(self.extractor, DigitsFeatures)
                               else load_extractor("digits", device=self.device))
            self.classifier.check(self.shape, kind)
        self.batch_size = batch_size or (self.extractor.default_batch if self.extractor else 1000)
        if self.batch_size < 1:
            raise GanforgeError(f"batch_size must be >= 1, got {self.batch_size}")
        self.ctx = {"kind": kind, "num_classes": 0, "kid_sampler": protocols.get(self.protocol_name).kid_sampler}
        if "modes" in self.metrics and kind != "image":
            extra = self.ref_info.extra
            if "means" not in extra:
                raise GanforgeError(f"metric 'modes' needs a Gaussian-mixture reference (toy:ring, toy:grid) for "
                                    f"points; {ref!r} has no modes")
            self.ctx.update(means=extra["means"], std=extra["std"])
        if "acc" in self.metrics:
            k = self.ref_info.num_classes
            if self.ref_data.y is None or k < 2:
                raise GanforgeError(f"metric 'acc' needs a reference with class labels; {ref!r} has none. Use "
                                    f"--ref digits (or digits:stacked)")
            if kind != "image" or k not in (10, 1000):
                raise GanforgeError(f"metric 'acc' uses the digits classifier: it needs digits or digits:stacked "
                                    f"labels, but {ref!r} has {k} classes")
            self.ctx["num_classes"] = k
        self._ref_scan = None

    def reference_scan(self, seed: int) -> dict:
        if self._ref_scan is None:
            n = len(self.ref_idx)
            src = TensorSource(self.ref_data, self.ref_info, self.ref_idx, {"kind": "reference"})
            self._ref_scan = _scan(src, n, self.batch_size, seed, self.extractor, self.need, self.classifier)
        return self._ref_scan

    def check_source(self, source, what: str) -> None:
        if source.kind != self.kind or tuple(source.shape) != self.shape:
            raise GanforgeError(f"{what} gives {source.kind} of shape {tuple(source.shape)}, but this evaluation "
                                f"is set up for {self.kind} of shape {self.shape}")
        if "acc" in self.metrics and not source.conditional:
            raise GanforgeError(f"metric 'acc' needs a conditional generator (e.g. cgan) or a folder with one "
                                f"sub-folder per digit (0/ ... 9/); {what} has no labels")

    def run(self, source, num: int, seed: int, metrics=None) -> dict:
        metrics = metrics or self.metrics
        ref = self.reference_scan(seed)
        _check_counts(metrics, num, ref["num"], "--num")
        with torch.random.fork_rng(devices=cuda_devices(self.device)):
            torch.manual_seed(seed)   # recipes that draw internal noise (StyleGAN) become reproducible
            gen = _scan(source, num, self.batch_size, seed, self.extractor, self.need, self.classifier)
        return {"num": gen["num"], "metrics": _compute(metrics, gen, ref, {**self.ctx, "seed": seed}),
                "content": gen["content"]}

    def reference_accuracy(self) -> float:
        ref = self.reference_scan(0)
        return (joint_label(ref["preds"]) == ref["labels"].long()).double().mean().item()

    def protocol(self, num: int, seed: int, generated: dict | None = None) -> dict:
        ref_n, ref = len(self.ref_idx), self.reference_scan(seed)
        unsplit = self.ref.split(":")[0] in NO_SPLITS
        p = {**record.versions(), "device": str(self.device), "seed": seed, "num_generated": num,
             "num_reference": ref_n, "protocol": self.protocol_name,
             "comparable_to": record.comparable(self.protocol_name, self.features if self.extractor else None),
             "environment": record.environment(self.device),
             "reference": {"spec": self.ref, "split": None if unsplit else self.split, "num": ref_n,
                           "subset": self.ref_subset, "shape": list(self.shape), **ref["content"]},
             "features": self.extractor.protocol if self.extractor else None,
             "params": record.params(self.metrics, self.protocol_name, self.features, num, ref_n,
                                     (self.extractor.protocol.get("logits") if self.extractor else None))}
        r = p["reference"]
        if unsplit:
            r["split_note"] = f"{self.ref.split(':')[0]}: specs have no splits: all their data (asked: {self.split})"
        if self.kind != "image":
            r["preprocessing"] = "as stored"
        elif self.shape[-1] != self.shape[-2]:
            r["preprocessing"] = "read as stored (no resize, like the samples): non-square folder; v -> v / 127.5 - 1"
        elif self.ref.startswith("folder:"):
            r.update(record.folder_resizes(Path(self.ref.split(":", 1)[1]), self.shape[-1]))
        else:
            r["preprocessing"] = ("uint8 resized to the samples' side and channels as ganforge.data does for "
                                  "training, v -> v / 127.5 - 1")
        if generated is not None:
            p["generated_content"] = generated
        if self.classifier is not None:
            p["classifier"] = self.classifier.protocol
        if "modes" in self.metrics:
            p["params"]["modes"] = ({"classifier": "digits", "modes": 10 ** self.shape[0]} if self.kind == "image"
                                    else {"protocol": "PacGAN sec. 5.1", "threshold_std": 3.0})
        return p


def cuda_devices(device: torch.device) -> list:
    """What torch.random.fork_rng must fork besides the CPU generator."""
    return [device] if device.type == "cuda" else []


def _notes(ev: Evaluation, num: int, n_ref: int) -> list[str]:
    notes = []
    dim = (ev.extractor.protocol.get("feature_dim") or 0) if ev.extractor else 0
    if ev.extractor is not None and ev.shape[0] == 3 and ev.features == "digits":
        dim *= 3
    if ev.extractor is not None and ev.extractor.protocol.get("canonical") is False:
        notes.append(f"the {ev.features} weights are not the canonical file (SHA-256 "
                     f"{ev.extractor.protocol['weights_sha256'][:16]}...): not comparable to published numbers")
    if "fid" in ev.metrics and dim and min(num, n_ref) <= dim:
        notes.append(f"FID with {min(num, n_ref)} samples in {dim} dimensions: the covariance is poorly "
                     f"estimated and FID is biased upwards; compare FIDs only at the same N and reference")
    return notes


def _digits_misuse(ev: Evaluation, source) -> list[str]:
    """The digits CNN saw 8x8 grey digits only: on photos its features are not a measure of anything."""
    why = []
    if ev.ref.split(":")[0] not in DIGIT_SPECS:
        why.append(f"the reference {ev.ref!r} is not digits")
    if isinstance(source, FolderSource) and source.native_channels == 3 and ev.shape[0] == 1:
        why.append("the folder holds colour images, read as grey to match the 1-channel digits reference")
    if not why:
        return []
    return [f"warning: the digits extractor (an 8x8 grey digits CNN) scores these images but {' and '.join(why)}; "
            f"its numbers say nothing about photos: use --features inception (or dinov2) and --ref with real "
            f"images of the same kind"]


def evaluate(source, ref: str | None = None, metrics=DEFAULT_METRICS, num: int | None = None,
             features: str | None = None, seed: int = 0, weights=None, batch_size: int | None = None,
             split: str = "test", reference: bool = True, device=None, download: bool = False,
             out=None, ref_num: int | None = None, protocol: str | None = None) -> dict:
    """Evaluate a run directory, checkpoint, exported generator or folder of images against `ref`.

    ref: data spec (default: the run's own data; `digits` for a folder). split: the reference split
    (test by default; the floor uses the other one). num: generated samples (default 1,000; a folder:
    all its images). ref_num: reference samples (default: the whole split, at most 10,000; a fixed
    subset beyond). features: digits | inception | dinov2 | raw (default: digits for digits data, raw for
    points, inception otherwise). protocol: pytorch-fid | tf | clean (metrics/protocols.py; default
    pytorch-fid; dinov2's input per protocol: protocols.DINOV2). reference: also compute the floor and
    ceiling at the same N.
    out: JSON path; None = eval-<timestamp>.json next to the source (beside a folder of images, never
    inside it); False = do not write.
    Returns the result dict (metrics, protocol, reference_points, path).
    """
    if split not in ("train", "test"):
        raise GanforgeError(f"split must be train or test, got {split!r}")
    metric_list = parse_metrics(metrics)
    dev = _device(device)
    with torch.random.fork_rng(devices=cuda_devices(dev)), record.no_tf32(dev):
        source_obj = open_source(source, dev)
        is_gen = isinstance(source_obj, GeneratorSource)
        ref = ref or (source_obj.info.spec if is_gen else "digits")
        if isinstance(source_obj, FolderSource):      # a folder is read in the reference's channels
            ref_data, ref_info = resolve(ref, split=split)
            if ref_info.kind == "image":
                source_obj.set_channels(int(ref_data.x.shape[1]))
        ev = Evaluation(kind=source_obj.kind, shape=source_obj.shape, ref=ref, split=split, metrics=metric_list,
                        features=features, weights=weights, batch_size=batch_size, device=dev, download=download,
                        ref_num=ref_num, protocol=protocol)
        ev.check_source(source_obj, str(source))
        if num is None:
            num = source_obj.available or DEFAULT_NUM
        if not isinstance(num, int) or num < 1:
            raise GanforgeError(f"--num must be a positive number of samples, got {num!r}")
        if source_obj.available is not None and num > source_obj.available:
            raise GanforgeError(f"{str(source)!r} holds only {source_obj.available} images; pass --num "
                                f"{source_obj.available} or fewer")
        r = ev.run(source_obj, num, seed)
        result = {"source": source_obj.describe, "metrics": r["metrics"],
                  "protocol": ev.protocol(r["num"], seed, r["content"])}
        result["protocol"]["generated"] = (QUANTIZE if is_gen and ev.kind == "image" else "as stored")
        if is_gen and source_obj.conditional:
            result["protocol"]["labels"] = f"sample i drawn for label i % {source_obj.num_classes}"
        if "acc" in metric_list:
            result["metrics"]["acc_real"] = ev.reference_accuracy()
        if reference:
            result["reference_points"] = reference_points(ev, source_obj, r["num"], seed)
        result["notes"] = _notes(ev, r["num"], len(ev.ref_idx))
        if ev.features == "digits" and ev.extractor is not None:
            result["notes"] += _digits_misuse(ev, source_obj)
    for note in result["notes"]:
        if note.startswith("warning:"):
            print(f"ganforge: {note}", file=sys.stderr)
    result["created"] = datetime.datetime.now().isoformat(timespec="seconds")
    if out is not False:
        result["path"] = str(write_result(result, source, out))
    return result
