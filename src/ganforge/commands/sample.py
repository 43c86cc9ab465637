"""`ganforge sample RUN [-n N] [--out FILE]`: draw from a trained run and write what training writes (an image
grid PNG, a scatter/histogram PNG of points over the real ones, or table rows as CSV); `ganforge.sample` is the
same function."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import GanforgeError
from ..recipes.base import TextConditional
from ..runs import load, samples_dir
from ..training.callbacks import sample_suffix
from ..viz import SCATTER_POINTS
from . import out_file

DEFAULT_NUM = {"image": 64, "points": SCATTER_POINTS}     # table rows: 1,000
REAL_POINTS = SCATTER_POINTS                              # real points under the scatter: as many as training shows


def default_name(step: int | None, seed: int, truncation: float | None, label: int | None, text: bool,
                 suffix: str) -> str:
    """sample-stepNNNNNN-seedS[-psiP][-labelK|-text]: the weights' step and every setting that changes the
    draw are in the name, so a later sample never overwrites an earlier one."""
    name = "sample" + (f"-step{step:06d}" if step is not None else "") + f"-seed{seed}"
    if truncation is not None and truncation != 1:
        name += f"-psi{truncation:g}"
    name += f"-label{label}" if label is not None else ("-text" if text else "")
    return name + suffix


def real_points(g):
    """The first REAL_POINTS points of the run's training data, as the training-time scatter shows them;
    None (with a note) when the data cannot be read here."""
    try:
        data, _ = g.recipe.data_split("train")
    except GanforgeError as e:
        print(f"ganforge: note: the scatter shows no real points ({e})", file=sys.stderr)
        return None
    return data.x[:REAL_POINTS].float().cpu()


def sample(run, n: int | None = None, out=None, *, seed: int = 0, label: int | None = None,
           text: str | None = None, truncation: float | None = None, download: bool = False) -> Path:
    """Draw `n` samples from a run directory, checkpoint folder or export folder and write them to `out`.

    n defaults to 64 images, 2,000 points or 1,000 table rows. out defaults to
    RUN/samples/sample-stepNNNNNN-seedS[-psiP][-labelK|-text].png (.csv for tables); an `out` whose suffix
    does not fit what the run writes is refused before anything is drawn. label: the class (conditional
    recipes); text: a caption (text2image); truncation: StyleGAN's psi. Points are drawn over the run's real
    points. run may be a zoo model ("zoo:NAME"; output then under ./zoo-NAME/samples), download=True fetching
    one that is a download. Returns the path written.
    """
    if n is not None and n < 1:       # 0 would silently mean the default, < 0 crash in torch
        raise GanforgeError(f"-n must be >= 1 (how many to draw); got {n}")
    g = load(run, download)
    if text is not None and (label is not None or not isinstance(g.recipe, TextConditional)):
        raise GanforgeError("--text applies to text2image runs, and not together with --label")
    kind = g.info.kind
    suffix = sample_suffix(kind)
    if out is not None:   # checked before drawing: PIL / the CSV writer would fail (or misname) after it
        writes = {"image": "an image grid", "points": "a scatter plot"}.get(kind, "table rows (CSV)")
        out_file(out, (suffix,), f"this {g.recipe.name} run writes {writes}")
    x = g.sample(n or DEFAULT_NUM.get(kind, 1000), seed=seed, labels=label, text=text, truncation=truncation)
    path = Path(out) if out else (samples_dir(run)
                                  / default_name(g.step, seed, truncation, label, text is not None, suffix))
    return g.save(x, path, real=real_points(g) if kind == "points" else None)


def run(a) -> int:
    print(sample(a.run, a.num, a.out, seed=a.seed, label=a.label, text=a.text, truncation=a.truncation,
                 download=a.download))
    return 0
