"""Configs: the trainer's settings (TrainConfig), dataclass <-> dict/JSON/YAML, `key=value` overrides with
type checks.

A recipe's config is one flat dataclass: TrainConfig's fields (how to train: data, steps, intervals, device,
precision, threads, evaluation), then recipes.base.RecipeConfig's shared knobs, then the recipe's own
(its paper's). Every key has one name and one type, and a typo is caught with the closest valid name.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GanforgeError
from .registry import suggest

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def choice(*allowed: str) -> Any:
    """A config field whose value must be one of `allowed` (the first is the default): the allowed values are
    declared once, here, and `check_choices`, the CLI flags and `ganforge list --keys` read them from it."""
    return dataclasses.field(default=allowed[0], metadata={"choices": allowed})


def choices(cls, key: str) -> tuple[str, ...] | None:
    """The allowed values of config field `key` of dataclass `cls` (None: any value of its type)."""
    f = {f.name: f for f in dataclasses.fields(cls)}.get(key)
    return f.metadata.get("choices") if f is not None else None


def check_choices(cfg) -> None:
    for f in dataclasses.fields(cfg):
        allowed = f.metadata.get("choices")
        if allowed and getattr(cfg, f.name) not in allowed:
            raise GanforgeError(f"config key {f.name!r} must be one of {', '.join(allowed)}; "
                                f"got {getattr(cfg, f.name)!r}")


def field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Convert `value` (a parsed YAML/JSON value or a CLI string) to type `tp`, or raise GanforgeError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(key, value, args[0])
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (str,)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise GanforgeError(f"config key {key!r} expects a list, got {value!r}")
        out = [_coerce(key, v.strip() if isinstance(v, str) else v, inner) for v in items if v != ""]
        return tuple(out) if origin is tuple else out
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.replace("_", ""))
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except ValueError:
        name = getattr(tp, "__name__", str(tp))
        raise GanforgeError(f"config key {key!r} expects {name}, got {value!r}") from None
    return value


def from_dict(cls, data: dict[str, Any], base=None):
    """Build `cls` from `data` on top of `base` (or the defaults), checking names and types."""
    types_ = field_types(cls)
    values = dataclasses.asdict(base) if base is not None else {}
    for key, value in data.items():
        if key not in types_:
            raise GanforgeError(f"unknown config key {key!r}{suggest(key, types_)} "
                                f"(`ganforge list --keys RECIPE` shows the valid keys)")
        values[key] = _coerce(key, value, types_[key])
    cfg = cls(**values)
    check = getattr(cfg, "check", None)
    if check is not None:
        check()
    return cfg


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GanforgeError(f"override {pair!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise GanforgeError(f"config file {str(p)!r} does not exist")
    try:
        # explicit utf-8: YAML is UTF-8 text, whatever the locale; other bytes get one line, not a traceback
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise GanforgeError(f"config file {str(p)!r} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at "
                            f"offset {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise GanforgeError(f"config file {str(p)!r} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise GanforgeError(f"config file {str(p)!r} must hold a mapping of key: value")
    return data


def to_dict(cfg) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class TrainConfig:
    """How to train, whatever the family: data, length, intervals and the machine settings the trainer owns
    (device, precision, threads, compile, sync_bn; training/hardware.py decides `auto`)."""
    data: str = "digits"              # data spec (`ganforge list` shows them)
    resolution: int = 0               # image side in pixels; 0 = the recipe's default for the data
    channels: int = 0                 # 1 or 3; 0 = the data's own
    steps: int = 2000                 # generator updates (trainer iterations)
    batch_size: int = 64
    seed: int = 0
    device: str = choice("auto", "cpu", "cuda")
    precision: str = choice("auto", "fp32", "bf16", "fp16")   # autocast dtype; auto: docs/performance.md
    threads: int = 0                  # CPU threads; 0 = OMP_NUM_THREADS or this process's share of its cores
    compile: bool = False             # torch.compile the nets the phases call (opt-in; pays off on GPUs)
    sync_bn: bool = False             # under torchrun: BatchNorm statistics over all processes
    sample_every: int = 500           # steps between fixed-noise sample grids
    checkpoint_every: int = 1000      # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 3         # newest step-NNNNNN folders kept (latest and best always); 0 = keep all
    log_every: int = 50               # steps between metrics.jsonl rows
    log: str = choice("jsonl", "tensorboard")   # metrics.jsonl always; tensorboard: event files in RUN/tensorboard/
    num_samples: int = 64             # images in a sample grid (point data: at least 2,000 in its scatter)
    skip_bad: bool = False            # skip unreadable images (named in summary.json) instead of failing
    download: bool = False            # allow downloading data sets named by mnist:/cifar10: specs
    eval_every: int = 0               # steps between evaluations during training (keeps checkpoints/best); 0 = off
    eval_metric: str = "fid"          # the metric that decides "best" (fid, kid, pr, is, acc, modes ...)
    eval_num: int = 1000              # generated samples per evaluation

    def check(self) -> None:
        check_choices(self)          # every choice() field, here and in the recipe's config
        for key in ("threads", "eval_every", "keep_checkpoints", "resolution"):   # 0 means auto / off / all
            if getattr(self, key) < 0:
                raise GanforgeError(f"config key {key!r} must be >= 0 ({ZERO[key]}); got {getattr(self, key)}")
        if self.channels not in (0, 1, 3):
            raise GanforgeError(f"config key 'channels' must be 0 (the data's own), 1 or 3; got {self.channels}")
        for key in ("steps", "batch_size", "sample_every", "checkpoint_every", "log_every", "num_samples", "eval_num"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"config key {key!r} must be >= 1; got {getattr(self, key)}")


ZERO = {"threads": "0 = every core this process may use", "eval_every": "0 = off",
        "keep_checkpoints": "0 keeps every checkpoint", "resolution": "0 = the recipe's default for the data"}


def train_keys() -> set[str]:
    """The keys of TrainConfig: `ganforge list --keys` shows them apart from the recipe's."""
    return {f.name for f in dataclasses.fields(TrainConfig)}
