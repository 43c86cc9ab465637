"""`ganforge ...` - a thin layer over the public API (DESIGN §5). Bad input exits with status 2 and one line.

This module, like the parser it builds, imports no torch, so the help text and every argument error answer at
once (docs/performance.md, start-up; tests/test_startup.py checks it). It reaches the implementation through two
tables that import on first use: the package's public API (`ganforge.train`, ... in __init__.py) and the
commands (a subcommand's `_module` default names commands/<module>.py, whose run(args) calls the same function
the Python API exports).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from importlib import metadata

import ganforge

from . import __version__
from .config import TrainConfig, choices, field_types, load_yaml, parse_overrides, to_dict, train_keys
from .errors import GanforgeError
from .registry import DATASETS, RECIPES

TRAIN_FLAGS = {   # shortcuts for `flag=value`: typed and limited as their TrainConfig fields
    "data": "data spec: digits, toy:ring, folder:PATH, csv:PATH, ... (`ganforge list`; default: the recipe's)",
    "steps": "generator updates to train (default: the recipe's or preset's)",
    "seed": "random seed of the weights, the data order and the noise",
    "device": "where to train (auto: cuda when available)",
    "precision": "autocast dtype (auto: bf16 where the hardware has it; docs/performance.md)",
    "threads": "CPU threads (0: OMP_NUM_THREADS or this process's share of the cores)",
}
# ganforge.train()'s own arguments are not config keys: passed as key=value (or YAML keys) they would reach
# train(**overrides) twice and fail with a TypeError. Each has its own flag; the hint says which.
NOT_KEYS = {"out": "use --out DIR", "preset": "use --preset NAME", "progress": "use --quiet for no progress bar",
            "recipe": "name it first: ganforge train RECIPE key=value ...",
            "stop_at": "use steps=N (and `ganforge resume RUN --steps N` to go on)"}
# commands whose parser is defined next to their implementation, which imports torch; built only when the
# command line names them (commands/eval.py's arguments read the metric table of metrics/evaluate.py)
HEAVY_PARSERS = {"eval": "evaluate a run / generator / image folder (FID, KID, IS, precision-recall, ...)"}
DEFAULTS = argparse.ArgumentDefaultsHelpFormatter


def _version() -> str:
    try:                     # the installed torch's version without importing it
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    return f"ganforge {__version__} (torch {torch}, python {sys.version.split()[0]})"


def _command(sub, name: str, help: str, formatter=argparse.HelpFormatter) -> argparse.ArgumentParser:
    """A subcommand whose run(args) is commands/<module>.py's, imported when it runs."""
    p = sub.add_parser(name, help=help, description=help, formatter_class=formatter)
    p.set_defaults(_module=name.replace("-", "_"))
    return p


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Train, sample and evaluate GANs.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="recipes, presets, data specs")
    ls.add_argument("--keys", metavar="RECIPE", help="print the config keys of RECIPE with their defaults")

    t = sub.add_parser("train", help="train a recipe (default: dcgan on the digits data set)")
    t.add_argument("recipe", nargs="?", default=None, help="recipe name (`ganforge list`; default dcgan)")
    t.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides (`ganforge list --keys RECIPE` shows the keys)")
    t.add_argument("--preset", help="named settings of the recipe (`ganforge list` shows them)")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML with recipe, preset and config keys")
    t.add_argument("--out", metavar="DIR", help="run folder (default: runs/RECIPE-DATA-TIMESTAMP)")
    types = field_types(TrainConfig)
    for flag, text in TRAIN_FLAGS.items():
        t.add_argument(f"--{flag}", type=types[flag], choices=choices(TrainConfig, flag), help=text,
                       metavar="SPEC" if flag == "data" else None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run", help="the run folder")
    r.add_argument("--steps", type=int, help="new total number of steps")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    s = _command(sub, "sample", "draw samples from a trained run (grid PNG, scatter PNG or CSV)")
    s.add_argument("run", help="run directory (or checkpoint / export folder, or zoo:NAME)")
    s.add_argument("-n", "--num", type=int, help="how many (default: 64 images, 2,000 points, 1,000 rows)")
    s.add_argument("--out", metavar="FILE",
                   help="default: RUN/samples/sample-stepN-seedS[-psiP][-labelK|-text].png (or .csv)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", type=int, help="class to draw (conditional recipes)")
    s.add_argument("--text", help="caption to draw (text2image runs)")
    s.add_argument("--truncation", type=float, metavar="PSI",
                   help="pull w towards w_avg (stylegan): psi in [0, 1], 1 = none")
    s.add_argument("--download", action="store_true",
                   help="fetch a zoo model that is a download (once; it is cached, SHA-256 checked)")

    _commands(sub)
    for name, text in HEAVY_PARSERS.items():
        if name == command:
            importlib.import_module(f"{__package__}.commands.{name}").add(sub)
        else:      # listed in `ganforge --help`; its arguments are built when it is the command
            sub.add_parser(name, help=text)
    return p


def _commands(sub) -> None:
    """The parsers of commands/export, interpolate, style_mix, translate, upscale, serve and invert."""
    e = _command(sub, "export", "write a self-contained generator folder (and optionally ONNX)")
    e.add_argument("run", help="run directory or checkpoint folder")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--onnx", action="store_true", help="also write generator.onnx (needs the onnx package)")

    i = _command(sub, "interpolate", "latent walk (z: slerp, w: StyleGAN's lerp) as a GIF, MP4 or strip", DEFAULTS)
    i.add_argument("run", help="a run directory (or checkpoint / export folder, or zoo:NAME)")
    i.add_argument("--out", metavar="FILE.gif|FILE.mp4|FILE.png", help="default: RUN/samples/walk-SPACE-seedS.gif")
    i.add_argument("--space", choices=["z", "w"], default="z")
    i.add_argument("-n", "--num", type=int, default=8, help="walks side by side")
    i.add_argument("--points", type=int, default=4, help="key latents on the loop")
    i.add_argument("--frames", type=int, default=12, help="frames between two keys")
    i.add_argument("--fps", type=int, default=12)
    i.add_argument("--scale", type=int, default=0,
                   help="enlarge each frame by this factor (nearest); 0 = auto, about 512 px wide")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--truncation", type=float, default=1.0, help="psi (stylegan runs; 1 = none)")
    i.add_argument("--label", type=int, help="class to draw (conditional recipes)")

    m = _command(sub, "style-mix", "StyleGAN style-mixing grid: sources A in rows, B in columns", DEFAULTS)
    m.add_argument("run", help="a stylegan run directory (or checkpoint / export folder, or zoo:NAME)")
    m.add_argument("--out", metavar="FILE.png", help="default: RUN/samples/style-mix-seedS.png")
    m.add_argument("--rows", type=int, default=4, help="sources A")
    m.add_argument("--cols", type=int, default=5, help="sources B")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--truncation", type=float, default=0.7, help="psi for both sources (1 = none)")
    m.add_argument("--bands", default="coarse,middle,fine", help="style bands copied from B, one block of rows each")
    m.add_argument("--scale", type=int, default=0,
                   help="enlarge the PNG by this factor (nearest); 0 = auto, about 1024 px wide")

    for name, text, inputs, out in (
            ("translate", "translate images (any size) with a pix2pix or CycleGAN run", "INPUT", "FILE|DIR"),
            ("upscale", "super-resolve images with an srgan run", "IMAGE", "FILE|DIR")):
        c = _command(sub, name, text)
        c.add_argument("run", help="run directory (or checkpoint / export folder, or zoo:NAME)")
        c.add_argument("inputs", nargs="+", metavar=inputs, help="image files or folders of images")
        c.add_argument("--out", required=True, metavar=out,
                       help="folder for the PNGs (or one image file for one input file)")
        c.add_argument("--device", choices=choices(TrainConfig, "device"), default="cpu")
    t = sub.choices["translate"]
    t.add_argument("--direction", choices=["AtoB", "BtoA"],
                   help="CycleGAN: which generator (default AtoB); pix2pix: must match its training direction")
    t.add_argument("--resize", action="store_true",
                   help="squash inputs to the size the model was trained at (default: keep each input's size)")
    t.add_argument("--seed", type=int, default=0, help="seed of pix2pix's dropout noise")

    w = _command(sub, "serve", "a local web page to play with trained models (needs: pip install 'ganforge[serve]')",
                 DEFAULTS)
    w.add_argument("models", nargs="+", metavar="RUN_OR_MODEL",
                   help="run directories (or checkpoint / export folders, or zoo:NAME); the page picks among them")
    w.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (the default: this machine only; 0.0.0.0: every network)")
    w.add_argument("--port", type=int, default=7860, help="port to listen on (0: any free port, printed)")

    v = _command(sub, "invert", "project real images into a run's latent space (Zhu 2016)", DEFAULTS)
    v.add_argument("run", help="a run directory (or checkpoint / export folder, or zoo:NAME)")
    v.add_argument("images", nargs="+", help="image files")
    v.add_argument("--out", metavar="DIR", help="default: RUN/inverted")
    v.add_argument("--steps", type=int, default=300, help="Adam steps on the latent")
    v.add_argument("--lr", type=float, default=0.05)
    v.add_argument("--restarts", type=int, default=16, help="random starting latents; the best is optimized")
    v.add_argument("--feature-weight", type=float, default=0.0, help="lambda_f of the perceptual term (0 = off)")
    v.add_argument("--label", type=int, help="class of the images (conditional recipes)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--interpolate", action="store_true", help="also walk from the first image to the second")
    v.add_argument("--frames", type=int, default=8, help="frames of the --interpolate walk")


def _not_config_keys(keys, where: str) -> None:
    # from the signature, so an argument added to train() later is caught too
    args = {n for n, p in inspect.signature(ganforge.train).parameters.items() if p.kind is not p.VAR_KEYWORD}
    for k in keys:
        if k in args:
            raise GanforgeError(f"{where}{k!r} is not a config key; {NOT_KEYS.get(k, 'it is an argument of train()')}")


def _train(a) -> int:
    overrides: dict = {}
    recipe, preset = a.recipe, a.preset
    if recipe and "=" in recipe:           # `ganforge train steps=10`: no recipe named
        a.overrides.insert(0, recipe)
        recipe = None
    if a.config:
        data = load_yaml(a.config)
        recipe = recipe or data.pop("recipe", None)
        preset = preset or data.pop("preset", None)
        data.pop("recipe", None), data.pop("preset", None)
        _not_config_keys(data, f"config file {a.config!r}: ")
        overrides.update(data)
    pairs = parse_overrides(a.overrides)
    _not_config_keys(pairs, "")
    overrides.update(pairs)
    for flag in TRAIN_FLAGS:
        if getattr(a, flag) is not None:
            overrides[flag] = getattr(a, flag)
    recipe = recipe or "dcgan"             # the same default as ganforge.train(): no preset applied silently
    s = ganforge.train(recipe, preset=preset, out=a.out, progress=not a.quiet, **overrides)
    _report(s)
    return 0


def _report(s: dict) -> None:
    if s.get("rank", 0):          # under torchrun only rank 0 reports
        return
    last = s.get("last_log", {})
    losses = ", ".join(f"{k}={v:.3f}" for k, v in last.items() if k.endswith("/loss"))
    print(f"\ntrained {s['recipe']} to step {s['step']} ({s['precision']} on {s['device']}"
          f"{'; ' + losses if losses else ''})")
    if s.get("skipped_images"):   # the count, and the first few names so the files can be found and fixed
        names = s.get("skipped_files") or []
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        shown = f": {', '.join(names[:3])}{more}" if names else ""
        print(f"skipped {s['skipped_images']} unreadable images{shown}")
    print(f"  samples:    {s['samples']}")
    if s.get("loss_plot"):
        print(f"  loss plot:  {s['loss_plot']}")
    print(f"  checkpoint: {s['checkpoint']}")
    hint = s.get("next")          # api.next_step: what to run on this kind of run (none for dann's classifier)
    print(f"  run:        {s['run_dir']}" + (f"  ({hint})" if hint else ""))


def _list(a) -> int:
    if a.keys:
        keys = to_dict(RECIPES.get_or_fail(a.keys).Config())
        for title, names in ((f"{a.keys} (the paper's knobs):", [k for k in keys if k not in train_keys()]),
                             ("training (every recipe):", [k for k in keys if k in train_keys()])):
            print(title)
            for k in names:
                print(f"  {k} = {keys[k]}")
        return 0
    print("recipes:")
    for name, r in ganforge.list_recipes().items():
        print(f"  {name:12s} {r['summary']}")
        if r["presets"]:
            print(f"  {'':12s} presets: {', '.join(r['presets'])}")
    print("data specs: " + ", ".join(sorted(DATASETS)) + "  (e.g. toy:ring, csv:PATH, folder:PATH)")
    _list_zoo()
    return 0


def _list_zoo() -> None:
    """The zoo's models, from its two manifests (zoo/bundled.json, zoo/downloads.json)."""
    from . import zoo   # noqa: PLC0415  (tests/test_layering.py LOCAL_IMPORTS says why)

    rows = zoo.table()
    print("zoo (ganforge sample zoo:NAME, ganforge.load('zoo:NAME')):" + ("" if rows else " empty"))
    for r in rows:
        metric = r["metric"]
        score = f"{metric['name']} {metric['value']}" if metric else ""
        print(f"  {r['name']:20s} {r['summary']} [{r['where']}, {r['bytes'] / 2**20:.1f} MiB{', ' if score else ''}"
              f"{score}]")


def _chosen(argv: list[str]) -> str | None:
    """The subcommand of a command line (its first word that is not an option: the top level takes none with
    a value)."""
    return next((w for w in argv if not w.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_chosen(argv))
    a, extra = parser.parse_known_args(argv)
    # key=value pairs may follow options (`train gan --steps 5 loss=minimax`): argparse leaves them over
    pairs = [e for e in extra if "=" in e and not e.startswith("-")]
    if pairs and a.command == "resume":
        # the stored config is what makes a resumed run continue the same training, so it is not changed
        return _fail(f"resume keeps the run's config (only --steps N can change); to change "
                     f"{', '.join(p.partition('=')[0] for p in pairs)} start a new run: "
                     f"ganforge train RECIPE {' '.join(pairs)} --out NEW")
    if extra and (a.command != "train" or len(pairs) < len(extra)):
        parser.error("unrecognized arguments: " + " ".join(extra))
    if extra:
        a.overrides += extra
    try:
        return _run(a)
    except GanforgeError as e:
        return _fail(str(e))


def _run(a) -> int:
    if a.command == "train":
        return _train(a)
    if a.command == "resume":
        _report(ganforge.resume(a.run, steps=a.steps, progress=not a.quiet))
        return 0
    if a.command == "list":
        return _list(a)
    if hasattr(a, "func"):                 # a HEAVY_PARSERS command: its module set func
        return a.func(a)
    return importlib.import_module(f"{__package__}.commands.{a._module}").run(a)


def _fail(message: str) -> int:
    print(f"ganforge: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
