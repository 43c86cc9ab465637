"""`ganforge upscale RUN IMAGE... --out FILE|DIR`: super-resolve images with a trained SRGAN / SRResNet
(Ledig et al. 2017, arXiv:1609.04802). The generator is fully convolutional: any input size works, and
the output is `scale` times larger. One input file with an image-suffixed --out writes that file;
otherwise --out is a folder of PNGs (folders keep their sub-paths)."""
from __future__ import annotations

from pathlib import Path

from ..errors import GanforgeError
from . import out_dir
from .translate import apply, check_sizes, image_files, load_translator, read_image, write_image

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def add(subparsers) -> None:
    p = subparsers.add_parser("upscale", help="super-resolve images with an srgan run")
    p.add_argument("run", help="run directory (or checkpoint / export folder)")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--out", required=True, metavar="FILE|DIR")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.set_defaults(func=run)


def run(args) -> int:
    # inputs and --out first (they need no model): a missing input or a file where the output folder
    # should be fails in one line here, not in mkdir after the model is loaded
    files = image_files(args.inputs)
    out = Path(args.out)
    single = len(files) == 1 and Path(args.inputs[0]).is_file() and out.suffix.lower() in SUFFIXES
    if not single:
        out_dir(out)
    recipe, G = load_translator(args.run, None, args.device, upscale=True)
    channels = recipe.input_shape()[0]
    check_sizes(recipe, files)
    for src, rel in files:
        try:
            y = apply(recipe, G, read_image(src, channels), resize=False, seed=0)
        except GanforgeError as e:
            raise GanforgeError(f"{src}: {e}") from None
        print(write_image(y, out if single else out / rel))
    return 0
