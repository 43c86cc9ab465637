"""Reading a run folder, for every reader alike: `ganforge.load`, `resume`, `ganforge eval` and the commands.

A path given to a reader is one of
  RUN/                              a `ganforge train --out` folder: config.json + checkpoints/, read at the
                                    checkpoint that checkpoints/latest names
  RUN/checkpoints/step-NNNNNN/      one checkpoint folder (or checkpoints/best/); config.json is two levels up
  EXPORT/                           a `ganforge export` folder: config.json + weights.safetensors
  zoo:NAME                          a pretrained model of the zoo (zoo/__init__.py): an export folder inside
                                    the package, or a downloaded one in the cache
A checkpoint folder being replaced in place is read from its previous version .old-NAME (resolve).
config.json holds recipe, config and data_info: enough to rebuild the networks without the data.

Nothing here writes: training/checkpoint.py writes checkpoints (atomically; its docstring is the format) and
re-exports the readers below; api.py writes config.json. Nothing here imports the trainer, the metrics or the
CLI, so all of them can read runs through this module.
"""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from . import viz, zoo
from .config import from_dict
from .data import DataInfo
from .errors import GanforgeError
from .recipes.base import TextConditional
from .registry import RECIPES

FORMAT_VERSION = 1          # of checkpoint folders (training/checkpoint.py writes it into meta.json)
STEP = re.compile(r"step-(\d+)")


# -- config.json ----------------------------------------------------------------------------------------------
def read_run(run_dir: Path) -> dict[str, Any]:
    """A run's config.json, checked for what every reader needs; one line naming the file when it is not."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise GanforgeError(f"{str(run_dir)!r} is not a ganforge run directory (no config.json); "
                            f"give the --out folder of a `ganforge train` run")
    try:
        run = json.loads(path.read_bytes().decode("utf-8"))     # ganforge writes UTF-8, whatever the locale
    except (OSError, ValueError) as e:                          # ValueError: bad UTF-8 or JSON
        raise GanforgeError(f"{str(path)!r} is corrupt ({type(e).__name__}: {e}); restore it or start a new "
                            f"run") from None
    kinds = {"recipe": str, "config": dict, "data_info": dict}
    bad = [k for k, t in kinds.items() if not isinstance(run, dict) or not isinstance(run.get(k), t)]
    if bad:
        raise GanforgeError(f"{str(path)!r} lacks {', '.join(bad)} (it was not written by `ganforge train`, or "
                            f"was edited); restore it or start a new run")
    return run


def run_recipe(run: dict[str, Any]):
    """(recipe class, its Config) of a run's config.json."""
    cls = RECIPES.get_or_fail(run["recipe"])
    try:
        cfg = from_dict(cls.Config, run["config"])
    except GanforgeError as e:
        raise GanforgeError(f"the run's config.json does not fit recipe {run['recipe']!r} of this ganforge "
                            f"({e})") from None
    return cls, cfg


def build_recipe(run: dict[str, Any]):
    """The recipe object of a run, with the DataInfo it was trained on (no data is loaded)."""
    cls, cfg = run_recipe(run)
    return cls(cfg, DataInfo.from_dict(run["data_info"]))


# -- which folder ---------------------------------------------------------------------------------------------
def is_loadable(path) -> bool:
    """Whether `path` looks like something locate() reads (a run, checkpoint or export folder, a zoo model)."""
    if zoo.is_ref(path):
        return True
    path = resolve(Path(path))
    return any((path / name).is_file() for name in ("config.json", "meta.json", "weights.safetensors"))


def locate(path, download: bool = False) -> tuple[Path, dict[str, Any], str]:
    """(folder holding the weights, the run's config.json, kind) of a run directory (its latest checkpoint;
    kind "run"), a checkpoint folder ("checkpoint"), an export folder ("export") or a zoo model ("zoo";
    `download` lets a downloadable one be fetched)."""
    if zoo.is_ref(path):
        folder = zoo.folder(path, download_ok=download)
        return folder, read_run(folder), "zoo"
    path = resolve(Path(path))     # a checkpoint being replaced in place: its previous version
    if (path / "meta.json").is_file() and not (path / "config.json").is_file():
        return path, read_run(path.parent.parent), "checkpoint"     # run/checkpoints/step-NNNNNN
    if (path / "weights.safetensors").is_file():
        return path, read_run(path), "export"
    run = read_run(path)
    return latest(path), run, "run"


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder (its meta.json checked, no training state read) or an export folder."""
    folder = Path(folder)
    return read(folder, with_state=False)[0] if (folder / "meta.json").is_file() else load_file_only(folder)


def load_net(recipe, name: str, folder: Path) -> torch.nn.Module:
    """Network `name` of a freshly built recipe with the weights in `folder`: its EMA copy when the run kept
    one."""
    with torch.random.fork_rng(devices=[]):   # the initial weights are overwritten: leave the caller's RNG alone
        torch.manual_seed(0)
        nets = recipe.build()
    weights = read_weights(folder)
    prefix = "ema." if any(k.startswith(f"ema.{name}.") for k in weights) else ""
    load_nets({name: nets[name]}, weights, prefix, folder)
    return nets[name]


# -- the generator --------------------------------------------------------------------------------------------
class Generator:
    """A trained generator, as `ganforge.load` returns it.

    `recipe` (the family, built from config.json), `G` (the network, in eval mode; the EMA copy when the run
    kept one), `info` (the data description: kind "image", "points" or "table", shape, classes), `run` (the
    run's config.json) and `step` (the training step of the weights; None when unknown).
    """

    def __init__(self, recipe, G: torch.nn.Module, info: DataInfo, run: dict[str, Any], step: int | None = None):
        self.recipe, self.G, self.info, self.run, self.step = recipe, G.eval(), info, run, step

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = 0, labels=None, truncation: float | None = None,
               text: str | list[str] | None = None) -> torch.Tensor:
        """n samples in data space: images N x C x H x W in [-1, 1], points N x d, table rows N x columns.

        seed: the latent noise (and an image-to-image recipe's choice of held-out inputs); None draws from the
        global torch RNG. labels: a conditional recipe's class (one int for all, or one per sample; default
        0..K-1 cycling). text: a caption, or one per sample, for text-to-image recipes (text2image).
        truncation: StyleGAN's psi in [0, 1] (1 = none), pulling w towards the average w.
        """
        if text is not None:
            if labels is not None or not isinstance(self.recipe, TextConditional):
                raise GanforgeError(f"text= applies to text-to-image runs ({self.recipe.name} is not one), and not "
                                    f"together with labels=")
            labels = text
        device = next(self.G.parameters()).device
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = self.recipe.sample_inputs(n, generator=g).to(device)
        labels = self.recipe.sample_labels(n, labels)
        labels = labels.to(device) if labels is not None else None
        kw = {}
        if truncation is not None:
            if "truncation" not in self.recipe.sample_kwargs:
                raise GanforgeError(f"--truncation applies to recipes with a truncation trick (stylegan); "
                                    f"{self.recipe.name} has none")
            kw["truncation"] = truncation
        return self.recipe.generate(self.G, z, labels, **kw)

    def save(self, x: torch.Tensor, path, nrow: int | None = None, real: torch.Tensor | None = None) -> Path:
        """Write samples the way training does: images as a PNG grid (`nrow` per row; small images enlarged),
        points as a PNG scatter or histogram (over `real` points when given), table rows as a CSV in the data's
        own columns. Returns the path."""
        return viz.write_samples(x.float(), self.info, Path(path), nrow=nrow, real=real)

    def to(self, device) -> "Generator":
        """Move the network to `device` ("cpu", "cuda", a torch.device); sample() then runs there. Returns self."""
        self.G.to(device)
        return self


def generator(folder: Path, run: dict[str, Any]) -> Generator:
    """The Generator of a located run (see locate)."""
    recipe = build_recipe(run)
    return Generator(recipe, load_net(recipe, recipe.sampler, folder), recipe.info, run, _weights_step(folder, run))


def _weights_step(folder: Path, run: dict[str, Any]) -> int | None:
    """The step a checkpoint's meta.json records (an export folder: the one its config.json records)."""
    try:
        step = json.loads((folder / "meta.json").read_bytes()).get("step")
    except (OSError, ValueError, AttributeError):
        step = run.get("step")
    return step if isinstance(step, int) else None


def load(path: str | Path, download: bool = False) -> Generator:
    """Load a generator from a run directory (latest checkpoint), a checkpoint folder, an export folder or the
    zoo ("zoo:NAME"; `ganforge list` names them). download=True lets a zoo model that is a download be fetched
    (once: it is cached)."""
    folder, run, _ = locate(path, download)
    return generator(folder, run)


def samples_dir(run) -> Path:
    """Where a command writes by default: RUN/samples, or for a zoo model (whose folder is the installed
    package's) ./zoo-NAME/samples in the working directory."""
    if zoo.is_ref(run):
        return Path(f"zoo-{str(run)[len(zoo.PREFIX):]}") / "samples"
    return Path(run) / "samples"


# -- checkpoint folders (written by training/checkpoint.py) ---------------------------------------------------
def _step(name: str) -> int | None:
    m = STEP.fullmatch(name)
    return int(m.group(1)) if m else None


def unflatten(weights: dict[str, torch.Tensor], prefix: str = "") -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in weights.items():
        if not key.startswith(prefix):
            continue
        name, _, rest = key[len(prefix):].partition(".")
        out.setdefault(name, {})[rest] = v
    return out


def exists(run_dir: Path) -> bool:
    """Whether a run has committed a checkpoint (`latest` is written last: folders without it are not)."""
    return (Path(run_dir) / "checkpoints" / "latest").is_file()


def resolve(folder: Path) -> Path:
    """A checkpoint folder, or its previous version .old-NAME during the moment a save replaces it in place."""
    folder = Path(folder)
    old = folder.with_name(f".old-{folder.name}")
    return old if not folder.is_dir() and old.is_dir() else folder


def _others(root: Path, but: str = "") -> str:
    """The step folders a user can point `latest` at instead, newest first, as text for a message."""
    names = sorted((p.name for p in root.glob("step-*") if p.is_dir() and _step(p.name) is not None
                    and p.name != but), key=_step, reverse=True)
    if not names:
        return "no other checkpoint is kept there: start the run again with `ganforge train`"
    return ("point checkpoints/latest at an earlier step folder (kept: " + ", ".join(names[:5])
            + (", ..." if len(names) > 5 else "") + ")")


def _pointer(root: Path) -> str | None:
    try:
        return (root / "latest").read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def latest(run_dir: Path) -> Path:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if not pointer.is_file():
        raise GanforgeError(f"no checkpoint in {str(run_dir)!r} (no checkpoints/latest); "
                            f"train first with `ganforge train --out {run_dir}`")
    name = _pointer(root)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise GanforgeError(f"checkpoints/latest in {str(run_dir)!r} does not hold a checkpoint folder name; "
                            f"{_others(root)}")
    path = resolve(root / name)
    if not path.is_dir():
        raise GanforgeError(f"checkpoints/latest in {str(run_dir)!r} names {name!r}, which is missing; "
                            f"write the name of an existing step-NNNNNN folder into checkpoints/latest")
    return path


def read(path: Path, with_state: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict]:
    path = resolve(path)
    instead = _others(path.parent, but=path.name.removeprefix(".old-"))
    try:
        meta = json.loads((path / "meta.json").read_bytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("meta.json is not a JSON object")
        weights = load_file(str(path / "weights.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True, map_location="cpu") if with_state else None
    except (pickle.UnpicklingError, OSError, ValueError, RuntimeError, SafetensorError) as e:
        if isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e):
            # torch refused to unpickle it, and its message advises unsafe loading: never pass that on
            raise GanforgeError(f"{str(path / 'state.pt')!r} is not a ganforge checkpoint file (it holds Python "
                                f"objects other than tensors and plain values, or is damaged) and is not "
                                f"loaded; {instead}") from None
        raise GanforgeError(f"checkpoint {str(path)!r} is unreadable or corrupt ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); {instead}") from None
    if with_state and not (isinstance(state, dict) and {"step", "optimizers"} <= set(state)):
        raise GanforgeError(f"{str(path / 'state.pt')!r} is not a ganforge checkpoint file (no training "
                            f"state in it); {instead}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise GanforgeError(f"checkpoint {str(path)!r} has format {meta['format_version']}, newer than this "
                            f"ganforge understands ({FORMAT_VERSION}); upgrade ganforge")
    return weights, state, meta


def load_nets(nets: dict[str, torch.nn.Module], weights: dict[str, torch.Tensor], prefix: str, where: Path) -> None:
    parts = unflatten(weights, prefix)
    for name, net in nets.items():
        try:
            net.load_state_dict(parts.get(name, {}), strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else ""
            raise GanforgeError(f"checkpoint {str(where)!r} does not fit network {name!r} of this recipe "
                                f"({first}); was it written by another recipe or config?") from None


def load_file_only(folder: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(Path(folder) / "weights.safetensors"))
    except (OSError, SafetensorError) as e:
        raise GanforgeError(f"{str(folder)!r}: weights.safetensors is unreadable ({e})") from None
