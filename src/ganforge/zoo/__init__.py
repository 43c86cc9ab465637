"""The model zoo: pretrained generators named `zoo:NAME`, wherever a run folder is accepted.

Two manifests sit beside this module:
  bundled.json    models shipped inside the package: zoo/NAME/{config.json, weights.safetensors}, an export folder
                  as `ganforge export` writes it. Each entry records the command that trained it, the metric it
                  scored with the command that measured it, and the SHA-256 and size of its weights file.
                  Written by scripts/train_zoo.py, never by hand.
  downloads.json  larger checkpoints (trained on a GPU): the URL and SHA-256 of each of the two files. They
                  are fetched into the cache (download.cache_dir() / "zoo" / NAME) only when asked for
                  (`--download`, download=True), checked as they arrive, and read from there afterwards.

A bundled model's weights are hashed on every load (they are small), so an edited or damaged file is refused
instead of silently giving other samples; a foreign file (any other safetensors) fails the same way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import download
from ..errors import GanforgeError
from ..registry import suggest

HERE = Path(__file__).parent
PREFIX = "zoo:"
FILES = ("config.json", "weights.safetensors")


def is_ref(path) -> bool:
    """Whether `path` names a zoo model ("zoo:NAME") rather than a folder."""
    return isinstance(path, (str, Path)) and str(path).startswith(PREFIX)


def _manifest(name: str) -> dict[str, dict[str, Any]]:
    path = HERE / name
    try:
        models = json.loads(path.read_text("utf-8"))["models"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GanforgeError(f"the zoo manifest {path} is unreadable ({type(e).__name__}); reinstall "
                            f"ganforge") from None
    return models


def bundled() -> dict[str, dict[str, Any]]:
    """NAME -> entry of the models shipped with the package (recipe, summary, command, metric, sha256, bytes)."""
    return _manifest("bundled.json")


def downloads() -> dict[str, dict[str, Any]]:
    """NAME -> entry of the downloadable models (summary, and per file its url and sha256)."""
    return _manifest("downloads.json")


def names() -> list[str]:
    return sorted({*bundled(), *downloads()})


def cached(name: str, cache=None) -> Path:
    """Where a downloadable model lives once fetched."""
    return download.cache_dir(cache) / "zoo" / name


def folder(ref, download_ok: bool = False, cache=None) -> Path:
    """The export folder of `zoo:NAME`: the package's own copy (its weights' SHA-256 checked against the
    manifest), or a downloadable model's cached copy, fetched first when `download_ok`. One GanforgeError
    naming the model and the fix otherwise."""
    name = str(ref)[len(PREFIX):] if is_ref(ref) else str(ref)
    ours, theirs = bundled(), downloads()
    if name in ours:
        path = HERE / name
        _check(path / "weights.safetensors", ours[name]["sha256"], f"zoo:{name}",
               "reinstall ganforge (pip install --force-reinstall ganforge)")
        return path
    if name in theirs:
        return _fetched(name, theirs[name], download_ok, cache)
    known = ", ".join(names()) or "none"
    raise GanforgeError(f"no zoo model {name!r}{suggest(name, names())}; the zoo has: {known} (`ganforge list`)")


def _check(path: Path, sha256: str, what: str, fix: str) -> None:
    if not path.is_file():
        raise GanforgeError(f"{what}: {path} is missing; {fix}")
    digest = download.file_hash(path)
    if digest != sha256:
        raise GanforgeError(f"{what}: {path} has SHA-256 {digest[:16]}..., not the manifest's {sha256[:16]}... "
                            f"(damaged or replaced); {fix}")


def _fetched(name: str, entry: dict[str, Any], download_ok: bool, cache) -> Path:
    dest = cached(name, cache)
    files = entry.get("files", {})
    if set(files) != set(FILES):
        raise GanforgeError(f"the zoo manifest's entry for {name!r} does not list {' and '.join(FILES)}; "
                            f"reinstall ganforge")
    missing = [f for f in FILES if not (dest / f).is_file()]
    if missing and not download_ok:
        size = entry.get("bytes")
        raise GanforgeError(f"zoo:{name} is a download ({f'{size / 2**20:.1f} MiB ' if size else ''}from "
                            f"{files['weights.safetensors']['url']}) not yet in {dest}; fetch it once with "
                            f"`ganforge sample zoo:{name} --download` (ganforge.load('zoo:{name}', download=True))")
    for f in missing:
        download.fetch(files[f]["url"], dest / f, expected=files[f]["sha256"], what=f"zoo:{name} {f}",
                       fix=f"download it by hand into {dest / f}")
    for f in FILES:     # a cached copy is checked like a bundled one: the cache is a folder anyone can write
        _check(dest / f, files[f]["sha256"], f"zoo:{name}", f"delete {dest} and fetch it again with --download")
    return dest


def table() -> list[dict[str, Any]]:
    """One row per model for `ganforge list` and the README: name, where it is, recipe, metric, size."""
    rows = []
    for name, e in sorted(bundled().items()):
        rows.append({"name": name, "where": "bundled", "recipe": e["recipe"], "summary": e["summary"],
                     "metric": e.get("metric", {}), "bytes": e["bytes"]})
    for name, e in sorted(downloads().items()):
        where = "cached" if all((cached(name) / f).is_file() for f in FILES) else "download"
        rows.append({"name": name, "where": where, "recipe": e.get("recipe", "?"), "summary": e.get("summary", ""),
                     "metric": e.get("metric", {}), "bytes": e.get("bytes", 0)})
    return rows
