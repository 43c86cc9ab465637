"""`ganforge ...` - a thin layer over the public API (DESIGN §5). Bad input exits with status 2 and one line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ganforge.data  # noqa: F401  (registers the data specs)

from . import commands
from .api import list_recipes, load, make_config, resume, train
from .commands import out_file
from .config import choices, field_types, load_yaml, parse_overrides, to_dict, train_keys
from .errors import GanforgeError
from .recipes.base import RecipeConfig, TextConditional
from .registry import DATASETS
from .training.callbacks import sample_suffix

TRAIN_FLAGS = ("data", "steps", "seed", "device", "precision", "threads")
# ganforge.train()'s own arguments are not config keys: passed as key=value (or YAML keys) they would reach
# train(**overrides) twice and fail with a TypeError. Each has its own flag; the hint says which.
NOT_KEYS = {"out": "use --out DIR", "preset": "use --preset NAME", "progress": "use --quiet for no progress bar",
            "recipe": "name it first: ganforge train RECIPE key=value ...",
            "stop_at": "use steps=N (and `ganforge resume RUN --steps N` to go on)"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Train, sample and evaluate GANs.")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="recipes, presets, data specs")
    ls.add_argument("--keys", metavar="RECIPE", help="print the config keys of RECIPE with their defaults")

    t = sub.add_parser("train", help="train a recipe (default: dcgan on the digits data set)")
    t.add_argument("recipe", nargs="?", default=None, help="recipe name (`ganforge list`)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    t.add_argument("--preset")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML with recipe, preset and config keys")
    t.add_argument("--out", metavar="DIR")
    types = field_types(RecipeConfig)
    for flag in TRAIN_FLAGS:     # shortcuts for `flag=value`: typed and limited as their RecipeConfig fields
        t.add_argument(f"--{flag}", type=types[flag], choices=choices(RecipeConfig, flag),
                       metavar="SPEC" if flag == "data" else None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run")
    r.add_argument("--steps", type=int, help="new total number of steps")
    r.add_argument("--quiet", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained run (grid PNG, scatter PNG or CSV)")
    s.add_argument("run")
    s.add_argument("-n", "--num", type=int, help="how many (default: 64 images, 2,000 points, 1,000 rows)")
    s.add_argument("--out", metavar="FILE")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--label", type=int, help="class to draw (conditional recipes)")
    s.add_argument("--text", help="caption to draw (text2image runs)")
    s.add_argument("--truncation", type=float, metavar="PSI",
                   help="pull w towards w_avg (stylegan): psi in [0, 1], 1 = none")

    for module in commands.modules():
        module.add(sub)
    return p


def _not_config_keys(keys, where: str) -> None:
    import inspect

    # from the signature, so an argument added to train() later is caught too
    args = {n for n, p in inspect.signature(train).parameters.items() if p.kind is not p.VAR_KEYWORD}
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
    s = train(recipe, preset=preset, out=a.out, progress=not a.quiet, **overrides)
    _report(s)
    return 0


def _report(s: dict) -> None:
    if s.get("rank", 0):          # under torchrun only rank 0 reports
        return
    last = s.get("last_log", {})
    losses = ", ".join(f"{k}={v:.3f}" for k, v in last.items() if k.endswith("/loss"))
    print(f"\ntrained {s['recipe']} to step {s['step']} ({s['precision']} on {s['device']}; {losses})")
    if s.get("skipped_images"):   # the count, and the first few names so the files can be found and fixed
        names = s.get("skipped_files") or []
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        shown = f": {', '.join(names[:3])}{more}" if names else ""
        print(f"skipped {s['skipped_images']} unreadable images{shown}")
    print(f"  samples:    {s['samples']}")
    print(f"  loss plot:  {s['loss_plot']}")
    print(f"  checkpoint: {s['checkpoint']}")
    print(f"  run:        {s['run_dir']}  (sample more: ganforge sample {s['run_dir']} -n 64)")


def _sample(a) -> int:
    if a.num is not None and a.num < 1:       # 0 would silently mean the default, < 0 crash in torch
        raise GanforgeError(f"-n must be >= 1 (how many to draw); got {a.num}")
    g = load(a.run)
    if a.text is not None and (a.label is not None or not isinstance(g.recipe, TextConditional)):
        raise GanforgeError("--text applies to text2image runs, and not together with --label")
    suffix = sample_suffix(g.info.kind)
    if a.out:     # checked before drawing: PIL / the CSV writer would fail (or write a misnamed file) after it
        writes = {"image": "an image grid", "points": "a scatter plot"}.get(g.info.kind, "table rows (CSV)")
        out_file(a.out, (suffix,), f"this {g.recipe.name} run writes {writes}")
    n = a.num or {"image": 64, "points": 2000}.get(g.info.kind, 1000)
    x = g.sample(n, seed=a.seed, labels=a.text if a.text is not None else a.label, truncation=a.truncation)
    tag = f"-label{a.label}" if a.label is not None else ("-text" if a.text is not None else "")
    out = Path(a.out) if a.out else Path(a.run) / "samples" / f"sample-seed{a.seed}{tag}{suffix}"
    print(g.save(x, out))
    return 0


def _list(a) -> int:
    if a.keys:
        cls, cfg = make_config(a.keys)
        keys = to_dict(cfg)
        for title, names in ((f"{a.keys} (the paper's knobs):", [k for k in keys if k not in train_keys()]),
                             ("training (every recipe):", [k for k in keys if k in train_keys()])):
            print(title)
            for k in names:
                print(f"  {k} = {keys[k]}")
        return 0
    print("recipes:")
    for name, r in list_recipes().items():
        print(f"  {name:12s} {r['summary']}")
        if r["presets"]:
            print(f"  {'':12s} presets: {', '.join(r['presets'])}")
    print("data specs: " + ", ".join(sorted(DATASETS)) + "  (e.g. toy:ring, csv:PATH, folder:PATH)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
        if a.command == "train":
            return _train(a)
        if a.command == "resume":
            s = resume(a.run, steps=a.steps, progress=not a.quiet)
            _report(s)
            return 0
        if a.command == "sample":
            return _sample(a)
        if a.command == "list":
            return _list(a)
        return a.func(a)
    except GanforgeError as e:
        return _fail(str(e))


def _fail(message: str) -> int:
    print(f"ganforge: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
