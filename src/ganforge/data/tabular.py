"""`csv:PATH` — tabular rows for MLP GANs.

Numeric columns are standardized; string columns become one-hot blocks. The schema (means, stds, categories)
lives in DataInfo.extra so samples are written back as a CSV in the original columns without the data.
The delimiter (, ; tab |) is detected from the start of the file.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from ..errors import GanforgeError
from ..registry import DATASETS
from .base import Data, DataInfo, need_arg

MISSING = {"", "na", "nan", "null", "none", "?"}
DELIMITERS = ",;\t|"
# A text column with more distinct values than this is an id or free text, not a category: its one-hot block
# would be huge (20k unique rows took 4.9 GB) and each value too rare to learn. Refused when
# distinct > MAX_CATEGORIES, or when rows >= 50 and distinct > rows / 10 (seen < 10 times each on average).
MAX_CATEGORIES = 1000


def _delimiter(f) -> str:
    """Sniff the delimiter from the first 16 KB (whole lines only); a one-column file has none to find: ','."""
    sample = f.read(16384)
    f.seek(0)
    sample = sample[:sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load_csv(path: str) -> tuple[Data, DataInfo]:
    p = Path(path)
    if not p.is_file():
        raise GanforgeError(f"CSV file {path!r} does not exist; give csv:PATH to a file with a header row")
    with p.open(newline="") as f:
        delim = _delimiter(f)
        rows = list(csv.reader(f, delimiter=delim))
    if len(rows) < 2:
        raise GanforgeError(f"CSV file {path!r} has no data rows; it needs a header row and at least one row")
    header, body = rows[0], rows[1:]
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise GanforgeError(f"CSV file {path!r} line {r} has {len(row)} fields, the header has {len(header)}")
        for name, v in zip(header, row):
            if v.strip().lower() in MISSING:
                raise GanforgeError(f"CSV file {path!r} has a missing value in column {name!r} at line {r}; "
                                    f"fill it in or drop the row (ganforge does not impute)")
    columns, blocks = [], []
    for j, name in enumerate(header):
        vals = [row[j].strip() for row in body]
        if all(_is_number(v) for v in vals):
            bad = next((i for i, v in enumerate(vals) if not math.isfinite(float(v))), None)
            if bad is not None:   # inf/1e999 would only show up later as a divergence at step 0
                raise GanforgeError(f"CSV file {path!r} has a non-finite value {vals[bad]!r} in column {name!r} "
                                    f"at line {bad + 2}; replace it with a finite number or drop the row")
            t = torch.tensor([float(v) for v in vals], dtype=torch.float64)
            mean, std = t.mean().item(), t.std().item() if len(vals) > 1 else 1.0
            std = std if std > 0 else 1.0
            integer = all(float(v).is_integer() for v in vals)
            columns.append({"name": name, "type": "numeric", "mean": mean, "std": std, "integer": integer})
            blocks.append(((t - mean) / std).float()[:, None])
        else:
            cats = sorted(set(vals))
            if len(cats) > MAX_CATEGORIES or (len(vals) >= 50 and len(cats) > len(vals) / 10):
                raise GanforgeError(
                    f"CSV file {path!r} column {name!r} has {len(cats)} distinct text values in {len(vals)} rows "
                    f"(e.g. {vals[0]!r}; read with delimiter {delim!r}): that is an id or free text, not a "
                    f"category; drop the column or make it numeric")
            code = {c: i for i, c in enumerate(cats)}
            idx = torch.tensor([code[v] for v in vals])
            columns.append({"name": name, "type": "categorical", "categories": cats})
            # one-hot scaled to {-1, 1}: the same range as standardized numbers
            blocks.append(torch.nn.functional.one_hot(idx, len(cats)).float() * 2 - 1)
    x = torch.cat(blocks, dim=1)
    return Data(x), DataInfo(f"csv:{path}", "table", (x.shape[1],), extra={"columns": columns})


def decode_rows(x: torch.Tensor, columns: list[dict]) -> list[list]:
    """Model output (N x d, standardized/one-hot space) -> rows in the original columns."""
    out_cols, j = [], 0
    for c in columns:
        if c["type"] == "numeric":
            v = x[:, j].double() * c["std"] + c["mean"]
            out_cols.append([int(round(a)) if c["integer"] else float(a) for a in v.tolist()])
            j += 1
        else:
            k = len(c["categories"])
            out_cols.append([c["categories"][i] for i in x[:, j:j + k].argmax(1).tolist()])
            j += k
    return [list(r) for r in zip(*out_cols)]


def write_csv(path, x: torch.Tensor, columns: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([c["name"] for c in columns])
        w.writerows(decode_rows(x, columns))


@DATASETS.register("csv")
def _csv(arg, *, split, resolution, channels, skip_bad, download):
    need_arg("csv", arg, "csv:PATH")
    return load_csv(arg)
