"""What `ganforge eval` leaves: the JSON result file, and the table it prints (protocol lines, then each number
next to its floor and ceiling)."""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np

from .. import runs

ORDER = ("fid", "kid", "precision", "recall", "density", "coverage", "is", "acc", "modes", "kl",
         "high_quality", "reverse_kl")
LABELS = {"fid": "FID", "kid": "KID", "is": "IS", "acc": "class accuracy", "kl": "modes KL (nats)",
          "high_quality": "high quality", "reverse_kl": "reverse KL (nats)"}


def _fmt(metrics: dict | None, key: str) -> str:
    if not metrics or key not in metrics or metrics[key] is None:
        return "-"
    v = metrics[key]
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str) or not math.isfinite(v):
        return str(v)
    text = f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    std = metrics.get(f"{key}_std")
    return f"{text} ± {std:.4f}" if std is not None else text


def format_table(result: dict) -> str:
    p, src = result["protocol"], result["source"]
    what = src.get("path", src.get("kind"))
    extra = ", ".join(str(src[k]) for k in ("recipe", "kind", "checkpoint") if src.get(k))
    ref = p["reference"]
    lines = [f"source:     {what} ({extra})",
             f"reference:  {ref['spec']}, {ref['split']} split, {ref['num']} samples of shape "
             f"{'x'.join(map(str, ref['shape']))}"
             + ("" if ref.get("subset", "all").startswith("all") else f" ({ref['subset']})"),
             f"generated:  {p['num_generated']} samples, seed {p['seed']}, {p.get('generated', '')}".rstrip(", ")]
    for label, f in (("features:", p.get("features")), ("classifier:", p.get("classifier"))):
        if f and (label == "features:" or f is not p.get("features")):
            sha = (f.get("weights_sha256") or "")[:16]
            lines.append(f"{label:11s} {f['extractor']}" + (f" (weights sha256 {sha}...)" if sha else "")
                         + f"; {f['preprocessing']}")
    if p.get("protocol"):
        lines.append(f"protocol:   {p['protocol']}; comparable to {p.get('comparable_to', '?')}")
    lines.append(f"ganforge:   {p['ganforge_version']}")
    points = result.get("reference_points") or {}
    floor, ceiling = points.get("floor", {}), points.get("ceiling", {})
    keys = [k for k in ORDER if k in result["metrics"]]
    head = ["metric", "result"]
    if points:
        head += [f"floor (N={floor.get('num', '-')})", f"ceiling (N={ceiling.get('num', '-')})"]
    rows = [head]
    for k in keys:
        row = [LABELS.get(k, k), _fmt(result["metrics"], k)]
        if points:
            row += [_fmt(floor.get("metrics"), k), _fmt(ceiling.get("metrics"), k)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines.append("")
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if "acc_real" in result["metrics"]:
        lines.append(f"(the digits classifier scores {result['metrics']['acc_real']:.4f} on the real reference)")
    if points:
        lines.append("")
        lines.append(f"floor:   {floor.get('what')}")
        lines.append(f"ceiling: {ceiling.get('what')}")
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    if result.get("path"):
        lines.append(f"\nwritten: {result['path']}")
    return "\n".join(lines)


def write_result(result: dict, source, out) -> Path:
    """eval-<timestamp>.json in a run or export folder (the run's folder for a checkpoint; ./zoo-NAME for a zoo
    model), FOLDER-eval-<timestamp>.json beside a folder of images, or `out`; written atomically."""
    if out:
        path = Path(out)
    else:
        base, prefix = Path(source), ""
        if result["source"].get("kind") == "checkpoint":
            base = base.parent.parent
        if result["source"].get("kind") == "zoo":      # its folder is the installed package's: ./zoo-NAME
            base = runs.samples_dir(source).parent
        if result["source"].get("kind") == "folder":
            # beside the folder, never inside it: a JSON in an image folder is read by the next evaluation of
            # that folder (or by the training data reader) as one more file
            base, prefix = base.resolve().parent, base.resolve().name + "-"
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path, i = base / f"{prefix}eval-{stamp}.json", 1
        while path.exists():
            path, i = base / f"{prefix}eval-{stamp}-{i}.json", i + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(jsonable(result), indent=2) + "\n")
    tmp.replace(path)
    return path


def jsonable(x):
    """JSON has no inf / nan or numpy scalars: as strings and Python numbers."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)           # JSON has no inf / nan
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x
