"""Safe, self-describing, atomic checkpoints (DESIGN §7).

checkpoints/step-NNNNNN/
  weights.safetensors   every net's state dict, keys "<net>.<param>" (and "ema.<net>.<param>"): no pickle
  state.pt              optimizers, RNG states, data position, recipe extras: tensors and plain Python
                        values only, read with torch.load(weights_only=True)
  meta.json             recipe, step, format and package versions
checkpoints/latest      the name of the newest complete checkpoint (the commit point of a save)
checkpoints/best/       weights and meta of the best evaluation (eval_every), replaced in place

Crash safety. A save writes the new folder as .tmp-NAME (every file and the folder fsynced), renames it into
place, fsyncs checkpoints/, then writes latest.tmp, fsyncs it, os.replaces it over `latest` and fsyncs
checkpoints/ again; only then are old folders deleted (renamed to .del-NAME first, so a half-deleted folder
never carries a name a reader looks for). A folder replaced in place (best, or a step saved twice) is first
renamed to .old-NAME; readers fall back to .old-NAME while NAME is missing, so one of the two is always
found. The next save tidies whatever a crash left (_recover). A crash at any point therefore leaves `latest`
naming a complete checkpoint: the previous one or the new one.

This module writes; the readers (latest, read, resolve, load_nets, ...) live in runs.py and are re-exported.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from ..errors import GanforgeError
# reading checkpoints is runs.py's (every reader loads runs through it); the names stay importable from here
from ..runs import FORMAT_VERSION, _pointer, _step, exists, latest, load_nets, read  # noqa: F401


def flatten(nets: dict[str, torch.nn.Module], prefix: str = "") -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied or viewed weights)
    return {f"{prefix}{name}.{k}": v.detach().cpu().clone().contiguous()
            for name, net in nets.items() for k, v in net.state_dict().items()}


def write_text_atomic(path: Path, text: str) -> None:
    """A whole file replaced at once and durably (fsynced, renamed, folder fsynced): a crash leaves the old
    content or the new, never an empty or half file. A full disk is one line naming the file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(tmp, text.encode("utf-8"))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise GanforgeError(f"cannot write {path} ({e.strerror}); free some space or fix the folder's "
                            f"permissions") from None


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


# -- writing --------------------------------------------------------------------------------------------------
def _write_file(path: Path, data) -> None:
    """Bytes to a file, flushed and fsynced. Everything a checkpoint holds is serialized in memory first and
    written here, because safetensors' save_file and torch.save turn a full disk into a SafetensorError or an
    opaque RuntimeError ("unexpected pos"); a plain write raises OSError(ENOSPC), which save() reports."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    # a new name or a rename inside a folder is durable only once the folder itself is synced
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _recover(root: Path) -> None:
    """Tidy what an interrupted save left: temporary and half-deleted folders go, a pointer never renamed goes,
    and an .old-NAME whose NAME is missing (a crash between the two renames) is put back as NAME."""
    for p in sorted(root.iterdir()):
        if p.name.startswith((".tmp-", ".del-")):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name == "latest.tmp":
            p.unlink(missing_ok=True)
        elif p.name.startswith(".old-"):
            final = root / p.name[len(".old-"):]
            if final.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.replace(p, final)


def _delete(folder: Path) -> None:
    trash = folder.with_name(f".del-{folder.name}")
    os.replace(folder, trash)        # atomic: from here on no reader looks at it
    shutil.rmtree(trash)


def _write_folder(root: Path, name: str, step: int, weights: dict[str, torch.Tensor], meta: dict[str, Any],
                  state: dict[str, Any] | None = None) -> Path:
    """checkpoints/<name>/ written as .tmp-<name>, synced, and renamed into place; an existing <name> is kept
    as .old-<name> (readers fall back to it) until the caller has committed the new one and deletes it."""
    root.mkdir(parents=True, exist_ok=True)
    _recover(root)
    tmp, final, old = root / f".tmp-{name}", root / name, root / f".old-{name}"
    tmp.mkdir()
    _write_file(tmp / "weights.safetensors", safetensors_bytes(weights))
    if state is not None:
        buf = io.BytesIO()
        torch.save(state, buf)
        _write_file(tmp / "state.pt", buf.getbuffer())
    meta = {**meta, "step": step, "format_version": FORMAT_VERSION}
    _write_file(tmp / "meta.json", json.dumps(meta, indent=2).encode())
    _fsync_dir(tmp)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def _write_error(root: Path, name: str, e: OSError) -> GanforgeError:
    """A failed write, as one line; the temporary files go and a renamed-away old folder comes back."""
    try:
        _recover(root)
    except OSError:      # best effort on a full disk: the next save tidies up; the user needs the first error
        pass
    kept = _pointer(root)
    kept = f"checkpoints/latest still names {kept}" if kept else "no checkpoint of this run was written yet"
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        try:
            n = shutil.disk_usage(root).free
            free = next((f"{n / 2**b:.1f} {u}" for b, u in ((30, "GiB"), (20, "MiB"), (10, "KiB")) if n >= 2**b),
                        f"{n} bytes") + " free"
        except OSError:
            free = "free space unknown"
        return GanforgeError(f"no space left for checkpoint {name} in {str(root)!r} ({free}; {e.strerror}); "
                             f"{kept}: free some space (or lower keep_checkpoints) and continue with "
                             f"`ganforge resume {root.parent}`")
    return GanforgeError(f"could not write checkpoint {name} in {str(root)!r} ({e.strerror or e}); {kept}: fix "
                         f"that and continue with `ganforge resume {root.parent}`")


def _prune(root: Path, keep: int, current: str) -> None:
    """Keep the newest `keep` step folders up to `current` (the one just written, which `latest` names); best
    is no step folder and stays. Later-numbered folders, left by a run that was rolled back (latest pointed at
    an earlier step), are not ours to judge: the resumed run replaces them as it reaches them."""
    if keep <= 0:
        return
    cur = _step(current)
    steps = sorted((s, p) for p in root.iterdir() if p.is_dir() and (s := _step(p.name)) is not None and s <= cur)
    for _, p in steps[:-keep]:
        if p.name != current:
            try:
                _delete(p)
            except OSError as e:     # a leftover costs only disk space: say so, keep training
                print(f"ganforge: could not remove old checkpoint {p} ({e.strerror or e})", file=sys.stderr)


def save(run_dir: Path, step: int, weights: dict[str, torch.Tensor], state: dict[str, Any],
         meta: dict[str, Any], keep: int = 0) -> Path:
    """Write checkpoints/step-NNNNNN and point `latest` at it; then keep only the newest `keep` step folders
    (0 = all)."""
    root = Path(run_dir) / "checkpoints"
    name = f"step-{step:06d}"
    try:
        final = _write_folder(root, name, step, weights, meta, state)
        pointer = root / "latest.tmp"
        _write_file(pointer, (name + "\n").encode())
        os.replace(pointer, root / "latest")
        _fsync_dir(root)
        old = root / f".old-{name}"
        if old.exists():
            _delete(old)
    except OSError as e:
        if (root / name).is_dir() and _pointer(root) != name:   # renamed into place, never committed: it
            with contextlib.suppress(OSError):                 # only takes space (_recover restores .old-)
                _delete(root / name)
        raise _write_error(root, name, e) from None
    _prune(root, keep, name)
    return final


def save_best(run_dir: Path, step: int, weights: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """checkpoints/best/: weights and meta of the best evaluation so far (loadable with ganforge.load);
    replaced atomically, and `latest` is left alone."""
    root = Path(run_dir) / "checkpoints"
    try:
        final = _write_folder(root, "best", step, weights, meta)
        if (root / ".old-best").exists():
            _delete(root / ".old-best")
    except OSError as e:
        raise _write_error(root, "best", e) from None
    return final
