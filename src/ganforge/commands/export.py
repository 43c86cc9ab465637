"""`ganforge export RUN --out DIR [--onnx]`: a self-contained generator folder (config.json + safetensors,
loadable with ganforge.load without the run or the data), optionally an ONNX graph of z (, labels) -> sample."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import runs
from ..recipes.base import Translator
from ..errors import GanforgeError
from ..training.checkpoint import flatten, write_json_atomic
from . import out_dir


def add(sub) -> None:
    p = sub.add_parser("export", help="write a self-contained generator folder (and optionally ONNX)")
    p.add_argument("run", help="run directory or checkpoint folder")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--onnx", action="store_true", help="also write generator.onnx (needs the onnx package)")
    p.set_defaults(func=run)


class _Sampler(torch.nn.Module):
    def __init__(self, recipe, G):
        super().__init__()
        self.recipe, self.G = recipe, G

    def forward(self, z, labels=None):
        return self.recipe.generate(self.G, z, labels)


def export(run_dir, out, onnx: bool = False) -> Path:
    out = out_dir(out)
    g = runs.load(run_dir)
    if out.exists() and any(out.iterdir()):
        raise GanforgeError(f"export folder {str(out)!r} is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    save_file(flatten({g.recipe.sampler: g.G}), str(out / "weights.safetensors"))
    write_json_atomic(out / "config.json", {**g.run, "exported_from": str(run_dir)})
    if onnx:
        try:
            import onnx  # noqa: F401  (optional dependency, needed by --onnx only: imported when asked for)
        except ImportError:
            raise GanforgeError("--onnx needs the onnx package: pip install onnx") from None
        labels = g.recipe.sample_labels(2)
        # a tracing input of the right shape: a translator's is an image, so no data set is needed to export
        x = (torch.zeros(2, *g.recipe.input_shape()) if isinstance(g.recipe, Translator)
             else g.recipe.sample_inputs(2))
        args = (x,) + ((labels,) if labels is not None else ())
        names = ["z"] + (["labels"] if labels is not None else [])
        torch.onnx.export(_Sampler(g.recipe, g.G.cpu().eval()), args, str(out / "generator.onnx"), dynamo=False,
                          input_names=names, output_names=["sample"],
                          dynamic_axes={k: {0: "n"} for k in names + ["sample"]})
    return out


def run(a) -> int:
    out = export(a.run, a.out, a.onnx)
    print(f"exported to {out} (load it with ganforge.load({str(out)!r}))")
    return 0
