"""Recipe configs: dataclass <-> dict/JSON/YAML, `key=value` overrides with type checks.

One flat dataclass per recipe (training fields live in the shared base, the paper's knobs in the recipe's
subclass), so every key has one name and one type, and a typo is caught with the closest valid name.
"""
from __future__ import annotations

import dataclasses
import types
import typing
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
