"""The one way ganforge fetches a file (data archives, FID Inception and VGG19 weights): atomically, checked.

The bytes go to a temporary file in the destination folder, hashed while they arrive, and are renamed into
place only when the digest matches; an interrupted, refused or corrupt transfer leaves nothing that a later
run would trust. Importable from every layer (like errors.py): it depends on nothing else in ganforge.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from .errors import GanforgeError


NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def file_hash(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir(path=None) -> Path:
    """Where downloaded weights live: `path`, else $GANFORGE_CACHE, else ~/.cache/ganforge."""
    if path is not None:
        return Path(path).expanduser()
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge").expanduser()


def fetch(url: str, dest, *, algorithm: str = "sha256", expected: str | None = None, what: str = "file",
          fix: str = "", timeout: float = 60.0) -> Path:
    """Download `url` to `dest`. `expected` is the digest (or a prefix of it) the bytes must have; None skips
    the check. `what` names the file and `fix` says what the user can do instead, in the error messages."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fix = fix or f"download it by hand and place it at {dest}"
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        h = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if expected and not h.hexdigest().startswith(expected):
            raise GanforgeError(f"downloaded {what} from {url} has the wrong checksum ({NAMES.get(algorithm, algorithm)} "
                                f"{h.hexdigest()}, expected {expected!r}); the file was discarded and nothing was "
                                f"saved. Try again, check the URL, or {fix}")
        os.replace(tmp, dest)
    except (OSError, http.client.HTTPException) as e:   # URLError, HTTPError, cut-off transfers
        raise GanforgeError(f"could not download {what} from {url} ({e}); check the connection, or {fix}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def weights_file(weights, cache, download: bool, url: str, *, what: str, flag: str, expected: str | None,
                 offline: str = "", download_flag: str | None = None) -> Path:
    """The weights file a pretrained network loads: the path `weights` if given, else the cached copy of
    `url` in cache_dir(cache), else (download=True) `url` fetched into the cache and checked against `expected` (a SHA-256
    prefix). `flag` is how the user passes a path (e.g. "--weights PATH"), `download_flag` how they allow the
    download, `offline` an alternative that needs no file; all go into the one-line errors."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise GanforgeError(f"{what} file {path} does not exist; pass {flag} with the path to {name}")
        return path
    cached = cache_dir(cache) / name
    if cached.is_file():
        return cached
    if not download:
        raise GanforgeError(f"{what} not found: no {flag} given and no {cached} (cache: $GANFORGE_CACHE or "
                            f"~/.cache/ganforge). Fix: pass {flag} to a copy of {name}, put it at {cached}, or "
                            + (f"pass {download_flag} (download=True in Python" if download_flag else "enable download (download=True")
                            + f", needs internet) to fetch {url}{offline}")
    return fetch(url, cached, expected=expected, what=what,
                 fix=f"download the file by hand and pass {flag}, or place it at {cached}")


def load_strict(model, state: dict, path, what: str, hint: str = "") -> None:
    """Load `state` into `model` strictly, or one GanforgeError counting (and naming the first of) the missing,
    unexpected and wrongly shaped keys against `what`'s layout."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(getattr(state[k], "shape", ())) != expected[k].shape]
    if missing or unexpected or wrong:
        raise GanforgeError(f"{path} does not match the {what} layout: {len(missing)} missing keys {missing[:3]}, "
                            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} with wrong shapes "
                            f"{wrong[:3]}{hint}")
    model.load_state_dict(state, strict=True)


def read_state_dict(path, what: str) -> dict:
    """A PyTorch weights file read safely (weights_only): its state dict, or one line saying it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not a weights file"
        raise GanforgeError(f"{path} is not a readable PyTorch weights file ({type(e).__name__}); pass the "
                            f"{what} file") from None
    if not isinstance(state, Mapping):
        raise GanforgeError(f"{path} holds a {type(state).__name__}, not a state dict of tensors ({what})")
    return dict(state)


def load_bundled(model: torch.nn.Module, path: Path, what: str, fix: str) -> torch.nn.Module:
    """A network shipped with ganforge (safetensors beside its module): weights loaded, eval mode, frozen."""
    if not Path(path).is_file():
        raise GanforgeError(f"{what} weights missing at {path}; {fix}")
    model.load_state_dict(load_file(str(path)))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
