"""`ganforge upscale RUN IMAGE... --out FILE|DIR`: super-resolve images with a trained SRGAN / SRResNet
(Ledig et al. 2017, arXiv:1609.04802). The generator is fully convolutional: any input size works, and
the output is `scale` times larger. One input file with an image-suffixed --out writes that file;
otherwise --out is a folder of PNGs (folders keep their sub-paths)."""
from __future__ import annotations

from pathlib import Path

from .translate import apply_all, check_sizes, load_translator, targets


def upscale(run, inputs, out, *, device: str = "cpu") -> list[Path]:
    """Super-resolve image files and folders of images (`inputs`: a path or a list) with an srgan run. One
    input file and an `out` with an image suffix write that file; otherwise `out` is a folder of PNGs
    (folders keep their sub-paths). Inputs and `out` are checked before the model is loaded, every input's
    size before anything is written. Returns the paths written."""
    files, target = targets(inputs, out)      # inputs and --out first: they need no model
    recipe, G = load_translator(run, None, device, upscale=True)
    check_sizes(recipe, files)
    return apply_all(recipe, G, files, target, resize=False, seed=0)


def run(args) -> int:
    for path in upscale(args.run, args.inputs, args.out, device=args.device):
        print(path)
    return 0
