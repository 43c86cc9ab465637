"""`ganforge upscale RUN IMAGE... --out FILE|DIR`: super-resolve images with a trained SRGAN / SRResNet
(Ledig et al. 2017, arXiv:1609.04802). The generator is fully convolutional: any input size works, and
the output is `scale` times larger. One input file with an image-suffixed --out writes that file;
otherwise --out is a folder of PNGs (folders keep their sub-paths)."""
from __future__ import annotations

from pathlib import Path

from . import out_dir
from .translate import input_paths, apply_all, check_sizes, image_files, load_translator

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def upscale(run, inputs, out, *, device: str = "cpu") -> list[Path]:
    """Super-resolve image files and folders of images (`inputs`: a path or a list) with an srgan run. One
    input file and an `out` with an image suffix write that file; otherwise `out` is a folder of PNGs
    (folders keep their sub-paths). Inputs and `out` are checked before the model is loaded, every input's
    size before anything is written. Returns the paths written."""
    # inputs and --out first (they need no model): a missing input or a file where the output folder
    # should be fails in one line here, not in mkdir after the model is loaded
    names = input_paths(inputs)
    files = image_files(names)
    out = Path(out)
    single = len(files) == 1 and Path(names[0]).is_file() and out.suffix.lower() in SUFFIXES
    if not single:
        out_dir(out)
    recipe, G = load_translator(run, None, device, upscale=True)
    check_sizes(recipe, files)
    return apply_all(recipe, G, files, lambda rel: out if single else out / rel, resize=False, seed=0)


def run(args) -> int:
    for path in upscale(args.run, args.inputs, args.out, device=args.device):
        print(path)
    return 0
