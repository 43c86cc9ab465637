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


class _Sampler(torch.nn.Module):
    def __init__(self, recipe, G):
        super().__init__()
        self.recipe, self.G = recipe, G

    def forward(self, z, labels=None):
        return self.recipe.generate(self.G, z, labels)


def export(run_dir, out, onnx: bool = False) -> Path:
    """Write the generator of a run directory or checkpoint folder to the new folder `out` (config.json +
    weights.safetensors, the EMA weights when the run kept them): `ganforge.load(out)` reads it without the run
    or its data. onnx=True also writes out/generator.onnx, a graph of (z[, labels]) -> sample with a dynamic
    batch axis (needs the onnx package: pip install 'ganforge[onnx]'). Returns `out`."""
    out = out_dir(out)
    g = runs.load(run_dir)
    if out.exists() and any(out.iterdir()):
        raise GanforgeError(f"export folder {str(out)!r} is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    save_file(flatten({g.recipe.sampler: g.G}), str(out / "weights.safetensors"))
    write_json_atomic(out / "config.json", {**g.run, "exported_from": str(run_dir), "step": g.step})
    if onnx:
        try:
            import onnx  # noqa: F401  (optional dependency, needed by --onnx only: imported when asked for)
        except ImportError:
            raise GanforgeError("--onnx needs the onnx package: pip install onnx (or 'ganforge[onnx]')") from None
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
    if a.onnx:
        print(f"ONNX graph: {out / 'generator.onnx'}")
    return 0
