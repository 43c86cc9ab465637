"""Safe, self-describing, atomic checkpoints (DESIGN §7).

checkpoints/step-NNNNNN/
  weights.safetensors   every net's state dict, keys "<net>.<param>" (and "ema.<net>.<param>"): no pickle
  state.pt              optimizers, RNG states, data position, recipe extras: tensors and plain Python
                        values only, read with torch.load(weights_only=True)
  meta.json             recipe, step, format and package versions
checkpoints/latest      the name of the newest complete checkpoint

A checkpoint is written into a hidden temporary folder and renamed into place; `latest` is replaced with
os.replace. A crash at any point leaves the previous checkpoint and pointer intact.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import GanforgeError

FORMAT_VERSION = 1


def flatten(nets: dict[str, torch.nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied or viewed weights)
    return {f"{prefix}{name}.{k}": v.detach().cpu().clone().contiguous()
            for name, net in nets.items() for k, v in net.state_dict().items()}


def unflatten(weights: dict[str, torch.Tensor], prefix: str = "") -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in weights.items():
        if not key.startswith(prefix):
            continue
        name, _, rest = key[len(prefix):].partition(".")
        out.setdefault(name, {})[rest] = v
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _write_folder(root: Path, name: str, step: int, weights: dict[str, torch.Tensor], meta: dict[str, Any],
                  state: dict[str, Any] | None = None) -> Path:
    """checkpoints/<name>/ written into a temporary folder and renamed into place: a crash leaves the old
    folder or the new one, never half of either."""
    root.mkdir(parents=True, exist_ok=True)
    tmp, final, old = root / f".tmp-{name}", root / name, root / f".old-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(weights, str(tmp / "weights.safetensors"))
    if state is not None:
        torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "format_version": FORMAT_VERSION}, indent=2))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save(run_dir: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
         meta: dict[str, Any]) -> Path:
    root = Path(run_dir) / "checkpoints"
    name = f"step-{step:06d}"
    final = _write_folder(root, name, step, weights, meta, state)
    pointer = root / "latest.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, root / "latest")
    return final


def save_best(run_dir: Path, step: int, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """checkpoints/best/: weights and meta of the best evaluation so far (loadable with ganforge.load);
    replaced atomically, and `latest` is left alone."""
    return _write_folder(Path(run_dir) / "checkpoints", "best", step, weights, meta)


def latest(run_dir: Path) -> Path:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if not pointer.is_file():
        raise GanforgeError(f"no checkpoint in {str(run_dir)!r} (no checkpoints/latest); "
                            f"train first with `ganforge train --out {run_dir}`")
    path = root / pointer.read_text().strip()
    if not path.is_dir():
        raise GanforgeError(f"checkpoints/latest in {str(run_dir)!r} names {path.name!r}, which is missing; "
                            f"write the name of an existing step-NNNNNN folder into checkpoints/latest")
    return path


def read(path: Path, with_state: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, dict]:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        weights = load_file(str(path / "weights.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True, map_location="cpu") if with_state else None
    except (OSError, ValueError, RuntimeError, SafetensorError, json.JSONDecodeError) as e:
        raise GanforgeError(f"checkpoint {str(path)!r} is unreadable or corrupt ({type(e).__name__}: {e}); "
                            f"point checkpoints/latest at an earlier step-NNNNNN folder") from None
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
